//! The demo services over real HTTP.

use portcullis_http::{Shutdown, bind, serve};

async fn start(app: axum::Router) -> (String, Shutdown) {
    let listener = bind("127.0.0.1:0".parse().expect("addr"), "demo")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = Shutdown::new();
    tokio::spawn(serve(listener, app, "demo", shutdown.clone()));
    (format!("http://{addr}"), shutdown)
}

async fn get_json(url: &str) -> (reqwest::StatusCode, String, serde_json::Value) {
    let res = reqwest::get(url).await.expect("request");
    let status = res.status();
    let content_type = res
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = res.json().await.expect("json body");
    (status, content_type, body)
}

#[tokio::test]
async fn hello_answers_its_message() {
    let (base, shutdown) = start(portcullis_demo::hello_router()).await;
    let (status, content_type, body) = get_json(&format!("{base}/hello")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(body, serde_json::json!({"message": "Hello microservice"}));
    shutdown.cancel();
}

#[tokio::test]
async fn world_answers_its_message() {
    let (base, shutdown) = start(portcullis_demo::world_router()).await;
    let (status, content_type, body) = get_json(&format!("{base}/world")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "application/json");
    assert_eq!(body, serde_json::json!({"message": "World microservice"}));
    shutdown.cancel();
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let (base, shutdown) = start(portcullis_demo::hello_router()).await;
    let res = reqwest::get(format!("{base}/world"))
        .await
        .expect("request");
    assert_eq!(res.status(), 404);
    shutdown.cancel();
}
