-- Kong's services and routes. The entity is kept whole as JSON (`entity`), so new Kong
-- fields need no schema change; the columns beside it exist for lookup and integrity:
-- unique names, the route -> service reference, keyset pagination on `id`.
CREATE TABLE IF NOT EXISTS gateway_services (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT UNIQUE,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS gateway_routes (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT UNIQUE,
    service_id TEXT REFERENCES gateway_services (id),
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS gateway_routes_service_id ON gateway_routes (service_id);
