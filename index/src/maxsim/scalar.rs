use half::f16;

use crate::store::MultiVectorRef;

/// Reference MaxSim, written for clarity: the oracle the SIMD kernels are tested against.
pub fn maxsim_scalar(query: MultiVectorRef<'_, f32>, doc: MultiVectorRef<'_, f16>) -> f32 {
    assert_eq!(
        query.dim(),
        doc.dim(),
        "query and document dimensions differ"
    );
    if doc.is_empty() {
        return 0.0;
    }
    query
        .rows()
        .map(|q| {
            doc.rows()
                .map(|d| q.iter().zip(d).map(|(a, b)| a * b.to_f32()).sum::<f32>())
                .fold(f32::NEG_INFINITY, f32::max)
        })
        .sum()
}
