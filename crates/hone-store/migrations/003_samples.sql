-- What a causal-LM run answered to its fixed prompts at each evaluation (`sample_prompts`):
-- one row per prompt and evaluation step, in the order the prompts were given.
CREATE TABLE samples (
    id           INTEGER PRIMARY KEY,
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step         INTEGER NOT NULL,
    position     INTEGER NOT NULL,
    prompt       TEXT NOT NULL,
    answer       TEXT NOT NULL,
    tokens       INTEGER NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (run_id, step, position)
);
CREATE INDEX samples_by_run ON samples (run_id, step);
