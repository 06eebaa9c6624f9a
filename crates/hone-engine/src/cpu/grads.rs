//! Gradient buffers of the CPU path: one per trainable parameter, kept across steps. Embedding
//! tables remember which rows a step touched, so clearing and measuring them costs the rows
//! used, not the whole vocabulary.

use rayon::prelude::*;

use crate::params::ParamStore;

/// Gradients by parameter index.
#[derive(Default)]
pub struct HostGrads {
    bufs: Vec<Vec<f32>>,
    active: Vec<bool>,
    /// For embedding tables: (row width, rows written since the last clear).
    rows: Vec<Option<(usize, Vec<u32>)>>,
    /// Written whole since the last clear (a table that is also a layer's weight: tied
    /// embeddings), so every row counts.
    whole: Vec<bool>,
}

impl HostGrads {
    /// Buffers for every parameter of `params` that is not frozen right now, zeroed. Call
    /// before each step: it follows changes of the frozen flags.
    pub fn prepare(&mut self, params: &ParamStore) {
        let n = params.all().len();
        self.bufs.resize_with(n, Vec::new);
        self.active.resize(n, false);
        self.rows.resize_with(n, || None);
        self.whole.resize(n, false);
        for (i, p) in params.all().iter().enumerate() {
            let active = !p.is_frozen();
            self.active[i] = active;
            if !active {
                continue;
            }
            let len = p.var().elem_count();
            if self.bufs[i].len() != len {
                self.bufs[i] = vec![0.0; len];
                self.rows[i] = None;
            } else {
                self.clear(i);
            }
        }
    }

    fn clear(&mut self, i: usize) {
        self.whole[i] = false;
        match self.rows[i].take() {
            Some((width, rows)) => {
                for r in rows {
                    self.bufs[i][r as usize * width..][..width].fill(0.0);
                }
            }
            None => self.bufs[i]
                .par_chunks_mut(65_536)
                .for_each(|c| c.fill(0.0)),
        }
    }

    /// True when parameter `i` receives a gradient.
    pub fn is_active(&self, i: usize) -> bool {
        self.active.get(i).copied().unwrap_or(false)
    }

    /// The gradient of parameter `i`, if it is trained.
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        self.is_active(i).then(|| self.bufs[i].as_slice())
    }

    /// The gradient buffer of parameter `i`, if it is trained.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut [f32]> {
        if self.is_active(i) {
            self.written_whole(i);
            Some(self.bufs[i].as_mut_slice())
        } else {
            None
        }
    }

    /// The buffers of two different parameters (a weight and its bias).
    pub fn pair(&mut self, a: usize, b: usize) -> (Option<&mut [f32]>, Option<&mut [f32]>) {
        assert_ne!(a, b, "a pair of distinct parameters");
        let (active_a, active_b) = (self.is_active(a), self.is_active(b));
        self.written_whole(a);
        self.written_whole(b);
        let (lo, hi) = (a.min(b), a.max(b));
        let (left, right) = self.bufs.split_at_mut(hi);
        let (x, y) = (&mut left[lo], &mut right[0]);
        let (first, second) = if a < b { (x, y) } else { (y, x) };
        (
            active_a.then_some(first.as_mut_slice()),
            active_b.then_some(second.as_mut_slice()),
        )
    }

    /// Parameter `i`'s buffer may now be written anywhere: clearing and norms cover all of it.
    fn written_whole(&mut self, i: usize) {
        if let Some(w) = self.whole.get_mut(i) {
            *w = true;
            self.rows[i] = None;
        }
    }

    /// `grad[i][row ids[t]] += src[t]` for every token `t` (embedding backward).
    pub fn scatter_rows(&mut self, i: usize, ids: &[u32], src: &[f32], width: usize) {
        if !self.is_active(i) {
            return;
        }
        let buf = &mut self.bufs[i];
        if self.whole[i] {
            for (&id, row) in ids.iter().zip(src.chunks_exact(width)) {
                let dst = &mut buf[id as usize * width..][..width];
                dst.iter_mut().zip(row).for_each(|(d, s)| *d += s);
            }
            return;
        }
        let entry = self.rows[i].get_or_insert_with(|| (width, Vec::new()));
        for (&id, row) in ids.iter().zip(src.chunks_exact(width)) {
            let dst = &mut buf[id as usize * width..][..width];
            dst.iter_mut().zip(row).for_each(|(d, s)| *d += s);
            entry.1.push(id);
        }
        entry.1.sort_unstable();
        entry.1.dedup();
    }

    /// Sum of squares of all gradients.
    pub fn squared_norm(&self) -> f64 {
        (0..self.bufs.len())
            .filter(|&i| self.active[i])
            .map(|i| match &self.rows[i] {
                Some((width, rows)) => rows
                    .iter()
                    .map(|&r| {
                        self.bufs[i][r as usize * width..][..*width]
                            .iter()
                            .map(|&v| (v as f64) * (v as f64))
                            .sum::<f64>()
                    })
                    .sum::<f64>(),
                // Collected in chunk order, then summed: rayon's own `sum` groups by work
                // stealing and would make the norm (and clipping) vary between runs.
                None => self.bufs[i]
                    .par_chunks(65_536)
                    .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
                    .collect::<Vec<f64>>()
                    .into_iter()
                    .sum::<f64>(),
            })
            .sum()
    }
}
