-- Emergency broadcast network: resources with national codes and credentials, terminal status and
-- connection history, messages (EBM), per-terminal delivery, the dispatch outbox, broadcast logs.
-- The pre-release `terminal` table of 0001 is replaced by eb_resource (no deployment held data).
DROP TABLE terminal;

CREATE TABLE eb_resource (
    id            INTEGER PRIMARY KEY,
    ebrid         TEXT NOT NULL UNIQUE,     -- 23-digit resource code
    kind          TEXT NOT NULL,            -- platform, front_end, adapter, outdoor_loudspeaker, ...
    region_code   TEXT NOT NULL REFERENCES region(code),
    name          TEXT NOT NULL,
    vendor        TEXT NOT NULL DEFAULT '',
    model         TEXT NOT NULL DEFAULT '',
    lon           REAL,
    lat           REAL,
    install_date  TEXT NOT NULL DEFAULT '',
    secret_hash   TEXT NOT NULL DEFAULT '', -- SHA-256 of the device secret; '' = cannot connect
    retired_at_ms INTEGER,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX eb_resource_region ON eb_resource(region_code, kind);

CREATE TABLE terminal_status (
    resource_id  INTEGER PRIMARY KEY REFERENCES eb_resource(id),
    online       INTEGER NOT NULL,
    changed_ms   INTEGER NOT NULL,          -- when `online` last changed
    last_seen_ms INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'idle',
    volume       INTEGER NOT NULL DEFAULT 0,
    task         TEXT,
    faults       TEXT NOT NULL DEFAULT ''
);

-- One row per connection: [from_ms, to_ms); to_ms NULL while connected. The online rate is
-- computed from these (docs/INDICATORS.md).
CREATE TABLE terminal_online (
    resource_id INTEGER NOT NULL REFERENCES eb_resource(id),
    from_ms     INTEGER NOT NULL,
    to_ms       INTEGER
);
CREATE INDEX terminal_online_resource ON terminal_online(resource_id, from_ms);

CREATE TABLE eb_sequence (
    day TEXT PRIMARY KEY,                   -- YYYYMMDD (Beijing)
    n   INTEGER NOT NULL
);

CREATE TABLE eb_message (
    id              INTEGER PRIMARY KEY,
    ebmid           TEXT NOT NULL UNIQUE,
    msg_type        TEXT NOT NULL,          -- broadcast | cancel
    related_ebmid   TEXT,
    priority        TEXT NOT NULL,          -- emergency | routine
    drill           INTEGER NOT NULL DEFAULT 0,
    event_type      TEXT NOT NULL,
    severity        INTEGER NOT NULL,
    title           TEXT NOT NULL,
    body            TEXT NOT NULL,
    lang            TEXT NOT NULL DEFAULT 'zho',
    audio_sha256    TEXT,
    audio_size      INTEGER,
    areas           TEXT NOT NULL,          -- comma-separated 12-digit region codes
    start_ms        INTEGER NOT NULL,
    end_ms          INTEGER NOT NULL,
    repeat_count    INTEGER NOT NULL,
    volume          INTEGER,
    status          TEXT NOT NULL,
    source          TEXT NOT NULL,          -- local | cap | parent
    owner_region    TEXT NOT NULL,          -- the author's region: who may see and act on it
    author_id       INTEGER,
    approver_id     INTEGER,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL,
    approved_at_ms  INTEGER,
    completed_at_ms INTEGER
);
CREATE INDEX eb_message_status ON eb_message(status, end_ms);

CREATE TABLE eb_message_terminal (
    message_id  INTEGER NOT NULL REFERENCES eb_message(id),
    resource_id INTEGER NOT NULL REFERENCES eb_resource(id),
    PRIMARY KEY (message_id, resource_id)
);

-- The targets of an approved message, fixed at approval, with each terminal's progress.
CREATE TABLE eb_delivery (
    message_id    INTEGER NOT NULL REFERENCES eb_message(id),
    resource_id   INTEGER NOT NULL REFERENCES eb_resource(id),
    stage         INTEGER NOT NULL DEFAULT 0,  -- 0 pending, 1 received, 2 started, 3 finished, 4 failed
    received_ms   INTEGER,
    started_ms    INTEGER,
    finished_ms   INTEGER,
    failed_reason TEXT,
    sends         INTEGER NOT NULL DEFAULT 0,
    last_sent_ms  INTEGER,
    PRIMARY KEY (message_id, resource_id)
);
CREATE INDEX eb_delivery_resource ON eb_delivery(resource_id, stage);

-- Written in the approving transaction; the dispatcher works it off and marks it done, so an
-- approved message is published even if the process dies in between.
CREATE TABLE eb_outbox (
    id            INTEGER PRIMARY KEY,
    message_id    INTEGER NOT NULL REFERENCES eb_message(id),
    action        TEXT NOT NULL,            -- dispatch | cancel
    created_at_ms INTEGER NOT NULL,
    done_at_ms    INTEGER
);
CREATE INDEX eb_outbox_pending ON eb_outbox(done_at_ms);

CREATE TABLE eb_broadcast_log (
    id          INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES eb_resource(id),
    ebmid       TEXT NOT NULL,
    source      TEXT NOT NULL,
    start_ms    INTEGER NOT NULL,
    end_ms      INTEGER NOT NULL,
    volume      INTEGER NOT NULL,
    result      TEXT,
    at_ms       INTEGER NOT NULL
);
CREATE INDEX eb_broadcast_log_resource ON eb_broadcast_log(resource_id, start_ms);
