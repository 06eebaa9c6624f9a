//! Fine-tuning recipes from the literature, as freezing and per-parameter optimizer groups:
//! frozen embeddings, frozen bottom layers, layer-wise learning-rate decay (exponential or
//! cosine-shaped), a head-only warm start and gradual unfreezing (ULMFiT).

use crate::config::{DecayShape, TrainingConfig};
use crate::models::Model;
use crate::optim::{Optimizer, OptimizerKind, ParamGroup, Rule};
use crate::params::{Param, ParamPosition, ParamStore};

/// Depth of a parameter counted from the top: head 0, top layer 1, …, embeddings L + 1.
pub fn depth_from_top(position: ParamPosition, num_layers: usize) -> usize {
    match position {
        ParamPosition::Head => 0,
        ParamPosition::Layer(i) => num_layers - i,
        ParamPosition::EmbeddingTable { .. } | ParamPosition::EmbeddingNorm => num_layers + 1,
    }
}

/// The share of the base learning rate a parameter at `position` gets.
pub fn lr_scale(
    position: ParamPosition,
    num_layers: usize,
    decay: Option<f64>,
    shape: DecayShape,
) -> f64 {
    let Some(factor) = decay else {
        return 1.0;
    };
    let depth = depth_from_top(position, num_layers) as f64;
    let deepest = (num_layers + 1) as f64;
    match shape {
        DecayShape::Exponential => factor.powf(depth),
        DecayShape::Cosine => {
            let floor = factor.powf(deepest);
            floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * depth / deepest).cos())
        }
    }
}

/// True when the recipe keeps this parameter fixed for the whole run.
pub fn is_frozen_by_recipe(model: &Model, param: &Param, cfg: &TrainingConfig) -> bool {
    if model.is_fixed(param) {
        return true;
    }
    // An adapter model trains its adapters and the modules it saves, nothing else.
    if let Some(adapters) = model.spec().adapters() {
        if !adapters.trains(param.name()) {
            return true;
        }
    }
    match param.position() {
        ParamPosition::EmbeddingTable { .. } => cfg.freeze_embeddings,
        ParamPosition::Layer(i) => i < cfg.freeze_layers,
        ParamPosition::EmbeddingNorm | ParamPosition::Head => false,
    }
}

/// The parameters a checkpoint holds, of `params` (the union of `models`' parameters):
/// all of them, except that models with LoRA, bottleneck adapters or a prefix leave out their frozen
/// base (it never changes and is the base model's own files), so their checkpoints are the
/// size of the adapters and head.
pub fn checkpointed(models: &[&Model], params: &ParamStore, cfg: &TrainingConfig) -> ParamStore {
    let adapted = |m: &Model| m.spec().adapters().is_some();
    if !models.iter().any(|m| adapted(m)) {
        return params.clone();
    }
    let mut kept = ParamStore::default();
    for p in params.all() {
        let changes = models
            .iter()
            .any(|m| m.params().get(p.name()).is_some() && !is_frozen_by_recipe(m, p, cfg));
        if changes {
            kept.push(p.clone());
        }
    }
    kept
}

/// Sets every parameter's frozen flag: recipe freezing, plus everything deeper than `depth`
/// (counted as [`depth_from_top`]: 0 is the head alone, the warm-start phase) when given.
pub fn apply_freezing(model: &Model, cfg: &TrainingConfig, depth: Option<usize>) {
    let layers = model.num_layers();
    for p in model.params().all() {
        let too_deep = depth.is_some_and(|d| depth_from_top(p.position(), layers) > d);
        p.set_frozen(is_frozen_by_recipe(model, p, cfg) || too_deep);
    }
}

/// What trains at `depth` (see [`apply_freezing`]), in words: "the head", "the head and the
/// top 2 layers", "all parameters".
pub fn describe_depth(depth: Option<usize>, num_layers: usize) -> String {
    match depth {
        None => "all parameters".into(),
        Some(0) => "the head".into(),
        Some(1) => "the head and the top layer".into(),
        Some(d) if d <= num_layers => format!("the head and the top {d} layers"),
        Some(_) => "all parameters".into(),
    }
}

/// Optimizer groups for every parameter that can ever be trained in this run.
pub fn param_groups(model: &Model, cfg: &TrainingConfig) -> Vec<(Param, ParamGroup)> {
    model
        .params()
        .all()
        .iter()
        .filter(|p| !is_frozen_by_recipe(model, p, cfg))
        .map(|p| {
            let group = ParamGroup {
                lr_scale: lr_scale(
                    p.position(),
                    model.num_layers(),
                    cfg.layer_lr_decay,
                    cfg.layer_lr_decay_shape,
                ),
                weight_decay: if p.is_no_decay() {
                    0.0
                } else {
                    cfg.weight_decay
                },
            };
            (p.clone(), group)
        })
        .collect()
}

/// The update rule the config asks for, with its hyper-parameters.
pub fn rule(cfg: &TrainingConfig) -> Rule {
    match cfg.optimizer {
        OptimizerKind::AdamW => Rule::AdamW {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.adam_eps,
        },
        OptimizerKind::Lamb => Rule::Lamb {
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.adam_eps,
        },
        OptimizerKind::Sgd => Rule::Sgd {
            momentum: cfg.momentum,
            dampening: 0.0,
            nesterov: cfg.nesterov,
        },
    }
}

/// The optimizer of a run: the config's rule, the recipe's groups.
pub fn optimizer(model: &Model, cfg: &TrainingConfig) -> Optimizer {
    Optimizer::new(rule(cfg), param_groups(model, cfg))
}

/// The optimizer of several heads on one encoder (multi-task learning): every parameter
/// once. A step updates the parameters its head's graph reached and leaves the other heads
/// (and their optimizer state) as they are, as PyTorch skips parameters without a gradient.
pub fn optimizer_for(models: &[&Model], cfg: &TrainingConfig) -> Optimizer {
    let mut seen = std::collections::HashSet::new();
    let groups = models
        .iter()
        .flat_map(|m| param_groups(m, cfg))
        .filter(|(p, _)| seen.insert(p.name().to_string()))
        .collect();
    Optimizer::new(rule(cfg), groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_decay_counts_depth_from_the_head() {
        let s = |p| lr_scale(p, 6, Some(0.5), DecayShape::Exponential);
        assert_eq!(s(ParamPosition::Head), 1.0);
        assert_eq!(s(ParamPosition::Layer(5)), 0.5);
        assert_eq!(s(ParamPosition::Layer(0)), 0.5f64.powi(6));
        assert_eq!(
            s(ParamPosition::EmbeddingTable { word: true }),
            0.5f64.powi(7)
        );
        assert_eq!(
            lr_scale(ParamPosition::Layer(0), 6, None, DecayShape::Cosine),
            1.0
        );
    }

    #[test]
    fn cosine_decay_shares_end_points_and_keeps_more_at_the_top() {
        let c = |p| lr_scale(p, 6, Some(0.8), DecayShape::Cosine);
        let e = |p| lr_scale(p, 6, Some(0.8), DecayShape::Exponential);
        assert!((c(ParamPosition::Head) - 1.0).abs() < 1e-12);
        let emb = ParamPosition::EmbeddingNorm;
        assert!((c(emb) - e(emb)).abs() < 1e-12);
        for i in 3..6 {
            let p = ParamPosition::Layer(i);
            assert!(c(p) > e(p), "layer {i}");
        }
        // Monotone: deeper layers never get more.
        for i in 1..6 {
            assert!(c(ParamPosition::Layer(i)) >= c(ParamPosition::Layer(i - 1)));
        }
    }
}
