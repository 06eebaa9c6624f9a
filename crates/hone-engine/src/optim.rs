//! AdamW with per-parameter learning-rate scale and weight decay (parameter groups), global
//! gradient-norm clipping, and state that can be saved and restored.
//!
//! The update is `torch.optim.AdamW`'s: decoupled weight decay `p ← p·(1 − lr·wd)`, then
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`.

use std::borrow::Cow;
use std::collections::HashMap;

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::params::Param;
use crate::EngineError;

/// AdamW hyper-parameters shared by all groups.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWSettings {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        AdamWSettings {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// How one parameter is optimised: its share of the base learning rate and its weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    pub lr_scale: f64,
    pub weight_decay: f64,
}

/// Adam moments of one parameter: on the host for the CPU path, as device tensors otherwise.
enum Moments {
    Empty,
    Host { m: Vec<f32>, v: Vec<f32> },
    Device { m: Var, v: Var },
}

struct Slot {
    param: Param,
    group: ParamGroup,
    moments: Moments,
    step: u64,
}

impl Slot {
    /// The moments as host vectors (moving them there if needed).
    fn host(&mut self) -> Result<(&mut Vec<f32>, &mut Vec<f32>), EngineError> {
        let n = self.param.var().elem_count();
        let (m, v) = match std::mem::replace(&mut self.moments, Moments::Empty) {
            Moments::Empty => (vec![0f32; n], vec![0f32; n]),
            Moments::Host { m, v } => (m, v),
            Moments::Device { m, v } => (
                m.as_tensor().flatten_all()?.to_vec1::<f32>()?,
                v.as_tensor().flatten_all()?.to_vec1::<f32>()?,
            ),
        };
        self.moments = Moments::Host { m, v };
        match &mut self.moments {
            Moments::Host { m, v } => Ok((m, v)),
            _ => unreachable!("just set"),
        }
    }

    /// The moments as tensors on the parameter's device, if there are any yet.
    fn device(&self) -> Result<Option<(Tensor, Tensor)>, EngineError> {
        let var = self.param.var();
        Ok(match &self.moments {
            Moments::Empty => None,
            Moments::Device { m, v } => Some((m.as_detached_tensor(), v.as_detached_tensor())),
            Moments::Host { m, v } => Some((
                Tensor::from_slice(m, var.shape(), var.device())?,
                Tensor::from_slice(v, var.shape(), var.device())?,
            )),
        })
    }
}

/// One optimizer moment as a safetensors tensor, borrowing host moments (device moments are
/// copied to the host first).
pub struct MomentView<'a> {
    data: Cow<'a, [f32]>,
    shape: Vec<usize>,
}

impl safetensors::View for MomentView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        if cfg!(target_endian = "little") {
            Cow::Borrowed(bytemuck::cast_slice(&self.data))
        } else {
            Cow::Owned(le_bytes(&self.data))
        }
    }

    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

fn le_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Gradients of the trainable parameters, by parameter name.
#[derive(Default)]
pub struct Gradients {
    grads: HashMap<String, Tensor>,
}

impl Gradients {
    /// Collects the gradients of `params` from a backward pass and adds them to what was
    /// collected before (gradient accumulation).
    pub fn accumulate<'a>(
        &mut self,
        store: &candle_core::backprop::GradStore,
        params: impl Iterator<Item = &'a Param>,
    ) -> Result<(), EngineError> {
        for p in params {
            if let Some(g) = store.get(p.var().as_tensor()) {
                let g = g.detach();
                let sum = match self.grads.remove(p.name()) {
                    Some(prev) => (prev + g)?,
                    None => g,
                };
                self.grads.insert(p.name().to_string(), sum);
            }
        }
        Ok(())
    }

    /// Sets the gradient of a parameter (replacing any).
    pub fn insert(&mut self, name: &str, grad: Tensor) {
        self.grads.insert(name.to_string(), grad);
    }

    /// The gradient of a parameter, if it received one.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.grads.get(name)
    }

    /// Number of parameters with a gradient.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// True when no parameter received a gradient.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// The global L2 norm of all gradients.
    pub fn global_norm(&self) -> Result<f64, EngineError> {
        let mut total = 0f64;
        for g in self.grads.values() {
            total += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
        Ok(total.sqrt())
    }

    /// Multiplies every gradient by `factor` (clipping; nothing to do for 1).
    pub fn scale(&mut self, factor: f64) -> Result<(), EngineError> {
        if factor != 1.0 {
            for g in self.grads.values_mut() {
                *g = (&*g * factor)?;
            }
        }
        Ok(())
    }

    /// Scales gradients so their global norm is at most `max_norm` (as
    /// `torch.nn.utils.clip_grad_norm_`, which multiplies by `max_norm / (norm + 1e-6)` clamped
    /// to 1). Returns the norm before clipping.
    pub fn clip(&mut self, max_norm: f64) -> Result<f64, EngineError> {
        let norm = self.global_norm()?;
        self.scale((max_norm / (norm + 1e-6)).min(1.0))?;
        Ok(norm)
    }
}

/// The AdamW optimizer over a fixed list of parameters.
pub struct AdamW {
    settings: AdamWSettings,
    slots: Vec<Slot>,
}

/// Saved optimizer state: moments by parameter name and per-parameter step counts.
pub struct AdamWState {
    pub tensors: HashMap<String, Tensor>,
    pub steps: HashMap<String, u64>,
}

impl AdamW {
    /// An optimizer for `params`, each with its group settings.
    pub fn new(settings: AdamWSettings, params: Vec<(Param, ParamGroup)>) -> Self {
        AdamW {
            settings,
            slots: params
                .into_iter()
                .map(|(param, group)| Slot {
                    param,
                    group,
                    moments: Moments::Empty,
                    step: 0,
                })
                .collect(),
        }
    }

    /// Changes the group settings of a parameter (e.g. when a training phase changes).
    pub fn set_group(&mut self, name: &str, group: ParamGroup) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.param.name() == name) {
            slot.group = group;
        }
    }

    /// The group settings of a parameter.
    pub fn group(&self, name: &str) -> Option<ParamGroup> {
        self.slots
            .iter()
            .find(|s| s.param.name() == name)
            .map(|s| s.group)
    }

    /// One update with base learning rate `lr` from tensor gradients (any device).
    /// Parameters without a gradient (frozen, or outside the current phase) are left
    /// untouched, their step count included.
    pub fn step(&mut self, grads: &Gradients, lr: f64) -> Result<(), EngineError> {
        let AdamWSettings { beta1, beta2, eps } = self.settings;
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.param.name()) else {
                continue;
            };
            slot.step += 1;
            let lr = lr * slot.group.lr_scale;
            let var = slot.param.var().clone();
            let mut p = var.as_detached_tensor();
            if slot.group.weight_decay != 0.0 {
                p = (p * (1.0 - lr * slot.group.weight_decay))?;
            }
            let (m_prev, v_prev) = match slot.device()? {
                Some(mv) => mv,
                None => (g.zeros_like()?, g.zeros_like()?),
            };
            let m = ((m_prev * beta1)? + (g * (1.0 - beta1))?)?;
            let v = ((v_prev * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let t = slot.step as i32;
            let bias1 = 1.0 - beta1.powi(t);
            let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
            let denom = ((v.sqrt()? / bias2_sqrt)? + eps)?;
            let p = (p - (m.div(&denom)? * (lr / bias1))?)?;
            var.set(&p)?;
            slot.moments = Moments::Device {
                m: Var::from_tensor(&m)?,
                v: Var::from_tensor(&v)?,
            };
        }
        Ok(())
    }

    /// One update from the CPU path's gradient buffers (indexed as `store`), in place, with the
    /// gradients multiplied by `grad_scale` (clipping) on the fly.
    pub fn step_host(
        &mut self,
        grads: &crate::cpu::HostGrads,
        store: &crate::params::ParamStore,
        lr: f64,
        grad_scale: f32,
    ) -> Result<(), EngineError> {
        let AdamWSettings { beta1, beta2, eps } = self.settings;
        for slot in &mut self.slots {
            let Some(g) = store.index_of(slot.param.name()).and_then(|i| grads.get(i)) else {
                continue;
            };
            slot.step += 1;
            let t = slot.step as i32;
            let lr = lr * slot.group.lr_scale;
            let update = AdamUpdate {
                decay: (1.0 - lr * slot.group.weight_decay) as f32,
                beta1: beta1 as f32,
                beta2: beta2 as f32,
                one_minus_beta1: (1.0 - beta1) as f32,
                one_minus_beta2: (1.0 - beta2) as f32,
                eps: eps as f32,
                step_size: (lr / (1.0 - beta1.powi(t))) as f32,
                bias2_sqrt: (1.0 - beta2.powi(t)).sqrt() as f32,
                grad_scale,
            };
            let var = slot.param.var().clone();
            let (m, v) = slot.host()?;
            var.as_tensor().inplace_op1(&HostAdam {
                update,
                grad: g,
                moments: std::cell::RefCell::new((m.as_mut_slice(), v.as_mut_slice())),
            })?;
        }
        Ok(())
    }

    /// The optimizer steps taken per parameter (saved beside the moments).
    pub fn steps(&self) -> HashMap<String, u64> {
        self.slots
            .iter()
            .map(|slot| (slot.param.name().to_string(), slot.step))
            .collect()
    }

    /// The moments as safetensors views named `m.NAME` and `v.NAME`. Host moments are
    /// borrowed, not copied, so saving a checkpoint adds no optimizer-sized allocation.
    pub fn moment_views(&self) -> Result<Vec<(String, MomentView<'_>)>, EngineError> {
        let mut views = Vec::new();
        for slot in &self.slots {
            let shape = slot.param.var().dims().to_vec();
            let name = slot.param.name();
            let (m, v): (Cow<'_, [f32]>, Cow<'_, [f32]>) = match &slot.moments {
                Moments::Empty => continue,
                Moments::Host { m, v } => (Cow::Borrowed(m), Cow::Borrowed(v)),
                Moments::Device { m, v } => (
                    Cow::Owned(m.as_tensor().flatten_all()?.to_vec1::<f32>()?),
                    Cow::Owned(v.as_tensor().flatten_all()?.to_vec1::<f32>()?),
                ),
            };
            let m = MomentView {
                data: m,
                shape: shape.clone(),
            };
            let v = MomentView { data: v, shape };
            views.push((format!("m.{name}"), m));
            views.push((format!("v.{name}"), v));
        }
        Ok(views)
    }

    /// Restores the moments saved from [`AdamW::moment_views`] and the steps of [`AdamW::steps`].
    pub fn restore(&mut self, state: &AdamWState) -> Result<(), EngineError> {
        for slot in &mut self.slots {
            let name = slot.param.name().to_string();
            slot.step = state.steps.get(&name).copied().unwrap_or(0);
            let device = slot.param.var().device().clone();
            slot.moments = match (
                state.tensors.get(&format!("m.{name}")),
                state.tensors.get(&format!("v.{name}")),
            ) {
                (Some(m), Some(v)) => Moments::Device {
                    m: Var::from_tensor(&m.to_device(&device)?)?,
                    v: Var::from_tensor(&v.to_device(&device)?)?,
                },
                _ => Moments::Empty,
            };
        }
        Ok(())
    }
}

/// The per-parameter constants of one AdamW update.
#[derive(Clone, Copy)]
struct AdamUpdate {
    /// `1 − lr·weight_decay`
    decay: f32,
    beta1: f32,
    beta2: f32,
    /// `1 − β₁` and `1 − β₂`, computed in f64 as torch does (not from the rounded betas).
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    /// `lr / (1 − β₁ᵗ)`
    step_size: f32,
    /// `√(1 − β₂ᵗ)`
    bias2_sqrt: f32,
    grad_scale: f32,
}

/// AdamW applied in place to a parameter's storage, moments on the host.
struct HostAdam<'a> {
    update: AdamUpdate,
    grad: &'a [f32],
    moments: std::cell::RefCell<(&'a mut [f32], &'a mut [f32])>,
}

impl candle_core::InplaceOp1 for HostAdam<'_> {
    fn name(&self) -> &'static str {
        "adamw"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        use rayon::prelude::*;
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("the host AdamW needs f32 parameters");
        };
        if !layout.is_contiguous() || data.len() < layout.start_offset() + self.grad.len() {
            candle_core::bail!("the host AdamW needs a contiguous parameter");
        }
        let p = &mut data[layout.start_offset()..][..self.grad.len()];
        let mut moments = self.moments.borrow_mut();
        let (m, v) = &mut *moments;
        let u = self.update;
        const CHUNK: usize = 32_768;
        p.par_chunks_mut(CHUNK)
            .zip(self.grad.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
            .for_each(|((p, g), (m, v))| {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = g * u.grad_scale;
                    *m = u.beta1 * *m + u.one_minus_beta1 * g;
                    *v = u.beta2 * *v + u.one_minus_beta2 * g * g;
                    let denom = v.sqrt() / u.bias2_sqrt + u.eps;
                    *p = *p * u.decay - u.step_size * *m / denom;
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamPosition;
    use candle_core::Device;

    #[test]
    fn one_step_matches_the_formula() -> Result<(), EngineError> {
        let p = Param::new(
            "w",
            Tensor::new(&[1.0f32, -2.0], &Device::Cpu)?,
            ParamPosition::Head,
        )?;
        let mut opt = AdamW::new(
            AdamWSettings::default(),
            vec![(
                p.clone(),
                ParamGroup {
                    lr_scale: 1.0,
                    weight_decay: 0.1,
                },
            )],
        );
        let mut grads = Gradients::default();
        grads
            .grads
            .insert("w".into(), Tensor::new(&[0.5f32, 0.25], &Device::Cpu)?);
        opt.step(&grads, 0.01)?;
        // First step: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε) = lr·sign(g).
        let got = p.value().to_vec1::<f32>()?;
        let want = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) - 0.01];
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{got:?}");
        }
        Ok(())
    }

    #[test]
    fn clipping_scales_to_the_max_norm() -> Result<(), EngineError> {
        let mut grads = Gradients::default();
        grads
            .grads
            .insert("a".into(), Tensor::new(&[3.0f32, 4.0], &Device::Cpu)?);
        let before = grads.clip(1.0)?;
        assert!((before - 5.0).abs() < 1e-9);
        assert!((grads.global_norm()? - 1.0).abs() < 1e-5);
        Ok(())
    }
}
