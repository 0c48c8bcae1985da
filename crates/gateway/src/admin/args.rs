//! Request bodies as Kong's Admin API reads them (notes §1.3): JSON, or
//! `application/x-www-form-urlencoded` with `paths[]=/a`, repeated `paths=/a&paths=/b`,
//! `paths[1]=/a`, dotted or bracketed nesting (`service.id=…`, `config[minute]=5`), and
//! empty strings meaning `null`. `multipart/form-data` (`curl -F cert=@cert.pem`) is read
//! into the same model: each part's name is a form key, its content (text or file) the
//! value. All become one JSON object; the entity's field kinds then convert form strings
//! ([`crate::entity::schema::coerce_form`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::header;
use serde_json::{Map, Value};

use super::error::AdminError;
use crate::entity::schema::{Kind, coerce_form};

/// Kong's default `lua_max_post_args`.
const MAX_ARGS: usize = 100;

/// A decoded request body.
#[derive(Debug, Default)]
pub struct Args {
    map: Map<String, Value>,
    form: bool,
}

impl Args {
    /// The body as an object, with form strings converted per `fields`.
    pub fn into_map(self, fields: &[(&str, Kind)]) -> Map<String, Value> {
        let mut map = self.map;
        if self.form {
            coerce_form(&mut map, fields);
        }
        map
    }

    /// Parses a body with the given Content-Type.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Args, AdminError> {
        let mime = content_type
            .map(|c| {
                c.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        if mime.is_empty() {
            if body.iter().all(u8::is_ascii_whitespace) {
                return Ok(Args::default());
            }
            return Err(AdminError::UnsupportedMediaType);
        }
        match mime.as_str() {
            "application/json" => {
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Args::default());
                }
                match serde_json::from_slice::<Value>(body) {
                    Ok(Value::Object(map)) => Ok(Args { map, form: false }),
                    _ => Err(AdminError::BadRequest("Cannot parse JSON body")),
                }
            }
            "application/x-www-form-urlencoded" => Ok(Args {
                map: decode_form(body)?,
                form: true,
            }),
            _ => Err(AdminError::UnsupportedMediaType),
        }
    }
}

impl<S: Send + Sync> FromRequest<S> for Args {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let types = req.headers().get_all(header::CONTENT_TYPE).iter().count();
        if types > 1 {
            return Err(AdminError::BadRequest("Bad Request"));
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| AdminError::BadRequest("Cannot read request body"))?;
        if let Some(ct) = content_type.as_deref()
            && ct
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        {
            return Ok(Args {
                map: decode_multipart(ct, body).await?,
                form: true,
            });
        }
        Args::parse(content_type.as_deref(), &body)
    }
}

/// Decodes a `multipart/form-data` body into a JSON object, keys as in a form body.
pub async fn decode_multipart(
    content_type: &str,
    body: Bytes,
) -> Result<Map<String, Value>, AdminError> {
    let bad = || AdminError::BadRequest("Cannot parse multipart body");
    let boundary = multer::parse_boundary(content_type).map_err(|_| bad())?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut map = Map::new();
    let mut count = 0;
    while let Some(field) = parts.next_field().await.map_err(|_| bad())? {
        count += 1;
        if count > MAX_ARGS {
            return Err(AdminError::BadRequest("Too many arguments"));
        }
        let Some(name) = field.name().map(str::to_string) else {
            continue;
        };
        let text = field.text().await.map_err(|_| bad())?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        };
        insert(&mut map, &key_path(&name), value);
    }
    Ok(map)
}

/// Decodes a form body into a JSON object.
pub fn decode_form(body: &[u8]) -> Result<Map<String, Value>, AdminError> {
    let mut map = Map::new();
    for (count, (key, value)) in form_urlencoded::parse(body).enumerate() {
        if count >= MAX_ARGS {
            return Err(AdminError::BadRequest("Too many arguments"));
        }
        let value = if value.is_empty() {
            Value::Null
        } else {
            Value::String(value.into_owned())
        };
        let path = key_path(&key);
        insert(&mut map, &path, value);
    }
    Ok(map)
}

#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    /// `[]` or `[n]`: append to an array.
    Push,
}

/// `a.b[c][]` → `[Key(a), Key(b), Key(c), Push]`.
fn key_path(key: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let (head, mut rest) = match key.find('[') {
        Some(i) => (&key[..i], &key[i..]),
        None => (key, ""),
    };
    segs.extend(head.split('.').map(|s| Seg::Key(s.to_string())));
    while let Some(inner) = rest.strip_prefix('[') {
        let Some(end) = inner.find(']') else { break };
        let name = &inner[..end];
        if name.is_empty() || name.bytes().all(|b| b.is_ascii_digit()) {
            segs.push(Seg::Push);
        } else {
            segs.push(Seg::Key(name.to_string()));
        }
        rest = &inner[end + 1..];
    }
    segs
}

fn insert(map: &mut Map<String, Value>, path: &[Seg], value: Value) {
    let Some((Seg::Key(first), rest)) = path.split_first() else {
        return;
    };
    match rest.first() {
        None => match map.get_mut(first) {
            // A repeated plain key builds an array, as `paths=/a&paths=/b` does in Kong.
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let prev = existing.take();
                *existing = Value::Array(vec![prev, value]);
            }
            None => {
                map.insert(first.clone(), value);
            }
        },
        Some(Seg::Push) => {
            let entry = map
                .entry(first.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            match entry {
                Value::Array(items) => items.push(value),
                other => {
                    let prev = other.take();
                    *other = Value::Array(vec![prev, value]);
                }
            }
        }
        Some(Seg::Key(_)) => {
            let entry = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(s: &str) -> Value {
        Value::Object(decode_form(s.as_bytes()).expect("form"))
    }

    #[test]
    fn kong_form_syntaxes() {
        assert_eq!(
            form("name=secure-api&url=http%3A%2F%2Foathkeeper%3A4455"),
            json!({"name": "secure-api", "url": "http://oathkeeper:4455"})
        );
        assert_eq!(
            form("paths[]=/&name=hello"),
            json!({"paths": ["/"], "name": "hello"})
        );
        assert_eq!(form("paths=/a&paths=/b"), json!({"paths": ["/a", "/b"]}));
        assert_eq!(
            form("paths[1]=/a&paths[2]=/b"),
            json!({"paths": ["/a", "/b"]})
        );
        assert_eq!(form("service.id=x"), json!({"service": {"id": "x"}}));
        assert_eq!(form("service[name]=s"), json!({"service": {"name": "s"}}));
        assert_eq!(form("path="), json!({"path": null}));
    }

    fn multipart(parts: &[(&str, &str)]) -> (String, Bytes) {
        let boundary = "XyZ123";
        let mut body = String::new();
        for (name, value) in parts {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"f.pem\"\r\nContent-Type: application/octet-stream\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        (
            format!("multipart/form-data; boundary={boundary}"),
            Bytes::from(body),
        )
    }

    #[tokio::test]
    async fn multipart_bodies() {
        let (ct, body) = multipart(&[
            ("name", "svc"),
            ("paths[]", "/a"),
            ("paths[]", "/b"),
            ("service.id", "x"),
            ("path", ""),
            (
                "cert",
                "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            ),
        ]);
        let map = decode_multipart(&ct, body).await.expect("multipart");
        assert_eq!(
            Value::Object(map),
            json!({
                "name": "svc",
                "paths": ["/a", "/b"],
                "service": {"id": "x"},
                "path": null,
                "cert": "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            })
        );
        assert!(matches!(
            decode_multipart("multipart/form-data", Bytes::from_static(b"x")).await,
            Err(AdminError::BadRequest(_))
        ));
        assert!(matches!(
            decode_multipart(
                "multipart/form-data; boundary=b",
                Bytes::from_static(b"garbage")
            )
            .await,
            Err(AdminError::BadRequest(_))
        ));
    }

    #[test]
    fn content_types() {
        assert!(matches!(
            Args::parse(Some("text/plain"), b"x"),
            Err(AdminError::UnsupportedMediaType)
        ));
        assert!(matches!(
            Args::parse(Some("application/json"), b"{"),
            Err(AdminError::BadRequest(_))
        ));
        assert!(Args::parse(None, b"").is_ok());
        let a = Args::parse(Some("application/json; charset=utf-8"), br#"{"a":1}"#).expect("json");
        assert_eq!(Value::Object(a.into_map(&[])), json!({"a": 1}));
        let many = (0..101)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(matches!(
            decode_form(many.as_bytes()),
            Err(AdminError::BadRequest("Too many arguments"))
        ));
    }
}
