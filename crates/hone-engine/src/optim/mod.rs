//! The optimizers of a run — AdamW, SGD with momentum (and Nesterov) and LAMB — with
//! per-parameter learning-rate scale and weight decay (parameter groups), global gradient-norm
//! clipping, and state that can be saved and restored.
//!
//! Each update is its PyTorch reference's:
//! - AdamW (`torch.optim.AdamW`): decoupled weight decay `p ← p·(1 − lr·wd)`, then
//!   `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`.
//! - SGD (`torch.optim.SGD`): L2 decay folded into the gradient `d = g + wd·p`; with momentum
//!   μ the buffer is `b ← d` on the first step and `b ← μb + (1−dampening)d` after; the step is
//!   `p ← p − lr·b`, or `p ← p − lr·(d + μb)` with Nesterov.
//! - LAMB (You et al. 2020, algorithm 2; `tests/reference/lamb.py`): Adam's bias-corrected
//!   direction plus decoupled decay, `u = m̂/(√v̂ + ε) + wd·p`, scaled per tensor by the trust
//!   ratio `‖p‖/‖u‖` (1 when either norm is 0): `p ← p − lr·‖p‖/‖u‖·u`.

use std::borrow::Cow;
use std::collections::HashMap;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::params::Param;
use crate::EngineError;

mod in_place;
mod multi_tensor;

/// Which update rule trains the parameters.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with decoupled weight decay: the default for fine-tuning transformers.
    #[default]
    AdamW,
    /// Stochastic gradient descent with momentum (and optionally Nesterov's).
    Sgd,
    /// Adam with a per-tensor trust ratio (LAMB): made for large batches.
    Lamb,
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "adamw" | "adam" => Ok(OptimizerKind::AdamW),
            "sgd" => Ok(OptimizerKind::Sgd),
            "lamb" => Ok(OptimizerKind::Lamb),
            other => Err(format!(
                "unknown optimizer '{other}': use adamw, sgd or lamb"
            )),
        }
    }
}

/// An update rule with its hyper-parameters (shared by all groups).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Rule {
    AdamW {
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
    Sgd {
        momentum: f64,
        dampening: f64,
        nesterov: bool,
    },
    Lamb {
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
}

impl Default for Rule {
    fn default() -> Self {
        Rule::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl Rule {
    /// Names of the state tensors the rule keeps per parameter (`m.NAME`, `v.NAME` in a
    /// checkpoint): Adam's two moments, SGD's momentum buffer.
    pub fn buffers(self) -> &'static [&'static str] {
        match self {
            Rule::AdamW { .. } | Rule::Lamb { .. } => &["m", "v"],
            Rule::Sgd { momentum, .. } if momentum != 0.0 => &["m"],
            Rule::Sgd { .. } => &[],
        }
    }
}

/// How one parameter is optimised: its share of the base learning rate and its weight decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    pub lr_scale: f64,
    pub weight_decay: f64,
}

/// The rule's state of one parameter: on the host for the CPU path, as device tensors
/// otherwise (kept as the update made them: no copy into variables).
enum State {
    Empty,
    Host(Vec<Vec<f32>>),
    Device(Vec<Tensor>),
}

struct Slot {
    param: Param,
    group: ParamGroup,
    state: State,
    step: u64,
}

impl Slot {
    /// The state as host vectors (moving them there, or zero-filling them, if needed).
    fn host(&mut self, buffers: usize) -> Result<&mut Vec<Vec<f32>>, EngineError> {
        let n = self.param.var().elem_count();
        let host = match std::mem::replace(&mut self.state, State::Empty) {
            State::Empty => vec![vec![0f32; n]; buffers],
            State::Host(h) => h,
            State::Device(vars) => vars
                .iter()
                .map(|v| v.flatten_all()?.to_vec1::<f32>())
                .collect::<Result<_, _>>()?,
        };
        self.state = State::Host(host);
        match &mut self.state {
            State::Host(h) => Ok(h),
            _ => unreachable!("just set"),
        }
    }

    /// The state as tensors on the parameter's device, if there is any yet.
    fn device(&self) -> Result<Option<Vec<Tensor>>, EngineError> {
        let var = self.param.var();
        Ok(match &self.state {
            State::Empty => None,
            State::Device(vars) => Some(vars.clone()),
            State::Host(h) => Some(
                h.iter()
                    .map(|b| Tensor::from_slice(b, var.shape(), var.device()))
                    .collect::<Result<_, _>>()?,
            ),
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

    /// The global L2 norm of all gradients (read back once: on a GPU each read waits for
    /// the queued work).
    pub fn global_norm(&self) -> Result<f64, EngineError> {
        // In name order: the same sum, bit for bit, whatever the map's order.
        let mut named: Vec<(&String, &Tensor)> = self.grads.iter().collect();
        named.sort_unstable_by_key(|(name, _)| *name);
        let grads: Vec<&Tensor> = named.into_iter().map(|(_, g)| g).collect();
        if let Some(totals) = multi_tensor::sums_of_squares(&grads)? {
            return Ok(totals.iter().map(|&t| t as f64).sum::<f64>().sqrt());
        }
        let squares = grads
            .iter()
            .map(|g| g.to_dtype(candle_core::DType::F32)?.sqr()?.sum_all())
            .collect::<Result<Vec<_>, _>>()?;
        if squares.is_empty() {
            return Ok(0.0);
        }
        let total = Tensor::stack(&squares, 0)?
            .to_dtype(candle_core::DType::F64)?
            .sum_all()?
            .to_scalar::<f64>()?;
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

/// An optimizer over a fixed list of parameters.
pub struct Optimizer {
    rule: Rule,
    slots: Vec<Slot>,
}

impl Optimizer {
    /// An optimizer for `params`, each with its group settings.
    pub fn new(rule: Rule, params: Vec<(Param, ParamGroup)>) -> Self {
        Optimizer {
            rule,
            slots: params
                .into_iter()
                .map(|(param, group)| Slot {
                    param,
                    group,
                    state: State::Empty,
                    step: 0,
                })
                .collect(),
        }
    }

    /// The update rule.
    pub fn rule(&self) -> Rule {
        self.rule
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

    /// One update with base learning rate `lr` from tensor gradients (any device), each
    /// gradient multiplied by `grad_scale` first (clipping, an fp16 loss scale undone).
    /// Parameters without a gradient (frozen, or outside the current phase) are left
    /// untouched, their step count and state included: a parameter unfrozen later starts
    /// from zero state. AdamW updates f32 parameters in place, all of them in one kernel on a
    /// GPU (`multi_tensor`); the other rules, and other dtypes, compose the update.
    pub fn step(&mut self, grads: &Gradients, lr: f64, grad_scale: f64) -> Result<(), EngineError> {
        let rule = self.rule;
        let mut in_place_jobs = Vec::new();
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.param.name()) else {
                continue;
            };
            slot.step += 1;
            let lr = lr * slot.group.lr_scale;
            let wd = slot.group.weight_decay;
            let var = slot.param.var().clone();
            let p = var.as_detached_tensor();
            let previous = slot.device()?;
            if let Rule::AdamW { beta1, beta2, eps } = rule {
                let g = g.contiguous()?;
                let (m, v) = match previous.as_deref() {
                    Some([m, v]) => (m.clone(), v.clone()),
                    _ => (p.zeros_like()?, p.zeros_like()?),
                };
                if in_place::supports([&p, &g, &m, &v]) {
                    in_place_jobs.push(multi_tensor::AdamJob {
                        p,
                        g,
                        m: m.clone(),
                        v: v.clone(),
                        u: AdamUpdate::new(beta1, beta2, eps, lr, wd, slot.step),
                    });
                    slot.state = State::Device(vec![m, v]);
                    continue;
                }
            }
            let scaled;
            let g = if grad_scale == 1.0 {
                g
            } else {
                scaled = (g * grad_scale)?;
                &scaled
            };
            let (p, state) = match rule {
                Rule::AdamW { beta1, beta2, eps } => {
                    let (m, v) = adam_moments(previous, g, beta1, beta2)?;
                    let p = if wd != 0.0 { (p * (1.0 - lr * wd))? } else { p };
                    let t = slot.step as i32;
                    let bias1 = 1.0 - beta1.powi(t);
                    let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
                    let denom = ((v.sqrt()? / bias2_sqrt)? + eps)?;
                    let p = (p - (m.div(&denom)? * (lr / bias1))?)?;
                    (p, vec![m, v])
                }
                Rule::Lamb { beta1, beta2, eps } => {
                    let (m, v) = adam_moments(previous, g, beta1, beta2)?;
                    let t = slot.step as i32;
                    let m_hat = (&m / (1.0 - beta1.powi(t)))?;
                    let v_hat = (&v / (1.0 - beta2.powi(t)))?;
                    let mut u = m_hat.div(&(v_hat.sqrt()? + eps)?)?;
                    if wd != 0.0 {
                        u = (u + (&p * wd)?)?;
                    }
                    let trust = trust_ratio(l2_norm(&p)?, l2_norm(&u)?);
                    let p = (p - (u * (lr * trust))?)?;
                    (p, vec![m, v])
                }
                Rule::Sgd {
                    momentum,
                    dampening,
                    nesterov,
                } => {
                    let d = if wd != 0.0 {
                        (g + (&p * wd)?)?
                    } else {
                        g.clone()
                    };
                    if momentum == 0.0 {
                        ((p - (d * lr)?)?, Vec::new())
                    } else {
                        let buf = match previous.and_then(|s| s.into_iter().next()) {
                            Some(b) => ((b * momentum)? + (&d * (1.0 - dampening))?)?,
                            None => d.clone(),
                        };
                        let dir = if nesterov {
                            (d + (&buf * momentum)?)?
                        } else {
                            buf.clone()
                        };
                        ((p - (dir * lr)?)?, vec![buf])
                    }
                }
            };
            var.set(&p)?;
            slot.state = State::Device(state);
        }
        multi_tensor::adamw(&in_place_jobs, grad_scale as f32)?;
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
        let rule = self.rule;
        let buffers = rule.buffers().len();
        for slot in &mut self.slots {
            let Some(g) = store.index_of(slot.param.name()).and_then(|i| grads.get(i)) else {
                continue;
            };
            slot.step += 1;
            let t = slot.step as i32;
            let lr = lr * slot.group.lr_scale;
            let wd = slot.group.weight_decay;
            let update = match rule {
                Rule::AdamW { beta1, beta2, eps } => {
                    HostRule::AdamW(AdamUpdate::new(beta1, beta2, eps, lr, wd, slot.step))
                }
                Rule::Lamb { beta1, beta2, eps } => HostRule::Lamb(LambUpdate {
                    beta1: beta1 as f32,
                    beta2: beta2 as f32,
                    one_minus_beta1: (1.0 - beta1) as f32,
                    one_minus_beta2: (1.0 - beta2) as f32,
                    eps: eps as f32,
                    bias1: (1.0 - beta1.powi(t)) as f32,
                    bias2: (1.0 - beta2.powi(t)) as f32,
                    weight_decay: wd as f32,
                    lr,
                }),
                Rule::Sgd {
                    momentum,
                    dampening,
                    nesterov,
                } => HostRule::Sgd(SgdUpdate {
                    lr: lr as f32,
                    weight_decay: wd as f32,
                    momentum: momentum as f32,
                    one_minus_dampening: (1.0 - dampening) as f32,
                    nesterov,
                    first: matches!(slot.state, State::Empty),
                }),
            };
            let var = slot.param.var().clone();
            let state = slot.host(buffers)?;
            var.as_tensor().inplace_op1(&HostStep {
                rule: update,
                grad: g,
                grad_scale,
                state: std::cell::RefCell::new(state.as_mut_slice()),
            })?;
        }
        Ok(())
    }

    /// The optimizer steps taken per parameter (saved beside the state).
    pub fn steps(&self) -> HashMap<String, u64> {
        self.slots
            .iter()
            .map(|slot| (slot.param.name().to_string(), slot.step))
            .collect()
    }

    /// The state as safetensors views named `BUFFER.NAME` (`m.NAME`, `v.NAME`). Host state is
    /// borrowed, not copied, so saving a checkpoint adds no optimizer-sized allocation.
    pub fn moment_views(&self) -> Result<Vec<(String, MomentView<'_>)>, EngineError> {
        let names = self.rule.buffers();
        let mut views = Vec::new();
        for slot in &self.slots {
            let shape = slot.param.var().dims().to_vec();
            let name = slot.param.name();
            let buffers: Vec<Cow<'_, [f32]>> = match &slot.state {
                State::Empty => continue,
                State::Host(h) => h.iter().map(|b| Cow::Borrowed(b.as_slice())).collect(),
                State::Device(vars) => vars
                    .iter()
                    .map(|v| Ok(Cow::Owned(v.flatten_all()?.to_vec1::<f32>()?)))
                    .collect::<Result<_, EngineError>>()?,
            };
            for (buffer, data) in names.iter().zip(buffers) {
                views.push((
                    format!("{buffer}.{name}"),
                    MomentView {
                        data,
                        shape: shape.clone(),
                    },
                ));
            }
        }
        Ok(views)
    }

    /// Restores the state saved with the optimizer (`BUFFER.PARAM` tensors in a safetensors
    /// file, per-parameter step counts), streaming the file one tensor at a time. Parameters
    /// without saved buffers start empty (a layer unfrozen after the checkpoint).
    pub fn restore_from_file(
        &mut self,
        path: &std::path::Path,
        steps: &HashMap<String, u64>,
    ) -> Result<(), EngineError> {
        let names = self.rule.buffers();
        let by_name: HashMap<String, usize> = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.param.name().to_string(), i))
            .collect();
        let mut saved: Vec<Vec<Option<Tensor>>> = vec![vec![None; names.len()]; self.slots.len()];
        crate::checkpoint::for_each_tensor(path, |name, tensor| {
            let found = name.split_once('.').and_then(|(buffer, param)| {
                let b = names.iter().position(|n| *n == buffer)?;
                Some((b, *by_name.get(param)?))
            });
            if let Some((b, i)) = found {
                let device = self.slots[i].param.var().device().clone();
                saved[i][b] = Some(tensor.to_device(&device)?);
            }
            Ok(())
        })?;
        for (slot, buffers) in self.slots.iter_mut().zip(saved) {
            slot.step = steps.get(slot.param.name()).copied().unwrap_or(0);
            let complete: Option<Vec<Tensor>> = buffers.into_iter().collect();
            slot.state = match complete {
                Some(vars) if !vars.is_empty() => State::Device(vars),
                _ => State::Empty,
            };
        }
        Ok(())
    }
}

/// Adam's running moments after one more gradient (from zero when there are none yet).
fn adam_moments(
    previous: Option<Vec<Tensor>>,
    g: &Tensor,
    beta1: f64,
    beta2: f64,
) -> Result<(Tensor, Tensor), EngineError> {
    let (m_prev, v_prev) = match previous.map(|s| s.into_iter()) {
        Some(mut s) => match (s.next(), s.next()) {
            (Some(m), Some(v)) => (m, v),
            _ => (g.zeros_like()?, g.zeros_like()?),
        },
        None => (g.zeros_like()?, g.zeros_like()?),
    };
    let m = ((m_prev * beta1)? + (g * (1.0 - beta1))?)?;
    let v = ((v_prev * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
    Ok((m, v))
}

fn l2_norm(t: &Tensor) -> Result<f64, EngineError> {
    Ok(t.to_dtype(candle_core::DType::F64)?
        .sqr()?
        .sum_all()?
        .to_scalar::<f64>()?
        .sqrt())
}

/// LAMB's trust ratio `‖p‖/‖u‖`, 1 when either norm is 0.
fn trust_ratio(weight_norm: f64, update_norm: f64) -> f64 {
    if weight_norm > 0.0 && update_norm > 0.0 {
        weight_norm / update_norm
    } else {
        1.0
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
}

impl AdamUpdate {
    /// The constants of step `t` (from 1) at learning rate `lr` and weight decay `wd`.
    fn new(beta1: f64, beta2: f64, eps: f64, lr: f64, wd: f64, t: u64) -> Self {
        let t = t as i32;
        AdamUpdate {
            decay: (1.0 - lr * wd) as f32,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            eps: eps as f32,
            step_size: (lr / (1.0 - beta1.powi(t))) as f32,
            bias2_sqrt: (1.0 - beta2.powi(t)).sqrt() as f32,
        }
    }
}

/// The per-parameter constants of one LAMB update.
#[derive(Clone, Copy)]
struct LambUpdate {
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
    /// `1 − β₁ᵗ` and `1 − β₂ᵗ`
    bias1: f32,
    bias2: f32,
    weight_decay: f32,
    lr: f64,
}

/// The per-parameter constants of one SGD update.
#[derive(Clone, Copy)]
struct SgdUpdate {
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    one_minus_dampening: f32,
    nesterov: bool,
    /// No momentum buffer yet: it starts as the first gradient (as torch's does).
    first: bool,
}

#[derive(Clone, Copy)]
enum HostRule {
    AdamW(AdamUpdate),
    Lamb(LambUpdate),
    Sgd(SgdUpdate),
}

/// One update applied in place to a parameter's storage, the rule's state on the host.
struct HostStep<'a> {
    rule: HostRule,
    grad: &'a [f32],
    grad_scale: f32,
    state: std::cell::RefCell<&'a mut [Vec<f32>]>,
}

/// Elements per parallel task of the host updates.
const CHUNK: usize = 32_768;

impl candle_core::InplaceOp1 for HostStep<'_> {
    fn name(&self) -> &'static str {
        "optimizer-step"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("the host optimizer needs f32 parameters");
        };
        if !layout.is_contiguous() || data.len() < layout.start_offset() + self.grad.len() {
            candle_core::bail!("the host optimizer needs a contiguous parameter");
        }
        let p = &mut data[layout.start_offset()..][..self.grad.len()];
        let mut state = self.state.borrow_mut();
        let scale = self.grad_scale;
        match (self.rule, &mut **state) {
            (HostRule::AdamW(u), [m, v]) => adamw_host(p, self.grad, m, v, u, scale),
            (HostRule::Lamb(u), [m, v]) => lamb_host(p, self.grad, m, v, u, scale),
            (HostRule::Sgd(u), [buf]) => sgd_host(p, self.grad, Some(buf), u, scale),
            (HostRule::Sgd(u), []) => sgd_host(p, self.grad, None, u, scale),
            _ => candle_core::bail!("optimizer state does not fit its rule"),
        }
        Ok(())
    }
}

fn adamw_host(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], u: AdamUpdate, scale: f32) {
    use rayon::prelude::*;
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| {
            for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g * scale;
                *m = u.beta1 * *m + u.one_minus_beta1 * g;
                *v = u.beta2 * *v + u.one_minus_beta2 * g * g;
                let denom = v.sqrt() / u.bias2_sqrt + u.eps;
                *p = *p * u.decay - u.step_size * *m / denom;
            }
        });
}

/// LAMB in two passes: the moments and both norms, then the trust-scaled step.
fn lamb_host(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], u: LambUpdate, scale: f32) {
    use rayon::prelude::*;
    let direction = |p: f32, m: f32, v: f32| -> f32 {
        (m / u.bias1) / ((v / u.bias2).sqrt() + u.eps) + u.weight_decay * p
    };
    let (weight_sq, update_sq) = p
        .par_chunks(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .map(|((p, g), (m, v))| {
            let (mut w2, mut u2) = (0f64, 0f64);
            for (((&p, &g), m), v) in p.iter().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                let g = g * scale;
                *m = u.beta1 * *m + u.one_minus_beta1 * g;
                *v = u.beta2 * *v + u.one_minus_beta2 * g * g;
                let d = direction(p, *m, *v) as f64;
                w2 += (p as f64) * (p as f64);
                u2 += d * d;
            }
            (w2, u2)
        })
        .reduce(|| (0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let step = (u.lr * trust_ratio(weight_sq.sqrt(), update_sq.sqrt())) as f32;
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
        .for_each(|(p, (m, v))| {
            for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                *p -= step * direction(*p, m, v);
            }
        });
}

fn sgd_host(p: &mut [f32], g: &[f32], buf: Option<&mut Vec<f32>>, u: SgdUpdate, scale: f32) {
    use rayon::prelude::*;
    let Some(buf) = buf else {
        p.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(p, g)| {
                for (p, &g) in p.iter_mut().zip(g) {
                    let d = g * scale + u.weight_decay * *p;
                    *p -= u.lr * d;
                }
            });
        return;
    };
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(buf.par_chunks_mut(CHUNK)))
        .for_each(|(p, (g, b))| {
            for ((p, &g), b) in p.iter_mut().zip(g).zip(b.iter_mut()) {
                let d = g * scale + u.weight_decay * *p;
                *b = if u.first {
                    d
                } else {
                    u.momentum * *b + u.one_minus_dampening * d
                };
                let dir = if u.nesterov { d + u.momentum * *b } else { *b };
                *p -= u.lr * dir;
            }
        });
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
        let mut opt = Optimizer::new(
            Rule::default(),
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
        opt.step(&grads, 0.01, 1.0)?;
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
