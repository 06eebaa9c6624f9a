//! Causal language modelling: the mean loss per learned token, its perplexity, and how often
//! the most probable next token is the right one.

use serde::{Deserialize, Serialize};

/// The evaluation of a causal LM on labeled conversations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageReport {
    /// Mean cross-entropy per learned token (nats).
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Share of learned tokens whose most probable prediction is the right next token.
    pub token_accuracy: f64,
    /// Learned tokens scored.
    pub tokens: u64,
}

impl LanguageReport {
    /// The report of a summed loss and a count of right predictions over `tokens` tokens.
    pub fn from_sums(loss_sum: f64, right: u64, tokens: u64) -> Self {
        let n = tokens.max(1) as f64;
        let loss = loss_sum / n;
        LanguageReport {
            loss,
            perplexity: loss.exp(),
            token_accuracy: right as f64 / n,
            tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexity_is_the_exponential_of_the_mean_loss() {
        let r = LanguageReport::from_sums(4.0 * 2f64.ln(), 1, 4);
        assert!((r.perplexity - 2.0).abs() < 1e-12);
        assert_eq!(r.token_accuracy, 0.25);
    }
}
