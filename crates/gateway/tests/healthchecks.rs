//! Active health checks over real HTTP and TCP against upstream servers that fail and
//! recover, and the passive-recovery extension. Every wait polls for the state change;
//! deadlines only bound a failing test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use http::StatusCode;
use portcullis_db::testing::TestDb;
use portcullis_gateway::GatewayOptions;
use portcullis_http::Shutdown;
use reqwest::Method;
use serde_json::{Value, json};

use common::{Stack, start, start_with};

/// An upstream answering every request with a status that can be changed at run time.
struct Switchable {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    shutdown: Shutdown,
}

async fn answer(State(status): State<Arc<AtomicU16>>) -> StatusCode {
    StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()
}

async fn switchable_on(addr: SocketAddr, status: Arc<AtomicU16>) -> Switchable {
    let shutdown = Shutdown::new();
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(Arc::clone(&status));
    let l = portcullis_http::bind(addr, "upstream").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(portcullis_http::serve(l, app, "upstream", shutdown.clone()));
    Switchable {
        addr,
        status,
        shutdown,
    }
}

async fn switchable() -> Switchable {
    switchable_on(common::local(), Arc::new(AtomicU16::new(200))).await
}

async fn health_of(s: &Stack, upstream: &str, target: &str) -> String {
    let (st, body) = s.get(&format!("/upstreams/{upstream}/health")).await;
    assert_eq!(st, 200, "{body}");
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == json!(target))
        .map(|t| t["health"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn wait_health(s: &Stack, upstream: &str, target: &str, want: &str) {
    let started = Instant::now();
    loop {
        let got = health_of(s, upstream, target).await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{target} is {got}, never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn upstream_with(s: &Stack, name: &str, healthchecks: Value, targets: &[SocketAddr]) {
    let (st, body) = s
        .json(
            Method::POST,
            "/upstreams",
            json!({"name": name, "healthchecks": healthchecks}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    for t in targets {
        let (st, body) = s
            .json(
                Method::POST,
                &format!("/upstreams/{name}/targets"),
                json!({"target": t.to_string()}),
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }
}

async fn active_http_checks(db: TestDb) {
    let s = start(db).await;
    let a = switchable().await;
    let b = switchable().await;
    upstream_with(
        &s,
        "active",
        json!({"active": {
            "http_path": "/status",
            "timeout": 0.5,
            "headers": {"x-probe": ["yes"]},
            "healthy": {"interval": 0.1, "successes": 2},
            "unhealthy": {"interval": 0.1, "http_failures": 2, "http_statuses": [500]}
        }}),
        &[a.addr, b.addr],
    )
    .await;
    let (ta, tb) = (a.addr.to_string(), b.addr.to_string());
    assert_eq!(health_of(&s, "active", &ta).await, "HEALTHY");

    // A starts failing its probes: unhealthy; B is untouched.
    a.status.store(500, Ordering::SeqCst);
    wait_health(&s, "active", &ta, "UNHEALTHY").await;
    assert_eq!(health_of(&s, "active", &tb).await, "HEALTHY");

    // A answers again: the unhealthy-interval probes bring it back.
    a.status.store(200, Ordering::SeqCst);
    wait_health(&s, "active", &ta, "HEALTHY").await;

    // B goes away entirely: with `tcp_failures` set, a refused connection counts.
    let (st, _) = s
        .json(
            Method::PATCH,
            "/upstreams/active",
            json!({"healthchecks": {"active": {
                "http_path": "/status",
                "timeout": 0.5,
                "healthy": {"interval": 0.1, "successes": 2},
                "unhealthy": {"interval": 0.1, "http_failures": 2, "tcp_failures": 1,
                              "http_statuses": [500]}
            }}}),
        )
        .await;
    assert_eq!(st, 200);
    b.shutdown.cancel();
    wait_health(&s, "active", &tb, "UNHEALTHY").await;
    // B comes back on the same port.
    let _b2 = switchable_on(b.addr, Arc::new(AtomicU16::new(200))).await;
    wait_health(&s, "active", &tb, "HEALTHY").await;
}
on_both!(active_http, active_http_checks);

#[tokio::test]
async fn active_tcp_checks() {
    let s = start(TestDb::sqlite().await).await;
    let a = switchable().await;
    upstream_with(
        &s,
        "tcp-checked",
        json!({"active": {
            "type": "tcp",
            "healthy": {"interval": 0.1, "successes": 1},
            "unhealthy": {"interval": 0.1, "tcp_failures": 1}
        }}),
        &[a.addr],
    )
    .await;
    let ta = a.addr.to_string();
    // A 500 does not matter to a TCP check.
    a.status.store(500, Ordering::SeqCst);
    a.shutdown.cancel();
    wait_health(&s, "tcp-checked", &ta, "UNHEALTHY").await;
    let _back = switchable_on(a.addr, Arc::new(AtomicU16::new(500))).await;
    wait_health(&s, "tcp-checked", &ta, "HEALTHY").await;
}

#[tokio::test]
async fn passive_unhealthy_target_recovers_by_reprobing() {
    let db = TestDb::sqlite().await;
    db.migrate(&[portcullis_gateway::migrations()])
        .await
        .expect("migrate");
    let options = GatewayOptions {
        passive_recovery: Some(Duration::from_millis(100)),
        ..GatewayOptions::default()
    };
    let handle = (*db).clone();
    let s = start_with(handle, options, Some(db)).await;
    let a = switchable().await;
    upstream_with(
        &s,
        "passive",
        json!({"passive": {"unhealthy": {"http_failures": 1, "http_statuses": [500]}}}),
        &[a.addr],
    )
    .await;
    let (st, _) = s
        .json(
            Method::POST,
            "/services",
            json!({"name": "p", "host": "passive", "port": 80}),
        )
        .await;
    assert_eq!(st, 201);
    let (st, _) = s
        .json(Method::POST, "/services/p/routes", json!({"paths": ["/p"]}))
        .await;
    assert_eq!(st, 201);
    let ta = a.addr.to_string();

    // A proxied 500 makes the only target unhealthy: the gateway answers 503.
    a.status.store(500, Ordering::SeqCst);
    let res = s.http.get(format!("{}/p", s.proxy)).send().await.unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(health_of(&s, "passive", &ta).await, "UNHEALTHY");
    let res = s.http.get(format!("{}/p", s.proxy)).send().await.unwrap();
    assert_eq!(res.status(), 503);

    // Still failing: the re-probes keep it out. Once it answers 200, it is back.
    a.status.store(200, Ordering::SeqCst);
    wait_health(&s, "passive", &ta, "HEALTHY").await;
    let res = s.http.get(format!("{}/p", s.proxy)).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Marked unhealthy by hand, it is not re-probed back by the extension.
    let (st, _) = s
        .json(
            Method::PUT,
            &format!("/upstreams/passive/targets/{ta}/unhealthy"),
            json!({}),
        )
        .await;
    assert_eq!(st, 204);
    // Wait for several re-probe rounds by observing proxied traffic is still refused.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(health_of(&s, "passive", &ta).await, "UNHEALTHY");
    }
}

#[tokio::test]
async fn fractional_intervals_and_bad_shapes() {
    let s = start(TestDb::sqlite().await).await;
    let (st, body) = s
        .json(
            Method::POST,
            "/upstreams",
            json!({"name": "x", "healthchecks": {"active": {"healthy": {"interval": 0.5}}}}),
        )
        .await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(
        body["healthchecks"]["active"]["healthy"]["interval"],
        json!(0.5)
    );
    let (st, _) = s
        .json(
            Method::POST,
            "/upstreams",
            json!({"name": "y", "healthchecks": {"active": {"healthy": {"successes": 0.5}}}}),
        )
        .await;
    assert_eq!(st, 400);
}
