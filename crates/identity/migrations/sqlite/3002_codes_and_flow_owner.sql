-- Settings flows belong to an identity (identity_id). One-time codes of the code method (verification and recovery), stored only as HMACs.
-- A code belongs to one flow; used_at is set when it is redeemed. Flows count submissions so
-- a code cannot be guessed by trying (selfservice.methods.code.config.max_submissions).
CREATE TABLE selfservice_codes (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX selfservice_codes_flow_idx ON selfservice_codes (flow_id);

ALTER TABLE selfservice_flows ADD COLUMN submit_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE selfservice_flows ADD COLUMN identity_id TEXT;
