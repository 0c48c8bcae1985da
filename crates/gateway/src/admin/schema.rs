//! `GET /schemas/{entity}`: each entity's fields in Kong's schema notation, derived from the
//! same field table the form decoder uses, with the defaults a minimal valid entity gets.

use axum::Json;
use axum::extract::Path;
use serde_json::{Map, Value, json};

use super::error::AdminError;
use crate::entity::{
    CaCertificate, Certificate, Consumer, Entity, Kind, Plugin, Route, Service, Sni, Target,
    Upstream,
};

/// Answers `/schemas/{entity}`, or 404 `No entity named '…'`.
pub(crate) async fn entity_schema(Path(name): Path<String>) -> Result<Json<Value>, AdminError> {
    let schema = match name.as_str() {
        "services" => describe::<Service>(json!({"host": "example.test"})),
        "routes" => describe::<Route>(json!({"paths": ["/"]})),
        "consumers" => describe::<Consumer>(json!({"username": "x"})),
        "plugins" => describe::<Plugin>(json!({"name": "cors"})),
        "upstreams" => describe::<Upstream>(json!({"name": "example.test"})),
        "targets" => describe::<Target>(json!({
            "target": "example.test",
            "upstream": {"id": uuid::Uuid::nil()}
        })),
        "certificates" => describe::<Certificate>(json!({})),
        "snis" => describe::<Sni>(json!({
            "name": "example.test",
            "certificate": {"id": uuid::Uuid::nil()}
        })),
        "ca_certificates" => describe::<CaCertificate>(json!({})),
        _ => return Err(AdminError::NoEntity(name)),
    };
    Ok(Json(schema))
}

/// Lists the fields with their types, and the default each takes (read off a minimal
/// entity validated by the real code, so the two cannot disagree).
fn describe<T: Entity>(minimal: Value) -> Value {
    let input = match minimal {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let defaults = T::from_input(input, uuid::Uuid::nil(), 0, 0)
        .ok()
        .and_then(|e| serde_json::to_value(e).ok())
        .unwrap_or(Value::Null);
    let unique: Vec<&str> = T::TABLE.unique.iter().filter_map(|(_, f)| *f).collect();
    let fields: Vec<Value> = T::FIELDS
        .iter()
        .filter(|(name, _)| !matches!(*name, "url"))
        .map(|(name, kind)| {
            let mut spec = Map::new();
            let ty = match kind {
                Kind::String => "string",
                Kind::Integer => "integer",
                Kind::Boolean => "boolean",
                Kind::Strings => "array",
                Kind::Record => {
                    if T::TABLE.references.iter().any(|r| r.field == *name) {
                        "foreign"
                    } else {
                        "record"
                    }
                }
                Kind::StringsMap => "map",
            };
            spec.insert("type".into(), json!(ty));
            if *name == "id" {
                spec.insert("uuid".into(), json!(true));
                spec.insert("auto".into(), json!(true));
            } else if matches!(*name, "created_at" | "updated_at") {
                spec.insert("timestamp".into(), json!(true));
                spec.insert("auto".into(), json!(true));
            } else if let Some(d) = defaults.get(*name).filter(|d| !d.is_null()) {
                spec.insert("default".into(), d.clone());
            }
            if unique.contains(name) {
                spec.insert("unique".into(), json!(true));
            }
            if let Some(r) = T::TABLE.references.iter().find(|r| r.field == *name) {
                spec.insert("reference".into(), json!(r.entity));
            }
            json!({ *name: Value::Object(spec) })
        })
        .collect();
    json!({"fields": fields})
}
