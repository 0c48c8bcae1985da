//! A real HTTP server for documents the configuration loads by `http://` URL (templates, key
//! sets, schemas) that also records what it is sent (web hook calls). It runs on its own
//! thread and runtime: configuration loading blocks the thread that calls it, and a test's
//! runtime may have only that one thread.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};

/// One request the server got.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub body: String,
}

#[derive(Default)]
struct Shared {
    /// path → (status, body); any other path answers 404.
    documents: HashMap<String, (u16, String)>,
    log: Vec<Request>,
}

type Store = Arc<Mutex<Shared>>;

/// The running server; stops when dropped.
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    store: Store,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

async fn answer(
    State(store): State<Store>,
    method: Method,
    uri: Uri,
    body: String,
) -> (StatusCode, String) {
    let mut shared = store.lock().unwrap();
    shared.log.push(Request {
        method,
        path: uri.path().to_string(),
        body,
    });
    match shared.documents.get(uri.path()) {
        Some((status, text)) => (StatusCode::from_u16(*status).unwrap(), text.clone()),
        None => (StatusCode::NOT_FOUND, "not found".into()),
    }
}

impl Served {
    /// Starts a server with no documents.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let store: Store = Arc::default();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(store.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                // Not a graceful shutdown: pooled keep-alive connections from the server
                // under test would hold it open. Dropping the runtime ends every connection.
                tokio::select! {
                    served = axum::serve(listener, app) => served.unwrap(),
                    _ = stopped => {}
                }
            });
        });
        Self {
            base,
            store,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Serves `body` with 200 at `path`; returns its URL.
    pub fn put(&self, path: &str, body: &str) -> String {
        self.put_status(path, 200, body)
    }

    /// Serves `body` with `status` at `path`; returns its URL.
    pub fn put_status(&self, path: &str, status: u16, body: &str) -> String {
        self.store
            .lock()
            .unwrap()
            .documents
            .insert(path.to_string(), (status, body.to_string()));
        format!("{}{path}", self.base)
    }

    /// The requests made to `path` so far.
    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.store
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
