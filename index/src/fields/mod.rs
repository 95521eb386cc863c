//! Typed metadata fields of documents (keyword, integer, float, bool, date) and their
//! per-segment index, which turns a filter's conditions into document sets.
//!
//! The schema is index-wide ([`IndexConfig::fields`](crate::IndexConfig)); values are
//! checked against it when a document is added. Each segment keeps its fields in a
//! tantivy index in `s<N>.fields/` (like BM25's): one indexed + fast column per field
//! (keywords untokenised), a `doc` fast field giving the document's number in the
//! segment, and the document's fields as stored JSON (returned with results on request,
//! and read back when segments merge). Tantivy evaluates each condition (term, range,
//! exists); [`crate::filter`] combines the resulting sets with roaring operations.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::Query;
use tantivy::schema::{
    DateOptions, DateTimePrecision, Field, NumericOptions, Schema, TextOptions, STORED, STRING,
};
use tantivy::{DocId, IndexReader, Score, SegmentOrdinal, TantivyDocument};

use crate::error::Result;
use crate::segment::tantivy_dir::{self, tantivy_err};
use crate::segment::TantivyFiles;

/// The type of a field's values. Every field may hold one value or a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    /// Exact strings (tenants, languages, tags), matched whole.
    Keyword,
    /// 64-bit signed integers.
    Int,
    /// 64-bit floats.
    Float,
    Bool,
    /// Instants, written as RFC 3339 strings (`2024-05-01T00:00:00Z`), kept to the second.
    Date,
}

impl FieldKind {
    pub fn name(self) -> &'static str {
        match self {
            FieldKind::Keyword => "keyword",
            FieldKind::Int => "int",
            FieldKind::Float => "float",
            FieldKind::Bool => "bool",
            FieldKind::Date => "date",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "keyword" | "string" | "str" => FieldKind::Keyword,
            "int" | "integer" | "i64" => FieldKind::Int,
            "float" | "f64" | "number" => FieldKind::Float,
            "bool" | "boolean" => FieldKind::Bool,
            "date" | "datetime" => FieldKind::Date,
            _ => return None,
        })
    }
}

/// A field of the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
}

/// Names tantivy's schema uses for itself.
const RESERVED: [&str; 2] = ["doc", "_fields"];

impl FieldDef {
    /// `name:type`, as `--field` takes it (`tenant:keyword`, `year:int`).
    pub fn parse(spec: &str) -> std::result::Result<Self, String> {
        let (name, kind) = spec.split_once(':').ok_or_else(|| {
            format!(
                "field {spec:?}: expected NAME:TYPE, TYPE one of keyword, int, float, bool, date"
            )
        })?;
        let kind = FieldKind::parse(kind.trim()).ok_or_else(|| {
            format!(
                "field {spec:?}: unknown type {kind:?}: expected keyword, int, float, bool or date"
            )
        })?;
        let def = FieldDef {
            name: name.trim().to_string(),
            kind,
        };
        def.check_name()?;
        Ok(def)
    }

    fn check_name(&self) -> std::result::Result<(), String> {
        let n = &self.name;
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            && !n.starts_with('_')
            && !RESERVED.contains(&n.as_str());
        if ok {
            Ok(())
        } else {
            Err(format!(
                "field name {n:?}: use 1-64 ASCII letters, digits, '_' or '-', not starting with '_' (and not \"doc\")"
            ))
        }
    }
}

/// The index's fields, in declaration order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FieldSchema(pub Vec<FieldDef>);

/// A document's field values, as checked JSON (each value a scalar or a list of scalars
/// of the field's type; dates as RFC 3339 strings). Keys are schema fields.
pub type FieldValues = Map<String, Value>;

impl FieldSchema {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&FieldDef> {
        self.0.iter().find(|f| f.name == name)
    }

    /// Refuse a schema naming a field twice (or with a bad name).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for f in &self.0 {
            f.check_name()?;
            if !seen.insert(&f.name) {
                return Err(format!("field {:?} is declared twice", f.name));
            }
        }
        Ok(())
    }

    /// `name:type,...` for messages.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|f| format!("{}:{}", f.name, f.kind.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Check `values` against the schema: every key a declared field, every value of
    /// its type (or a list of them; `null` and `[]` mean "no value" and are dropped).
    /// Returns the values as stored; the error names the field and what was found.
    pub fn check(&self, values: &FieldValues) -> std::result::Result<FieldValues, String> {
        let mut out = Map::new();
        for (key, value) in values {
            let def = self.get(key).ok_or_else(|| {
                format!(
                    "unknown field {key:?}; the index declares {}",
                    self.describe()
                )
            })?;
            let items: Vec<&Value> = match value {
                Value::Null => continue,
                Value::Array(a) => a.iter().collect(),
                v => vec![v],
            };
            if items.is_empty() {
                continue;
            }
            let mut checked = Vec::with_capacity(items.len());
            for v in items {
                checked.push(check_value(def, v)?);
            }
            let stored = match (value, checked.len()) {
                (Value::Array(_), _) => Value::Array(checked),
                (_, _) => checked.pop().expect("one value"),
            };
            out.insert(key.clone(), stored);
        }
        Ok(out)
    }

    /// The declared fields' values among a corpus record's keys (top level first, then
    /// BEIR's `metadata` object); unchecked.
    pub fn extract(&self, record: &Map<String, Value>) -> FieldValues {
        let metadata = record.get("metadata").and_then(Value::as_object);
        let mut out = Map::new();
        for f in &self.0 {
            let v = record
                .get(&f.name)
                .or_else(|| metadata.and_then(|m| m.get(&f.name)));
            if let Some(v) = v {
                out.insert(f.name.clone(), v.clone());
            }
        }
        out
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a float",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One value of field `def`, checked (and normalised: dates to UTC RFC 3339).
fn check_value(def: &FieldDef, v: &Value) -> std::result::Result<Value, String> {
    let wrong = || {
        format!(
            "field {:?} is {}, found {} ({v})",
            def.name,
            def.kind.name(),
            type_name(v)
        )
    };
    Ok(match def.kind {
        FieldKind::Keyword => match v {
            Value::String(s) if s.len() <= 1024 => v.clone(),
            Value::String(_) => {
                return Err(format!(
                    "field {:?}: a keyword is at most 1,024 bytes",
                    def.name
                ))
            }
            _ => return Err(wrong()),
        },
        FieldKind::Int => match v.as_i64() {
            Some(_) => v.clone(),
            None => return Err(wrong()),
        },
        FieldKind::Float => match v.as_f64() {
            Some(x) if x.is_finite() => Value::from(x),
            _ => return Err(wrong()),
        },
        FieldKind::Bool => match v {
            Value::Bool(_) => v.clone(),
            _ => return Err(wrong()),
        },
        FieldKind::Date => match v.as_str().map(parse_date) {
            Some(Ok(secs)) => Value::String(format_date(secs)),
            Some(Err(e)) => return Err(format!("field {:?}: {e}", def.name)),
            None => return Err(wrong()),
        },
    })
}

/// Seconds since the Unix epoch of an RFC 3339 date-time (`2024-05-01T12:00:00Z`,
/// offsets allowed) or a plain date (`2024-05-01`, midnight UTC).
pub fn parse_date(s: &str) -> std::result::Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    // A plain date is midnight UTC.
    time::OffsetDateTime::parse(&format!("{s}T00:00:00Z"), &Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| format!("{s:?} is not an RFC 3339 date-time (e.g. 2024-05-01T00:00:00Z) or date (2024-05-01)"))
}

fn format_date(secs: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// The tantivy schema for `fields`: `doc`, `_fields` (stored JSON), one column each.
fn tantivy_schema(fields: &FieldSchema) -> (Schema, Field, Field, Vec<Field>) {
    let mut b = Schema::builder();
    let doc = b.add_u64_field("doc", NumericOptions::default().set_fast());
    let json = b.add_text_field("_fields", TextOptions::default() | STORED);
    let columns = fields
        .0
        .iter()
        .map(|f| match f.kind {
            FieldKind::Keyword => b.add_text_field(&f.name, STRING.set_fast("raw")),
            FieldKind::Int => {
                b.add_i64_field(&f.name, NumericOptions::default().set_indexed().set_fast())
            }
            FieldKind::Float => {
                b.add_f64_field(&f.name, NumericOptions::default().set_indexed().set_fast())
            }
            FieldKind::Bool => {
                b.add_bool_field(&f.name, NumericOptions::default().set_indexed().set_fast())
            }
            FieldKind::Date => b.add_date_field(
                &f.name,
                DateOptions::default()
                    .set_indexed()
                    .set_fast()
                    .set_precision(DateTimePrecision::Seconds),
            ),
        })
        .collect();
    (b.build(), doc, json, columns)
}

/// Tantivy's indexing memory budget for fields (one thread: documents keep store order).
const WRITER_HEAP_BYTES: usize = 50_000_000;

/// Streams documents' fields into a new tantivy index in `s<N>.fields/`.
pub struct FieldsBuilder {
    dir: PathBuf,
    name: String,
    schema: FieldSchema,
    writer: tantivy::IndexWriter,
    doc: Field,
    json: Field,
    columns: Vec<Field>,
    next: u64,
}

impl FieldsBuilder {
    pub fn create(index_dir: &Path, prefix: &str, schema: &FieldSchema) -> Result<Self> {
        let name = format!("{prefix}.fields");
        let (tschema, doc, json, columns) = tantivy_schema(schema);
        let (dir, writer) =
            tantivy_dir::create(index_dir, &name, tschema, WRITER_HEAP_BYTES, |_| {})?;
        Ok(FieldsBuilder {
            dir,
            name,
            schema: schema.clone(),
            writer,
            doc,
            json,
            columns,
            next: 0,
        })
    }

    /// Add the next document's (checked) fields.
    pub fn add(&mut self, values: &FieldValues) -> Result<()> {
        let mut d = TantivyDocument::default();
        d.add_u64(self.doc, self.next);
        if !values.is_empty() {
            d.add_text(self.json, Value::Object(values.clone()).to_string());
        }
        for (def, &col) in self.schema.0.iter().zip(&self.columns) {
            let items: Vec<&Value> = match values.get(&def.name) {
                None => continue,
                Some(Value::Array(a)) => a.iter().collect(),
                Some(v) => vec![v],
            };
            for v in items {
                match def.kind {
                    FieldKind::Keyword => d.add_text(col, v.as_str().unwrap_or_default()),
                    FieldKind::Int => d.add_i64(col, v.as_i64().unwrap_or_default()),
                    FieldKind::Float => d.add_f64(col, v.as_f64().unwrap_or_default()),
                    FieldKind::Bool => d.add_bool(col, v.as_bool().unwrap_or_default()),
                    FieldKind::Date => {
                        let secs = v.as_str().and_then(|s| parse_date(s).ok()).unwrap_or(0);
                        d.add_date(col, tantivy::DateTime::from_timestamp_secs(secs));
                    }
                }
            }
        }
        self.writer
            .add_document(d)
            .map_err(|e| tantivy_err(&self.dir, e))?;
        self.next += 1;
        Ok(())
    }

    /// Commit tantivy's index and record every file it holds.
    pub fn finish(self, index_dir: &Path) -> Result<TantivyFiles> {
        let started = std::time::Instant::now();
        let files = tantivy_dir::commit(self.writer, index_dir, &self.dir, &self.name)?;
        Ok(TantivyFiles {
            dir: self.name,
            files,
            build: serde_json::json!({
                "seconds": started.elapsed().as_secs_f64(),
                "documents": self.next,
            }),
        })
    }
}

/// One segment's fields, opened.
pub struct FieldsIndex {
    dir: PathBuf,
    reader: IndexReader,
    json: Field,
    columns: BTreeMap<String, (FieldKind, Field)>,
    /// Tantivy address of each document number (tantivy may have split the segment).
    addresses: Vec<tantivy::DocAddress>,
}

impl FieldsIndex {
    pub fn open(
        index_dir: &Path,
        files: &TantivyFiles,
        schema: &FieldSchema,
        num_docs: usize,
        verify: bool,
    ) -> Result<Self> {
        let (dir, index, reader) = tantivy_dir::open(index_dir, files, verify)?;
        let tschema = index.schema();
        let json = tschema
            .get_field("_fields")
            .map_err(|_| tantivy_err(&dir, "schema lacks the _fields field"))?;
        let mut columns = BTreeMap::new();
        for def in &schema.0 {
            let f = tschema
                .get_field(&def.name)
                .map_err(|_| tantivy_err(&dir, format!("schema lacks field {:?}", def.name)))?;
            columns.insert(def.name.clone(), (def.kind, f));
        }
        let searcher = reader.searcher();
        let mut addresses = vec![None; num_docs];
        for (ord, seg) in searcher.segment_readers().iter().enumerate() {
            let column = seg
                .fast_fields()
                .u64("doc")
                .map_err(|e| tantivy_err(&dir, e))?;
            for doc_id in seg.doc_ids_alive() {
                let d = column
                    .first(doc_id)
                    .ok_or_else(|| tantivy_err(&dir, "document without a store number"))?
                    as usize;
                match addresses.get_mut(d) {
                    Some(slot @ None) => {
                        *slot = Some(tantivy::DocAddress::new(ord as SegmentOrdinal, doc_id))
                    }
                    _ => {
                        return Err(tantivy_err(
                            &dir,
                            format!(
                                "document number {d} repeats or is past the store's {num_docs}"
                            ),
                        ))
                    }
                }
            }
        }
        let addresses = addresses
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                tantivy_err(
                    &dir,
                    format!("fields index holds fewer than the store's {num_docs} documents"),
                )
            })?;
        Ok(FieldsIndex {
            dir,
            reader,
            json,
            columns,
            addresses,
        })
    }

    /// The tantivy field and type of a schema field.
    pub(crate) fn column(&self, name: &str) -> Option<(FieldKind, Field)> {
        self.columns.get(name).copied()
    }

    /// The documents (numbers in the segment) `query` matches.
    pub(crate) fn matching(&self, query: &dyn Query) -> Result<RoaringBitmap> {
        self.reader
            .searcher()
            .search(query, &DocSet)
            .map_err(|e| tantivy_err(&self.dir, e))
    }

    /// Document `doc`'s field values.
    pub fn values(&self, doc: u32) -> Result<FieldValues> {
        let addr = self.addresses[doc as usize];
        let stored: TantivyDocument = self
            .reader
            .searcher()
            .doc(addr)
            .map_err(|e| tantivy_err(&self.dir, e))?;
        use tantivy::schema::document::Value as _;
        match stored.get_first(self.json).and_then(|v| v.as_str()) {
            None => Ok(Map::new()),
            Some(s) => match serde_json::from_str(s) {
                Ok(Value::Object(m)) => Ok(m),
                _ => Err(tantivy_err(
                    &self.dir,
                    format!("document {doc}: stored fields are not a JSON object"),
                )),
            },
        }
    }
}

/// Collects the matching documents' numbers (the `doc` fast field) into a bitmap.
struct DocSet;

struct DocSetSegment {
    column: tantivy::columnar::Column<u64>,
    docs: RoaringBitmap,
}

impl Collector for DocSet {
    type Fruit = RoaringBitmap;
    type Child = DocSetSegment;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        segment: &tantivy::SegmentReader,
    ) -> tantivy::Result<DocSetSegment> {
        Ok(DocSetSegment {
            column: segment.fast_fields().u64("doc")?,
            docs: RoaringBitmap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<RoaringBitmap>) -> tantivy::Result<RoaringBitmap> {
        Ok(fruits.into_iter().fold(RoaringBitmap::new(), |a, b| a | b))
    }
}

impl SegmentCollector for DocSetSegment {
    type Fruit = RoaringBitmap;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(d) = self.column.first(doc) {
            self.docs.insert(d as u32);
        }
    }

    fn harvest(self) -> RoaringBitmap {
        self.docs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_specs_parse_and_bad_ones_are_named() {
        assert_eq!(
            FieldDef::parse("tenant:keyword").unwrap(),
            FieldDef {
                name: "tenant".into(),
                kind: FieldKind::Keyword
            }
        );
        assert_eq!(FieldDef::parse("year:int").unwrap().kind, FieldKind::Int);
        for bad in [
            "tenant",
            "tenant:text",
            ":int",
            "_x:int",
            "doc:int",
            "a b:int",
        ] {
            assert!(FieldDef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_checked_against_the_schema() {
        let schema = FieldSchema(vec![
            FieldDef::parse("tenant:keyword").unwrap(),
            FieldDef::parse("year:int").unwrap(),
            FieldDef::parse("score:float").unwrap(),
            FieldDef::parse("ok:bool").unwrap(),
            FieldDef::parse("at:date").unwrap(),
        ]);
        let v: FieldValues = serde_json::from_str(
            r#"{"tenant": ["a", "b"], "year": 2020, "score": 1, "ok": true, "at": "2024-05-01T02:00:00+02:00"}"#,
        )
        .unwrap();
        let c = schema.check(&v).unwrap();
        assert_eq!(c["at"], "2024-05-01T00:00:00Z");
        assert_eq!(c["score"], 1.0);
        for bad in [
            r#"{"year": "2020"}"#,
            r#"{"year": 1.5}"#,
            r#"{"tenant": 3}"#,
            r#"{"ok": 1}"#,
            r#"{"at": "yesterday"}"#,
            r#"{"colour": "red"}"#,
            r#"{"tenant": [["a"]]}"#,
        ] {
            let v: FieldValues = serde_json::from_str(bad).unwrap();
            assert!(schema.check(&v).is_err(), "{bad}");
        }
        assert_eq!(parse_date("2024-05-01").unwrap(), 1714521600);
    }
}
