//! Prefix tuning on the host: a packed batch widened with a layer's prefix rows before every
//! sequence, so the ordinary attention kernel runs over `prefix + len` rows per sequence (the
//! prefix rows' own queries are zero and their outputs dropped), and back.

use crate::graph::Span;

/// The spans of the widened batch: each sequence `prefix` rows longer, shifted by the rows
/// added before it.
pub fn widened_spans(spans: &[Span], prefix: usize) -> Vec<Span> {
    spans
        .iter()
        .enumerate()
        .map(|(i, s)| Span {
            start: s.start + i * prefix,
            len: s.len + prefix,
        })
        .collect()
}

/// Where the prefix rows come from: columns `column..column + cols` of `table`, a
/// `[prefix × stride]` row-major buffer.
#[derive(Clone, Copy)]
pub struct PrefixRows<'a> {
    pub table: &'a [f32],
    pub stride: usize,
    pub column: usize,
}

/// Writes `x` (`[tokens × cols]`, sequences at `spans`) into `out` (the widened `[rows ×
/// cols]`), each sequence after its prefix rows: `rows`' values, or zeros.
pub fn widen(
    out: &mut [f32],
    x: &[f32],
    cols: usize,
    spans: &[Span],
    wide: &[Span],
    rows: Option<PrefixRows>,
) {
    for (s, w) in spans.iter().zip(wide) {
        let prefix = w.len - s.len;
        let head = &mut out[w.start * cols..(w.start + prefix) * cols];
        match rows {
            Some(r) => {
                for (i, row) in head.chunks_exact_mut(cols).enumerate() {
                    row.copy_from_slice(&r.table[i * r.stride + r.column..][..cols]);
                }
            }
            None => head.fill(0.0),
        }
        out[(w.start + prefix) * cols..(w.start + w.len) * cols]
            .copy_from_slice(&x[s.start * cols..(s.start + s.len) * cols]);
    }
}

/// The sequences' own rows of a widened buffer `x`, into `out` (`[tokens × cols]`).
pub fn narrow(out: &mut [f32], x: &[f32], cols: usize, spans: &[Span], wide: &[Span]) {
    for (s, w) in spans.iter().zip(wide) {
        let prefix = w.len - s.len;
        out[s.start * cols..(s.start + s.len) * cols]
            .copy_from_slice(&x[(w.start + prefix) * cols..(w.start + w.len) * cols]);
    }
}

/// Adds every sequence's prefix rows of the widened gradient `dx` into columns `column..+cols`
/// of `table_grad` (`[prefix × stride]`): the prefix is shared, its gradient is the sum.
pub fn add_prefix_grad(
    table_grad: &mut [f32],
    stride: usize,
    column: usize,
    dx: &[f32],
    cols: usize,
    spans: &[Span],
    wide: &[Span],
) {
    for (s, w) in spans.iter().zip(wide) {
        let prefix = w.len - s.len;
        for i in 0..prefix {
            let src = &dx[(w.start + i) * cols..][..cols];
            let dst = &mut table_grad[i * stride + column..][..cols];
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_puts_the_prefix_before_each_sequence_and_narrowing_undoes_it() {
        let spans = [Span { start: 0, len: 2 }, Span { start: 2, len: 1 }];
        let wide = widened_spans(&spans, 2);
        assert_eq!(
            wide,
            vec![Span { start: 0, len: 4 }, Span { start: 4, len: 3 }]
        );
        let x = [1.0, 2.0, 3.0];
        // A [2 × 3] table; the rows' column 1.
        let table = [0.0, 10.0, 0.0, 0.0, 20.0, 0.0];
        let rows = PrefixRows {
            table: &table,
            stride: 3,
            column: 1,
        };
        let mut out = vec![9.0; 7];
        widen(&mut out, &x, 1, &spans, &wide, Some(rows));
        assert_eq!(out, [10.0, 20.0, 1.0, 2.0, 10.0, 20.0, 3.0]);
        widen(&mut out, &x, 1, &spans, &wide, None);
        assert_eq!(out, [0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 3.0]);
        let mut back = vec![0.0; 3];
        narrow(&mut back, &out, 1, &spans, &wide);
        assert_eq!(back, x);
        let mut grad = vec![0.0; 6];
        let dx = [1.0, 2.0, 0.0, 0.0, 3.0, 4.0, 0.0];
        add_prefix_grad(&mut grad, 3, 1, &dx, 1, &spans, &wide);
        assert_eq!(grad, [0.0, 4.0, 0.0, 0.0, 6.0, 0.0]);
    }
}
