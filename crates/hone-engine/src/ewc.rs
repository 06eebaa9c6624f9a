//! Elastic weight consolidation (Kirkpatrick et al. 2017): continual learning without
//! forgetting the previous task. The diagonal of the Fisher information of the previous
//! task's model, estimated on that task's data, says how much each weight mattered; training
//! on the new task then pays `λ · Σᵢ Fᵢ · (θᵢ − θ*ᵢ)²` for moving weight `i` away from its
//! previous value `θ*ᵢ`. The head is the new task's own and is not held.
//!
//! The Fisher diagonal is the empirical one: the mean over (up to `samples`) examples of the
//! squared gradient of each example's loss, one example at a time, dropout off.

use std::collections::HashMap;

use candle_core::Tensor;
use hone_data::Batcher;

use crate::batch::EncodedSet;
use crate::cpu::HostGrads;
use crate::models::Model;
use crate::optim::Gradients;
use crate::params::{ParamPosition, ParamStore};
use crate::rng::HoneRng;
use crate::step::gradients;
use crate::EngineError;

/// One held weight tensor: its Fisher diagonal and the previous task's values.
struct Held {
    name: String,
    fisher: Vec<f32>,
    anchor: Vec<f32>,
}

/// The EWC penalty of a run.
pub struct Ewc {
    lambda: f64,
    held: Vec<Held>,
    /// Examples the Fisher diagonal was estimated on.
    pub samples: usize,
}

impl Ewc {
    /// Estimates the Fisher diagonal of `previous` (the previous task's model, its weights the
    /// anchor) on up to `samples` examples of `data` (its task's data), drawn with `seed`.
    pub fn estimate(
        previous: &Model,
        data: &EncodedSet,
        samples: usize,
        seed: u64,
        lambda: f64,
        on_progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, EngineError> {
        if data.is_empty() {
            return Err(EngineError::InvalidConfig(
                "EWC needs the previous task's examples to estimate what mattered".into(),
            ));
        }
        let order = hone_data::epoch_order(data.len(), seed, 0xE3C);
        let picked = &order[..samples.min(order.len()).max(1)];
        let batcher = Batcher::new(previous.spec().encoder.pad_token_id);
        let held_params: Vec<_> = previous
            .params()
            .all()
            .iter()
            .filter(|p| p.position() != ParamPosition::Head)
            .cloned()
            .collect();
        let mut fisher: HashMap<String, Vec<f32>> = held_params
            .iter()
            .map(|p| (p.name().to_string(), vec![0f32; p.var().elem_count()]))
            .collect();
        for (done, &i) in picked.iter().enumerate() {
            let batch = data.batch(&batcher, &[i]);
            let grads = gradients(previous, &batch, true, HoneRng::new(seed, i as u64))?;
            for (name, sum) in fisher.iter_mut() {
                if let Some(g) = grads.grads.get(name) {
                    let g = g.flatten_all()?.to_vec1::<f32>()?;
                    sum.iter_mut().zip(&g).for_each(|(s, g)| *s += g * g);
                }
            }
            on_progress(done + 1, picked.len());
        }
        let n = picked.len() as f32;
        let held = held_params
            .iter()
            .map(|p| {
                let mut f = fisher.remove(p.name()).unwrap_or_default();
                f.iter_mut().for_each(|x| *x /= n);
                Ok(Held {
                    name: p.name().to_string(),
                    fisher: f,
                    anchor: p.value().flatten_all()?.to_vec1::<f32>()?,
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok(Ewc {
            lambda,
            held,
            samples: picked.len(),
        })
    }

    /// The held tensors of `store`, paired with the parameter's index (tensors the new model
    /// lacks, or has in another shape, are skipped).
    fn pairs<'a>(&'a self, store: &'a ParamStore) -> impl Iterator<Item = (usize, &'a Held)> {
        self.held.iter().filter_map(move |h| {
            let i = store.index_of(&h.name)?;
            (store.all()[i].var().elem_count() == h.anchor.len()).then_some((i, h))
        })
    }

    /// Weight values of parameter `i` as a host vector.
    fn values(store: &ParamStore, i: usize) -> Result<Vec<f32>, EngineError> {
        Ok(store.all()[i].value().flatten_all()?.to_vec1::<f32>()?)
    }

    /// Adds the penalty's gradient `2λF(θ − θ*)` to the CPU path's gradient buffers of the
    /// trainable held weights, reading the weights in place; returns the penalty `λΣF(θ − θ*)²`.
    pub fn add_to_host(
        &self,
        store: &ParamStore,
        grads: &mut HostGrads,
    ) -> Result<f64, EngineError> {
        let guards = crate::graph::host::WeightGuards::lock(store);
        let weights = guards.weights()?;
        let mut penalty = 0f64;
        for (i, held) in self.pairs(store) {
            penalty += self.term(&weights[i], held, grads.get_mut(i));
        }
        Ok(penalty)
    }

    /// The same on tensor gradients (candle's autograd path).
    pub fn add_to_tensors(
        &self,
        store: &ParamStore,
        grads: &mut Gradients,
    ) -> Result<f64, EngineError> {
        let mut penalty = 0f64;
        for (i, held) in self.pairs(store) {
            let param = &store.all()[i];
            let Some(g) = grads.get(param.name()) else {
                penalty += self.term(&Self::values(store, i)?, held, None);
                continue;
            };
            let mut g = g.flatten_all()?.to_vec1::<f32>()?;
            penalty += self.term(&Self::values(store, i)?, held, Some(&mut g));
            let g = Tensor::from_vec(g, param.var().dims(), g_device(grads, param.name()))?;
            grads.insert(param.name(), g);
        }
        Ok(penalty)
    }

    /// One tensor's penalty, its gradient added into `grad` when the weight trains (in
    /// parallel chunks).
    fn term(&self, theta: &[f32], held: &Held, grad: Option<&mut [f32]>) -> f64 {
        use rayon::prelude::*;
        const CHUNK: usize = 32_768;
        let two_lambda = (2.0 * self.lambda) as f32;
        let chunks = theta
            .par_chunks(CHUNK)
            .zip(held.anchor.par_chunks(CHUNK))
            .zip(held.fisher.par_chunks(CHUNK));
        let sum: f64 = match grad {
            Some(grad) => chunks
                .zip(grad.par_chunks_mut(CHUNK))
                .map(|(((t, a), f), g)| {
                    let mut sum = 0f64;
                    for (((&t, &a), &f), g) in t.iter().zip(a).zip(f).zip(g.iter_mut()) {
                        let diff = t - a;
                        sum += (f * diff * diff) as f64;
                        *g += two_lambda * f * diff;
                    }
                    sum
                })
                .sum(),
            None => chunks
                .map(|((t, a), f)| {
                    t.iter()
                        .zip(a)
                        .zip(f)
                        .map(|((&t, &a), &f)| (f * (t - a) * (t - a)) as f64)
                        .sum::<f64>()
                })
                .sum(),
        };
        self.lambda * sum
    }

    /// The penalty `λΣF(θ − θ*)²` of the weights in `store` now.
    pub fn penalty(&self, store: &ParamStore) -> Result<f64, EngineError> {
        let mut total = 0f64;
        for (i, held) in self.pairs(store) {
            total += self.term(&Self::values(store, i)?, held, None);
        }
        Ok(total)
    }

    /// The mean Fisher value over every held weight (how much the previous task constrains).
    pub fn mean_fisher(&self) -> f64 {
        let (sum, n) = self.held.iter().fold((0f64, 0usize), |(s, n), h| {
            (
                s + h.fisher.iter().map(|&f| f as f64).sum::<f64>(),
                n + h.fisher.len(),
            )
        });
        sum / n.max(1) as f64
    }
}

fn g_device<'a>(grads: &'a Gradients, name: &str) -> &'a candle_core::Device {
    grads
        .get(name)
        .map(|g| g.device())
        .unwrap_or(&candle_core::Device::Cpu)
}
