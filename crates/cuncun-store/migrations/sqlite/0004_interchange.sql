-- Interchange with upper and lower platforms (EBD): a durable outbox of signed packages, the log
-- of what came in, each peer's link state, messages received from a parent, messages forwarded
-- to children, and the state children report back.
ALTER TABLE eb_resource ADD COLUMN updated_at_ms INTEGER;

CREATE TABLE ebd_outbox (
    id              INTEGER PRIMARY KEY,
    peer            TEXT NOT NULL,              -- the peer's resource code (EBRID)
    ebdid           TEXT NOT NULL UNIQUE,
    ebd_type        TEXT NOT NULL,
    package         BLOB NOT NULL,              -- the EBDT tar as sent
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    created_ms      INTEGER NOT NULL,
    done_ms         INTEGER,
    result_code     INTEGER,
    last_error      TEXT
);
CREATE INDEX ebd_outbox_due ON ebd_outbox(done_ms, next_attempt_ms);

CREATE TABLE ebd_inbox (
    id          INTEGER PRIMARY KEY,
    ebdid       TEXT NOT NULL,
    ebd_type    TEXT NOT NULL,
    src_ebrid   TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    result_code INTEGER NOT NULL,
    result_desc TEXT NOT NULL
);
CREATE INDEX ebd_inbox_time ON ebd_inbox(received_ms);

CREATE TABLE ebd_peer_state (
    peer           TEXT PRIMARY KEY,
    link           TEXT NOT NULL,               -- up | down | unknown
    changed_ms     INTEGER NOT NULL,
    last_ok_ms     INTEGER,
    last_error     TEXT,
    last_report_ms INTEGER                      -- end of the last report pushed to this peer
);

-- An EBM from a parent and the local message it became (one per EBMID, however often it comes).
CREATE TABLE ebd_received_ebm (
    ebmid      TEXT PRIMARY KEY,
    peer       TEXT NOT NULL,
    message_id INTEGER NOT NULL REFERENCES eb_message(id),
    last_state INTEGER NOT NULL DEFAULT 0,
    reported_ms INTEGER
);

-- A local message sent on to a child, and what the child reports of it.
CREATE TABLE ebd_forwarded (
    message_id    INTEGER NOT NULL REFERENCES eb_message(id),
    peer          TEXT NOT NULL,
    ebdid         TEXT NOT NULL,
    brd_state     INTEGER,
    coverage_rate TEXT,
    reported_ms   INTEGER,
    PRIMARY KEY (message_id, peer)
);
