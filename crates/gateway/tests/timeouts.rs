//! A service's `connect_timeout`, `write_timeout` and `read_timeout`, over real sockets, on
//! both proxy paths: the fast path (HTTP/1.1) and the hyper path (HTTP/1.0 requests go there).
//! Each limit is set far below the others (which stay at 60 s), so a 504 within the test's
//! own bound shows that this limit, and not another, ended the wait.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use portcullis_db::testing::TestDb;
use portcullis_http::Shutdown;
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use common::{Stack, start};

/// How long any one exchange in these tests may take before the test fails: far below the
/// 60 s defaults, far above the limits under test.
const BOUND: Duration = Duration::from_secs(20);

/// Sends `request` as raw bytes and reads the whole response (the gateway closes the
/// connection: every request here says `connection: close` or is HTTP/1.0).
async fn exchange(s: &Stack, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(s.proxy_addr).await.expect("connect");
    conn.write_all(request).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 8192];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the gateway answered within the test's bound");
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw response.
fn status_of(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// GET `path` on both paths; returns the two responses (fast path first).
async fn get_both(s: &Stack, path: &str) -> [String; 2] {
    let fast = format!("GET {path} HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n");
    let hyper = format!("GET {path} HTTP/1.0\r\nhost: gw\r\n\r\n");
    [
        exchange(s, fast.as_bytes()).await,
        exchange(s, hyper.as_bytes()).await,
    ]
}

async fn service(s: &Stack, name: &str, addr: SocketAddr, extra: serde_json::Value) {
    let mut body = json!({"name": name, "url": format!("http://{addr}")});
    for (k, v) in extra.as_object().expect("object") {
        body[k] = v.clone();
    }
    let (status, res) = s.json(Method::POST, "/services", body).await;
    assert_eq!(status, 201, "{res}");
    let (status, res) = s
        .json(
            Method::POST,
            &format!("/services/{name}/routes"),
            json!({"paths": [format!("/{name}")], "strip_path": false}),
        )
        .await;
    assert_eq!(status, 201, "{res}");
}

/// A listener whose accept queue is full, so further connection attempts get no answer
/// (their SYNs are dropped). Returns its address and the connections that filled it.
async fn blackhole() -> (SocketAddr, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(common::local()).expect("bind");
    let addr = socket.local_addr().expect("addr");
    let listener = socket.listen(0).expect("listen");
    let mut filled = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await {
            Ok(Ok(conn)) => filled.push(conn),
            Ok(Err(e)) => panic!("filling the accept queue: {e}"),
            Err(_) => {
                // Keep the listener open for the rest of the test.
                std::mem::forget(listener);
                return (addr, filled);
            }
        }
    }
    panic!("the accept queue never filled up");
}

#[tokio::test]
async fn connect_timeout_answers_504_on_both_paths() {
    let s = start(TestDb::sqlite().await).await;
    let (addr, _filled) = blackhole().await;
    service(
        &s,
        "unreachable",
        addr,
        json!({"connect_timeout": 300, "retries": 1}),
    )
    .await;
    for response in get_both(&s, "/unreachable").await {
        assert_eq!(status_of(&response), 504, "{response}");
        assert!(
            response.contains("The upstream server is timing out"),
            "{response}"
        );
    }
}

/// An upstream that reads requests and answers `/slow/drip` with a head and then one body
/// byte every 150 ms (ten in all), and `/slow/stall` with a head and two of its ten bytes.
async fn dripping(up: &Shutdown) -> SocketAddr {
    let listener = portcullis_http::bind(common::local(), "dripping")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let up = up.clone();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => return,
                },
                () = up.cancelled() => return,
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let stall = String::from_utf8_lossy(&head).contains("/stall");
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n")
                    .await;
                for i in 0..10 {
                    if stall && i == 2 {
                        std::future::pending::<()>().await;
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    if conn.write_all(b"x").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn read_timeout_bounds_each_read_not_the_whole_response() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let addr = dripping(&up).await;
    service(&s, "slow", addr, json!({"read_timeout": 600, "retries": 0})).await;
    // 1.5 s in all, never 600 ms between two reads: the whole body arrives.
    for response in get_both(&s, "/slow/drip").await {
        assert_eq!(status_of(&response), 200, "{response}");
        assert!(response.ends_with("\r\n\r\nxxxxxxxxxx"), "{response}");
    }
    // A stall mid-body ends the response: the client gets the head and what came before
    // the stall, then the connection closes (a 504 can no longer be sent).
    for response in get_both(&s, "/slow/stall").await {
        assert_eq!(status_of(&response), 200, "{response}");
        assert!(response.contains("content-length: 10"), "{response}");
        assert!(response.ends_with("\r\n\r\nxx"), "{response}");
    }
    up.cancel();
}

/// Connections it accepts, held open: an upstream that never reads and never answers.
type Held = std::sync::Arc<tokio::sync::Mutex<Vec<TcpStream>>>;

/// A listener that accepts connections and holds them (see [`Held`]).
async fn mute() -> (SocketAddr, Held) {
    let listener = portcullis_http::bind(common::local(), "mute")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = Held::default();
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            keep.lock().await.push(conn);
        }
    });
    (addr, held)
}

#[tokio::test]
async fn read_timeouts_are_retried_on_another_target() {
    let s = start(TestDb::sqlite().await).await;
    let up = Shutdown::new();
    let good = common::echo_upstream(&up).await;
    let (silent_addr, held) = mute().await;
    let (status, res) = s
        .json(Method::POST, "/upstreams", json!({"name": "pair"}))
        .await;
    assert_eq!(status, 201, "{res}");
    for target in [silent_addr, good] {
        let (status, res) = s
            .json(
                Method::POST,
                "/upstreams/pair/targets",
                json!({"target": target.to_string()}),
            )
            .await;
        assert_eq!(status, 201, "{res}");
    }
    let (status, res) = s
        .json(
            Method::POST,
            "/services",
            json!({"name": "pair", "url": "http://pair:80", "read_timeout": 300, "retries": 1}),
        )
        .await;
    assert_eq!(status, 201, "{res}");
    s.json(
        Method::POST,
        "/services/pair/routes",
        json!({"paths": ["/pair"]}),
    )
    .await;
    // Round-robin: of two requests, at least one tries the silent target first; that try
    // times out and is retried on the echo one. Per path, as each has its own retry loop.
    let requests = [
        "GET /pair/x HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
        "GET /pair/x HTTP/1.0\r\nhost: gw\r\n\r\n",
    ];
    for request in requests {
        let before = held.lock().await.len();
        for _ in 0..2 {
            let response = exchange(&s, request.as_bytes()).await;
            assert_eq!(status_of(&response), 200, "{response}");
            assert!(response.contains("\"uri\":\"/x\""), "{response}");
        }
        assert!(
            held.lock().await.len() > before,
            "the silent target was tried ({request:?})"
        );
    }
    up.cancel();
}

#[tokio::test]
async fn write_timeout_answers_504_when_the_upstream_stops_reading() {
    let s = start(TestDb::sqlite().await).await;
    // Never reads: once the socket buffers are full, writes wait.
    let (addr, _held) = mute().await;
    service(&s, "deaf", addr, json!({"write_timeout": 300})).await;
    const LEN: usize = 64 << 20;
    let conn = TcpStream::connect(s.proxy_addr).await.expect("connect");
    let (mut read, mut write) = conn.into_split();
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST /deaf HTTP/1.1\r\nhost: gw\r\ncontent-length: {LEN}\r\nconnection: close\r\n\r\n"
        );
        write.write_all(head.as_bytes()).await?;
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..LEN >> 20 {
            write.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 8192];
        while !out.windows(4).any(|w| w == b"\r\n\r\n") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the gateway answered within the test's bound");
    let response = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&response), 504, "{response}");
    writer.abort();
}
