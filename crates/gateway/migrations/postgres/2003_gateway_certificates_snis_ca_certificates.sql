-- Certificates, SNIs and CA certificates, kept like the other entities: the whole Kong
-- entity as JSON plus the columns for lookups, uniqueness and references. A certificate's
-- SNIs go with it.
CREATE TABLE IF NOT EXISTS gateway_certificates (
    id TEXT PRIMARY KEY NOT NULL,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS gateway_snis (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    certificate_id TEXT NOT NULL REFERENCES gateway_certificates (id) ON DELETE CASCADE,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS gateway_snis_certificate_id ON gateway_snis (certificate_id);

CREATE TABLE IF NOT EXISTS gateway_ca_certificates (
    id TEXT PRIMARY KEY NOT NULL,
    cert_digest TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
