use std::path::PathBuf;

use crate::cli::ServeArgs;
use std::time::Duration;

use crate::server::{self, ConnectionLimits, Limits, ServeConfig};
use crate::{Error, Result};

pub(super) fn run(args: ServeArgs) -> Result<()> {
    let mut indexes: Vec<(String, PathBuf)> = Vec::new();
    for spec in &args.indexes {
        let (name, dir) = match spec.split_once('=') {
            Some((n, d)) => (n.to_string(), PathBuf::from(d)),
            None => {
                let dir = PathBuf::from(spec);
                let name = dir
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .ok_or_else(|| {
                        Error::Usage(format!("{spec}: cannot name this index; use NAME=DIR"))
                    })?;
                (name, dir)
            }
        };
        if name.is_empty() || name.contains('/') {
            return Err(Error::Usage(format!(
                "{spec}: index names must be non-empty and without '/'"
            )));
        }
        if indexes.iter().any(|(n, _)| *n == name) {
            return Err(Error::Usage(format!(
                "two indexes are named {name:?}; name them with NAME=DIR"
            )));
        }
        indexes.push((name, dir));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    server::run(ServeConfig {
        indexes,
        addr: args.addr,
        device: args.device,
        limits: Limits {
            max_k: args.max_k as usize,
            max_batch: args.max_batch as usize,
            max_body_bytes: args.max_body_bytes,
            max_query_bytes: args.max_query_bytes,
            max_query_vectors: args.max_query_vectors,
            max_candidates: args.max_candidates as usize,
            max_ncells: args.max_ncells as usize,
            max_response_bytes: args.max_response_bytes,
            request_timeout: Duration::from_secs_f64(args.request_timeout),
            max_write_docs: args.max_write_docs as usize,
        },
        connections: ConnectionLimits {
            header_timeout: Duration::from_secs_f64(args.header_timeout),
            idle_timeout: Duration::from_secs_f64(args.idle_timeout),
            max_connections: args.max_connections as usize,
        },
        concurrent_searches: args.concurrent_searches.map_or(cores, |c| c as usize),
        expose_paths: args.expose_paths,
        read_only: args.read_only,
        reload_interval: Duration::from_secs_f64(args.reload_interval),
        group_window: Duration::from_millis(args.group_commit_ms),
    })
}
