//! The TLS proxy listener and https upstreams over real sockets: certificates chosen by SNI
//! (exact, wildcard, default), HTTP/1.1 and h2 by ALPN, `X-Forwarded-Proto: https`,
//! https-only routes, and services with `protocol = https` (verified or not). Every
//! certificate is generated here by a throw-away CA.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_db::testing::TestDb;
use portcullis_gateway::certificates::CertifiedPair;
use portcullis_gateway::{Gateway, GatewayOptions};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use reqwest::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use common::{Stack, start_with};

/// A throw-away certificate authority.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate: PEM certificate and key, and the certificate's DER.
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Portcullis test CA");
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca");
        Self { ca }
    }

    fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.signed_by(&key, &*self.ca).expect("leaf");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// An intermediate CA signed by this one.
    fn intermediate(&self) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Portcullis test intermediate");
        let ca = CertifiedIssuer::signed_by(params, KeyPair::generate().expect("key"), &*self.ca)
            .expect("intermediate");
        Self { ca }
    }

    /// A client certificate whose subject is `CN={name}`.
    fn client(&self, name: &str) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &*self.ca).expect("client");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A server config presenting `leaf` followed by `chain`, asking clients trusting
    /// `client_ca` (if any) for a certificate without requiring one.
    fn server(leaf: &Leaf, chain: &[&Pki], client_ca: Option<&Pki>) -> rustls::ServerConfig {
        Self::server_with(leaf, chain, client_ca, false)
    }

    /// As [`Pki::server`], refusing clients without a certificate from `client_ca` when
    /// `required`.
    fn server_with(
        leaf: &Leaf,
        chain: &[&Pki],
        client_ca: Option<&Pki>,
        required: bool,
    ) -> rustls::ServerConfig {
        let mut certs = vec![rustls::pki_types::CertificateDer::from(leaf.der.clone())];
        certs.extend(chain.iter().map(|p| p.ca.der().clone()));
        let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(ca.ca.der().clone()).expect("root");
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                );
                let verifier = if required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().expect("client verifier");
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        builder.with_single_cert(certs, key).expect("server config")
    }

    /// A client trusting only this CA, offering `alpn`.
    fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }
}

/// Connects to `addr` asking for `sni`; the handshake verifies the chain and the name.
async fn connect(addr: SocketAddr, connector: &TlsConnector, sni: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from(sni.to_string()).expect("name");
    connector.connect(name, tcp).await.expect("handshake")
}

/// The DER of the certificate the server presented.
fn served(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    let certs = stream.get_ref().1.peer_certificates().expect("peer certs");
    certs[0].as_ref().to_vec()
}

async fn body_json(res: hyper::Response<Incoming>) -> (u16, Value) {
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, value)
}

/// One HTTP/1.1 GET over an established stream.
async fn get_h1(stream: TlsStream<TcpStream>, host: &str, path: &str) -> (u16, Value) {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", host)
        .body(Empty::<Bytes>::new())
        .expect("request");
    body_json(sender.send_request(req).await.expect("response")).await
}

/// One HTTP/2 GET over an established stream.
async fn get_h2(stream: TlsStream<TcpStream>, host: &str, path: &str) -> (u16, Value) {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://{host}{path}"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    body_json(sender.send_request(req).await.expect("response")).await
}

async fn stack(options: GatewayOptions) -> Stack {
    stack_on(TestDb::sqlite().await, options).await
}

async fn stack_on(db: TestDb, options: GatewayOptions) -> Stack {
    db.migrate(&[portcullis_gateway::migrations()])
        .await
        .expect("migrate");
    start_with((*db).clone(), options, Some(db)).await
}

#[tokio::test]
async fn tls_listener_selects_certificates_and_proxies_h1_and_h2() {
    let pki = Pki::new();
    let default = pki.leaf(&["*.fallback.test"]);
    let options = GatewayOptions {
        default_certificate: Some(
            CertifiedPair::from_pem(&default.cert, &default.key).expect("default pair"),
        ),
        ..GatewayOptions::default()
    };
    let s = stack(options).await;
    let tls = s.serve_tls().await;
    let upstream = common::echo_upstream(s.shutdown()).await;

    let exact = pki.leaf(&["exact.test"]);
    let wild = pki.leaf(&["*.wild.test"]);
    for (leaf, sni) in [(&exact, "exact.test"), (&wild, "*.wild.test")] {
        let (st, body) = s
            .json(
                Method::POST,
                "/certificates",
                json!({"cert": leaf.cert, "key": leaf.key, "snis": [sni]}),
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }
    let (st, body) = s
        .json(
            Method::POST,
            "/services",
            json!({"name": "echo", "url": format!("http://{upstream}")}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = s
        .json(
            Method::POST,
            "/services/echo/routes",
            json!({"name": "any", "paths": ["/any"]}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = s
        .json(
            Method::POST,
            "/services/echo/routes",
            json!({"name": "secure", "paths": ["/secure"], "protocols": ["https"]}),
        )
        .await;
    assert_eq!(st, 201, "{body}");

    // SNI selection: exact, wildcard, then the default certificate.
    let h1 = pki.connector(&[b"http/1.1"]);
    let stream = connect(tls, &h1, "exact.test").await;
    assert_eq!(served(&stream), exact.der);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (st, echoed) = get_h1(stream, "exact.test", "/any/h1").await;
    assert_eq!(st, 200, "{echoed}");
    let headers = &echoed["headers"];
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["x-forwarded-port"], tls.port().to_string());
    assert_eq!(headers["via"], "1.1 kong/3.10.0");

    let stream = connect(tls, &h1, "a.wild.test").await;
    assert_eq!(served(&stream), wild.der);
    let stream = connect(tls, &h1, "deep.fallback.test").await;
    assert_eq!(served(&stream), default.der);

    // h2 by ALPN on the same listener.
    let both = pki.connector(&[b"h2", b"http/1.1"]);
    let stream = connect(tls, &both, "b.wild.test").await;
    assert_eq!(served(&stream), wild.der);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (st, echoed) = get_h2(stream, "b.wild.test", "/any/h2").await;
    assert_eq!(st, 200, "{echoed}");
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "https");
    assert_eq!(echoed["headers"]["via"], "2 kong/3.10.0");
    assert_eq!(echoed["uri"], "/h2");

    // An https-only route: 426 over plain HTTP, proxied over TLS.
    let res = s
        .http
        .get(format!("{}/secure", s.proxy))
        .send()
        .await
        .expect("plain");
    assert_eq!(res.status().as_u16(), 426);
    let stream = connect(tls, &h1, "exact.test").await;
    let (st, echoed) = get_h1(stream, "exact.test", "/secure").await;
    assert_eq!(st, 200, "{echoed}");
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "https");

    // The plain listener still says http.
    let (st, echoed) = common::status_json(
        s.http
            .get(format!("{}/any", s.proxy))
            .send()
            .await
            .expect("plain"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "http");
}

#[tokio::test]
async fn generated_default_certificate_is_served_without_a_match() {
    let pair = CertifiedPair::self_signed().expect("self-signed");
    let expected = pair.main.cert[0].as_ref().to_vec();
    let s = stack(GatewayOptions {
        default_certificate: Some(pair),
        ..GatewayOptions::default()
    })
    .await;
    let tls = s.serve_tls().await;
    // The generated certificate is self-signed for localhost: trust it as its own root.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(expected.clone()))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = connect(tls, &TlsConnector::from(Arc::new(config)), "localhost").await;
    assert_eq!(served(&stream), expected);
    // No route yet: Kong's 404 comes back over TLS.
    let (st, body) = get_h1(stream, "localhost", "/").await;
    assert_eq!(st, 404, "{body}");
}

#[test]
fn default_certificate_files_load_and_errors_name_the_setting() {
    let pki = Pki::new();
    let files = pki.leaf(&["files.test"]);
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("a.crt"), dir.path().join("a.key"));
    std::fs::write(&cert, &files.cert).expect("write");
    std::fs::write(&key, &files.key).expect("write");
    let pair = CertifiedPair::from_files(&[(cert.clone(), key.clone())]).expect("load");
    assert_eq!(pair.main.cert[0].as_ref(), files.der.as_slice());
    assert!(pair.alt.is_none());

    let missing = dir.path().join("missing.key");
    let err = CertifiedPair::from_files(&[(cert.clone(), missing)]).expect_err("missing");
    assert!(err.to_string().starts_with("ssl_cert: "), "{err}");
    assert!(err.to_string().contains("missing.key"), "{err}");

    let other = pki.leaf(&["other.test"]);
    std::fs::write(&key, &other.key).expect("write");
    let err = CertifiedPair::from_files(&[(cert, key)]).expect_err("mismatch");
    assert!(err.to_string().contains("does not match"), "{err}");
}

/// An https upstream with a self-signed `localhost` certificate that answers
/// `{sni, host, path, client}`.
async fn tls_upstream() -> SocketAddr {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .expect("server config");
    tls_upstream_with(config).await
}

/// An https upstream with `config` that answers `{sni, host, path, client}` (`client`: the
/// subject of the client's certificate, if it sent one); `/health` answers 500 unless the
/// SNI was `probe.test`.
async fn tls_upstream_with(config: rustls::ServerConfig) -> SocketAddr {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(common::local())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let session = tls.get_ref().1;
                let sni = session.server_name().map(str::to_string);
                let client = session.peer_certificates().and_then(|certs| {
                    let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref()).ok()?;
                    Some(cert.subject().to_string())
                });
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let body = json!({
                        "sni": sni,
                        "host": req.headers().get("host").and_then(|h| h.to_str().ok()),
                        "path": req.uri().path(),
                        "client": client,
                    });
                    let healthy =
                        req.uri().path() != "/health" || sni.as_deref() == Some("probe.test");
                    let mut res = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
                    if !healthy {
                        *res.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    async move { Ok::<_, Infallible>(res) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_upstreams_are_proxied_unverified_by_default() {
    let s = stack(GatewayOptions::default()).await;
    let up = tls_upstream().await;
    for (name, verify) in [("plain-default", None), ("verified", Some(true))] {
        let mut service = json!({
            "name": name, "protocol": "https", "host": "localhost", "port": up.port(),
        });
        if let Some(v) = verify {
            service["tls_verify"] = json!(v);
        }
        let (st, body) = s.json(Method::POST, "/services", service).await;
        assert_eq!(st, 201, "{body}");
        let (st, body) = s
            .json(
                Method::POST,
                &format!("/services/{name}/routes"),
                json!({"paths": [format!("/{name}")]}),
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }
    // Kong's default: the upstream's certificate is not verified; Host and SNI are the
    // service's host.
    let (st, body) = common::status_json(
        s.http
            .get(format!("{}/plain-default/x", s.proxy))
            .send()
            .await
            .expect("proxy"),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["sni"], "localhost");
    assert_eq!(body["host"], format!("localhost:{}", up.port()));
    assert_eq!(body["path"], "/x");
    // tls_verify = true: the self-signed certificate is refused, Kong's 502.
    let res = s
        .http
        .get(format!("{}/verified/x", s.proxy))
        .send()
        .await
        .expect("proxy");
    assert_eq!(res.status().as_u16(), 502);
}

/// As Kong's `proxy_ssl_name $upstream_host`: the SNI sent to an https upstream is the name
/// of the Host header sent upstream, so with `preserve_host` it is the client's host name
/// (while the connection still goes to the service's address).
#[tokio::test]
async fn https_upstreams_get_the_preserved_host_as_sni() {
    let s = stack(GatewayOptions::default()).await;
    let up = tls_upstream().await;
    service_and_route(
        &s,
        "kept",
        &format!("https://localhost:{}", up.port()),
        json!({}),
        json!({"preserve_host": true}),
    )
    .await;
    service_and_route(
        &s,
        "replaced",
        &format!("https://localhost:{}", up.port()),
        json!({}),
        json!({}),
    )
    .await;
    for (path, host, sni) in [
        ("/kept/x", "App.Example.test:8000", "app.example.test"),
        ("/kept/x", "127.0.0.1", "localhost"),
        ("/replaced/x", "app.example.test", "localhost"),
    ] {
        let (st, body) = common::status_json(
            s.http
                .get(format!("{}{path}", s.proxy))
                .header("host", host)
                .send()
                .await
                .expect("proxy"),
        )
        .await;
        assert_eq!(st, 200, "{body}");
        assert_eq!(
            body["sni"].as_str().map(str::to_ascii_lowercase).as_deref(),
            Some(sni),
            "{host}: {body}"
        );
    }
}

/// Adds service `name` at `url` (plus `extra` fields) with a route on `/{name}` (plus
/// `route` fields).
async fn service_and_route(s: &Stack, name: &str, url: &str, extra: Value, route: Value) {
    let mut service = json!({"name": name, "url": url});
    service
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (st, body) = s.json(Method::POST, "/services", service).await;
    assert_eq!(st, 201, "{body}");
    let mut r = json!({"paths": [format!("/{name}")]});
    r.as_object_mut()
        .unwrap()
        .extend(route.as_object().unwrap().clone());
    let (st, body) = s
        .json(Method::POST, &format!("/services/{name}/routes"), r)
        .await;
    assert_eq!(st, 201, "{body}");
}

#[tokio::test]
async fn route_snis_match_the_tls_server_name() {
    let pki = Pki::new();
    let default = pki.leaf(&["a.test", "b.test", "x.wild.test"]);
    let s = stack(GatewayOptions {
        default_certificate: Some(CertifiedPair::from_pem(&default.cert, &default.key).unwrap()),
        ..GatewayOptions::default()
    })
    .await;
    let tls = s.serve_tls().await;
    let up = common::echo_upstream(s.shutdown()).await;
    // Three routes on the same path: two constrained by SNI (an https-only one and a
    // wildcard one), one not. The snis count as a field, so they win when they match.
    service_and_route(
        &s,
        "by-a",
        &format!("http://{up}/a"),
        json!({}),
        json!({"paths": ["/r"], "snis": ["a.test"], "protocols": ["https"]}),
    )
    .await;
    service_and_route(
        &s,
        "by-wild",
        &format!("http://{up}/wild"),
        json!({}),
        json!({"paths": ["/r"], "snis": ["*.wild.test"], "protocols": ["https"]}),
    )
    .await;
    service_and_route(
        &s,
        "any",
        &format!("http://{up}/any"),
        json!({}),
        json!({"paths": ["/r"]}),
    )
    .await;
    let h1 = pki.connector(&[b"http/1.1"]);
    for (sni, want) in [
        ("a.test", "/a"),
        ("x.wild.test", "/wild"),
        ("b.test", "/any"),
    ] {
        let stream = connect(tls, &h1, sni).await;
        let (st, echoed) = get_h1(stream, "whatever.test", "/r").await;
        assert_eq!(st, 200, "{sni}: {echoed}");
        assert_eq!(echoed["uri"], want, "{sni}");
    }
    // A route's snis must be allowed by its protocols.
    let (st, body) = s
        .json(
            Method::POST,
            "/services/any/routes",
            json!({"paths": ["/x"], "snis": ["a.test"], "protocols": ["http"]}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    // Over plain HTTP snis are not checked (Kong: "protocol is not https, or the SNI
    // matches"): an https-only SNI route still ranks first and answers 426.
    let res = s
        .http
        .get(format!("{}/r", s.proxy))
        .send()
        .await
        .expect("plain");
    assert_eq!(res.status().as_u16(), 426);
}

#[tokio::test]
async fn alpn_offers_h2_only_with_the_http2_flag() {
    let pki = Pki::new();
    let default = pki.leaf(&["alpn.test"]);
    let s = stack(GatewayOptions {
        default_certificate: Some(CertifiedPair::from_pem(&default.cert, &default.key).unwrap()),
        ..GatewayOptions::default()
    })
    .await;
    let with_h2 = s.serve_tls_with(true).await;
    let without = s.serve_tls_with(false).await;
    let both = pki.connector(&[b"h2", b"http/1.1"]);
    let stream = connect(with_h2, &both, "alpn.test").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let stream = connect(without, &both, "alpn.test").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // HTTP/1.1 is served there, and an h2 preface is not.
    let (st, _) = get_h1(stream, "alpn.test", "/").await;
    assert_eq!(st, 404);
    let stream = connect(without, &pki.connector(&[]), "alpn.test").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("client side of the h2 handshake");
    let conn = tokio::spawn(conn);
    let mut sender = sender;
    let req = hyper::Request::get("https://alpn.test/")
        .body(Empty::<Bytes>::new())
        .expect("request");
    assert!(sender.send_request(req).await.is_err(), "h2 was served");
    let _ = conn.await;
    // A client that insists on h2 finds no common protocol.
    let tcp = TcpStream::connect(without).await.expect("connect");
    let name = ServerName::try_from("alpn.test").expect("name");
    assert!(pki.connector(&[b"h2"]).connect(name, tcp).await.is_err());
}

#[tokio::test]
async fn service_ca_certificates_depth_and_client_certificate() {
    let root = Pki::new();
    let intermediate = root.intermediate();
    let server_leaf = intermediate.leaf(&["localhost"]);
    let clients = Pki::new();
    let up = tls_upstream_with(Pki::server(&server_leaf, &[&intermediate], Some(&clients))).await;
    let s = stack(GatewayOptions::default()).await;
    let (st, ca) = s
        .json(
            Method::POST,
            "/ca_certificates",
            json!({"cert": root.ca.pem()}),
        )
        .await;
    assert_eq!(st, 201, "{ca}");
    let ca = ca["id"].clone();
    let client_leaf = clients.leaf(&["gateway.test"]);
    let (st, cert) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": client_leaf.cert, "key": client_leaf.key}),
        )
        .await;
    assert_eq!(st, 201, "{cert}");
    let cert = cert["id"].clone();
    let url = format!("https://localhost:{}", up.port());
    for (name, extra) in [
        (
            "trusted",
            json!({"tls_verify": true, "ca_certificates": [ca]}),
        ),
        ("system-roots", json!({"tls_verify": true})),
        (
            "too-deep",
            json!({"tls_verify": true, "ca_certificates": [ca], "tls_verify_depth": 0}),
        ),
        (
            "deep-enough",
            json!({"tls_verify": true, "ca_certificates": [ca], "tls_verify_depth": 1}),
        ),
        ("mtls", json!({"client_certificate": {"id": cert}})),
        (
            "mtls-verified",
            json!({"tls_verify": true, "ca_certificates": [ca], "client_certificate": {"id": cert}}),
        ),
    ] {
        service_and_route(&s, name, &url, extra, json!({})).await;
    }
    let get = |name: &'static str| {
        let s = &s;
        async move {
            common::status_json(
                s.http
                    .get(format!("{}/{name}", s.proxy))
                    .send()
                    .await
                    .expect("proxy"),
            )
            .await
        }
    };
    // The stored CA is the trust root; the system's roots do not know it.
    let (st, body) = get("trusted").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["client"], Value::Null);
    assert_eq!(get("system-roots").await.0, 502);
    // The chain has one intermediate: depth 0 refuses it, depth 1 accepts it.
    assert_eq!(get("too-deep").await.0, 502);
    assert_eq!(get("deep-enough").await.0, 200);
    // The client certificate is presented, verified or not.
    for name in ["mtls", "mtls-verified"] {
        let (st, body) = get(name).await;
        assert_eq!(st, 200, "{name}: {body}");
        assert_eq!(body["client"], "CN=rcgen self signed cert", "{name}");
    }
    // Settings change with the table: the CA removed from the service, it is refused.
    let (st, _) = s
        .json(
            Method::PATCH,
            "/services/trusted",
            json!({"ca_certificates": null}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(get("trusted").await.0, 502);
}

#[tokio::test]
async fn https_active_health_checks_probe_over_tls() {
    let pki = Pki::new();
    let leaf = pki.leaf(&["localhost", "probe.test"]);
    let up = tls_upstream_with(Pki::server(&leaf, &[], None)).await;
    let s = stack(GatewayOptions {
        passive_recovery: None,
        ..GatewayOptions::default()
    })
    .await;
    let checks = |sni: &str, verify: bool| {
        json!({"active": {
            "type": "https",
            "http_path": "/health",
            "https_sni": sni,
            "https_verify_certificate": verify,
            "timeout": 1,
            "healthy": {"interval": 0.1, "successes": 1},
            "unhealthy": {"interval": 0.1, "http_failures": 1, "tcp_failures": 1,
                          "http_statuses": [500]}
        }})
    };
    // probe.test gets a 200; another SNI a 500; verification fails against the system's
    // roots (the test CA is not among them).
    for (name, healthchecks) in [
        ("right-sni", checks("probe.test", false)),
        ("wrong-sni", checks("other.test", false)),
        ("verified", checks("probe.test", true)),
    ] {
        let (st, body) = s
            .json(
                Method::POST,
                "/upstreams",
                json!({"name": name, "healthchecks": healthchecks}),
            )
            .await;
        assert_eq!(st, 201, "{body}");
        let (st, body) = s
            .json(
                Method::POST,
                &format!("/upstreams/{name}/targets"),
                json!({"target": format!("localhost:{}", up.port())}),
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }
    let target = format!("localhost:{}", up.port());
    let health = |name: &'static str| {
        let (s, target) = (&s, target.clone());
        async move {
            let (st, body) = s.get(&format!("/upstreams/{name}/health")).await;
            assert_eq!(st, 200, "{body}");
            let t = &body["data"][0];
            assert_eq!(t["target"], json!(target));
            t["health"].as_str().unwrap().to_string()
        }
    };
    let started = std::time::Instant::now();
    while health("wrong-sni").await != "UNHEALTHY" || health("verified").await != "UNHEALTHY" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the https probes never failed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(health("right-sni").await, "HEALTHY");
}

/// Stores `leaf` as a certificate; returns its id.
async fn certificate(s: &Stack, leaf: &Leaf) -> Value {
    let (st, cert) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": leaf.cert, "key": leaf.key}),
        )
        .await;
    assert_eq!(st, 201, "{cert}");
    cert["id"].clone()
}

/// Adds upstream `name` (plus `extra` fields) with `target` as its only target.
async fn upstream_with_target(s: &Stack, name: &str, extra: Value, target: &str) {
    let mut upstream = json!({"name": name});
    upstream
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (st, body) = s.json(Method::POST, "/upstreams", upstream).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) = s
        .json(
            Method::POST,
            &format!("/upstreams/{name}/targets"),
            json!({"target": target}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
}

/// `GET /{path}` through the proxy.
async fn proxied(s: &Stack, path: &str) -> (u16, Value) {
    common::status_json(
        s.http
            .get(format!("{}/{path}", s.proxy))
            .send()
            .await
            .expect("proxy"),
    )
    .await
}

/// Waits (at most 20 s) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "never: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Kong 2.2: an upstream's `client_certificate` is presented to its targets when proxying an
/// https service whose host names the upstream, unless the service has its own.
#[tokio::test]
async fn upstream_client_certificate_is_presented_to_its_targets() {
    let servers = Pki::new();
    let clients = Pki::new();
    let server = Pki::server_with(&servers.leaf(&["localhost"]), &[], Some(&clients), true);
    let up = tls_upstream_with(server).await;
    let target = format!("localhost:{}", up.port());
    let s = stack(GatewayOptions::default()).await;
    let of_upstream = certificate(&s, &clients.client("upstream")).await;
    let of_service = certificate(&s, &clients.client("service")).await;
    upstream_with_target(
        &s,
        "with-cert.internal",
        json!({"client_certificate": {"id": of_upstream}}),
        &target,
    )
    .await;
    upstream_with_target(&s, "no-cert.internal", json!({}), &target).await;
    for (name, url, extra) in [
        ("via-upstream", "https://with-cert.internal", json!({})),
        (
            "service-wins",
            "https://with-cert.internal",
            json!({"client_certificate": {"id": of_service}}),
        ),
        ("no-cert", "https://no-cert.internal", json!({})),
    ] {
        service_and_route(&s, name, url, extra, json!({})).await;
    }
    let (st, body) = proxied(&s, "via-upstream").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["client"], "CN=upstream");
    assert_eq!(body["sni"], "localhost");
    // The service's own certificate takes precedence.
    let (st, body) = proxied(&s, "service-wins").await;
    assert_eq!((st, &body["client"]), (200, &json!("CN=service")), "{body}");
    // The target requires a certificate: without one the handshake fails, Kong's 502.
    assert_eq!(proxied(&s, "no-cert").await.0, 502);

    // Changes apply with the table.
    for (upstream, cert) in [
        ("no-cert.internal", json!({"id": of_upstream})),
        ("with-cert.internal", Value::Null),
    ] {
        let (st, body) = s
            .json(
                Method::PATCH,
                &format!("/upstreams/{upstream}"),
                json!({"client_certificate": cert}),
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }
    let (st, body) = proxied(&s, "no-cert").await;
    assert_eq!(
        (st, &body["client"]),
        (200, &json!("CN=upstream")),
        "{body}"
    );
    assert_eq!(proxied(&s, "via-upstream").await.0, 502);
    let (st, body) = proxied(&s, "service-wins").await;
    assert_eq!((st, &body["client"]), (200, &json!("CN=service")), "{body}");
}

/// `https` active health checks present the upstream's `client_certificate`: a target that
/// requires one is healthy only with it, and a new certificate restarts the prober.
#[tokio::test]
async fn https_health_checks_present_the_upstream_client_certificate() {
    let servers = Pki::new();
    let clients = Pki::new();
    let server = Pki::server_with(
        &servers.leaf(&["localhost", "probe.test"]),
        &[],
        Some(&clients),
        true,
    );
    let up = tls_upstream_with(server).await;
    let target = format!("localhost:{}", up.port());
    let s = stack(GatewayOptions {
        passive_recovery: None,
        ..GatewayOptions::default()
    })
    .await;
    let prober = clients.client("prober");
    let (st, cert) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": prober.cert, "key": prober.key}),
        )
        .await;
    assert_eq!(st, 201, "{cert}");
    let (id, created_at) = (cert["id"].clone(), cert["created_at"].as_i64().unwrap());
    let checks = json!({"active": {
        "type": "https",
        "http_path": "/health",
        "https_sni": "probe.test",
        "https_verify_certificate": false,
        "timeout": 1,
        "healthy": {"interval": 0.1, "successes": 1},
        "unhealthy": {"interval": 0.1, "http_failures": 1, "tcp_failures": 1,
                      "http_statuses": [500]}
    }});
    upstream_with_target(
        &s,
        "with-cert",
        json!({"healthchecks": checks, "client_certificate": {"id": id}}),
        &target,
    )
    .await;
    upstream_with_target(&s, "without", json!({"healthchecks": checks}), &target).await;
    let health = |name: &'static str| {
        let s = &s;
        async move {
            let (st, body) = s.get(&format!("/upstreams/{name}/health")).await;
            assert_eq!(st, 200, "{body}");
            body["data"][0]["health"].as_str().unwrap().to_string()
        }
    };
    eventually("the probe without a certificate fails", || async {
        health("without").await == "UNHEALTHY"
    })
    .await;
    assert_eq!(health("with-cert").await, "HEALTHY");

    // Given the certificate, the upstream's prober restarts with it and the target recovers.
    let (st, body) = s
        .json(
            Method::PATCH,
            "/upstreams/without",
            json!({"client_certificate": {"id": id}}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    eventually("the probe with the certificate succeeds", || async {
        health("without").await == "HEALTHY"
    })
    .await;

    // A new version of the certificate (`updated_at` is in seconds, so one second later),
    // from a CA the target does not trust, restarts both probers with it.
    eventually("a second passes", || async {
        time::OffsetDateTime::now_utc().unix_timestamp() > created_at
    })
    .await;
    let untrusted = Pki::new().client("untrusted");
    let (st, body) = s
        .json(
            Method::PATCH,
            &format!("/certificates/{}", id.as_str().unwrap()),
            json!({"cert": untrusted.cert, "key": untrusted.key}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    eventually("the probes with the untrusted certificate fail", || async {
        health("with-cert").await == "UNHEALTHY" && health("without").await == "UNHEALTHY"
    })
    .await;
}

/// The Admin API keeps an upstream's `client_certificate` as a foreign key, as a service's:
/// shown as `{"id": …}`, a missing certificate refused, a certificate in use not deletable.
async fn upstream_client_certificate_in_the_admin_api(db: TestDb) {
    let s = stack_on(db, GatewayOptions::default()).await;
    let cert = certificate(&s, &Pki::new().client("admin")).await;
    let (st, body) = s
        .json(
            Method::POST,
            "/upstreams",
            json!({"name": "mtls.internal", "client_certificate": {"id": cert}}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["client_certificate"], json!({"id": cert}));
    let (st, body) = s.get("/upstreams/mtls.internal").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["client_certificate"], json!({"id": cert}));
    let (st, schema) = s.get("/schemas/upstreams").await;
    assert_eq!(st, 200, "{schema}");
    let field = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|f| f.get("client_certificate"))
        .expect("client_certificate in the schema");
    assert_eq!(field["type"], "foreign");
    assert_eq!(field["reference"], "certificates");

    let missing = "00000000-0000-4000-8000-000000000001";
    let refused = json!({
        "code": 4,
        "name": "foreign key violation",
        "message": format!(
            "the foreign key '{{id=\"{missing}\"}}' does not reference an existing 'certificates' entity."
        ),
        "fields": {"client_certificate": {"id": missing}},
    });
    let (st, body) = s
        .json(
            Method::POST,
            "/upstreams",
            json!({"name": "other.internal", "client_certificate": {"id": missing}}),
        )
        .await;
    assert_eq!((st, body), (400, refused.clone()));
    let (st, body) = s
        .json(
            Method::POST,
            "/upstreams",
            json!({"name": "other.internal"}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["client_certificate"], Value::Null);
    let (st, body) = s
        .json(
            Method::PATCH,
            "/upstreams/other.internal",
            json!({"client_certificate": {"id": missing}}),
        )
        .await;
    assert_eq!((st, body), (400, refused));
    let (st, body) = s
        .json(
            Method::PATCH,
            "/upstreams/other.internal",
            json!({"client_certificate": {"id": cert}}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["client_certificate"], json!({"id": cert}));
    let (st, body) = s
        .json(
            Method::POST,
            "/upstreams",
            json!({"name": "bad.internal", "client_certificate": "not-an-id"}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["fields"]["client_certificate"], "expected a record");

    // In use: the certificate cannot be deleted until no upstream names it.
    let delete = || async {
        common::status_json(
            s.http
                .delete(format!(
                    "{}/certificates/{}",
                    s.admin,
                    cert.as_str().unwrap()
                ))
                .send()
                .await
                .expect("delete"),
        )
        .await
    };
    let (st, body) = delete().await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["code"], 4);
    assert_eq!(
        body["message"],
        "an existing 'upstreams' entity references this 'certificates' entity"
    );
    for name in ["mtls.internal", "other.internal"] {
        let (st, body) = s
            .json(
                Method::PATCH,
                &format!("/upstreams/{name}"),
                json!({"client_certificate": null}),
            )
            .await;
        assert_eq!(st, 200, "{body}");
    }
    assert_eq!(delete().await.0, 204);
}
on_both!(
    upstream_client_certificate_admin_api,
    upstream_client_certificate_in_the_admin_api
);

/// DB-less: an upstream in `kong.yml` names its client certificate by id and presents it; an
/// id the configuration does not declare is refused, for upstreams and services alike.
#[tokio::test]
async fn declarative_upstream_client_certificate() {
    let servers = Pki::new();
    let clients = Pki::new();
    let server = Pki::server_with(&servers.leaf(&["localhost"]), &[], Some(&clients), true);
    let up = tls_upstream_with(server).await;
    let declared = clients.client("declared");
    let id = "6f1c3a50-4d7e-4f55-9a0b-2c1d3e4f5a6b";
    let config = |cert_id: &str| {
        json!({
            "_format_version": "3.0",
            "certificates": [{"id": id, "cert": declared.cert, "key": declared.key}],
            "upstreams": [{
                "name": "declared.internal",
                "client_certificate": {"id": cert_id},
                "targets": [{"target": format!("localhost:{}", up.port())}],
            }],
            "services": [{
                "name": "declared",
                "url": "https://declared.internal",
                "routes": [{"paths": ["/declared"]}],
            }],
        })
    };
    // JSON is YAML: the file is read as a `kong.yml`.
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("kong.yml");
    std::fs::write(&file, config(id).to_string()).expect("write");
    let gateway = Gateway::from_declarative(Some(&file), GatewayOptions::default())
        .await
        .expect("dbless gateway");
    let s = common::serve_gateway(gateway, None).await;
    let (st, body) = s.get("/upstreams/declared.internal").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["client_certificate"], json!({"id": id}));
    let (st, body) = proxied(&s, "declared").await;
    assert_eq!(
        (st, &body["client"]),
        (200, &json!("CN=declared")),
        "{body}"
    );

    let missing = "00000000-0000-4000-8000-000000000002";
    let (st, body) = s.json(Method::POST, "/config", config(missing)).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["code"], 14, "{body}");
    let field = &body["fields"]["upstreams"][0]["client_certificate"];
    assert!(
        field
            .as_str()
            .is_some_and(|m| m.contains("could not find certificate") && m.contains(missing)),
        "{body}"
    );
    assert_eq!(proxied(&s, "declared").await.0, 200, "the old config stays");

    // A service's `client_certificate` must name a declared certificate too.
    let mut bad = config(id);
    bad["services"][0]["client_certificate"] = json!({"id": missing});
    let (st, body) = s.json(Method::POST, "/config", bad).await;
    assert_eq!(st, 400, "{body}");
    let field = &body["fields"]["services"][0]["client_certificate"];
    assert!(
        field
            .as_str()
            .is_some_and(|m| m.contains("could not find certificate") && m.contains(missing)),
        "{body}"
    );
    let mut good = config(id);
    good["services"][0]["client_certificate"] = json!({"id": id});
    let (st, body) = s.json(Method::POST, "/config", good).await;
    assert!(st == 200 || st == 201, "{body}");
    assert_eq!(proxied(&s, "declared").await.0, 200);
}

#[tokio::test]
async fn admin_api_over_tls() {
    let pki = Pki::new();
    let admin = pki.leaf(&["admin.test"]);
    let s = stack(GatewayOptions::default()).await;
    let l = portcullis_http::bind(common::local(), "gateway admin API (TLS)")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(s.gateway.serve_admin_tls(
        l,
        CertifiedPair::from_pem(&admin.cert, &admin.key).unwrap(),
        true,
        s.shutdown().clone(),
    ));
    let stream = connect(addr, &pki.connector(&[b"h2", b"http/1.1"]), "admin.test").await;
    assert_eq!(served(&stream), admin.der);
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (st, body) = get_h2(stream, "admin.test", "/services").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"], json!([]));
    let stream = connect(addr, &pki.connector(&[b"http/1.1"]), "admin.test").await;
    let (st, body) = get_h1(stream, "admin.test", "/").await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["version"], "3.10.0");
}
