use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One scored document of one segment: its number there and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub doc: u32,
    pub score: f32,
}

impl Hit {
    /// Better first: higher score, then lower document number (deterministic ties).
    pub fn rank_cmp(&self, other: &Hit) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.doc.cmp(&other.doc))
    }
}

/// Heap entry ordered so that the *worst* kept hit is at the top of a max-heap: higher
/// score is better, then the lower tie key.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Worst(Hit, u32);

impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then(self.1.cmp(&other.1))
    }
}

/// Most entries a top-k heap reserves before it has seen any hit.
pub(crate) const PREALLOCATE: usize = 1024;

/// Keeps the best `k` hits seen. Equal scores are ordered by a tie key: the document
/// number ([`TopK::push`]) or one the caller gives ([`TopK::push_tied`]: a segment passes
/// the rank of the document's external id, so ties resolve the same whatever the
/// segment layout).
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            // A huge k (a caller's typo, a hostile request) must not allocate up front.
            heap: BinaryHeap::with_capacity(k.min(PREALLOCATE) + 1),
        }
    }

    /// Keep `hit` if it is among the best `k`; ties by document number.
    pub fn push(&mut self, hit: Hit) {
        self.push_tied(hit, hit.doc);
    }

    /// Keep `hit` if it is among the best `k`; ties by `tie` (lower first).
    pub fn push_tied(&mut self, hit: Hit, tie: u32) {
        if self.k == 0 {
            return;
        }
        let entry = Worst(hit, tie);
        if self.heap.len() < self.k {
            self.heap.push(entry);
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if entry < *worst {
                *worst = entry;
            }
        }
    }

    pub fn merge(mut self, other: TopK) -> TopK {
        for w in other.heap {
            self.push_tied(w.0, w.1);
        }
        self
    }

    /// Hits best first.
    pub fn into_sorted(self) -> Vec<Hit> {
        let mut v = self.heap.into_vec();
        v.sort();
        v.into_iter().map(|w| w.0).collect()
    }
}
