//! BM25 over each document's text (title + text, as the application joined them), with
//! tantivy: lower-cased, Lucene's English stop words removed, Snowball English stemming.
//!
//! The tantivy index lives in `g<N>.bm25/` inside the Tessera index; every file tantivy
//! wrote is listed in the manifest with size and CRC-32C and checked at open, like the
//! HNSW files. Tantivy scores with BM25 at its fixed k1 = 1.2, b = 0.75 (Anserini's BEIR
//! baselines use k1 = 0.9, b = 0.4). Queries go through the same analyzer and become a
//! disjunction of term queries (no query syntax, so any text is a valid query).

use std::path::Path;

use tantivy::collector::{FilterCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{DocAddress, IndexReader, TantivyDocument, Term};

use crate::allow::Allow;
use crate::error::{IndexError, Result};
use crate::maxsim::Hit;
use crate::segment::tantivy_dir::{self, tantivy_err};
use crate::segment::Bm25Files;

/// BM25's free parameters, for [`Bm25Index::search_with`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Bm25Params {
    /// Anserini/Pyserini's BEIR baselines.
    pub const ANSERINI: Bm25Params = Bm25Params { k1: 0.9, b: 0.4 };
    /// Tantivy's fixed values.
    pub const TANTIVY: Bm25Params = Bm25Params { k1: 1.2, b: 0.75 };
}

/// Name the analyzer is registered under in the tantivy index.
const ANALYZER: &str = "tessera_en";
/// Tantivy's indexing memory budget (one thread: documents keep store order).
const WRITER_HEAP_BYTES: usize = 200_000_000;

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::new(Language::English).expect("tantivy ships English stop words"))
        .filter(Stemmer::new(Language::English))
        .build()
}

fn schema() -> (Schema, Field, Field) {
    let mut b = Schema::builder();
    let doc = b.add_u64_field("doc", NumericOptions::default().set_fast());
    let text = b.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqs),
        ),
    );
    (b.build(), doc, text)
}

/// Streams documents into a new tantivy index in `g<N>.bm25/`.
pub struct Bm25Builder {
    dir: std::path::PathBuf,
    name: String,
    writer: tantivy::IndexWriter,
    doc: Field,
    text: Field,
    next: u64,
    /// Time spent inside tantivy (adding and committing), for the build report.
    seconds: f64,
}

impl Bm25Builder {
    pub fn create(index_dir: &Path, prefix: &str) -> Result<Self> {
        let name = format!("{prefix}.bm25");
        let (schema, doc, text) = schema();
        let (dir, writer) =
            tantivy_dir::create(index_dir, &name, schema, WRITER_HEAP_BYTES, |index| {
                index.tokenizers().register(ANALYZER, analyzer())
            })?;
        Ok(Bm25Builder {
            dir,
            name,
            writer,
            doc,
            text,
            next: 0,
            seconds: 0.0,
        })
    }

    /// Add the next document (store order) with its text.
    pub fn add(&mut self, text: &str) -> Result<()> {
        let started = std::time::Instant::now();
        let mut d = TantivyDocument::default();
        d.add_u64(self.doc, self.next);
        d.add_text(self.text, text);
        self.writer
            .add_document(d)
            .map_err(|e| tantivy_err(&self.dir, e))?;
        self.next += 1;
        self.seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Commit tantivy's index, wait for merges, and record every file it holds.
    pub fn finish(self, index_dir: &Path) -> Result<Bm25Files> {
        let started = std::time::Instant::now();
        let files = tantivy_dir::commit(self.writer, index_dir, &self.dir, &self.name)?;
        Ok(Bm25Files {
            dir: self.name,
            files,
            build: serde_json::json!({
                "seconds": self.seconds + started.elapsed().as_secs_f64(),
                "k1": 1.2, "b": 0.75,
                "analyzer": "simple tokenizer, lowercase, Lucene English stop words, Snowball English stemmer",
            }),
        })
    }
}

/// The BM25 component, opened.
pub struct Bm25Index {
    dir: std::path::PathBuf,
    reader: IndexReader,
    text: Field,
}

impl Bm25Index {
    pub fn open(
        index_dir: &Path,
        files: &Bm25Files,
        num_docs: usize,
        verify: bool,
    ) -> Result<Self> {
        let (dir, index, reader) = tantivy_dir::open(index_dir, files, verify)?;
        index.tokenizers().register(ANALYZER, analyzer());
        let schema = index.schema();
        let text = match (schema.get_field("doc"), schema.get_field("text")) {
            (Ok(_), Ok(t)) => t,
            _ => return Err(tantivy_err(&dir, "schema lacks the doc or text field")),
        };
        let found = reader.searcher().num_docs() as usize;
        if found != num_docs {
            return Err(IndexError::corrupt(
                &dir,
                format!("BM25 index holds {found} documents, the store {num_docs}"),
            ));
        }
        Ok(Bm25Index { dir, reader, text })
    }

    /// The analyzed terms of `text` (what the index matches on).
    pub fn analyze(&self, text: &str) -> Vec<String> {
        let mut a = analyzer();
        let mut stream = a.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    /// The index's tantivy searcher (one snapshot of this segment's BM25 index).
    pub fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }

    /// The best `k` allowed documents for `text` by BM25 (tantivy's scorer, k1 1.2,
    /// b 0.75), best first, with the collection statistics of `stats` (every segment of
    /// the index, so scores compare across segments).
    pub fn search(
        &self,
        text: &str,
        k: usize,
        stats: &Bm25Statistics,
        allow: &Allow,
    ) -> Result<Vec<Hit>> {
        let terms = self.analyze(text);
        if k == 0 || terms.is_empty() {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.text, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        // Tantivy reserves room for k hits: never more than there are documents.
        let k = k.min(searcher.num_docs().max(1) as usize);
        let top: Vec<(f32, DocAddress)> = if allow.is_all() {
            searcher.search_with_statistics_provider(
                &query,
                &TopDocs::with_limit(k).order_by_score(),
                stats,
            )
        } else {
            let allow = allow.clone();
            let filtered = FilterCollector::new(
                "doc".to_string(),
                move |d: u64| allow.contains(d as u32),
                TopDocs::with_limit(k).order_by_score(),
            );
            searcher.search_with_statistics_provider(&query, &filtered, stats)
        }
        .map_err(|e| tantivy_err(&self.dir, e))?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let column = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64("doc")
                .map_err(|e| tantivy_err(&self.dir, e))?;
            let doc = column
                .first(addr.doc_id)
                .ok_or_else(|| tantivy_err(&self.dir, "document without a store number"))?;
            hits.push(Hit {
                doc: doc as u32,
                score,
            });
        }
        hits.sort_by(Hit::rank_cmp);
        Ok(hits)
    }

    /// BM25 with the given `k1` and `b`, scored here from tantivy's postings, term
    /// frequencies and length norms (tantivy's own scorer is fixed at k1 1.2, b 0.75):
    /// `Σ_t idf(t) (k1 + 1) tf / (tf + k1 (1 - b + b |d| / avgdl))`, idf as Lucene's,
    /// `ln(1 + (N - df + 0.5) / (df + 0.5))`, a repeated query term counted again, with
    /// `N`, `df` and `avgdl` from `stats` (the whole index). At k1 1.2, b 0.75 it ranks as
    /// [`Bm25Index::search`] (tested).
    pub fn search_with(
        &self,
        text: &str,
        k: usize,
        params: Bm25Params,
        stats: &Bm25Statistics,
        allow: &Allow,
    ) -> Result<Vec<Hit>> {
        use tantivy::postings::Postings;
        use tantivy::query::Bm25StatisticsProvider;
        use tantivy::{DocSet, TERMINATED};
        let terms = self.analyze(text);
        let searcher = self.reader.searcher();
        let err = |e: &dyn std::fmt::Display| tantivy_err(&self.dir, e);
        let n = stats.total_num_docs().map_err(|e| err(&e))? as f64;
        if k == 0 || terms.is_empty() || n == 0.0 {
            return Ok(Vec::new());
        }
        let avgdl = stats.total_num_tokens(self.text).map_err(|e| err(&e))? as f64 / n;
        let (k1, b) = (f64::from(params.k1), f64::from(params.b));
        let mut scores: std::collections::HashMap<u32, f64> = std::collections::HashMap::new();
        for t in &terms {
            let term = Term::from_field_text(self.text, t);
            let df = stats.doc_freq(&term).map_err(|e| err(&e))? as f64;
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for seg in searcher.segment_readers() {
                let inverted = seg.inverted_index(self.text).map_err(|e| err(&e))?;
                let Some(mut postings) = inverted
                    .read_postings(&term, IndexRecordOption::WithFreqs)
                    .map_err(|e| err(&e))?
                else {
                    continue;
                };
                let norms = seg.get_fieldnorms_reader(self.text).map_err(|e| err(&e))?;
                let docs = seg.fast_fields().u64("doc").map_err(|e| err(&e))?;
                let mut d = postings.doc();
                while d != TERMINATED {
                    let doc = docs
                        .first(d)
                        .ok_or_else(|| err(&"document without a store number"))?
                        as u32;
                    if allow.contains(doc) {
                        let tf = f64::from(postings.term_freq());
                        let len = f64::from(norms.fieldnorm(d));
                        let s = idf * (k1 + 1.0) * tf / (tf + k1 * (1.0 - b + b * len / avgdl));
                        *scores.entry(doc).or_default() += s;
                    }
                    d = postings.advance();
                }
            }
        }
        let mut top = crate::maxsim::TopK::new(k);
        for (doc, score) in scores {
            top.push(Hit {
                doc,
                score: score as f32,
            });
        }
        Ok(top.into_sorted())
    }
}

/// BM25's collection statistics over several segments' tantivy indexes (document count,
/// token count, document frequencies summed), so each segment scores with the whole
/// index's idf and average length and scores compare across segments. Documents
/// tombstoned but not yet merged away still count, as in Lucene.
pub struct Bm25Statistics {
    searchers: Vec<tantivy::Searcher>,
}

impl Bm25Statistics {
    pub fn new(segments: &[&Bm25Index]) -> Self {
        Bm25Statistics {
            searchers: segments.iter().map(|s| s.searcher()).collect(),
        }
    }
}

impl tantivy::query::Bm25StatisticsProvider for Bm25Statistics {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        let mut sum = 0;
        for s in &self.searchers {
            sum += tantivy::query::Bm25StatisticsProvider::total_num_tokens(s, field)?;
        }
        Ok(sum)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        let mut sum = 0;
        for s in &self.searchers {
            sum += tantivy::query::Bm25StatisticsProvider::total_num_docs(s)?;
        }
        Ok(sum)
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let mut sum = 0;
        for s in &self.searchers {
            sum += s.doc_freq(term)?;
        }
        Ok(sum)
    }
}
