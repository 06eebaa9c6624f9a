-- What a person says of a run: tags to find and group runs by (a JSON array of strings) and
-- free-text notes; and a request to stop a run, set by a process that does not train it (the
-- window, `hone runs cancel`) and read by the one that does after each step.
ALTER TABLE runs ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';
ALTER TABLE runs ADD COLUMN notes TEXT;
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
