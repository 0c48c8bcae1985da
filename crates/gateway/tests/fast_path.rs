//! The plain-HTTP fast path over raw sockets: framing, keep-alive, pipelining, stale pooled
//! connections, and what it hands to hyper (HTTP/1.0, header limits, malformed requests).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use portcullis_db::testing::TestDb;
use portcullis_http::Shutdown;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use common::{Stack, start};

/// A gateway routing `/` to `upstream`.
async fn gateway_to(upstream: SocketAddr) -> Stack {
    let s = start(TestDb::sqlite().await).await;
    let (status, _) = s
        .json(
            Method::POST,
            "/services",
            json!({"name": "up", "url": format!("http://{upstream}")}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = s
        .json(Method::POST, "/services/up/routes", json!({"paths": ["/"]}))
        .await;
    assert_eq!(status, 201);
    s
}

/// Writes `request` on a new connection and reads until the gateway closes it.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    conn.write_all(request).await.expect("write");
    read_to_close(&mut conn).await
}

async fn read_to_close(conn: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut out))
        .await
        .expect("the gateway answers and closes in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON bodies of every response in `raw` (the echo upstream's answers).
fn json_bodies(raw: &str) -> Vec<Value> {
    raw.split("HTTP/1.1 ")
        .skip(1)
        .filter_map(|r| {
            let body = r.split_once("\r\n\r\n")?.1;
            let end = body.rfind('}')?;
            serde_json::from_str(&body[..=end]).ok()
        })
        .collect()
}

/// An upstream speaking raw HTTP/1.1: `/chunked` answers chunked, `/close` without a length
/// (ending with the connection), `/big` with a 2 MiB body, `/once` answers and then closes
/// the (keep-alive) connection; anything else answers `ok`. Counts its connections.
async fn raw_upstream(up: &Shutdown) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let up = up.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = tokio::select! {
                a = listener.accept() => a.expect("accept"),
                () = up.cancelled() => return,
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 65536];
                    let n = match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let reply: Vec<u8> = match path.as_str() {
                        "/chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n".to_vec(),
                        "/close" => {
                            let _ = conn
                                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
                                .await;
                            return;
                        }
                        "/big" => {
                            let mut r = b"HTTP/1.1 200 OK\r\ncontent-length: 2097152\r\n\r\n".to_vec();
                            r.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
                            r
                        }
                        "/once" => {
                            let _ = conn
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nonce")
                                .await;
                            return;
                        }
                        _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec(),
                    };
                    if conn.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn keep_alive_and_pipelined_requests_share_one_upstream_connection() {
    let up = Shutdown::new();
    let s = gateway_to(common::echo_upstream(&up).await).await;
    let raw = exchange(
        s.proxy_addr,
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let bodies = json_bodies(&raw);
    assert_eq!(bodies.len(), 3, "{raw}");
    let uris: Vec<&str> = bodies.iter().filter_map(|b| b["uri"].as_str()).collect();
    assert_eq!(uris, ["/a", "/b?q=1", "/c"]);
    assert!(
        bodies.iter().all(|b| b["peer"] == bodies[0]["peer"]),
        "{raw}"
    );
    assert!(raw.contains("connection: close"), "{raw}");
    for b in &bodies {
        let h = &b["headers"];
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["via"], "1.1 kong/3.10.0");
        assert_eq!(h["x-real-ip"], "127.0.0.1");
        assert!(
            h["x-kong-request-id"]
                .as_str()
                .is_some_and(|v| v.len() == 32)
        );
    }
    up.cancel();
}

#[tokio::test]
async fn chunked_and_large_request_bodies_arrive_intact() {
    let up = Shutdown::new();
    let s = gateway_to(common::echo_upstream(&up).await).await;
    // Chunked, in pieces, with an extension and a trailer.
    let mut conn = TcpStream::connect(s.proxy_addr).await.expect("connect");
    conn.write_all(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;e=1\r\nhello\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.write_all(b"6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
        .await
        .expect("write");
    let raw = read_to_close(&mut conn).await;
    let bodies = json_bodies(&raw);
    assert_eq!(bodies[0]["body"], "hello world", "{raw}");
    // A large body by Content-Length.
    let big = "y".repeat(3 * 1024 * 1024);
    let res = s
        .http
        .post(format!("{}/big", s.proxy))
        .body(big.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["body"].as_str().map(str::len), Some(big.len()));
    up.cancel();
}

#[tokio::test]
async fn chunked_close_delimited_and_large_responses_are_relayed() {
    let up = Shutdown::new();
    let (addr, _) = raw_upstream(&up).await;
    let s = gateway_to(addr).await;
    let raw = exchange(
        s.proxy_addr,
        b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\nGET /close HTTP/1.1\r\nHost: x\r\n\r\nGET /z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let parts: Vec<&str> = raw.split("HTTP/1.1 200 OK\r\n").skip(1).collect();
    assert_eq!(parts.len(), 3, "{raw}");
    assert!(parts[0].contains("transfer-encoding: chunked\r\n"), "{raw}");
    assert!(
        parts[0].ends_with("5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n"),
        "{raw}"
    );
    // The close-delimited body reaches the client chunked, and the connection goes on.
    assert!(parts[1].contains("transfer-encoding: chunked\r\n"), "{raw}");
    assert!(!parts[1].contains("connection: close"), "{raw}");
    assert!(
        parts[1].ends_with("d\r\nuntil the end\r\n0\r\n\r\n"),
        "{raw}"
    );
    assert!(parts[2].ends_with("\r\n\r\nok"), "{raw}");

    let res = s
        .http
        .get(format!("{}/big", s.proxy))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["via"], "1.1 kong/3.10.0");
    assert_eq!(res.bytes().await.expect("body").len(), 2 * 1024 * 1024);
    up.cancel();
}

#[tokio::test]
async fn a_stale_pooled_connection_is_replaced_for_idempotent_requests() {
    let up = Shutdown::new();
    let (addr, accepted) = raw_upstream(&up).await;
    let s = gateway_to(addr).await;
    // The upstream answers with keep-alive framing, then closes the connection.
    let res = s
        .http
        .get(format!("{}/once", s.proxy))
        .send()
        .await
        .expect("get");
    assert_eq!(res.text().await.expect("body"), "once");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let res = s
        .http
        .get(format!("{}/z", s.proxy))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // A body-carrying request checks the pooled connection before using it.
    let res = s
        .http
        .get(format!("{}/once", s.proxy))
        .send()
        .await
        .expect("get");
    assert_eq!(res.text().await.expect("body"), "once");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let res = s
        .http
        .post(format!("{}/z", s.proxy))
        .body("payload")
        .send()
        .await
        .expect("post");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "ok");
    up.cancel();
}

#[tokio::test]
async fn http_1_0_clients_and_odd_requests_are_served_by_hyper() {
    let up = Shutdown::new();
    let s = gateway_to(common::echo_upstream(&up).await).await;
    let raw = exchange(s.proxy_addr, b"GET /ten HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(
        raw.starts_with("HTTP/1.1 200") || raw.starts_with("HTTP/1.0 200"),
        "{raw}"
    );
    assert_eq!(
        json_bodies(&raw.replacen("HTTP/1.0", "HTTP/1.1", 1))[0]["uri"],
        "/ten"
    );
    // A head bigger than the fast path's buffer limit is replayed to hyper in full.
    let big = "v".repeat(100 * 1024);
    let raw = exchange(
        s.proxy_addr,
        format!("GET /h HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    let bodies = json_bodies(&raw);
    assert_eq!(
        bodies[0]["headers"]["x-big"].as_str().map(str::len),
        Some(big.len())
    );
    // Too many header fields: 431.
    let mut many = String::from("GET /m HTTP/1.1\r\nHost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let raw = exchange(s.proxy_addr, many.as_bytes()).await;
    assert!(raw.starts_with("HTTP/1.1 431"), "{raw}");
    // Malformed request lines: 400, and the gateway carries on.
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header: v\r\n\r\n",
    ] {
        let raw = exchange(s.proxy_addr, bad).await;
        assert!(raw.starts_with("HTTP/1.1 400"), "{bad:?}: {raw}");
    }
    up.cancel();
}

#[tokio::test]
async fn clients_going_away_leave_the_gateway_serving() {
    let up = Shutdown::new();
    let s = gateway_to(common::echo_upstream(&up).await).await;
    // Mid-body.
    let mut conn = TcpStream::connect(s.proxy_addr).await.expect("connect");
    conn.write_all(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten!!")
        .await
        .expect("write");
    drop(conn);
    // While the upstream is thinking.
    let mut conn = TcpStream::connect(s.proxy_addr).await.expect("connect");
    conn.write_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(conn);
    // Mid-head.
    let mut conn = TcpStream::connect(s.proxy_addr).await.expect("connect");
    conn.write_all(b"GET /p HTTP/1.1\r\nHo")
        .await
        .expect("write");
    drop(conn);
    let res = s
        .http
        .get(format!("{}/after", s.proxy))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    up.cancel();
}

#[tokio::test]
async fn upstream_failures_are_answered_on_the_fast_path() {
    let up = Shutdown::new();
    // Nothing listens here.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let s = gateway_to(closed).await;
    let raw = exchange(
        s.proxy_addr,
        b"GET /x HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let parts: Vec<&str> = raw.split("HTTP/1.1 502 Bad Gateway\r\n").skip(1).collect();
    assert_eq!(parts.len(), 2, "{raw}");
    assert!(parts[0].contains("x-kong-request-id: "), "{raw}");
    assert!(
        parts[0]
            .contains("\"message\":\"An invalid response was received from the upstream server\""),
        "{raw}"
    );
    assert!(parts[1].contains("text/plain"), "{raw}");
    up.cancel();
}
