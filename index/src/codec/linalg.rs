//! Dense f32 products through `gemm` (the crate candle's CPU matmul uses), so k-means,
//! assignment and PLAID's centroid scores run at BLAS speed.

/// `out[i * nb + j] = ⟨a_i, b_j⟩` for row-major `a` (`na x dim`) and `b` (`nb x dim`).
/// Single-threaded: callers parallelise over blocks of `a`.
pub fn dot_matrix(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
    assert!(dim > 0 && a.len().is_multiple_of(dim) && b.len().is_multiple_of(dim));
    let (na, nb) = (a.len() / dim, b.len() / dim);
    assert_eq!(out.len(), na * nb, "output is na x nb");
    if na == 0 || nb == 0 {
        return;
    }
    // SAFETY: dst is na x nb row-major (col stride 1, row stride nb); lhs is `a`, na x dim
    // row-major; rhs is b^T, dim x nb, i.e. `b` read with col stride dim and row stride 1.
    // The three slices hold exactly na*nb, na*dim and nb*dim values (asserted above).
    unsafe {
        gemm::gemm(
            na,
            nb,
            dim,
            out.as_mut_ptr(),
            1,
            nb as isize,
            false,
            a.as_ptr(),
            1,
            dim as isize,
            b.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Index and value of the largest element (first on ties). `row` must not be empty.
pub fn argmax(row: &[f32]) -> (usize, f32) {
    let mut best = (0, row[0]);
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > best.1 {
            best = (i, v);
        }
    }
    best
}

pub fn normalize_rows(rows: &mut [f32], dim: usize) {
    for r in rows.chunks_exact_mut(dim) {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            r.iter_mut().for_each(|v| *v /= n);
        }
    }
}
