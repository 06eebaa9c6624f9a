//! Matrix products with bfloat16 operands and f32 sums, for CPUs with AVX512-BF16 (AMD Zen 4
//! and later, Intel Cooper Lake and Sapphire Rapids and later): `vdpbf16ps` multiplies 32
//! bf16 pairs and adds each pair's two products into one of 16 f32 lanes, twice the
//! multiplications of an f32 FMA per instruction. The operands are rounded to bfloat16 (to
//! nearest, ties to even, as PyTorch's autocast casts them) when they are packed; every sum
//! stays f32. The `gemm` crate, which the f32 products use, has no bf16 kernel.
//!
//! Layout (the BLIS scheme): `a` is packed in panels of [`MR`] rows and `b` in panels of
//! [`NR`] columns, each as consecutive pairs along the inner dimension (one `u32` holds two
//! bf16). A micro-kernel keeps an `MR × NR` block of the result in 24 registers while it
//! walks up to [`KC`] pairs; blocks of [`MC`] × [`NC`] results are the parallel tasks.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::LocalKey;

use candle_core::TensorId;

use rayon::prelude::*;

use super::gemm::{MatRef, Threads};

/// Rows of the result a micro-kernel computes.
const MR: usize = 12;
/// Columns of the result a micro-kernel computes (two registers of 16 f32).
const NR: usize = 32;
/// Inner-dimension pairs a micro-kernel walks before it writes its block back (its `b`
/// panel, `KC · NR · 4` bytes, stays in the first-level cache).
const KC: usize = 192;
/// Rows of a parallel task.
const MC: usize = MR * 8;
/// Columns of a parallel task.
const NC: usize = NR * 8;

/// True when this CPU runs the bf16 products (AVX512-F and AVX512-BF16).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        return is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16");
        #[cfg(not(target_arch = "x86_64"))]
        false
    })
}

/// `x` rounded to bfloat16 (to nearest, ties to even; NaN stays NaN), its bits. Branch-free,
/// so that the packing loops vectorize.
#[inline(always)]
fn bf16_bits(x: f32) -> u32 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16;
    let nan = (bits & 0x7FFF_FFFF) > 0x7F80_0000;
    if nan {
        (bits >> 16) | 0x40
    } else {
        rounded
    }
}

/// Two values as one packed pair: `lo` in the low half.
#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo) | (bf16_bits(hi) << 16)
}

/// The rows of `a` (`m × k`) in panels of `width` rows: element `(panel, p, r)` at
/// `(panel · pairs + p) · width + r` holds `a[panel·width + r][2p]` and `[2p + 1]` (zero past
/// the edges). `b`'s columns are `bᵀ`'s rows.
fn pack(a: MatRef, width: usize) -> Vec<u32> {
    let mut packed = Vec::new();
    pack_into(a, width, &mut packed);
    packed
}

/// [`pack`] into `packed`'s first elements (it grows when short; reusing it spares the
/// fresh pages a new buffer faults in).
fn pack_into(a: MatRef, width: usize, packed: &mut Vec<u32>) {
    let (m, k) = (a.rows(), a.cols());
    let pairs = k.div_ceil(2);
    let len = m.div_ceil(width) * pairs * width;
    if len == 0 {
        return;
    }
    if packed.len() < len {
        packed.resize(len, 0);
    }
    let (data, row_stride, col_stride) = a.parts();
    packed[..len]
        .par_chunks_mut(pairs * width)
        .enumerate()
        .for_each(|(panel, out)| {
            let first = panel * width;
            let rows = width.min(m - first);
            if rows < width {
                for block in out.chunks_exact_mut(width) {
                    block[rows..].fill(0);
                }
            }
            if col_stride == 1 {
                // A row's pairs lie side by side: a block of the panel's rows at a time, each
                // row's pairs converted in a run and written across the block.
                const RUN: usize = 64;
                let mut converted = [0u32; RUN];
                for p0 in (0..pairs).step_by(RUN) {
                    let run = RUN.min(pairs - p0);
                    for r in 0..rows {
                        let row = &data[(first + r) * row_stride..][..k];
                        let values = &row[2 * p0..k.min(2 * (p0 + run))];
                        let (whole, last) = values.split_at(values.len() - values.len() % 2);
                        convert_pairs(whole, &mut converted[..whole.len() / 2]);
                        if let Some(&x) = last.first() {
                            converted[run - 1] = pair(x, 0.0);
                        }
                        for (p, &v) in converted[..run].iter().enumerate() {
                            out[(p0 + p) * width + r] = v;
                        }
                    }
                }
            } else if row_stride == 1 {
                // A pair's two values lie in neighbouring rows of the storage, the panel's
                // rows side by side in each.
                for (p, dst) in out.chunks_exact_mut(width).enumerate() {
                    let lo = &data[2 * p * col_stride + first..][..rows];
                    let dst = &mut dst[..rows];
                    if 2 * p + 1 < k {
                        let hi = &data[(2 * p + 1) * col_stride + first..][..rows];
                        for ((d, &x), &y) in dst.iter_mut().zip(lo).zip(hi) {
                            *d = pair(x, y);
                        }
                    } else {
                        for (d, &x) in dst.iter_mut().zip(lo) {
                            *d = pair(x, 0.0);
                        }
                    }
                }
            } else {
                for r in 0..rows {
                    for p in 0..pairs {
                        let hi = if 2 * p + 1 < k {
                            a.at(first + r, 2 * p + 1)
                        } else {
                            0.0
                        };
                        out[p * width + r] = pair(a.at(first + r, 2 * p), hi);
                    }
                }
            }
        });
}

/// A right-hand operand `b` (`k × n`) packed for [`matmul_packed`]: a weight's packing can be
/// kept while the weight does not change ([`PackedCache`]).
pub struct PackedB {
    panels: Vec<u32>,
    k: usize,
    n: usize,
}

impl PackedB {
    /// Packs `b` (rounded to bfloat16).
    pub fn new(b: MatRef) -> Self {
        PackedB {
            panels: pack(b.t(), NR),
            k: b.rows(),
            n: b.cols(),
        }
    }
}

/// The packed forms of the weights that are not trained, kept across steps (a frozen weight
/// does not change): by the weight's tensor (one stepper may serve several models, whose
/// parameters' positions overlap), as the forward product's `wᵀ` and as the backward
/// product's `w`.
#[derive(Default)]
pub struct PackedCache {
    packed: Mutex<HashMap<(TensorId, bool), Arc<PackedB>>>,
}

/// A weight's packings for a step's products: `wᵀ` for the forward product, `w` for the
/// input's gradient; `None` where the product packs the weight itself.
#[derive(Default)]
pub struct WeightPackings {
    pub forward: Option<Arc<PackedB>>,
    pub backward: Option<Arc<PackedB>>,
}

impl PackedCache {
    /// The packings of weight `id` (`w`, `[out × in]` as `nn.Linear` stores it) when it is
    /// `frozen`: made on first use (again when the shape differs) and kept; the backward one
    /// only when `backward`. A weight that is not frozen drops any it had (it changes) and
    /// gets none.
    pub fn weight(&self, id: TensorId, frozen: bool, w: MatRef, backward: bool) -> WeightPackings {
        let mut packed = self.packed.lock().unwrap_or_else(|e| e.into_inner());
        if !frozen {
            packed.remove(&(id, true));
            packed.remove(&(id, false));
            return WeightPackings::default();
        }
        let mut kept = |transposed: bool| {
            let b = if transposed { w.t() } else { w };
            let entry = packed
                .entry((id, transposed))
                .or_insert_with(|| Arc::new(PackedB::new(b)));
            if (entry.k, entry.n) != (b.rows(), b.cols()) {
                *entry = Arc::new(PackedB::new(b));
            }
            entry.clone()
        };
        WeightPackings {
            forward: Some(kept(true)),
            backward: backward.then(|| kept(false)),
        }
    }
}

/// `dst[i] = pair(src[2i], src[2i + 1])` (`src` twice as long as `dst`): 32 values an
/// instruction where AVX512-BF16 runs.
fn convert_pairs(src: &[f32], dst: &mut [u32]) {
    assert_eq!(src.len(), 2 * dst.len(), "two values a pair");
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: AVX512-BF16 is available; the lengths are checked above.
        return unsafe { convert_pairs_avx512(src, dst) };
    }
    for (d, two) in dst.iter_mut().zip(src.chunks_exact(2)) {
        *d = pair(two[0], two[1]);
    }
}

/// [`convert_pairs`] with `vcvtne2ps2bf16` (round to nearest even, as [`bf16_bits`]).
///
/// # Safety
/// AVX512-BF16 is available and `src.len() == 2 · dst.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn convert_pairs_avx512(src: &[f32], dst: &mut [u32]) {
    let n = dst.len();
    let mut i = 0;
    while i + 16 <= n {
        let lo = _mm512_loadu_ps(src.as_ptr().add(2 * i));
        let hi = _mm512_loadu_ps(src.as_ptr().add(2 * i + 16));
        let packed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst.as_mut_ptr().add(i) as *mut _, packed);
        i += 16;
    }
    for j in i..n {
        dst[j] = pair(src[2 * j], src[2 * j + 1]);
    }
}

/// `c = a · b` (or `c += a · b` when `accumulate`) with the operands rounded to bfloat16 and
/// the sums in f32; `c` dense `a.rows × b.cols` with rows `ldc` apart. Panics unless
/// [`available`].
pub fn matmul(c: &mut [f32], ldc: usize, a: MatRef, b: MatRef, accumulate: bool, threads: Threads) {
    assert_eq!(a.cols(), b.rows(), "inner dimensions differ");
    with_reused(&PACKED_B, |panels| {
        pack_into(b.t(), NR, panels);
        multiply(c, ldc, a, panels, (b.rows(), b.cols()), accumulate, threads)
    })
}

/// [`matmul`] with `b` already packed.
pub fn matmul_packed(
    c: &mut [f32],
    ldc: usize,
    a: MatRef,
    b: &PackedB,
    accumulate: bool,
    threads: Threads,
) {
    multiply(c, ldc, a, &b.panels, (b.k, b.n), accumulate, threads)
}

thread_local! {
    /// The operands' packings of one product after another, reused (fresh pages would
    /// cost a fifth of a decoder's step).
    static PACKED_A: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static PACKED_B: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// `f` over `buffer`'s vector, or a fresh one while it is in use (a product inside a product:
/// work stolen while this thread waits).
fn with_reused<R>(
    buffer: &'static LocalKey<RefCell<Vec<u32>>>,
    f: impl FnOnce(&mut Vec<u32>) -> R,
) -> R {
    buffer.with(|cell| match cell.try_borrow_mut() {
        Ok(mut reused) => f(&mut reused),
        Err(_) => f(&mut Vec::new()),
    })
}

/// `c (+)= a · b` with `b` (`k × n`) in `panels` as [`pack`] lays it out.
fn multiply(
    c: &mut [f32],
    ldc: usize,
    a: MatRef,
    panels: &[u32],
    (k, n): (usize, usize),
    accumulate: bool,
    threads: Threads,
) {
    assert!(available(), "this CPU has no AVX512-BF16");
    assert_eq!(a.cols(), k, "inner dimensions differ");
    let m = a.rows();
    if !super::gemm::product_to_run(c, ldc, (m, n, k), accumulate) {
        return;
    }
    let pairs = k.div_ceil(2);
    assert!(
        panels.len() >= n.div_ceil(NR) * pairs * NR,
        "b's panels too short"
    );
    with_reused(&PACKED_A, |packed_a| {
        pack_into(a, MR, packed_a);
        let packed_a = &packed_a[..];
        let tasks: Vec<(usize, usize)> = (0..m.div_ceil(MC))
            .flat_map(|i| (0..n.div_ceil(NC)).map(move |j| (i * MC, j * NC)))
            .collect();
        let out = SharedOut(c.as_mut_ptr());
        let run = |&(row, col): &(usize, usize)| {
            let task = Task {
                rows: row..(row + MC).min(m),
                cols: col..(col + NC).min(n),
                pairs,
            };
            // SAFETY: `available()` holds; the tasks' blocks of `c` are disjoint and inside
            // it (`product_to_run`'s asserts); the panels are `pack`'s, `pairs` long.
            unsafe { task.run(&out, ldc, packed_a, panels, accumulate) };
        };
        match threads {
            Threads::All if tasks.len() > 1 => tasks.par_iter().for_each(run),
            _ => tasks.iter().for_each(run),
        }
    })
}

/// The result's pointer, shared by tasks that write disjoint blocks of it.
struct SharedOut(*mut f32);
// SAFETY: every task writes its own block of the result only.
unsafe impl Sync for SharedOut {}

/// One block of the result.
struct Task {
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    pairs: usize,
}

impl Task {
    /// # Safety
    /// AVX512-BF16 is available; `out` points at a result with rows `ldc` apart that holds
    /// this block; the panels are packed for `pairs` pairs.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn run(&self, out: &SharedOut, ldc: usize, a: &[u32], b: &[u32], accumulate: bool) {
        for p0 in (0..self.pairs).step_by(KC) {
            let kc = KC.min(self.pairs - p0);
            let add = accumulate || p0 > 0;
            for col in self.cols.clone().step_by(NR) {
                let b_panel = &b[((col / NR) * self.pairs + p0) * NR..][..kc * NR];
                for row in self.rows.clone().step_by(MR) {
                    let a_panel = &a[((row / MR) * self.pairs + p0) * MR..][..kc * MR];
                    let valid = (MR.min(self.rows.end - row), NR.min(self.cols.end - col));
                    kernel(
                        a_panel,
                        b_panel,
                        kc,
                        out.0.add(row * ldc + col),
                        ldc,
                        valid,
                        add,
                    );
                }
            }
        }
    }

    /// Never called: [`available`] is false off x86-64.
    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run(&self, _: &SharedOut, _: usize, _: &[u32], _: &[u32], _: bool) {
        unreachable!("bf16 products need AVX512-BF16")
    }
}

/// `MR × NR` results over `kc` pairs: `c[r][j] (+)= Σ_p a[p][r] · b[p][j]` for the `valid`
/// rows and columns.
///
/// # Safety
/// AVX512-BF16 is available; `c` holds `valid.0` rows `ldc` apart of `valid.1` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn kernel(
    a: &[u32],
    b: &[u32],
    kc: usize,
    c: *mut f32,
    ldc: usize,
    valid: (usize, usize),
    add: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        let bp = b.as_ptr().add(p * NR);
        let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp as *const _));
        let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(16) as *const _));
        let ap = a.as_ptr().add(p * MR);
        for (r, row) in acc.iter_mut().enumerate() {
            let x: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r) as i32));
            row[0] = _mm512_dpbf16_ps(row[0], x, b0);
            row[1] = _mm512_dpbf16_ps(row[1], x, b1);
        }
    }
    let masks = [
        column_mask(valid.1.min(16)),
        column_mask(valid.1.saturating_sub(16)),
    ];
    for (r, row) in acc.iter().enumerate().take(valid.0) {
        for (half, (&v, &mask)) in row.iter().zip(&masks).enumerate() {
            if mask == 0 {
                // No column there: not even the pointer is formed.
                continue;
            }
            let dst = c.add(r * ldc + 16 * half);
            let v = match add {
                true => _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, dst)),
                false => v,
            };
            _mm512_mask_storeu_ps(dst, mask, v);
        }
    }
}

/// The mask of the first `n` (≤ 16) lanes.
#[cfg(target_arch = "x86_64")]
fn column_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::gemm::MatRef;
    use crate::rng::HoneRng;

    /// `a · b` in f64 from the operands rounded to bfloat16.
    fn reference(a: MatRef, b: MatRef) -> Vec<f64> {
        let round = |x: f32| half::bf16::from_f32(x).to_f32() as f64;
        let mut c = vec![0f64; a.rows() * b.cols()];
        for i in 0..a.rows() {
            for j in 0..b.cols() {
                c[i * b.cols() + j] = (0..a.cols())
                    .map(|p| round(a.at(i, p)) * round(b.at(p, j)))
                    .sum();
            }
        }
        c
    }

    /// Edges in every dimension (rows and columns past a panel, an odd inner dimension,
    /// several inner blocks), transposed views, and accumulation into a wider output.
    #[test]
    fn products_equal_the_rounded_operands_products_in_f64() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        for (m, n, k) in [
            (1, 1, 1),
            (13, 33, 7),
            (96, 256, 384),
            (101, 45, 2 * KC * 2 + 3),
        ] {
            for transposed in [false, true] {
                for accumulate in [false, true] {
                    let a_data = HoneRng::new(1, m as u64).normal(m * k, 1.0);
                    let b_data = HoneRng::new(2, n as u64).normal(k * n, 1.0);
                    let a = MatRef::new(&a_data, m, k);
                    // b as a view of its transpose's storage, or dense.
                    let b = match transposed {
                        true => MatRef::new(&b_data, n, k).t(),
                        false => MatRef::new(&b_data, k, n),
                    };
                    let ldc = n + 3;
                    let start = HoneRng::new(3, 0).normal(m * ldc, 1.0);
                    let mut c = start.clone();
                    matmul(&mut c, ldc, a, b, accumulate, Threads::All);
                    let want = reference(a, b);
                    let scale = want.iter().fold(1f64, |s, v| s.max(v.abs()));
                    for i in 0..m {
                        for j in 0..ldc {
                            let got = c[i * ldc + j] as f64;
                            let before = start[i * ldc + j] as f64;
                            let expected = match j < n {
                                true => want[i * n + j] + if accumulate { before } else { 0.0 },
                                false => before,
                            };
                            assert!(
                                (got - expected).abs() < 1e-5 * scale * (k as f64).sqrt(),
                                "{m}x{n}x{k} transposed {transposed} accumulate {accumulate} \
                                 at ({i}, {j}): {got} vs {expected}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// A frozen weight is packed once and reused; forgetting it (it trains now) packs it
    /// afresh, from its values then.
    #[test]
    fn the_cache_packs_a_frozen_weight_once_until_it_is_forgotten() {
        let cache = PackedCache::default();
        let id = candle_core::Tensor::zeros(1, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap()
            .id();
        let mut w = vec![1f32; 6];
        let first = cache.weight(id, true, MatRef::new(&w, 2, 3), false);
        assert!(first.backward.is_none());
        let first = first.forward.expect("frozen");
        let again = cache.weight(id, true, MatRef::new(&w, 2, 3), true);
        assert!(Arc::ptr_eq(&first, again.forward.as_ref().expect("kept")));
        let backward = again.backward.expect("asked for");
        assert_eq!((backward.k, backward.n), (2, 3));
        // Another shape under the same tensor is packed anew.
        let reshaped = cache.weight(id, true, MatRef::new(&w, 3, 2), false);
        assert_eq!(reshaped.forward.map(|p| (p.k, p.n)), Some((2, 3)));
        // Trained, it is dropped and gets none; frozen again, packed from its values then.
        let trained = cache.weight(id, false, MatRef::new(&w, 2, 3), true);
        assert!(trained.forward.is_none() && trained.backward.is_none());
        w[0] = 2.0;
        let fresh = cache.weight(id, true, MatRef::new(&w, 2, 3), false);
        let fresh = fresh.forward.expect("frozen");
        assert!(!Arc::ptr_eq(&first, &fresh));
        assert_eq!(fresh.panels[0], pair(2.0, 1.0));
    }

    /// Throughput against the f32 products (`cargo test --release -p hone-engine bf16 --
    /// --ignored --nocapture`).
    #[test]
    #[ignore]
    fn throughput() {
        if !available() {
            return;
        }
        for (m, n, k) in [
            (2048, 384, 384),
            (2048, 1536, 384),
            (2048, 384, 1536),
            (1024, 1536, 576),
            (1024, 576, 1536),
            (576, 1536, 1024),
            (2048, 2048, 2048),
        ] {
            let a = HoneRng::new(1, 0).normal(m * k, 1.0);
            let b = HoneRng::new(2, 0).normal(k * n, 1.0);
            let mut c = vec![0f32; m * n];
            let time = |f: &mut dyn FnMut()| {
                f();
                let t = std::time::Instant::now();
                for _ in 0..5 {
                    f();
                }
                t.elapsed().as_secs_f64() / 5.0
            };
            let (am, bm) = (MatRef::new(&a, m, k), MatRef::new(&b, n, k).t());
            let t16 = time(&mut || matmul(&mut c, n, am, bm, false, Threads::All));
            let t32 =
                time(&mut || crate::cpu::gemm::matmul(&mut c, n, am, bm, false, Threads::All));
            let flop = 2.0 * (m * n * k) as f64;
            let tp = time(&mut || {
                std::hint::black_box((pack(am, MR), pack(bm.t(), NR)));
            });
            println!(
                "  packing {:.2} ms, bf16 all {:.2} ms, f32 {:.2} ms",
                tp * 1e3,
                t16 * 1e3,
                t32 * 1e3
            );
            println!(
                "{m}x{n}x{k}: bf16 {:.0} GFLOP/s, f32 {:.0} GFLOP/s",
                flop / t16 / 1e9,
                flop / t32 / 1e9
            );
        }
    }
}
