-- The alert workflow of the application layer (issue 12): validity that starts on approval, the
-- parent platform a message came from, every step with who took it and why, and what each
-- department may send.
ALTER TABLE eb_message ADD COLUMN start_on_approval INTEGER NOT NULL DEFAULT 0;
ALTER TABLE eb_message ADD COLUMN from_peer TEXT;
UPDATE eb_message SET from_peer = (SELECT peer FROM ebd_received_ebm r WHERE r.message_id = eb_message.id);

CREATE TABLE eb_message_step (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES eb_message(id),
    step        TEXT NOT NULL,              -- compose | edit | submit | approve | send_back | cancel | supersede | receive | dispatch | complete | expire
    status      TEXT NOT NULL,              -- the status after the step
    actor       TEXT NOT NULL,              -- as in the audit log
    user_id     INTEGER,
    reason      TEXT NOT NULL DEFAULT '',
    at_ms       INTEGER NOT NULL
);
CREATE INDEX eb_message_step_message ON eb_message_step(message_id, id);

CREATE TABLE department_grant (
    user_id       INTEGER PRIMARY KEY REFERENCES app_user(id),
    event_types   TEXT NOT NULL,            -- comma-separated event codes or prefixes, e.g. 11B
    regions       TEXT NOT NULL,            -- comma-separated 12-digit region codes
    updated_at_ms INTEGER NOT NULL
);
