//! Text generation with a causal LM: the prompt read once into a key/value cache, then one
//! token per pass (greedy, or sampled with temperature, top-k and top-p), a repetition
//! penalty, and stops at an end token, a stop string or the length limit. The text streams
//! out as it grows. Runs on the CPU graph.

use candle_core::Device;
use hone_data::{Batch, TextTokenizer};
use serde::{Deserialize, Serialize};

use crate::cpu::attention::KvCache;
use crate::graph::host::{self, HostGraph, Pool, WeightGuards};
use crate::graph::{IdLimits, LabelsPer, Tokens};
use crate::models::{Model, Task};
use crate::rng::HoneRng;
use crate::EngineError;

/// How tokens are chosen and when generation stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationSettings {
    pub max_new_tokens: usize,
    /// 0 picks the most probable token (greedy).
    pub temperature: f64,
    /// Sample only among the `top_k` most probable tokens (0: all).
    pub top_k: usize,
    /// Sample only among the most probable tokens whose probabilities add up to `top_p`.
    pub top_p: f64,
    /// Above 1 makes tokens already in the text less likely (transformers' rule).
    pub repetition_penalty: f64,
    /// Texts that end the generation (not included in it).
    pub stop: Vec<String>,
    pub seed: u64,
}

impl Default for GenerationSettings {
    fn default() -> Self {
        GenerationSettings {
            max_new_tokens: 256,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            seed: 0,
        }
    }
}

impl GenerationSettings {
    /// Checks the numbers.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::InvalidConfig(m.into()));
        if self.max_new_tokens == 0 {
            return bad("max new tokens must be at least 1");
        }
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad("temperature must be 0 (greedy) or more");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top-p must be in (0, 1]");
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad("the repetition penalty must be above 0 (1 is none)");
        }
        Ok(())
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndToken,
    StopString,
    Length,
    /// The context the model was trained for is full.
    Context,
    /// The caller asked to stop.
    Cancelled,
}

/// A finished generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    pub text: String,
    /// The new tokens (the end token not included).
    pub tokens: Vec<u32>,
    /// The prompt's tokens, as the model read them.
    pub prompt: Vec<u32>,
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub stop: StopReason,
    /// Tokens per second after the prompt.
    pub tokens_per_second: f64,
}

/// Generates a continuation of `prompt` (token ids) with `model`, a causal LM on the CPU in
/// f32. `on_text` receives each new piece of text as it is decided and returns false to stop.
pub fn generate(
    model: &Model,
    tokenizer: &TextTokenizer,
    prompt: &[u32],
    end_tokens: &[u32],
    settings: &GenerationSettings,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation, EngineError> {
    settings.validate()?;
    if model.task() != Task::CausalLm {
        return Err(EngineError::InvalidConfig(format!(
            "generation needs a causal LM; this model is for {}",
            model.task().display_name()
        )));
    }
    if !host::supports(model.params()) || !matches!(model.device(), Device::Cpu) {
        return Err(EngineError::InvalidConfig(
            "generation runs on the CPU in f32; load the model with device cpu".into(),
        ));
    }
    if prompt.is_empty() {
        return Err(EngineError::InvalidConfig(
            "the prompt has no tokens".into(),
        ));
    }
    let spec = &model.spec().encoder;
    let context = spec.max_position_embeddings;
    let limits = IdLimits {
        words: spec.vocab_size,
        positions: context,
        types: 1,
    };
    let guards = WeightGuards::lock(model.params());
    let weights = guards.weights()?;
    let pool = Pool::default();
    // A prefix-tuned model's prefix rows are the cache's first tokens.
    let mut cache = match model.prefix_rows()? {
        Some(rows) => KvCache::with_prefix(rows, model.prefix_tokens()),
        None => KvCache::default(),
    };
    let mut rng = HoneRng::new(settings.seed, 0x9e4e);
    let mut seen: Vec<u32> = prompt.to_vec();
    let mut stream = TextStream::new(tokenizer, &settings.stop);
    let mut next_input: Vec<u32> = prompt.to_vec();
    let mut started = None;
    let stop = loop {
        let past = cache.len();
        if past + next_input.len() > context {
            break StopReason::Context;
        }
        let n = next_input.len();
        let batch = Batch::one_sequence(next_input.clone());
        let positions: Vec<u32> = (past..past + n).map(|p| p as u32).collect();
        let tokens = Tokens::pack(&batch, &positions, &vec![0; n], LabelsPer::Token, limits)?;
        let mut pass_rng = HoneRng::new(0, 0);
        let mut g = HostGraph::new(
            &tokens,
            model.params(),
            &weights,
            None,
            &mut pass_rng,
            pool.clone(),
        )
        .with_cache(&mut cache);
        let logits = model.forward(&mut g)?;
        let vocab = logits.cols();
        let last = &logits.data()[(n - 1) * vocab..n * vocab];
        let token = choose(last, &seen, settings, &mut rng);
        started.get_or_insert_with(std::time::Instant::now);
        if end_tokens.contains(&token) {
            break StopReason::EndToken;
        }
        seen.push(token);
        if let Some(stop) = stream.push(token, on_text)? {
            break stop;
        }
        if stream.tokens().len() >= settings.max_new_tokens {
            break StopReason::Length;
        }
        next_input = vec![token];
    };
    let (text, generated) = stream.finish(stop, on_text);
    let elapsed = started.map_or(0.0, |t| t.elapsed().as_secs_f64());
    Ok(Generation {
        text,
        tokens: generated.clone(),
        prompt: prompt.to_vec(),
        prompt_tokens: prompt.len(),
        new_tokens: generated.len(),
        stop,
        tokens_per_second: if elapsed > 0.0 {
            generated.len() as f64 / elapsed
        } else {
            0.0
        },
    })
}

/// Turns generated tokens into the pieces of text a stream sends as they are decided: a
/// token's text once it is whole (a byte-level token may end inside a character), held back
/// while it could be the start of a stop string, cut at the first stop string.
pub(crate) struct TextStream<'a> {
    tokenizer: &'a TextTokenizer,
    stop: &'a [String],
    tokens: Vec<u32>,
    text: String,
    emitted: usize,
}

impl<'a> TextStream<'a> {
    /// A stream of text decoded with `tokenizer`, ending at the first of `stop`.
    pub(crate) fn new(tokenizer: &'a TextTokenizer, stop: &'a [String]) -> Self {
        TextStream {
            tokenizer,
            stop,
            tokens: Vec::new(),
            text: String::new(),
            emitted: 0,
        }
    }

    /// The tokens pushed so far.
    pub(crate) fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Adds a generated token and sends `on_text` what is ready; the reason to stop when the
    /// generation ends here (a stop string, or `on_text` returned false).
    pub(crate) fn push(
        &mut self,
        token: u32,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Option<StopReason>, EngineError> {
        self.tokens.push(token);
        let decoded = self.tokenizer.decode(&self.tokens)?;
        // A byte-level token may end inside a character: wait for the rest.
        if !decoded.ends_with('\u{FFFD}') {
            self.text = decoded;
        }
        let text = &mut self.text;
        if let Some(at) = self
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s.as_str()))
            .min()
        {
            text.truncate(at);
            if at > self.emitted
                && text.is_char_boundary(self.emitted)
                && !on_text(&text[self.emitted..])
            {
                return Ok(Some(StopReason::Cancelled));
            }
            self.emitted = text.len().max(self.emitted);
            return Ok(Some(StopReason::StopString));
        }
        // Hold back what could be the start of a stop string.
        let hold = self
            .stop
            .iter()
            .map(|s| partial_suffix(text, s))
            .max()
            .unwrap_or(0);
        let ready = text.len() - hold;
        if ready > self.emitted
            && text.is_char_boundary(ready)
            && text.is_char_boundary(self.emitted)
        {
            if !on_text(&text[self.emitted..ready]) {
                return Ok(Some(StopReason::Cancelled));
            }
            self.emitted = ready;
        }
        Ok(None)
    }

    /// Ends the stream that stopped for `stop`: sends the rest of the text (unless it was
    /// cancelled or cut at a stop string); returns the whole text and the tokens.
    pub(crate) fn finish(
        self,
        stop: StopReason,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> (String, Vec<u32>) {
        let rest = self.text.len() > self.emitted && self.text.is_char_boundary(self.emitted);
        if rest && stop != StopReason::Cancelled && stop != StopReason::StopString {
            on_text(&self.text[self.emitted..]);
        }
        (self.text, self.tokens)
    }
}

/// The length of the longest end of `text` that begins `stop` (0 when none does).
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len().min(text.len() + 1))
        .rev()
        .find(|&k| stop.is_char_boundary(k) && text.ends_with(&stop[..k]))
        .unwrap_or(0)
}

/// The next token from one row of logits: the repetition penalty on `seen`, then the most
/// probable (temperature 0) or a sample from the top-k / top-p nucleus.
pub(crate) fn choose(
    logits: &[f32],
    seen: &[u32],
    s: &GenerationSettings,
    rng: &mut HoneRng,
) -> u32 {
    let mut scores: Vec<f32> = logits.to_vec();
    if s.repetition_penalty != 1.0 {
        let p = s.repetition_penalty as f32;
        let mut done = std::collections::HashSet::new();
        for &t in seen {
            if done.insert(t) {
                if let Some(v) = scores.get_mut(t as usize) {
                    *v = if *v > 0.0 { *v / p } else { *v * p };
                }
            }
        }
    }
    if s.temperature == 0.0 {
        return crate::inference::argmax(&scores);
    }
    let t = s.temperature as f32;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    let max = scores[order[0]];
    let mut probs: Vec<f64> = order
        .iter()
        .map(|&i| (((scores[i] - max) / t) as f64).exp())
        .collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    // Nucleus: the most probable tokens until their mass reaches top_p (at least one).
    let mut mass = 0.0;
    let keep = probs
        .iter()
        .position(|&p| {
            mass += p;
            mass >= s.top_p
        })
        .map_or(probs.len(), |i| i + 1);
    let kept: f64 = probs[..keep].iter().sum();
    let mut draw = rng.uniform() as f64 * kept;
    for (i, &p) in probs[..keep].iter().enumerate() {
        draw -= p;
        if draw <= 0.0 {
            return order[i] as u32;
        }
    }
    order[keep - 1] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_best_and_the_penalty_lowers_seen_tokens() {
        let s = GenerationSettings::default();
        let mut rng = HoneRng::new(0, 0);
        assert_eq!(choose(&[0.1, 2.0, 1.9], &[], &s, &mut rng), 1);
        let penalised = GenerationSettings {
            repetition_penalty: 2.0,
            ..s.clone()
        };
        assert_eq!(choose(&[0.1, 2.0, 1.9], &[1], &penalised, &mut rng), 2);
    }

    #[test]
    fn sampling_keeps_to_the_nucleus_and_top_k() {
        let s = GenerationSettings {
            temperature: 1.0,
            top_p: 0.5,
            ..Default::default()
        };
        let mut rng = HoneRng::new(1, 1);
        // Token 0 holds most of the mass: top-p 0.5 leaves only it.
        for _ in 0..50 {
            assert_eq!(choose(&[5.0, 0.0, 0.0, 0.0], &[], &s, &mut rng), 0);
        }
        let k = GenerationSettings {
            temperature: 1.0,
            top_k: 2,
            ..Default::default()
        };
        for _ in 0..50 {
            assert!(choose(&[1.0, 1.0, 0.9, 3.0], &[], &k, &mut rng) != 2);
        }
    }

    #[test]
    fn a_stop_string_may_be_held_back_while_it_is_still_partial() {
        assert_eq!(partial_suffix("hello wor", "world"), 3);
        assert_eq!(partial_suffix("hello", "world"), 0);
    }
}
