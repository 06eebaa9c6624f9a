//! The real app end to end: `tauri-driver` + WebKitWebDriver drive the `hone-desktop` window
//! (under `xvfb-run` in CI) through what a user does — find and download a model from a local
//! Hub server, import a dataset with unlabeled rows, label them with the keyboard, train two
//! runs watching the live chart, compare them, predict in the playground, export — and the
//! exported folder then works in `hone predict`. Screenshots of every page go to
//! `target/e2e-screenshots/`.
//!
//! Needs `tauri-driver` on PATH, a display, and the UI built (`npm --prefix ui run build`, which
//! the binary embeds); `scripts/test-all` does all of that. By hand:
//! `xvfb-run -a cargo test --workspace --test e2e -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hone_hub_testserver::{Repo, TestHub};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A copy of the fixture folder `name` inside `dir` (a model the app imports as a folder),
/// as an absolute path.
fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let copy = dir.join(name);
    std::fs::create_dir(&copy).expect("folder");
    for file in std::fs::read_dir(root().join("tests/fixtures").join(name)).expect("fixture") {
        let file = file.expect("entry").path();
        std::fs::copy(&file, copy.join(file.file_name().expect("name"))).expect("copy");
    }
    copy.canonicalize().expect("path")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Stops tauri-driver with SIGTERM (a hard kill leaves WebKitWebDriver running).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
    }
}

struct Ui {
    client: Client,
    shots: PathBuf,
}

impl Ui {
    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.wait_for(selector, SHORT).await
    }

    async fn wait_for(&self, selector: &str, timeout: Duration) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(selector))
            .await
        {
            Ok(el) => el,
            Err(e) => {
                self.shot("failure").await;
                let source = self.client.source().await.unwrap_or_default();
                let probe = self
                    .client
                    .execute_async(
                        "const done = arguments[0]; const s = document.querySelector('script[type=module]'); \
                         window.onerror = (m) => done('onerror: ' + m); \
                         import(s.src + '?again').then(() => setTimeout(() => done('again: ' + document.getElementById('app').innerHTML.slice(0, 200)), 500), (e) => done('module error: ' + e + ' ' + e.stack));",
                        vec![],
                    )
                    .await;
                eprintln!("probe: {probe:?}");
                std::fs::write(self.shots.join("failure.html"), &source).ok();
                panic!(
                    "no {selector}: {e}\npage: {}",
                    &source[..source.len().min(3000)]
                );
            }
        }
    }

    async fn click(&self, selector: &str) {
        // Re-find and retry: a re-render can replace the element between finding and clicking.
        // Centred first: an element under the sticky Start bar or the status bar is not
        // clickable, and WebKitWebDriver does not scroll a partly visible one.
        let mut last = None;
        for _ in 0..10 {
            let el = self.css(selector).await;
            if let Ok(arg) = serde_json::to_value(&el) {
                let _ = self
                    .client
                    .execute("arguments[0].scrollIntoView({block: 'center'})", vec![arg])
                    .await;
            }
            match el.click().await {
                Ok(_) => return,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.shot("failure").await;
        panic!("click {selector}: {last:?}");
    }

    async fn button(&self, text: &str) {
        let xpath = format!("//button[normalize-space(.)='{text}']");
        // Re-find and retry, as `click`: a re-render can replace the button meanwhile.
        let mut last = None;
        for _ in 0..10 {
            let el = self
                .client
                .wait()
                .at_most(SHORT)
                .for_element(Locator::XPath(&xpath))
                .await
                .unwrap_or_else(|e| panic!("no button {text}: {e}"));
            match el.click().await {
                Ok(_) => return,
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.shot("failure").await;
        panic!("click {text}: {last:?}");
    }

    async fn page(&self, name: &str) {
        self.click(&format!("button.nav[data-page='{name}']")).await;
        self.css(&format!("main[data-current='{name}']")).await;
    }

    async fn text_of(&self, selector: &str) -> String {
        self.css(selector).await.text().await.unwrap_or_default()
    }

    /// Waits until nothing matches `selector`.
    /// Clicks `selector` until one of `started` shows (the action began): a click a busy
    /// window did not take is given again, an action under way is not (its button is
    /// disabled while it runs, and `started` shows).
    async fn click_until_started(&self, selector: &str, started: &[&str]) {
        for _ in 0..4 {
            self.click(selector).await;
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                for s in started {
                    if self.client.find(Locator::Css(s)).await.is_ok() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.shot("failure").await;
        panic!("clicking {selector} started nothing ({started:?} never showed)");
    }

    async fn gone(&self, selector: &str) {
        let deadline = Instant::now() + SHORT;
        while self.client.find(Locator::Css(selector)).await.is_ok() {
            assert!(Instant::now() < deadline, "{selector} is still shown");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `check` holds for the text of `selector`.
    async fn until_text(
        &self,
        selector: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        self.poll(selector, None, timeout, check).await
    }

    /// Waits until `check` holds for attribute `attr` of `selector`.
    async fn attr_until(
        &self,
        selector: &str,
        attr: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        self.poll(selector, Some(attr), timeout, check).await
    }

    /// Waits until `check` holds for what the form field `selector` holds now.
    async fn value_until(
        &self,
        selector: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        self.poll(selector, Some("value"), timeout, check).await
    }

    /// Polls the text (or an attribute; `value` is a form field's live value, its property)
    /// of `selector` until `check` holds; on timeout, a screenshot and what the page says.
    async fn poll(
        &self,
        selector: &str,
        attr: Option<&str>,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(selector)).await {
                let value = match attr {
                    Some("value") => el.prop("value").await.ok().flatten(),
                    Some(attr) => el.attr(attr).await.ok().flatten(),
                    None => el.text().await.ok(),
                };
                if let Some(value) = value.filter(|v| check(v)) {
                    return value;
                }
            }
            if Instant::now() >= deadline {
                self.shot("failure").await;
                let text = match self.client.find(Locator::Css("main")).await {
                    Ok(el) => el.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                panic!("{selector} {attr:?} never matched; the page says: {text}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn type_into(&self, selector: &str, text: &str) {
        // Select what is there and type over it, until the field shows `text`: under load a
        // re-render can put the old value back between clearing and typing (a search for
        // "tiny" then "llama" became "tinyllama"). Text with a key in it (Enter: U+E007)
        // acts, so it is typed once.
        let acts = text.chars().any(|c| ('\u{E000}'..='\u{F8FF}').contains(&c));
        for _ in 0..5 {
            let el = self.css(selector).await;
            el.clear().await.ok();
            if let Ok(arg) = serde_json::to_value(&el) {
                let _ = self
                    .client
                    .execute("arguments[0].select()", vec![arg])
                    .await;
            }
            el.send_keys(text)
                .await
                .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
            let shown = el.prop("value").await.ok().flatten().unwrap_or_default();
            if acts || shown == text {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.shot("failure").await;
        panic!("{selector} does not show what was typed: {text}");
    }

    /// Starts the run of the Train form, waits until it completed and its last validation
    /// line says `score`; returns that line.
    async fn train_to_the_end(&self, score: &str) -> String {
        self.click("#start").await;
        let status = self
            .attr_until("[data-testid='live']", "data-status", LONG, |s| {
                s != "running"
            })
            .await;
        assert_eq!(status, "completed");
        self.until_text("[data-testid='last-eval']", LONG, |t| t.contains(score))
            .await
    }

    /// The run the Train page's live view shows.
    async fn live_run(&self) -> String {
        self.css("[data-testid='live']")
            .await
            .attr("data-run")
            .await
            .expect("attribute")
            .expect("the live view names its run")
    }

    /// Opens the Train page's form for a new run: a finished run's live view comes first, so
    /// New run is pressed until the form is there (a redraw of that view can take a click).
    async fn new_train_form(&self) {
        self.page("train").await;
        let pressed = Instant::now();
        while self
            .client
            .find(Locator::Css("#train-model"))
            .await
            .is_err()
        {
            assert!(pressed.elapsed() < LONG, "no Train form after New run");
            let new_run = Locator::XPath("//button[normalize-space(.)='New run']");
            if let Ok(button) = self.client.find(new_run).await {
                button.click().await.ok();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Opens run `id` from the Runs list and waits for its own page (not the one before).
    async fn open_run(&self, id: u32) {
        self.click(&format!("tr[data-run='{id}'] a")).await;
        self.css(&format!("[data-testid='run-page'][data-run='{id}']"))
            .await;
    }

    async fn set_field(&self, field: &str, value: &str) {
        let selector =
            format!("label[data-field='{field}'] input, label[data-field='{field}'] textarea");
        let el = self.css(&selector).await;
        // In the middle of the window, clear of the sticky Start bar at its bottom.
        self.client
            .execute(
                "arguments[0].scrollIntoView({block: 'center'})",
                vec![serde_json::to_value(&el).expect("element")],
            )
            .await
            .expect("scroll");
        el.click().await.expect("focus");
        // Select what is there and type over it, as a person does.
        let arg = serde_json::to_value(&el).expect("element");
        self.client
            .execute("arguments[0].select()", vec![arg])
            .await
            .expect("select");
        el.send_keys(value).await.expect("type");
        let shown = el.prop("value").await.ok().flatten().unwrap_or_default();
        assert_eq!(shown, value, "the {field} field shows what was typed");
    }

    async fn shot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    async fn keys(&self, keys: &str) {
        let body = self.css("body").await;
        body.send_keys(keys).await.expect("keys");
    }

    /// Picks `value` in the select `selector` once the option is there (lists load after the
    /// page shows).
    async fn select(&self, selector: &str, value: &str) {
        self.css(&format!("{selector} option[value='{value}']"))
            .await;
        self.css(selector)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("pick {value} in {selector}: {e}"));
    }

    /// The Labeling counter once the page has loaded its dataset: (labeled, rows).
    async fn label_progress(&self, check: impl Fn(u64, u64) -> bool) -> (u64, u64) {
        let text = self
            .until_text("[data-testid='label-progress']", LONG, |t| {
                progress_counts(t).is_some_and(|(done, rows)| rows > 0 && check(done, rows))
            })
            .await;
        progress_counts(&text).expect("checked above")
    }
}

/// Deadline for an element to appear or go: generous, since the test runs beside a busy build.
const SHORT: Duration = Duration::from_secs(90);
/// Deadline for a download, an import or a training run to finish.
const LONG: Duration = Duration::from_secs(600);

/// "12 of 40 labeled" → (12, 40).
fn progress_counts(text: &str) -> Option<(u64, u64)> {
    let mut numbers = text.split_whitespace().filter_map(|w| w.parse().ok());
    Some((numbers.next()?, numbers.next()?))
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs tauri-driver and a display (scripts/test-all runs it under xvfb-run)"]
async fn a_user_goes_from_nothing_to_an_exported_model() {
    // Two TLS back ends are linked (ring and aws-lc-rs); the WebDriver client needs one chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = target_dir().join("debug/hone-desktop");
    assert!(
        app.is_file(),
        "no {}: build the workspace first",
        app.display()
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let shots = target_dir().join("e2e-screenshots");
    std::fs::create_dir_all(&shots).expect("mkdir");

    // A dataset whose first six rows have no label: three are labeled by hand before the
    // first runs, the rest with the model's help after them. Saved as Latin-1 ("clichés"),
    // as an old spreadsheet export would be: the import reads it and says so.
    let sample = std::fs::read_to_string(root().join("tests/fixtures/data/sst2_sample.tsv"))
        .expect("fixture");
    let mut lines: Vec<String> = sample.lines().map(str::to_string).collect();
    for line in &mut lines[1..7] {
        let text = line.split('\t').next().unwrap_or_default().to_string();
        *line = format!("{text}\t");
    }
    let data = tmp.path().join("reviews.tsv");
    let latin1: Vec<u8> = (lines.join("\n") + "\n")
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect();
    std::fs::write(&data, latin1).expect("write");
    let conll = tmp.path().join("ner.conll");
    // Two CoNLL sentences, then 18 more from a template, so a held-out share validates the
    // entity run. Only ORG, MISC and PER: the Entities view lists types in that order.
    let mut ner = String::from(
        "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n",
    );
    for (i, (who, org)) in [("Anna", "Nokia"), ("John", "Siemens"), ("Maria", "Reuters")]
        .iter()
        .cycle()
        .take(18)
        .enumerate()
    {
        let day = ["Monday", "Tuesday"][i % 2];
        ner.push_str(&format!(
            "\n{who} B-PER\njoined O\n{org} B-ORG\non O\n{day} O\n. O\n"
        ));
    }
    std::fs::write(&conll, ner).expect("write");
    let exports = tmp.path().join("exports");
    std::fs::create_dir_all(&exports).expect("mkdir");
    // Multiple-choice questions a tiny model learns: the kind review among unkind ones (every
    // kind word in every place), the answer as a letter.
    let questions = tmp.path().join("questions.csv");
    let mut csv = String::from("question,A,B,C,D,answer\n");
    let (kind, unkind) = (
        ["good", "great", "wonderful", "funny"],
        ["bad", "dull", "awful", "boring", "stupid"],
    );
    for i in 0..40usize {
        let right = i % 4;
        let options: Vec<String> = (0..4)
            .map(|j| match j == right {
                true => format!("the film was {}", kind[(i / 4) % kind.len()]),
                false => format!("the film was {}", unkind[(i * 3 + j) % unkind.len()]),
            })
            .collect();
        csv.push_str(&format!(
            "which review is kind ?,{},{}\n",
            options.join(","),
            ["A", "B", "C", "D"][right]
        ));
    }
    std::fs::write(&questions, csv).expect("write");
    // Questions answered from a passage (SQuAD JSON lines): which of the film's words is kind.
    let squad = tmp.path().join("answers.jsonl");
    let mut lines = String::new();
    for i in 0..48usize {
        let right = i % 4;
        let mut context = String::new();
        let mut start = 0;
        for j in 0..4 {
            let word = match j == right {
                true => kind[(i / 4) % kind.len()],
                false => unkind[(i * 3 + j) % unkind.len()],
            };
            context.push_str("the film was ");
            if j == right {
                start = context.len();
            }
            context.push_str(word);
            context.push_str(" . ");
        }
        lines.push_str(
            &serde_json::json!({
                "question": "which word is kind ?",
                "context": context.trim_end(),
                "answers": {"text": [kind[(i / 4) % kind.len()]], "answer_start": [start]},
            })
            .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(&squad, lines).expect("write");
    // Conversations for a causal LM (Alpaca records and chat messages) and the decoder they
    // train: the tiny Llama fixture, imported as a folder.
    let chats = tmp.path().join("chats.jsonl");
    let numbers = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
    ];
    let mut lines = String::new();
    for i in 0..48usize {
        let (a, b) = (i % 5, (i / 5) % 4);
        let question = format!("what is {} plus {} ?", numbers[a], numbers[b]);
        let answer = format!("{} plus {} is {} .", numbers[a], numbers[b], numbers[a + b]);
        let record = match i % 2 {
            0 => serde_json::json!({"instruction": question, "input": "", "output": answer}),
            _ => serde_json::json!({"messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer}]}),
        };
        lines.push_str(&record.to_string());
        lines.push('\n');
    }
    std::fs::write(&chats, lines).expect("write");
    let llama = copy_fixture("tiny-llama", tmp.path());
    // Source and target texts for an encoder–decoder (the sum of two numbers, in words) and
    // the model they train: the tiny T5 fixture, imported as a folder.
    let pairs = tmp.path().join("sums.jsonl");
    let mut lines = String::new();
    for i in 0..48usize {
        let (a, b) = (i % 5, (i / 5) % 4);
        let record = serde_json::json!({
            "source": format!("add {} and {}", numbers[a], numbers[b]),
            "target": numbers[a + b],
        });
        lines.push_str(&record.to_string());
        lines.push('\n');
    }
    std::fs::write(&pairs, lines).expect("write");
    let t5 = copy_fixture("tiny-t5", tmp.path());

    let hub = TestHub::start(vec![
        Repo::from_dir(
            "hone-test/tiny-bert",
            &root().join("tests/fixtures/tiny-bert"),
        )
        .expect("fixture")
        .task("fill-mask")
        .stats(1234, 5, "2026-11-01T00:00:00.000Z"),
        // A decoder, found by another word than "tiny".
        Repo::from_dir(
            "hone-test/small-llama",
            &root().join("tests/fixtures/tiny-llama"),
        )
        .expect("fixture")
        .task("text-generation")
        .stats(99, 1, "2026-11-02T00:00:00.000Z"),
    ])
    .expect("hub");

    // The dialogs' answers by kind, so an extra use of one kind of dialog cannot take another
    // kind's answer (the export folder answers both exports; a kind with no answer left
    // repeats its last rather than opening a real dialog that would hang the test).
    let answer = |kind: &str, path: &std::path::Path| format!("{kind}={}", path.display());
    let picks = std::env::join_paths([
        answer("data_file", &data),
        answer("data_file", &conll),
        answer("export_folder", &exports),
        answer("data_file", &questions),
        answer("data_file", &squad),
        answer("model_folder", &llama),
        answer("data_file", &chats),
        answer("model_folder", &t5),
        answer("data_file", &pairs),
    ])
    .expect("paths");
    let driver = Command::new("tauri-driver")
        .args(["--port", "4444", "--native-port", "4445"])
        .env("HONE_DB", tmp.path().join("hone.db"))
        .env("HONE_PICK", picks)
        .env("HF_ENDPOINT", hub.url())
        .env("HF_HOME", tmp.path().join("hf"))
        // A fresh WebView profile (no localStorage from earlier runs).
        .env("XDG_DATA_HOME", tmp.path().join("xdg-data"))
        .env("XDG_CACHE_HOME", tmp.path().join("xdg-cache"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tauri-driver on PATH (cargo install tauri-driver --locked)");
    let _driver = Driver(driver);

    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), "wry".into());
    caps.insert(
        "tauri:options".into(),
        serde_json::json!({"application": app}),
    );
    let deadline = Instant::now() + SHORT;
    let client = loop {
        let mut builder = ClientBuilder::rustls().expect("TLS roots");
        match builder
            .capabilities(caps.clone())
            .connect("http://127.0.0.1:4444")
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("cannot reach tauri-driver: {e}"),
        }
    };
    let ui = Ui { client, shots };
    let long = LONG;

    // Start page.
    ui.css("main[data-current='home']").await;
    assert_eq!(ui.client.title().await.expect("title"), "Hone");
    ui.shot("01-start").await;
    // "?" lists the keyboard shortcuts; Esc closes the list.
    ui.keys("?").await;
    let shortcuts = ui.text_of("[data-testid='shortcuts']").await;
    assert!(
        shortcuts.contains("Ctrl+1") && shortcuts.contains("Undo the last label"),
        "{shortcuts}"
    );
    ui.shot("01b-shortcuts").await;
    ui.keys("\u{E00C}").await; // Escape
    ui.gone("[data-testid='shortcuts']").await;

    // Models: search the local Hub, open the model, read the verdict, download.
    ui.page("models").await;
    ui.type_into("#hub-query", "tiny").await;
    ui.click("#hub-search").await;
    let results = ui.text_of("[data-testid='hub-results']").await;
    assert!(results.contains("BERT"), "the family column: {results}");
    ui.click("[data-testid='hub-results'] tbody tr td").await;
    let fit = ui.text_of("[data-testid='fit']").await;
    assert!(fit.contains("fits"), "{fit}");
    assert!(fit.contains("samples/s"), "the speed estimate: {fit}");
    ui.click("#download").await;
    ui.until_text("[data-testid='model-page']", long, |t| {
        t.contains("Downloaded.")
    })
    .await;
    ui.until_text("[data-testid='known-models']", long, |t| {
        t.contains("hone-test/tiny-bert")
    })
    .await;
    ui.shot("02-models").await;
    // The results and the open card are still there after a visit to another page.
    ui.page("home").await;
    ui.page("models").await;
    let card = ui.text_of("[data-testid='model-page']").await;
    assert!(card.contains("tiny-bert"), "{card}");
    ui.css("[data-testid='hub-results'] tbody tr").await;

    // Datasets: pick the file, check the preview, import.
    ui.page("datasets").await;
    ui.click("#import-file").await;
    let preview = ui.text_of("[data-testid='preview']").await;
    assert!(preview.contains("unlabeled"), "{preview}");
    // Before import: how many rows, how many to label, how the labels are spread.
    let counts = ui.text_of("[data-testid='preview-counts']").await;
    assert!(counts.contains("48 rows · 6 without a label"), "{counts}");
    // The guessed encoding is said, and choosing it by hand silences the guess.
    ui.until_text("[data-testid='preview']", long, |t| {
        t.contains("not valid UTF-8")
    })
    .await;
    ui.select("#encoding", "latin1").await;
    ui.until_text("[data-testid='preview']", long, |t| {
        !t.contains("not valid UTF-8")
    })
    .await;
    ui.select("#encoding", "").await;
    ui.until_text("[data-testid='preview']", long, |t| {
        t.contains("not valid UTF-8")
    })
    .await;
    // The file's 0/1 labels get names as they are imported.
    ui.type_into("input[data-label='0']", "negative").await;
    ui.type_into("input[data-label='1']", "positive").await;
    ui.shot("03-dataset-preview").await;
    ui.click("#do-import").await;
    ui.until_text("[data-testid='datasets']", long, |t| t.contains("reviews"))
        .await;
    ui.css("[data-testid='label-bars']").await;
    let noticed = ui.text_of("[data-testid='import-warnings']").await;
    assert!(noticed.contains("Windows-1252"), "{noticed}");
    // Every row is browsable: the count says how many (one page here; the pager takes over
    // past 200).
    ui.until_text("[data-testid='rows-shown']", long, |t| t == "48 rows")
        .await;
    ui.shot("04-datasets").await;

    // Labeling with the keyboard: 1, 2, 1. Every wait is on the page's state: the counter once
    // the dataset has loaded, then one more labeled row after each key. Two examples a page
    // (500 in use): the third key labels an example of the next page.
    ui.client
        .execute(
            "localStorage.setItem('hone.labelingPageSize', '2')",
            Vec::new(),
        )
        .await
        .expect("page size");
    ui.page("labeling").await;
    ui.css("[data-testid='label-card']").await;
    let (before, rows) = ui.label_progress(|_, _| true).await;
    // With the shortcut list open, keys do not reach the page behind it.
    ui.keys("?").await;
    ui.css("[data-testid='shortcuts']").await;
    ui.keys("1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ui.keys("\u{E00C}").await; // Escape
    ui.gone("[data-testid='shortcuts']").await;
    assert_eq!(
        ui.label_progress(|_, _| true).await,
        (before, rows),
        "a key pressed over the shortcut list labeled an example"
    );
    let mut done = before;
    for key in ["1", "2", "1"] {
        ui.keys(key).await;
        done = ui.label_progress(|d, _| d > done).await.0;
    }
    ui.shot("05-labeling").await;
    assert_eq!(done, before + 3, "three rows labeled");
    assert!(done < rows, "rows are left for the model's suggestions");

    // Entities: import a CoNLL file, tag the first token of a sentence with the keyboard.
    ui.page("datasets").await;
    ui.click("#import-file").await;
    ui.until_text("[data-testid='preview']", long, |t| t.contains("ner.conll"))
        .await;
    ui.click("#do-import").await;
    ui.until_text("[data-testid='datasets']", long, |t| t.contains("ner"))
        .await;
    ui.page("labeling").await;
    ui.select("select[aria-label='Dataset']", "ner").await;
    ui.until_text("[data-testid='ner-card']", long, |t| t.contains("EU"))
        .await;
    ui.keys("3").await; // the third entity type: PER
    ui.attr_until("[data-testid='ner-card'] .token", "data-tag", long, |t| {
        t == "B-PER"
    })
    .await;
    ui.shot("05b-entities").await;
    ui.keys("\u{E007}").await; // Enter saves and moves on
    ui.until_text("[data-testid='ner-card']", long, |t| t.contains("1 saved"))
        .await;

    // Train: small settings, watch the live chart, wait for the end.
    for (epochs, lr) in [("3", "0.001"), ("1", "0.0005")] {
        ui.page("train").await;
        ui.css("#train-model option").await;
        ui.select("#train-dataset", "reviews").await;
        // A new run starts unnamed; the settings say where they came from.
        let run_name = ui
            .css("#run-name")
            .await
            .prop("value")
            .await
            .expect("value");
        assert_eq!(
            run_name.as_deref(),
            Some(""),
            "the last run's name is not carried over"
        );
        if epochs == "3" {
            // The LoRA preset shows its settings and what it saves before Start; Quick (full
            // fine-tuning) hides them again.
            ui.click("button[data-preset='lora']").await;
            ui.until_text("[data-testid='preset']", long, |t| t == "preset: LoRA")
                .await;
            ui.until_text("[data-testid='lora-summary']", long, |t| {
                t.contains("LoRA trains") && t.contains("instead of")
            })
            .await;
            ui.css("label[data-field='lora_r']").await;
            ui.shot("06-train-lora-preset").await;
        }
        ui.click("button[data-preset='quick']").await;
        ui.until_text("[data-testid='preset']", long, |t| t == "preset: Quick")
            .await;
        ui.gone("label[data-field='lora_r']").await;
        ui.type_into("#run-name", &format!("run with {epochs} epochs"))
            .await;
        ui.set_field("epochs", epochs).await;
        ui.until_text("[data-testid='preset']", long, |t| t == "custom settings")
            .await;
        ui.set_field("batch_size", "8").await;
        ui.set_field("max_length", "32").await;
        ui.set_field("lr", lr).await;
        if epochs == "1" {
            // The first run teaches the second (knowledge distillation), which also meets its
            // examples from short to long in its first epoch.
            ui.select("#train-teacher", "1").await;
            ui.select("label[data-field='curriculum'] select", "length")
                .await;
        }
        let plan = format!("for {epochs} epoch");
        ui.until_text("[data-testid='fit']", long, |t| t.contains(&plan))
            .await;
        ui.shot(&format!("06-train-form-{epochs}")).await;
        ui.click("#start").await;
        ui.attr_until("[data-testid='chart-loss']", "data-points", long, |v| {
            v.parse::<u64>().unwrap_or(0) > 0
        })
        .await;
        ui.shot(&format!("07-train-live-{epochs}")).await;
        let status = ui
            .attr_until("[data-testid='live']", "data-status", long, |s| {
                s != "running"
            })
            .await;
        assert_eq!(status, "completed");
        if epochs == "1" {
            let live = ui.text_of("[data-testid='live']").await;
            assert!(live.contains("with the teacher"), "{live}");
        }
        ui.shot(&format!("08-train-done-{epochs}")).await;
        ui.button("New run").await;
    }

    // Runs: two runs, compare them, open one.
    ui.page("runs").await;
    ui.until_text("[data-testid='runs']", long, |t| {
        t.matches("completed").count() == 2
    })
    .await;
    ui.click("tr[data-run='1'] input[type='checkbox']").await;
    ui.click("tr[data-run='2'] input[type='checkbox']").await;
    let diff = ui.text_of("[data-testid='config-diff']").await;
    assert!(
        diff.contains("training.epochs") && diff.contains("training.lr"),
        "{diff}"
    );
    // Both runs' curves are there and drawn (uPlot paints after creation).
    ui.attr_until("[data-testid='compare'] .chart", "data-points", long, |p| {
        p != "0"
    })
    .await;
    ui.attr_until("[data-testid='compare'] .chart", "data-drawn", long, |d| {
        d == "true"
    })
    .await;
    let table = ui.text_of("[data-testid='metrics-compare']").await;
    assert!(
        table.contains("accuracy") && table.contains("macro f1") && table.contains("scored on"),
        "{table}"
    );
    // The two runs combined into an ensemble folder (averaged probabilities), recorded as a
    // run of its own and scored beside its members.
    ui.click_until_started(
        "#ensemble",
        &[
            "[data-testid='ensemble-busy']",
            "[data-testid='ensemble-made']",
        ],
    )
    .await;
    let made = ui
        .until_text("[data-testid='ensemble-made']", long, |t| {
            t.contains("ensemble-2-1")
        })
        .await;
    assert!(made.contains("recorded as run 3"), "{made}");
    assert!(exports.join("ensemble-2-1/hone_ensemble.json").is_file());
    ui.shot("09-runs-compare").await;
    ui.click("tr[data-run='2'] input[type='checkbox']").await;
    ui.click("tr[data-run='1'] input[type='checkbox']").await;
    ui.open_run(3).await;
    let members = ui.text_of("[data-testid='ensemble-members']").await;
    assert!(
        members.contains("run 1") && members.contains("run 2") && members.contains("ensemble"),
        "{members}"
    );
    ui.shot("09b-ensemble-run").await;
    ui.open_run(1).await;
    ui.css("[data-testid='confusion']").await;
    // Tags and notes: a tag added with Enter shows in the list, notes are saved when the box
    // loses focus, and both are there when the run is opened again.
    ui.type_into("#add-tag", "baseline\u{E007}").await;
    ui.css("[data-testid='runs'] tr[data-run='1'] .tag[data-tag='baseline']")
        .await;
    ui.type_into("#run-notes", "three epochs overfit the reviews")
        .await;
    ui.click("#add-tag").await;
    ui.until_text("[data-testid='notes-status']", long, |t| t == "notes saved")
        .await;
    ui.open_run(2).await;
    ui.open_run(1).await;
    ui.value_until("#run-notes", long, |notes| {
        notes == "three epochs overfit the reviews"
    })
    .await;
    ui.css("[data-testid='run-notes'] .tag[data-tag='baseline']")
        .await;
    ui.shot("10-run").await;
    // A confident mistake is relabeled from the run's page (the model's class offered first).
    ui.click("[data-testid='mistakes'] button.relabel").await;
    let relabeled = ui
        .attr_until(
            "[data-testid='mistakes'] [data-relabeled]",
            "data-relabeled",
            long,
            |l| !l.is_empty(),
        )
        .await;
    assert!(
        ["negative", "positive"].contains(&relabeled.as_str()),
        "{relabeled}"
    );
    // The Test tab: the starter suite for the run's classes fills the editor; it runs on the
    // run's held-out examples with a slice, and shows each test's failure rate, the
    // robustness score and the slice's accuracy beside everything's.
    ui.click("#run-tab-test").await;
    ui.value_until("#behavior-suite", long, |suite| {
        suite.contains("kind = \"invariance\"")
    })
    .await;
    ui.type_into("#behavior-slices", "short=^\\S+( \\S+){0,5}$")
        .await;
    ui.click("#behavior-run").await;
    let results = ui
        .until_text("[data-testid='behavior-results']", long, |t| {
            t.contains('%')
        })
        .await;
    assert!(results.contains("invariance"), "{results}");
    let robustness = ui.text_of("[data-testid='robustness']").await;
    assert!(robustness.contains('%'), "{robustness}");
    ui.css("[data-testid='behavior-slices'] tr[data-slice='all']")
        .await;
    ui.css("[data-testid='behavior-slices'] tr[data-slice='short']")
        .await;
    ui.shot("10b-run-test").await;

    // Playground and export (of run 2; the newest, the ensemble, is listed first).
    ui.page("playground").await;
    ui.select("#play-run", "2").await;
    ui.type_into("#play-text", "a gorgeous, witty movie").await;
    ui.click("#play-predict").await;
    ui.until_text("[data-testid='predictions']", long, |t| t.contains('%'))
        .await;
    ui.type_into("#export-name", "sentiment").await;
    ui.click("#export").await;
    ui.until_text("[data-testid='exported']", long, |t| {
        t.contains("sentiment")
    })
    .await;
    ui.shot("11-playground").await;
    // The Start page ticks all four steps now.
    ui.page("home").await;
    ui.attr_until("[data-testid='steps']", "data-done", long, |d| d == "4")
        .await;

    // Light and dark themes both render.
    ui.select(".theme select", "dark").await;
    ui.shot("12-dark").await;
    ui.select(".theme select", "light").await;

    // Named entities: the Train page takes the task from the tagged dataset; the run's page
    // shows the entity scores per type.
    ui.page("train").await;
    ui.select("#train-dataset", "ner").await;
    ui.attr_until("#train-task", "data-task", long, |v| v == "token")
        .await;
    // Every run option is on the form, with the run configuration type's default and help;
    // the rarer ones under "More options".
    // (Opened and scrolled to from script: the summary sits under the sticky Start bar.)
    let more = |open: bool| {
        format!(
            "const d = document.querySelector('details.more-options'); d.open = {open}; \
             d.scrollIntoView({{block: 'center'}})"
        )
    };
    ui.client.execute(&more(true), vec![]).await.expect("open");
    let eps = ui.text_of("label[data-field='adam_eps']").await;
    assert!(eps.contains("epsilon") && eps.contains("AdamW"), "{eps}");
    ui.shot("12b-more-options").await;
    ui.client
        .execute(&more(false), vec![])
        .await
        .expect("close");
    // Options of other tasks stay off a token classifier's form (question answering's
    // windows, a causal LM's chat template and loss).
    for key in [
        "doc_stride",
        "max_answer_length",
        "chat_template",
        "loss_on",
    ] {
        ui.gone(&format!("label[data-field='{key}']")).await;
    }
    ui.set_field("epochs", "2").await;
    // Unusable values block Start and say why beside the field; fixing them unblocks it.
    ui.set_field("batch_size", "0").await;
    ui.set_field("lr", "abc").await;
    let blocked = ui
        .until_text("[data-testid='start-blocked']", long, |t| {
            t.contains("Batch size") && t.contains("Learning rate")
        })
        .await;
    assert!(blocked.contains("first"), "{blocked}");
    let lr_field = ui.text_of("label[data-field='lr']").await;
    assert!(lr_field.contains("\"abc\" is not a number"), "{lr_field}");
    assert!(
        !ui.css("#start").await.is_enabled().await.expect("enabled?"),
        "Start stays disabled while a field is invalid"
    );
    ui.set_field("batch_size", "4").await;
    ui.set_field("lr", "2").await;
    ui.until_text("label[data-field='lr']", long, |t| t.contains("diverge"))
        .await;
    ui.set_field("lr", "0.001").await;
    ui.gone("[data-testid='start-blocked']").await;
    // The learning-rate range test: a sweep of rising rates charted against the loss, and a
    // suggestion the form takes with one click.
    ui.click("#lr-find").await;
    let suggested: f64 = ui
        .attr_until("[data-testid='lr-suggestion']", "data-lr", long, |v| {
            v.parse::<f64>().is_ok_and(|lr| lr > 0.0)
        })
        .await
        .parse()
        .expect("a rate");
    ui.attr_until("[data-testid='chart-lr-find']", "data-drawn", long, |d| {
        d == "true"
    })
    .await;
    ui.client
        .execute(
            "document.querySelector('[data-testid=lr-finder]').scrollIntoView({block: 'end'})",
            vec![],
        )
        .await
        .expect("scroll");
    ui.shot("12c-lr-find").await;
    ui.click("#lr-use").await;
    let deadline = Instant::now() + long;
    let taken: f64 = loop {
        let shown = ui
            .css("label[data-field='lr'] input")
            .await
            .prop("value")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        if shown != "0.001" && !shown.is_empty() {
            break shown.parse().expect("the form shows a number");
        }
        assert!(Instant::now() < deadline, "the form never took the rate");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        (taken / suggested - 1.0).abs() < 0.1,
        "{taken} vs {suggested}"
    );
    ui.set_field("lr", "0.001").await;
    // Multi-task learning: the reviews train a second head on the same encoder.
    ui.click("[data-also='reviews'] input").await;
    let note = ui
        .until_text("[data-testid='multi-task-note']", long, |t| {
            t.contains("2 heads")
        })
        .await;
    assert!(note.contains("own folder"), "{note}");
    // Gradual unfreezing: one more layer each epoch, marked on the live charts.
    ui.set_field("unfreeze_every_epochs", "1").await;
    ui.until_text("[data-testid='fit']", long, |t| t.contains("for 2 epoch"))
        .await;
    // The speed estimate follows the dataset's real lengths (short sentences), not the
    // 128-token maximum: the CPU path skips padding.
    let typical = ui
        .attr_until("[data-testid='speed']", "data-length", long, |l| {
            l.parse::<usize>().is_ok_and(|n| n < 32)
        })
        .await;
    assert!(typical.parse::<usize>().is_ok_and(|n| n > 3), "{typical}");
    let last = ui.train_to_the_end("entity F1").await;
    // Each task's scores, by name.
    assert!(
        last.contains("token accuracy")
            && last.contains("ner:")
            && last.contains("reviews: accuracy"),
        "{last}"
    );
    // The second epoch unfroze the top layer: the learning-rate chart marks where.
    ui.attr_until("[data-testid='chart-lr']", "data-marks", long, |m| m == "1")
        .await;
    ui.shot("13-ner-done").await;
    ui.page("runs").await;
    ui.open_run(4).await;
    let tasks = ui.text_of("[data-testid='task-reports']").await;
    assert!(
        tasks.contains("per task") && tasks.contains("reviews"),
        "{tasks}"
    );
    let per_type = ui.text_of("[data-testid='per-type']").await;
    assert!(
        per_type.contains("Entity") && per_type.contains("PER"),
        "{per_type}"
    );
    ui.shot("14-ner-run").await;

    // The Playground answers the NER run with its text, entities marked inline.
    ui.page("playground").await;
    ui.select("#play-run", "4").await;
    ui.type_into("#play-text", "Anna joined Nokia on Monday .")
        .await;
    ui.click("#play-predict").await;
    let card = ui
        .until_text("[data-testid='entity-prediction']", long, |t| {
            t.contains("Nokia")
        })
        .await;
    assert!(
        card.contains("No entities found") || card.contains("Score"),
        "{card}"
    );
    ui.shot("15-ner-playground").await;

    // Model help on Labeling: the newest run on the reviews pre-labels their unlabeled rows,
    // least sure first; A accepts a suggestion; the next round trains on the labels so far
    // and joins the curve of score against labels, and the queue is scored again by it.
    ui.page("labeling").await;
    ui.select("select[aria-label='Dataset']", "reviews").await;
    let (before, rows) = ui.label_progress(|done, rows| rows > done).await;
    ui.attr_until("[data-testid='label-curve']", "data-points", long, |p| {
        p == "2"
    })
    .await;
    // A class renamed after the runs trained: the store relabels its examples and the runs'
    // suggestions use the new name.
    ui.click("[data-testid='classes'] button[data-class='positive']")
        .await;
    ui.type_into("input[data-renaming='positive']", "good\u{E007}")
        .await;
    ui.css("[data-testid='classes'] button[data-class='good']")
        .await;
    ui.click("[data-testid='suggest']").await;
    ui.until_text("[data-testid='queue-info']", long, |t| {
        t.contains("run 2") && t.contains("least sure first")
    })
    .await;
    let suggested = ui
        .attr_until("[data-testid='suggestion']", "data-label", long, |l| {
            !l.is_empty()
        })
        .await;
    assert!(
        ["negative", "good"].contains(&suggested.as_str()),
        "{suggested}"
    );
    ui.shot("16-labeling-suggestions").await;
    ui.keys("a").await;
    let (after, _) = ui.label_progress(|done, _| done > before).await;
    assert_eq!((after, rows), (before + 1, rows));
    ui.click("[data-testid='next-round']").await;
    ui.attr_until("[data-testid='label-curve']", "data-points", long, |p| {
        p == "3"
    })
    .await;
    ui.until_text("[data-testid='queue-info']", long, |t| t.contains("run 5"))
        .await;
    ui.shot("17-labeling-next-round").await;

    // Deleting from the window, asked once more in place: a run, then a dataset.
    ui.page("runs").await;
    ui.open_run(2).await;
    ui.click("#delete-run").await;
    ui.click("#delete-run-confirm").await;
    ui.gone("tr[data-run='2']").await;
    assert!(
        ui.text_of("[data-testid='runs']").await.contains('3'),
        "the other runs stay"
    );
    ui.page("datasets").await;
    ui.click("tr[data-dataset='ner'] td").await;
    ui.click("#delete-dataset").await;
    ui.click("#delete-dataset-confirm").await;
    ui.gone("tr[data-dataset='ner']").await;

    // A long run, cancelled while it trains, then resumed from its page on Runs: the Train
    // page's curves go on from the stored history (they start at step 1, not at the
    // checkpoint); cancelled again.
    ui.page("train").await;
    // The last run's view first draws its charts (which moves the button below them).
    ui.attr_until("[data-testid='chart-loss']", "data-drawn", long, |d| {
        d == "true"
    })
    .await;
    ui.button("New run").await;
    ui.css("#train-model option").await;
    ui.select("#train-dataset", "reviews").await;
    // Far more epochs than the test waits for: the run is still training whenever the
    // window gets to its Cancel, however slow the machine.
    ui.set_field("epochs", "100000").await;
    ui.set_field("batch_size", "8").await;
    ui.set_field("max_length", "32").await;
    ui.click("#start").await;
    ui.attr_until("[data-testid='chart-loss']", "data-points", long, |v| {
        v.parse::<u64>().unwrap_or(0) >= 3
    })
    .await;
    ui.button("Cancel").await;
    ui.attr_until("[data-testid='live']", "data-status", long, |s| {
        s == "cancelled"
    })
    .await;
    ui.page("runs").await;
    ui.open_run(6).await;
    ui.until_text("[data-testid='run-page'] h2", long, |t| {
        t.contains("cancelled")
    })
    .await;
    ui.click("#resume-run").await;
    ui.css("main[data-current='train']").await;
    // The live view starts from the stored steps, and new ones arrive on top of them.
    let resumed_at: u64 = ui
        .attr_until("[data-testid='live']", "data-step", long, |s| s != "0")
        .await
        .parse()
        .expect("step");
    ui.attr_until("[data-testid='live']", "data-step", long, |s| {
        s.parse::<u64>().unwrap_or(0) > resumed_at + 2
    })
    .await;
    assert_eq!(
        ui.css("[data-testid='chart-loss']")
            .await
            .attr("data-first")
            .await
            .expect("attr")
            .as_deref(),
        Some("1"),
        "the resumed run's curve keeps its steps before the checkpoint"
    );
    ui.shot("18-resumed").await;
    // Opened from Runs while it trains, the run has Cancel there too.
    ui.page("runs").await;
    ui.open_run(6).await;
    ui.click("#cancel-run").await;
    ui.until_text("[data-testid='run-page'] h2", long, |t| {
        t.contains("cancelled")
    })
    .await;

    // Multiple choice from a file of questions: the columns are guessed from the header, the
    // first question is shown as it will be read; the run reports accuracy and MAP@3, and the
    // Playground ranks a question's options.
    ui.page("train").await;
    ui.attr_until("[data-testid='chart-loss']", "data-drawn", long, |d| {
        d == "true"
    })
    .await;
    ui.button("New run").await;
    ui.css("#train-model option").await;
    ui.select("#train-task", "choice").await;
    ui.click("#choice-file").await;
    let preview = ui
        .until_text("[data-testid='choice-preview']", long, |t| {
            t.contains("40 questions") && t.contains("tokens")
        })
        .await;
    assert!(
        preview.contains("of 4 options") && preview.contains("A 25%") && preview.contains('✓'),
        "{preview}"
    );
    ui.set_field("epochs", "6").await;
    ui.set_field("batch_size", "4").await;
    ui.set_field("max_length", "32").await;
    ui.set_field("lr", "0.003").await;
    // Four validation questions tie at full accuracy from the first epoch on: the best
    // checkpoint is picked by loss.
    // (The select sits under the sticky Start bar: scrolled into view first.)
    let best_by = "label[data-field='early_stopping_metric'] select";
    ui.client
        .execute(
            "document.querySelector(arguments[0]).scrollIntoView({block: 'center'})",
            vec![best_by.into()],
        )
        .await
        .expect("scroll");
    ui.select(best_by, "loss").await;
    ui.shot("19-choice-form").await;
    ui.train_to_the_end("MAP@3").await;
    ui.page("runs").await;
    ui.open_run(7).await;
    let report = ui.text_of("[data-testid='choice-report']").await;
    assert!(
        report.contains("MAP@3") && report.contains("questions of 4 options"),
        "{report}"
    );
    ui.shot("20-choice-run").await;
    ui.page("playground").await;
    ui.select("#play-run", "7").await;
    ui.type_into("#play-question", "which review is kind ?")
        .await;
    // Enter (U+E007) starts a new line in the options box.
    ui.type_into(
        "#play-text",
        "the film was dull\u{E007}the film was great\u{E007}the film was bad",
    )
    .await;
    ui.click("#play-predict").await;
    let best = ui
        .attr_until(
            "[data-testid='choice-prediction'] [data-rank='1']",
            "data-option",
            long,
            |o| !o.is_empty(),
        )
        .await;
    ui.shot("21-choice-playground").await;
    assert_eq!(best, "the film was great");

    // Question answering from a SQuAD file: the preview counts questions, passages and the
    // windows they make; the run reports exact match and F1; the Playground marks the answer
    // in the passage.
    ui.new_train_form().await;
    ui.css("#train-model option").await;
    ui.select("#train-task", "answer").await;
    ui.set_field("max_length", "48").await;
    ui.click("#answer-file").await;
    let preview = ui
        .until_text("[data-testid='answer-preview']", long, |t| {
            t.contains("48 questions") && t.contains("windows")
        })
        .await;
    assert!(preview.contains("passages"), "{preview}");
    ui.set_field("epochs", "12").await;
    ui.set_field("batch_size", "8").await;
    ui.set_field("lr", "0.003").await;
    ui.shot("22-answer-form").await;
    ui.train_to_the_end("exact match").await;
    ui.shot("23-answer-run").await;
    ui.page("playground").await;
    ui.select("#play-run", "8").await;
    ui.type_into("#play-question", "which word is kind ?").await;
    ui.type_into(
        "#play-text",
        "the film was dull . the film was funny . the film was bad .",
    )
    .await;
    ui.click("#play-predict").await;
    let answer = ui
        .attr_until("[data-answer]", "data-answer", long, |a| !a.is_empty())
        .await;
    ui.shot("24-answer-playground").await;
    assert_eq!(answer, "funny");

    // A decoder LM: import the tiny Llama folder, fine-tune it on the conversations, chat.
    ui.page("models").await;
    // Clicked again if a busy window did not take the click (once seen under load: no
    // import, no error, ten minutes of waiting).
    ui.click_until_started(
        "#import-model",
        &[
            "#import-model[disabled]",
            "[data-testid='known-models'] tr[data-model*='tiny-llama']",
        ],
    )
    .await;
    ui.until_text("main", long, |t| t.contains("tiny-llama"))
        .await;
    ui.new_train_form().await;
    ui.select("#train-task", "chat").await;
    ui.select("#train-model", &llama.display().to_string())
        .await;
    ui.click("#conversation-file").await;
    let preview = ui
        .until_text("[data-testid='conversation-preview']", long, |t| {
            t.contains("48 conversations")
        })
        .await;
    assert!(preview.contains("48 assistant turns"), "{preview}");
    ui.set_field("max_length", "64").await;
    ui.set_field("epochs", "4").await;
    ui.set_field("batch_size", "8").await;
    ui.set_field("lr", "0.003").await;
    ui.set_field("sample_prompts", "what is two plus one ?")
        .await;
    ui.shot("25-chat-form").await;
    ui.train_to_the_end("perplexity").await;
    // The live view shows what the model answered to the sample prompt at the last validation.
    let samples = ui
        .until_text("[data-testid='samples']", long, |t| {
            t.contains("what is two plus one ?")
        })
        .await;
    assert!(samples.contains("Sample answers"), "{samples}");
    let chat_run = ui.live_run().await;
    ui.page("playground").await;
    ui.select("#play-run", &chat_run).await;
    ui.css("[data-testid='chat']").await;
    ui.type_into("#chat-input", "what is two plus one ?").await;
    ui.click("#chat-send").await;
    let stats = ui
        .until_text("[data-testid='chat-stats']", long, |t| {
            t.contains("tokens/s")
        })
        .await;
    let reply = ui
        .text_of("[data-testid='chat'] [data-role='assistant']")
        .await;
    ui.shot("26-chat").await;
    assert!(
        reply.len() > "Model".len(),
        "an answer was written: {reply} ({stats})"
    );

    // An encoder–decoder: import the tiny T5 folder, train it text to text (validation
    // scored with ROUGE), answer in the Playground token by token, then with beam search.
    ui.page("models").await;
    ui.click_until_started(
        "#import-model",
        &[
            "#import-model[disabled]",
            "[data-testid='known-models'] tr[data-model*='tiny-t5']",
        ],
    )
    .await;
    ui.until_text("main", long, |t| t.contains("tiny-t5")).await;
    ui.new_train_form().await;
    ui.select("#train-task", "t2t").await;
    ui.select("#train-model", &t5.display().to_string()).await;
    ui.click("#text2text-file").await;
    ui.until_text("[data-testid='text2text-count']", long, |t| {
        t.contains("48 examples")
    })
    .await;
    ui.set_field("epochs", "3").await;
    ui.set_field("batch_size", "8").await;
    ui.set_field("lr", "0.003").await;
    ui.set_field("max_target_length", "8").await;
    ui.shot("28-text2text-form").await;
    let rouge = ui.train_to_the_end("ROUGE-L").await;
    assert!(rouge.contains("ROUGE-1"), "{rouge}");
    let t5_run = ui.live_run().await;
    ui.page("playground").await;
    ui.select("#play-run", &t5_run).await;
    ui.css("[data-testid='chat']").await;
    for beams in [1, 3] {
        if beams > 1 {
            ui.click("#chat-clear").await;
            ui.gone("[data-testid='chat-stats']").await;
            ui.click(".chat-box details summary").await;
            ui.type_into("#chat-beams", &beams.to_string()).await;
        }
        ui.type_into("#chat-input", "add two and one").await;
        ui.click("#chat-send").await;
        let stats = ui
            .until_text("[data-testid='chat-stats']", long, |t| {
                t.contains("tokens/s")
            })
            .await;
        let reply = ui
            .text_of("[data-testid='chat'] [data-role='assistant']")
            .await;
        ui.shot(&format!("29-text2text-chat-{beams}-beams")).await;
        // Greedy writes a token at least; beams may well choose the end token at once.
        assert!(
            reply.len() > "Model".len() && (beams > 1 || !reply.contains("(an empty answer)")),
            "{beams} beams: an answer was written: {reply} ({stats})"
        );
    }

    // A decoder on the Hub: its page weighs full fine-tuning against LoRA. Last, so that the
    // Models page the steps above come back to shows the model they left open.
    ui.page("models").await;
    ui.type_into("#hub-query", "llama").await;
    ui.click("#hub-search").await;
    let results = ui
        .until_text("[data-testid='hub-results']", long, |t| {
            t.contains("small-llama")
        })
        .await;
    assert!(results.contains("Llama"), "the family column: {results}");
    ui.click("[data-testid='hub-results'] tbody tr td").await;
    let fit = ui
        .until_text("[data-testid='fit']", long, |t| t.contains("LoRA (rank"))
        .await;
    assert!(
        fit.contains("Full fine-tuning") && fit.contains("fits"),
        "{fit}"
    );
    ui.shot("02b-hub-decoder").await;

    // A sweep run from the command line into the same database: Runs shows its two trials
    // against the learning rate, the best one marked, and ticks the best two for comparing
    // (the comparison has the Ensemble button).
    let sweep = Command::new(target_dir().join("debug/hone"))
        .args(["sweep", "create", "--sweep", "e2e-lr", "--model"])
        .arg(root().join("tests/fixtures/tiny-bert"))
        .arg("--train")
        .arg(root().join("tests/fixtures/data/sst2_sample.tsv"))
        .args(["--text-column", "sentence", "--label-column", "label"])
        .args(["--epochs", "1", "--batch-size", "8", "--max-length", "32"])
        .args(["--grid", "lr=1e-3,3e-3"])
        .env("HONE_DB", tmp.path().join("hone.db"))
        .env("XDG_DATA_HOME", tmp.path().join("xdg-data"))
        .output()
        .expect("hone sweep create");
    assert!(
        sweep.status.success(),
        "{}",
        String::from_utf8_lossy(&sweep.stderr)
    );
    ui.page("runs").await;
    let trials = ui
        .until_text("[data-testid='sweep-trials']", long, |t| {
            t.matches("completed").count() == 2
        })
        .await;
    assert!(
        trials.contains("0.001") && trials.contains("0.003"),
        "{trials}"
    );
    ui.css("[data-testid='sweep-chart'] .point.best").await;
    ui.click("#sweep-tick-best").await;
    let compared = ui
        .until_text("[data-testid='compare']", long, |t| {
            t.contains("Comparing runs")
        })
        .await;
    assert!(compared.contains("Ensemble"), "{compared}");
    ui.shot("27-sweep").await;

    // Every page in both themes, with the data of a whole session, for the look-and-feel
    // review (target/e2e-screenshots/look-*.png).
    for theme in ["light", "dark"] {
        ui.select(".theme select", theme).await;
        // Each page once what it loads is there.
        for (page, loaded) in [
            ("home", "[data-testid='steps']"),
            ("models", "main h1"),
            ("datasets", "[data-testid='datasets']"),
            ("labeling", "[data-testid='label-progress']"),
            ("train", "main h1"),
            ("runs", "[data-testid='runs']"),
            ("playground", "#play-run"),
        ] {
            ui.page(page).await;
            ui.css(loaded).await;
            ui.shot(&format!("look-{theme}-{page}")).await;
        }
    }
    ui.select(".theme select", "light").await;

    ui.client.close().await.ok();

    // The export works in `hone predict`.
    let model = exports.join("sentiment");
    let hone = target_dir().join("debug/hone");
    assert!(hone.is_file(), "the hone binary is built by the workspace");
    let out = Command::new(hone)
        .args(["predict", "--model"])
        .arg(&model)
        .args(["--json", "a gorgeous, witty movie"])
        .output()
        .expect("hone predict");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let predictions: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    // The classes were named at import: the export's id2label carries the names.
    let label = predictions[0]["label"].as_str().unwrap_or_default();
    assert!(["negative", "positive"].contains(&label), "{predictions}");
    // So does the ensemble made on Runs.
    let out = Command::new(target_dir().join("debug/hone"))
        .args(["predict", "--model"])
        .arg(exports.join("ensemble-2-1"))
        .args(["--json", "a gorgeous, witty movie"])
        .output()
        .expect("hone predict");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let predictions: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let label = predictions[0]["label"].as_str().unwrap_or_default();
    assert!(["negative", "positive"].contains(&label), "{predictions}");
}
