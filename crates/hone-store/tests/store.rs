//! The store on a real SQLite file: imports are all-or-nothing, labels keep their history,
//! splits are stored, runs move through their lifecycle, dead runs become `interrupted`.

use hone_store::{
    ExampleFilter, Label, NewDataset, NewExample, NewRun, Part, RunStatus, Store, StoreError, Task,
};

fn new_dataset(name: &str) -> NewDataset {
    NewDataset {
        name: name.into(),
        task: Task::Classification,
        source: "test.tsv".into(),
        format: "tsv".into(),
        columns: serde_json::json!({"text": "sentence", "label": "label"}),
        label_names: None,
    }
}

fn example(i: u64, label: Option<&str>) -> NewExample {
    NewExample {
        source_line: Some(i + 2),
        text: format!("text {i}"),
        label: label.map(|l| Label::Class(l.into())),
        ..Default::default()
    }
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hone.db")).unwrap();
    (dir, store)
}

#[test]
fn an_import_commits_all_rows_or_none() {
    let (_dir, mut store) = store();
    {
        let mut import = store.begin_import(&new_dataset("half"), false).unwrap();
        import.add(&example(0, Some("1"))).unwrap();
        import.add(&example(1, None)).unwrap();
        // dropped without finish: an error in the middle of a file
    }
    assert!(matches!(
        store.dataset("half"),
        Err(StoreError::NoDataset(_))
    ));

    let mut import = store.begin_import(&new_dataset("sst"), false).unwrap();
    for i in 0..10 {
        let label = match i % 3 {
            0 => None,
            1 => Some("10"),
            _ => Some("2"),
        };
        import.add(&example(i, label)).unwrap();
    }
    import.finish("abc", &["a warning".into()]).unwrap();
    let info = store.dataset("sst").unwrap();
    assert_eq!((info.rows, info.labeled), (10, 6));
    assert_eq!(
        info.label_names,
        ["2", "10"],
        "integer labels in numeric order"
    );
    assert_eq!(info.label_counts["2"], 3);
    assert_eq!(info.warnings, ["a warning"]);
    assert_eq!(info.fingerprint, "abc");
    assert!(matches!(
        store.begin_import(&new_dataset("sst"), false),
        Err(StoreError::DatasetExists(_))
    ));
    let unlabeled = store
        .examples(
            info.id,
            &ExampleFilter {
                labeled: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(unlabeled.len(), 4);
    assert_eq!(unlabeled[1].source_line, Some(5));
}

#[test]
fn labels_change_with_history_and_new_classes_join_the_label_set() {
    let (_dir, mut store) = store();
    let mut import = store.begin_import(&new_dataset("d"), false).unwrap();
    import.add(&example(0, Some("pos"))).unwrap();
    import.add(&example(1, None)).unwrap();
    let id = import.finish("f", &[]).unwrap();
    let rows = store.examples(id, &ExampleFilter::default()).unwrap();
    store
        .set_label(rows[1].id, Some(&Label::Class("neg".into())), "ana")
        .unwrap();
    store
        .set_label(rows[1].id, Some(&Label::Class("neutral".into())), "ben")
        .unwrap();
    store.set_label(rows[0].id, None, "ana").unwrap();
    let history = store.label_history(rows[1].id).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[1].previous.as_deref(), history[1].label.as_deref()),
        (Some("neg"), Some("neutral"))
    );
    assert_eq!(history[1].author, "ben");
    let info = store.dataset("d").unwrap();
    assert_eq!(info.label_names, ["pos", "neg", "neutral"]);
    assert_eq!(info.labeled, 1);
}

#[test]
fn a_class_renamed_keeps_its_id_and_relabels_its_examples_with_history() {
    let (_dir, mut store) = store();
    let mut import = store.begin_import(&new_dataset("d"), false).unwrap();
    for (i, label) in [Some("0"), Some("1"), Some("0"), None]
        .into_iter()
        .enumerate()
    {
        import.add(&example(i as u64, label)).unwrap();
    }
    let id = import.finish("f", &[]).unwrap();
    assert_eq!(store.rename_label("d", "0", "negative").unwrap(), 2);
    assert_eq!(store.rename_label("d", "1", " positive ").unwrap(), 1);
    let info = store.dataset("d").unwrap();
    assert_eq!(info.label_names, ["negative", "positive"], "ids kept");
    assert_eq!(info.label_counts["negative"], 2);
    let rows = store.examples(id, &ExampleFilter::default()).unwrap();
    assert_eq!(rows[2].label, Some(Label::Class("negative".into())));
    assert_eq!(rows[3].label, None, "unlabeled rows stay unlabeled");
    let history = store.label_history(rows[0].id).unwrap();
    assert_eq!(
        (
            history[0].previous.as_deref(),
            history[0].label.as_deref(),
            history[0].author.as_str()
        ),
        (Some("0"), Some("negative"), "rename")
    );
    for (old, new, says) in [
        (
            "negative",
            "positive",
            "already has a class named 'positive'",
        ),
        ("2", "two", "no class named '2'"),
        ("negative", "  ", "cannot be empty"),
    ] {
        let e = store.rename_label("d", old, new).unwrap_err().to_string();
        assert!(e.contains(says), "{e}");
    }
    assert_eq!(
        store.dataset("d").unwrap().label_names,
        ["negative", "positive"]
    );
}

#[test]
fn splits_are_stored_and_filter_examples() {
    let (_dir, mut store) = store();
    let mut import = store.begin_import(&new_dataset("d"), false).unwrap();
    for i in 0..6 {
        import.add(&example(i, Some("a"))).unwrap();
    }
    let id = import.finish("f", &[]).unwrap();
    let rows = store.examples(id, &ExampleFilter::default()).unwrap();
    let members: Vec<(i64, Part)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                r.id,
                [
                    Part::Train,
                    Part::Train,
                    Part::Train,
                    Part::Train,
                    Part::Validation,
                    Part::Test,
                ][i],
            )
        })
        .collect();
    let split = store
        .save_split(
            id,
            "default",
            "stratified",
            Some(7),
            &serde_json::json!({}),
            &members,
        )
        .unwrap();
    let info = store.split(id, "default").unwrap().unwrap();
    assert_eq!(
        (info.train, info.validation, info.test, info.seed),
        (4, 1, 1, Some(7))
    );
    let valid = store
        .examples(
            id,
            &ExampleFilter {
                part: Some((split, Part::Validation)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(valid.len(), 1);
    assert_eq!(valid[0].id, rows[4].id);
    // Counts follow the same filter, whatever page is asked for.
    let count = |filter: ExampleFilter| store.count_examples(id, &filter).unwrap();
    assert_eq!(count(ExampleFilter::default()), rows.len() as i64);
    assert_eq!(
        count(ExampleFilter {
            part: Some((split, Part::Train)),
            offset: 3,
            limit: Some(1),
            ..Default::default()
        }),
        4
    );
    let needle = rows[2].text.clone();
    assert_eq!(
        count(ExampleFilter {
            text_contains: Some(needle),
            ..Default::default()
        }),
        1
    );
    assert_eq!(store.dataset("d").unwrap().splits, ["default"]);
    store.delete_dataset("d").unwrap();
    assert!(store.split(id, "default").unwrap().is_none());
}

#[test]
fn a_run_moves_through_its_life_and_keeps_its_records() {
    let (_dir, mut store) = store();
    let run = store
        .create_run(&NewRun {
            name: Some("first".into()),
            config: serde_json::json!({"lr": 5e-5}),
            dataset_id: None,
            split_id: None,
            model_fingerprint: Some("m".into()),
            dataset_fingerprint: Some("d".into()),
            hardware: serde_json::json!({"device": "cpu"}),
            run_dir: "/tmp/run".into(),
        })
        .unwrap();
    assert_eq!(store.run(run).unwrap().status, RunStatus::Queued);
    store.start_run(run, 4242, Some(1), 10).unwrap();
    store
        .record_step(
            run,
            1,
            0.1,
            &[("loss", 0.7), ("lr", 1e-5), ("grad_norm", f64::NAN)],
        )
        .unwrap();
    store.record_step(run, 2, 0.2, &[("loss", 0.6)]).unwrap();
    store.record_step(run, 2, 0.2, &[("loss", 0.6)]).unwrap();
    store
        .record_evaluation(
            run,
            2,
            0.2,
            "validation",
            &serde_json::json!({"accuracy": 0.5}),
            None,
            &[("eval_accuracy", 0.5)],
        )
        .unwrap();
    // Sample answers: a step recorded twice keeps its second answers, in the prompts' order.
    store
        .record_samples(run, 2, &[("hi", "first", 1), ("bye", "x", 1)])
        .unwrap();
    store
        .record_samples(run, 2, &[("hi", "hello there", 2), ("bye", "farewell", 1)])
        .unwrap();
    store.record_samples(run, 4, &[("hi", "hello", 1)]).unwrap();
    let samples = store.samples(run).unwrap();
    let seen: Vec<(i64, &str, &str)> = samples
        .iter()
        .map(|s| (s.step, s.prompt.as_str(), s.answer.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (2, "hi", "hello there"),
            (2, "bye", "farewell"),
            (4, "hi", "hello")
        ]
    );
    store
        .record_artifact(run, "checkpoint_last", "/tmp/run/last", Some(2))
        .unwrap();
    store
        .record_artifact(run, "checkpoint_last", "/tmp/run/last", Some(4))
        .unwrap();
    // Tags, notes and a stop request from another process.
    store
        .set_run_tags(run, &["baseline".into(), "sst2".into()])
        .unwrap();
    store.set_run_notes(run, Some("lr too high?")).unwrap();
    assert!(!store.cancel_requested(run).unwrap());
    assert!(store.request_cancel(run).unwrap());
    let r = store.run(run).unwrap();
    assert_eq!(r.tags, ["baseline", "sst2"]);
    assert_eq!(r.notes.as_deref(), Some("lr too high?"));
    assert!(r.cancel_requested && store.cancel_requested(run).unwrap());
    assert!(matches!(
        store.set_run_tags(999, &[]),
        Err(StoreError::NoRun(999))
    ));
    let interrupted = store.mark_interrupted(|pid, _| pid == 4242).unwrap();
    assert!(interrupted.is_empty(), "a live process keeps its run");
    let interrupted = store.mark_interrupted(|_, _| false).unwrap();
    assert_eq!(interrupted, [run]);
    let r = store.run(run).unwrap();
    assert_eq!((r.status, r.step), (RunStatus::Interrupted, 2));
    let error = r.error.unwrap();
    assert!(error.contains("resume"));
    // Shown in the window beside its Resume button too: no command-line wording.
    assert!(!error.contains("hone "), "{error}");
    assert!(
        !store.cancel_requested(run).unwrap(),
        "an ended run's request is gone"
    );
    // A stop asked while the run starts (its data still being read; the start is recorded
    // again once the step count is known) is kept; ending the run (here its process dying)
    // forgets it, and a finished run takes none.
    store.start_run(run, 4242, Some(1), 0).unwrap();
    assert!(store.request_cancel(run).unwrap());
    store.start_run(run, 4242, Some(1), 10).unwrap();
    assert!(
        store.cancel_requested(run).unwrap(),
        "a start keeps the request"
    );
    store.mark_interrupted(|_, _| false).unwrap();
    assert!(!store.cancel_requested(run).unwrap());
    store.start_run(run, 4343, None, 10).unwrap();
    assert!(store.request_cancel(run).unwrap());
    store
        .finish_run(
            run,
            RunStatus::Completed,
            None,
            Some(&serde_json::json!({"accuracy": 0.9})),
        )
        .unwrap();
    let r = store.run(run).unwrap();
    assert_eq!(r.status, RunStatus::Completed);
    assert!(
        !r.cancel_requested,
        "the end of a run clears its stop request"
    );
    assert!(!store.request_cancel(run).unwrap());
    assert_eq!(r.tags, ["baseline", "sst2"], "tags outlive the run's end");
    assert!(r.error.is_none() && r.finished_at.is_some());
    assert_eq!(r.final_metrics.unwrap()["accuracy"], 0.9);
    let metrics = store.metrics(run).unwrap();
    assert_eq!(
        metrics.len(),
        4,
        "NaN values are skipped, repeated steps replace: {metrics:?}"
    );
    assert_eq!(store.evaluations(run).unwrap().len(), 1);
    let artifacts = store.artifacts(run).unwrap();
    assert_eq!(artifacts.len(), 1);
    assert_eq!(artifacts[0].step, Some(4));
    assert_eq!(store.runs().unwrap().len(), 1);
    store.delete_run(run).unwrap();
    assert!(store.metrics(run).unwrap().is_empty());
    assert!(matches!(store.run(run), Err(StoreError::NoRun(_))));
}

#[test]
fn token_classification_examples_keep_tokens_and_tags() {
    let (_dir, mut store) = store();
    let mut nd = new_dataset("ner");
    nd.task = Task::TokenClassification;
    let mut import = store.begin_import(&nd, false).unwrap();
    import
        .add(&NewExample {
            source_line: Some(1),
            text: "EU rejects German call".into(),
            tokens: Some(vec![
                "EU".into(),
                "rejects".into(),
                "German".into(),
                "call".into(),
            ]),
            label: Some(Label::Tags(vec![
                "B-ORG".into(),
                "O".into(),
                "B-MISC".into(),
                "O".into(),
            ])),
            ..Default::default()
        })
        .unwrap();
    let id = import.finish("f", &[]).unwrap();
    let rows = store.examples(id, &ExampleFilter::default()).unwrap();
    assert_eq!(rows[0].tokens.as_ref().unwrap().len(), 4);
    assert_eq!(
        rows[0].label,
        Some(Label::Tags(vec![
            "B-ORG".into(),
            "O".into(),
            "B-MISC".into(),
            "O".into()
        ]))
    );
    let info = store.dataset("ner").unwrap();
    assert_eq!(info.label_counts["O"], 2);
    assert_eq!(info.label_names, ["B-MISC", "B-ORG", "O"]);
}

/// Two connections writing at once (the desktop app labeling while a run records its steps):
/// a label written while another connection holds the write lock waits for it and succeeds. A
/// deferred transaction (read, then write) failed here at once with "database is locked" when
/// the other writer committed during the wait.
#[test]
fn a_label_written_while_another_connection_writes_waits_instead_of_failing() {
    let (dir, mut store) = store();
    let mut import = store.begin_import(&new_dataset("d"), false).unwrap();
    import.add(&example(0, Some("pos"))).unwrap();
    import.add(&example(1, None)).unwrap();
    let id = import.finish("f", &[]).unwrap();
    let row = store.examples(id, &ExampleFilter::default()).unwrap()[1].id;
    let path = dir.path().join("hone.db");
    let (locked, wait_for_lock) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut other = Store::open(&path).unwrap();
        let mut import = other.begin_import(&new_dataset("other"), false).unwrap();
        import.add(&example(0, Some("x"))).unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        import.finish("g", &[]).unwrap();
    });
    wait_for_lock.recv().unwrap();
    store
        .set_label(row, Some(&Label::Class("neg".into())), "ana")
        .unwrap();
    writer.join().unwrap();
    assert_eq!(store.dataset("d").unwrap().labeled, 2);
    assert_eq!(store.dataset("other").unwrap().rows, 1);
}
