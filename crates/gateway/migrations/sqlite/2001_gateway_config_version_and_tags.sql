-- The configuration version: every Admin API write bumps it in the same transaction, and
-- every node compares it with the version its routing table was built from.
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
    SELECT s.id, j.value, 'services' FROM gateway_services s, json_each(s.entity, '$.tags') j
    WHERE json_type(s.entity, '$.tags') = 'array';
INSERT INTO gateway_tags (entity_id, tag, entity_name)
    SELECT r.id, j.value, 'routes' FROM gateway_routes r, json_each(r.entity, '$.tags') j
    WHERE json_type(r.entity, '$.tags') = 'array';
