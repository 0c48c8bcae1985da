//! The mail catcher over real sockets: SMTP in (lettre and a raw TCP client), JSON API and
//! web inbox out.

use std::net::SocketAddr;
use std::time::Duration;

use lettre::message::{Mailbox as Address, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message as Email, Tokio1Executor};
use portcullis_http::{Shutdown, bind, serve};
use portcullis_mail::{MailCatcher, SmtpSettings};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const PATIENCE: Duration = Duration::from_secs(10);

struct Harness {
    smtp: SocketAddr,
    api: String,
    web: String,
    http: reqwest::Client,
    shutdown: Shutdown,
    smtp_task: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(catcher: MailCatcher) -> Harness {
    let shutdown = Shutdown::new();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let smtp_listener = bind(any, "mail smtp").await.expect("bind");
    let smtp = smtp_listener.local_addr().expect("addr");
    let smtp_task = tokio::spawn(catcher.smtp_server(smtp_listener, shutdown.clone()));
    let mut urls = Vec::new();
    for (router, what) in [
        (catcher.api_router(), "mail api"),
        (catcher.web_router(), "mail web"),
    ] {
        let listener = bind(any, what).await.expect("bind");
        urls.push(format!("http://{}", listener.local_addr().expect("addr")));
        tokio::spawn(serve(listener, router, what, shutdown.clone()));
    }
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Harness {
        smtp,
        web: urls.pop().expect("web"),
        api: urls.pop().expect("api"),
        http,
        shutdown,
        smtp_task,
    }
}

impl Harness {
    fn transport(&self) -> AsyncSmtpTransport<Tokio1Executor> {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.smtp.ip().to_string())
            .port(self.smtp.port())
            .timeout(Some(PATIENCE))
            .build()
    }

    async fn send(&self, to: &str, subject: &str, text: &str) {
        let email = Email::builder()
            .from(
                "Portcullis <no-reply@portcullis.test>"
                    .parse::<Address>()
                    .expect("from"),
            )
            .to(to.parse::<Address>().expect("to"))
            .subject(subject)
            .body(text.to_string())
            .expect("email");
        self.transport().send(email).await.expect("smtp send");
    }

    async fn api_json(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.api))
            .send()
            .await
            .expect("get");
        let status = res.status();
        (status, res.json().await.expect("json"))
    }
}

struct RawClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> (Self, String) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (read, writer) = stream.into_split();
        let mut client = RawClient {
            reader: BufReader::new(read),
            writer,
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    /// Reads one (possibly multi-line) reply.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(PATIENCE, self.reader.read_line(&mut line))
                .await
                .expect("reply in time")
                .expect("read");
            if n == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
    }

    async fn command(&mut self, line: &str) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}

fn code(reply: &str) -> &str {
    reply.get(..3).unwrap_or(reply)
}

#[tokio::test]
async fn mail_sent_with_lettre_is_readable_through_the_api() {
    let h = start(MailCatcher::new(100)).await;
    let email = Email::builder()
        .from(
            "Portcullis <no-reply@portcullis.test>"
                .parse::<Address>()
                .expect("from"),
        )
        .to("Ada <ada@example.com>".parse::<Address>().expect("to"))
        .cc("bob@example.com".parse::<Address>().expect("cc"))
        .subject("Recover your account")
        .multipart(MultiPart::alternative_plain_html(
            "Your recovery code is 123456.\n.leading dot survives\n".to_string(),
            "<p>Your recovery code is <b>123456</b>.</p>".to_string(),
        ))
        .expect("email");
    h.transport().send(email).await.expect("send");

    let (status, list) = h.api_json("/api/v1/messages").await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1);
    let summary = &list["messages"][0];
    assert_eq!(summary["subject"], "Recover your account");
    assert_eq!(summary["from"]["address"], "no-reply@portcullis.test");
    assert_eq!(summary["to"][0]["name"], "Ada");
    assert_eq!(summary["has_html"], true);
    let rcpt: Vec<&str> = summary["rcpt_to"]
        .as_array()
        .expect("rcpt")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(rcpt, ["ada@example.com", "bob@example.com"]);

    let id = summary["id"].as_str().expect("id");
    let (status, message) = h.api_json(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(status, 200);
    assert!(message["text"].as_str().expect("text").contains("123456"));
    assert!(
        message["text"]
            .as_str()
            .expect("text")
            .contains("\n.leading dot survives"),
        "{message}"
    );
    assert_eq!(
        message["html"],
        "<p>Your recovery code is <b>123456</b>.</p>"
    );
    assert_eq!(message["envelope"]["mail_from"], "no-reply@portcullis.test");
    assert!(
        message["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h["name"] == "Subject" && h["value"] == "Recover your account")
    );

    let raw = h
        .http
        .get(format!("{}/api/v1/messages/{id}/raw", h.api))
        .send()
        .await
        .expect("raw");
    assert_eq!(raw.status(), 200);
    let raw = raw.text().await.expect("raw text");
    assert!(raw.contains("Subject: Recover your account\r\n"), "{raw}");
    assert!(
        !raw.contains("\r\n..leading"),
        "dot-stuffing must be undone: {raw}"
    );
}

#[tokio::test]
async fn search_and_delete() {
    let h = start(MailCatcher::new(100)).await;
    h.send("ada@example.com", "Verify your email", "code 111111")
        .await;
    h.send("bob@example.com", "Recover your account", "code 222222")
        .await;
    h.send("ada@example.com", "Recover your account", "code 333333")
        .await;

    let (_, list) = h.api_json("/api/v1/messages").await;
    let subjects: Vec<&str> = list["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["subject"].as_str())
        .collect();
    assert_eq!(
        subjects,
        [
            "Recover your account",
            "Recover your account",
            "Verify your email"
        ]
    );

    let (_, ada) = h.api_json("/api/v1/messages?to=ADA%40example.com").await;
    assert_eq!(ada["total"], 2);
    assert_eq!(ada["messages"][0]["snippet"], "code 333333");
    let (_, found) = h
        .api_json("/api/v1/messages?to=ada%40example.com&q=recover")
        .await;
    assert_eq!(found["total"], 1);
    let (_, found) = h.api_json("/api/v1/messages?q=222222").await;
    assert_eq!(found["messages"][0]["rcpt_to"][0], "bob@example.com");
    let (_, page) = h.api_json("/api/v1/messages?limit=1&start=1").await;
    assert_eq!(
        (page["total"].as_u64(), page["count"].as_u64()),
        (Some(3), Some(1))
    );
    let (status, error) = h.api_json("/api/v1/messages?limit=many").await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["code"], 400);

    let id = found["messages"][0]["id"].as_str().expect("id").to_string();
    let url = format!("{}/api/v1/messages/{id}", h.api);
    assert_eq!(
        h.http.delete(&url).send().await.expect("delete").status(),
        204
    );
    assert_eq!(
        h.http.delete(&url).send().await.expect("delete").status(),
        404
    );
    let (status, error) = h.api_json(&format!("/api/v1/messages/{id}")).await;
    assert_eq!(status, 404);
    assert!(
        error["error"]["message"]
            .as_str()
            .expect("message")
            .contains(&id)
    );

    let all = format!("{}/api/v1/messages", h.api);
    assert_eq!(
        h.http.delete(&all).send().await.expect("delete").status(),
        204
    );
    let (_, list) = h.api_json("/api/v1/messages").await;
    assert_eq!(list["total"], 0);
    let (status, _) = h.api_json("/api/v1/nothing").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn malformed_commands_get_5xx_and_the_server_keeps_running() {
    let h = start(MailCatcher::new(100)).await;
    let (mut c, greeting) = RawClient::connect(h.smtp).await;
    assert_eq!(code(&greeting), "220");
    assert_eq!(code(&c.command("GARBAGE").await), "500");
    assert_eq!(code(&c.command("").await), "500");
    assert_eq!(code(&c.command("MAIL FROM:<a@x>").await), "503");
    assert_eq!(code(&c.command("HELO").await), "501");
    c.send_raw(b"\xff\xfe\x00junk\r\n").await;
    assert_eq!(code(&c.reply().await), "500");
    c.send_raw(format!("NOOP {}\r\n", "x".repeat(10_000)).as_bytes())
        .await;
    assert_eq!(code(&c.reply().await), "500");
    assert_eq!(code(&c.command("STARTTLS").await), "502");

    let ehlo = c.command("EHLO client.test").await;
    assert!(ehlo.starts_with("250-"), "{ehlo}");
    assert!(ehlo.contains("250-SIZE 10485760\r\n"), "{ehlo}");
    assert_eq!(code(&c.command("RCPT TO:<a@x>").await), "503");
    assert_eq!(code(&c.command("DATA").await), "503");
    assert_eq!(code(&c.command("MAIL TO:<a@x>").await), "501");
    assert_eq!(
        code(&c.command("MAIL FROM:<a@x> FROBNICATE=1").await),
        "555"
    );
    assert_eq!(code(&c.command("mail from:<>").await), "250");
    assert_eq!(code(&c.command("MAIL FROM:<a@x>").await), "503");
    assert_eq!(code(&c.command("RCPT TO:<>").await), "501");
    assert_eq!(code(&c.command("RCPT TO:<broken").await), "501");
    assert_eq!(code(&c.command("DATA").await), "503");
    assert_eq!(code(&c.command("RSET").await), "250");
    assert_eq!(code(&c.command("NOOP").await), "250");
    assert_eq!(code(&c.command("VRFY x").await), "252");

    // A complete transaction on the same connection, with bare LF line ends and dot-stuffing.
    assert_eq!(code(&c.command("MAIL FROM:<sender@x>").await), "250");
    assert_eq!(code(&c.command("RCPT TO:<raw@example.com>").await), "250");
    assert_eq!(code(&c.command("DATA").await), "354");
    c.send_raw(b"Subject: raw\r\n\r\nline one\n..dotted\r\n.\r\n")
        .await;
    let queued = c.reply().await;
    assert!(queued.starts_with("250 OK: queued as "), "{queued}");
    assert_eq!(code(&c.command("QUIT").await), "221");

    let (_, list) = h.api_json("/api/v1/messages?to=raw%40example.com").await;
    assert_eq!(list["total"], 1);
    assert_eq!(list["messages"][0]["snippet"], "line one .dotted");

    // A client that only sends garbage is disconnected, and the listener still serves others.
    let (mut noisy, _) = RawClient::connect(h.smtp).await;
    for _ in 0..portcullis_mail::smtp::MAX_CONSECUTIVE_ERRORS {
        assert_eq!(code(&noisy.command("GET / HTTP/1.1").await), "500");
    }
    assert_eq!(code(&noisy.reply().await), "421");
    let (mut next, greeting) = RawClient::connect(h.smtp).await;
    assert_eq!(code(&greeting), "220");
    assert_eq!(code(&next.command("HELO again").await), "250");
    // A connection dropped mid-DATA does not disturb anything.
    let (mut dropped, _) = RawClient::connect(h.smtp).await;
    dropped.command("HELO x").await;
    dropped.command("MAIL FROM:<a@x>").await;
    dropped.command("RCPT TO:<b@x>").await;
    dropped.command("DATA").await;
    dropped.send_raw(b"Subject: half").await;
    drop(dropped);
    h.send("after@example.com", "still alive", "yes").await;
    let (_, list) = h.api_json("/api/v1/messages").await;
    assert_eq!(list["total"], 2);
}

#[tokio::test]
async fn oversized_messages_are_refused_and_the_session_continues() {
    let catcher = MailCatcher::new(10).with_smtp_settings(SmtpSettings {
        hostname: "catcher.test".to_string(),
        max_message_size: 1024,
    });
    let h = start(catcher).await;
    let (mut c, greeting) = RawClient::connect(h.smtp).await;
    assert!(greeting.starts_with("220 catcher.test "), "{greeting}");
    c.command("EHLO x").await;
    assert_eq!(code(&c.command("MAIL FROM:<a@x> SIZE=4096").await), "552");
    assert_eq!(
        code(&c.command("MAIL FROM:<a@x> SIZE=100 BODY=8BITMIME").await),
        "250"
    );
    assert_eq!(code(&c.command("RCPT TO:<b@x>").await), "250");
    assert_eq!(code(&c.command("DATA").await), "354");
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..50 {
        big.extend_from_slice(&[b'y'; 78]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b".\r\n");
    c.send_raw(&big).await;
    assert_eq!(code(&c.reply().await), "552");
    assert_eq!(code(&c.command("NOOP").await), "250");
    assert_eq!(code(&c.command("MAIL FROM:<a@x>").await), "250");
    let (_, list) = h.api_json("/api/v1/messages").await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn capacity_bounds_the_store() {
    let h = start(MailCatcher::new(3)).await;
    for n in 1..=5 {
        h.send("cap@example.com", &format!("message {n}"), "x")
            .await;
    }
    let (_, list) = h.api_json("/api/v1/messages").await;
    assert_eq!(list["total"], 3);
    let subjects: Vec<&str> = list["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["subject"].as_str())
        .collect();
    assert_eq!(subjects, ["message 5", "message 4", "message 3"]);
}

#[tokio::test]
async fn web_inbox_lists_shows_escapes_and_deletes() {
    let h = start(MailCatcher::new(10)).await;
    let email = Email::builder()
        .from("x@example.com".parse::<Address>().expect("from"))
        .to("web@example.com".parse::<Address>().expect("to"))
        .subject("<script>alert(1)</script>")
        .multipart(MultiPart::alternative_plain_html(
            "plain <b>text</b>".to_string(),
            "<p onclick=\"x()\">\"quoted\" html</p><script>evil()</script>".to_string(),
        ))
        .expect("email");
    h.transport().send(email).await.expect("send");
    let (_, list) = h.api_json("/api/v1/messages").await;
    let id = list["messages"][0]["id"].as_str().expect("id").to_string();

    let res = h
        .http
        .get(format!("{}/", h.web))
        .send()
        .await
        .expect("inbox");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|csp| csp.starts_with("default-src 'none'"))
    );
    let html = res.text().await.expect("body");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(html.contains(&format!("href=\"/messages/{id}\"")), "{html}");

    let html = h
        .http
        .get(format!("{}/messages/{id}", h.web))
        .send()
        .await
        .expect("message")
        .text()
        .await
        .expect("body");
    assert!(html.contains("<iframe sandbox title=\"HTML part of the message\" srcdoc=\"&lt;p onclick=&quot;x()&quot;&gt;"), "{html}");
    assert!(!html.contains("<script>evil()"), "{html}");
    assert!(
        html.contains("plain &lt;b&gt;text&lt;&#x2f;b&gt;"),
        "{html}"
    );

    let res = h
        .http
        .get(format!("{}/messages/unknown", h.web))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 404);

    let delete = format!("{}/messages/{id}/delete", h.web);
    let res = h
        .http
        .post(&delete)
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 403);
    let res = h
        .http
        .post(&delete)
        .header("origin", h.web.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 303);
    let (_, list) = h.api_json("/api/v1/messages").await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn shutdown_tells_open_sessions_and_stops() {
    let mut h = start(MailCatcher::new(10)).await;
    let (mut c, _) = RawClient::connect(h.smtp).await;
    assert_eq!(code(&c.command("HELO x").await), "250");
    h.shutdown.cancel();
    assert_eq!(code(&c.reply().await), "421");
    tokio::time::timeout(PATIENCE, &mut h.smtp_task)
        .await
        .expect("server stops in time")
        .expect("server task");
}
