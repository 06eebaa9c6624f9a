//! Scalar functions written so the compiler vectorises loops over them: `exp` by range
//! reduction and a polynomial, `erf` by a rational approximation (Eigen / XLA's), and exact-erf
//! GELU with its derivative. Accurate to a few units in the last place of f32.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
const LN_2_HI: f32 = 0.693_145_75;
const LN_2_LO: f32 = 1.428_606_8e-6;

/// e^x for f32, relative error below 2e-7 on [-87, 88]; 0 below, +inf above.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.7);
    // x = n·ln2 + r, |r| ≤ ln2/2; adding and subtracting 1.5·2²³ rounds to the nearest integer
    // without a call to `roundf`, so the loop vectorises.
    const ROUND: f32 = 12_582_912.0;
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN_2_HI - n * LN_2_LO;
    // e^r by a degree-6 Taylor/minimax polynomial
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_452 + r * 0.001_388_89)))));
    // scale by 2^n through the exponent bits
    let bits = ((n as i32 + 127) as u32) << 23;
    p * f32::from_bits(bits)
}

/// The error function, max absolute error 5e-7 (clamped outside [-4, 4] where |erf| = 1 in
/// f32).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906_3e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    let mut q = -1.456_607_2e-5f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329_2e-3;
    q = q * x2 + -1.426_474e-2;
    (x * p / q).clamp(-1.0, 1.0)
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π)
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// Exact GELU: x·Φ(x) = x/2 · (1 + erf(x/√2)).
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

/// d GELU / dx = Φ(x) + x·φ(x).
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    0.5 * (1.0 + erf(x * FRAC_1_SQRT_2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x)
}

/// The tanh approximation of GELU ("gelu_new").
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    let inner = 0.797_884_6 * (x + 0.044_715 * x * x * x);
    0.5 * x * (1.0 + tanh(inner))
}

/// Derivative of [`gelu_tanh`]. `1 − tanh²` is computed as sech² = 4e^{2y}/(e^{2y}+1)² so it
/// keeps its precision where tanh rounds to ±1.
#[inline(always)]
pub fn gelu_tanh_grad(x: f32) -> f32 {
    let inner = (0.797_884_6 * (x + 0.044_715 * x * x * x)).clamp(-9.0, 9.0);
    let e = exp(2.0 * inner);
    let t = (e - 1.0) / (e + 1.0);
    let sech2 = 4.0 * e / ((e + 1.0) * (e + 1.0));
    0.5 * (1.0 + t) + 0.5 * x * sech2 * 0.797_884_6 * (1.0 + 3.0 * 0.044_715 * x * x)
}

/// tanh through [`exp`].
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let x = x.clamp(-9.0, 9.0);
    let e = exp(2.0 * x);
    (e - 1.0) / (e + 1.0)
}

/// Logistic sigmoid through [`exp`].
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Σ xs with eight independent accumulators, so the loop vectorises.
#[inline]
pub fn sum(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (l, v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Σ aᵢ·bᵢ with eight independent accumulators.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((l, p), q) in lanes.iter_mut().zip(x).zip(y) {
            *l += p * q;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Σ (xᵢ − c)² with eight independent accumulators.
#[inline]
pub fn sum_sq_dev(xs: &[f32], c: f32) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|v| (v - c) * (v - c)).sum();
    for ch in chunks {
        for (l, v) in lanes.iter_mut().zip(ch) {
            *l += (v - c) * (v - c);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep() -> impl Iterator<Item = f32> {
        (-40_000..=40_000).map(|i| i as f32 * 1.5e-4)
    }

    #[test]
    fn lane_sums_match_plain_sums() {
        let xs: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin()).collect();
        let ys: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).cos()).collect();
        let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        close(sum(&xs), xs.iter().sum());
        close(dot(&xs, &ys), xs.iter().zip(&ys).map(|(a, b)| a * b).sum());
        close(
            sum_sq_dev(&xs, 0.25),
            xs.iter().map(|v| (v - 0.25) * (v - 0.25)).sum(),
        );
    }

    #[test]
    fn exp_is_accurate() {
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(
                ((got - want) / want).abs() < 3e-7,
                "exp({x}) = {got} vs {want}"
            );
        }
        assert_eq!(exp(-200.0), exp(-87.3));
        assert!(exp(-200.0) < 1e-37);
    }

    #[test]
    fn erf_and_gelu_are_accurate() {
        for x in sweep() {
            let want = libm::erf(x as f64);
            assert!((erf(x) as f64 - want).abs() < 5e-7, "erf({x})");
            let g = 0.5 * x as f64 * (1.0 + libm::erf(x as f64 / 2f64.sqrt()));
            assert!(
                (gelu(x) as f64 - g).abs() < 5e-7 * (1.0 + x.abs() as f64),
                "gelu({x})"
            );
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for i in -600..=600 {
            let x = i as f64 * 0.01;
            let h = 1e-5;
            let exact_gelu = |x: f64| 0.5 * x * (1.0 + libm::erf(x / 2f64.sqrt()));
            let fd = (exact_gelu(x + h) - exact_gelu(x - h)) / (2.0 * h);
            assert!((gelu_grad(x as f32) as f64 - fd).abs() < 1e-6, "gelu'({x})");
            let tanh_gelu =
                |x: f64| 0.5 * x * (1.0 + (0.7978845608 * (x + 0.044715 * x * x * x)).tanh());
            let fd = (tanh_gelu(x + h) - tanh_gelu(x - h)) / (2.0 * h);
            assert!(
                (gelu_tanh_grad(x as f32) as f64 - fd).abs() < 1e-6,
                "gelu_tanh'({x})"
            );
            assert!((tanh(x as f32) as f64 - x.tanh()).abs() < 3e-7, "tanh({x})");
        }
    }
}
