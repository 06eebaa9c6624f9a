-- Hone's schema, version 1. Timestamps are UTC ISO-8601 text written by SQLite.

CREATE TABLE models (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('local', 'hub')),
    path         TEXT NOT NULL UNIQUE,
    repo_id      TEXT,
    revision     TEXT,
    model_type   TEXT,
    fingerprint  TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL DEFAULT 0,
    added_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE datasets (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    task         TEXT NOT NULL CHECK (task IN ('classification', 'token_classification')),
    source       TEXT NOT NULL,
    format       TEXT NOT NULL,
    columns_json TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    warnings_json TEXT NOT NULL DEFAULT '[]',
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Class names (or entity tags) of a dataset, id = position.
CREATE TABLE label_names (
    dataset_id   INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    label_id     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    PRIMARY KEY (dataset_id, label_id),
    UNIQUE (dataset_id, name)
);

CREATE TABLE examples (
    id           INTEGER PRIMARY KEY,
    dataset_id   INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    source_line  INTEGER,
    text         TEXT NOT NULL,
    text_pair    TEXT,
    -- JSON array of tokens (token classification)
    tokens_json  TEXT,
    -- The current label: a class name, or a JSON array of tags; NULL when unlabeled.
    label        TEXT,
    -- The split part the source gave ('train', 'validation', 'test'), if any.
    given_part   TEXT CHECK (given_part IN ('train', 'validation', 'test')),
    UNIQUE (dataset_id, position)
);

-- Every label change after import: who, when, what it was.
CREATE TABLE label_history (
    id           INTEGER PRIMARY KEY,
    example_id   INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
    previous     TEXT,
    label        TEXT,
    author       TEXT NOT NULL,
    changed_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX label_history_example ON label_history (example_id, id);

CREATE TABLE splits (
    id           INTEGER PRIMARY KEY,
    dataset_id   INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    method       TEXT NOT NULL,
    seed         INTEGER,
    settings_json TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (dataset_id, name)
);

CREATE TABLE split_members (
    split_id     INTEGER NOT NULL REFERENCES splits(id) ON DELETE CASCADE,
    example_id   INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
    part         TEXT NOT NULL CHECK (part IN ('train', 'validation', 'test')),
    PRIMARY KEY (split_id, example_id)
) WITHOUT ROWID;

CREATE TABLE runs (
    id           INTEGER PRIMARY KEY,
    name         TEXT,
    status       TEXT NOT NULL CHECK (status IN
                   ('queued', 'running', 'completed', 'failed', 'cancelled', 'interrupted')),
    config_json  TEXT NOT NULL,
    dataset_id   INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
    split_id     INTEGER REFERENCES splits(id) ON DELETE SET NULL,
    model_fingerprint   TEXT,
    dataset_fingerprint TEXT,
    hardware_json TEXT,
    run_dir      TEXT NOT NULL,
    error        TEXT,
    pid          INTEGER,
    pid_started  INTEGER,
    step         INTEGER NOT NULL DEFAULT 0,
    total_steps  INTEGER,
    final_metrics_json TEXT,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    started_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE metrics (
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step         INTEGER NOT NULL,
    epoch        REAL,
    name         TEXT NOT NULL,
    value        REAL NOT NULL,
    recorded_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (run_id, name, step)
) WITHOUT ROWID;

CREATE TABLE evaluations (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step         INTEGER NOT NULL,
    epoch        REAL,
    part         TEXT NOT NULL,
    report_json  TEXT NOT NULL,
    predictions_json TEXT,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (run_id, step, part)
);

CREATE TABLE artifacts (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    path         TEXT NOT NULL,
    step         INTEGER,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (run_id, kind)
);
