//! Token-level explanation of a document's MaxSim score: for each query token, the
//! document vector it matched (argmax over the stored f16 vectors, as exact search
//! scores them), that vector's tokens with their character spans in the stored text,
//! and the similarity. The similarities sum to the document's exact MaxSim score.
//!
//! Nothing is stored for this at index time (0 bytes per document): the stored text is
//! tokenised again with the index's own tokenizer (its fingerprint is checked when the
//! model loads), whose kept positions are the document's vector rows in order. A
//! pooled index maps each stored vector back to the tokens it pooled: whole-word pooling
//! through the word ids, hierarchical pooling by encoding the text again and repeating
//! the (deterministic) clustering. The result is checked against the stored rows: a
//! document whose text does not give its stored vector count (added with pre-encoded
//! vectors, or cut differently) is refused with a clear error, never mis-explained.

use serde::Serialize;
use tessera_index::maxsim::MaxSim;
use tessera_index::pooling::{group_assignment, hierarchical_assignment};

use super::Searcher;
use crate::encoder::{CharSpan, Role, TokenSpan};
use crate::pipeline::Pooling;
use crate::{Error, Result};

/// Why a score is what it is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    pub id: String,
    /// MaxSim of the query against the stored vectors, as exhaustive search gives it
    /// (exact unless `approximate`).
    pub score: f32,
    /// Sum of `query_tokens[].similarity`: equals `score` up to f32 rounding.
    pub sum_of_similarities: f32,
    /// `none`, `whole-word` or `hierarchical:<factor>`.
    pub pooling: String,
    pub query_tokens: Vec<QueryTokenMatch>,
    /// The query had more tokens than the model's query length and was cut.
    pub query_truncated: bool,
    /// The index keeps no f16 vectors (`--store int8|none`): similarities come from
    /// int8 rows or from vectors decoded from PLAID's codes, not the encoder's output.
    pub approximate: bool,
    /// The document's vectors in stored order.
    pub document_vectors: Vec<DocumentVector>,
    pub text: String,
}

/// One query vector and what it matched.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QueryTokenMatch {
    /// The query token (`[CLS]`, a marker or `[MASK]` for the special positions).
    pub token: String,
    /// Its character span in the query, if it is one of the query's own tokens.
    pub chars: Option<CharSpan>,
    /// Row of `document_vectors` with the highest similarity.
    pub matched_vector: usize,
    pub similarity: f32,
}

/// One stored document vector: the tokens it stands for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentVector {
    pub tokens: Vec<DocumentToken>,
    /// Sum of the similarities of the query tokens that matched this vector.
    pub contribution: f32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentToken {
    pub token: String,
    /// Character (Unicode scalar) offsets `[start, end)` in `text`; none for `[CLS]`,
    /// `[SEP]` and markers.
    pub chars: Option<CharSpan>,
    /// The text of the span.
    pub text: Option<String>,
}

impl Searcher {
    /// Explain document `id`'s score for `query`.
    pub fn explain(&self, query: &str, id: &str) -> Result<Explanation> {
        let index = self.index();
        let addr = index
            .lookup(id)
            .ok_or_else(|| Error::Usage(format!("the index has no document {id:?}")))?;
        let text = index.text(addr).ok_or_else(|| {
            Error::Usage(
                "the index keeps no texts (built with --no-store-text): nothing to explain against"
                    .into(),
            )
        })?;
        // Exact on an f16 store; int8 rows or PLAID-decoded rows otherwise (`approximate`).
        let stored = index.vectors_f32(addr);
        let dim = stored.dim();
        let approximate = index.store_kind() != tessera_index::StoreKind::F16;
        let doc: Vec<f32> = stored.into_vec();
        let rows = doc.len() / dim;

        let encoder = self.encoder()?;
        let (qtok, qspans) = encoder.tokenize_with_spans(query, Role::Query)?;
        let qvec = encoder
            .encode_tokenized(std::slice::from_ref(&qtok))?
            .vectors
            .pop()
            .expect("one in, one out");
        let qkept: Vec<&TokenSpan> = kept(&qspans, &qtok.keep);

        let (dtok, dspans) = encoder.tokenize_with_spans(text, Role::Document)?;
        let dkept: Vec<&TokenSpan> = kept(&dspans, &dtok.keep);
        let pooling = self.pooling()?;
        // Hierarchical pooling is traced by encoding the text again (kept to check the
        // stored vectors once the row count is known to match).
        let mut reencoded = None;
        let assignment: Vec<usize> = match pooling {
            None => (0..dkept.len()).collect(),
            Some(Pooling::WholeWord) => group_assignment(&dtok.kept_word_ids()),
            Some(Pooling::Hierarchical { factor }) => {
                let full = encoder
                    .encode_tokenized(std::slice::from_ref(&dtok))?
                    .vectors
                    .pop()
                    .expect("one in, one out");
                let assignment = hierarchical_assignment(full.as_slice(), dim, factor, 1);
                reencoded = Some(full);
                assignment
            }
        };
        let produced = assignment.iter().max().map_or(0, |m| m + 1);
        if produced != rows {
            return Err(Error::Usage(format!(
                "document {id:?}: its stored text gives {produced} vectors but the index holds {rows} \
                 (added as pre-encoded vectors, or encoded with other settings): it cannot be explained"
            )));
        }
        if let (Some(full), false) = (&reencoded, approximate) {
            check_pooled_means(id, full.as_slice(), &assignment, &doc, dim)?;
        }
        let chars: Vec<char> = text.chars().collect();
        let mut document_vectors: Vec<DocumentVector> = (0..rows)
            .map(|_| DocumentVector {
                tokens: Vec::new(),
                contribution: 0.0,
            })
            .collect();
        for (span, &row) in dkept.iter().zip(&assignment) {
            document_vectors[row].tokens.push(DocumentToken {
                token: span.token.clone(),
                chars: span.chars,
                text: span.chars.map(|c| {
                    chars[c.start.min(chars.len())..c.end.min(chars.len())]
                        .iter()
                        .collect()
                }),
            });
        }

        let mut query_tokens = Vec::with_capacity(qvec.len());
        let mut sum = 0f32;
        // An int8 store scores by the int8 definition (query quantised too, integer dot
        // products), and a store without vectors straight from PLAID's codes and
        // residuals (`maxsim::codes`): the similarities follow it, so they sum to the
        // score exactly.
        let stored = index.vectors(addr);
        let from_codes = index.codes_terms(addr, qvec.view());
        let rows_i8: Option<(Vec<i8>, Vec<f32>)> = match stored {
            tessera_index::store::DocRows::Int8 { values, scales } => {
                Some((values.as_slice().to_vec(), scales.to_vec()))
            }
            _ => None,
        };
        let query_i8 = rows_i8
            .as_ref()
            .map(|_| tessera_index::maxsim::int8::QueryI8::new(qvec.view()));
        for (i, (qrow, span)) in qvec.as_slice().chunks_exact(dim).zip(&qkept).enumerate() {
            let (best, sim) = match (&from_codes, &query_i8, &rows_i8) {
                (Some((terms, _)), ..) => terms[i],
                (None, Some(q8), Some((values, scales))) => {
                    let (best, s) = values
                        .chunks_exact(dim)
                        .zip(scales)
                        .map(|(d, &sd)| {
                            let dot: i32 = q8
                                .row(i)
                                .iter()
                                .zip(d)
                                .map(|(&a, &b)| a as i32 * b as i32)
                                .sum();
                            dot as f32 * sd
                        })
                        .enumerate()
                        .fold(
                            (0, f32::NEG_INFINITY),
                            |acc, (i, s)| if s > acc.1 { (i, s) } else { acc },
                        );
                    (best, q8.scales()[i] * s)
                }
                _ => doc
                    .chunks_exact(dim)
                    .map(|d| qrow.iter().zip(d).map(|(a, b)| a * b).sum::<f32>())
                    .enumerate()
                    .fold(
                        (0, f32::NEG_INFINITY),
                        |acc, (i, s)| if s > acc.1 { (i, s) } else { acc },
                    ),
            };
            sum += sim;
            document_vectors[best].contribution += sim;
            query_tokens.push(QueryTokenMatch {
                token: span.token.clone(),
                chars: span.chars,
                matched_vector: best,
                similarity: sim,
            });
        }
        let score = match (stored, &from_codes, &query_i8, &rows_i8) {
            (_, Some((_, score)), ..) => *score,
            (tessera_index::store::DocRows::F16(m), ..) => MaxSim::default().score(qvec.view(), m),
            (_, None, Some(q8), Some((values, scales))) => MaxSim::default().score_i8(
                q8,
                tessera_index::store::MultiVectorRef::new(values, dim),
                scales,
            ),
            _ => unreachable!("int8 rows or codes for every store but f16"),
        };
        Ok(Explanation {
            id: id.to_string(),
            score,
            sum_of_similarities: sum,
            pooling: match pooling {
                None => "none".into(),
                Some(Pooling::WholeWord) => "whole-word".into(),
                Some(Pooling::Hierarchical { factor }) => format!("hierarchical:{factor}"),
            },
            query_tokens,
            query_truncated: qtok.truncated,
            approximate,
            document_vectors,
            text: text.to_string(),
        })
    }

    /// The pooling the index's documents were built with.
    fn pooling(&self) -> Result<Option<Pooling>> {
        let index = self.index();
        Ok(super::ModelRecord::read(index.manifest(), index.dir())?.pooling)
    }
}

/// The spans of the positions that became vectors, in row order.
fn kept<'a>(spans: &'a [TokenSpan], keep: &[bool]) -> Vec<&'a TokenSpan> {
    spans
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(s, _)| s)
        .collect()
}

/// The clustering repeated on a fresh encoding must give the stored vectors back: each
/// stored row against the normalised mean of the rows assigned to it. (An index re-pooled
/// by `tessera rebuild` clustered f16-rounded vectors, so a near tie may fall the other
/// way; a mapping that does not reproduce the stored vectors is refused.)
fn check_pooled_means(
    id: &str,
    full: &[f32],
    assignment: &[usize],
    stored: &[f32],
    dim: usize,
) -> Result<()> {
    let rows = stored.len() / dim;
    let mut sums = vec![0f32; rows * dim];
    for (v, &a) in full.chunks_exact(dim).zip(assignment) {
        for (s, x) in sums[a * dim..(a + 1) * dim].iter_mut().zip(v) {
            *s += x;
        }
    }
    for (r, (m, s)) in sums
        .chunks_exact(dim)
        .zip(stored.chunks_exact(dim))
        .enumerate()
    {
        let norm = m.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let cos = m.iter().zip(s).map(|(a, b)| a * b).sum::<f32>() / norm;
        if cos < 0.99 {
            return Err(Error::Usage(format!(
                "document {id:?}: pooled vector {r} cannot be traced back to its tokens \
                 (the re-encoded mean has cosine {cos:.3} with it)"
            )));
        }
    }
    Ok(())
}
