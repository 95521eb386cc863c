//! Our candle encoder against independent reference vectors (numpy float64 BERT,
//! `scripts/reference_vectors.py`) for all-MiniLM-L6-v2: same token ids, and every
//! token vector's cosine ≥ 0.9999. Needs the real model: `scripts/fetch-models.sh`
//! (the test command runs it first).

use std::path::{Path, PathBuf};

use tessera::encoder::{ColbertEncoder, DTypeSpec, DeviceSpec, Encoder, LoadOptions, Role};

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

/// The half-precision path (what `--dtype auto` picks on CUDA) keeps every token within
/// cosine 0.999 of the numpy float64 reference. Run here on the CPU's f16/bf16 kernels;
/// the GPU's own kernels are checked by scripts/gpu-check.sh on a GPU machine.
#[test]
fn half_precision_keeps_per_token_parity() {
    let reference = load_reference(&repo().join("tests/fixtures"));
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    for dtype in [DTypeSpec::F16, DTypeSpec::Bf16] {
        let options = LoadOptions {
            batch_size: Some(5),
            doc_max_len: Some(512),
            dtype,
            ..Default::default()
        };
        let encoder = ColbertEncoder::load(&model_dir(), &options, DeviceSpec::Cpu).unwrap();
        let encoded = encoder.encode(&texts, Role::Document).unwrap();
        let mut offset = 0;
        let mut worst = 1.0f32;
        for mv in &encoded {
            for row in mv.view().rows() {
                let want = &reference.vectors[offset * reference.dim..(offset + 1) * reference.dim];
                let c = cosine(row, want);
                // A NaN (candle's own BertModel gives all-NaN vectors in f16) must fail.
                assert!(c.is_finite(), "{dtype:?}: token {offset} is not finite");
                worst = worst.min(c);
                offset += 1;
            }
        }
        assert_eq!(offset * reference.dim, reference.vectors.len());
        eprintln!("{dtype:?}: worst per-token cosine against numpy: {worst:.6}");
        assert!(worst >= 0.999, "{dtype:?}: worst per-token cosine {worst}");
    }
}

/// The ColBERT/PyLate path on a tiny random checkpoint: markers from
/// `config_sentence_transformers.json`, `[MASK]` query expansion that is not attended,
/// the `1_Dense` projection, the punctuation skiplist, and the lengths, all against
/// numpy reference vectors (scripts/make_tiny_models.py).
#[test]
fn pylate_checkpoint_matches_numpy_reference() {
    let fixtures = repo().join("tests/fixtures");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("tiny_colbert_parity.json")).unwrap(),
    )
    .unwrap();
    let bytes = std::fs::read(fixtures.join("tiny_colbert_parity.f32")).unwrap();
    let want: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let dim = meta["dim"].as_u64().unwrap() as usize;

    let encoder = ColbertEncoder::load(
        &fixtures.join("tiny-colbert"),
        &LoadOptions {
            batch_size: Some(3),
            ..Default::default()
        },
        DeviceSpec::Cpu,
    )
    .unwrap();
    let s = encoder.settings();
    assert_eq!(s.dim, dim);
    assert_eq!(s.projection.as_deref(), Some("pylate-dense"));
    assert_eq!(s.query_marker.as_deref(), Some("[unused0]"));
    assert_eq!(s.doc_marker.as_deref(), Some("[unused1]"));
    assert_eq!((s.query_max_len, s.doc_max_len), (12, 24));
    assert!(s.query_augmentation && !s.attend_to_mask_tokens && s.skip_punctuation);

    let mut offset = 0;
    for role in [Role::Query, Role::Document] {
        let role_name = if role == Role::Query {
            "query"
        } else {
            "document"
        };
        let items: Vec<&serde_json::Value> = meta["texts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["role"] == role_name)
            .collect();
        let texts: Vec<&str> = items.iter().map(|t| t["text"].as_str().unwrap()).collect();
        let tokenized = encoder.tokenize(&texts, role).unwrap();
        let encoded = encoder.encode_tokenized(&tokenized).unwrap().vectors;
        for ((item, tok), mv) in items.iter().zip(&tokenized).zip(&encoded) {
            let ids: Vec<u32> = item["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(
                tok.ids, ids,
                "{role_name} {:?}: framing differs",
                item["text"]
            );
            assert_eq!(mv.len() as u64, item["kept"].as_u64().unwrap());
            for row in mv.view().rows() {
                let c = cosine(row, &want[offset * dim..(offset + 1) * dim]);
                assert!(c >= 0.9999, "{role_name} {:?}: cosine {c}", item["text"]);
                offset += 1;
            }
        }
    }
    assert_eq!(offset * dim, want.len());
}

#[test]
fn checkpoint_padding_and_truncation_are_turned_off() {
    // tiny-bert's tokenizer.json pads and truncates to 16, as MiniLM's does to 128.
    let dir = repo().join("tests/fixtures/tiny-bert");
    let encoder = ColbertEncoder::load(&dir, &LoadOptions::default(), DeviceSpec::Cpu).unwrap();
    let long = "vitamin d deficiency is associated with higher mortality in older adults and \
                mosquito nets reduce malaria transmission in children under five";
    let short = "coffee";
    let out = encoder.encode(&[long, short], Role::Document).unwrap();
    let n_long = encoder.tokenize(&[long], Role::Document).unwrap()[0]
        .ids
        .len();
    assert!(n_long > 16);
    assert_eq!(out[0].len(), n_long, "no truncation at the tokenizer's 16");
    assert_eq!(out[1].len(), 3, "[CLS] coffee [SEP]: no padding vectors");
    for row in out[0].view().rows() {
        let norm: f32 = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}
