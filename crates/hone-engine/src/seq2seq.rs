//! Text-to-text with an encoder–decoder (T5): examples encoded as the encoder's source and
//! the decoder's teacher-forced target, and generation from a source.

use hone_data::{Batch, EncodedExample, Example, TextTokenizer};

use crate::batch::EncodedSet;
use crate::cpu::biased::DecoderCache;
use crate::graph::host::{HostGraph, Pool, WeightGuards};
use crate::graph::IGNORE_LABEL;
use crate::job::TrainingData;
use crate::metrics::GenerationReport;
use crate::models::Model;
use crate::step::Stepper;
use crate::EngineError;

/// Encodes text-to-text examples: the source (`text`, after `prefix`) for the encoder, cut to
/// the tokenizer's maximum length; the target (`label`: the target column) as labels, cut to `max_target`
/// tokens with its end token kept, and as the decoder's input shifted right behind `start`
/// (transformers' `_shift_right`). A target is required when `labeled`.
pub fn encode(
    tokenizer: &TextTokenizer,
    examples: &[Example],
    prefix: &str,
    max_target: usize,
    start: u32,
    labeled: bool,
) -> Result<EncodedSet, EngineError> {
    let sources: Vec<(String, Option<String>)> = examples
        .iter()
        .map(|e| (format!("{prefix}{}", e.text), None))
        .collect();
    let sources = tokenizer.encode(&sources)?;
    let mut set = EncodedSet {
        sources,
        ..Default::default()
    };
    for e in examples {
        let target = match (&e.label, labeled) {
            (Some(t), _) => t.as_str(),
            (None, false) => "",
            (None, true) => {
                return Err(EngineError::InvalidConfig(format!(
                    "the example at line {} has no target text",
                    e.line
                )))
            }
        };
        let mut ids = tokenizer.encode_plain(target, true)?.input_ids;
        if ids.len() > max_target.max(1) {
            let end = ids.last().copied().unwrap_or(start);
            ids.truncate(max_target.max(1) - 1);
            ids.push(end);
        }
        let mut input = Vec::with_capacity(ids.len());
        input.push(start);
        input.extend_from_slice(&ids[..ids.len().saturating_sub(1)]);
        let n = input.len();
        set.examples.push(EncodedExample {
            input_ids: input,
            type_ids: vec![0; n],
            truncated: false,
        });
        set.token_labels
            .push(if labeled { ids } else { vec![IGNORE_LABEL; n] });
    }
    Ok(set)
}

/// A text-to-text run's data: the examples read (source as `text`, target as `label`), the
/// validation ones given or `valid_fraction` of the training ones held out at random.
pub fn text2text_data(
    train: Vec<Example>,
    valid: Option<Vec<Example>>,
    valid_fraction: f64,
    seed: u64,
    notices: Vec<String>,
) -> TrainingData {
    let (train, valid) = crate::job::given_or_held_out(train, valid, valid_fraction, seed);
    TrainingData {
        task: crate::models::Task::Text2Text,
        labels: hone_data::LabelSet::from_names(Vec::new()),
        train,
        valid,
        notices,
    }
}

/// What a text-to-text run generates at each validation: the first validation examples'
/// targets, written greedily and scored with ROUGE against their references.
pub struct ValidationGenerations {
    tokenizer: TextTokenizer,
    /// (source as written, reference) of the examples generated, the first of the set.
    texts: Vec<(String, String)>,
    max_new_tokens: usize,
    stem: bool,
}

impl ValidationGenerations {
    /// The first `count` of `examples` (the validation set, in its encoded order); `None`
    /// when there are none to generate.
    pub fn new(
        tokenizer: &TextTokenizer,
        examples: &[Example],
        count: usize,
        max_new_tokens: usize,
        stem: bool,
    ) -> Option<Self> {
        let texts: Vec<(String, String)> = examples
            .iter()
            .take(count)
            .map(|e| (e.text.clone(), e.label.clone().unwrap_or_default()))
            .collect();
        (!texts.is_empty()).then(|| ValidationGenerations {
            tokenizer: tokenizer.clone(),
            texts,
            max_new_tokens,
            stem,
        })
    }

    /// The report of a validation: `loss` (the teacher-forced loss over the whole set) and
    /// the ROUGE of the generated examples (`set`: the encoded validation set).
    pub fn report(
        &self,
        model: &Model,
        set: &EncodedSet,
        stepper: &mut Stepper,
        loss: f64,
    ) -> Result<GenerationReport, EngineError> {
        generation_report(
            model,
            stepper,
            &self.tokenizer,
            &self.texts,
            &set.sources,
            &Decoding::greedy(self.max_new_tokens),
            loss,
            self.stem,
        )
    }
}

/// The targets `decoding` writes from the encoded `sources`, decoded and scored with ROUGE
/// against `texts` (each source as written, its reference), with the teacher-forced `loss`.
#[allow(clippy::too_many_arguments)]
fn generation_report(
    model: &Model,
    stepper: &mut Stepper,
    tokenizer: &TextTokenizer,
    texts: &[(String, String)],
    sources: &[EncodedExample],
    decoding: &Decoding,
    loss: f64,
    stem: bool,
) -> Result<GenerationReport, EngineError> {
    let mut generations = Vec::with_capacity(texts.len());
    for ((source, reference), encoded) in texts.iter().zip(sources) {
        let ids = generate(model, stepper, &encoded.input_ids, decoding)?;
        generations.push((
            source.clone(),
            reference.clone(),
            tokenizer.decode(&ids)?,
            ids.len(),
        ));
    }
    Ok(GenerationReport::new(&generations, loss, stem, 3))
}

/// How [`generate`] decodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoding {
    /// The most tokens generated (the end token included).
    pub max_new_tokens: usize,
    /// Beam search over this many beams (1: greedy).
    pub num_beams: usize,
    /// A finished beam's score is its log-probability over `length ^ length_penalty`.
    pub length_penalty: f64,
    /// Beam search stops as soon as `num_beams` targets are finished.
    pub early_stopping: bool,
    /// No n-gram of this many tokens appears twice in a target (0: no such rule), as
    /// transformers' `no_repeat_ngram_size`.
    pub no_repeat_ngram_size: usize,
    /// One beam: choose each token as a causal LM's generation does (temperature, top-k,
    /// top-p, repetition penalty, seed; its `max_new_tokens` and `stop` are not read);
    /// `None` takes the most probable.
    pub sampling: Option<crate::generate::GenerationSettings>,
}

impl Decoding {
    /// Greedy decoding of up to `max_new_tokens` tokens.
    pub fn greedy(max_new_tokens: usize) -> Self {
        Decoding {
            max_new_tokens,
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: false,
            no_repeat_ngram_size: 0,
            sampling: None,
        }
    }
}

/// How a Playground answer searches (with [`crate::generate::GenerationSettings`] for the
/// rest): one beam samples or takes the most likely token as those settings say; more
/// beams search as transformers' `generate` does.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Search {
    /// Beams (1: no beam search).
    pub num_beams: usize,
    /// A finished beam's score is its log-probability over `length ^ length_penalty`.
    pub length_penalty: f64,
    /// Stop as soon as `num_beams` targets are finished.
    pub early_stopping: bool,
    /// No n-gram of this many tokens appears twice (0: no such rule).
    pub no_repeat_ngram_size: usize,
}

impl Default for Search {
    fn default() -> Self {
        Search {
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: false,
            no_repeat_ngram_size: 0,
        }
    }
}

/// The most beams a search may keep (each is a row of every decoder pass).
pub const MAX_BEAMS: usize = 16;

impl Search {
    /// Checks the numbers.
    pub fn validate(&self) -> Result<(), EngineError> {
        if !(1..=MAX_BEAMS).contains(&self.num_beams) {
            return Err(EngineError::InvalidConfig(format!(
                "beams must be 1 to {MAX_BEAMS}, got {}",
                self.num_beams
            )));
        }
        if !self.length_penalty.is_finite() {
            return Err(EngineError::InvalidConfig(
                "the length penalty must be a number".into(),
            ));
        }
        Ok(())
    }
}

impl Decoding {
    /// The decoding of a Playground answer: `search`'s beams, or one beam choosing tokens
    /// as `settings` say.
    pub fn answering(settings: &crate::generate::GenerationSettings, search: &Search) -> Self {
        Decoding {
            num_beams: search.num_beams,
            length_penalty: search.length_penalty,
            early_stopping: search.early_stopping,
            no_repeat_ngram_size: search.no_repeat_ngram_size,
            sampling: (search.num_beams == 1).then(|| settings.clone()),
            ..Decoding::greedy(settings.max_new_tokens)
        }
    }
}

/// The tokens that would repeat an n-gram of `n` tokens after `seq` (the decoder's tokens so
/// far, its start token first): those that followed its last `n − 1` tokens before
/// (transformers' `NoRepeatNGramLogitsProcessor`).
fn banned_tokens(seq: &[u32], n: usize) -> Vec<u32> {
    if n == 0 || seq.len() + 1 < n {
        return Vec::new();
    }
    let prefix = &seq[seq.len() + 1 - n..];
    seq.windows(n)
        .filter(|w| w[..n - 1] == *prefix)
        .map(|w| w[n - 1])
        .collect()
}

/// `row` with the banned tokens' scores at −∞.
fn without_banned<'a>(row: &'a [f32], seq: &[u32], n: usize) -> std::borrow::Cow<'a, [f32]> {
    let banned = banned_tokens(seq, n);
    if banned.is_empty() {
        return row.into();
    }
    let mut out = row.to_vec();
    for t in banned {
        if let Some(x) = out.get_mut(t as usize) {
            *x = f32::NEG_INFINITY;
        }
    }
    out.into()
}

/// Generates a target for one encoded source: greedily (the most likely token until an end
/// token or `max_new_tokens`), sampled, or by beam search ([`beam_search`]). On the CPU graph
/// greedy and sampled decoding run the encoder once and keep the decoder's keys and values;
/// beam search and autograd re-run the decoder over every token so far. Returns the
/// generated ids, the end token included when one was reached.
pub fn generate(
    model: &Model,
    stepper: &mut Stepper,
    source: &[u32],
    decoding: &Decoding,
) -> Result<Vec<u32>, EngineError> {
    generate_with(model, stepper, source, decoding, &mut |_| true)
}

/// [`generate`], calling `on_step` after each decoding step with the leading target so far
/// (greedy or sampled: the target itself; beam search: the best running beam, which may
/// change); when it returns false generation stops and returns what it has (beam search:
/// the best finished target, else the best running one).
pub fn generate_with(
    model: &Model,
    stepper: &mut Stepper,
    source: &[u32],
    decoding: &Decoding,
    on_step: &mut dyn FnMut(&[u32]) -> bool,
) -> Result<Vec<u32>, EngineError> {
    let t5 = model.spec().encoder.t5.as_ref().ok_or_else(|| {
        EngineError::InvalidConfig(format!(
            "{} models do not generate from a source; use an encoder–decoder (T5)",
            model.family().name()
        ))
    })?;
    if source.is_empty() {
        return Err(EngineError::InvalidConfig(
            "the source has no tokens".into(),
        ));
    }
    if decoding.num_beams > 1 {
        if decoding.sampling.is_some() {
            return Err(EngineError::InvalidConfig(
                "beam search does not sample: choose beams or sampling".into(),
            ));
        }
        return beam_search(model, stepper, source, decoding, on_step);
    }
    if let Some(s) = &decoding.sampling {
        s.validate()?;
    }
    let mut rng = crate::rng::HoneRng::new(decoding.sampling.as_ref().map_or(0, |s| s.seed), 0);
    let start = t5.decoder_start_token_id;
    let mut choose = |row: &[f32], seen: &[u32]| {
        let mut seq = vec![start];
        seq.extend_from_slice(seen);
        let row = without_banned(row, &seq, decoding.no_repeat_ngram_size);
        match &decoding.sampling {
            Some(s) => crate::generate::choose(&row, seen, s, &mut rng),
            None => argmax(&row),
        }
    };
    let mut out: Vec<u32> = Vec::new();
    if stepper.is_fast() {
        // On the CPU: the encoder once, then one decoder token per pass over the cache.
        let guards = WeightGuards::lock(model.params());
        let weights = guards.weights()?;
        let decoder = CachedDecoder {
            model,
            weights: &weights,
            pool: Pool::default(),
            source,
        };
        let mut cache = DecoderCache::default();
        let mut next = t5.decoder_start_token_id;
        while out.len() < decoding.max_new_tokens {
            let scores = decoder.pass(&mut cache, next)?;
            let token = choose(&scores, &out);
            out.push(token);
            if t5.eos_token_ids.contains(&token) || !on_step(&out) {
                break;
            }
            next = token;
        }
        return Ok(out);
    }
    while out.len() < decoding.max_new_tokens {
        let mut ids = vec![t5.decoder_start_token_id];
        ids.extend_from_slice(&out);
        let mut batch = Batch::one_sequence(ids);
        batch.source = Some(Box::new(Batch::one_sequence(source.to_vec())));
        let logits = stepper.logits(model, &batch)?;
        let last = logits
            .rows()
            .last()
            .ok_or_else(|| EngineError::InvalidConfig("no logits".into()))?;
        let next = choose(last, &out);
        out.push(next);
        if t5.eos_token_ids.contains(&next) || !on_step(&out) {
            break;
        }
    }
    Ok(out)
}

/// The caches of the beams that go on, in order, from those of their parent beams: a parent
/// continued once hands its cache on, one continued more often is copied.
fn hand_on(
    mut caches: Vec<DecoderCache>,
    parents: impl Iterator<Item = usize> + Clone,
) -> Vec<DecoderCache> {
    let mut uses = vec![0usize; caches.len()];
    for p in parents.clone() {
        uses[p] += 1;
    }
    parents
        .map(|p| {
            uses[p] -= 1;
            if uses[p] == 0 {
                std::mem::take(&mut caches[p])
            } else {
                caches[p].clone()
            }
        })
        .collect()
}

/// A T5 decoder on the CPU graph generating through a [`DecoderCache`]: one token a pass, the
/// encoder run on a cache's first pass only.
struct CachedDecoder<'a> {
    model: &'a Model,
    weights: &'a crate::graph::host::Weights<'a>,
    pool: Pool,
    source: &'a [u32],
}

impl CachedDecoder<'_> {
    /// The next token's scores after `token`, given the target before it in `cache`.
    fn pass(&self, cache: &mut DecoderCache, token: u32) -> Result<Vec<f32>, EngineError> {
        let mut batch = Batch::one_sequence(vec![token]);
        batch.source = Some(Box::new(Batch::one_sequence(self.source.to_vec())));
        let tokens = self.model.tokens(&batch)?;
        let mut pass_rng = crate::rng::HoneRng::new(0, 0);
        let mut g = HostGraph::new(
            &tokens,
            self.model.params(),
            self.weights,
            None,
            &mut pass_rng,
            self.pool.clone(),
        )
        .with_decoder_cache(cache);
        let logits = self.model.forward(&mut g)?;
        drop(g);
        cache.end_pass(1);
        let vocab = logits.cols();
        let data = logits.data();
        Ok(data[data.len() - vocab..].to_vec())
    }
}

/// The score transformers puts on what may not be chosen.
const NEVER: f32 = -1.0e9;

/// One hypothesis of beam search: its tokens (the start token first) and score.
#[derive(Clone)]
struct Hypothesis {
    tokens: Vec<u32>,
    score: f32,
    finished: bool,
}

/// The indices of the `k` largest of `scores`, largest first (the first on ties).
fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order.truncate(k);
    order
}

/// Beam search as transformers' `generate(num_beams=…)` does it (its `_beam_search`, in f32):
/// each step keeps the `2 × beams` best continuations of the running beams, those ending in an
/// end token (or at the length limit) among the first `beams` become finished hypotheses
/// scored by log-probability / `length^length_penalty`, the best unfinished continue; it
/// stops when no running beam can beat the worst finished one, when `early_stopping` and
/// `beams` are finished, or at `max_new_tokens`. Returns the best finished hypothesis.
fn beam_search(
    model: &Model,
    stepper: &mut Stepper,
    source: &[u32],
    d: &Decoding,
    on_step: &mut dyn FnMut(&[u32]) -> bool,
) -> Result<Vec<u32>, EngineError> {
    let t5 =
        model.spec().encoder.t5.as_ref().ok_or_else(|| {
            EngineError::InvalidConfig("beam search is for encoder–decoders".into())
        })?;
    let beams = d.num_beams;
    let keep = 2.max(1 + t5.eos_token_ids.len()) * beams;
    let max_length = 1 + d.max_new_tokens;
    let lp = d.length_penalty as f32;
    let mut running: Vec<Hypothesis> = (0..beams)
        .map(|i| Hypothesis {
            tokens: vec![t5.decoder_start_token_id],
            score: if i == 0 { 0.0 } else { NEVER },
            finished: false,
        })
        .collect();
    let mut done: Vec<Hypothesis> = vec![
        Hypothesis {
            tokens: Vec::new(),
            score: NEVER,
            finished: false,
        };
        beams
    ];
    // On the CPU graph each running beam keeps its own decoder cache, handed on to the
    // beams that continue it.
    let guards = stepper
        .is_fast()
        .then(|| WeightGuards::lock(model.params()));
    let weights = guards.as_ref().map(|g| g.weights()).transpose()?;
    let decoder = weights.as_ref().map(|weights| CachedDecoder {
        model,
        weights,
        pool: Pool::default(),
        source,
    });
    let mut caches = vec![DecoderCache::default()];
    let mut can_improve = true;
    let mut cur_len = 1usize;
    while cur_len < max_length {
        // Every running beam's next-token scores: through each beam's cache on the CPU
        // graph, else one batch of `beams` rows re-run over every token so far.
        let rows: Vec<Vec<f32>> = match &decoder {
            Some(dec) if cur_len == 1 => {
                // Every beam is the start token alone: one pass, its cache copied.
                let row = dec.pass(&mut caches[0], t5.decoder_start_token_id)?;
                let first = caches[0].clone();
                caches.resize(beams, first);
                vec![row; beams]
            }
            Some(dec) => running
                .iter()
                .zip(caches.iter_mut())
                .map(|(h, cache)| dec.pass(cache, h.tokens[h.tokens.len() - 1]))
                .collect::<Result<_, _>>()?,
            None => {
                let n = cur_len;
                let mut ids = Vec::with_capacity(beams * n);
                for h in &running {
                    ids.extend_from_slice(&h.tokens);
                }
                let one = |ids: Vec<u32>, rows: usize, len: usize| Batch {
                    input_ids: ids,
                    token_type_ids: vec![0; rows * len],
                    attention_mask: vec![1; rows * len],
                    labels: Vec::new(),
                    batch_size: rows,
                    seq_len: len,
                    padded_options: Vec::new(),
                    soft_targets: Vec::new(),
                    source: None,
                };
                let mut batch = one(ids, beams, n);
                batch.source = Some(Box::new(one(source.repeat(beams), beams, source.len())));
                let logits = stepper.logits(model, &batch)?;
                let all: Vec<&[f32]> = logits.rows().collect();
                (0..beams)
                    .map(|b| {
                        all.get((b + 1) * n - 1)
                            .map(|r| r.to_vec())
                            .ok_or_else(|| EngineError::InvalidConfig("no logits".into()))
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let vocab = rows.first().map_or(0, |r| r.len());
        let mut accumulated = Vec::with_capacity(beams * vocab);
        for (row, h) in rows.iter().zip(&running) {
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &x| a.max(x));
            let log_sum = row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln() + max;
            let log_probs: Vec<f32> = row.iter().map(|&x| x - log_sum).collect();
            let log_probs = without_banned(&log_probs, &h.tokens, d.no_repeat_ngram_size);
            accumulated.extend(log_probs.iter().map(|&x| x + h.score));
        }
        let picked = top_k(&accumulated, keep);
        let parents: Vec<usize> = picked.iter().map(|&i| i / vocab).collect();
        let candidates: Vec<(Hypothesis, bool)> = picked
            .into_iter()
            .map(|i| {
                let (beam, token) = (i / vocab, (i % vocab) as u32);
                let mut tokens = running[beam].tokens.clone();
                tokens.push(token);
                let hits = t5.eos_token_ids.contains(&token) || cur_len + 1 >= max_length;
                let score = accumulated[i];
                (
                    Hypothesis {
                        tokens,
                        score,
                        finished: false,
                    },
                    hits,
                )
            })
            .collect();
        // The best continuations that go on.
        let going: Vec<f32> = candidates
            .iter()
            .map(|(h, hits)| h.score + if *hits { NEVER } else { 0.0 })
            .collect();
        let chosen = top_k(&going, beams);
        if decoder.is_some() {
            caches = hand_on(
                std::mem::take(&mut caches),
                chosen.iter().map(|&i| parents[i]),
            );
        }
        running = chosen
            .into_iter()
            .map(|i| Hypothesis {
                score: going[i],
                ..candidates[i].0.clone()
            })
            .collect();
        // The finished ones among the first `beams`, merged with those before.
        let full = d.early_stopping && done.iter().all(|h| h.finished);
        let length = ((cur_len + 1 - 1) as f32).powf(lp);
        let mut merged = done.clone();
        for (c, (h, hits)) in candidates.iter().enumerate() {
            let just_finished = *hits && c < beams;
            let mut score = h.score / length;
            if full {
                score += NEVER;
            }
            if !can_improve {
                score += NEVER;
            }
            if !just_finished {
                score += NEVER;
            }
            merged.push(Hypothesis {
                tokens: h.tokens.clone(),
                score,
                finished: just_finished,
            });
        }
        let scores: Vec<f32> = merged.iter().map(|h| h.score).collect();
        done = top_k(&scores, beams)
            .into_iter()
            .map(|i| merged[i].clone())
            .collect();
        cur_len += 1;
        // Can a running beam still beat the worst finished one?
        let best_running = running[0].score / ((cur_len - 1) as f32).powf(lp);
        let worst_done = done.iter().map(|h| h.score).fold(f32::INFINITY, f32::min);
        can_improve = can_improve
            && done
                .iter()
                .any(|h| best_running > if h.finished { worst_done } else { NEVER });
        let open = !(d.early_stopping && done.iter().all(|h| h.finished));
        let continues = !candidates.iter().all(|(_, hits)| *hits);
        if !(can_improve && open && continues) {
            break;
        }
        if !on_step(&running[0].tokens[1..]) {
            // Stopped by the caller: the best finished target, else the best running one.
            if !done.first().is_some_and(|h| h.finished) {
                return Ok(running[0].tokens[1..].to_vec());
            }
            break;
        }
    }
    let best = done
        .into_iter()
        .next()
        .filter(|h| !h.tokens.is_empty())
        .ok_or_else(|| EngineError::InvalidConfig("beam search finished no target".into()))?;
    Ok(best.tokens[1..].to_vec())
}

/// A text-to-text model loaded from a folder, with its tokenizer: to generate and evaluate.
pub struct TextToText {
    model: Model,
    tokenizer: TextTokenizer,
    /// Written before every source (the config's `prefix`, as transformers' pipeline does).
    prefix: String,
}

/// One generated target.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Generated {
    /// The target's text, special tokens left out.
    pub text: String,
    /// The source's tokens (the end token included).
    pub source_ids: Vec<u32>,
    /// The generated tokens, the end token included when one was reached.
    pub token_ids: Vec<u32>,
}

impl TextToText {
    /// Loads a `*ForConditionalGeneration` folder (or a base T5); `max_length` (default: the
    /// model's `n_positions`) bounds the sources.
    pub fn load(
        dir: &std::path::Path,
        device: &candle_core::Device,
        max_length: Option<usize>,
    ) -> Result<Self, EngineError> {
        let model = Model::load(dir, crate::models::Task::Text2Text, 0, None, device, 0)?;
        let longest = max_length.unwrap_or(model.spec().encoder.max_position_embeddings);
        let tokenizer = TextTokenizer::from_model_dir(dir, longest)?;
        let prefix = model.spec().raw["prefix"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok(TextToText {
            model,
            tokenizer,
            prefix,
        })
    }

    /// What is written before every source (the config's `prefix`; empty for none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Scores the model on labeled examples (source `text`, target `label`; the model's
    /// prefix before each source): the teacher-forced loss, and greedy generations against
    /// the targets (ROUGE, with the Porter stemmer when `stem`; exact match; length).
    pub fn evaluate(
        &self,
        examples: &[Example],
        stem: bool,
        batch_size: usize,
        decoding: Decoding,
    ) -> Result<GenerationReport, EngineError> {
        let start = self
            .model
            .spec()
            .encoder
            .t5
            .as_ref()
            .map_or(0, |t| t.decoder_start_token_id);
        let set = encode(
            &self.tokenizer,
            examples,
            &self.prefix,
            decoding.max_new_tokens.max(1),
            start,
            true,
        )?;
        let mut stepper = Stepper::new(&self.model, true);
        let loss =
            crate::inference::evaluate_language(&self.model, &set, batch_size, &mut stepper)?.loss;
        let texts: Vec<(String, String)> = examples
            .iter()
            .map(|e| (e.text.clone(), e.label.clone().unwrap_or_default()))
            .collect();
        generation_report(
            &self.model,
            &mut stepper,
            &self.tokenizer,
            &texts,
            &set.sources,
            &decoding,
            loss,
            stem,
        )
    }

    /// One source's target (after the model's prefix) as a [`crate::generate::Generation`]:
    /// a chat's answer in the Playground. One beam streams its text to `on_text` as it is
    /// decided (held back and cut at the settings' stop texts); beam search sends it when
    /// the search ends (the leading beam changes as it goes). `go_on` is asked after every
    /// step: false stops with what there is.
    pub fn answer(
        &self,
        source: &str,
        settings: &crate::generate::GenerationSettings,
        search: &Search,
        on_text: &mut dyn FnMut(&str),
        go_on: &dyn Fn() -> bool,
    ) -> Result<crate::generate::Generation, EngineError> {
        use crate::generate::{Generation, StopReason, TextStream};
        settings.validate()?;
        search.validate()?;
        let started = std::time::Instant::now();
        let decoding = Decoding::answering(settings, search);
        let source_ids = self
            .sources(&[source.to_string()])?
            .pop()
            .ok_or_else(|| EngineError::InvalidConfig("the source has no tokens".into()))?;
        let ends: &[u32] = self
            .model
            .spec()
            .encoder
            .t5
            .as_ref()
            .map_or(&[], |t| t.eos_token_ids.as_slice());
        let mut stepper = Stepper::new(&self.model, true);
        let mut stream = TextStream::new(&self.tokenizer, &settings.stop);
        let mut send = |text: &str| {
            on_text(text);
            go_on()
        };
        let mut stopped = None;
        let mut failed = None;
        let target = if decoding.num_beams == 1 {
            generate_with(
                &self.model,
                &mut stepper,
                &source_ids,
                &decoding,
                &mut |target| match target.last() {
                    Some(t) if !ends.contains(t) => match stream.push(*t, &mut send) {
                        Ok(None) => true,
                        Ok(Some(reason)) => {
                            stopped = Some(reason);
                            false
                        }
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    },
                    _ => true,
                },
            )?
        } else {
            let target = generate_with(
                &self.model,
                &mut stepper,
                &source_ids,
                &decoding,
                &mut |_| go_on(),
            )?;
            if !go_on() {
                stopped = Some(StopReason::Cancelled);
            }
            for &t in target.iter().filter(|t| !ends.contains(t)) {
                if let Some(reason) = stream.push(t, &mut send)? {
                    stopped = stopped.or(Some(reason));
                    break;
                }
            }
            target
        };
        if let Some(e) = failed {
            return Err(e);
        }
        let stop = stopped.unwrap_or(match target.last() {
            Some(t) if ends.contains(t) => StopReason::EndToken,
            _ => StopReason::Length,
        });
        let (text, tokens) = stream.finish(stop, &mut send);
        let seconds = started.elapsed().as_secs_f64().max(1e-9);
        Ok(Generation {
            text,
            prompt_tokens: source_ids.len(),
            prompt: source_ids,
            new_tokens: tokens.len(),
            tokens_per_second: tokens.len() as f64 / seconds,
            tokens,
            stop,
        })
    }

    /// Generates a target for each text (after the model's prefix).
    pub fn generate(
        &self,
        texts: &[String],
        decoding: &Decoding,
    ) -> Result<Vec<Generated>, EngineError> {
        let mut stepper = Stepper::new(&self.model, true);
        self.sources(texts)?
            .into_iter()
            .map(|source_ids| {
                let token_ids = generate(&self.model, &mut stepper, &source_ids, decoding)?;
                Ok(Generated {
                    text: self.tokenizer.decode(&token_ids)?,
                    source_ids,
                    token_ids,
                })
            })
            .collect()
    }

    /// Each text's source tokens, the model's prefix before it.
    fn sources(&self, texts: &[String]) -> Result<Vec<Vec<u32>>, EngineError> {
        let prefixed: Vec<String> = texts
            .iter()
            .map(|t| format!("{}{t}", self.prefix))
            .collect();
        let pairs: Vec<(&str, Option<&str>)> =
            prefixed.iter().map(|t| (t.as_str(), None)).collect();
        Ok(self
            .tokenizer
            .encode(&pairs)?
            .into_iter()
            .map(|e| e.input_ids)
            .collect())
    }
}

/// The first index of the largest score.
fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}
