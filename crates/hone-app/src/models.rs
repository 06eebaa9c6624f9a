//! Models: can Hone train this one, and does it fit this machine (from config.json and the file
//! list alone, so it works before a download); local folders imported into the database; the
//! Hugging Face cache; and turning what a user typed (`org/name` or a folder) into a folder.

use std::path::{Path, PathBuf};

use hone_engine::device::DeviceSpec;
use hone_engine::memory::{estimate, FitSettings, MemoryEstimate};
use hone_engine::models::{supported_model_types, Family, ModelSpec};
use hone_engine::speed::{cpu_matrix_rates, estimate_speed, SpeedEstimate};
use hone_hub::download::plan_files;
use hone_hub::{CachedModel, HubClient, ModelInfo, ModelSummary};
use hone_store::{ModelRecord, NewModel};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::machine::{machine_memory, Judged, MachineMemory};
use crate::{App, AppError};

/// Weight files Hone loads (any one of them).
const WEIGHT_FILES: [&str; 4] = [
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

/// Whether an estimate fits in the memory it is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// At most 80% of the available memory.
    Fits,
    /// Within the available memory, or within the machine's total once other programs close.
    Tight,
    DoesNotFit,
}

impl Verdict {
    /// Judges `needed` bytes against `available` (free now) of `total`.
    pub fn judge(needed: u64, available: u64, total: u64) -> Self {
        if needed as f64 <= 0.8 * available as f64 {
            Verdict::Fits
        } else if needed <= available || needed as f64 <= 0.9 * total as f64 {
            Verdict::Tight
        } else {
            Verdict::DoesNotFit
        }
    }

    /// The worse of two verdicts (a run needs both memories).
    pub fn worse(self, other: Verdict) -> Verdict {
        let rank = |v: Verdict| match v {
            Verdict::Fits => 0,
            Verdict::Tight => 1,
            Verdict::DoesNotFit => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    /// A word for people.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Fits => "fits",
            Verdict::Tight => "tight",
            Verdict::DoesNotFit => "does not fit",
        }
    }
}

/// One variant of a fine-tune (full, or with frozen embeddings) against this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitLine {
    pub estimate: MemoryEstimate,
    pub verdict: Verdict,
    /// Expected speed on this machine's CPU (`None` when judged against a GPU, whose speed
    /// Hone does not estimate yet).
    pub speed: Option<SpeedEstimate>,
}

/// The fit check: estimates for full fine-tuning and for frozen embeddings, and what they were
/// compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    pub full: FitLine,
    pub frozen_embeddings: FitLine,
    /// LoRA at the settings' rank (else [`hone_engine::memory::DEFAULT_LORA_RANK`]) on the
    /// query and value projections, the head trained in full.
    pub lora: FitLine,
    /// "RAM" or the GPU's name.
    pub compared_with: String,
    pub available: u64,
    pub total: u64,
    /// Judged against a GPU: what the run also needs in RAM (the weights are read there before
    /// they move to the GPU, the program, tokenizer and data live there, and a resumable
    /// checkpoint is written from host copies of the weights and moments), against the RAM.
    /// Each line's verdict is the worse of the two.
    pub host: Option<HostFit>,
}

/// A GPU run's need of the machine's RAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFit {
    pub needed: u64,
    pub available: u64,
    pub total: u64,
    pub verdict: Verdict,
}

/// A Hub search result with the family Hone would train it as, read from its tags (the Hub
/// tags every model with its config's `model_type`): `None` when no tag names a family Hone
/// trains, which is a strong hint, not a verdict (the model page checks config.json).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    #[serde(flatten)]
    pub model: ModelSummary,
    pub family: Option<String>,
}

/// The family named by a model's Hub tags, if Hone trains it.
pub fn family_from_tags(tags: &[String]) -> Option<Family> {
    tags.iter().find_map(|t| Family::from_model_type(t))
}

/// Search results with their families.
pub fn search_hits(models: Vec<ModelSummary>) -> Vec<SearchHit> {
    models
        .into_iter()
        .map(|model| SearchHit {
            family: family_from_tags(&model.tags).map(|f| f.name().to_string()),
            model,
        })
        .collect()
}

/// What Hone can do with a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCheck {
    pub model_type: Option<String>,
    /// The model family Hone would load it as (BERT, DistilBERT, RoBERTa).
    pub family: Option<String>,
    /// True when Hone can fine-tune it.
    pub trainable: bool,
    pub tasks: Vec<String>,
    /// Why it cannot be trained (empty when it can).
    pub problems: Vec<String>,
    /// Parameters with a classification head (computed from config.json).
    pub parameters: Option<u64>,
    pub fit: Option<FitReport>,
    /// For an adapter folder: what the adapters are and the base model they apply to (the
    /// rest of the check is the base's).
    #[serde(default)]
    pub adapter: Option<String>,
}

/// Checks a model from its config.json (if any) and the names of its files.
pub fn check_model(
    config: Option<&Value>,
    files: &[String],
    settings: FitSettings,
    machine: &MachineMemory,
) -> ModelCheck {
    let mut problems = Vec::new();
    let model_type = config
        .and_then(|c| c.get("model_type"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let spec = match config {
        None => {
            problems.push("there is no config.json".to_string());
            None
        }
        Some(config) => match ModelSpec::from_json(config.clone(), Path::new("config.json")) {
            Ok(spec) => Some(spec),
            Err(_) if model_type.is_none() => {
                problems.push("config.json has no model_type".to_string());
                None
            }
            Err(e) => {
                problems.push(
                    match Family::from_model_type(model_type.as_deref().unwrap_or_default()) {
                        Some(_) => e.to_string(),
                        None => format!(
                            "Hone cannot train model_type \"{}\" yet (it trains {})",
                            model_type.as_deref().unwrap_or_default(),
                            supported_model_types()
                        ),
                    },
                );
                None
            }
        },
    };
    let has = |names: &[&str]| files.iter().any(|f| names.contains(&f.as_str()));
    if !has(&WEIGHT_FILES) {
        problems.push(
            "no weights Hone can read (model.safetensors or pytorch_model.bin, single or sharded)"
                .to_string(),
        );
    }
    let family = spec
        .as_ref()
        .map(|s| s.family)
        .or_else(|| model_type.as_deref().and_then(Family::from_model_type));
    if let Some(family) = family.map(Family::descriptor) {
        if !has(family.tokenizer_loads_from) {
            problems.push(format!(
                "no {} ({} models need it to tokenize)",
                family.tokenizer_loads_from.join(" or "),
                family.name
            ));
        }
    }
    let trainable = problems.is_empty();
    let fit = spec
        .as_ref()
        .map(|spec| fit_report(spec, settings, machine));
    ModelCheck {
        model_type,
        family: spec.as_ref().map(|s| s.family.name().to_string()),
        trainable,
        tasks: match (&spec, trainable) {
            (Some(spec), true) => spec
                .descriptor()
                .tasks
                .iter()
                .map(|t| t.display_name().to_string())
                .collect(),
            _ => Vec::new(),
        },
        problems,
        parameters: fit.as_ref().map(|f| f.full.estimate.parameters),
        fit,
        adapter: None,
    }
}

/// Estimates full and frozen-embedding fine-tuning and judges both against the memory of the
/// device the settings name (`auto`: the first GPU when one is compiled in and present, else
/// the RAM).
pub fn fit_report(spec: &ModelSpec, settings: FitSettings, machine: &MachineMemory) -> FitReport {
    let judged = machine.judged(settings.device.unwrap_or(DeviceSpec::Auto));
    let (compared_with, available, total) = match &judged {
        Judged::Gpu(gpu) => (gpu.name.clone(), gpu.free, gpu.total),
        Judged::Ram | Judged::Unified => {
            ("RAM".to_string(), machine.ram_available, machine.ram_total)
        }
        // Nothing to run on: every line does not fit, and says why.
        Judged::Missing(why) => (why.clone(), 0, 0),
    };
    // What stays on the host is the CPU estimate's; on a GPU the run's own memory is the
    // autograd graph's (fp32 unless the settings say otherwise). On the CPU, a mixed precision
    // the CPU's own graph does not run (fp16; bf16 without AVX512-BF16) takes the autograd
    // graph too, and so does an Apple GPU (its memory is the RAM).
    let host_settings = FitSettings {
        autograd: None,
        gpu: false,
        ..settings
    };
    let on_gpu = matches!(judged, Judged::Gpu(_) | Judged::Missing(_));
    let gpu_runs_it = on_gpu || judged == Judged::Unified;
    let bf16 = hone_engine::precision::Precision::Bf16;
    let settings = FitSettings {
        autograd: match gpu_runs_it {
            true => Some(settings.autograd.unwrap_or_default()),
            false => settings.autograd.filter(|p| !p.runs_on_cpu_graph()),
        },
        bf16_products: !gpu_runs_it && settings.autograd == Some(bf16) && bf16.runs_on_cpu_graph(),
        gpu: on_gpu,
        ..settings
    };
    // The speed estimate is the CPU's.
    let rates = (!gpu_runs_it).then(cpu_matrix_rates);
    let host = matches!(judged, Judged::Gpu(_)).then(|| {
        // The weights read on the host before they move, the program and data, and what a
        // resumable checkpoint copies to the host to write it: every weight and both moments.
        let e = estimate(spec, host_settings);
        let needed = 2 * e.weights + e.optimizer + e.runtime + e.checkpoint;
        HostFit {
            needed,
            available: machine.ram_available,
            total: machine.ram_total,
            verdict: Verdict::judge(needed, machine.ram_available, machine.ram_total),
        }
    });
    let line = |freeze_embeddings, lora_rank| {
        let settings = FitSettings {
            freeze_embeddings,
            lora_rank,
            ..settings
        };
        let estimate = estimate(spec, settings);
        let verdict = Verdict::judge(estimate.total, available, total);
        FitLine {
            verdict: host.as_ref().map_or(verdict, |h| verdict.worse(h.verdict)),
            estimate,
            speed: rates.map(|rates| estimate_speed(spec, settings, rates)),
        }
    };
    FitReport {
        full: line(false, None),
        frozen_embeddings: line(true, None),
        lora: line(
            false,
            Some(
                settings
                    .lora_rank
                    .unwrap_or(hone_engine::memory::DEFAULT_LORA_RANK),
            ),
        ),
        compared_with,
        available,
        total,
        host,
    }
}

/// A Hub model's page: what the Hub says, what Hone can do with it at `settings`, what a
/// fine-tune downloads, and whether it is already cached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubModelPage {
    pub info: ModelInfo,
    pub check: ModelCheck,
    pub download_bytes: u64,
    pub cached: bool,
    /// The model card rendered for the window (`card::card_html`: no raw HTML, web links only).
    pub card_html: Option<String>,
    /// Set when the Hub could not be reached and the page comes from the cached copy: why, and
    /// what is not known offline.
    pub offline: Option<String>,
}

/// Fetches a Hub model's page (the listing, config.json and card) and checks it against this
/// machine.
pub fn hub_model_page(
    hub: &HubClient,
    repo: &str,
    revision: Option<&str>,
    settings: FitSettings,
) -> Result<HubModelPage, AppError> {
    let info = match hub.model_info(repo, revision) {
        Ok(info) => info,
        // Offline (by choice or not): the cached copy, if there is one, says what it can.
        Err(
            e @ (hone_hub::HubError::Network { .. }
            | hone_hub::HubError::Offline { .. }
            | hone_hub::HubError::TooManyRetries { .. }),
        ) => {
            return cached_model_page(hub, repo, revision, settings, &e.to_string())
                .ok_or_else(|| e.into())
        }
        Err(e) => return Err(e.into()),
    };
    let files: Vec<String> = info.files.iter().map(|f| f.name.clone()).collect();
    let check = check_model(info.config.as_ref(), &files, settings, &machine_memory());
    let planned = plan_files(&info, &[]).unwrap_or_default();
    let download_bytes = planned.iter().filter_map(|f| f.size).sum();
    // Downloaded means every planned file is in the snapshot of this revision: a cancelled
    // download leaves the repo folder with partial blobs only, and must still offer Download.
    let revision = info.sha.as_deref().or(revision).unwrap_or("main");
    let cached = !planned.is_empty()
        && hub
            .cached_snapshot(repo, revision)
            .is_some_and(|dir| planned.iter().all(|f| dir.join(&f.name).is_file()));
    Ok(HubModelPage {
        cached,
        card_html: info.card.as_deref().map(crate::card::card_html),
        info,
        check,
        download_bytes,
        offline: None,
    })
}

/// A model's page from its cached snapshot alone, when the Hub cannot be reached (`why`): its
/// files, config.json and card as downloaded; nothing the Hub alone knows (downloads, likes,
/// tags, the latest commit). `None` when the model is not in the cache.
fn cached_model_page(
    hub: &HubClient,
    repo: &str,
    revision: Option<&str>,
    settings: FitSettings,
    why: &str,
) -> Option<HubModelPage> {
    let dir = match revision {
        Some(r) => hub.cached_snapshot(repo, r)?,
        None => hub.resolve_cached(repo).ok()?,
    };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let config: Option<Value> = read("config.json").and_then(|t| serde_json::from_str(&t).ok());
    let files: Vec<hone_hub::RepoFile> = folder_files(&dir)
        .into_iter()
        .map(|name| hone_hub::RepoFile {
            size: std::fs::metadata(dir.join(&name)).ok().map(|m| m.len()),
            name,
            sha256: None,
        })
        .collect();
    let names: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let check = check_model(config.as_ref(), &names, settings, &machine_memory());
    let card = read("README.md");
    let info = ModelInfo {
        id: repo.to_string(),
        sha: dir.file_name().map(|n| n.to_string_lossy().into_owned()),
        task: None,
        library: None,
        license: None,
        tags: Vec::new(),
        gated: false,
        private: false,
        downloads: 0,
        likes: 0,
        last_modified: None,
        files,
        parameters: None,
        config_summary: config
            .as_ref()
            .map(hone_hub::info::ModelConfigSummary::from_config),
        config,
        card,
    };
    Some(HubModelPage {
        cached: true,
        card_html: info.card.as_deref().map(crate::card::card_html),
        info,
        check,
        download_bytes: 0,
        offline: Some(format!(
            "{why}. Shown from the copy in the cache ({}): it can be trained as it is; \
             downloads, likes, tags and newer versions are not known offline.",
            dir.display()
        )),
    })
}

/// File names (relative, `/`-separated) directly in a folder.
fn folder_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a model folder on disk (a local import or a Hub snapshot); an adapter folder is
/// checked as its base model, with what the adapters are.
pub fn check_folder(dir: &Path, settings: FitSettings) -> Result<ModelCheck, AppError> {
    if let Some(adapter) = hone_engine::lora::AdapterFolder::open(dir)? {
        let what = match &adapter.kind {
            hone_engine::lora::AdapterKind::Lora(l) => {
                format!(
                    "a LoRA adapter (rank {}, alpha {}, on {}): train it further with peft = lora, \
                     or merge it (hone export --merge)",
                    l.r,
                    l.alpha,
                    l.target_entries().join(", ")
                )
            }
            hone_engine::lora::AdapterKind::Bottleneck(b) => format!(
                "bottleneck adapters (size {}, {:?}): train them further with peft = adapter",
                b.size, b.placement
            ),
            hone_engine::lora::AdapterKind::Prefix(p) => format!(
                "a prefix ({} virtual tokens, PEFT prefix tuning): train it further with \
                 peft = prefix",
                p.tokens
            ),
        };
        let settings = FitSettings {
            lora_rank: match &adapter.kind {
                hone_engine::lora::AdapterKind::Lora(l) => Some(l.r),
                _ => settings.lora_rank,
            },
            ..settings
        };
        let mut check = check_folder(&adapter.base_dir, settings)?;
        check.adapter = Some(format!("{what}; base model {}", adapter.base_dir.display()));
        return Ok(check);
    }
    let config_path = dir.join("config.json");
    let config = match std::fs::read_to_string(&config_path) {
        Ok(text) => Some(serde_json::from_str::<Value>(&text).map_err(|e| {
            AppError::Invalid(format!("{} is not valid JSON: {e}", config_path.display()))
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(AppError::Io {
                path: config_path,
                source: e,
            })
        }
    };
    Ok(check_model(
        config.as_ref(),
        &folder_files(dir),
        settings,
        &machine_memory(),
    ))
}

/// Bytes of the files in a folder, following links (Hub snapshots link into `blobs/`).
pub fn folder_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::metadata(e.ok()?.path()).ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The database record of the model folder `dir`: a Hub cache snapshot as its repo and
/// commit, any other folder as a local model named after it.
pub(crate) fn model_record(
    dir: &Path,
    model_type: Option<String>,
    fingerprint: String,
) -> NewModel {
    let path = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let origin = hub_origin(dir);
    NewModel {
        name: match &origin {
            Some((repo, _)) => repo.clone(),
            None => path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
        },
        source: if origin.is_some() { "hub" } else { "local" }.into(),
        path: path.display().to_string(),
        repo_id: origin.as_ref().map(|(repo, _)| repo.clone()),
        revision: origin.map(|(_, commit)| commit),
        model_type,
        fingerprint,
        size_bytes: folder_size(dir) as i64,
    }
}

/// A model Hone knows: a local folder recorded in the database, or one in the Hub cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownModel {
    /// What to pass to `--model`: the repo id of a cached Hub model, else the folder.
    pub reference: String,
    /// "local" or "hub".
    pub source: String,
    pub path: PathBuf,
    pub model_type: Option<String>,
    pub size_bytes: u64,
    /// The cached revision of a Hub model.
    pub revision: Option<String>,
}

impl App {
    /// Validates a model folder (config, weights, tokenizer, an architecture Hone trains) and
    /// records it in the database.
    pub fn import_model(&mut self, dir: &Path) -> Result<(ModelRecord, ModelCheck), AppError> {
        if !dir.is_dir() {
            return Err(AppError::Invalid(format!(
                "{} is not a folder; give the folder holding config.json, the weights and the tokenizer",
                dir.display()
            )));
        }
        let check = check_folder(dir, FitSettings::default())?;
        if !check.trainable {
            return Err(AppError::Invalid(format!(
                "{} cannot be imported: {}",
                dir.display(),
                check.problems.join("; ")
            )));
        }
        let path = dir.canonicalize().map_err(|e| AppError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let fingerprint = crate::fingerprint::model(&path)?;
        let model = model_record(&path, check.model_type.clone(), fingerprint);
        let id = self.store.upsert_model(&model)?;
        let record = self
            .store
            .models()?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| AppError::Invalid("the imported model vanished".into()))?;
        Ok((record, check))
    }

    /// Local models recorded in the database (still on disk) and the models in the Hub cache.
    pub fn known_models(&self, hub: &HubClient) -> Result<Vec<KnownModel>, AppError> {
        let mut models: Vec<KnownModel> = hub
            .cached_models()
            .into_iter()
            .filter_map(|m| cached_entry(&m))
            .collect();
        for record in self.store.models()? {
            let m = record.model;
            if m.source != "local" || models.iter().any(|k| k.path == Path::new(&m.path)) {
                continue;
            }
            models.push(KnownModel {
                reference: m.path.clone(),
                source: m.source,
                path: PathBuf::from(&m.path),
                model_type: m.model_type,
                size_bytes: m.size_bytes.max(0) as u64,
                revision: None,
            });
        }
        Ok(models)
    }

    /// Forgets a model: a Hub repo id is deleted from the cache (returns the bytes freed); a
    /// local folder is only removed from the database, its files stay.
    pub fn remove_model(&mut self, hub: &HubClient, reference: &str) -> Result<u64, AppError> {
        if hub.cached_model(reference).is_some() {
            return Ok(hub.remove_cached(reference)?);
        }
        let path = Path::new(reference);
        let key = path
            .canonicalize()
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string();
        if self.store.remove_model(&key)? || self.store.remove_model(reference)? {
            return Ok(0);
        }
        Err(AppError::NoModel(reference.to_string()))
    }
}

fn cached_entry(m: &CachedModel) -> Option<KnownModel> {
    let snapshot = m.default_snapshot()?;
    Some(KnownModel {
        reference: m.repo.clone(),
        source: "hub".into(),
        path: snapshot.path.clone(),
        model_type: m.model_type.clone(),
        size_bytes: m.size_bytes,
        revision: Some(snapshot.commit.clone()),
    })
}

/// The repo id and commit of a Hugging Face cache snapshot folder
/// (`…/models--org--name/snapshots/<commit>`), if `dir` is one.
pub fn hub_origin(dir: &Path) -> Option<(String, String)> {
    let commit = dir.file_name()?.to_str()?.to_string();
    let snapshots = dir.parent()?;
    if snapshots.file_name()? != "snapshots" {
        return None;
    }
    let repo_dir = snapshots.parent()?.file_name()?.to_str()?;
    let repo = repo_dir.strip_prefix("models--")?.replace("--", "/");
    Some((repo, commit))
}

/// Turns `--model` into a folder: an existing folder as is, else a Hub repo id (`org/name`)
/// from the Hugging Face cache. A repo id that is not cached is an error saying how to get it;
/// anything else is returned as is.
pub fn resolve_model(reference: &Path, hub: &HubClient) -> Result<PathBuf, AppError> {
    if reference.is_dir() {
        return Ok(reference.to_path_buf());
    }
    let text = reference.to_string_lossy();
    let looks_like_repo = hone_hub::check_repo_id(&text).is_ok() && !text.starts_with('.');
    if !looks_like_repo {
        // A folder that is not there: the engine's error names what is missing.
        return Ok(reference.to_path_buf());
    }
    hub.resolve_cached(&text).map_err(AppError::NotDownloaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine(ram: u64) -> MachineMemory {
        MachineMemory {
            ram_total: ram,
            ram_available: ram / 2,
            gpus: Vec::new(),
            gpu_backend: None,
        }
    }

    fn names(files: &[&str]) -> Vec<String> {
        files.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn snapshot_folders_name_their_repo() {
        let dir = Path::new("/c/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/abc");
        assert_eq!(
            hub_origin(dir),
            Some((
                "sentence-transformers/all-MiniLM-L6-v2".into(),
                "abc".into()
            ))
        );
        assert_eq!(hub_origin(Path::new("/models/minilm")), None);
    }

    #[test]
    fn verdicts_follow_the_thresholds() {
        assert_eq!(Verdict::judge(80, 100, 200), Verdict::Fits);
        assert_eq!(Verdict::judge(95, 100, 200), Verdict::Tight);
        assert_eq!(Verdict::judge(170, 100, 200), Verdict::Tight);
        assert_eq!(Verdict::judge(190, 100, 200), Verdict::DoesNotFit);
    }

    #[test]
    fn a_bert_with_weights_and_tokenizer_is_trainable_and_judged() {
        let config = json!({"model_type": "bert", "vocab_size": 30522, "hidden_size": 384,
            "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
            "max_position_embeddings": 512, "type_vocab_size": 2});
        let files = names(&["config.json", "model.safetensors", "vocab.txt"]);
        let check = check_model(
            Some(&config),
            &files,
            FitSettings::default(),
            &machine(16 << 30),
        );
        assert!(check.trainable, "{:?}", check.problems);
        assert_eq!(check.family.as_deref(), Some("BERT"));
        assert_eq!(
            check.tasks,
            [
                "text and text-pair classification",
                "token classification",
                "multiple choice",
                "extractive question answering"
            ]
        );
        assert_eq!(check.parameters, Some(22_713_986));
        let fit = check.fit.expect("a fit report");
        assert_eq!(fit.full.verdict, Verdict::Fits);
        assert!(fit.frozen_embeddings.estimate.total < fit.full.estimate.total);
        let small = check_model(
            Some(&config),
            &files,
            FitSettings::default(),
            &machine(256 << 20),
        );
        assert_eq!(
            small.fit.expect("a fit report").full.verdict,
            Verdict::DoesNotFit
        );
    }

    /// The fit check judges the device the run names: `cuda:1` the second GPU's memory, `cpu`
    /// the RAM with the CPU's estimate even when a GPU is there, a GPU the machine lacks does
    /// not fit and says why; without a device, the first GPU.
    #[test]
    fn the_fit_check_judges_the_device_the_run_names() {
        use crate::machine::GpuMemory;
        let config = json!({"model_type": "bert", "vocab_size": 30522, "hidden_size": 384,
            "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
            "max_position_embeddings": 512, "type_vocab_size": 2});
        let spec = ModelSpec::from_json(config, Path::new("config.json")).unwrap();
        let gpu = |index: usize, name: &str, free: u64, total: u64| GpuMemory {
            index,
            name: name.into(),
            total,
            free,
        };
        let two_gpus = MachineMemory {
            ram_total: 64 << 30,
            ram_available: 60 << 30,
            gpus: vec![
                gpu(0, "GPU zero", 70 << 30, 80 << 30),
                gpu(1, "GPU one", 300 << 20, 1 << 30),
            ],
            gpu_backend: Some("cuda".into()),
        };
        let on = |device: Option<&str>, machine: &MachineMemory| {
            let settings = FitSettings {
                device: device.map(|d| d.parse().expect("a device")),
                ..FitSettings::default()
            };
            fit_report(&spec, settings, machine)
        };
        let first = on(None, &two_gpus);
        assert_eq!(first.compared_with, "GPU zero");
        assert_eq!(first.full.verdict, Verdict::Fits);
        let judged = |r: &FitReport| (r.compared_with.clone(), r.available, r.full.estimate.total);
        assert_eq!(judged(&on(Some("auto"), &two_gpus)), judged(&first));
        assert_eq!(judged(&on(Some("cuda"), &two_gpus)), judged(&first));

        let second = on(Some("cuda:1"), &two_gpus);
        assert_eq!(
            (second.compared_with.as_str(), second.available),
            ("GPU one", 300 << 20)
        );
        assert_eq!(second.full.verdict, Verdict::DoesNotFit);
        assert!(second.host.is_some() && second.full.speed.is_none());

        let cpu = on(Some("cpu"), &two_gpus);
        assert_eq!(
            (cpu.compared_with.as_str(), cpu.available),
            ("RAM", 60 << 30)
        );
        assert!(cpu.host.is_none() && cpu.full.speed.is_some());
        assert!(!cpu.full.estimate.settings.gpu);
        assert!(
            cpu.full.estimate.activations < first.full.estimate.activations,
            "the CPU's own graph keeps less than candle's autograd graph"
        );

        let absent = on(Some("cuda:5"), &two_gpus);
        assert_eq!(
            absent.compared_with,
            "cuda:5: not on this machine (it has cuda:0, cuda:1)"
        );
        for line in [&absent.full, &absent.frozen_embeddings, &absent.lora] {
            assert_eq!(line.verdict, Verdict::DoesNotFit);
        }
        let cpu_build = on(Some("cuda:0"), &machine(16 << 30));
        assert_eq!(
            cpu_build.compared_with,
            "cuda:0: this build of Hone has no CUDA support"
        );
        assert_eq!(cpu_build.full.verdict, Verdict::DoesNotFit);

        // An Apple GPU shares the RAM and runs the autograd graph: no CPU speed estimate;
        // `auto` takes it too. A build without Metal cannot.
        let apple = MachineMemory {
            gpu_backend: Some("metal".into()),
            ..machine(16 << 30)
        };
        assert_eq!(
            on(Some("metal"), &machine(16 << 30)).compared_with,
            "metal:0: this build of Hone has no Metal support"
        );
        assert_eq!(
            judged(&on(Some("auto"), &apple)),
            judged(&on(Some("metal"), &apple))
        );
        let metal = on(Some("metal"), &apple);
        assert_eq!(metal.compared_with, "RAM");
        assert!(metal.full.speed.is_none());
        assert_eq!(
            metal.full.estimate.settings.autograd,
            Some(hone_engine::precision::Precision::Fp32)
        );
    }

    #[test]
    fn against_a_gpu_the_ram_counts_too() {
        use crate::machine::GpuMemory;
        let config = json!({"model_type": "bert", "vocab_size": 30522, "hidden_size": 384,
            "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
            "max_position_embeddings": 512, "type_vocab_size": 2});
        let spec = ModelSpec::from_json(config, Path::new("config.json")).unwrap();
        let gpu = |ram: u64| MachineMemory {
            ram_total: ram,
            ram_available: ram,
            gpus: vec![GpuMemory {
                index: 0,
                name: "NVIDIA H200".into(),
                total: 140 << 30,
                free: 139 << 30,
            }],
            gpu_backend: Some("cuda".into()),
        };
        let roomy = fit_report(&spec, FitSettings::default(), &gpu(64 << 30));
        assert_eq!(roomy.compared_with, "NVIDIA H200");
        assert_eq!(roomy.full.verdict, Verdict::Fits);
        let host = roomy.host.expect("the RAM is judged too");
        assert_eq!(host.verdict, Verdict::Fits);
        let e = &roomy.full.estimate;
        assert!(
            host.needed >= 2 * e.weights + e.optimizer,
            "checkpoints copy to the host"
        );
        assert!(
            host.needed < e.total + e.weights,
            "activations stay on the GPU"
        );
        assert!(roomy.full.speed.is_none());
        // A huge GPU does not help when the weights cannot even be read into RAM.
        let starved = fit_report(&spec, FitSettings::default(), &gpu(32 << 20));
        assert_eq!(starved.host.expect("judged").verdict, Verdict::DoesNotFit);
        assert_eq!(starved.full.verdict, Verdict::DoesNotFit);
        assert_eq!(Verdict::Fits.worse(Verdict::Tight), Verdict::Tight);
        assert!(
            fit_report(&spec, FitSettings::default(), &machine(16 << 30))
                .host
                .is_none()
        );
        // On the GPU the autograd graph's activations count, bf16's about as many as fp32's
        // (half-width products, and the weights' bf16 copies); the RAM's judgement ignores
        // the precision. On a CPU machine fp16 (and bf16 without AVX512-BF16) runs the
        // autograd graph too: more activations than the CPU's f32 graph, the CPU's runtime;
        // bf16 with AVX512-BF16 runs the CPU graph itself.
        let bf16 = FitSettings {
            autograd: Some(hone_engine::precision::Precision::Bf16),
            ..FitSettings::default()
        };
        let on_gpu = fit_report(&spec, bf16, &gpu(64 << 30));
        let ratio = on_gpu.full.estimate.activations as f64 / e.activations as f64;
        assert!(
            (0.85..1.15).contains(&ratio),
            "bf16 / fp32 activations: {ratio:.2}"
        );
        assert_eq!(on_gpu.host.expect("judged").needed, host.needed);
        let cpu_plain = fit_report(&spec, FitSettings::default(), &machine(16 << 30));
        let on_cpu_graph = fit_report(&spec, bf16, &machine(16 << 30));
        assert_eq!(
            on_cpu_graph.full.estimate.activations == cpu_plain.full.estimate.activations,
            hone_engine::precision::Precision::Bf16.runs_on_cpu_graph()
        );
        // There the frozen weights' bf16 packings count, four bytes a frozen parameter.
        if hone_engine::precision::Precision::Bf16.runs_on_cpu_graph() {
            let lora = FitSettings {
                lora_rank: Some(8),
                ..bf16
            };
            let packed = fit_report(&spec, lora, &machine(16 << 30)).lora.estimate;
            let plain = estimate(
                &spec,
                FitSettings {
                    lora_rank: Some(8),
                    ..FitSettings::default()
                },
            );
            assert!(packed.settings.bf16_products, "{:?}", packed.settings);
            let frozen = packed.parameters - packed.trainable_parameters;
            assert_eq!(packed.weights, plain.weights + 4 * frozen);
        }
        let fp16 = FitSettings {
            autograd: Some(hone_engine::precision::Precision::Fp16),
            ..FitSettings::default()
        };
        let cpu_fp16 = fit_report(&spec, fp16, &machine(16 << 30));
        assert!(cpu_fp16.full.estimate.activations > cpu_plain.full.estimate.activations);
        // The CPU's runtime (its per-token buffers are in the autograd terms' fit).
        assert!(cpu_fp16.full.estimate.runtime <= cpu_plain.full.estimate.runtime);
        assert!(cpu_fp16.full.estimate.runtime < on_gpu.full.estimate.runtime);
        let speed = |r: &FitReport| {
            r.full
                .speed
                .as_ref()
                .map(|s| s.samples_per_second)
                .expect("a CPU machine gets a speed estimate")
        };
        assert!(
            speed(&cpu_fp16) < speed(&cpu_plain),
            "mixed precision is slower on the CPU"
        );
        let cpu_fp32 = FitSettings {
            autograd: Some(hone_engine::precision::Precision::Fp32),
            ..FitSettings::default()
        };
        assert_eq!(
            fit_report(&spec, cpu_fp32, &machine(16 << 30))
                .full
                .estimate,
            cpu_plain.full.estimate,
            "fp32 on the CPU is the CPU's own graph"
        );
    }

    #[test]
    fn unsupported_architectures_and_missing_files_say_why() {
        let gpt2 = json!({"model_type": "gpt2", "n_layer": 12});
        let check = check_model(
            Some(&gpt2),
            &names(&["config.json", "model.safetensors", "tokenizer.json"]),
            FitSettings::default(),
            &machine(16 << 30),
        );
        assert!(!check.trainable);
        assert!(check.problems[0].contains("gpt2"), "{:?}", check.problems);
        let onnx_only = check_model(
            Some(&json!({"model_type": "bert"})),
            &names(&["config.json", "onnx/model.onnx"]),
            FitSettings::default(),
            &machine(16 << 30),
        );
        assert!(!onnx_only.trainable);
        let text = onnx_only.problems.join("; ");
        assert!(
            text.contains("no weights") && text.contains("tokenizer"),
            "{text}"
        );
        let roberta = json!({"model_type": "roberta", "vocab_size": 50265, "hidden_size": 64,
            "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 128,
            "max_position_embeddings": 514});
        let wordpiece_only = check_model(
            Some(&roberta),
            &names(&["config.json", "model.safetensors", "vocab.txt"]),
            FitSettings::default(),
            &machine(16 << 30),
        );
        assert_eq!(
            wordpiece_only.problems,
            ["no tokenizer.json (RoBERTa models need it to tokenize)"]
        );
        let none = check_model(None, &[], FitSettings::default(), &machine(1 << 30));
        assert!(none.problems[0].contains("config.json"));
    }

    #[test]
    fn the_hub_downloads_every_tokenizer_file_of_every_family() {
        for name in hone_engine::models::all_tokenizer_files() {
            assert!(
                hone_hub::download::TOKENIZER_FILES.contains(&name),
                "the Hub client would not download {name}"
            );
        }
    }

    #[test]
    fn search_hits_name_the_family_from_the_model_type_tag() {
        let summary = |tags: &[&str]| ModelSummary {
            id: "org/m".into(),
            task: None,
            library: None,
            downloads: 0,
            likes: 0,
            last_modified: None,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            gated: false,
            private: false,
        };
        let hits = search_hits(vec![
            summary(&["transformers", "safetensors", "xlm-roberta", "fill-mask"]),
            summary(&["sentence-transformers", "bert"]),
            summary(&["transformers", "gpt2", "text-generation"]),
            summary(&[]),
        ]);
        let families: Vec<_> = hits.iter().map(|h| h.family.as_deref()).collect();
        assert_eq!(families, [Some("RoBERTa"), Some("BERT"), None, None]);
        let json = serde_json::to_value(&hits[1]).unwrap();
        assert_eq!(
            json["id"], "org/m",
            "the summary's fields stay at the top level"
        );
        assert_eq!(json["family"], "BERT");
    }
}
