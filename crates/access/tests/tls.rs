//! The access proxy as a TLS client: a private CA and a server certificate made in the test
//! (rcgen), a real TLS server on 127.0.0.1 (tokio-rustls) serving an upstream, a JWKS and a
//! rule repository over `https://`, and the proxy trusting that CA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_access::credentials::{KeySet, public_part, signing_key};
use portcullis_access::{Access, AccessConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tower::ServiceExt;

mod common;
use common::*;

const ISSUER: &str = "https://issuer.example";

/// A CA (its PEM) and a server certificate it signed for `localhost` and `127.0.0.1`.
struct Pki {
    ca_pem: String,
    server: rustls::ServerConfig,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Portcullis test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca, ca_key);

    let leaf_key = KeyPair::generate().expect("server key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&leaf_key, &issuer)
        .expect("server certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server config");
    Pki {
        ca_pem: ca_cert.pem(),
        server,
    }
}

/// Serves `app` over TLS on a bound listener.
fn serve_tls(listener: tokio::net::TcpListener, app: axum::Router, config: rustls::ServerConfig) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: Request<_>| {
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
}

fn quickstart_keys() -> KeySet {
    let path = reference("kratos/quickstart-oathkeeper/id_token.jwks.json");
    let set: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("jwks")).expect("json");
    let keys = set["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k.as_object().cloned())
        .collect();
    KeySet { keys }
}

fn token(subject: &str) -> String {
    let key = signing_key(&quickstart_keys()).expect("signing key");
    let mut header = jsonwebtoken::Header::new(key.algorithm);
    header.kid = Some(key.kid.clone());
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let claims = json!({"sub": subject, "iss": ISSUER, "exp": exp});
    jsonwebtoken::encode(&header, &claims, &key.key).expect("sign")
}

/// One TLS server with the upstream (`/hello…`), the public keys (`/jwks.json`) and the
/// rules (`/rules.json`), which point at the proxy's address.
async fn tls_service(pki: &Pki, proxy: SocketAddr) -> SocketAddr {
    let (listener, me) = listener().await;
    let keys = quickstart_keys();
    let jwks = json!({"keys": keys.keys.iter().filter_map(public_part).collect::<Vec<_>>()});
    let rules = json!([
        {
            "id": "https-upstream",
            "match": {"url": format!("http://{proxy}/hello"), "methods": ["GET"]},
            "authenticators": [{"handler": "anonymous"}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "noop"}],
            "upstream": {"url": format!("https://localhost:{}", me.port())}
        },
        {
            "id": "https-jwks",
            "match": {"url": format!("http://{proxy}/jwt"), "methods": ["GET"]},
            "authenticators": [{"handler": "jwt", "config": {"trusted_issuers": [ISSUER]}}],
            "authorizer": {"handler": "allow"},
            "mutators": [{"handler": "header", "config": {"headers": {"X-User": "{{ print .Subject }}"}}}],
            "upstream": {"url": format!("https://{me}")}
        }
    ]);
    async fn hello(req: Request) -> Json<Value> {
        let user = req
            .headers()
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Json(json!({"message": "Hello over TLS", "path": req.uri().path(), "user": user}))
    }
    let app = axum::Router::new()
        .route(
            "/jwks.json",
            axum::routing::get(move || async move { Json(jwks) }),
        )
        .route(
            "/rules.json",
            axum::routing::get(move || async move { Json(rules) }),
        )
        .fallback(hello);
    serve_tls(listener, app, pki.server.clone());
    me
}

fn config(tls: SocketAddr) -> AccessConfig {
    AccessConfig::from_value(
        json!({
            "access_rules": {"repositories": [format!("https://localhost:{}/rules.json", tls.port())]},
            "authenticators": {
                "anonymous": {"enabled": true},
                "jwt": {"enabled": true, "config": {
                    "jwks_urls": [format!("https://localhost:{}/jwks.json", tls.port())]}}
            },
            "authorizers": {"allow": {"enabled": true}},
            "mutators": {"noop": {"enabled": true}, "header": {"enabled": true, "config": {"headers": {}}}}
        }),
        "in-code",
    )
    .expect("config")
}

#[tokio::test]
async fn https_rules_upstreams_and_jwks_are_reached_when_the_ca_is_trusted() {
    let pki = pki();
    let (proxy_l, proxy) = listener().await;
    let tls = tls_service(&pki, proxy).await;
    let client =
        portcullis_http::upstream_client_trusting(pki.ca_pem.as_bytes()).expect("trusting client");
    let access = Access::with_client(config(tls), client)
        .await
        .expect("rules loaded over https");
    assert_eq!(access.rules().len(), 2);
    serve(proxy_l, access.proxy_router());

    let res = client_get(format!("http://{proxy}/hello"), None).await;
    assert_eq!(res.0, 200, "{}", res.1);
    assert_eq!(res.1["message"], "Hello over TLS");
    assert_eq!(res.1["path"], "/hello");

    let res = client_get(format!("http://{proxy}/jwt"), Some(&token("tls-user"))).await;
    assert_eq!(res.0, 200, "{}", res.1);
    assert_eq!(res.1["user"], "tls-user");
    // A token the JWKS does not vouch for is still refused.
    let res = client_get(format!("http://{proxy}/jwt"), Some("not.a.jwt")).await;
    assert_eq!(res.0, 401, "{}", res.1);
}

#[tokio::test]
async fn untrusted_certificates_are_refused() {
    let pki = pki();
    let (_, proxy) = listener().await;
    let tls = tls_service(&pki, proxy).await;
    // The system roots do not include the test CA: the https repository cannot load.
    let error = Access::new(config(tls))
        .await
        .err()
        .expect("an untrusted server must not be believed");
    let text = error.to_string();
    assert!(text.contains("rules.json"), "{text}");
}

async fn client_get(url: String, token: Option<&str>) -> (u16, Value) {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[test]
fn pem_without_certificates_is_an_error() {
    assert!(portcullis_http::upstream_client_trusting(b"nothing here").is_err());
}
