//! Filters over documents' metadata fields, in Qdrant's JSON
//! (<https://qdrant.tech/documentation/concepts/filtering/>):
//!
//! ```json
//! {"must": [{"key": "tenant", "match": {"value": "acme"}},
//!           {"key": "year", "range": {"gte": 2019, "lt": 2024}}],
//!  "should": [{"key": "tags", "match": {"any": ["a", "b"]}}],
//!  "must_not": [{"is_empty": {"key": "lang"}}]}
//! ```
//!
//! A document passes when it satisfies every `must` condition, at least one `should`
//! condition (when there are any) and no `must_not` condition. Conditions: `match`
//! (`value`, `any`, `except`) on keyword, int and bool fields; `range` (`gt`, `gte`,
//! `lt`, `lte`) on int, float and date fields (dates as RFC 3339 strings); `is_empty`
//! (no value, or an empty list); `has_id` (external ids); and a nested filter. A field
//! holding a list passes a condition when any of its values does; `except` passes a
//! document none of whose values is listed (one without the field too).
//!
//! [`Filter::parse`] checks the JSON against the index's field schema: an unknown key, an
//! unknown field or a value of the wrong type is an error naming the JSON path. Each
//! condition becomes one tantivy query run on the segment's fields index
//! ([`crate::fields`]); the sets are combined with roaring operations, then intersected
//! with the segment's live documents into an [`crate::Allow`].

use std::ops::Bound;

use roaring::RoaringBitmap;
use serde_json::{Map, Value};
use tantivy::query::{ExistsQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

use crate::error::{IndexError, Result};
use crate::fields::{parse_date, FieldKind, FieldSchema, FieldsIndex};
use crate::reader::SegmentReader;

/// A filter as parsed: a boolean combination of conditions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub must: Vec<Condition>,
    pub should: Vec<Condition>,
    pub must_not: Vec<Condition>,
}

/// One condition of a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The field holds one of these values (`match.value` is a list of one).
    Any {
        key: String,
        values: Vec<Scalar>,
    },
    /// The field holds none of these values.
    Except {
        key: String,
        values: Vec<Scalar>,
    },
    /// A value of the field lies in the range.
    Range {
        key: String,
        lower: Bound<Scalar>,
        upper: Bound<Scalar>,
    },
    /// The field has no value.
    IsEmpty {
        key: String,
    },
    /// The document's external id is one of these.
    HasId(Vec<String>),
    Nested(Box<Filter>),
}

/// A value a condition compares with, of its field's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Keyword(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Seconds since the epoch.
    Date(i64),
}

/// A filter that could not be read: where (a JSON path such as `filter.must[1].range.gte`)
/// and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FilterError {}

type Parsed<T> = std::result::Result<T, FilterError>;

fn err<T>(path: &str, message: impl Into<String>) -> Parsed<T> {
    Err(FilterError {
        path: path.to_string(),
        message: message.into(),
    })
}

/// How deep filters may nest (a hostile request cannot overflow the stack).
const MAX_DEPTH: usize = 16;
/// Most values one `any`, `except` or `has_id` may list.
const MAX_VALUES: usize = 10_000;
/// Most ids one `has_id` may list (a request's body limit bounds it over HTTP).
const MAX_IDS: usize = 10_000_000;

impl Filter {
    /// Parse Qdrant's filter JSON against `schema`; errors name the path from `root`
    /// (e.g. `filter`).
    pub fn parse(value: &Value, schema: &FieldSchema, root: &str) -> Parsed<Filter> {
        parse_filter(value, schema, root, 0)
    }

    /// Parse a JSON string (`--filter`).
    pub fn parse_str(text: &str, schema: &FieldSchema) -> Parsed<Filter> {
        let value: Value = serde_json::from_str(text).map_err(|e| FilterError {
            path: "filter".into(),
            message: format!("not valid JSON: {e}"),
        })?;
        Filter::parse(&value, schema, "filter")
    }

    /// Whether the filter reads metadata fields (and so needs the fields index).
    pub fn uses_fields(&self) -> bool {
        self.conditions().any(|c| match c {
            Condition::HasId(_) => false,
            Condition::Nested(f) => f.uses_fields(),
            _ => true,
        })
    }

    fn conditions(&self) -> impl Iterator<Item = &Condition> {
        self.must.iter().chain(&self.should).chain(&self.must_not)
    }

    /// The documents of `segment` (numbers in it, tombstoned ones included) that pass.
    pub fn evaluate(&self, segment: &SegmentReader) -> Result<RoaringBitmap> {
        let n = segment.num_docs() as u32;
        let mut all = RoaringBitmap::new();
        all.insert_range(0..n);
        self.eval(segment, &all)
    }

    fn eval(&self, seg: &SegmentReader, all: &RoaringBitmap) -> Result<RoaringBitmap> {
        let mut out = all.clone();
        for c in &self.must {
            out &= c.eval(seg, all)?;
        }
        if !self.should.is_empty() {
            let mut any = RoaringBitmap::new();
            for c in &self.should {
                any |= c.eval(seg, all)?;
            }
            out &= any;
        }
        for c in &self.must_not {
            out -= c.eval(seg, all)?;
        }
        Ok(out)
    }
}

impl Condition {
    fn eval(&self, seg: &SegmentReader, all: &RoaringBitmap) -> Result<RoaringBitmap> {
        let fields = || {
            seg.fields().ok_or_else(|| {
                IndexError::InvalidArgument(
                    "the filter names a field but the index has no fields".into(),
                )
            })
        };
        Ok(match self {
            Condition::Any { key, values } => any_of(fields()?, key, values)?,
            Condition::Except { key, values } => all - any_of(fields()?, key, values)?,
            Condition::Range { key, lower, upper } => {
                let f = fields()?;
                let (_, field) = column(f, key)?;
                let term = |s: &Scalar| scalar_term(field, s);
                let q = RangeQuery::new(map_bound(lower, term), map_bound(upper, term));
                f.matching(&q)?
            }
            Condition::IsEmpty { key } => {
                let f = fields()?;
                column(f, key)?;
                all - f.matching(&ExistsQuery::new(key.clone(), false))?
            }
            Condition::HasId(ids) => {
                let mut out = RoaringBitmap::new();
                for id in ids {
                    out.extend(seg.ids().find(seg.store(), id).iter().copied());
                }
                out
            }
            Condition::Nested(f) => f.eval(seg, all)?,
        })
    }
}

fn map_bound(b: &Bound<Scalar>, f: impl Fn(&Scalar) -> Term) -> Bound<Term> {
    match b {
        Bound::Included(s) => Bound::Included(f(s)),
        Bound::Excluded(s) => Bound::Excluded(f(s)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn column(f: &FieldsIndex, key: &str) -> Result<(FieldKind, Field)> {
    f.column(key).ok_or_else(|| {
        IndexError::InvalidArgument(format!("the segment's fields index lacks field {key:?}"))
    })
}

fn scalar_term(field: Field, s: &Scalar) -> Term {
    match s {
        Scalar::Keyword(v) => Term::from_field_text(field, v),
        Scalar::Int(v) => Term::from_field_i64(field, *v),
        Scalar::Float(v) => Term::from_field_f64(field, *v),
        Scalar::Bool(v) => Term::from_field_bool(field, *v),
        Scalar::Date(v) => {
            Term::from_field_date_for_search(field, tantivy::DateTime::from_timestamp_secs(*v))
        }
    }
}

fn any_of(f: &FieldsIndex, key: &str, values: &[Scalar]) -> Result<RoaringBitmap> {
    let (_, field) = column(f, key)?;
    let mut out = RoaringBitmap::new();
    for v in values {
        let q = TermQuery::new(scalar_term(field, v), IndexRecordOption::Basic);
        out |= f.matching(&q as &dyn Query)?;
    }
    Ok(out)
}

fn object<'a>(v: &'a Value, path: &str, what: &str) -> Parsed<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        other => err(
            path,
            format!("{what} must be a JSON object, found {}", kind(other)),
        ),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn only_keys(m: &Map<String, Value>, path: &str, allowed: &[&str]) -> Parsed<()> {
    for k in m.keys() {
        if !allowed.contains(&k.as_str()) {
            return err(
                &format!("{path}.{k}"),
                format!("unknown key {k:?}; expected one of {}", allowed.join(", ")),
            );
        }
    }
    Ok(())
}

fn parse_filter(v: &Value, schema: &FieldSchema, path: &str, depth: usize) -> Parsed<Filter> {
    if depth > MAX_DEPTH {
        return err(path, format!("filters nest at most {MAX_DEPTH} deep"));
    }
    let m = object(v, path, "a filter")?;
    only_keys(m, path, &["must", "should", "must_not"])?;
    let list = |key: &str| -> Parsed<Vec<Condition>> {
        let p = format!("{path}.{key}");
        match m.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            // Qdrant takes one condition in place of a list.
            Some(Value::Object(_)) => Ok(vec![parse_condition(&m[key], schema, &p, depth)?]),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, c)| parse_condition(c, schema, &format!("{p}[{i}]"), depth))
                .collect(),
            Some(other) => err(
                &p,
                format!("must be a list of conditions, found {}", kind(other)),
            ),
        }
    };
    Ok(Filter {
        must: list("must")?,
        should: list("should")?,
        must_not: list("must_not")?,
    })
}

fn parse_condition(v: &Value, schema: &FieldSchema, path: &str, depth: usize) -> Parsed<Condition> {
    let m = object(v, path, "a condition")?;
    if m.keys()
        .any(|k| matches!(k.as_str(), "must" | "should" | "must_not"))
    {
        return Ok(Condition::Nested(Box::new(parse_filter(
            v,
            schema,
            path,
            depth + 1,
        )?)));
    }
    if let Some(inner) = m.get("is_empty") {
        only_keys(m, path, &["is_empty"])?;
        let p = format!("{path}.is_empty");
        let inner = object(inner, &p, "is_empty")?;
        only_keys(inner, &p, &["key"])?;
        let key = field_key(inner, schema, &p)?;
        return Ok(Condition::IsEmpty { key: key.0 });
    }
    if m.contains_key("is_null") {
        return err(
            &format!("{path}.is_null"),
            "is_null is not supported: null values are not stored; use is_empty",
        );
    }
    if let Some(ids) = m.get("has_id") {
        only_keys(m, path, &["has_id"])?;
        let p = format!("{path}.has_id");
        let Value::Array(items) = ids else {
            return err(&p, format!("must be a list of ids, found {}", kind(ids)));
        };
        if items.len() > MAX_IDS {
            return err(&p, format!("lists at most {MAX_IDS} ids"));
        }
        let ids = items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => err(
                    &format!("{p}[{i}]"),
                    format!("an id is a string, found {}", kind(other)),
                ),
            })
            .collect::<Parsed<Vec<_>>>()?;
        return Ok(Condition::HasId(ids));
    }
    if !m.contains_key("key") {
        return err(
            path,
            "a condition needs \"key\" (with \"match\" or \"range\"), or is one of is_empty, has_id, or a nested filter (must/should/must_not)",
        );
    }
    only_keys(m, path, &["key", "match", "range"])?;
    let (key, field_kind) = field_key(m, schema, path)?;
    match (m.get("match"), m.get("range")) {
        (Some(_), Some(_)) => err(path, "a condition has \"match\" or \"range\", not both"),
        (None, None) => err(
            path,
            format!("condition on {key:?} needs \"match\" or \"range\""),
        ),
        (Some(mv), None) => parse_match(mv, key, field_kind, &format!("{path}.match")),
        (None, Some(rv)) => parse_range(rv, key, field_kind, &format!("{path}.range")),
    }
}

/// The condition's `key`, which must name a field of the schema.
fn field_key(
    m: &Map<String, Value>,
    schema: &FieldSchema,
    path: &str,
) -> Parsed<(String, FieldKind)> {
    let p = format!("{path}.key");
    let key = match m.get("key") {
        Some(Value::String(s)) => s,
        Some(other) => return err(&p, format!("must be a field name, found {}", kind(other))),
        None => return err(path, "needs \"key\", the field's name"),
    };
    match schema.get(key) {
        Some(def) => Ok((key.clone(), def.kind)),
        None => err(
            &p,
            format!(
                "unknown field {key:?}; the index declares {}",
                schema.describe()
            ),
        ),
    }
}

fn parse_match(v: &Value, key: String, k: FieldKind, path: &str) -> Parsed<Condition> {
    let m = object(v, path, "match")?;
    if matches!(k, FieldKind::Float | FieldKind::Date) {
        return err(
            path,
            format!("match on {} field {key:?}: use range", k.name()),
        );
    }
    if m.contains_key("text") {
        return err(
            &format!("{path}.text"),
            "full-text match is not supported on fields; search the text with bm25",
        );
    }
    only_keys(m, path, &["value", "any", "except"])?;
    if m.len() != 1 {
        return err(path, "match takes exactly one of value, any, except");
    }
    let (which, v) = m.iter().next().expect("one key");
    let p = format!("{path}.{which}");
    let values = match (which.as_str(), v) {
        ("value", v) => vec![scalar(v, &key, k, &p)?],
        (_, Value::Array(items)) => {
            if items.len() > MAX_VALUES {
                return err(&p, format!("lists at most {MAX_VALUES} values"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| scalar(v, &key, k, &format!("{p}[{i}]")))
                .collect::<Parsed<Vec<_>>>()?
        }
        (_, other) => {
            return err(
                &p,
                format!("must be a list of values, found {}", kind(other)),
            )
        }
    };
    Ok(match which.as_str() {
        "except" => Condition::Except { key, values },
        _ => Condition::Any { key, values },
    })
}

fn scalar(v: &Value, key: &str, k: FieldKind, path: &str) -> Parsed<Scalar> {
    let wrong = || {
        err(
            path,
            format!("field {key:?} is {}, found {} ({v})", k.name(), kind(v)),
        )
    };
    match k {
        FieldKind::Keyword => match v {
            Value::String(s) => Ok(Scalar::Keyword(s.clone())),
            _ => wrong(),
        },
        FieldKind::Int => match v.as_i64() {
            Some(i) => Ok(Scalar::Int(i)),
            None => wrong(),
        },
        FieldKind::Bool => match v {
            Value::Bool(b) => Ok(Scalar::Bool(*b)),
            _ => wrong(),
        },
        FieldKind::Float => match v.as_f64() {
            Some(x) if x.is_finite() => Ok(Scalar::Float(x)),
            _ => wrong(),
        },
        FieldKind::Date => match v {
            Value::String(s) => parse_date(s).map(Scalar::Date).or_else(|e| err(path, e)),
            _ => wrong(),
        },
    }
}

fn parse_range(v: &Value, key: String, k: FieldKind, path: &str) -> Parsed<Condition> {
    let m = object(v, path, "range")?;
    if matches!(k, FieldKind::Keyword | FieldKind::Bool) {
        return err(
            path,
            format!("range on {} field {key:?}: use match", k.name()),
        );
    }
    only_keys(m, path, &["gt", "gte", "lt", "lte"])?;
    if m.is_empty() {
        return err(path, "range needs at least one of gt, gte, lt, lte");
    }
    if m.contains_key("gt") && m.contains_key("gte")
        || m.contains_key("lt") && m.contains_key("lte")
    {
        return err(
            path,
            "range takes one lower bound (gt or gte) and one upper (lt or lte)",
        );
    }
    let bound = |name: &str, lower: bool| -> Parsed<Bound<Scalar>> {
        let Some(v) = m.get(name) else {
            return Ok(Bound::Unbounded);
        };
        let p = format!("{path}.{name}");
        let inclusive = name.ends_with('e');
        if k != FieldKind::Int {
            let s = scalar(v, &key, k, &p)?;
            return Ok(if inclusive {
                Bound::Included(s)
            } else {
                Bound::Excluded(s)
            });
        }
        // An int field takes any finite number as a bound (as Qdrant does): round to the
        // integers the bound admits.
        let x = match v.as_f64() {
            Some(x) if x.is_finite() => x,
            _ => return err(&p, format!("field {key:?} is int, found {} ({v})", kind(v))),
        };
        if let Some(i) = v.as_i64() {
            let s = Scalar::Int(i);
            return Ok(if inclusive {
                Bound::Included(s)
            } else {
                Bound::Excluded(s)
            });
        }
        // Fractional: every admitted integer is on the inner side of x.
        let i = if lower { x.ceil() } else { x.floor() };
        Ok(Bound::Included(Scalar::Int(
            i.clamp(i64::MIN as f64, i64::MAX as f64) as i64,
        )))
    };
    let lower = match m.contains_key("gt") {
        true => bound("gt", true)?,
        false => bound("gte", true)?,
    };
    let upper = match m.contains_key("lt") {
        true => bound("lt", false)?,
        false => bound("lte", false)?,
    };
    Ok(Condition::Range { key, lower, upper })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::FieldDef;

    fn schema() -> FieldSchema {
        FieldSchema(
            [
                "tenant:keyword",
                "year:int",
                "score:float",
                "ok:bool",
                "at:date",
                "tags:keyword",
            ]
            .iter()
            .map(|s| FieldDef::parse(s).unwrap())
            .collect(),
        )
    }

    #[test]
    fn qdrant_filters_parse() {
        let f = Filter::parse_str(
            r#"{"must": [{"key": "tenant", "match": {"value": "acme"}},
                         {"key": "year", "range": {"gte": 2019, "lt": 2024}}],
                "should": {"key": "tags", "match": {"any": ["a", "b"]}},
                "must_not": [{"is_empty": {"key": "at"}}, {"has_id": ["d1"]},
                             {"should": [{"key": "ok", "match": {"value": true}}]}]}"#,
            &schema(),
        )
        .unwrap();
        assert_eq!(f.must.len(), 2);
        assert_eq!(f.should.len(), 1);
        assert_eq!(f.must_not.len(), 3);
        assert_eq!(
            f.must[1],
            Condition::Range {
                key: "year".into(),
                lower: Bound::Included(Scalar::Int(2019)),
                upper: Bound::Excluded(Scalar::Int(2024)),
            }
        );
        let f = Filter::parse_str(
            r#"{"must": [{"key": "year", "range": {"gt": 2019.5, "lte": 2020.5}}]}"#,
            &schema(),
        )
        .unwrap();
        assert_eq!(
            f.must[0],
            Condition::Range {
                key: "year".into(),
                lower: Bound::Included(Scalar::Int(2020)),
                upper: Bound::Included(Scalar::Int(2020)),
            }
        );
        assert_eq!(
            Filter::parse_str("{}", &schema()).unwrap(),
            Filter::default()
        );
    }

    #[test]
    fn malformed_filters_name_the_path() {
        let cases = [
            ("", "filter"),
            ("[]", "filter"),
            ("3", "filter"),
            (r#"{"mustt": []}"#, "filter.mustt"),
            (r#"{"must": 3}"#, "filter.must"),
            (r#"{"must": [3]}"#, "filter.must[0]"),
            (r#"{"must": [{}]}"#, "filter.must[0]"),
            (
                r#"{"must": [{"key": "colour", "match": {"value": "red"}}]}"#,
                "filter.must[0].key",
            ),
            (
                r#"{"must": [{"key": 3, "match": {"value": "red"}}]}"#,
                "filter.must[0].key",
            ),
            (r#"{"must": [{"key": "tenant"}]}"#, "filter.must[0]"),
            (
                r#"{"must": [{"key": "tenant", "match": {"value": 3}}]}"#,
                "filter.must[0].match.value",
            ),
            (
                r#"{"must": [{"key": "tenant", "match": {"value": "a", "any": ["b"]}}]}"#,
                "filter.must[0].match",
            ),
            (
                r#"{"must": [{"key": "tenant", "match": {"any": "b"}}]}"#,
                "filter.must[0].match.any",
            ),
            (
                r#"{"must": [{"key": "tenant", "match": {"any": ["b", 1]}}]}"#,
                "filter.must[0].match.any[1]",
            ),
            (
                r#"{"must": [{"key": "tenant", "match": {"text": "b"}}]}"#,
                "filter.must[0].match.text",
            ),
            (
                r#"{"must": [{"key": "tenant", "match": {"like": "b"}}]}"#,
                "filter.must[0].match.like",
            ),
            (
                r#"{"must": [{"key": "tenant", "range": {"gte": 1}}]}"#,
                "filter.must[0].range",
            ),
            (
                r#"{"must": [{"key": "year", "match": {"value": "2020"}}]}"#,
                "filter.must[0].match.value",
            ),
            (
                r#"{"must": [{"key": "year", "match": {"value": 2020.5}}]}"#,
                "filter.must[0].match.value",
            ),
            (
                r#"{"must": [{"key": "year", "range": {}}]}"#,
                "filter.must[0].range",
            ),
            (
                r#"{"must": [{"key": "year", "range": {"gte": "x"}}]}"#,
                "filter.must[0].range.gte",
            ),
            (
                r#"{"must": [{"key": "year", "range": {"gte": 1, "gt": 2}}]}"#,
                "filter.must[0].range",
            ),
            (
                r#"{"must": [{"key": "year", "range": {"from": 1}}]}"#,
                "filter.must[0].range.from",
            ),
            (
                r#"{"must": [{"key": "year", "range": {"gte": 1}, "match": {"value": 1}}]}"#,
                "filter.must[0]",
            ),
            (
                r#"{"must": [{"key": "score", "match": {"value": 1.5}}]}"#,
                "filter.must[0].match",
            ),
            (
                r#"{"must": [{"key": "at", "range": {"gte": "last week"}}]}"#,
                "filter.must[0].range.gte",
            ),
            (
                r#"{"must": [{"key": "at", "range": {"gte": 1714521600}}]}"#,
                "filter.must[0].range.gte",
            ),
            (
                r#"{"must": [{"key": "ok", "match": {"value": "true"}}]}"#,
                "filter.must[0].match.value",
            ),
            (
                r#"{"must": [{"key": "ok", "range": {"gt": 0}}]}"#,
                "filter.must[0].range",
            ),
            (
                r#"{"must": [{"is_empty": "tenant"}]}"#,
                "filter.must[0].is_empty",
            ),
            (
                r#"{"must": [{"is_empty": {"key": "nope"}}]}"#,
                "filter.must[0].is_empty.key",
            ),
            (
                r#"{"must": [{"is_empty": {"field": "tenant"}}]}"#,
                "filter.must[0].is_empty.field",
            ),
            (
                r#"{"must": [{"is_null": {"key": "tenant"}}]}"#,
                "filter.must[0].is_null",
            ),
            (r#"{"must": [{"has_id": "d1"}]}"#, "filter.must[0].has_id"),
            (r#"{"must": [{"has_id": [1]}]}"#, "filter.must[0].has_id[0]"),
            (
                r#"{"should": [{"must": [{"key": "x", "match": {"value": 1}}]}]}"#,
                "filter.should[0].must[0].key",
            ),
            (
                r#"{"must_not": [{"key": "year", "range": {"lt": null}}]}"#,
                "filter.must_not[0].range.lt",
            ),
            (
                r#"{"must": [{"key": "score", "range": {"lt": "1"}}]}"#,
                "filter.must[0].range.lt",
            ),
        ];
        assert!(cases.len() >= 30);
        for (text, path) in cases {
            let e = Filter::parse_str(text, &schema()).expect_err(text);
            assert_eq!(e.path, path, "{text}: {e}");
            assert!(!e.message.is_empty());
        }
        // Too deep.
        let mut deep = String::from(r#"{"key": "year", "match": {"value": 1}}"#);
        for _ in 0..20 {
            deep = format!(r#"{{"must": [{deep}]}}"#);
        }
        let e = Filter::parse_str(&format!(r#"{{"must": [{deep}]}}"#), &schema()).unwrap_err();
        assert!(e.message.contains("nest"), "{e}");
    }
}
