//! The courier (Kratos's `courier`): flows never talk SMTP themselves; they put a rendered
//! message into the database outbox ([`CourierStore::enqueue`]) and a background worker
//! ([`crate::Identity::spawn_courier`]) delivers it. Each attempt is recorded as a dispatch;
//! a failed message is retried with exponential back-off until `courier.message_retries` is
//! exhausted and then `abandoned`. Claiming a message is a conditional update, so several
//! nodes on one PostgreSQL can run workers without sending anything twice.

pub mod gotmpl;
pub mod smtp;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::timefmt::{from_unix_millis, rfc3339, unix_millis};
use portcullis_http::Shutdown;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::driver::Registry;
use crate::persistence::{IdentityStore, SqlStore, StoreError};
use smtp::SmtpConfig;
use template::Rendered;

/// The longest wait between two attempts of one message.
const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// A message left `processing` this long (its worker died mid-send) is taken up again.
const STALE_PROCESSING: time::Duration = time::Duration::minutes(10);

/// A compiled `courier` section.
#[derive(Debug, Clone)]
pub struct CourierConfig {
    /// `courier.smtp`, when a connection URI is configured.
    pub smtp: Option<SmtpConfig>,
    /// `courier.message_retries` (default 5): failed attempts allowed before `abandoned`.
    pub message_retries: u32,
    /// `courier.worker.pull_count` (default 10).
    pub pull_count: i64,
    /// `courier.worker.pull_wait` (default 1s): the longest the worker sleeps between pulls.
    pub pull_wait: Duration,
    /// Delay before the first retry; doubled after each further failure.
    pub retry_backoff: Duration,
    /// `courier.templates` and `courier.template_override_path`.
    pub overrides: template::Overrides,
}

/// `queued`, `processing`, `sent`, `abandoned`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for (another) attempt.
    Queued,
    /// Claimed by a worker.
    Processing,
    /// Delivered.
    Sent,
    /// Retries exhausted.
    Abandoned,
}

impl Status {
    /// Kratos's string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Processing => "processing",
            Status::Sent => "sent",
            Status::Abandoned => "abandoned",
        }
    }

    /// Parses Kratos's string.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Status::Queued),
            "processing" => Some(Status::Processing),
            "sent" => Some(Status::Sent),
            "abandoned" => Some(Status::Abandoned),
            _ => None,
        }
    }
}

/// One delivery attempt.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// Its id.
    pub id: Uuid,
    /// `success` or `failed`.
    pub status: String,
    /// The failure, as `{"message": …}`.
    pub error: Option<Value>,
    /// When it happened.
    pub created_at: OffsetDateTime,
}

/// A courier message (`message` in Kratos's spec).
#[derive(Debug, Clone)]
pub struct Message {
    /// Its id.
    pub id: Uuid,
    /// Delivery state.
    pub status: Status,
    /// The address.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body (Kratos's `body`).
    pub body: String,
    /// HTML body, sent beside `body` as `multipart/alternative`; `None` for messages queued
    /// before HTML bodies existed (sent as plain text only). Not part of Kratos's `message`
    /// JSON.
    pub html: Option<String>,
    /// Kratos's template type string.
    pub template_type: String,
    /// Attempts made.
    pub send_count: i64,
    /// Not before this time is the next attempt made.
    pub next_attempt_at: OffsetDateTime,
    /// Queued.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Attempts, oldest first (loaded only for single-message reads).
    pub dispatches: Vec<Dispatch>,
}

impl Message {
    /// A new queued e-mail.
    pub fn email(recipient: &str, rendered: Rendered, now: OffsetDateTime) -> Self {
        Self {
            id: portcullis_core::new_id(),
            status: Status::Queued,
            recipient: recipient.to_string(),
            subject: rendered.subject,
            body: rendered.body,
            html: Some(rendered.html),
            template_type: rendered.template_type.as_str().to_string(),
            send_count: 0,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
            dispatches: Vec::new(),
        }
    }

    /// The spec's `message` JSON.
    pub fn to_json(&self, with_dispatches: bool) -> Value {
        let mut v = json!({
            "id": self.id,
            "status": self.status.as_str(),
            "type": "email",
            "channel": "email",
            "recipient": self.recipient,
            "subject": self.subject,
            "body": self.body,
            "template_type": self.template_type,
            "send_count": self.send_count,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        });
        if with_dispatches && let Some(map) = v.as_object_mut() {
            let list: Vec<Value> = self
                .dispatches
                .iter()
                .map(|d| {
                    let mut j = json!({
                        "id": d.id,
                        "message_id": self.id,
                        "status": d.status,
                        "created_at": rfc3339(d.created_at),
                        "updated_at": rfc3339(d.created_at),
                    });
                    if let (Some(e), Some(m)) = (&d.error, j.as_object_mut()) {
                        m.insert("error".into(), e.clone());
                    }
                    j
                })
                .collect();
            map.insert("dispatches".into(), Value::Array(list));
        }
        v
    }
}

/// What the admin list filters by.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only messages in this state.
    pub status: Option<Status>,
    /// Only messages to exactly this address.
    pub recipient: Option<String>,
}

/// The outbox.
#[async_trait]
pub trait CourierStore: Send + Sync {
    /// Queues a message.
    async fn enqueue(&self, message: &Message) -> Result<(), StoreError>;
    /// Claims up to `limit` due messages for sending (marks them `processing`).
    async fn claim_due(&self, limit: i64, now: OffsetDateTime) -> Result<Vec<Message>, StoreError>;
    /// Records an attempt and the message's new state.
    async fn record_attempt(
        &self,
        message: &Message,
        error: Option<String>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// A page of messages, newest first.
    async fn list_messages(
        &self,
        filter: &MessageFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Message>, StoreError>;
    /// One message with its dispatches.
    async fn get_message(&self, id: Uuid) -> Result<Option<Message>, StoreError>;
}

const MESSAGE_COLUMNS: &str = "id, status, recipient, subject, body, html_body, template_type, \
    send_count, next_attempt_at, created_at, updated_at";

fn message_from_row(r: &AnyRow) -> Result<Message, StoreError> {
    let id: String = r.try_get("id")?;
    let status: String = r.try_get("status")?;
    Ok(Message {
        id: Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt("uuid"))?,
        status: Status::parse(&status).ok_or(StoreError::Corrupt("courier status"))?,
        recipient: r.try_get("recipient")?,
        subject: r.try_get("subject")?,
        body: r.try_get("body")?,
        html: r.try_get("html_body")?,
        template_type: r.try_get("template_type")?,
        send_count: r.try_get("send_count")?,
        next_attempt_at: from_unix_millis(r.try_get("next_attempt_at")?),
        created_at: from_unix_millis(r.try_get("created_at")?),
        updated_at: from_unix_millis(r.try_get("updated_at")?),
        dispatches: Vec::new(),
    })
}

#[async_trait]
impl CourierStore for SqlStore {
    async fn enqueue(&self, m: &Message) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO courier_messages (id, type, status, recipient, subject, body, \
             html_body, template_type, send_count, next_attempt_at, created_at, updated_at) \
             VALUES ($1, 'email', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(m.id.to_string())
        .bind(m.status.as_str())
        .bind(&m.recipient)
        .bind(&m.subject)
        .bind(&m.body)
        .bind(&m.html)
        .bind(&m.template_type)
        .bind(m.send_count)
        .bind(unix_millis(m.next_attempt_at))
        .bind(unix_millis(m.created_at))
        .bind(unix_millis(m.updated_at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn claim_due(&self, limit: i64, now: OffsetDateTime) -> Result<Vec<Message>, StoreError> {
        let now_ms = unix_millis(now);
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM courier_messages \
             WHERE (status = 'queued' AND next_attempt_at <= $1) \
                OR (status = 'processing' AND updated_at < $2) \
             ORDER BY next_attempt_at, id LIMIT $3"
        ))
        .bind(now_ms)
        .bind(unix_millis(now - STALE_PROCESSING))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut m = message_from_row(row)?;
            // Only the worker whose update matches the row as it was read wins the message.
            let done = sqlx::query(
                "UPDATE courier_messages SET status = 'processing', updated_at = $1 \
                 WHERE id = $2 AND status = $3 AND updated_at = $4",
            )
            .bind(now_ms)
            .bind(m.id.to_string())
            .bind(m.status.as_str())
            .bind(unix_millis(m.updated_at))
            .execute(self.pool())
            .await?;
            if done.rows_affected() == 1 {
                m.status = Status::Processing;
                m.updated_at = now;
                claimed.push(m);
            }
        }
        Ok(claimed)
    }

    async fn record_attempt(
        &self,
        m: &Message,
        error: Option<String>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE courier_messages SET status = $1, send_count = $2, next_attempt_at = $3, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(m.status.as_str())
        .bind(m.send_count)
        .bind(unix_millis(m.next_attempt_at))
        .bind(unix_millis(now))
        .bind(m.id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO courier_message_dispatches (id, message_id, status, error, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(portcullis_core::new_id().to_string())
        .bind(m.id.to_string())
        .bind(if error.is_some() { "failed" } else { "success" })
        .bind(error.map(|e| json!({ "message": e }).to_string()))
        .bind(unix_millis(now))
        .bind(unix_millis(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_messages(
        &self,
        filter: &MessageFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM courier_messages \
             WHERE ($1 = '' OR status = $1) AND ($2 = '' OR recipient = $2) \
             ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
        ))
        .bind(filter.status.map(Status::as_str).unwrap_or_default())
        .bind(filter.recipient.clone().unwrap_or_default())
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn get_message(&self, id: Uuid) -> Result<Option<Message>, StoreError> {
        // An attempt's dispatch and the message's new status commit together, but the two
        // reads below are separate statements. Reading the dispatches on both sides of the
        // message and retrying when they differ yields a message and dispatches from the same
        // committed state: no attempt can have landed between the reads.
        let mut before = self.dispatches_of(id).await?;
        loop {
            let row = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM courier_messages WHERE id = $1"
            ))
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
            let Some(row) = row else { return Ok(None) };
            let after = self.dispatches_of(id).await?;
            if after.len() == before.len() {
                let mut m = message_from_row(&row)?;
                m.dispatches = after;
                return Ok(Some(m));
            }
            before = after;
        }
    }
}

impl SqlStore {
    /// The dispatches of message `id`, oldest first.
    async fn dispatches_of(&self, id: Uuid) -> Result<Vec<Dispatch>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, status, error, created_at FROM courier_message_dispatches \
             WHERE message_id = $1 ORDER BY created_at, id",
        )
        .bind(id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let did: String = r.try_get("id")?;
                let error: Option<String> = r.try_get("error")?;
                Ok(Dispatch {
                    id: Uuid::parse_str(&did).map_err(|_| StoreError::Corrupt("uuid"))?,
                    status: r.try_get("status")?,
                    error: error
                        .map(|e| serde_json::from_str(&e).map_err(|_| StoreError::Corrupt("json")))
                        .transpose()?,
                    created_at: from_unix_millis(r.try_get("created_at")?),
                })
            })
            .collect()
    }
}

/// The state after an attempt: sent, or queued again with back-off, or abandoned once more
/// than `message_retries` attempts failed.
fn after_attempt(config: &CourierConfig, m: &mut Message, failed: bool, now: OffsetDateTime) {
    m.send_count += 1;
    if !failed {
        m.status = Status::Sent;
        return;
    }
    if m.send_count > i64::from(config.message_retries) {
        m.status = Status::Abandoned;
        return;
    }
    let exponent = u32::try_from(m.send_count - 1).unwrap_or(u32::MAX).min(20);
    let delay = config
        .retry_backoff
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(MAX_BACKOFF);
    m.status = Status::Queued;
    m.next_attempt_at = now + delay;
}

/// Queues a rendered e-mail (with the configured override of its template, which may use
/// `To` and, for a known `identity_id`, `Identity`) and wakes the worker.
pub(crate) async fn enqueue_email(
    reg: &Registry,
    recipient: &str,
    mut rendered: Rendered,
    identity_id: Option<Uuid>,
) -> Result<Message, StoreError> {
    let overrides = &reg.config.courier.overrides;
    if overrides.has(rendered.template_type) {
        if let Some(map) = rendered.data.as_object_mut() {
            map.insert("To".into(), Value::String(recipient.to_string()));
        }
        if let Some(id) = identity_id
            && let Some(identity) = reg.store.get_identity(id, false).await?
        {
            let json = identity.to_json(&reg.config.public_base_url, crate::identity::View::Public);
            if let Some(map) = rendered.data.as_object_mut() {
                map.insert("Identity".into(), json);
            }
        }
        rendered = overrides.apply(rendered);
    }
    let message = Message::email(recipient, rendered, reg.now());
    reg.store.enqueue(&message).await?;
    tracing::info!(message = %message.id, template = message.template_type, "courier message queued");
    reg.courier_wake.notify_one();
    Ok(message)
}

/// Sends what is due, then waits for a new message, the next pull or shutdown.
pub(crate) async fn run(reg: Arc<Registry>, shutdown: Shutdown) {
    let config = reg.config.courier.clone();
    if config.smtp.is_none() {
        tracing::warn!(
            "courier.smtp.connection_uri is not set: queued messages stay queued until it is"
        );
    }
    loop {
        let woken = reg.courier_wake.notified();
        if let Some(smtp) = &config.smtp {
            match send_due(&reg, &config, smtp).await {
                // A full batch: there may be more due right away.
                Ok(n) if i64::try_from(n).unwrap_or(0) >= config.pull_count => continue,
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "courier: reading the outbox failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = woken => {}
            _ = tokio::time::sleep(config.pull_wait) => {}
        }
    }
}

async fn send_due(
    reg: &Registry,
    config: &CourierConfig,
    smtp: &SmtpConfig,
) -> Result<usize, StoreError> {
    let batch = reg.store.claim_due(config.pull_count, reg.now()).await?;
    let n = batch.len();
    for mut m in batch {
        let result = smtp
            .send(&m.recipient, &m.subject, &m.body, m.html.as_deref())
            .await;
        let now = reg.now();
        after_attempt(config, &mut m, result.is_err(), now);
        let error = result.err().map(|e| e.to_string());
        match &error {
            None => tracing::info!(message = %m.id, "courier message sent"),
            Some(e) => tracing::warn!(message = %m.id, status = m.status.as_str(),
                attempts = m.send_count, error = %e, "courier delivery failed"),
        }
        reg.store.record_attempt(&m, error, now).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_db::testing::TestDb;
    use portcullis_mail::{Filter, MailCatcher};

    fn identity_config(connection_uri: &str, retries: u32) -> crate::IdentityConfig {
        let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/tutorial/kratos/identity.schema.json");
        crate::IdentityConfig::from_value(
            json!({
                "dsn": "memory",
                "selfservice": {"default_browser_return_url": "http://127.0.0.1:4455/"},
                "identity": {"schemas": [{"id": "default",
                    "url": format!("file://{}", schema.display())}]},
                "courier": {"smtp": {"connection_uri": connection_uri,
                    "from_address": "accounts@portcullis.test", "from_name": "Portcullis"},
                    "message_retries": retries, "worker": {"pull_wait": "50ms"}}
            }),
            "courier test",
            std::path::Path::new("."),
            true,
        )
        .expect("config")
    }

    async fn wait_status(reg: &Registry, id: Uuid, status: Status) -> Message {
        let patience = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let m = reg
                .store
                .get_message(id)
                .await
                .expect("q")
                .expect("message");
            if m.status == status {
                return m;
            }
            assert!(
                tokio::time::Instant::now() < patience,
                "stuck at {:?}",
                m.status
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn delivers_and_abandons(db: TestDb) {
        db.migrate(&[crate::migrations()]).await.expect("migrate");
        let catcher = MailCatcher::new(100);
        let smtp = portcullis_http::bind("127.0.0.1:0".parse().expect("addr"), "smtp")
            .await
            .expect("bind");
        let smtp_addr = smtp.local_addr().expect("addr");
        let shutdown = Shutdown::new();
        tokio::spawn(catcher.smtp_server(smtp, shutdown.clone()));
        let config = identity_config(&format!("smtp://{smtp_addr}/?disable_starttls=true"), 5);
        let identity = crate::Identity::new((*db).clone(), config)
            .await
            .expect("identity");
        let worker_shutdown = Shutdown::new();
        let worker = identity.spawn_courier(worker_shutdown.clone());
        let reg = identity.reg.clone();

        let queued = enqueue_email(
            &reg,
            "alice@example.com",
            template::verification_code_valid("424242", "http://x"),
            None,
        )
        .await
        .expect("enqueue");
        assert_eq!(queued.status, Status::Queued);
        let mail = tokio::time::timeout(
            Duration::from_secs(20),
            catcher.mailbox().wait_for(&Filter::to("alice@example.com")),
        )
        .await
        .expect("mail arrives");
        assert_eq!(mail.subject, "Please verify your email address");
        assert!(mail.text.as_deref().unwrap_or_default().contains("424242"));
        assert_eq!(mail.from[0].address, "accounts@portcullis.test");
        let sent = wait_status(&reg, queued.id, Status::Sent).await;
        assert_eq!(sent.send_count, 1);
        assert_eq!(sent.dispatches.len(), 1);
        assert_eq!(sent.dispatches[0].status, "success");

        // Workers share the outbox, so the delivering one stops before the failing one starts.
        worker_shutdown.cancel();
        worker.await.expect("worker stops");

        // A server that refuses connections: with no retries allowed, one failure abandons.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let closed_addr = closed.local_addr().expect("addr");
        drop(closed);
        let config = identity_config(&format!("smtp://{closed_addr}/"), 0);
        let failing = crate::Identity::new((*db).clone(), config)
            .await
            .expect("identity");
        let failing_worker = failing.spawn_courier(shutdown.clone());
        let m = enqueue_email(
            &failing.reg,
            "bob@example.com",
            template::recovery_code_invalid(),
            None,
        )
        .await
        .expect("enqueue");
        let abandoned = wait_status(&failing.reg, m.id, Status::Abandoned).await;
        assert_eq!(abandoned.send_count, 1);
        assert_eq!(abandoned.dispatches[0].status, "failed");
        assert!(abandoned.dispatches[0].error.is_some());
        let json = abandoned.to_json(true);
        assert_eq!(json["status"], "abandoned");
        assert_eq!(json["dispatches"][0]["message_id"], json["id"]);

        let listed = reg
            .store
            .list_messages(
                &MessageFilter {
                    status: Some(Status::Sent),
                    recipient: None,
                },
                10,
                0,
            )
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        shutdown.cancel();
        failing_worker.await.expect("worker stops");
    }

    #[tokio::test]
    async fn courier_on_sqlite() {
        delivers_and_abandons(TestDb::sqlite().await).await;
    }

    #[tokio::test]
    async fn courier_on_postgres() {
        let Some(db) = TestDb::postgres().await else {
            return;
        };
        delivers_and_abandons(db).await;
    }

    fn config(retries: u32) -> CourierConfig {
        CourierConfig {
            smtp: None,
            message_retries: retries,
            pull_count: 10,
            pull_wait: Duration::from_secs(1),
            retry_backoff: Duration::from_secs(1),
            overrides: template::Overrides::default(),
        }
    }

    #[test]
    fn retries_back_off_then_abandon() {
        let now = OffsetDateTime::now_utc();
        let mut m = Message::email(
            "a@b.c",
            template::verification_code_valid("123456", "http://x"),
            now,
        );
        let c = config(2);
        after_attempt(&c, &mut m, true, now);
        assert_eq!((m.status, m.send_count), (Status::Queued, 1));
        assert_eq!(m.next_attempt_at, now + Duration::from_secs(1));
        after_attempt(&c, &mut m, true, now);
        assert_eq!(m.next_attempt_at, now + Duration::from_secs(2));
        after_attempt(&c, &mut m, true, now);
        assert_eq!((m.status, m.send_count), (Status::Abandoned, 3));
        let mut m = Message::email("a@b.c", template::recovery_code_invalid(), now);
        after_attempt(&c, &mut m, false, now);
        assert_eq!((m.status, m.send_count), (Status::Sent, 1));
    }
}
