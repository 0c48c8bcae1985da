-- The configuration version: every Admin API write bumps it in the same transaction (and
-- sends NOTIFY portcullis_gateway_config), and every node compares it with the version its
-- routing table was built from.
CREATE TABLE IF NOT EXISTS gateway_config_version (
    id TEXT PRIMARY KEY NOT NULL,
    version BIGINT NOT NULL
);
INSERT INTO gateway_config_version (id, version) VALUES ('router', 0) ON CONFLICT DO NOTHING;

-- Kong's tags table: one row per (entity, tag), kept in step with each entity's `tags`.
CREATE TABLE IF NOT EXISTS gateway_tags (
    entity_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    entity_name TEXT NOT NULL,
    PRIMARY KEY (entity_id, tag)
);
CREATE INDEX IF NOT EXISTS gateway_tags_tag ON gateway_tags (tag, entity_id);

INSERT INTO gateway_tags (entity_id, tag, entity_name)
    SELECT id, jsonb_array_elements_text((entity::jsonb) -> 'tags'), 'services' FROM gateway_services
    WHERE jsonb_typeof((entity::jsonb) -> 'tags') = 'array';
INSERT INTO gateway_tags (entity_id, tag, entity_name)
    SELECT id, jsonb_array_elements_text((entity::jsonb) -> 'tags'), 'routes' FROM gateway_routes
    WHERE jsonb_typeof((entity::jsonb) -> 'tags') = 'array';
