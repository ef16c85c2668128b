-- Service network: household registry fields, outlet published information and the township
-- "nine ones" checklist, repair tickets with their events and photos, special-care visits.
-- Times are UTC epoch milliseconds.
ALTER TABLE household ADD COLUMN fee_waiver TEXT NOT NULL DEFAULT 'none';
ALTER TABLE household ADD COLUMN fee_waiver_evidence TEXT NOT NULL DEFAULT '';
ALTER TABLE household ADD COLUMN fee_waiver_until TEXT NOT NULL DEFAULT '';
ALTER TABLE household ADD COLUMN updated_at_ms INTEGER NOT NULL DEFAULT 0;
-- Special-care households by region (visit plans).
CREATE INDEX household_care ON household(village_code) WHERE care_elderly + care_children + care_disabled > 0;

ALTER TABLE outlet ADD COLUMN service_scope TEXT NOT NULL DEFAULT '';
ALTER TABLE outlet ADD COLUMN process TEXT NOT NULL DEFAULT '';
-- The outlet head: tickets near their deadline escalate to this user.
ALTER TABLE outlet ADD COLUMN head_user_id INTEGER REFERENCES app_user(id);
ALTER TABLE outlet ADD COLUMN updated_at_ms INTEGER NOT NULL DEFAULT 0;

CREATE INDEX steward_user ON steward(user_id);

CREATE TABLE outlet_check (
    outlet_id     INTEGER NOT NULL REFERENCES outlet(id),
    item          TEXT NOT NULL,
    done          INTEGER NOT NULL,
    evidence      TEXT NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (outlet_id, item)
);

CREATE TABLE ticket (
    id                 INTEGER PRIMARY KEY,
    kind               TEXT NOT NULL,           -- repair | complaint
    source             TEXT NOT NULL,           -- public | phone | walk_in | terminal
    category           TEXT NOT NULL,
    village_code       TEXT NOT NULL REFERENCES region(code),
    household_id       INTEGER REFERENCES household(id),
    reporter_name      TEXT NOT NULL,
    reporter_phone     TEXT NOT NULL,
    address            TEXT NOT NULL,
    description        TEXT NOT NULL,
    status             TEXT NOT NULL,
    steward_id         INTEGER REFERENCES steward(id),
    created_at_ms      INTEGER NOT NULL,
    deadline_ms        INTEGER NOT NULL,
    assigned_at_ms     INTEGER,
    accepted_at_ms     INTEGER,
    on_site_at_ms      INTEGER,
    resolved_at_ms     INTEGER,
    confirmed_at_ms    INTEGER,
    cancelled_at_ms    INTEGER,
    escalated_at_ms    INTEGER,
    escalated_to       INTEGER REFERENCES app_user(id),
    rating             INTEGER,
    resolution_note    TEXT NOT NULL DEFAULT '',
    confirm_token_hash TEXT,
    terminal_ebrid     TEXT,
    dedupe_key         TEXT,
    reopen_count       INTEGER NOT NULL DEFAULT 0,
    updated_at_ms      INTEGER NOT NULL
);
CREATE INDEX ticket_village_created ON ticket(village_code, created_at_ms);
CREATE INDEX ticket_created ON ticket(created_at_ms);
CREATE INDEX ticket_open_deadline ON ticket(deadline_ms) WHERE status IN ('new','assigned','on_site','reopened');
CREATE INDEX ticket_steward ON ticket(steward_id, status);
CREATE INDEX ticket_confirm ON ticket(confirm_token_hash);
-- A terminal (or any other deduplicated source) has at most one open ticket.
CREATE UNIQUE INDEX ticket_open_dedupe ON ticket(dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('new','assigned','on_site','reopened');

CREATE TABLE ticket_event (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES ticket(id),
    at_ms       INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status   TEXT NOT NULL,
    note        TEXT NOT NULL
);
CREATE INDEX ticket_event_ticket ON ticket_event(ticket_id, id);

CREATE TABLE ticket_photo (
    id           INTEGER PRIMARY KEY,
    ticket_id    INTEGER NOT NULL REFERENCES ticket(id),
    at_ms        INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    content_type TEXT NOT NULL,
    bytes        BLOB NOT NULL
);
CREATE INDEX ticket_photo_ticket ON ticket_photo(ticket_id);

CREATE TABLE care_visit (
    id            INTEGER PRIMARY KEY,
    household_id  INTEGER NOT NULL REFERENCES household(id),
    village_code  TEXT NOT NULL REFERENCES region(code),
    steward_id    INTEGER REFERENCES steward(id),
    year          INTEGER NOT NULL,
    visited_at_ms INTEGER NOT NULL,
    note          TEXT NOT NULL,
    recorded_by   TEXT NOT NULL
);
CREATE INDEX care_visit_region ON care_visit(year, village_code, household_id);
CREATE INDEX care_visit_household ON care_visit(household_id, year);
