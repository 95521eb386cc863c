//! Shared by the bench binaries.

use std::time::Instant;

/// Best-of-5 mean seconds per call over `iters` calls (the best run is the one least
/// disturbed by the rest of a shared machine).
pub fn seconds_per_call(iters: usize, mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_secs_f64() / iters as f64
        })
        .fold(f64::INFINITY, f64::min)
}
