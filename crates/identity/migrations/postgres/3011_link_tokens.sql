-- Link tokens of the link method (verification and recovery), stored only as HMACs bound to their flow.
-- Several links may be outstanding for one flow (each "send" mails a new one); used_at makes each single-use.
CREATE TABLE selfservice_link_tokens (
    id TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX selfservice_link_tokens_flow_idx ON selfservice_link_tokens (flow_id);
