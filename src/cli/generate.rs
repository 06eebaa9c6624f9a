//! `hone generate`: text from a causal LM (a fine-tuned run's folder, a base decoder or a
//! LoRA adapter folder on one), streamed as it is written; `--chat` puts each prompt through
//! the model's chat template as a user turn. A text-to-text model (T5) writes a target for
//! each prompt, greedily.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use hone_app::types::{ChatMessage, GenerationSettings};

use super::ModelArgs;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A LoRA adapter folder to generate with; its base model must be --model.
    #[arg(long, value_name = "DIR")]
    adapter: Option<PathBuf>,
    /// Each prompt is a user's turn of a chat (the model's chat template, with its
    /// generation prompt); without it the prompt is text to continue.
    #[arg(long)]
    chat: bool,
    /// A system message before each chat prompt.
    #[arg(long, requires = "chat")]
    system: Option<String>,
    /// The most tokens to write.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// 0 writes the most probable token each time (greedy); higher samples more freely.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Sample among the most probable tokens whose probabilities add up to P.
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    top_p: f64,
    /// Sample among the K most probable tokens (0: all).
    #[arg(long, default_value_t = 0, value_name = "K")]
    top_k: usize,
    /// Above 1 makes repeating the text's tokens less likely.
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f64,
    /// Stop when the text holds this (repeatable; the stop text is left out).
    #[arg(long, value_name = "TEXT")]
    stop: Vec<String>,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Text-to-text (T5): beam search over N beams (1: greedy), as transformers' generate.
    #[arg(long, default_value_t = 1, value_name = "N")]
    num_beams: usize,
    /// Beam search: a finished target scores log-probability / length^P (P > 0 favours
    /// longer targets).
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    length_penalty: f64,
    /// Beam search: stop as soon as --num-beams targets are finished.
    #[arg(long)]
    early_stopping: bool,
    /// Text-to-text (T5): never repeat an n-gram of N tokens in a target (0: allowed).
    #[arg(long, default_value_t = 0, value_name = "N")]
    no_repeat_ngram_size: usize,
    /// Print one JSON object per prompt (text, tokens, why it stopped, speed) instead of
    /// streaming the text.
    #[arg(long)]
    json: bool,
    /// Prompts; `-` reads one prompt per line from standard input.
    #[arg(value_name = "PROMPT", required = true)]
    prompts: Vec<String>,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let folder = match &args.adapter {
        Some(adapter) => {
            hone_app::check_adapter_base(adapter, &args.model_dir())?;
            adapter.clone()
        }
        None => args.model_dir(),
    };
    let model = args.model.load_from(&folder)?;
    let prompts = read_prompts(&args.prompts)?;
    if let Some(t2t) = model.text_to_text() {
        return generate_targets(t2t, &args, &prompts);
    }
    let lm = model.language_model()?;
    if args.chat && !lm.has_chat_template() {
        eprintln!("note: the model has no chat template; prompts are written in the Alpaca prompt");
    }
    let settings = GenerationSettings {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        repetition_penalty: args.repetition_penalty,
        stop: args.stop.clone(),
        seed: args.seed,
    };
    let mut stdout = std::io::stdout();
    for (i, prompt) in prompts.iter().enumerate() {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::new("system", system.clone()));
        }
        messages.push(ChatMessage::new("user", prompt.clone()));
        let generation = lm.generate(&messages, args.chat, &settings, &mut |piece| {
            if !args.json {
                print!("{piece}");
                let _ = stdout.flush();
            }
            true
        })?;
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "prompt": prompt,
                    "text": generation.text,
                    "prompt_tokens": generation.prompt_tokens,
                    "prompt_ids": generation.prompt,
                    "token_ids": generation.tokens,
                    "new_tokens": generation.new_tokens,
                    "stop": generation.stop,
                    "tokens_per_second": generation.tokens_per_second,
                })
            );
        } else {
            println!();
            eprintln!(
                "({} tokens, {:.1} tokens/s, stopped: {:?})",
                generation.new_tokens, generation.tokens_per_second, generation.stop
            );
            if i + 1 < prompts.len() {
                println!();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The prompts given, or one per line of standard input for `-`.
fn read_prompts(given: &[String]) -> anyhow::Result<Vec<String>> {
    let prompts: Vec<String> = if given == ["-"] {
        std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .collect()
    } else {
        given.to_vec()
    };
    if prompts.is_empty() {
        bail!("no prompt to answer");
    }
    Ok(prompts)
}

/// A text-to-text model's targets, one per source, written greedily.
fn generate_targets(
    model: &hone_app::types::TextToText,
    args: &GenerateArgs,
    sources: &[String],
) -> anyhow::Result<ExitCode> {
    if args.chat || !args.stop.is_empty() {
        bail!("a text-to-text model (T5) writes a target from each source: --chat and --stop are for causal LMs");
    }
    if args.num_beams == 0 {
        bail!("--num-beams must be at least 1");
    }
    // Sampling, top-k/top-p or a repetition penalty choose tokens as a causal LM does.
    let chooses = args.temperature > 0.0 || args.repetition_penalty != 1.0;
    let decoding = hone_app::types::Decoding {
        num_beams: args.num_beams,
        length_penalty: args.length_penalty,
        early_stopping: args.early_stopping,
        no_repeat_ngram_size: args.no_repeat_ngram_size,
        sampling: chooses.then(|| GenerationSettings {
            max_new_tokens: args.max_new_tokens,
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repetition_penalty,
            stop: Vec::new(),
            seed: args.seed,
        }),
        ..hone_app::types::Decoding::greedy(args.max_new_tokens)
    };
    for (source, started) in sources.iter().map(|s| (s, std::time::Instant::now())) {
        let generated = model
            .generate(std::slice::from_ref(source), &decoding)?
            .pop()
            .ok_or_else(|| anyhow::anyhow!("nothing was generated"))?;
        let seconds = started.elapsed().as_secs_f64();
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "source": source,
                    "generated": generated.text,
                    "source_ids": generated.source_ids,
                    "token_ids": generated.token_ids,
                    "new_tokens": generated.token_ids.len(),
                    "tokens_per_second": generated.token_ids.len() as f64 / seconds.max(1e-9),
                })
            );
        } else {
            println!("{}", generated.text);
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl GenerateArgs {
    fn model_dir(&self) -> PathBuf {
        self.model.model.clone()
    }
}
