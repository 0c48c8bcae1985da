-- An upstream's `client_certificate` (the certificate presented to its targets), as a column
-- so that a certificate in use cannot be deleted and a missing one is refused on write.
ALTER TABLE gateway_upstreams ADD COLUMN client_certificate_id TEXT;
CREATE INDEX IF NOT EXISTS gateway_upstreams_client_certificate_id
    ON gateway_upstreams (client_certificate_id);
