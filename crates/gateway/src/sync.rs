//! Keeping several nodes on one database in step (issue 3 §6).
//!
//! Every write bumps `gateway_config_version` in its own transaction (see
//! [`crate::store`]). Each node remembers the version its table was built from and rebuilds
//! in the background when the stored one differs. Two things wake it: a PostgreSQL
//! `NOTIFY` (the nudge, usually milliseconds after the commit) and a periodic poll (the
//! fallback, for a lost notification, a listener that is reconnecting, or SQLite files shared
//! by several processes). When the database is unreachable the node keeps the table it has
//! and simply tries again on the next tick; nothing here ever clears a table.

use std::sync::{Arc, Weak};
use std::time::Duration;

use portcullis_core::Secret;
use tokio::sync::Notify;

use crate::Inner;
use crate::store::{NOTIFY_CHANNEL, StoreError};

/// How long one version check may take before the next nudge or tick retries it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest pause between attempts to re-establish the `LISTEN` connection.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Starts the background tasks for `inner`; they end once the gateway is dropped.
pub(crate) fn spawn(inner: &Arc<Inner>, listen_url: Option<Secret<String>>, poll: Duration) {
    let nudge = Arc::new(Notify::new());
    if let Some(url) = listen_url {
        tokio::spawn(listen(Arc::downgrade(inner), url, Arc::clone(&nudge)));
    }
    tokio::spawn(watch(Arc::downgrade(inner), nudge, poll));
}

/// Compares versions on every nudge or tick and rebuilds when they differ.
async fn watch(inner: Weak<Inner>, nudge: Arc<Notify>, poll: Duration) {
    let mut unreachable = false;
    loop {
        tokio::select! {
            () = nudge.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        // Bounded, so a check stuck on a dead connection never delays the next nudge.
        let checked = tokio::time::timeout(CHECK_TIMEOUT, inner.store.version()).await;
        match checked.unwrap_or_else(|_| Err(StoreError::Db(sqlx::Error::PoolTimedOut))) {
            Ok(v) => {
                if unreachable {
                    tracing::info!("gateway database reachable again");
                    unreachable = false;
                }
                if v != inner.built_version() {
                    inner.refresh().await;
                }
            }
            Err(e) => {
                if !unreachable {
                    tracing::warn!(error = %e,
                        "gateway database unreachable; proxying with the last routing table");
                    unreachable = true;
                }
            }
        }
    }
}

/// Holds a `LISTEN` connection, reconnecting with backoff, and nudges [`watch`] on every
/// notification and after every (re)connect, since notifications sent while disconnected
/// are lost.
async fn listen(inner: Weak<Inner>, url: Secret<String>, nudge: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    while inner.strong_count() > 0 {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect(url.expose()).await?;
            l.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        let mut listener = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "gateway LISTEN connection failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        nudge.notify_one();
        loop {
            // `try_recv` reports a lost connection as `Ok(None)` instead of reconnecting
            // silently, so the catch-up nudge above runs again after every reconnect.
            match listener.try_recv().await {
                Ok(Some(_)) => nudge.notify_one(),
                Ok(None) | Err(_) => break,
            }
            if inner.strong_count() == 0 {
                return;
            }
        }
    }
}
