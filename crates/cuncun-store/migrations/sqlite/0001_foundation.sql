-- Foundation: regions, hamlets, users, sessions, the audit chain, and the registry tables the
-- demo county fills (households, stewards, outlets, terminals). Times are UTC epoch milliseconds.
CREATE TABLE region (
    code        TEXT PRIMARY KEY,          -- 12-digit padded statistical code
    name        TEXT NOT NULL,
    level       INTEGER NOT NULL,          -- 1 province .. 5 village
    parent_code TEXT
);
CREATE INDEX region_parent ON region(parent_code);
CREATE INDEX region_level_code ON region(level, code);

CREATE TABLE hamlet (
    id           INTEGER PRIMARY KEY,
    village_code TEXT NOT NULL REFERENCES region(code),
    name         TEXT NOT NULL,
    households   INTEGER NOT NULL,
    population   INTEGER NOT NULL,
    UNIQUE (village_code, name)
);

CREATE TABLE app_user (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    region_code   TEXT NOT NULL REFERENCES region(code),
    phone         TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX app_user_region ON app_user(region_code);

CREATE TABLE session (
    token_hash    TEXT PRIMARY KEY,        -- SHA-256 of the bearer/cookie token; the token is never stored
    user_id       INTEGER NOT NULL REFERENCES app_user(id),
    kind          TEXT NOT NULL,           -- web | api
    csrf_token    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER,
    client        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX session_by_user ON session(user_id);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY,
    at_ms     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    entity    TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    before    TEXT NOT NULL,
    after     TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE household (
    id             INTEGER PRIMARY KEY,
    village_code   TEXT NOT NULL REFERENCES region(code),
    hamlet         TEXT,
    head_name      TEXT NOT NULL,
    phone          TEXT NOT NULL,
    address        TEXT NOT NULL,
    members        INTEGER NOT NULL,
    coverage_modes TEXT NOT NULL,
    hd             INTEGER NOT NULL,
    fibre          INTEGER NOT NULL,
    care_elderly   INTEGER NOT NULL,
    care_children  INTEGER NOT NULL,
    care_disabled  INTEGER NOT NULL
);
-- Covering index: the dashboard counts households and sums members by region range.
CREATE INDEX household_village ON household(village_code, members);

CREATE TABLE steward (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    phone       TEXT NOT NULL,
    region_code TEXT NOT NULL REFERENCES region(code),
    user_id     INTEGER REFERENCES app_user(id)
);
CREATE INDEX steward_region ON steward(region_code);
CREATE TABLE steward_village (
    steward_id   INTEGER NOT NULL REFERENCES steward(id),
    village_code TEXT NOT NULL REFERENCES region(code),
    PRIMARY KEY (steward_id, village_code)
);
CREATE INDEX steward_village_village ON steward_village(village_code);

CREATE TABLE outlet (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    region_code TEXT NOT NULL REFERENCES region(code),
    name        TEXT NOT NULL,
    address     TEXT NOT NULL,
    phone       TEXT NOT NULL,
    hotline     TEXT NOT NULL
);
CREATE INDEX outlet_region ON outlet(region_code);

CREATE TABLE terminal (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    region_code TEXT NOT NULL REFERENCES region(code),
    name        TEXT NOT NULL,
    vendor      TEXT NOT NULL,
    model       TEXT NOT NULL,
    lon         REAL,
    lat         REAL
);
CREATE INDEX terminal_region ON terminal(region_code);
