//! The courier over TLS: `smtps://` (implicit TLS) to a real SMTP server behind rustls with a
//! self-signed certificate, delivered with `?skip_ssl_verify=true` and refused without it
//! (the message stays queued, the dispatch says why); `smtp://` upgrades with STARTTLS and
//! refuses a server that does not offer it. On SQLite and PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{Server, admin_create, assert_schema, get_json, native, start_with_mail};
use portcullis_db::testing::TestDb;
use portcullis_http::Shutdown;
use portcullis_mail::{Filter, MailCatcher};
use serde_json::{Value, json};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// An SMTP server with a fresh self-signed certificate for `localhost`/`127.0.0.1`,
/// delivering into its own mail catcher: implicit TLS, or (`starttls`) a cleartext greeting
/// that offers `STARTTLS` and upgrades when asked.
struct TlsSmtp {
    addr: SocketAddr,
    catcher: MailCatcher,
    shutdown: Shutdown,
}

impl Drop for TlsSmtp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn tls_smtp(starttls: bool) -> TlsSmtp {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let catcher = MailCatcher::new(10);
    let shutdown = Shutdown::new();
    let (c, stop) = (catcher.clone(), shutdown.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => accepted.unwrap(),
            };
            let (acceptor, c, stop) = (acceptor.clone(), c.clone(), stop.clone());
            tokio::spawn(async move {
                if starttls {
                    let Some(tcp) = starttls_preamble(tcp).await else {
                        return;
                    };
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        c.smtp_session_after_starttls(tls, peer, stop).await;
                    }
                    return;
                }
                // A client that refuses the certificate ends the handshake here.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    c.smtp_session(tls, peer, stop).await;
                }
            });
        }
    });
    TlsSmtp {
        addr,
        catcher,
        shutdown,
    }
}

/// The cleartext part of an RFC 3207 session: greeting, `EHLO` offering `STARTTLS`, and the
/// go-ahead; `None` if the client leaves instead.
async fn starttls_preamble(tcp: tokio::net::TcpStream) -> Option<tokio::net::TcpStream> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut conn = BufReader::new(tcp);
    conn.get_mut()
        .write_all(b"220 localhost ESMTP test\r\n")
        .await
        .ok()?;
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let verb = line.trim().to_ascii_uppercase();
        let reply: &[u8] = if verb.starts_with("EHLO") {
            b"250-localhost\r\n250 STARTTLS\r\n"
        } else if verb == "STARTTLS" {
            b"220 Ready to start TLS\r\n"
        } else {
            b"530 Must issue a STARTTLS command first\r\n"
        };
        conn.get_mut().write_all(reply).await.ok()?;
        if verb == "STARTTLS" {
            // The client waits for the go-ahead, so nothing is left buffered.
            return Some(conn.into_inner());
        }
    }
}

/// Starts the identity server with `connection_uri` and queues a verification code e-mail to
/// `email`; returns the server and the queued message's id.
async fn queue_mail(db: TestDb, connection_uri: String, email: &str) -> (Server, String) {
    let s = start_with_mail(db, |v| {
        v["courier"]["smtp"]["connection_uri"] = json!(connection_uri);
    })
    .await;
    let api = native();
    let res = admin_create(&s, email, None).await;
    assert_eq!(res.status(), 201);
    let flow = get_json(&api, format!("{}/self-service/verification/api", s.public)).await;
    let res = api
        .post(flow["ui"]["action"].as_str().unwrap())
        .json(&json!({"method": "code", "email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let list: Vec<Value> = api
        .get(format!("{}/admin/courier/messages", s.admin))
        .query(&[("recipient", email)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = list[0]["id"].as_str().unwrap().to_string();
    (s, id)
}

/// Polls the admin API (bounded) until the message has at least one dispatch.
async fn first_dispatch(s: &Server, id: &str) -> Value {
    let api = native();
    for _ in 0..400 {
        let m: Value = api
            .get(format!("{}/admin/courier/messages/{id}", s.admin))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if m["dispatches"].as_array().is_some_and(|d| !d.is_empty()) {
            assert_schema("message", &m);
            return m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("message {id} was never attempted");
}

async fn smtps_with_skip_ssl_verify_delivers(db: TestDb) {
    let smtp = tls_smtp(false).await;
    let uri = format!("smtps://{}/?skip_ssl_verify=true", smtp.addr);
    let (s, id) = queue_mail(db, uri, "tess@example.com").await;
    let filter = Filter {
        to: Some("tess@example.com".into()),
        query: Some("verify".into()),
    };
    let mail = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        smtp.catcher.mailbox().wait_for(&filter),
    )
    .await
    .expect("mail arrives over TLS");
    assert_eq!(mail.subject, "Please verify your email address");
    let m = first_dispatch(&s, &id).await;
    assert_eq!(m["status"], "sent");
    assert_eq!(m["dispatches"][0]["status"], "success");
}
on_both!(smtps_with_skip_ssl_verify_delivers);

async fn smtps_refuses_an_untrusted_certificate(db: TestDb) {
    let smtp = tls_smtp(false).await;
    let uri = format!("smtps://{}/", smtp.addr);
    let (s, id) = queue_mail(db, uri, "una@example.com").await;
    let m = first_dispatch(&s, &id).await;
    // Still queued for a retry, with the reason recorded.
    assert_eq!(m["status"], "queued");
    assert_eq!(m["send_count"], 1);
    assert_eq!(m["dispatches"][0]["status"], "failed");
    let error = m["dispatches"][0]["error"]["message"]
        .as_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(error.contains("certificate"), "{error}");
    assert!(smtp.catcher.mailbox().list(&Filter::default()).is_empty());
}
on_both!(smtps_refuses_an_untrusted_certificate);

async fn smtp_refuses_a_server_without_starttls(db: TestDb) {
    // The plain mail catcher offers no STARTTLS: smtp:// without disable_starttls refuses it.
    let catcher = MailCatcher::new(10);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    tokio::spawn(catcher.smtp_server(listener, shutdown.clone()));
    let (s, id) = queue_mail(db, format!("smtp://{addr}/"), "stan@example.com").await;
    let m = first_dispatch(&s, &id).await;
    assert_eq!(m["status"], "queued");
    assert_eq!(m["dispatches"][0]["status"], "failed");
    let error = m["dispatches"][0]["error"]["message"].as_str().unwrap();
    assert!(error.to_ascii_lowercase().contains("tls"), "{error}");
    assert!(catcher.mailbox().list(&Filter::default()).is_empty());
    shutdown.cancel();
}
on_both!(smtp_refuses_a_server_without_starttls);

async fn smtp_upgrades_with_starttls(db: TestDb) {
    let smtp = tls_smtp(true).await;
    let uri = format!("smtp://{}/?skip_ssl_verify=true", smtp.addr);
    let (s, id) = queue_mail(db, uri, "sam@example.com").await;
    let filter = Filter {
        to: Some("sam@example.com".into()),
        query: Some("verify".into()),
    };
    let mail = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        smtp.catcher.mailbox().wait_for(&filter),
    )
    .await
    .expect("mail arrives after STARTTLS");
    assert_eq!(mail.subject, "Please verify your email address");
    let m = first_dispatch(&s, &id).await;
    assert_eq!(m["status"], "sent");
}
on_both!(smtp_upgrades_with_starttls);
