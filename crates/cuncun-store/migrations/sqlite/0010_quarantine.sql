-- Terminal reports that were not stored (issue 14): refused at the edge (docs/TERMINAL_PROTOCOL.md,
-- "What a record may contain") or by the database. Kept for the operator to read, never retried,
-- so that one bad record cannot stall the ingest of every terminal.
CREATE TABLE terminal_quarantine (
    id      INTEGER PRIMARY KEY,
    ebrid   TEXT NOT NULL,              -- the terminal code as it came (control characters escaped)
    kind    TEXT NOT NULL,              -- hb | rcpt | log | status
    payload TEXT NOT NULL,              -- the record, control characters written as \u{..}, at most 4 KiB
    reason  TEXT NOT NULL,              -- the field and what is wrong, or the database's refusal
    at_ms   INTEGER NOT NULL
);
CREATE INDEX terminal_quarantine_at ON terminal_quarantine(at_ms);
