//! Our candle encoder against independent reference vectors (numpy float64 BERT,
//! `scripts/reference_vectors.py`) for all-MiniLM-L6-v2: same token ids, and every
//! token vector's cosine ≥ 0.9999. Needs the real model: `scripts/fetch-models.sh`
//! (the test command runs it first).

use std::path::{Path, PathBuf};

use tessera::encoder::{ColbertEncoder, DeviceSpec, LoadOptions, Role};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_dir() -> PathBuf {
    let dir = repo().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run scripts/fetch-models.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

struct Reference {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    vectors: Vec<f32>,
    dim: usize,
}

fn load_reference(fixtures: &Path) -> Reference {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("minilm_parity.json")).unwrap(),
    )
    .unwrap();
    let bytes = std::fs::read(fixtures.join("minilm_parity.f32")).unwrap();
    let vectors = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let texts = meta["texts"].as_array().unwrap();
    Reference {
        texts: texts
            .iter()
            .map(|t| t["text"].as_str().unwrap().to_string())
            .collect(),
        ids: texts
            .iter()
            .map(|t| {
                t["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_u64().unwrap() as u32)
                    .collect()
            })
            .collect(),
        vectors,
        dim: meta["dim"].as_u64().unwrap() as usize,
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_token_vectors_match_numpy_reference() {
    let reference = load_reference(&repo().join("tests/fixtures"));
    assert!(reference.texts.len() >= 10);
    // Batch size 5 puts texts of different lengths in one padded batch, so this also
    // checks that padding does not leak into real tokens.
    let options = LoadOptions {
        batch_size: Some(5),
        doc_max_len: Some(512),
        ..Default::default()
    };
    let encoder = ColbertEncoder::load(&model_dir(), &options, DeviceSpec::Cpu).unwrap();
    assert_eq!(encoder.settings().dim, reference.dim);
    assert!(
        encoder.settings().query_marker.is_none(),
        "plain ST model must have no markers"
    );
    assert!(!encoder.settings().query_augmentation);

    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let tokenized = encoder.tokenize(&texts, Role::Document).unwrap();
    for (t, ids) in tokenized.iter().zip(&reference.ids) {
        assert_eq!(&t.ids, ids, "token ids differ from the Python tokenizer");
    }
    let encoded = encoder.encode_tokenized(&tokenized).unwrap().vectors;

    let mut offset = 0;
    let mut worst = 1.0f32;
    for (i, mv) in encoded.iter().enumerate() {
        assert_eq!(
            mv.len(),
            reference.ids[i].len(),
            "text {i}: one vector per token"
        );
        for row in mv.view().rows() {
            let want = &reference.vectors[offset * reference.dim..(offset + 1) * reference.dim];
            let c = cosine(row, want);
            worst = worst.min(c);
            assert!(c >= 0.9999, "text {i} token at {offset}: cosine {c}");
            offset += 1;
        }
    }
    assert_eq!(offset * reference.dim, reference.vectors.len());
    eprintln!("worst per-token cosine against numpy: {worst:.7}");
}
