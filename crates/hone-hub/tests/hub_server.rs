//! The Hub client against a real HTTP server on 127.0.0.1 that answers like the Hub
//! (`hone-hub-testserver`): search paging, info, gated and missing repositories, retries,
//! interrupted and resumed downloads, verification, hostile names, offline use.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hone_hub::{DownloadEvent, DownloadOptions, HubClient, HubConfig, HubError, SearchQuery, Sort};
use hone_hub_testserver::{Repo, TestHub, TOKEN};

fn tiny_bert() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-bert")
}

/// Random-looking bytes, the same for the same seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The tiny BERT with a card and files a fine-tune does not need.
fn model_repo(id: &str) -> Repo {
    Repo::from_dir(id, &tiny_bert())
        .unwrap()
        .file(
            "README.md",
            b"---\nlicense: apache-2.0\n---\n# Tiny BERT\nA test model.\n".to_vec(),
        )
        .file("onnx/model.onnx", vec![1; 1000])
        .file("tf_model.h5", vec![2; 1000])
        .file(".gitattributes", b"*.safetensors filter=lfs\n".to_vec())
        .task("text-classification")
}

fn client(hub: &TestHub, cache: &Path) -> HubClient {
    client_with(&hub.url(), cache, None)
}

fn client_with(endpoint: &str, cache: &Path, token: Option<&str>) -> HubClient {
    HubClient::new(HubConfig {
        endpoint: endpoint.to_string(),
        cache_dir: cache.to_path_buf(),
        token: token.map(str::to_string),
        offline: false,
        max_attempts: 4,
        backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        stall_timeout: Duration::from_secs(10),
    })
}

fn download(c: &HubClient, repo: &str) -> Result<hone_hub::Downloaded, HubError> {
    c.download(
        repo,
        &DownloadOptions::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
}

/// Every file under `dir`, relative, sorted (links not followed).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if meta.is_dir() {
                walk(&p, base, out);
            }
        }
    }
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

#[test]
fn search_pages_through_link_headers_with_filters_and_sort() {
    let repos: Vec<Repo> = (0..5)
        .map(|i| {
            Repo::new(&format!("org/bert-{i}"))
                .task(if i == 4 {
                    "fill-mask"
                } else {
                    "text-classification"
                })
                .stats(
                    100 * i,
                    10 - i,
                    &format!("2026-0{}-01T00:00:00.000Z", i + 1),
                )
        })
        .chain([Repo::new("org/hidden-bert").private()])
        .collect();
    let hub = TestHub::start(repos).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let query = SearchQuery {
        text: "bert".into(),
        limit: 2,
        ..Default::default()
    };
    let mut page = c.search(&query).unwrap();
    let mut ids: Vec<String> = page.models.iter().map(|m| m.id.clone()).collect();
    let mut pages = 1;
    while let Some(next) = page.next.clone() {
        page = c.search_page(&next).unwrap();
        ids.extend(page.models.iter().map(|m| m.id.clone()));
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(
        ids,
        [
            "org/bert-4",
            "org/bert-3",
            "org/bert-2",
            "org/bert-1",
            "org/bert-0"
        ]
    );

    let tasks = c
        .search(&SearchQuery {
            text: "bert".into(),
            task: Some("text-classification".into()),
            sort: Sort::Likes,
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let ids: Vec<&str> = tasks.models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(
        ids,
        ["org/bert-0", "org/bert-1", "org/bert-2", "org/bert-3"]
    );
    let first = &tasks.models[0];
    assert_eq!(first.task.as_deref(), Some("text-classification"));
    assert_eq!(
        (first.likes, first.downloads, first.gated, first.private),
        (10, 0, false, false)
    );
    assert!(first.tags.iter().any(|t| t == "license:apache-2.0"));

    let recent = c
        .search(&SearchQuery {
            text: "bert".into(),
            sort: Sort::Updated,
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recent.models[0].id, "org/bert-4");
    assert!(recent.models[0]
        .last_modified
        .as_deref()
        .unwrap()
        .starts_with("2026-05"));
}

#[test]
fn info_has_files_config_license_parameters_and_card() {
    let hub = TestHub::start(vec![model_repo("org/tiny")]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let info = client(&hub, cache.path())
        .model_info("org/tiny", None)
        .unwrap();
    assert_eq!(info.license.as_deref(), Some("apache-2.0"));
    let weights = info.file("model.safetensors").unwrap();
    assert_eq!(
        weights.size,
        Some(
            std::fs::metadata(tiny_bert().join("model.safetensors"))
                .unwrap()
                .len()
        )
    );
    assert_eq!(weights.sha256.as_ref().map(String::len), Some(64));
    let summary = info.config_summary.as_ref().unwrap();
    assert_eq!(summary.model_type.as_deref(), Some("bert"));
    assert!(summary.num_layers.is_some() && summary.hidden_size.is_some());
    assert!(info.parameters.unwrap() > 10_000);
    assert!(info.card.as_deref().unwrap().contains("Tiny BERT"));
    // Nothing was written to the cache by looking.
    assert!(tree(cache.path()).is_empty());
}

#[test]
fn missing_private_and_gated_repositories_say_what_to_do() {
    let hub = TestHub::start(vec![
        model_repo("org/gated").gated(),
        model_repo("org/private").private(),
    ])
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let anonymous = client(&hub, cache.path());
    let err = download(&anonymous, "org/nope").unwrap_err();
    assert!(matches!(err, HubError::NotFound { .. }), "{err}");
    let err = anonymous.model_info("org/private", None).unwrap_err();
    assert!(matches!(err, HubError::NotFound { .. }), "{err}");

    let err = download(&anonymous, "org/gated").unwrap_err();
    assert!(matches!(err, HubError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("HF_TOKEN"), "{err}");
    let wrong = client_with(&hub.url(), cache.path(), Some("hf_wrong"));
    let err = download(&wrong, "org/gated").unwrap_err();
    assert!(err.to_string().contains("no access"), "{err}");
    assert!(hub.hits().iter().any(|h| h.status == 403));

    // LFS content lives on another host, as on the real Hub.
    let cdn = TestHub::start(vec![model_repo("org/gated")]).unwrap();
    hub.faults().cdn_prefix = Some(format!("{}/cdn/", cdn.url()));
    let member = client_with(&hub.url(), cache.path(), Some(TOKEN));
    let got = download(&member, "org/gated").unwrap();
    assert!(got.snapshot.join("model.safetensors").is_file());
    assert!(member.model_info("org/private", None).is_ok());
    // The token went to the Hub's own URLs, never to the storage LFS files redirect to.
    let cdn_hits = cdn.hits();
    assert!(
        !cdn_hits.is_empty() && cdn_hits.iter().all(|h| !h.authorized),
        "{cdn_hits:?}"
    );
    assert!(hub
        .hits()
        .iter()
        .any(|h| h.path.contains("/resolve/") && h.authorized));
}

#[test]
fn busy_and_failing_servers_are_retried_with_backoff() {
    let hub = TestHub::start(vec![model_repo("org/tiny")]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    hub.faults()
        .statuses
        .extend([(429, Some(0)), (500, None), (503, None)]);
    let got = download(&c, "org/tiny").unwrap();
    assert!(got.snapshot.join("config.json").is_file());
    let statuses: Vec<u16> = hub.hits().iter().take(4).map(|h| h.status).collect();
    assert_eq!(statuses, [429, 500, 503, 200]);

    hub.faults().statuses.extend([(503, None); 4]);
    let err = c.model_listing("org/tiny", None).unwrap_err();
    assert!(
        matches!(
            err,
            HubError::TooManyRetries {
                status: 503,
                attempts: 4
            }
        ),
        "{err}"
    );
}

#[test]
fn download_fills_the_standard_cache_layout_with_only_what_training_needs() {
    let hub = TestHub::start(vec![model_repo("org/tiny")]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let mut events = Vec::new();
    let got = c
        .download(
            "org/tiny",
            &DownloadOptions::default(),
            &AtomicBool::new(false),
            &mut |e| events.push(e.clone()),
        )
        .unwrap();
    let repo_dir = cache.path().join("models--org--tiny");
    assert_eq!(got.snapshot, repo_dir.join("snapshots").join(&got.commit));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        got.commit
    );
    let mut files = got.files.clone();
    files.sort();
    assert_eq!(
        files,
        [
            "README.md",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    for name in &files {
        let pointer = got.snapshot.join(name);
        let link = std::fs::read_link(&pointer).unwrap();
        assert!(link.starts_with("../../blobs"), "{}", link.display());
        let original = std::fs::read(tiny_bert().join(name)).unwrap_or_default();
        if name != "README.md" {
            assert_eq!(std::fs::read(&pointer).unwrap(), original, "{name}");
        }
    }
    // Blob names are the ETags: SHA-256 for LFS files, git SHA-1 for small ones.
    let blobs: Vec<String> = tree(&repo_dir.join("blobs"))
        .into_iter()
        .filter(|b| !b.ends_with(".lock"))
        .collect();
    assert_eq!(blobs.len(), 5);
    assert!(blobs.iter().any(|b| b.len() == 64) && blobs.iter().any(|b| b.len() == 40));
    // The hf-hub crate reads it back, as the Python client does.
    let reader = hf_hub::Cache::new(cache.path().to_path_buf()).model("org/tiny".into());
    assert!(reader.get("model.safetensors").is_some());

    let total = match &events[0] {
        DownloadEvent::Planned {
            total_bytes,
            done_bytes,
            ..
        } => {
            assert_eq!(*done_bytes, 0);
            *total_bytes
        }
        e => panic!("first event {e:?}"),
    };
    let last_progress = events
        .iter()
        .rev()
        .filter_map(|e| match e {
            DownloadEvent::Progress {
                done_bytes,
                total_bytes,
                ..
            } => Some((*done_bytes, *total_bytes)),
            _ => None,
        })
        .next()
        .unwrap();
    assert_eq!(last_progress, (total, total));
    assert_eq!(got.fetched_bytes, total);

    // A second download fetches nothing.
    hub.clear_hits();
    let again = download(&c, "org/tiny").unwrap();
    assert_eq!(again.fetched_bytes, 0);
    assert!(hub
        .hits()
        .iter()
        .all(|h| h.method == "HEAD" || h.path.starts_with("/api/")));
}

#[test]
fn python_reads_the_cache_we_write() {
    let Ok(python) = std::env::var("HONE_REFERENCE_PYTHON") else {
        eprintln!("HONE_REFERENCE_PYTHON is not set: skipping the huggingface_hub cross-check");
        return;
    };
    let hub = TestHub::start(vec![model_repo("org/tiny")]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let got = download(&client(&hub, cache.path()), "org/tiny").unwrap();
    let script = "import sys\nfrom huggingface_hub import try_to_load_from_cache, scan_cache_dir\n\
        p = try_to_load_from_cache('org/tiny', 'model.safetensors', cache_dir=sys.argv[1])\n\
        info = scan_cache_dir(sys.argv[1])\n\
        print(p); print(sorted(r.repo_id for r in info.repos)); print(len(info.warnings))";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(cache.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        PathBuf::from(lines[0]),
        got.snapshot.join("model.safetensors")
    );
    assert_eq!(lines[1], "['org/tiny']");
    assert_eq!(lines[2], "0");
}

/// A repository with one large LFS file to interrupt.
fn big_repo(len: usize) -> (Repo, Vec<u8>) {
    let weights = noise(len, 7);
    let repo = Repo::from_dir("org/big", &tiny_bert())
        .unwrap()
        .file("pytorch_model.bin", weights.clone());
    let mut repo = repo;
    repo.files.retain(|f| f.name != "model.safetensors");
    (repo, weights)
}

#[test]
fn a_stalled_transfer_is_dropped_after_the_stall_timeout_and_resumed() {
    let (repo, weights) = big_repo(1 << 20);
    let hub = TestHub::start(vec![repo]).unwrap();
    hub.seed(7);
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let c = HubClient::new(HubConfig {
        stall_timeout: Duration::from_millis(300),
        ..c.config().clone()
    });
    // The server goes silent for a minute twice; without a stall timeout the download would
    // wait it out (or forever, on a real network).
    hub.faults().stalls = 2;
    hub.faults().stall_for = Duration::from_secs(60);
    hub.faults().cut_file = Some("pytorch_model.bin".into());
    let mut messages = Vec::new();
    let started = std::time::Instant::now();
    let got = c
        .download(
            "org/big",
            &DownloadOptions::default(),
            &AtomicBool::new(false),
            &mut |e| {
                if let DownloadEvent::Retrying { message, .. } = e {
                    messages.push(message.clone());
                }
            },
        )
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the stalls were waited out: {:?}",
        started.elapsed()
    );
    assert_eq!(hub.faults().stalls, 0, "both stalls were served");
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .all(|m| m == "nothing arrived for 0.3 s (HF_HUB_DOWNLOAD_TIMEOUT)"),
        "{messages:?}"
    );
    assert_eq!(
        std::fs::read(got.snapshot.join("pytorch_model.bin")).unwrap(),
        weights
    );
    let resumed: Vec<_> = hub
        .hits()
        .into_iter()
        .filter(|h| h.method == "GET" && h.range_start.is_some_and(|s| s > 0))
        .collect();
    assert!(!resumed.is_empty(), "the download resumed with Range");
}

#[test]
fn twenty_dropped_connections_end_in_a_byte_identical_file() {
    let (repo, weights) = big_repo(3 << 20);
    let hub = TestHub::start(vec![repo]).unwrap();
    hub.seed(42);
    let cache = tempfile::tempdir().unwrap();
    let mut c = client(&hub, cache.path());
    c = HubClient::new(HubConfig {
        max_attempts: 30,
        ..c.config().clone()
    });
    hub.faults().cuts = 20;
    hub.faults().cut_file = Some("pytorch_model.bin".into());
    let mut retries = 0;
    let got = c
        .download(
            "org/big",
            &DownloadOptions::default(),
            &AtomicBool::new(false),
            &mut |e| {
                if matches!(e, DownloadEvent::Retrying { .. }) {
                    retries += 1;
                }
            },
        )
        .unwrap();
    assert_eq!(hub.faults().cuts, 0, "every cut was used");
    assert!(retries >= 15, "{retries} retries");
    assert_eq!(
        std::fs::read(got.snapshot.join("pytorch_model.bin")).unwrap(),
        weights
    );
    // Resumed with Range requests from where each cut left the file.
    let ranged = hub
        .hits()
        .iter()
        .filter(|h| h.path.starts_with("/cdn/") && h.range_start.is_some_and(|s| s > 0))
        .count();
    assert!(ranged >= 15, "{ranged} ranged requests: {:?}", hub.hits());
}

#[test]
fn twenty_cancellations_at_random_points_then_resume_give_a_byte_identical_file() {
    let (repo, weights) = big_repo(4 << 20);
    let hub = TestHub::start(vec![repo]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let points = noise(20, 99);
    let mut resumed = Vec::new();
    for (round, point) in points.iter().enumerate() {
        let cancel = AtomicBool::new(false);
        // Stop somewhere in the next slice of the file.
        let stop_at = (round as u64 * weights.len() as u64 / 24) + (*point as u64 * 200);
        let result = c.download(
            "org/big",
            &DownloadOptions::default(),
            &cancel,
            &mut |e| match e {
                DownloadEvent::FileStarted {
                    name, resumed_from, ..
                } if name == "pytorch_model.bin" => resumed.push(*resumed_from),
                DownloadEvent::Progress {
                    name, file_bytes, ..
                } if name == "pytorch_model.bin" && *file_bytes >= stop_at => {
                    cancel.store(true, Ordering::Relaxed)
                }
                _ => {}
            },
        );
        assert!(
            matches!(result, Err(HubError::Cancelled)),
            "round {round}: {result:?}"
        );
        // A cancelled download never looks complete.
        let snapshot = cache.path().join("models--org--big/snapshots");
        assert!(!tree(&snapshot)
            .iter()
            .any(|f| f.ends_with("pytorch_model.bin")));
    }
    let got = download(&c, "org/big").unwrap();
    assert_eq!(
        std::fs::read(got.snapshot.join("pytorch_model.bin")).unwrap(),
        weights
    );
    assert!(resumed.windows(2).all(|w| w[1] >= w[0]), "{resumed:?}");
    assert!(resumed.iter().filter(|r| **r > 0).count() >= 19);
    assert!(!tree(&cache.path().join("models--org--big/blobs"))
        .iter()
        .any(|f| f.ends_with(".incomplete")));
}

#[test]
fn a_server_that_ignores_ranges_still_gives_the_right_file() {
    let (repo, weights) = big_repo(1 << 20);
    let hub = TestHub::start(vec![repo]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    {
        let mut f = hub.faults();
        f.cuts = 3;
        f.cut_file = Some("pytorch_model.bin".into());
        f.ignore_range = true;
    }
    let got = download(&client(&hub, cache.path()), "org/big").unwrap();
    assert_eq!(
        std::fs::read(got.snapshot.join("pytorch_model.bin")).unwrap(),
        weights
    );
}

#[test]
fn wrong_content_or_size_is_discarded_and_nothing_looks_complete() {
    let hub = TestHub::start(vec![model_repo("org/tiny")]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let c = client(&hub, cache.path());
    let blobs_of = |cache: &Path| {
        tree(&cache.join("models--org--tiny/blobs"))
            .into_iter()
            .filter(|b| !b.ends_with(".lock"))
            .collect::<Vec<_>>()
    };

    hub.faults().corrupt.insert("model.safetensors".into());
    let err = download(&c, "org/tiny").unwrap_err();
    assert!(matches!(err, HubError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"));
    assert!(!blobs_of(cache.path())
        .iter()
        .any(|b| b.len() == 64 || b.ends_with(".incomplete")));
    assert!(!tree(cache.path())
        .iter()
        .any(|f| f.ends_with("model.safetensors")));

    hub.faults().corrupt.clear();
    hub.faults()
        .claimed_size
        .insert("model.safetensors".into(), 100);
    let err = download(&c, "org/tiny").unwrap_err();
    assert!(
        matches!(err, HubError::SizeMismatch { expected: 100, .. }),
        "{err}"
    );
    let real = std::fs::metadata(tiny_bert().join("model.safetensors"))
        .unwrap()
        .len();
    hub.faults()
        .claimed_size
        .insert("model.safetensors".into(), real + 10);
    let err = download(&c, "org/tiny").unwrap_err();
    assert!(matches!(err, HubError::SizeMismatch { .. }), "{err}");
    assert!(!blobs_of(cache.path())
        .iter()
        .any(|b| b.ends_with(".incomplete")));

    hub.faults().claimed_size.clear();
    assert!(download(&c, "org/tiny").is_ok());
}

#[test]
fn hostile_names_are_refused_and_nothing_is_written_outside_the_cache() {
    let outside = tempfile::tempdir().unwrap();
    let cache = outside.path().join("cache");
    type Setup = Box<dyn Fn(&TestHub)>;
    let cases: Vec<(&str, Setup)> = vec![
        (
            "dotdot",
            Box::new(|hub: &TestHub| {
                let mut r = model_repo("org/evil");
                r.extra_listing.push("../../../escaped.txt".into());
                hub.put(r);
            }),
        ),
        (
            "absolute",
            Box::new(|hub: &TestHub| {
                let mut r = model_repo("org/evil");
                r.extra_listing.push("/tmp/escaped.txt".into());
                hub.put(r);
            }),
        ),
        (
            "backslash",
            Box::new(|hub: &TestHub| {
                let mut r = model_repo("org/evil");
                r.extra_listing.push("..\\escaped.txt".into());
                hub.put(r);
            }),
        ),
        (
            "etag",
            Box::new(|hub: &TestHub| {
                hub.put(model_repo("org/evil"));
                hub.faults()
                    .etag
                    .insert("config.json".into(), "\"../../../escaped\"".into());
            }),
        ),
        (
            "file-then-folder",
            Box::new(|hub: &TestHub| {
                // `vocab.txt` as a file and as a folder: the second would go through the first's link.
                hub.put(
                    model_repo("org/evil")
                        .file("vocab.txt", b"[PAD]\n".to_vec())
                        .file("vocab.txt/x.json", b"{}".to_vec()),
                );
            }),
        ),
    ];
    for (name, setup) in cases {
        let hub = TestHub::start(vec![]).unwrap();
        setup(&hub);
        let c = client(&hub, &cache);
        let options = DownloadOptions {
            include: vec!["**/*".into()],
            ..Default::default()
        };
        let err = c
            .download("org/evil", &options, &AtomicBool::new(false), &mut |_| {})
            .unwrap_err();
        assert!(
            matches!(err, HubError::UnsafeFileName { .. }),
            "{name}: {err}"
        );
        let outside_files: Vec<String> = tree(outside.path())
            .into_iter()
            .filter(|p| !p.starts_with("cache"))
            .collect();
        assert!(outside_files.is_empty(), "{name}: {outside_files:?}");
        assert!(!Path::new("/tmp/escaped.txt").exists());
    }
    assert!(hone_hub::HubClient::new(HubConfig::from_env())
        .model_listing("../x", None)
        .is_err());
}

#[test]
fn offline_and_unreachable_hubs_fall_back_to_the_cache() {
    let hub = TestHub::start(vec![model_repo("org/tiny")]).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let first = download(&client(&hub, cache.path()), "org/tiny").unwrap();
    let url = hub.url();
    drop(hub);

    // The server is gone: the cached copy is used, with a notice.
    let down = client_with(&url, cache.path(), None);
    let got = download(&down, "org/tiny").unwrap();
    assert_eq!(got.snapshot, first.snapshot);
    assert!(
        got.notice
            .as_deref()
            .unwrap()
            .contains("cannot reach the Hub"),
        "{:?}",
        got.notice
    );
    let err = download(&down, "org/other").unwrap_err();
    assert!(matches!(err, HubError::Network { .. }), "{err}");

    let offline = HubClient::new(HubConfig {
        offline: true,
        ..down.config().clone()
    });
    assert!(matches!(
        offline.search(&SearchQuery::default()),
        Err(HubError::Offline { .. })
    ));
    assert!(download(&offline, "org/tiny").unwrap().notice.is_some());
    let models = offline.cached_models();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].repo, "org/tiny");
    assert_eq!(models[0].model_type.as_deref(), Some("bert"));
    assert!(models[0].default_snapshot().unwrap().complete);
    assert_eq!(offline.resolve_cached("org/tiny").unwrap(), first.snapshot);
    assert!(matches!(
        offline.resolve_cached("org/other"),
        Err(HubError::NotCached { .. })
    ));
    assert!(offline.remove_cached("org/tiny").unwrap() > 100_000);
    assert!(offline.cached_models().is_empty());
}
