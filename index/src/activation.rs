//! Activation kernels for the encoder's transformer layers (`tessera` `src/encoder/
//! layers.rs`): the exact (erf) GELU and the row softmax, vectorised for the CPU with a
//! plain loop compiled under AVX-512 or AVX2+FMA target features, scalar elsewhere.
//! They live in this crate, not beside the layers, because this crate is optimised even
//! in the `ci` test profile: at opt-level 0 these loops made the encoder-heavy tests
//! several times slower.

/// Softmax of each `row`-long row of `src` into `dst`, vectorised for the CPU.
pub fn softmax_rows(src: &[f32], dst: &mut [f32], row: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { softmax_avx512(src, dst, row) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { softmax_avx2(src, dst, row) };
        }
    }
    softmax_loop(src, dst, row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_avx512(src: &[f32], dst: &mut [f32], row: usize) {
    softmax_loop(src, dst, row)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_avx2(src: &[f32], dst: &mut [f32], row: usize) {
    softmax_loop(src, dst, row)
}

#[inline(always)]
fn softmax_loop(src: &[f32], dst: &mut [f32], row: usize) {
    for (s, d) in src.chunks_exact(row).zip(dst.chunks_exact_mut(row)) {
        let max = lanes(s, f32::NEG_INFINITY, |a, v| if v > a { v } else { a });
        for (o, &v) in d.iter_mut().zip(s) {
            *o = exp_fast(v - max);
        }
        let inv = 1.0 / lanes(d, 0.0, |a, v| a + v);
        for o in d.iter_mut() {
            *o *= inv;
        }
    }
}

/// A reduction over 16 independent lanes (a float sum or max folded one value at a time
/// has an order the compiler must keep, so it would not vectorise).
#[inline(always)]
fn lanes(v: &[f32], init: f32, f: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    const L: usize = 16;
    let mut acc = [init; L];
    let chunks = v.chunks_exact(L);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..L {
            acc[j] = f(acc[j], c[j]);
        }
    }
    let mut out = rest.iter().fold(init, |a, &x| f(a, x));
    for a in acc {
        out = f(out, a);
    }
    out
}

/// e^x for x <= 0 (softmax's shifted scores): 2^n e^r with n = round(x log2 e) and a
/// degree-6 polynomial for e^r on |r| <= ln2/2 (Cephes' `expf` coefficients); below
/// -87 it returns 0, as `expf` does to within f32's normal range. No branch: it
/// vectorises.
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round();
    // x - n ln2 in two parts (Cody-Waite) to keep r exact.
    let r = n.mul_add(-0.693_359_4, x);
    let r = n.mul_add(2.121_944_4e-4, r);
    let mut p = r.mul_add(1.987_569_1e-4, 1.398_199_9e-3);
    p = r.mul_add(p, 8.333_452e-3);
    p = r.mul_add(p, 4.166_579_6e-2);
    p = r.mul_add(p, 1.666_666_5e-1);
    p = r.mul_add(p, 0.5);
    let e_r = (r * r).mul_add(p, r) + 1.0;
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    e_r * scale
}

/// `dst[i] = x (1 + erf(x / sqrt 2)) / 2` for `x = src[i]`, vectorised for the CPU.
pub fn gelu_erf_fast(src: &[f32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            return unsafe { gelu_avx512(src, dst) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA (checked just above).
            return unsafe { gelu_avx2(src, dst) };
        }
    }
    gelu_loop(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gelu_avx512(src: &[f32], dst: &mut [f32]) {
    gelu_loop(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(src: &[f32], dst: &mut [f32]) {
    gelu_loop(src, dst)
}

/// Plain loop the compiler vectorises for the target features of its caller.
#[inline(always)]
fn gelu_loop(src: &[f32], dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = 0.5 * x * (1.0 + erf_fast(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// erf(x) as the rational function x P(x^2) / Q(x^2) on x clamped to +-4 (erf(4) is 1 in
/// f32 to within 2e-8); the coefficients are the published ones of XLA's and Eigen's
/// `erf` for float. No branch, no table: it vectorises.
#[inline(always)]
pub fn erf_fast(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2.mul_add(-2.726_142_3e-10, 2.770_681_4e-8);
    p = x2.mul_add(p, -2.101_024_1e-6);
    p = x2.mul_add(p, -5.692_506_4e-5);
    p = x2.mul_add(p, -7.349_906_3e-4);
    p = x2.mul_add(p, -2.954_600_1e-3);
    p = x2.mul_add(p, -1.609_603_3e-2);
    let mut q = x2.mul_add(-1.456_607_2e-5, -2.133_740_6e-4);
    q = x2.mul_add(q, -1.682_827e-3);
    q = x2.mul_add(q, -7.373_329_2e-3);
    q = x2.mul_add(q, -1.426_474e-2);
    x * p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_erf_is_within_1e_6_of_erf() {
        let mut worst = 0f64;
        for i in -600_000..=600_000 {
            let x = i as f32 * 1e-5;
            let err = (f64::from(erf_fast(x)) - libm::erf(f64::from(x))).abs();
            worst = worst.max(err);
        }
        assert!(worst < 1e-6, "worst |erf_fast - erf| = {worst:e}");
        assert_eq!(erf_fast(f32::INFINITY), erf_fast(4.0));
        assert!((erf_fast(f32::NEG_INFINITY) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn fast_exp_is_within_2_ulp_of_exp_on_softmax_inputs() {
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let exact = f64::from(x).exp();
            let got = f64::from(exp_fast(x));
            assert!(
                (got - exact).abs() <= 2.5e-7 * exact + 1e-38,
                "x {x}: {got} vs {exact}"
            );
        }
        // Below -87 the clamp gives e^-87 (1.6e-38): nothing that moves a softmax.
        assert_eq!(exp_fast(-100.0), exp_fast(-87.0));
        assert_eq!(exp_fast(f32::NEG_INFINITY), exp_fast(-87.0));
        assert!(exp_fast(-87.0) < 2e-38);
    }

    #[test]
    fn fast_softmax_equals_the_f64_definition() {
        let row = 37;
        let src: Vec<f32> = (0..row * 50)
            .map(|i| {
                ((i * 7919) % 1000) as f32 * 0.013 - 6.0 - if i % 11 == 0 { 3e38 } else { 0.0 }
            })
            .collect();
        let mut dst = vec![0f32; src.len()];
        softmax_rows(&src, &mut dst, row);
        for (s, d) in src.chunks(row).zip(dst.chunks(row)) {
            let max = s
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let sum: f64 = s.iter().map(|&v| (f64::from(v) - max).exp()).sum();
            for (&v, &o) in s.iter().zip(d) {
                let exact = (f64::from(v) - max).exp() / sum;
                assert!((f64::from(o) - exact).abs() < 1e-6, "{o} vs {exact}");
            }
        }
    }

    #[test]
    fn fast_gelu_equals_the_scalar_definition_on_every_kernel_path() {
        let src: Vec<f32> = (0..10_007).map(|i| (i as f32 - 5_000.0) * 1.7e-3).collect();
        let mut fast = vec![0f32; src.len()];
        gelu_erf_fast(&src, &mut fast);
        let mut plain = vec![0f32; src.len()];
        gelu_loop(&src, &mut plain);
        for ((x, f), p) in src.iter().zip(&fast).zip(&plain) {
            let exact = 0.5 * f64::from(*x) * (1.0 + libm::erf(f64::from(*x) / 2f64.sqrt()));
            assert!(
                (f64::from(*f) - exact).abs() < 2e-6,
                "x {x}: {f} vs {exact}"
            );
            assert!(
                (f - p).abs() <= 1e-6 * p.abs().max(1.0),
                "x {x}: {f} vs {p}"
            );
        }
    }
}
