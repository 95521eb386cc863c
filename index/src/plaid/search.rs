//! PLAID search (Santhanam et al. 2022): probe `ncells` centroids per query token,
//! score the IVF candidates by centroid interaction (first with centroid pruning, keep
//! `ndocs`; then without, keep `ndocs / 4`), then exact MaxSim on the survivors. The
//! centroid scores are computed once per query from the index's codec
//! ([`PlaidCodec::prepare`]); each segment probes its own IVF with them.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{PlaidCodec, PlaidSegment, Refiner};
use crate::allow::Allow;
use crate::maxsim::{Hit, Kernel, TopK};
use crate::store::{MultiVectorRef, TokenStore};

/// What the last stage scores survivors against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Rescore {
    /// The full-precision (f16) vectors of the token store (default).
    #[default]
    Exact,
    /// Vectors decompressed from centroid + residual (what an index without the store has).
    Decompressed,
}

/// PLAID's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlaidParams {
    /// Centroids probed per query token.
    pub ncells: usize,
    /// Centroids whose best query-token score is below this are ignored in the first
    /// interaction pass.
    pub centroid_score_threshold: f32,
    /// Documents kept after the pruned pass; `ndocs / 4` after the full one.
    pub ndocs: usize,
    pub rescore: Rescore,
    /// Refinement (`refine.rs`): the `ndocs / 4` survivors are scored by token-pruned
    /// MaxSim, computing `⟨q_i, d_j⟩` only where the centroid score is within this
    /// margin of query token `i`'s best; `None` sends every survivor to full MaxSim.
    #[serde(default)]
    pub refine_margin: Option<f32>,
    /// With refinement, how many of the best refined documents get full MaxSim (at
    /// least k).
    #[serde(default)]
    pub exact_docs: usize,
    /// How the query x centroid score table is computed.
    #[serde(default)]
    pub table: ScoreTable,
}

/// How PLAID's query x centroid score table is computed (it ranks candidates only; the
/// final scores come from the rescoring stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScoreTable {
    /// int8 where the CPU has AVX-512 VNNI, else f32.
    #[default]
    Auto,
    /// f32 products of the query and the centroids as stored.
    F32,
    /// Query and centroids quantised per vector to int8, exact integer products
    /// (`maxsim::int8`); the same bits on every CPU, fast with VNNI.
    Int8,
}

impl PlaidParams {
    /// Defaults by k: DESIGN.md's reference values, except for 10 < k <= 100, where the
    /// reference (2 cells, 1,024 docs) keeps 0.944 of the exhaustive top-100 on SciFact
    /// with MiniLM vectors; 4 cells and 1,536 docs keep 0.986, 7.1x faster than
    /// exhaustive search with the AVX-512 kernels (README, "PLAID"). MiniLM's token vectors were not trained for centroid
    /// interaction, so they need wider probing than ColBERTv2's.
    pub fn for_k(k: usize) -> Self {
        let (ncells, centroid_score_threshold, ndocs) = match k {
            0..=10 => (1, 0.5, 256),
            11..=100 => (4, 0.45, 1536),
            _ => (4, 0.4, (4 * k).max(4096)),
        };
        PlaidParams {
            ncells,
            centroid_score_threshold,
            ndocs,
            rescore: Rescore::Exact,
            refine_margin: None,
            exact_docs: k,
            table: ScoreTable::Auto,
        }
    }

    /// Settings under which PLAID must equal exhaustive search: every cell, no pruning,
    /// every document through both passes.
    pub fn exhaustive(num_centroids: usize, num_docs: usize) -> Self {
        PlaidParams {
            ncells: num_centroids,
            centroid_score_threshold: f32::NEG_INFINITY,
            ndocs: 4 * num_docs.max(1),
            rescore: Rescore::Exact,
            refine_margin: None,
            exact_docs: num_docs,
            table: ScoreTable::Auto,
        }
    }
}

/// What a query needs from the codec, computed once and shared by every segment:
/// query-token x centroid scores (full and pruned) and the cells to probe.
pub struct PlaidQuery {
    nq: usize,
    /// `scores[c * nq + i] = ⟨q_i, c⟩`.
    scores: Vec<f32>,
    /// Centroid interaction's tables: `scores` as bytes, `round(max(s, 0) / step)`, so
    /// the table (a quarter of the f32 one) stays in L2 while documents' codes gather
    /// rows of it at random; the full one, and the pruned one with every centroid no
    /// query token scores at or above the threshold at 0.
    /// `bytes[..k * nq]` is the full one, `bytes[k * nq..]` the pruned one.
    bytes: Vec<u8>,
    /// What one byte is worth: the table's largest score / 255.
    step: f32,
    /// The `ncells` best centroids of each query token, sorted, unique.
    cells: Vec<u32>,
    /// Whether `scores` is the int8 table (`maxsim::int8::score_table`).
    int8: bool,
}

impl PlaidCodec {
    /// Score the query against the centroids and pick the cells to probe.
    pub fn prepare(&self, query: MultiVectorRef<'_, f32>, params: &PlaidParams) -> PlaidQuery {
        let nq = query.len();
        // The buffers of this thread's previous query: fresh multi-MB allocations were
        // zero-filled page by page by the kernel at every query (perf: ~5% of a
        // SciFact search).
        let (mut scores, mut bytes) = SPARE.take().unwrap_or_default();
        self.centroid_scores_into(query, params.table, &mut scores);
        let k = self.num_centroids();
        let ncells = params.ncells.clamp(1, k);
        let mut cells = top_cells(&scores, nq, ncells);
        cells.sort_unstable();
        cells.dedup();
        let step = byte_tables(&scores, nq, params.centroid_score_threshold, &mut bytes);
        PlaidQuery {
            nq,
            scores,
            bytes,
            step,
            cells,
            int8: self.int8_table(params.table),
        }
    }
}

thread_local! {
    /// [`PlaidQuery`]'s tables, kept by the thread that dropped the last one.
    static SPARE: std::cell::Cell<Option<(Vec<f32>, Vec<u8>)>> = const { std::cell::Cell::new(None) };
}

impl Drop for PlaidQuery {
    fn drop(&mut self) {
        SPARE.set(Some((
            std::mem::take(&mut self.scores),
            std::mem::take(&mut self.bytes),
        )));
    }
}

impl PlaidQuery {
    /// The int8 centroid table, when this query's table is that one (what
    /// [`PlaidCodec::codes_query`] can borrow instead of computing it again).
    pub fn int8_scores(&self) -> Option<&[f32]> {
        self.int8.then_some(&self.scores[..])
    }

    fn full8(&self) -> &[u8] {
        &self.bytes[..self.scores.len()]
    }

    fn pruned8(&self) -> &[u8] {
        &self.bytes[self.scores.len()..]
    }
}

/// The byte tables of [`PlaidQuery`] from the f32 table into `bytes` (full, then
/// pruned): `⌊max(s, 0) / step + 0.5⌋` (at most 255) with `step` = the largest score
/// / 255 (1 if none is positive), which it returns; in the pruned one, rows whose every
/// score is below `threshold` are 0. Negative scores count 0: a document's best match
/// for a token is nearly always positive, and this ranks candidates only.
fn byte_tables(scores: &[f32], nq: usize, threshold: f32, bytes: &mut Vec<u8>) -> f32 {
    let top = scores.iter().copied().fold(0.0f32, f32::max);
    let step = if top > 0.0 { top / 255.0 } else { 1.0 };
    let inv = 1.0 / step;
    bytes.clear();
    // `as u8` saturates; the form without `round` (a libm call) vectorises.
    bytes.extend(
        scores
            .iter()
            .map(|&s| (s.max(0.0) * inv + 0.5).min(255.0) as u8),
    );
    bytes.extend_from_within(..);
    if nq > 0 {
        let pruned = &mut bytes[scores.len()..];
        for (row, p) in scores.chunks_exact(nq).zip(pruned.chunks_exact_mut(nq)) {
            if row.iter().all(|&s| s < threshold) {
                p.fill(0);
            }
        }
    }
    step
}

impl PlaidSegment {
    /// Allowed documents in the IVF lists of the query's cells.
    pub fn probe(&self, q: &PlaidQuery, allow: &Allow) -> Vec<u32> {
        let mut docs: Vec<u32> = q
            .cells
            .iter()
            .flat_map(|&c| self.ivf_list(c as usize))
            .copied()
            .collect();
        docs.sort_unstable();
        docs.dedup();
        if !allow.is_all() {
            docs.retain(|&d| allow.contains(d));
        }
        docs
    }

    /// With a filter, the query's own cells may hold fewer than `want` allowed documents:
    /// probe further cells, best first by their best score against any query token,
    /// until `want` allowed documents are found or every cell was probed (so a filtered
    /// search returns k results whenever k documents match).
    pub fn probe_widened(&self, q: &PlaidQuery, allow: &Allow, want: usize) -> Vec<u32> {
        let mut docs = self.probe(q, allow);
        if docs.len() >= want || q.nq == 0 {
            return docs;
        }
        let num_cells = q.scores.len() / q.nq;
        let best: Vec<f32> = q
            .scores
            .chunks_exact(q.nq)
            .map(|row| row.iter().copied().fold(f32::NEG_INFINITY, f32::max))
            .collect();
        let mut order: Vec<u32> = (0..num_cells as u32)
            .filter(|c| q.cells.binary_search(c).is_err())
            .collect();
        order.sort_by(|&a, &b| {
            best[b as usize]
                .total_cmp(&best[a as usize])
                .then(a.cmp(&b))
        });
        let mut found: roaring::RoaringBitmap = docs.iter().copied().collect();
        for c in order {
            for &d in self.ivf_list(c as usize) {
                if allow.contains(d) {
                    found.insert(d);
                }
            }
            if found.len() as usize >= want {
                break;
            }
        }
        docs = found.into_iter().collect();
        docs
    }

    /// Centroid interaction on a byte table ([`PlaidQuery`]):
    /// `step · Σ_i max_{j in doc} table[code_j, i]` for each document.
    pub fn interaction8(
        &self,
        store: &TokenStore,
        table: &[u8],
        nq: usize,
        step: f32,
        docs: &[u32],
    ) -> Vec<f32> {
        let codes = self.codes();
        docs.par_iter()
            .with_min_len(64)
            .map_init(
                || vec![0u8; nq],
                |best, &d| {
                    let (start, len) = (store.doc_offset(d as usize), store.doc_len(d as usize));
                    step * centroid_interaction8(&codes[start..start + len], table, nq, best) as f32
                },
            )
            .collect()
    }

    /// PLAID's candidate generation in this segment: the probed documents through the
    /// pruned pass (keep `ndocs`) and the full pass (keep `ndocs / 4`), with their full
    /// centroid-interaction scores (comparable across segments: one codec).
    pub fn candidates(
        &self,
        store: &TokenStore,
        q: &PlaidQuery,
        k: usize,
        params: &PlaidParams,
        allow: &Allow,
    ) -> Vec<Hit> {
        if q.nq == 0 {
            return Vec::new();
        }
        let keep = (params.ndocs / 4).max(k);
        let docs = match allow.is_filtered() {
            true => self.probe_widened(q, allow, keep),
            false => self.probe(q, allow),
        };
        let approx = self.interaction8(store, q.pruned8(), q.nq, q.step, &docs);
        let docs = top_docs(&docs, &approx, params.ndocs.max(k));
        let approx = self.interaction8(store, q.full8(), q.nq, q.step, &docs);
        let mut hits: Vec<Hit> = docs
            .iter()
            .zip(&approx)
            .map(|(&doc, &score)| Hit { doc, score })
            .collect();
        if hits.len() > keep {
            hits.select_nth_unstable_by(keep - 1, Hit::rank_cmp);
            hits.truncate(keep);
        }
        hits.sort_by(Hit::rank_cmp);
        hits
    }

    /// MaxSim of `docs` straight from their codes and residuals (what an index without
    /// the f16 store does, and `--rescore decompressed`): `maxsim::codes`' definition,
    /// the query quantised as for an int8 store, the same bits on every CPU; best `k`,
    /// ties by `ranks`.
    pub fn rescore_decompressed(
        &self,
        codec: &PlaidCodec,
        store: &TokenStore,
        query: &crate::maxsim::codes::CodesQuery<'_>,
        k: usize,
        docs: &[u32],
        ranks: &[u32],
    ) -> Vec<Hit> {
        use crate::maxsim::codes;
        let (codes_all, bytes) = (self.codes(), codec.residual_bytes());
        let kernel = Kernel::detect();
        docs.par_iter()
            .with_min_len(16)
            .fold(
                || TopK::new(k),
                |mut top, &d| {
                    let (start, len) = (store.doc_offset(d as usize), store.doc_len(d as usize));
                    let score = codes::maxsim_codes(
                        query,
                        bytes,
                        &codes_all[start..start + len],
                        self.residuals(start, start + len),
                        kernel,
                    );
                    top.push_tied(Hit { doc: d, score }, ranks[d as usize]);
                    top
                },
            )
            .reduce(|| TopK::new(k), TopK::merge)
            .into_sorted()
    }
}

impl PlaidSegment {
    /// Token-pruned MaxSim (`refine.rs`) of each of `docs`, on the stored f16 vectors
    /// (`Rescore::Exact`) or on vectors decompressed from code + residual.
    #[allow(clippy::too_many_arguments)]
    pub fn refine(
        &self,
        codec: &PlaidCodec,
        store: &TokenStore,
        q: &PlaidQuery,
        query: MultiVectorRef<'_, f32>,
        docs: &[u32],
        margin: f32,
        source: Rescore,
    ) -> Vec<Hit> {
        let (codes, dim) = (self.codes(), codec.dim());
        docs.par_iter()
            .with_min_len(32)
            .map_init(Refiner::default, |refiner, &d| {
                let (start, len) = (store.doc_offset(d as usize), store.doc_len(d as usize));
                let doc_codes = &codes[start..start + len];
                let rows = store.rows(d as usize);
                let score = match (source, rows) {
                    (Rescore::Exact, crate::store::DocRows::F16(rows)) => {
                        let kernel = refiner.kernel();
                        refiner.score(
                            query.as_slice(),
                            dim,
                            &q.scores,
                            doc_codes,
                            margin,
                            |j, out| kernel.convert_f16(rows.row(j), out),
                        )
                    }
                    (Rescore::Exact, crate::store::DocRows::Int8 { values, scales }) => refiner
                        .score(
                            query.as_slice(),
                            dim,
                            &q.scores,
                            doc_codes,
                            margin,
                            |j, out| {
                                let s = scales[j];
                                for (o, &v) in out.iter_mut().zip(values.row(j)) {
                                    *o = f32::from(v) * s;
                                }
                            },
                        ),
                    // Decompressed, or no vectors kept.
                    _ => refiner.score(
                        query.as_slice(),
                        dim,
                        &q.scores,
                        doc_codes,
                        margin,
                        |j, out| codec.decode(doc_codes[j], self.residual(start + j), out),
                    ),
                };
                Hit { doc: d, score }
            })
            .collect()
    }
}

/// The `ncells` best centroids of every query token (centroid-major `scores`), as one
/// pass over the table: each token keeps its best `ncells` so far, and a centroid row is
/// looked at token by token only where it beats some token's current `ncells`-th best
/// (one SIMD compare of the row against those thresholds). Replaces a `select_nth` per
/// token, which cost ~1 ms per SciFact query.
fn top_cells(scores: &[f32], nq: usize, ncells: usize) -> Vec<u32> {
    if nq == 0 {
        return Vec::new();
    }
    let k = scores.len() / nq;
    if ncells >= k {
        return (0..k as u32).collect();
    }
    let kernel = Kernel::detect();
    // Per token: (score, centroid) best first, at most ncells.
    let mut best: Vec<Vec<(f32, u32)>> = vec![Vec::with_capacity(ncells + 1); nq];
    let mut floor = vec![f32::NEG_INFINITY; nq];
    let mut hits = Vec::new();
    for c in 0..k {
        let row = &scores[c * nq..(c + 1) * nq];
        kernel.select_at_least(row, &floor, &mut hits);
        for &i in &hits {
            let (i, v) = (i as usize, row[i as usize]);
            let list = &mut best[i];
            // Ties keep the lower centroid id (the earlier one), as select_nth's order did
            // not matter here: only membership in the top ncells is used.
            if list.len() == ncells && v <= list[ncells - 1].0 {
                continue;
            }
            let at = list.partition_point(|&(s, _)| s >= v);
            list.insert(at, (v, c as u32));
            list.truncate(ncells);
            if list.len() == ncells {
                floor[i] = list[ncells - 1].0;
            }
        }
    }
    best.into_iter().flatten().map(|(_, c)| c).collect()
}

/// One document's centroid interaction: `Σ_i max_{c in codes} scores[c * nq + i]`.
/// `best` is scratch of length `nq`.
pub fn centroid_interaction(codes: &[u32], scores: &[f32], nq: usize, best: &mut [f32]) -> f32 {
    best.fill(f32::NEG_INFINITY);
    Kernel::detect().max_rows(codes, scores, nq, best);
    best.iter().sum()
}

/// One document's centroid interaction on a byte table, in table units:
/// `Σ_i max_{c in codes} table[c * nq + i]` (0 for no codes). `best` is scratch of
/// length `nq`.
pub fn centroid_interaction8(codes: &[u32], table: &[u8], nq: usize, best: &mut [u8]) -> u32 {
    best.fill(0);
    Kernel::detect().max_rows_u8(codes, table, nq, best);
    best.iter().map(|&b| u32::from(b)).sum()
}

/// The `keep` documents with the highest scores (all of them if fewer), in doc order.
fn top_docs(docs: &[u32], scores: &[f32], keep: usize) -> Vec<u32> {
    if docs.len() <= keep {
        return docs.to_vec();
    }
    let mut idx: Vec<usize> = (0..docs.len()).collect();
    // Ties by lower document number, as everywhere else.
    idx.select_nth_unstable_by(keep - 1, |&a, &b| {
        scores[b].total_cmp(&scores[a]).then(docs[a].cmp(&docs[b]))
    });
    let mut out: Vec<u32> = idx[..keep].iter().map(|&i| docs[i]).collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The byte tables: each byte within half a step of max(score, 0), the largest
    /// score at 255, pruned rows (every score below the threshold) 0 in the pruned half
    /// only; and byte interaction within nq / 2 steps of the f32 interaction on scores
    /// that are all positive.
    #[test]
    fn byte_tables_round_scores_and_prune_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (k, nq, threshold) = (300, 32, 0.45);
        let scores: Vec<f32> = (0..k * nq)
            .map(|i| match (i / nq) % 3 {
                0 => rng.gen_range(-0.3..0.44),
                _ => rng.gen_range(-0.3..0.95),
            })
            .collect();
        let mut bytes = Vec::new();
        let step = super::byte_tables(&scores, nq, threshold, &mut bytes);
        let top = scores.iter().copied().fold(0.0f32, f32::max);
        assert!((step - top / 255.0).abs() < 1e-9);
        let (full, pruned) = bytes.split_at(k * nq);
        for c in 0..k {
            let row = &scores[c * nq..(c + 1) * nq];
            let all_below = row.iter().all(|&s| s < threshold);
            for i in 0..nq {
                let want = row[i].max(0.0) / step;
                assert!(
                    (f32::from(full[c * nq + i]) - want).abs() <= 0.5001,
                    "{c} {i}"
                );
                let p = pruned[c * nq + i];
                assert_eq!(p, if all_below { 0 } else { full[c * nq + i] });
            }
        }
        assert!(full.contains(&255));
        // Interaction: positive scores only, so the bytes are the rounded scores.
        let pos: Vec<f32> = scores.iter().map(|s| s.abs() + 0.01).collect();
        let step = super::byte_tables(&pos, nq, f32::NEG_INFINITY, &mut bytes);
        let (mut best, mut best8) = (vec![0.0; nq], vec![0u8; nq]);
        for _ in 0..50 {
            let codes: Vec<u32> = (0..rng.gen_range(1..200))
                .map(|_| rng.gen_range(0..k as u32))
                .collect();
            let exact = super::centroid_interaction(&codes, &pos, nq, &mut best);
            let got = step
                * super::centroid_interaction8(&codes, &bytes[..k * nq], nq, &mut best8) as f32;
            assert!(
                (got - exact).abs() <= nq as f32 * step / 2.0 + 1e-4,
                "{got} vs {exact}"
            );
        }
    }

    /// The one-pass selection against sorting each token's column.
    #[test]
    fn top_cells_are_each_tokens_best_centroids() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (nq, k, ncells) in [
            (1, 10, 1),
            (32, 500, 1),
            (32, 500, 4),
            (7, 300, 9),
            (20, 16, 16),
            (5, 40, 100),
        ] {
            // Scores on a coarse grid, so ties occur.
            let scores: Vec<f32> = (0..nq * k)
                .map(|_| rng.gen_range(0..200) as f32 / 100.0)
                .collect();
            let mut got = super::top_cells(&scores, nq, ncells);
            got.sort_unstable();
            got.dedup();
            // Every token's ncells-th best score is reached by the cells picked for it.
            for i in 0..nq {
                let mut col: Vec<f32> = (0..k).map(|c| scores[c * nq + i]).collect();
                col.sort_by(|a, b| b.total_cmp(a));
                let kth = col[ncells.min(k) - 1];
                let picked = got
                    .iter()
                    .filter(|&&c| scores[c as usize * nq + i] >= kth)
                    .count();
                assert!(
                    picked >= ncells.min(k),
                    "token {i}: {picked} cells at or above {kth}"
                );
                // Nothing strictly better than the kth best is left out.
                for c in 0..k {
                    if scores[c * nq + i] > kth {
                        assert!(got.binary_search(&(c as u32)).is_ok());
                    }
                }
            }
        }
    }
}
