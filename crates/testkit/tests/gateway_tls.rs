//! `portcullis up` serves the gateway over TLS too (Kong's `8443 http2 ssl`): the tutorial's
//! `/hello` answers through it over h2 and over HTTP/1.1, with the generated self-signed
//! certificate for `localhost`.

use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_testkit::{Backend, TestStack};
use rustls::pki_types::ServerName;
use serde_json::Value;

/// A TLS client that accepts the stack's self-signed certificate, offering `alpn`.
fn connector(alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut config = portcullis_http::tls_client_config(&portcullis_http::UpstreamTls::default());
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn up_serves_the_gateway_over_tls_with_h2() {
    let Some(stack) = TestStack::start(Backend::Sqlite)
        .await
        .expect("stack starts")
    else {
        return;
    };
    let addr = stack.addrs.gateway_tls;
    assert_ne!(addr.port(), stack.addrs.gateway.port());
    let name = ServerName::try_from("localhost").expect("name");

    // h2 by ALPN: the access proxy's JSON 401 for /hello without a session comes back.
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = connector(&[b"h2", b"http/1.1"])
        .connect(name.clone(), tcp)
        .await
        .expect("handshake");
    let (_, session) = tls.get_ref();
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    let certs = session.peer_certificates().expect("a certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref()).expect("x509");
    assert_eq!(cert.subject().to_string(), "CN=localhost");
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2");
    tokio::spawn(conn);
    let req = hyper::Request::get(format!("https://localhost:{}/hello", addr.port()))
        .header("accept", "application/json")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let res = h2.send_request(req).await.expect("response");
    assert_eq!(res.version(), hyper::Version::HTTP_2);
    assert_eq!(res.status().as_u16(), 401);
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["error"]["code"], 401, "{body}");

    // HTTP/1.1 on the same port.
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = connector(&[b"http/1.1"])
        .connect(name, tcp)
        .await
        .expect("handshake");
    let (mut h1, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let req = hyper::Request::get("/hello")
        .header("host", format!("localhost:{}", addr.port()))
        .header("accept", "application/json")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let res = h1.send_request(req).await.expect("response");
    assert_eq!(res.status().as_u16(), 401);
    stack.stop().await.expect("stops");
}
