//! The candle SPLADE encoder against independent reference weights (numpy float64 BERT +
//! MLM head, `scripts/splade_reference.py`) for SPLADE-tiny: same token ids, same set of
//! clearly non-zero terms, every weight within 1e-4 of the reference. Needs the real
//! model: `scripts/fetch-models.sh` (the test command runs it first).

use std::collections::HashMap;
use std::path::PathBuf;

use tessera::encoder::{
    ColbertEncoder, DeviceSpec, LoadOptions, Role, SpladeEncoder, SpladeOptions,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model(name: &str) -> PathBuf {
    let dir = repo().join("models").join(name);
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run scripts/fetch-models.sh (scripts/test.sh does)",
        dir.display()
    );
    dir
}

struct RefText {
    text: String,
    ids: Vec<u32>,
    weights: HashMap<u32, f64>,
}

fn reference() -> Vec<RefText> {
    let path = repo().join("tests/fixtures/splade_parity.json");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    meta["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let nums = |key: &str| t[key].as_array().unwrap().clone();
            RefText {
                text: t["text"].as_str().unwrap().to_string(),
                ids: nums("ids")
                    .iter()
                    .map(|i| i.as_u64().unwrap() as u32)
                    .collect(),
                weights: nums("terms")
                    .iter()
                    .zip(nums("weights"))
                    .map(|(t, w)| (t.as_u64().unwrap() as u32, w.as_f64().unwrap()))
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn splade_tiny_weights_match_numpy_reference() {
    let encoder = SpladeEncoder::load(
        &model("splade-tiny"),
        &SpladeOptions::default(),
        DeviceSpec::Cpu,
    )
    .unwrap();
    let refs = reference();
    assert_eq!(refs.len(), 12);
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let tokenized = encoder.tokenize(&texts, Role::Document).unwrap();
    // All texts in one call: batched with padding, so masking is exercised too.
    let ours = encoder.encode(&texts, Role::Document).unwrap();
    let mut worst = 0.0f64;
    for ((r, tok), v) in refs.iter().zip(&tokenized).zip(&ours) {
        assert_eq!(tok.ids, r.ids, "token ids of {:?}", r.text);
        let got: HashMap<u32, f64> = v.iter().map(|(t, w)| (t, f64::from(w))).collect();
        for (t, &want) in &r.weights {
            let have = got.get(t).copied().unwrap_or(0.0);
            worst = worst.max((have - want).abs());
            assert!(
                (have - want).abs() < 1e-4,
                "{:?}: term {t} weight {have} vs reference {want}",
                r.text
            );
        }
        for (t, &have) in &got {
            // A term the reference has at exactly zero may come out as float noise.
            if !r.weights.contains_key(t) {
                assert!(
                    have < 1e-4,
                    "{:?}: extra term {t} with weight {have}",
                    r.text
                );
            }
        }
        assert!(!r.weights.is_empty());
    }
    eprintln!("worst absolute weight difference: {worst:.2e}");
}

#[test]
fn splade_reuses_colbert_tokenisation_when_tokenizers_match() {
    let splade = SpladeEncoder::load(
        &model("splade-tiny"),
        &SpladeOptions::default(),
        DeviceSpec::Cpu,
    )
    .unwrap();
    let colbert = ColbertEncoder::load(
        &model("all-MiniLM-L6-v2"),
        &LoadOptions::default(),
        DeviceSpec::Cpu,
    )
    .unwrap();
    assert_eq!(
        splade.tokenizer_fingerprint(),
        colbert.tokenizer_fingerprint()
    );
    let texts: Vec<String> = reference().into_iter().map(|r| r.text).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let own = splade.tokenize(&texts, Role::Document).unwrap();
    let shared = colbert.tokenize(&texts, Role::Document).unwrap();
    for ((o, c), text) in own.iter().zip(&shared).zip(&texts) {
        assert_eq!(&splade.reframe(c, Role::Document), o, "{text:?}");
    }
}

#[test]
fn splade_threshold_and_term_cap_keep_the_heaviest_terms() {
    let text = ["Vitamin D deficiency was associated with increased mortality."];
    let dir = model("splade-tiny");
    let all = SpladeEncoder::load(&dir, &SpladeOptions::default(), DeviceSpec::Cpu)
        .unwrap()
        .encode(&text, Role::Document)
        .unwrap()
        .remove(0);
    let capped = SpladeEncoder::load(
        &dir,
        &SpladeOptions {
            doc_max_terms: Some(5),
            threshold: Some(0.5),
            ..SpladeOptions::default()
        },
        DeviceSpec::Cpu,
    )
    .unwrap()
    .encode(&text, Role::Document)
    .unwrap()
    .remove(0);
    let mut heaviest: Vec<(u32, f32)> = all.iter().filter(|&(_, w)| w > 0.5).collect();
    heaviest.sort_by(|a, b| b.1.total_cmp(&a.1));
    heaviest.truncate(5);
    heaviest.sort_by_key(|p| p.0);
    assert!(all.len() > 5);
    assert_eq!(capped.iter().collect::<Vec<_>>(), heaviest);
}

/// The fused pooling (one pass over each text's attended logits, `log(1 + relu(.))` of
/// the max) gives the same weights, bit for bit, as candle's tensor ops over the whole
/// padded batch, with texts of very different lengths batched together.
#[test]
fn fused_pooling_equals_candle_ops() {
    let dir = model("splade-tiny");
    let options = SpladeOptions {
        batch_size: Some(5),
        ..SpladeOptions::default()
    };
    let fused = SpladeEncoder::load(&dir, &options, DeviceSpec::Cpu).unwrap();
    let ops = SpladeEncoder::load(&dir, &options, DeviceSpec::Cpu)
        .unwrap()
        .with_pooling(tessera::encoder::SpladePooling::CandleOps);
    let mut texts: Vec<String> = reference().into_iter().map(|r| r.text).collect();
    let long = texts.join(" ");
    texts.push(long.clone());
    texts.push(format!("{long} {long}"));
    texts.push("a".into());
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let items = fused.tokenize(&texts, Role::Document).unwrap();
    let refs: Vec<&_> = items.iter().collect();
    let a = fused.term_weights(&refs).unwrap();
    let b = ops.term_weights(&refs).unwrap();
    assert_eq!(a.len(), texts.len());
    let mut nonzero = 0;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x.len(), y.len());
        for (t, (p, q)) in x.iter().zip(y).enumerate() {
            assert_eq!(p.to_bits(), q.to_bits(), "text {i} term {t}: {p} vs {q}");
            nonzero += usize::from(*p > 0.0);
        }
    }
    assert!(nonzero > 100, "the weights are not all zero: {nonzero}");
}
