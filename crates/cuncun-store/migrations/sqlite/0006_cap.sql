-- CAP 1.2 import and export: per sending department (a department-sender account) its trusted
-- certificate and whether unsigned alerts are accepted; every CAP alert received (once per
-- sender + identifier) with its XML, the message it became, and each info block's texts.
CREATE TABLE cap_department (
    user_id         INTEGER PRIMARY KEY REFERENCES app_user(id),
    cert_pem        TEXT,                       -- trusted signing certificate (PEM); NULL: none
    accept_unsigned INTEGER NOT NULL DEFAULT 0, -- 1: unsigned alerts are accepted
    updated_ms      INTEGER NOT NULL
);

CREATE TABLE cap_alert (
    id            INTEGER PRIMARY KEY,
    sender        TEXT NOT NULL,
    identifier    TEXT NOT NULL,
    sent          TEXT NOT NULL,                -- as written in the alert
    msg_type      TEXT NOT NULL,                -- Alert | Update | Cancel | Ack | Error
    status        TEXT NOT NULL,                -- Actual | Exercise | System | Test | Draft
    refs          TEXT NOT NULL DEFAULT '',     -- the alert's <references>
    department_id INTEGER NOT NULL REFERENCES app_user(id),
    message_id    INTEGER REFERENCES eb_message(id),  -- NULL for Cancel
    signature     TEXT NOT NULL,                -- unsigned | valid | ...
    source        TEXT NOT NULL,                -- api | upload | feed:<url>
    xml           TEXT NOT NULL,
    outcome       TEXT NOT NULL DEFAULT '',     -- what the import did (cancelled messages, ...)
    received_ms   INTEGER NOT NULL,
    UNIQUE (sender, identifier)
);
CREATE INDEX cap_alert_message ON cap_alert(message_id);

CREATE TABLE cap_info (
    alert_id    INTEGER NOT NULL REFERENCES cap_alert(id),
    seq         INTEGER NOT NULL,
    language    TEXT NOT NULL,
    event       TEXT NOT NULL,
    headline    TEXT NOT NULL,
    description TEXT NOT NULL,
    instruction TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    PRIMARY KEY (alert_id, seq)
);
