use std::time::Instant;

use tessera_index::pooling::pool_hierarchical;
use tessera_index::{Component, DocAddress, DocExtras, Index, IndexWriter, WriteOptions};

use crate::cli::index::{index_config, splade_encoder};
use crate::cli::RebuildArgs;
use crate::encoder::Role;
use crate::pipeline::Pooling;
use crate::search::ModelRecord;
use crate::{Error, Result};

/// SPLADE encodes the kept texts this many documents at a time.
const WINDOW: usize = 512;

pub(super) fn run(args: RebuildArgs) -> Result<()> {
    let source = Index::open(&args.source)?;
    let same = match (args.source.canonicalize(), args.out.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(Error::IndexMetadata {
            index: args.out.clone(),
            reason: "--out must be another directory than the source index".into(),
        });
    }
    if let Some(c) = args
        .components
        .iter()
        .find(|c| matches!(c, Component::Splade | Component::Bm25))
    {
        if !source.has_texts() {
            return Err(Error::IndexMetadata {
                index: args.source.clone(),
                reason: format!(
                    "{c} needs the documents' text, which this index does not keep \
                     (built with --no-store-text, or before indexes kept texts): use `tessera index`"
                ),
            });
        }
    }
    let splade = splade_encoder(&args.components, &args.splade, args.device)?;
    // Texts the source keeps are copied.
    let config = index_config(
        &args.components,
        &args.out,
        &args.plaid,
        &args.muvera,
        splade.as_ref(),
        source.has_texts(),
        // The source's fields are copied.
        &source.manifest().settings.fields.0,
        Some(source.num_docs()),
    )?;
    let started = Instant::now();
    let src = source.manifest();
    // Further pooling is recorded, so documents added later are pooled alike.
    let mut model = src.model.clone();
    if args.pool_factor > 1 {
        let mut record = ModelRecord::read(src, source.dir())?;
        let before = match record.pooling {
            Some(Pooling::Hierarchical { factor }) => factor,
            _ => 1,
        };
        record.pooling = Some(Pooling::Hierarchical {
            factor: before * args.pool_factor as usize,
        });
        model.encoder = record.to_value();
    }
    let options = WriteOptions { force: args.force };
    let mut writer = IndexWriter::create_with_options(&args.out, model, config.clone(), options)?;
    let docs: Vec<DocAddress> = source.live_docs().collect();
    for window in docs.chunks(WINDOW) {
        let sparse = match &splade {
            Some(s) => {
                let texts: Vec<&str> = window
                    .iter()
                    .map(|&a| source.text(a).unwrap_or(""))
                    .collect();
                Some(s.encode(&texts, Role::Document)?)
            }
            None => None,
        };
        for (i, &a) in window.iter().enumerate() {
            let fields = match source.segment(a.segment as usize).fields() {
                Some(f) => Some(f.values(a.doc)?),
                None => None,
            };
            let extras = DocExtras {
                text: source.text(a),
                sparse: sparse.as_ref().map(|v| &v[i]),
                fields: fields.as_ref(),
            };
            match source.vectors(a) {
                // f16 rows go over unchanged (no rounding twice).
                tessera_index::store::DocRows::F16(rows) if args.pool_factor <= 1 => {
                    writer.add_f16_with(source.doc_id(a), rows.as_slice(), extras)?;
                }
                // Otherwise as f32: dequantised int8 rows, or rows decoded from PLAID.
                _ => {
                    let doc = source.vectors_f32(a);
                    if args.pool_factor > 1 {
                        let f = args.pool_factor as usize;
                        let pooled = pool_hierarchical(doc.as_slice(), doc.dim(), f, 1);
                        writer.add_with(source.doc_id(a), &pooled, extras)?;
                    } else {
                        writer.add_with(source.doc_id(a), doc.as_slice(), extras)?;
                    }
                }
            }
        }
    }
    let mut cfg = src.config.clone();
    if let Some(obj) = cfg.as_object_mut() {
        obj.insert(
            "rebuilt_from".into(),
            serde_json::json!({
                "source": args.source.canonicalize().unwrap_or(args.source.clone()),
                "source_vectors": src.num_vectors,
                "pool_factor": args.pool_factor,
                "plaid": config.plaid,
                "muvera": config.muvera,
                "splade": config.splade.is_some(),
                "bm25": config.bm25,
            }),
        );
    }
    let manifest = writer.commit(cfg)?;
    let seg = manifest.segments.first();
    let report = serde_json::json!({
        "num_docs": manifest.num_docs,
        "num_vectors": manifest.num_vectors,
        "source_vectors": src.num_vectors,
        "index_bytes": manifest.index_bytes(),
        "bytes_per_vector": manifest.index_bytes() as f64 / manifest.num_vectors.max(1) as f64,
        "components": manifest.components,
        "build_seconds": started.elapsed().as_secs_f64(),
        "plaid": manifest.codec.as_ref().map(|c| &c.build),
        "muvera": seg.and_then(|s| s.muvera.as_ref()).map(|m| &m.build),
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialises")
        );
    } else {
        eprintln!(
            "rebuilt {} documents ({} vectors from {}) into {} in {:.1} s; {:.1} MB",
            manifest.num_docs,
            manifest.num_vectors,
            src.num_vectors,
            args.out.display(),
            started.elapsed().as_secs_f64(),
            manifest.index_bytes() as f64 / 1e6
        );
    }
    Ok(())
}
