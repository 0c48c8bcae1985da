-- Consumers, plugins, upstreams and targets, kept like services and routes: the whole Kong
-- entity as JSON plus the columns for lookups, uniqueness and references. Compound unique
-- keys (a plugin's name+scope, a target's upstream+address) are one rendered column each.
CREATE TABLE IF NOT EXISTS gateway_consumers (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT UNIQUE,
    custom_id TEXT UNIQUE,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS gateway_plugins (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    instance_name TEXT UNIQUE,
    route_id TEXT REFERENCES gateway_routes (id) ON DELETE CASCADE,
    service_id TEXT REFERENCES gateway_services (id) ON DELETE CASCADE,
    consumer_id TEXT REFERENCES gateway_consumers (id) ON DELETE CASCADE,
    scope_key TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS gateway_plugins_route_id ON gateway_plugins (route_id);
CREATE INDEX IF NOT EXISTS gateway_plugins_service_id ON gateway_plugins (service_id);
CREATE INDEX IF NOT EXISTS gateway_plugins_consumer_id ON gateway_plugins (consumer_id);

CREATE TABLE IF NOT EXISTS gateway_upstreams (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS gateway_targets (
    id TEXT PRIMARY KEY NOT NULL,
    upstream_id TEXT NOT NULL REFERENCES gateway_upstreams (id) ON DELETE CASCADE,
    target TEXT NOT NULL,
    upstream_target TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS gateway_targets_upstream_id ON gateway_targets (upstream_id);
