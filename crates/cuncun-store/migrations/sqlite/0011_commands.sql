-- Commands tracked per terminal until the terminal receipts them (issue 13): a cancel (and, to
-- come, stop and the other commands that change what a terminal plays) is one row per target,
-- written in the same transaction as the cancellation, re-sent on the terminal's own topic with
-- backoff and on every (re)connect until its receipt arrives or it no longer matters.
CREATE TABLE eb_command (
    id            INTEGER PRIMARY KEY,
    resource_id   INTEGER NOT NULL REFERENCES eb_resource(id),
    kind          TEXT NOT NULL,            -- cancel | stop
    message_id    INTEGER REFERENCES eb_message(id), -- cancel: the cancelled message
    created_at_ms INTEGER NOT NULL,
    until_ms      INTEGER NOT NULL,         -- not sent after this (a cancel: the message's end)
    sends         INTEGER NOT NULL DEFAULT 0,
    conn_sends    INTEGER NOT NULL DEFAULT 0, -- sends on the terminal's connection of last_sent_ms
    last_sent_ms  INTEGER,
    done_ms       INTEGER                   -- when the terminal receipted it
);
CREATE INDEX eb_command_open ON eb_command(done_ms, resource_id);
CREATE UNIQUE INDEX eb_command_cancel ON eb_command(message_id, resource_id) WHERE kind = 'cancel';

-- Re-sends are limited per connection, never over a delivery's lifetime.
ALTER TABLE eb_delivery ADD COLUMN conn_sends INTEGER NOT NULL DEFAULT 0;
