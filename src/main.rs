//! `tessera`: parse arguments, run, map errors to an exit code. The only place that uses
//! `anyhow`.

use std::process::ExitCode;

use clap::Parser;

// candle allocates and frees tensors of tens of megabytes per layer; glibc's malloc hands
// those back to the kernel with munmap each time and faults them in again (measured:
// 40% of encoding time in the kernel). mimalloc keeps them: 1.5x faster SciFact encoding.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = tessera::cli::Cli::parse();
    match tessera::cli::run(cli).map_err(anyhow::Error::from) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: many errors already include their cause's
/// text ("{path}: {source}"), which `{:#}` would print a second time.
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
