//! What a writer may and may not do to an index directory: one writer at a time (an OS
//! lock, never stale), an unreadable index is refused rather than wiped, the manifest is
//! checksummed and confined to its directory, a failed write leaves nothing behind.

use std::path::Path;
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tessera_index::muvera::{FdeConfig, GraphConfig};
use tessera_index::segment::Manifest;
use tessera_index::{
    DocExtras, Index, IndexConfig, IndexError, IndexWriter, ModelInfo, MuveraConfig, PlaidConfig,
    SparseConfig, SparseVector, WriteOptions,
};

const DIM: usize = 8;

fn model() -> ModelInfo {
    ModelInfo {
        name: "toy".into(),
        dim: DIM,
        weights_sha256: "abc".into(),
        encoder: serde_json::json!({"settings": {"query_max_len": 32}}),
    }
}

fn unit_rows(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let row: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.extend(row.iter().map(|x| x / norm));
    }
    v
}

/// Every component, so the manifest holds a quantiser, MUVERA's seed and SPLADE's scale.
fn full_config() -> IndexConfig {
    IndexConfig {
        fields: Default::default(),
        store: Default::default(),
        plaid: Some(PlaidConfig {
            num_centroids: Some(8),
            ..PlaidConfig::default()
        }),
        muvera: Some(MuveraConfig {
            fde: FdeConfig {
                k_sim: 2,
                d_proj: 4,
                r_reps: 2,
                ..FdeConfig::default()
            },
            graph: GraphConfig::default(),
        }),
        splade: Some(SparseConfig {
            vocab_size: 50,
            model: serde_json::Value::Null,
        }),
        bm25: true,
        store_text: true,
    }
}

fn build(dir: &Path, tag: &str, n: usize) -> Manifest {
    let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
    let mut w = IndexWriter::create_with(dir, model(), full_config()).unwrap();
    for i in 0..n {
        let sparse = SparseVector::from_pairs(vec![(i as u32 % 50, 1.5), (7, 0.25)]);
        let text = format!("{tag} document number {i}");
        let extras = DocExtras {
            fields: None,
            text: Some(&text),
            sparse: Some(&sparse),
        };
        w.add_with(&format!("{tag}-{i}"), &unit_rows(&mut rng, 3), extras)
            .unwrap();
    }
    w.commit(serde_json::json!({"tag": tag})).unwrap()
}

/// Every entry of `dir` with its bytes (directories flattened), to compare states.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let name = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((name, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn without_lock(mut s: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    s.retain(|(n, _)| n != "writer.lock");
    s
}

#[test]
fn a_second_writer_is_refused_and_told_the_first_ones_pid() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), "old", 5);
    let before = without_lock(snapshot(dir.path()));
    let first = IndexWriter::create(dir.path(), model()).unwrap();
    let err = IndexWriter::create(dir.path(), model())
        .err()
        .expect("a second writer must be refused");
    match &err {
        IndexError::Locked { holder, .. } => assert_eq!(*holder, Some(std::process::id())),
        other => panic!("expected Locked, got {other}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("process {}", std::process::id())),
        "{err}"
    );
    drop(first);
    // The refused writer touched nothing; the first one's uncommitted files are gone.
    assert_eq!(without_lock(snapshot(dir.path())), before);
    // Once the first writer is gone, the next one may write.
    build(dir.path(), "new", 2);
    assert_eq!(
        Index::open(dir.path())
            .unwrap()
            .segment(0)
            .store()
            .doc_id(0),
        "new-0"
    );
}

#[test]
fn a_killed_writer_leaves_no_stale_lock() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), "old", 3);
    // Another process takes the same lock (flock(2), as util-linux flock(1) does) and is
    // then killed with SIGKILL, as a crashed writer would be.
    // `-o`: flock itself holds the lock, its child does not inherit it.
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(dir.path().join("writer.lock"))
        .args(["sleep", "60"])
        .stdout(Stdio::null())
        .spawn()
        .expect("util-linux flock(1) is on every Debian system");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match IndexWriter::create(dir.path(), model()) {
            Err(IndexError::Locked { .. }) => break,
            Ok(w) if std::time::Instant::now() < deadline => {
                drop(w);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Ok(_) => panic!("the other process never took the lock"),
            Err(e) => panic!("{e}"),
        }
    }
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The lock dies with its holder. A fork elsewhere in this test binary (another test
    // spawning a process) can hold a copy of a lock descriptor for the instant before its
    // exec closes it, so allow a moment; a stale lock would outlast it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Err(IndexError::Locked { .. }) = IndexWriter::create(dir.path(), model()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock outlived its killed holder by 5 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    build(dir.path(), "after", 2);
    assert_eq!(
        Index::open(dir.path())
            .unwrap()
            .segment(0)
            .store()
            .doc_id(0),
        "after-0"
    );
}

#[test]
fn commit_leaves_files_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), "old", 3);
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    std::fs::write(dir.path().join("gallery.json"), b"mine too").unwrap();
    build(dir.path(), "new", 3);
    assert_eq!(
        std::fs::read(dir.path().join("notes.txt")).unwrap(),
        b"mine"
    );
    assert_eq!(
        std::fs::read(dir.path().join("gallery.json")).unwrap(),
        b"mine too"
    );
    // The replaced generation's files are gone, the new one's are all there.
    let names: Vec<String> = snapshot(dir.path()).into_iter().map(|(n, _)| n).collect();
    let old = |n: &String| n.starts_with("s1.") || n.starts_with("c2.");
    assert!(!names.iter().any(old), "{names:?}");
    Index::open(dir.path()).unwrap();
}

#[test]
fn a_damaged_or_newer_index_is_refused_not_wiped() {
    type Damage = (&'static str, fn(&Path));
    let damages: [Damage; 3] = [
        ("garbage", |d| {
            std::fs::write(d.join("manifest.json"), b"{\"format_version\": 2, \"oo").unwrap()
        }),
        ("newer", |d| {
            let p = d.join("manifest.json");
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(
                &p,
                text.replace(
                    &format!(
                        "\"format_version\": {}",
                        tessera_index::segment::FORMAT_VERSION
                    ),
                    "\"format_version\": 99",
                ),
            )
            .unwrap();
        }),
        ("edited", |d| {
            let p = d.join("manifest.json");
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(&p, text.replacen("\"num_docs\": 4", "\"num_docs\": 3", 1)).unwrap();
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), "old", 4);
        damage(dir.path());
        let before = without_lock(snapshot(dir.path()));
        let err = IndexWriter::create_with(dir.path(), model(), full_config())
            .err()
            .unwrap_or_else(|| panic!("{what}: writer accepted an unreadable index"));
        assert!(
            matches!(err, IndexError::ExistingIndexUnreadable { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(
            without_lock(snapshot(dir.path())),
            before,
            "{what}: the refused writer changed the directory"
        );

        // Asked explicitly, the writer replaces it, and the old files go after the commit.
        let options = WriteOptions { force: true };
        let mut w =
            IndexWriter::create_with_options(dir.path(), model(), IndexConfig::default(), options)
                .unwrap();
        w.add("fresh", &[1.0; DIM]).unwrap();
        let m = w.commit(serde_json::json!({})).unwrap();
        assert!(
            m.generation >= 2,
            "{what}: reused generation {}",
            m.generation
        );
        let index = Index::open(dir.path()).unwrap();
        assert_eq!(index.segment(0).store().doc_id(0), "fresh");
        let names: Vec<String> = snapshot(dir.path()).into_iter().map(|(n, _)| n).collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("s1.") || n.starts_with("c2.")),
            "{what}: {names:?}"
        );
    }
}

#[test]
fn every_digit_of_the_manifest_is_guarded() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), "d", 6);
    let path = dir.path().join("manifest.json");
    let original = std::fs::read_to_string(&path).unwrap();
    for needle in ["\"weights\"", "\"seed\"", "\"scale\"", "query_max_len"] {
        assert!(original.contains(needle), "manifest lacks {needle}");
    }
    let digits: Vec<usize> = original
        .char_indices()
        .filter(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i)
        .collect();
    assert!(digits.len() > 200, "only {} digits", digits.len());
    for &i in &digits {
        let mut bytes = original.clone().into_bytes();
        bytes[i] = if bytes[i] == b'9' { b'1' } else { bytes[i] + 1 };
        std::fs::write(&path, &bytes).unwrap();
        let err = Index::open(dir.path())
            .err()
            .unwrap_or_else(|| panic!("digit at byte {i} changed and the index still opened"));
        assert!(err.to_string().contains("manifest.json"), "byte {i}: {err}");
    }
    std::fs::write(&path, &original).unwrap();
    Index::open(dir.path()).unwrap();
}

#[test]
fn a_manifest_may_name_only_files_inside_its_directory() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("idx");
    let m = build(&dir, "d", 3);
    let outside = root.path().join("secret.bin");
    std::fs::write(&outside, vec![7u8; 12_345]).unwrap();
    let escapes = [
        "../secret.bin".to_string(),
        outside.display().to_string(),
        "g1.bm25/../../secret.bin".to_string(),
        "".to_string(),
    ];
    for name in escapes {
        let mut bad = m.clone();
        bad.segments[0].store.vectors.as_mut().unwrap().name = name.clone();
        bad.commit(&dir).unwrap(); // sealed with a valid checksum: confinement must catch it
        let err = Index::open(&dir)
            .err()
            .unwrap_or_else(|| panic!("{name:?} accepted"));
        let text = err.to_string();
        assert!(
            matches!(err, IndexError::Manifest { .. }),
            "{name:?}: {text}"
        );
        assert!(text.contains("plain name"), "{name:?}: {text}");
        assert!(
            !text.contains("12345"),
            "{name:?}: the outside file's size leaked: {text}"
        );
    }
    m.commit(&dir).unwrap();
    Index::open(&dir).unwrap();
}

#[test]
fn a_failed_write_leaves_the_directory_as_it_found_it() {
    // A new directory: gone again.
    let root = tempfile::tempdir().unwrap();
    let fresh = root.path().join("new-index");
    let mut w = IndexWriter::create_with(&fresh, model(), full_config()).unwrap();
    let sparse = SparseVector::default();
    let extras = DocExtras {
        fields: None,
        text: Some("t"),
        sparse: Some(&sparse),
    };
    w.add_with("a", &[1.0; DIM], extras).unwrap();
    drop(w);
    assert!(!fresh.exists(), "the failed write left {fresh:?}");

    // An existing index: exactly the committed files remain.
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), "old", 3);
    let before = without_lock(snapshot(dir.path()));
    let mut w = IndexWriter::create_with(dir.path(), model(), full_config()).unwrap();
    w.add_with("a", &[1.0; DIM], extras).unwrap();
    drop(w);
    assert_eq!(without_lock(snapshot(dir.path())), before);
}

#[test]
fn files_a_killed_writer_left_are_removed_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), "old", 3);
    let before = without_lock(snapshot(dir.path()));
    // What a writer killed with SIGKILL leaves: files of the next generation, no manifest.
    std::fs::write(dir.path().join("s3.vectors.f16"), b"half written").unwrap();
    std::fs::create_dir(dir.path().join("s3.bm25")).unwrap();
    std::fs::write(dir.path().join("s3.bm25/meta.json"), b"{").unwrap();
    std::fs::write(dir.path().join("s1.g9.deletes"), b"?").unwrap();
    std::fs::write(dir.path().join("g2.vectors.f16"), b"from a format-2 writer").unwrap();
    assert_eq!(
        Index::open(dir.path())
            .unwrap()
            .segment(0)
            .store()
            .doc_id(0),
        "old-0"
    );
    let w = IndexWriter::create(dir.path(), model()).unwrap();
    drop(w);
    assert_eq!(without_lock(snapshot(dir.path())), before);
}
