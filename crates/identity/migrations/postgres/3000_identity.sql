-- Identities, credentials, addresses, sessions, self-service flows and flow errors.
-- Timestamps are Unix milliseconds (BIGINT), flags 0/1 (BIGINT), JSON documents TEXT.
CREATE TABLE identities (
    id TEXT PRIMARY KEY,
    schema_id TEXT NOT NULL,
    state TEXT NOT NULL,
    traits TEXT NOT NULL,
    metadata_public TEXT,
    metadata_admin TEXT,
    external_id TEXT UNIQUE,
    state_changed_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX identities_created_at_idx ON identities (created_at, id);

CREATE TABLE identity_credentials (
    id TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    config TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (identity_id, type)
);

CREATE TABLE identity_credential_identifiers (
    id TEXT PRIMARY KEY,
    credential_id TEXT NOT NULL REFERENCES identity_credentials (id) ON DELETE CASCADE,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    type TEXT NOT NULL,
    identifier TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (type, identifier)
);
CREATE INDEX identity_credential_identifiers_identity_idx ON identity_credential_identifiers (identity_id);

CREATE TABLE identity_verifiable_addresses (
    id TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    via TEXT NOT NULL,
    value TEXT NOT NULL,
    verified BIGINT NOT NULL,
    verified_at BIGINT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (via, value)
);
CREATE INDEX identity_verifiable_addresses_identity_idx ON identity_verifiable_addresses (identity_id);

CREATE TABLE identity_recovery_addresses (
    id TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    via TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (via, value)
);
CREATE INDEX identity_recovery_addresses_identity_idx ON identity_recovery_addresses (identity_id);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    logout_token_hash TEXT NOT NULL UNIQUE,
    active BIGINT NOT NULL,
    aal TEXT NOT NULL,
    authentication_methods TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    authenticated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sessions_identity_idx ON sessions (identity_id);

CREATE TABLE session_devices (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    ip_address TEXT,
    user_agent TEXT,
    location TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX session_devices_session_idx ON session_devices (session_id);

CREATE TABLE selfservice_flows (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    request_url TEXT NOT NULL,
    return_to TEXT,
    active_method TEXT,
    identity_schema TEXT,
    refresh BIGINT NOT NULL,
    ui TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX selfservice_flows_expires_idx ON selfservice_flows (expires_at);

CREATE TABLE selfservice_errors (
    id TEXT PRIMARY KEY,
    error TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
