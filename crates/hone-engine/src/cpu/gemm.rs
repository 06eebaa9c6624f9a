//! Row-major matrix products on top of the `gemm` crate (the same kernels candle uses), with
//! transposes expressed as strides so nothing is copied.

use gemm::Parallelism;

use super::bf16::PackedB;

/// A read-only row-major matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
/// The constructors check that every element lies inside `data`, which is what makes the
/// products below safe to call.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense `rows × cols` matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols)
    }

    /// A `rows × cols` block with rows `row_stride` apart (a column slice of a wider matrix).
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            rows == 0 || cols == 0 || (rows - 1) * row_stride + cols <= data.len(),
            "matrix view outside its data"
        );
        MatRef {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// The data with the row and column strides.
    pub fn parts(&self) -> (&'a [f32], usize, usize) {
        (self.data, self.row_stride, self.col_stride)
    }

    /// Rows `rows` of the matrix (a view).
    pub fn row_range(self, rows: std::ops::Range<usize>) -> Self {
        assert!(
            rows.start <= rows.end && rows.end <= self.rows,
            "rows outside the matrix"
        );
        let data = if rows.is_empty() || self.cols == 0 {
            &self.data[..0]
        } else {
            &self.data[rows.start * self.row_stride..]
        };
        MatRef {
            data,
            rows: rows.len(),
            ..self
        }
    }

    /// The transpose (a view).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }
}

/// How many threads a product may use.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Threads {
    /// The calling thread only (inside an already parallel loop).
    One,
    /// The rayon pool.
    All,
}

/// Checks that `c` holds an `m × n` product with rows `ldc` apart and settles the products
/// with nothing to multiply (an empty result; an empty inner dimension `k`: zeros, or nothing
/// added). True when a kernel has work left.
pub(super) fn product_to_run(
    c: &mut [f32],
    ldc: usize,
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
) -> bool {
    if m == 0 || n == 0 {
        return false;
    }
    assert!(ldc >= n, "output rows overlap");
    assert!(c.len() >= (m - 1) * ldc + n, "output too small");
    if k == 0 {
        if !accumulate {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return false;
    }
    true
}

/// `c = a · b` (or `c += a · b` when `accumulate`), `c` dense `a.rows × b.cols` with rows
/// `ldc` apart.
pub fn matmul(c: &mut [f32], ldc: usize, a: MatRef, b: MatRef, accumulate: bool, threads: Threads) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    if !product_to_run(c, ldc, (a.rows, b.cols, a.cols), accumulate) {
        return;
    }
    let parallelism = match threads {
        Threads::One => Parallelism::None,
        Threads::All => match rayon::current_num_threads() {
            0 | 1 => Parallelism::None,
            n => Parallelism::Rayon(n),
        },
    };
    // SAFETY: `product_to_run`'s asserts and the views' constructors keep every index the kernel
    // computes from (m, n, k, strides) inside the slices; `c` is borrowed mutably and does
    // not alias `a` or `b`.
    unsafe { gemm_raw(c.as_mut_ptr(), ldc, a, b, accumulate, parallelism) }
}

/// The `gemm` crate's call for row-major views.
///
/// # Safety
/// As [`matmul_into_raw`], with `parallelism` threads.
unsafe fn gemm_raw(
    c: *mut f32,
    ldc: usize,
    a: MatRef,
    b: MatRef,
    accumulate: bool,
    parallelism: Parallelism,
) {
    gemm::gemm(
        a.rows,
        b.cols,
        a.cols,
        c,
        1,
        ldc as isize,
        accumulate,
        a.data.as_ptr(),
        a.col_stride as isize,
        a.row_stride as isize,
        b.data.as_ptr(),
        b.col_stride as isize,
        b.row_stride as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        parallelism,
    );
}

/// The operands' precision of the CPU path's dense products.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Products {
    /// f32 operands (the `gemm` crate).
    #[default]
    F32,
    /// Operands rounded to bfloat16, sums in f32 (`super::bf16`, on CPUs with AVX512-BF16;
    /// f32 elsewhere).
    Bf16,
}

impl Products {
    /// [`matmul`] with operands in this precision; in bf16 `b` from `packed` (its packing)
    /// when given.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        self,
        c: &mut [f32],
        ldc: usize,
        a: MatRef,
        b: MatRef,
        packed: Option<&PackedB>,
        accumulate: bool,
        threads: Threads,
    ) {
        if self != Products::Bf16 || !super::bf16::available() {
            return matmul(c, ldc, a, b, accumulate, threads);
        }
        match packed {
            Some(b) => super::bf16::matmul_packed(c, ldc, a, b, accumulate, threads),
            None => super::bf16::matmul(c, ldc, a, b, accumulate, threads),
        }
    }
}

/// `y[rows × out] = x[rows × in] · wᵀ + bias`, with `w` `[out × in]` as stored by `nn.Linear`;
/// in bf16 `products` from `packed` (`wᵀ` packed, [`PackedB`]) when given.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    y: &mut [f32],
    x: &[f32],
    rows: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    in_f: usize,
    out_f: usize,
    products: Products,
    packed: Option<&PackedB>,
) {
    match bias {
        Some(b) => {
            for row in y.chunks_exact_mut(out_f).take(rows) {
                row.copy_from_slice(b);
            }
        }
        None => y[..rows * out_f].fill(0.0),
    }
    let (x, w) = (MatRef::new(x, rows, in_f), MatRef::new(w, out_f, in_f).t());
    products.matmul(y, out_f, x, w, packed, true, Threads::All);
}

/// Backward of [`linear`]: `dx (+)= dy · w` when `dx` is given (in bf16 `products` from
/// `packed`, `w` packed, when given), `dw += dyᵀ · x` and `db += Σ_rows dy` when given.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    dy: &[f32],
    x: &[f32],
    rows: usize,
    w: &[f32],
    in_f: usize,
    out_f: usize,
    dx: Option<(&mut [f32], bool)>,
    dw: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
    products: Products,
    packed: Option<&PackedB>,
) {
    let dy_m = MatRef::new(dy, rows, out_f);
    if let Some((dx, accumulate)) = dx {
        let w = MatRef::new(w, out_f, in_f);
        products.matmul(dx, in_f, dy_m, w, packed, accumulate, Threads::All);
    }
    if let Some(dw) = dw {
        let x = MatRef::new(x, rows, in_f);
        products.matmul(dw, in_f, dy_m.t(), x, None, true, Threads::All);
    }
    if let Some(db) = db {
        super::kernels::add_column_sums(db, dy, out_f);
    }
}

/// `c = a · b` (or `+=`) into a block addressed by a raw pointer with rows `ldc` apart, on the
/// calling thread.
///
/// # Safety
/// `c` must be valid for writes at `c + i * ldc + j` for every `i < a.rows`, `j < b.cols`, and
/// no other thread may read or write those elements during the call.
pub unsafe fn matmul_into_raw(c: *mut f32, ldc: usize, a: MatRef, b: MatRef, accumulate: bool) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    gemm_raw(c, ldc, a, b, accumulate, Parallelism::None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_with_transposes_match_the_naive_loop() {
        let (m, k, n) = (7, 5, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![0f32; m * n];
        matmul(
            &mut c,
            n,
            MatRef::new(&a, m, k),
            MatRef::new(&b, k, n),
            false,
            Threads::All,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5);
        }
        // aᵀ stored as k × m, bᵀ stored as n × k
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut c2 = vec![1f32; m * n];
        matmul(
            &mut c2,
            n,
            MatRef::new(&at, k, m).t(),
            MatRef::new(&bt, n, k).t(),
            true,
            Threads::One,
        );
        for (x, y) in c2.iter().zip(&want) {
            assert!((x - (y + 1.0)).abs() < 1e-5);
        }
    }

    #[test]
    fn linear_and_its_backward() {
        let (rows, inf, outf) = (4, 3, 2);
        let x: Vec<f32> = (0..rows * inf).map(|i| i as f32 * 0.1).collect();
        let w: Vec<f32> = (0..outf * inf).map(|i| 1.0 - i as f32 * 0.2).collect();
        let b = [0.5f32, -0.5];
        let mut y = vec![0f32; rows * outf];
        linear(
            &mut y,
            &x,
            rows,
            &w,
            Some(&b),
            inf,
            outf,
            Products::F32,
            None,
        );
        for r in 0..rows {
            for o in 0..outf {
                let want: f32 = (0..inf)
                    .map(|i| x[r * inf + i] * w[o * inf + i])
                    .sum::<f32>()
                    + b[o];
                assert!((y[r * outf + o] - want).abs() < 1e-6);
            }
        }
        let dy: Vec<f32> = (0..rows * outf).map(|i| (i as f32).cos()).collect();
        let (mut dx, mut dw, mut db) = (
            vec![0f32; rows * inf],
            vec![0f32; outf * inf],
            vec![0f32; outf],
        );
        linear_backward(
            &dy,
            &x,
            rows,
            &w,
            inf,
            outf,
            Some((&mut dx, false)),
            Some(&mut dw),
            Some(&mut db),
            Products::F32,
            None,
        );
        for r in 0..rows {
            for i in 0..inf {
                let want: f32 = (0..outf).map(|o| dy[r * outf + o] * w[o * inf + i]).sum();
                assert!((dx[r * inf + i] - want).abs() < 1e-5);
            }
        }
        for o in 0..outf {
            for i in 0..inf {
                let want: f32 = (0..rows).map(|r| dy[r * outf + o] * x[r * inf + i]).sum();
                assert!((dw[o * inf + i] - want).abs() < 1e-5);
            }
            let want: f32 = (0..rows).map(|r| dy[r * outf + o]).sum();
            assert!((db[o] - want).abs() < 1e-5);
        }
    }
}
