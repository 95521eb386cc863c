//! Filtered search against brute force: random documents with random fields (a keyword
//! with 7 values, a year, a tag list, a float, a bool, a date) over several segments with
//! deletes; random filters. Filtered `exhaustive` equals "filter the brute-force model,
//! then exact MaxSim over what passed" (ranking and scores); every other mode returns
//! only allowed documents, and k of them whenever k pass; deleted documents never pass;
//! fields survive merges; a filter on an index without fields is an error.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use tessera_index::maxsim::maxsim_scalar;
use tessera_index::muvera::{FdeConfig, GraphConfig};
use tessera_index::store::MultiVectorRef;
use tessera_index::{
    DocExtras, FieldDef, FieldSchema, FieldValues, Filter, Index, IndexConfig, IndexWriter,
    MergePolicy, Mode, ModelInfo, MuveraConfig, PlaidConfig, Query, SearchParams, SparseConfig,
    SparseVector,
};

const DIM: usize = 8;
const VOCAB: u32 = 40;
const TENANTS: [&str; 7] = ["acme", "bolt", "cori", "dune", "echo", "fjord", "gale"];
const TAGS: [&str; 5] = ["a", "b", "c", "d", "e"];

fn model() -> ModelInfo {
    ModelInfo {
        name: "toy".into(),
        dim: DIM,
        weights_sha256: "-".into(),
        encoder: serde_json::Value::Null,
    }
}

fn schema() -> FieldSchema {
    FieldSchema(
        [
            "tenant:keyword",
            "year:int",
            "tags:keyword",
            "score:float",
            "reviewed:bool",
            "published:date",
        ]
        .iter()
        .map(|s| FieldDef::parse(s).unwrap())
        .collect(),
    )
}

fn config(fields: bool) -> IndexConfig {
    IndexConfig {
        store: Default::default(),
        plaid: Some(PlaidConfig {
            num_centroids: Some(16),
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
            vocab_size: VOCAB as usize,
            model: serde_json::Value::Null,
        }),
        bm25: true,
        store_text: true,
        fields: if fields {
            schema()
        } else {
            FieldSchema::default()
        },
    }
}

#[derive(Debug, Clone)]
struct Doc {
    vectors: Vec<f32>,
    text: String,
    sparse: SparseVector,
    fields: FieldValues,
}

fn random_fields(rng: &mut ChaCha8Rng) -> FieldValues {
    let mut f = serde_json::Map::new();
    if rng.gen_bool(0.9) {
        f.insert("tenant".into(), json!(TENANTS[rng.gen_range(0..7)]));
    }
    f.insert("year".into(), json!(rng.gen_range(2000..2025)));
    let tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.gen_bool(0.3)).collect();
    f.insert("tags".into(), json!(tags));
    f.insert("score".into(), json!(rng.gen_range(0.0f64..1.0)));
    f.insert("reviewed".into(), json!(rng.gen_bool(0.5)));
    if rng.gen_bool(0.8) {
        let day = rng.gen_range(0..3650i64);
        let t = time::OffsetDateTime::from_unix_timestamp(1_500_000_000 + day * 86_400).unwrap();
        let s = t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        f.insert("published".into(), json!(s));
    }
    f
}

fn random_doc(rng: &mut ChaCha8Rng) -> Doc {
    let n = rng.gen_range(1..6);
    let mut vectors = Vec::with_capacity(n * DIM);
    for _ in 0..n {
        let row: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        vectors.extend(row.iter().map(|x| half::f16::from_f32(x / norm).to_f32()));
    }
    let words: Vec<String> = (0..rng.gen_range(1..5))
        .map(|_| format!("w{}", rng.gen_range(0..12)))
        .collect();
    let terms: Vec<(u32, f32)> = (0..rng.gen_range(1..4))
        .map(|_| (rng.gen_range(0..VOCAB), rng.gen_range(0.1f32..3.0)))
        .collect();
    Doc {
        vectors,
        text: words.join(" "),
        sparse: SparseVector::from_pairs(terms),
        fields: random_fields(rng),
    }
}

fn extras(d: &Doc) -> DocExtras<'_> {
    DocExtras {
        text: Some(&d.text),
        sparse: Some(&d.sparse),
        fields: Some(&d.fields),
    }
}

/// The reference: does a document with `fields` (and `id`) pass `filter`? Written from
/// Qdrant's documented semantics on the JSON, not from the parsed [`Filter`].
fn passes(filter: &Value, id: &str, fields: &FieldValues) -> bool {
    let list = |key: &str| -> Vec<Value> {
        match filter.get(key) {
            None => vec![],
            Some(Value::Array(a)) => a.clone(),
            Some(v) => vec![v.clone()],
        }
    };
    let must = list("must").iter().all(|c| condition(c, id, fields));
    let should = list("should");
    let should = should.is_empty() || should.iter().any(|c| condition(c, id, fields));
    let must_not = !list("must_not").iter().any(|c| condition(c, id, fields));
    must && should && must_not
}

fn values(fields: &FieldValues, key: &str) -> Vec<Value> {
    match fields.get(key) {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
    }
}

fn condition(c: &Value, id: &str, fields: &FieldValues) -> bool {
    if c.get("must").is_some() || c.get("should").is_some() || c.get("must_not").is_some() {
        return passes(c, id, fields);
    }
    if let Some(e) = c.get("is_empty") {
        return values(fields, e["key"].as_str().unwrap()).is_empty();
    }
    if let Some(ids) = c.get("has_id") {
        return ids.as_array().unwrap().iter().any(|v| v == id);
    }
    let key = c["key"].as_str().unwrap();
    let vals = values(fields, key);
    if let Some(m) = c.get("match") {
        if let Some(v) = m.get("value") {
            return vals.contains(v);
        }
        if let Some(any) = m.get("any") {
            return vals.iter().any(|v| any.as_array().unwrap().contains(v));
        }
        let except = m["except"].as_array().unwrap();
        return !vals.iter().any(|v| except.contains(v));
    }
    let r = &c["range"];
    let num = |v: &Value| -> f64 {
        match v {
            Value::String(s) => tessera_index::fields::parse_date(s).unwrap() as f64,
            v => v.as_f64().unwrap(),
        }
    };
    vals.iter().any(|v| {
        let x = num(v);
        r.get("gt").is_none_or(|b| x > num(b))
            && r.get("gte").is_none_or(|b| x >= num(b))
            && r.get("lt").is_none_or(|b| x < num(b))
            && r.get("lte").is_none_or(|b| x <= num(b))
    })
}

fn date(day: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(1_500_000_000 + day * 86_400)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn leaf(rng: &mut ChaCha8Rng, ids: &[String]) -> Value {
    match rng.gen_range(0..9) {
        0 => json!({"key": "tenant", "match": {"value": TENANTS[rng.gen_range(0..7)]}}),
        1 => {
            let any: Vec<&str> = TENANTS.choose_multiple(rng, 2).copied().collect();
            json!({"key": "tenant", "match": {"any": any}})
        }
        2 => json!({"key": "tags", "match": {"any": [TAGS[rng.gen_range(0..5)]]}}),
        3 => json!({"key": "tags", "match": {"except": [TAGS[rng.gen_range(0..5)]]}}),
        4 => {
            let lo = rng.gen_range(2000..2025);
            json!({"key": "year", "range": {"gte": lo, "lt": lo + rng.gen_range(1..8)}})
        }
        5 => json!({"key": "score", "range": {"lt": rng.gen_range(0.0..1.0)}}),
        6 => json!({"key": "reviewed", "match": {"value": rng.gen_bool(0.5)}}),
        7 => {
            let d = rng.gen_range(0..3650);
            json!({"key": "published", "range": {"gt": date(d), "lte": date(d + 900)}})
        }
        _ => match rng.gen_bool(0.5) {
            true => {
                let key = ["tenant", "published", "tags"][rng.gen_range(0..3)];
                json!({"is_empty": {"key": key}})
            }
            false => json!({"has_id": ids.choose_multiple(rng, 30).collect::<Vec<_>>()}),
        },
    }
}

fn random_filter(rng: &mut ChaCha8Rng, ids: &[String], depth: usize) -> Value {
    let mut f = serde_json::Map::new();
    for key in ["must", "should", "must_not"] {
        let n = match key {
            "must" => rng.gen_range(0..3),
            _ => rng.gen_range(0..2),
        };
        let items: Vec<Value> = (0..n)
            .map(|_| match depth < 1 && rng.gen_bool(0.15) {
                true => random_filter(rng, ids, depth + 1),
                false => leaf(rng, ids),
            })
            .collect();
        if !items.is_empty() {
            f.insert(key.into(), Value::Array(items));
        }
    }
    if f.is_empty() && depth > 0 {
        // A nested filter must say something.
        f.insert("must".into(), Value::Array(vec![leaf(rng, ids)]));
    }
    Value::Object(f)
}

/// Exact MaxSim over the documents that pass, best first, ties by id.
fn brute_force(
    docs: &BTreeMap<String, Doc>,
    filter: &Value,
    q: &[f32],
    k: usize,
) -> Vec<(String, f32)> {
    let mut all: Vec<(String, f32)> = docs
        .iter()
        .filter(|(id, d)| passes(filter, id, &d.fields))
        .map(|(id, d)| {
            let doc: Vec<half::f16> = d.vectors.iter().map(|&x| half::f16::from_f32(x)).collect();
            let s = maxsim_scalar(MultiVectorRef::new(q, DIM), MultiVectorRef::new(&doc, DIM));
            (id.clone(), s)
        })
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

/// An index of `n` documents in four segments, a tenth deleted and some upserted.
fn build(dir: &std::path::Path, rng: &mut ChaCha8Rng, n: usize) -> BTreeMap<String, Doc> {
    let mut w = IndexWriter::create_with(dir, model(), config(true)).unwrap();
    w.set_merge_policy(MergePolicy::never());
    let mut live = BTreeMap::new();
    for part in 0..4 {
        for i in part * n / 4..(part + 1) * n / 4 {
            let d = random_doc(rng);
            let id = format!("d{i:04}");
            w.add_with(&id, &d.vectors, extras(&d)).unwrap();
            live.insert(id, d);
        }
        w.commit(Value::Null).unwrap();
    }
    let ids: Vec<String> = live.keys().cloned().collect();
    let gone: Vec<&str> = ids.iter().step_by(10).map(String::as_str).collect();
    assert_eq!(w.delete(&gone).deleted, gone.len());
    for id in &gone {
        live.remove(*id);
    }
    let upserted: Vec<&String> = ids
        .iter()
        .skip(3)
        .step_by(17)
        .filter(|id| live.contains_key(*id))
        .collect();
    for id in upserted {
        let d = random_doc(rng);
        w.upsert_with(id, &d.vectors, extras(&d)).unwrap();
        live.insert(id.clone(), d);
    }
    w.commit(Value::Null).unwrap();
    live
}

fn query(rng: &mut ChaCha8Rng) -> (Vec<f32>, SparseVector, String) {
    let d = random_doc(rng);
    (d.vectors, d.sparse, d.text)
}

#[test]
fn filtered_search_equals_brute_force_and_fills_k_in_every_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let docs = build(tmp.path(), &mut rng, 400);
    let index = Index::open(tmp.path()).unwrap();
    assert_eq!(index.num_segments(), 5);
    let all_ids: Vec<String> = (0..400).map(|i| format!("d{i:04}")).collect();
    let schema = schema();
    let modes = [
        "plaid",
        "muvera",
        "splade",
        "bm25",
        "bm25+splade",
        "plaid+bm25",
        "rrf:bm25+plaid",
    ];
    let k = 10;
    let mut checked = 0;
    for round in 0..120 {
        let filter_json = random_filter(&mut rng, &all_ids, 0);
        let filter = Filter::parse(&filter_json, &schema, "filter").unwrap();
        let (qv, qs, qt) = query(&mut rng);
        let q = Query {
            vectors: Some(MultiVectorRef::new(&qv, DIM)),
            sparse: Some(&qs),
            text: Some(&qt),
            filter: Some(&filter),
        };
        let want = brute_force(&docs, &filter_json, &qv, k);
        let matching = docs
            .iter()
            .filter(|(id, d)| passes(&filter_json, id, &d.fields))
            .count();
        // Exhaustive: exactly brute force over what passes.
        let mode: Mode = "exhaustive".parse().unwrap();
        let got = index
            .search(&q, k, &mode, &SearchParams::default())
            .unwrap();
        let got: Vec<(String, f32)> = got
            .iter()
            .map(|h| (index.doc_id(h.addr).to_string(), h.score))
            .collect();
        // Same documents in the same order; scores as the scalar kernel's up to the SIMD
        // kernel's rounding.
        let ids = |v: &[(String, f32)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&got), ids(&want), "round {round}: filter {filter_json}");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g.1 - w.1).abs() <= 1e-4 * w.1.abs().max(1.0),
                "{} vs {}",
                g.1,
                w.1
            );
        }
        let (_, plan) = index
            .search_planned(&q, k, &mode, &SearchParams::default())
            .unwrap();
        assert_eq!(plan.allowed_docs, matching, "{filter_json}");
        // Every mode: only passing, live documents; k whenever k pass (the lexical modes:
        // whenever k passing documents share a term with the query, so only "at most").
        for m in modes {
            for exact_below in [0.0, 1.0] {
                let params = SearchParams {
                    filter_exact_below: Some(exact_below),
                    ..SearchParams::default()
                };
                let mode: Mode = m.parse().unwrap();
                let hits = index.search(&q, k, &mode, &params).unwrap();
                for h in &hits {
                    let id = index.doc_id(h.addr);
                    let d = docs
                        .get(id)
                        .unwrap_or_else(|| panic!("{m}: deleted {id} returned"));
                    assert!(index.is_live(h.addr), "{m}: a tombstoned copy of {id}");
                    assert!(
                        passes(&filter_json, id, &d.fields),
                        "{m}: {id} fails {filter_json}"
                    );
                }
                let vector_first = !matches!(m, "splade" | "bm25" | "bm25+splade");
                if vector_first {
                    assert_eq!(
                        hits.len(),
                        matching.min(k),
                        "{m} (exact below {exact_below}): {} results, {matching} documents pass {filter_json}",
                        hits.len()
                    );
                } else {
                    assert!(hits.len() <= matching.min(k));
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 1000);
}

#[test]
fn deleted_documents_never_pass_and_fields_survive_merges() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let docs = build(tmp.path(), &mut rng, 200);
    let schema = schema();
    // has_id of every id ever added: only live ones come back.
    let all: Vec<String> = (0..200).map(|i| format!("d{i:04}")).collect();
    let f = Filter::parse(&json!({"must": [{"has_id": all}]}), &schema, "filter").unwrap();
    let index = Index::open(tmp.path()).unwrap();
    let scope = index.scope(Some(&f)).unwrap();
    assert_eq!(scope.allowed, docs.len());
    let (qv, _, _) = query(&mut rng);
    let q = Query {
        vectors: Some(MultiVectorRef::new(&qv, DIM)),
        filter: Some(&f),
        ..Query::default()
    };
    let hits = index
        .search(
            &q,
            500,
            &"exhaustive".parse().unwrap(),
            &SearchParams::default(),
        )
        .unwrap();
    assert_eq!(hits.len(), docs.len());
    // Every document's fields as stored, before and after compacting into one segment.
    let stored = |index: &Index, id: &str| {
        let a = index.lookup(id).unwrap();
        index
            .segment(a.segment as usize)
            .fields()
            .unwrap()
            .values(a.doc)
            .unwrap()
    };
    let check_schema = schema.clone();
    for (id, d) in &docs {
        assert_eq!(
            stored(&index, id),
            check_schema.check(&d.fields).unwrap(),
            "{id}"
        );
    }
    drop(index);
    let mut w = IndexWriter::open(tmp.path()).unwrap();
    w.compact(false).unwrap();
    drop(w);
    let index = Index::open(tmp.path()).unwrap();
    assert_eq!(index.num_segments(), 1);
    for (id, d) in &docs {
        assert_eq!(
            stored(&index, id),
            check_schema.check(&d.fields).unwrap(),
            "{id}"
        );
    }
    let tenant = json!({"must": [{"key": "tenant", "match": {"value": "acme"}}]});
    let f = Filter::parse(&tenant, &schema, "filter").unwrap();
    let want = docs
        .iter()
        .filter(|(id, d)| passes(&tenant, id, &d.fields))
        .count();
    assert_eq!(index.scope(Some(&f)).unwrap().allowed, want);
}

#[test]
fn fields_are_checked_when_added_and_filters_need_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut w = IndexWriter::create_with(tmp.path(), model(), config(true)).unwrap();
    let mut d = random_doc(&mut rng);
    d.fields.insert("year".into(), json!("2020"));
    let e = w
        .add_with("x", &d.vectors, extras(&d))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"x\"") && e.contains("year") && e.contains("int"),
        "{e}"
    );
    d.fields = random_fields(&mut rng);
    d.fields.insert("colour".into(), json!("red"));
    let e = w
        .add_with("x", &d.vectors, extras(&d))
        .unwrap_err()
        .to_string();
    assert!(e.contains("colour"), "{e}");
    drop(w);
    // No fields declared: fields given are refused, a field filter is an error.
    let tmp = tempfile::tempdir().unwrap();
    let mut w = IndexWriter::create_with(tmp.path(), model(), config(false)).unwrap();
    let d = random_doc(&mut rng);
    assert!(w.add_with("x", &d.vectors, extras(&d)).is_err());
    let plain = DocExtras {
        fields: None,
        ..extras(&d)
    };
    w.add_with("x", &d.vectors, plain).unwrap();
    w.commit(Value::Null).unwrap();
    drop(w);
    let index = Index::open(tmp.path()).unwrap();
    let f = Filter::parse(
        &json!({"must": [{"key": "year", "match": {"value": 1}}]}),
        &schema(),
        "filter",
    )
    .unwrap();
    let e = index.scope(Some(&f)).unwrap_err().to_string();
    assert!(e.contains("declares none"), "{e}");
    // has_id needs no fields.
    let f = Filter::parse(
        &json!({"must": [{"has_id": ["x"]}]}),
        &FieldSchema::default(),
        "filter",
    )
    .unwrap();
    assert_eq!(index.scope(Some(&f)).unwrap().allowed, 1);
}
