-- Indicators and reports: per-region targets (inherited down the tree), the county "nine haves"
-- checklist with evidence, the hamlet a terminal serves (hamlet coverage), and the outages that
-- opened a repair ticket (so a terminal that stays down opens one ticket, not one per check).
CREATE TABLE indicator_target (
    region_code   TEXT NOT NULL REFERENCES region(code),
    indicator     TEXT NOT NULL,
    target        DOUBLE PRECISION NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (region_code, indicator)
);

CREATE TABLE county_check (
    region_code   TEXT NOT NULL REFERENCES region(code),
    item          TEXT NOT NULL,
    status        TEXT NOT NULL,            -- missing | partial | done
    evidence      TEXT NOT NULL,
    file_name     TEXT,
    file_type     TEXT,
    file_bytes    BYTEA,
    updated_at_ms BIGINT NOT NULL,
    updated_by    TEXT NOT NULL,
    PRIMARY KEY (region_code, item)
);

ALTER TABLE eb_resource ADD COLUMN hamlet_id BIGINT REFERENCES hamlet(id);

-- Fault episodes seen by the repair loop: when a terminal was first seen reporting faults.
CREATE TABLE terminal_fault_watch (
    resource_id BIGINT PRIMARY KEY REFERENCES eb_resource(id),
    since_ms    BIGINT NOT NULL
);

-- One row per outage (offline since / faulty since) that opened a ticket.
CREATE TABLE outage_ticket (
    resource_id BIGINT NOT NULL REFERENCES eb_resource(id),
    episode_ms  BIGINT NOT NULL,
    kind        TEXT NOT NULL,              -- offline | fault
    ticket_id   BIGINT NOT NULL REFERENCES ticket(id),
    opened_at_ms BIGINT NOT NULL,
    PRIMARY KEY (resource_id, episode_ms, kind)
);
CREATE INDEX outage_ticket_ticket ON outage_ticket(ticket_id);
CREATE INDEX eb_message_created ON eb_message(created_at_ms);
CREATE INDEX care_visit_time ON care_visit(visited_at_ms);
