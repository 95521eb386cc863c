//! The token store on disk: round trip, atomic commit, and typed errors for every kind
//! of damage (never a panic).

use std::path::Path;

use half::f16;
use tessera_index::segment::Manifest;
use tessera_index::{Index, IndexError, IndexWriter, ModelInfo};

const DIM: usize = 8;

fn model() -> ModelInfo {
    ModelInfo {
        name: "toy".into(),
        dim: DIM,
        weights_sha256: "abc".into(),
        encoder: serde_json::json!({"anything": 1}),
    }
}

fn doc(seed: usize, n: usize) -> Vec<f32> {
    (0..n * DIM)
        .map(|i| ((seed * 31 + i * 7) % 17) as f32 / 17.0 - 0.5)
        .collect()
}

fn build(dir: &Path, docs: &[(&str, usize)]) -> Manifest {
    let mut w = IndexWriter::create(dir, model()).unwrap();
    for (i, (id, n)) in docs.iter().enumerate() {
        w.add(id, &doc(i, *n)).unwrap();
    }
    w.commit(serde_json::json!({"note": "test"})).unwrap()
}

#[test]
fn round_trip_keeps_vectors_ids_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let docs = [("a", 3), ("β-ünicode", 1), ("c", 5)];
    let m = build(dir.path(), &docs);
    assert_eq!((m.num_docs, m.num_vectors, m.dim), (3, 9, DIM));
    let index = Index::open(dir.path()).unwrap();
    let store = index.segment(0).store();
    for (i, (id, n)) in docs.iter().enumerate() {
        assert_eq!(store.doc_id(i), *id);
        assert_eq!(store.doc_len(i), *n);
        let want: Vec<f16> = doc(i, *n).iter().map(|&v| f16::from_f32(v)).collect();
        assert_eq!(store.doc(i).as_slice(), &want[..]);
    }
    assert_eq!(index.manifest().model, model());
}

#[test]
fn writer_rejects_bad_documents() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = IndexWriter::create(dir.path(), model()).unwrap();
    assert!(matches!(
        w.add("empty", &[]),
        Err(IndexError::InvalidArgument(_))
    ));
    assert!(matches!(
        w.add("ragged", &[0.0; DIM + 1]),
        Err(IndexError::InvalidArgument(_))
    ));
    w.add("x", &doc(0, 1)).unwrap();
    let err = w.add("x", &doc(1, 1)).unwrap_err();
    assert!(matches!(err, IndexError::DocumentExists { .. }), "{err}");
}

#[test]
fn vectors_that_f16_cannot_hold_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = IndexWriter::create(dir.path(), model()).unwrap();
    for bad in [f32::NAN, f32::INFINITY, 3e38, -70_000.0] {
        let mut v = doc(0, 1);
        v[3] = bad;
        assert!(
            matches!(w.add("x", &v), Err(IndexError::InvalidArgument(_))),
            "{bad} accepted"
        );
    }
    w.add("fine", &doc(0, 1)).unwrap();
    assert_eq!(w.num_docs(), 1);
}

#[test]
fn missing_manifest_is_not_an_index() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Index::open(dir.path()),
        Err(IndexError::NotAnIndex { .. })
    ));
}

/// Damage one file and check the error is typed and names the file.
fn assert_damage_detected(damage: impl Fn(&Path, &Manifest), expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let m = build(dir.path(), &[("a", 3), ("b", 2), ("c", 4)]);
    damage(dir.path(), &m);
    let err = match Index::open(dir.path()) {
        Ok(_) => panic!("damage ({expect}) went unnoticed"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(text.contains(expect), "expected {expect:?} in: {text}");
    match err {
        IndexError::Corrupt { .. }
        | IndexError::ChecksumMismatch { .. }
        | IndexError::UnsupportedVersion { .. }
        | IndexError::Manifest { .. }
        | IndexError::Io { .. } => {}
        other => panic!("unexpected error kind: {other:?}"),
    }
}

fn rewrite(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn truncated_vectors_file_is_a_typed_error_naming_it() {
    assert_damage_detected(
        |dir, m| {
            let p = dir.join(&m.segments[0].store.vectors.as_ref().unwrap().name);
            rewrite(&p, |b| b.truncate(b.len() - 5));
        },
        "s1.vectors.f16",
    );
}

#[test]
fn flipped_vector_byte_fails_the_checksum() {
    assert_damage_detected(
        |dir, m| {
            let p = dir.join(&m.segments[0].store.vectors.as_ref().unwrap().name);
            rewrite(&p, |b| b[3] ^= 0x40);
        },
        "checksum mismatch",
    );
}

#[test]
fn flipped_footer_magic_is_detected() {
    assert_damage_detected(
        |dir, m| {
            let p = dir.join(&m.segments[0].store.offsets.name);
            rewrite(&p, |b| {
                let n = b.len();
                b[n - 32] = b'X';
            });
        },
        "magic",
    );
}

#[test]
fn future_format_version_is_refused() {
    assert_damage_detected(
        |dir, m| {
            let p = dir.join(&m.segments[0].store.doc_ids.name);
            rewrite(&p, |b| {
                let n = b.len();
                b[n - 28..n - 24].copy_from_slice(&99u32.to_le_bytes());
            });
        },
        "format version 99",
    );
}

#[test]
fn file_of_another_component_is_refused() {
    assert_damage_detected(
        |dir, m| {
            let s = &m.segments[0].store;
            std::fs::copy(dir.join(&s.offsets.name), dir.join(&s.doc_ids.name)).unwrap();
        },
        "s1.doc_ids.bin",
    );
}

#[test]
fn empty_file_is_a_typed_error() {
    assert_damage_detected(
        |dir, m| std::fs::write(dir.join(&m.segments[0].store.offsets.name), b"").unwrap(),
        "s1.offsets.u64",
    );
}

#[test]
fn garbage_manifest_is_a_typed_error() {
    assert_damage_detected(
        |dir, _| {
            std::fs::write(
                dir.join("manifest.json"),
                b"{\"format_version\": 1, \"oops\"",
            )
            .unwrap()
        },
        "manifest",
    );
}

#[test]
fn manifest_disagreeing_with_files_is_detected() {
    assert_damage_detected(
        |dir, m| {
            let mut m = m.clone();
            m.num_vectors += 1;
            m.segments[0].num_vectors += 1;
            m.commit(dir).unwrap();
        },
        "expected 10 vectors",
    );
}

#[test]
fn random_corruption_never_panics() {
    // Any single-byte change anywhere in any file: open returns Ok only if the bytes
    // are unchanged in effect; otherwise a typed error. Never a panic.
    let dir = tempfile::tempdir().unwrap();
    let m = build(dir.path(), &[("a", 3), ("b", 2)]);
    for name in m.file_names() {
        let path = dir.path().join(name);
        let original = std::fs::read(&path).unwrap();
        for pos in (0..original.len()).step_by(3) {
            let mut b = original.clone();
            b[pos] = b[pos].wrapping_add(1);
            std::fs::write(&path, &b).unwrap();
            assert!(
                Index::open(dir.path()).is_err(),
                "{name}: change at byte {pos} went unnoticed"
            );
        }
        std::fs::write(&path, &original).unwrap();
    }
    Index::open(dir.path()).unwrap();
}

#[test]
fn interrupted_rewrite_leaves_the_committed_index_readable() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), &[("old-1", 2), ("old-2", 2)]);
    {
        // A second build that never commits (the process dies before commit).
        let mut w = IndexWriter::create(dir.path(), model()).unwrap();
        w.add("new-1", &doc(9, 4)).unwrap();
        drop(w);
    }
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.segment(0).store().doc_id(0), "old-1");
    assert_eq!(index.manifest().generation, 1);
    drop(index); // an open reader keeps its files from collection

    // A later build that commits replaces it and removes the old generation's files.
    let m = build(dir.path(), &[("new-1", 1)]);
    assert_eq!(m.generation, 2);
    let index = Index::open(dir.path()).unwrap();
    assert_eq!(index.segment(0).store().doc_id(0), "new-1");
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("s1."))
        .collect();
    assert!(
        leftovers.is_empty(),
        "old generation files left: {leftovers:?}"
    );
}

#[test]
fn stored_texts_round_trip_and_damage_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let config = tessera_index::IndexConfig {
        store_text: true,
        ..Default::default()
    };
    let texts = ["first text", "", "ünïcödé — 東京", "last"];
    let mut w = IndexWriter::create_with(dir.path(), model(), config).unwrap();
    // A document without text is refused when texts are kept.
    assert!(w.add("no-text", &doc(0, 1)).is_err());
    for (i, t) in texts.iter().enumerate() {
        let extras = tessera_index::DocExtras {
            fields: None,
            text: Some(t),
            sparse: None,
        };
        w.add_with(&format!("d{i}"), &doc(i, 2), extras).unwrap();
    }
    w.commit(serde_json::json!({})).unwrap();
    let index = Index::open(dir.path()).unwrap();
    assert!(index.segment(0).store().has_texts());
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(index.segment(0).store().text(i), Some(*t));
    }
    assert_eq!(index.segment(0).store().text(texts.len()), None);
    drop(index);
    let path = dir.path().join("s1.texts");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let err = Index::open(dir.path()).err().expect("damage detected");
    assert!(matches!(err, IndexError::ChecksumMismatch { .. }), "{err}");
    assert!(err.to_string().contains("s1.texts"), "{err}");
}
