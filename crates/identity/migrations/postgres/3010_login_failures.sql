-- Brute-force protection (selfservice.flows.login.brute_force): failed password logins
-- counted per key ("id:" + SHA-256 of the normalized identifier, or "ip:" + client address).
-- last_failure_at is Unix milliseconds; a lock lasts from it, so no lock column is needed.
CREATE TABLE login_failures (
    throttle_key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL
);
