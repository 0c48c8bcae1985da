-- Secrets generated on first start (cookie signing, cipher keys) and shared by every node.
CREATE TABLE IF NOT EXISTS portcullis_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
