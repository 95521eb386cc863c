//! Reading the impact postings and scoring queries: exhaustive term-at-a-time, and
//! term-at-a-time MaxScore with the same integer arithmetic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

use serde::Serialize;

use super::{SparseVector, QUERY_WEIGHT_MAX};
use crate::allow::Allow;
use crate::error::{IndexError, Result};
use crate::maxsim::Hit;
use crate::segment::{ComponentKind, MappedFile, SparseFiles};

/// The SPLADE component, memory-mapped and validated at open.
pub struct SparseIndex {
    file: MappedFile,
    vocab_size: usize,
    num_postings: usize,
    scale: f32,
}

/// Documents' sparse vectors read back in order, one block of documents at a time
/// ([`SparseIndex::document_cursor`]).
pub struct DocumentCursor<'a> {
    index: &'a SparseIndex,
    per_doc: Vec<u32>,
    block_postings: usize,
    /// First document of the block in `vectors`.
    start: usize,
    vectors: Vec<SparseVector>,
}

impl DocumentCursor<'_> {
    /// Document `d`'s vector. Documents are asked for in increasing order (some may be
    /// skipped); asking for an earlier block reads it again.
    pub fn get(&mut self, d: usize) -> &SparseVector {
        if d < self.start || d >= self.start + self.vectors.len() {
            let mut end = d + 1;
            let mut held = self.per_doc[d] as usize;
            while end < self.per_doc.len()
                && held + self.per_doc[end] as usize <= self.block_postings
            {
                held += self.per_doc[end] as usize;
                end += 1;
            }
            self.start = d;
            self.vectors = self.index.document_vectors(d as u32..end as u32);
        }
        &self.vectors[d - self.start]
    }
}

/// How much of its postings a query read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SparseStats {
    /// Postings in the lists of the query's terms.
    pub postings: usize,
    /// Postings read: every entry walked, plus every entry compared while skipping.
    pub touched: usize,
}

impl SparseIndex {
    pub fn open(dir: &Path, files: &SparseFiles, num_docs: usize, verify: bool) -> Result<Self> {
        let file = MappedFile::open(dir, &files.postings, ComponentKind::SparsePostings, verify)?;
        let v = files.vocab_size;
        let p = files.num_postings;
        let want = (v + 1) * 8 + v.next_multiple_of(8) + p * 4 + p;
        if file.payload().len() != want {
            return Err(IndexError::corrupt(
                file.path(),
                format!(
                    "holds {} bytes, expected {want} for a vocabulary of {v} and {p} postings",
                    file.payload().len()
                ),
            ));
        }
        if !(files.scale.is_finite() && files.scale > 0.0) {
            return Err(IndexError::Manifest {
                path: dir.join(crate::segment::MANIFEST_NAME),
                reason: format!("sparse scale {} is not a positive number", files.scale),
            });
        }
        let index = SparseIndex {
            file,
            vocab_size: v,
            num_postings: p,
            scale: files.scale,
        };
        index.validate(num_docs)?;
        Ok(index)
    }

    /// Offsets monotone and complete, lists strictly increasing and inside the store,
    /// impacts non-zero, upper bounds equal to the lists' maxima: search relies on each.
    fn validate(&self, num_docs: usize) -> Result<()> {
        let bad = |reason: String| Err(IndexError::corrupt(self.file.path(), reason));
        let offsets = self.offsets();
        if offsets[0] != 0
            || offsets[self.vocab_size] as usize != self.num_postings
            || offsets.windows(2).any(|w| w[0] > w[1])
        {
            return bad("term offsets are not monotone over the postings".into());
        }
        let max_impact = self.max_impacts();
        for (t, &bound) in max_impact.iter().enumerate() {
            let (docs, impacts) = self.list(t);
            if docs.windows(2).any(|w| w[0] >= w[1]) {
                return bad(format!("postings of term {t} are not strictly increasing"));
            }
            if docs.last().is_some_and(|&d| d as usize >= num_docs) {
                return bad(format!(
                    "postings of term {t} name a document beyond the store"
                ));
            }
            if impacts.contains(&0) || impacts.iter().max().copied().unwrap_or(0) != bound {
                return bad(format!("impacts of term {t} disagree with its upper bound"));
            }
        }
        Ok(())
    }

    fn offsets(&self) -> &[u64] {
        bytemuck::cast_slice(&self.file.payload()[..(self.vocab_size + 1) * 8])
    }

    fn max_impacts(&self) -> &[u8] {
        let start = (self.vocab_size + 1) * 8;
        &self.file.payload()[start..start + self.vocab_size]
    }

    fn docs(&self) -> &[u32] {
        let start = (self.vocab_size + 1) * 8 + self.vocab_size.next_multiple_of(8);
        bytemuck::cast_slice(&self.file.payload()[start..start + self.num_postings * 4])
    }

    fn impacts(&self) -> &[u8] {
        let p = self.file.payload();
        &p[p.len() - self.num_postings..]
    }

    /// Term `t`'s postings: document numbers (increasing) and their impacts.
    pub fn list(&self, t: usize) -> (&[u32], &[u8]) {
        let o = self.offsets();
        let (a, b) = (o[t] as usize, o[t + 1] as usize);
        (&self.docs()[a..b], &self.impacts()[a..b])
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Documents `docs`' sparse vectors back from the postings (weights dequantised:
    /// impact x scale), for rewriting documents into a merged segment. Each list is
    /// sorted by document, so only its part inside `docs` is read.
    pub fn document_vectors(&self, docs: std::ops::Range<u32>) -> Vec<SparseVector> {
        let mut pairs: Vec<Vec<(u32, f32)>> = vec![Vec::new(); (docs.end - docs.start) as usize];
        for t in 0..self.vocab_size {
            let (list, impacts) = self.list(t);
            let a = list.partition_point(|&d| d < docs.start);
            let b = a + list[a..].partition_point(|&d| d < docs.end);
            for (&d, &i) in list[a..b].iter().zip(&impacts[a..b]) {
                pairs[(d - docs.start) as usize].push((t as u32, f32::from(i) * self.scale));
            }
        }
        pairs.into_iter().map(SparseVector::from_pairs).collect()
    }

    /// Every document's vector in order, a block of documents at a time (about
    /// `block_postings` postings each), so a merge holds one block, not the segment.
    pub fn document_cursor(&self, num_docs: usize, block_postings: usize) -> DocumentCursor<'_> {
        let mut per_doc = vec![0u32; num_docs];
        for &d in self.docs() {
            per_doc[d as usize] += 1;
        }
        DocumentCursor {
            index: self,
            per_doc,
            block_postings: block_postings.max(1),
            start: 0,
            vectors: Vec::new(),
        }
    }

    pub fn num_postings(&self) -> usize {
        self.num_postings
    }

    /// Query terms as integer weights, plus the factor that turns an integer score back
    /// into `Σ q_t w_t` (approximately: both sides are quantised).
    fn quantise_query(&self, query: &SparseVector) -> (Vec<(usize, u64)>, f64) {
        let qmax = query.weights().iter().copied().fold(0.0f32, f32::max);
        if qmax <= 0.0 {
            return (Vec::new(), 0.0);
        }
        let qscale = f64::from(qmax) / f64::from(QUERY_WEIGHT_MAX);
        let terms = query
            .iter()
            .filter(|&(t, _)| (t as usize) < self.vocab_size)
            .map(|(t, w)| (t as usize, (f64::from(w) / qscale).round() as u64))
            .filter(|&(t, w)| w > 0 && !self.list(t).0.is_empty())
            .collect();
        (terms, qscale * f64::from(self.scale))
    }

    /// Exact top-`k` by scoring every posting of every query term (the reference).
    pub fn search_exhaustive(
        &self,
        query: &SparseVector,
        k: usize,
        allow: &Allow,
    ) -> (Vec<Hit>, SparseStats) {
        let (terms, factor) = self.quantise_query(query);
        let mut stats = SparseStats::default();
        let Some(len) = terms
            .iter()
            .filter_map(|&(t, _)| self.list(t).0.last())
            .max()
            .map(|&d| d as usize + 1)
        else {
            return (Vec::new(), stats);
        };
        let mut acc = vec![0u64; len];
        for &(t, w) in &terms {
            let (docs, impacts) = self.list(t);
            for (&d, &i) in docs.iter().zip(impacts) {
                acc[d as usize] += w * u64::from(i);
            }
            stats.postings += docs.len();
        }
        stats.touched = stats.postings;
        let mut top = IntTopK::new(k);
        for (d, &s) in acc.iter().enumerate() {
            if s > 0 && allow.contains(d as u32) {
                top.push(s, d as u32);
            }
        }
        (top.into_hits(factor), stats)
    }

    /// Exact top-`k` with MaxScore pruning, term at a time (Turtle & Flood 1995): same
    /// results as [`Self::search_exhaustive`], touching fewer postings.
    ///
    /// Lists are taken in decreasing order of their upper bound `q_t · max impact`. A
    /// bar below which no document can be in the top k is kept: a value at least k
    /// partial scores reach (partial scores only grow; see [`Accumulators::bar`]). While the
    /// bounds of the lists still to come sum to at least the bar, a document not seen yet
    /// could still make it, so lists are walked whole into a dense accumulator. Once they
    /// sum to less, only documents already seen can: each remaining list is merely probed
    /// (galloping search) for those whose partial score plus the remaining bounds still
    /// reaches the bar, and the set shrinks list by list. Documents are dropped only when
    /// their bound is strictly below the bar, so ties resolve exactly as in exhaustive
    /// scoring (higher score, then lower document number). Documents `allow` excludes
    /// never accumulate (so they cannot raise the bar).
    pub fn search(&self, query: &SparseVector, k: usize, allow: &Allow) -> (Vec<Hit>, SparseStats) {
        let (terms, factor) = self.quantise_query(query);
        let mut lists: Vec<Cursor> = terms
            .iter()
            .map(|&(t, w)| {
                let (docs, impacts) = self.list(t);
                Cursor {
                    docs,
                    impacts,
                    pos: 0,
                    weight: w,
                    bound: w * u64::from(self.max_impacts()[t]),
                }
            })
            .collect();
        let mut stats = SparseStats {
            postings: lists.iter().map(|c| c.docs.len()).sum(),
            touched: 0,
        };
        if k == 0 || lists.is_empty() {
            return (Vec::new(), stats);
        }
        lists.sort_by_key(|c| Reverse(c.bound));
        // remaining[i] = Σ bounds of lists i.. (remaining[m] = 0).
        let mut remaining = vec![0u64; lists.len() + 1];
        for i in (0..lists.len()).rev() {
            remaining[i] = remaining[i + 1] + lists[i].bound;
        }
        let len = lists
            .iter()
            .filter_map(|c| c.docs.last())
            .max()
            .map_or(0, |&d| d as usize + 1);
        let mut acc = Accumulators::new(len, remaining[0]);
        let mut seen: Vec<u32> = Vec::new();
        let mut bar = 0u64;

        let mut next = 0;
        while next < lists.len() && remaining[next] >= bar {
            let c = &lists[next];
            for (&d, &i) in c.docs.iter().zip(c.impacts) {
                if allow.contains(d) && acc.add(d, c.weight * u64::from(i)) {
                    seen.push(d);
                }
            }
            stats.touched += c.docs.len();
            next += 1;
            bar = bar.max(acc.bar(k));
        }

        let mut survivors = seen;
        if next < lists.len() {
            survivors.retain(|&d| acc.get(d) + remaining[next] >= bar);
            survivors.sort_unstable();
            let mut alive = vec![false; len];
            for &d in &survivors {
                alive[d as usize] = true;
            }
            for j in next..lists.len() {
                let c = &mut lists[j];
                // Probing costs about log(gap) per survivor: walk instead when the
                // survivors are dense in this list.
                if survivors.len() * 4 >= c.docs.len() {
                    for (&d, &i) in c.docs.iter().zip(c.impacts) {
                        if alive[d as usize] {
                            acc.add(d, c.weight * u64::from(i));
                        }
                    }
                    stats.touched += c.docs.len();
                } else {
                    for &d in &survivors {
                        stats.touched += c.seek(d);
                        if c.doc() == d {
                            acc.add(d, c.take());
                        }
                    }
                }
                bar = bar.max(acc.bar(k));
                survivors.retain(|&d| {
                    let keep = acc.get(d) + remaining[j + 1] >= bar;
                    alive[d as usize] = keep;
                    keep
                });
            }
        }
        let mut top = IntTopK::new(k);
        for d in survivors {
            top.push(acc.get(d), d);
        }
        (top.into_hits(factor), stats)
    }
}

/// Dense per-document partial scores, plus a histogram of them in power-of-two-wide
/// buckets (about 1,024 over the query's maximum score): the floor of the bucket holding
/// the k-th largest partial score is a bar found in O(buckets), kept up to date in O(1)
/// per posting.
struct Accumulators {
    acc: Vec<u64>,
    histogram: Vec<u32>,
    shift: u32,
}

impl Accumulators {
    fn new(len: usize, max_score: u64) -> Self {
        let shift = (max_score / 1024).max(1).ilog2() + 1;
        Accumulators {
            acc: vec![0; len],
            histogram: vec![0; (max_score >> shift) as usize + 1],
            shift,
        }
    }

    fn get(&self, d: u32) -> u64 {
        self.acc[d as usize]
    }

    /// Add `s` (> 0) to document `d`; true when `d` had no score yet.
    fn add(&mut self, d: u32, s: u64) -> bool {
        let a = &mut self.acc[d as usize];
        let new = *a == 0;
        if !new {
            self.histogram[(*a >> self.shift) as usize] -= 1;
        }
        *a += s;
        self.histogram[(*a >> self.shift) as usize] += 1;
        new
    }

    /// A score at least k documents' partial scores reach (0 if fewer than k have one).
    /// Partial scores only grow, so no top-k document can score below it.
    fn bar(&self, k: usize) -> u64 {
        let mut count = 0usize;
        for (b, &n) in self.histogram.iter().enumerate().rev() {
            count += n as usize;
            if count >= k {
                return (b as u64) << self.shift;
            }
        }
        0
    }
}

/// A position in one term's postings.
struct Cursor<'a> {
    docs: &'a [u32],
    impacts: &'a [u8],
    pos: usize,
    weight: u64,
    bound: u64,
}

impl Cursor<'_> {
    /// Current document, `u32::MAX` when exhausted.
    fn doc(&self) -> u32 {
        self.docs.get(self.pos).copied().unwrap_or(u32::MAX)
    }

    /// Score contribution at the current position; moves past it.
    fn take(&mut self) -> u64 {
        let s = self.weight * u64::from(self.impacts[self.pos]);
        self.pos += 1;
        s
    }

    /// Move to the first posting ≥ `target` (galloping, then binary search); returns
    /// the number of entries compared.
    fn seek(&mut self, target: u32) -> usize {
        if self.doc() >= target {
            return 1;
        }
        let n = self.docs.len();
        // Invariant: docs[lo] < target.
        let (mut lo, mut step, mut compared) = (self.pos, 1usize, 1usize);
        let mut hi = lo + step;
        while hi < n && self.docs[hi] < target {
            compared += 1;
            lo = hi;
            step *= 2;
            hi = lo + step;
        }
        let hi = hi.min(n);
        let window = &self.docs[lo + 1..hi];
        compared += window.len().max(1).ilog2() as usize + 1;
        self.pos = lo + 1 + window.partition_point(|&d| d < target);
        compared
    }
}

/// The best `k` (integer score, document): higher score first, then lower document.
struct IntTopK {
    k: usize,
    /// Max-heap on (Reverse(score), doc): the top is the worst kept entry.
    heap: BinaryHeap<(Reverse<u64>, u32)>,
}

impl IntTopK {
    fn new(k: usize) -> Self {
        IntTopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(crate::maxsim::PREALLOCATE) + 1),
        }
    }

    fn push(&mut self, score: u64, doc: u32) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push((Reverse(score), doc));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if (Reverse(score), doc) < *worst {
                *worst = (Reverse(score), doc);
            }
        }
    }

    fn into_hits(self, factor: f64) -> Vec<Hit> {
        let mut v = self.heap.into_vec();
        v.sort_unstable();
        v.into_iter()
            .map(|(Reverse(s), doc)| Hit {
                doc,
                score: (s as f64 * factor) as f32,
            })
            .collect()
    }
}
