//! The in-memory, bounded message store shared by the SMTP listener, the API and the inbox.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use tokio::sync::Notify;

use crate::message::Message;

/// Which messages to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Case-insensitive substring of a recipient (envelope `RCPT TO`, `To` or `Cc`).
    pub to: Option<String>,
    /// Case-insensitive substring of the subject, addresses or bodies.
    pub query: Option<String>,
}

impl Filter {
    /// Messages to a recipient containing `to`.
    pub fn to(to: &str) -> Self {
        Filter {
            to: Some(to.to_string()),
            query: None,
        }
    }

    fn matches(&self, message: &Message) -> bool {
        let to = self
            .to
            .as_deref()
            .map(str::to_lowercase)
            .filter(|t| !t.is_empty());
        let query = self
            .query
            .as_deref()
            .map(str::to_lowercase)
            .filter(|q| !q.is_empty());
        to.is_none_or(|to| message.is_addressed_to(&to))
            && query.is_none_or(|query| message.contains_text(&query))
    }
}

/// Caught messages, newest last internally, at most `capacity` (the oldest is dropped).
#[derive(Debug)]
pub struct Mailbox {
    capacity: usize,
    messages: RwLock<VecDeque<Arc<Message>>>,
    arrived: Notify,
}

impl Mailbox {
    /// An empty mailbox holding at most `capacity` messages (at least one).
    pub fn new(capacity: usize) -> Self {
        Mailbox {
            capacity: capacity.max(1),
            messages: RwLock::new(VecDeque::new()),
            arrived: Notify::new(),
        }
    }

    /// How many messages it keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stores a message, dropping the oldest when full, and wakes [`Mailbox::wait_for`].
    pub fn insert(&self, message: Message) -> Arc<Message> {
        let message = Arc::new(message);
        {
            let mut messages = self.write();
            while messages.len() >= self.capacity {
                messages.pop_front();
            }
            messages.push_back(message.clone());
        }
        self.arrived.notify_waiters();
        message
    }

    /// Matching messages, newest first.
    pub fn list(&self, filter: &Filter) -> Vec<Arc<Message>> {
        self.read()
            .iter()
            .rev()
            .filter(|m| filter.matches(m))
            .cloned()
            .collect()
    }

    /// One message by id.
    pub fn get(&self, id: &str) -> Option<Arc<Message>> {
        self.read().iter().find(|m| m.id == id).cloned()
    }

    /// Deletes one message; `false` when there was none with that id.
    pub fn delete(&self, id: &str) -> bool {
        let mut messages = self.write();
        let before = messages.len();
        messages.retain(|m| m.id != id);
        messages.len() != before
    }

    /// Deletes every message.
    pub fn clear(&self) {
        self.write().clear();
    }

    /// Number of stored messages.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the mailbox is empty.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Waits until a message matching `filter` is stored and returns the newest such message
    /// (immediately if one is there). Callers bound the wait with `tokio::time::timeout`.
    pub async fn wait_for(&self, filter: &Filter) -> Arc<Message> {
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(message) = self.list(filter).into_iter().next() {
                return message;
            }
            arrived.await;
        }
    }

    // A panic while holding the lock cannot leave the queue inconsistent (every mutation is a
    // single VecDeque call), so a poisoned lock is simply taken over.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, VecDeque<Arc<Message>>> {
        self.messages.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, VecDeque<Arc<Message>>> {
        self.messages.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Envelope;

    fn mail(to: &str, subject: &str) -> Message {
        let raw = format!("To: {to}\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n");
        Message::parse(
            raw.into_bytes(),
            Envelope {
                rcpt_to: vec![to.to_string()],
                ..Envelope::default()
            },
        )
    }

    #[test]
    fn oldest_is_dropped_at_capacity() {
        let mailbox = Mailbox::new(2);
        let first = mailbox.insert(mail("a@x", "one"));
        mailbox.insert(mail("b@x", "two"));
        mailbox.insert(mail("c@x", "three"));
        assert_eq!(mailbox.len(), 2);
        assert!(mailbox.get(&first.id).is_none());
        let subjects: Vec<_> = mailbox
            .list(&Filter::default())
            .iter()
            .map(|m| m.subject.clone())
            .collect();
        assert_eq!(subjects, ["three", "two"]);
    }

    #[test]
    fn filters_by_recipient_and_text() {
        let mailbox = Mailbox::new(10);
        mailbox.insert(mail("Ada@Example.com", "Recovery"));
        mailbox.insert(mail("bob@example.com", "Verify"));
        assert_eq!(mailbox.list(&Filter::to("ada@example")).len(), 1);
        let query = Filter {
            to: None,
            query: Some("BODY OF verify".into()),
        };
        assert_eq!(mailbox.list(&query)[0].subject, "Verify");
        assert!(mailbox.delete(&mailbox.list(&query)[0].id.clone()));
        assert!(!mailbox.delete("nope"));
        mailbox.clear();
        assert!(mailbox.is_empty());
    }

    #[tokio::test]
    async fn wait_for_wakes_on_arrival() {
        let mailbox = Arc::new(Mailbox::new(10));
        let waiter = {
            let mailbox = mailbox.clone();
            tokio::spawn(async move { mailbox.wait_for(&Filter::to("late@x")).await })
        };
        mailbox.insert(mail("other@x", "no"));
        mailbox.insert(mail("late@x", "yes"));
        let found = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("in time")
            .expect("task");
        assert_eq!(found.subject, "yes");
    }
}
