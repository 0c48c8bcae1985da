//! Several nodes on one PostgreSQL database (issue 3 §6): a change made through any node's
//! Admin API routes on every node within a second; a database outage leaves every node
//! proxying with its last table, and they catch up by themselves when it returns.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use portcullis_core::Secret;
use portcullis_db::Db;
use portcullis_db::testing::TestDb;
use portcullis_gateway::GatewayOptions;
use portcullis_http::Shutdown;
use reqwest::Method;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

use common::{Stack, start_with};

/// A TCP forwarder to PostgreSQL that the test can cut (every connection dropped, new ones
/// refused) and restore: a database outage as the nodes see it, without touching the
/// server other tests share.
struct Link {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: Arc<Mutex<Shutdown>>,
}

impl Link {
    async fn to(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Mutex::new(Shutdown::new()));
        let (up2, cut2) = (Arc::clone(&up), Arc::clone(&cut));
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    continue;
                }
                let token = cut2.lock().await.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Link { addr, up, cut }
    }

    async fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().await;
        cut.cancel();
        *cut = Shutdown::new();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

async fn status(s: &Stack, path: &str) -> u16 {
    s.http
        .get(format!("{}{path}", s.proxy))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Polls `path` on `node` until it answers `want`; returns how long that took.
async fn converge(node: &Stack, path: &str, want: u16, patience: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let got = status(node, path).await;
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < patience,
            "{path} on {} still answers {got}, not {want}, after {patience:?}",
            node.proxy
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const WITHIN: Duration = Duration::from_secs(1);

#[tokio::test]
async fn three_nodes_converge_and_survive_an_outage() {
    let Some(url) = TestDb::postgres_database_url().await else {
        return;
    };
    let direct = Db::connect(&url).await.expect("db");
    direct
        .migrate(&[portcullis_gateway::migrations()])
        .await
        .expect("migrate");
    let mut parsed = url::Url::parse(&url).expect("url");
    let server: SocketAddr = format!(
        "{}:{}",
        parsed.host_str().expect("host"),
        parsed.port().unwrap_or(5432)
    )
    .parse()
    .expect("server address");
    let link = Link::to(server).await;
    parsed.set_port(Some(link.addr.port())).expect("port");
    let via_link = parsed.to_string();

    // A and B follow changes by LISTEN/NOTIFY only (their poll is far too slow to matter);
    // C has no LISTEN connection and relies on its poll.
    let listen = GatewayOptions {
        listen_url: Some(Secret::new(via_link.clone())),
        poll_interval: Duration::from_secs(300),
        ..GatewayOptions::default()
    };
    let poll = GatewayOptions {
        listen_url: None,
        poll_interval: Duration::from_millis(200),
        ..GatewayOptions::default()
    };
    let node = |options: GatewayOptions| {
        let via_link = via_link.clone();
        async move {
            let db = Db::connect(&via_link).await.expect("db");
            start_with(db, options, None).await
        }
    };
    let a = node(listen.clone()).await;
    let b = node(listen).await;
    let c = node(poll).await;
    let up = Shutdown::new();
    let echo = common::echo_upstream(&up).await;

    // Create on A: B and C route within a second.
    let (st, _) = a
        .json(
            Method::POST,
            "/services",
            json!({"name": "echo", "url": format!("http://{echo}")}),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = a
        .json(
            Method::POST,
            "/services/echo/routes",
            json!({"name": "ra", "paths": ["/a"]}),
        )
        .await;
    assert_eq!(st, 201);
    assert_eq!(
        status(&a, "/a").await,
        200,
        "the writing node routes at once"
    );
    converge(&b, "/a", 200, WITHIN).await;
    converge(&c, "/a", 200, WITHIN).await;

    // Create on B, patch on C, delete on C: every node follows.
    let (st, _) = b
        .json(
            Method::POST,
            "/services/echo/routes",
            json!({"name": "rb", "paths": ["/b"]}),
        )
        .await;
    assert_eq!(st, 201);
    converge(&a, "/b", 200, WITHIN).await;
    converge(&c, "/b", 200, WITHIN).await;
    let (st, _) = c
        .json(Method::PATCH, "/routes/rb", json!({"paths": ["/c"]}))
        .await;
    assert_eq!(st, 200);
    converge(&a, "/c", 200, WITHIN).await;
    converge(&b, "/c", 200, WITHIN).await;
    assert_eq!(status(&a, "/b").await, 404);
    let res = c
        .http
        .delete(format!("{}/routes/ra", c.admin))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204);
    converge(&a, "/a", 404, WITHIN).await;
    converge(&b, "/a", 404, WITHIN).await;

    // The database goes away: every node keeps proxying with its last table.
    link.down().await;
    for n in [&a, &b, &c] {
        assert_eq!(status(n, "/c").await, 200);
    }
    // Meanwhile a node that still reaches the database changes the configuration.
    let d = start_with(
        Db::connect(&url).await.expect("db"),
        GatewayOptions::default(),
        None,
    )
    .await;
    let (st, _) = d
        .json(
            Method::POST,
            "/services/echo/routes",
            json!({"name": "rd", "paths": ["/during"]}),
        )
        .await;
    assert_eq!(st, 201);
    for n in [&a, &b, &c] {
        assert_eq!(status(n, "/c").await, 200, "still proxying while cut off");
    }

    // It returns: every node catches up by itself (the LISTEN nodes through their
    // reconnect, whose backoff bounds the wait).
    link.restore();
    for n in [&a, &b, &c] {
        converge(n, "/during", 200, Duration::from_secs(10)).await;
    }
    // And live propagation works again.
    let (st, _) = b
        .json(
            Method::POST,
            "/services/echo/routes",
            json!({"name": "re", "paths": ["/after"]}),
        )
        .await;
    assert_eq!(st, 201);
    converge(&a, "/after", 200, WITHIN).await;
    converge(&c, "/after", 200, WITHIN).await;
    up.cancel();
}
