use std::time::Instant;

use half::slice::HalfFloatSliceExt;
use tessera_index::pooling::pool_hierarchical;
use tessera_index::{DocExtras, Index, IndexWriter, WriteOptions};

use crate::cli::index::{index_config, splade_encoder};
use crate::cli::RebuildArgs;
use crate::encoder::Role;
use crate::{Error, Result};

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
    let store = source.store();
    if let Some(c) = args
        .components
        .iter()
        .find(|c| *c == "splade" || *c == "bm25")
    {
        if !store.has_texts() {
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
        store.has_texts(),
    )?;
    let started = Instant::now();
    let src = source.manifest();
    let options = WriteOptions { force: args.force };
    let mut writer =
        IndexWriter::create_with_options(&args.out, src.model.clone(), config.clone(), options)?;
    let mut buf = Vec::new();
    let mut sparse = Vec::new();
    for d in 0..store.num_docs() {
        // SPLADE vectors for the next window of stored texts.
        if let (Some(s), 0) = (&splade, d % 512) {
            let end = (d + 512).min(store.num_docs());
            let texts: Vec<&str> = (d..end).map(|i| store.text(i).unwrap_or("")).collect();
            sparse = s.encode(&texts, Role::Document)?;
        }
        let doc = store.doc(d);
        let extras = DocExtras {
            text: store.text(d),
            sparse: splade.as_ref().map(|_| &sparse[d % 512]),
        };
        if args.pool_factor > 1 {
            buf.resize(doc.as_slice().len(), 0.0);
            doc.as_slice().convert_to_f32_slice(&mut buf);
            writer.add_with(
                store.doc_id(d),
                &pool_hierarchical(&buf, doc.dim(), args.pool_factor as usize, 1),
                extras,
            )?;
        } else {
            writer.add_f16_with(store.doc_id(d), doc.as_slice(), extras)?;
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
    let report = serde_json::json!({
        "num_docs": manifest.num_docs,
        "num_vectors": manifest.num_vectors,
        "source_vectors": src.num_vectors,
        "index_bytes": manifest.index_bytes(),
        "bytes_per_vector": manifest.index_bytes() as f64 / manifest.num_vectors as f64,
        "components": manifest.components.names(),
        "build_seconds": started.elapsed().as_secs_f64(),
        "plaid": manifest.components.plaid.as_ref().map(|p| &p.build),
        "muvera": manifest.components.muvera.as_ref().map(|m| &m.build),
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
