-- The courier's outbox: messages queued by flows, sent by the background worker.
-- status: queued | processing | sent | abandoned. Timestamps are Unix milliseconds.
CREATE TABLE courier_messages (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    template_type TEXT NOT NULL,
    send_count BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX courier_messages_due_idx ON courier_messages (status, next_attempt_at);
CREATE INDEX courier_messages_created_idx ON courier_messages (created_at, id);

CREATE TABLE courier_message_dispatches (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES courier_messages (id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX courier_message_dispatches_message_idx ON courier_message_dispatches (message_id, created_at);
