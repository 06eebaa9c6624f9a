-- Where runs execute besides this machine: compute targets (a Slurm cluster on this host or
-- reached over SSH), configured once by name; and, for a run handed to one, where it went
-- (the target, the scheduler's job id, its folder there, how much of its event log was read).
CREATE TABLE compute_targets (
    name          TEXT PRIMARY KEY,
    settings_json TEXT NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
ALTER TABLE runs ADD COLUMN remote_json TEXT;
