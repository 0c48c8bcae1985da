-- A service's `client_certificate` (the certificate presented to its upstream), as a column
-- so that a certificate in use cannot be deleted and a missing one is refused on write.
ALTER TABLE gateway_services ADD COLUMN client_certificate_id TEXT;
CREATE INDEX IF NOT EXISTS gateway_services_client_certificate_id
    ON gateway_services (client_certificate_id);
