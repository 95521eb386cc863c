use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One scored document: its position in the store and its MaxSim score.
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

/// Heap entry ordered so that the *worst* kept hit is at the top of a max-heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Worst(Hit);

impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.rank_cmp(&other.0)
    }
}

/// Most entries a top-k heap reserves before it has seen any hit.
pub(crate) const PREALLOCATE: usize = 1024;

/// Keeps the best `k` hits seen.
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

    pub fn push(&mut self, hit: Hit) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Worst(hit));
        } else if let Some(mut worst) = self.heap.peek_mut() {
            if hit.rank_cmp(&worst.0) == Ordering::Less {
                *worst = Worst(hit);
            }
        }
    }

    pub fn merge(mut self, other: TopK) -> TopK {
        for w in other.heap {
            self.push(w.0);
        }
        self
    }

    /// Hits best first.
    pub fn into_sorted(self) -> Vec<Hit> {
        let mut v: Vec<Hit> = self.heap.into_iter().map(|w| w.0).collect();
        v.sort_by(Hit::rank_cmp);
        v
    }
}
