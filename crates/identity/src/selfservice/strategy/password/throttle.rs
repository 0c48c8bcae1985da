//! Brute-force protection for password login (a Portcullis extension; Kratos has none,
//! kratos#3037): failed attempts are counted per identifier and per client IP in the database,
//! so every node sees the same counters. Once a counter reaches its limit the key is locked
//! for `lockout`, doubling with every further failure up to `max_lockout`. A lock is
//! answered identically whether or not the account exists; a successful login clears the
//! identifier's counter, and a counter left alone for `reset_after` starts over.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Row;
use time::OffsetDateTime;

use crate::driver::Registry;
use crate::persistence::StoreError;

/// `selfservice.flows.login.brute_force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BruteForceConfig {
    /// Whether failed logins are counted at all.
    pub enabled: bool,
    /// Failures per identifier before it is locked (0: no per-identifier limit).
    pub max_attempts: u32,
    /// Failures per client IP before it is locked (0: no per-IP limit).
    pub max_attempts_per_ip: u32,
    /// The first lock's length; each further failure doubles it.
    pub lockout: Duration,
    /// The longest lock.
    pub max_lockout: Duration,
    /// A counter without failures for this long starts over (at least `max_lockout`).
    pub reset_after: Duration,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        BruteForceConfig {
            enabled: true,
            max_attempts: 5,
            max_attempts_per_ip: 50,
            lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(3600),
            reset_after: Duration::from_secs(3600),
        }
    }
}

impl BruteForceConfig {
    /// How long a key with `failures` failures against `limit` stays locked after its last
    /// failure (`None`: not locked).
    fn lock_for(&self, failures: i64, limit: u32) -> Option<Duration> {
        if limit == 0 || failures < i64::from(limit) {
            return None;
        }
        let doublings = u32::try_from(failures - i64::from(limit))
            .unwrap_or(u32::MAX)
            .min(30);
        let lock = self.lockout.saturating_mul(1u32 << doublings);
        Some(lock.min(self.max_lockout))
    }
}

/// The counters one login attempt touches.
pub(crate) struct Guard<'a> {
    reg: &'a Registry,
    identifier_key: String,
    ip_key: Option<String>,
}

impl<'a> Guard<'a> {
    /// The guard for a (normalized) identifier submitted from `ip`.
    pub fn new(reg: &'a Registry, identifier: &str, ip: Option<IpAddr>) -> Self {
        Guard {
            reg,
            identifier_key: format!("id:{}", hex::encode(Sha256::digest(identifier.as_bytes()))),
            ip_key: ip.map(|ip| format!("ip:{ip}")),
        }
    }

    fn config(&self) -> &BruteForceConfig {
        &self.reg.config.brute_force
    }

    fn limit_of(&self, key: &str) -> u32 {
        if key.starts_with("ip:") {
            self.config().max_attempts_per_ip
        } else {
            self.config().max_attempts
        }
    }

    /// Seconds until the attempt may be made, when the identifier or the IP is locked.
    pub async fn locked(&self) -> Result<Option<u64>, StoreError> {
        if !self.config().enabled {
            return Ok(None);
        }
        let mut keys = vec![self.identifier_key.as_str()];
        keys.extend(self.ip_key.as_deref());
        let now = self.reg.now();
        let mut wait: Option<Duration> = None;
        for key in keys {
            let row = sqlx::query(
                "SELECT failures, last_failure_at FROM login_failures WHERE throttle_key = $1",
            )
            .bind(key)
            .fetch_optional(self.reg.store.pool())
            .await?;
            let Some(row) = row else { continue };
            let failures: i64 = row.try_get("failures")?;
            let last: i64 = row.try_get("last_failure_at")?;
            if let Some(left) = self.remaining(failures, last, self.limit_of(key), now) {
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        Ok(wait.map(ceil_secs))
    }

    fn remaining(
        &self,
        failures: i64,
        last_ms: i64,
        limit: u32,
        now: OffsetDateTime,
    ) -> Option<Duration> {
        let lock = self.config().lock_for(failures, limit)?;
        let until = portcullis_core::timefmt::from_unix_millis(last_ms) + lock;
        let left = until - now;
        (left.is_positive()).then(|| Duration::try_from(left).unwrap_or(Duration::ZERO))
    }

    /// Counts a failed attempt; the seconds to wait when this failure locked a key.
    pub async fn failed(&self) -> Result<Option<u64>, StoreError> {
        if !self.config().enabled {
            return Ok(None);
        }
        let now = self.reg.now();
        let now_ms = portcullis_core::timefmt::unix_millis(now);
        let reset = i64::try_from(self.config().reset_after.as_millis()).unwrap_or(i64::MAX);
        let stale_before = now_ms.saturating_sub(reset);
        let mut keys = vec![self.identifier_key.as_str()];
        keys.extend(self.ip_key.as_deref());
        let mut wait: Option<Duration> = None;
        for key in keys {
            let limit = self.limit_of(key);
            if limit == 0 {
                continue;
            }
            let row = sqlx::query(
                "INSERT INTO login_failures (throttle_key, failures, last_failure_at) VALUES ($1, 1, $2) \
                 ON CONFLICT (throttle_key) DO UPDATE SET \
                 failures = CASE WHEN login_failures.last_failure_at < $3 THEN 1 \
                 ELSE login_failures.failures + 1 END, \
                 last_failure_at = $2 \
                 RETURNING failures",
            )
            .bind(key)
            .bind(now_ms)
            .bind(stale_before)
            .fetch_one(self.reg.store.pool())
            .await?;
            let failures: i64 = row.try_get("failures")?;
            if let Some(left) = self.remaining(failures, now_ms, limit, now) {
                tracing::warn!(
                    kind = if key.starts_with("ip:") {
                        "ip"
                    } else {
                        "identifier"
                    },
                    failures,
                    lock_seconds = left.as_secs(),
                    "login locked after repeated failures"
                );
                wait = Some(wait.map_or(left, |w| w.max(left)));
            }
        }
        Ok(wait.map(ceil_secs))
    }

    /// A successful login: the identifier's counter starts over (the IP's does not).
    pub async fn succeeded(&self) -> Result<(), StoreError> {
        if !self.config().enabled {
            return Ok(());
        }
        sqlx::query("DELETE FROM login_failures WHERE throttle_key = $1")
            .bind(&self.identifier_key)
            .execute(self.reg.store.pool())
            .await?;
        Ok(())
    }
}

fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 || s == 0 {
        s + 1
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_doubles_up_to_the_cap() {
        let c = BruteForceConfig {
            lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(35),
            ..BruteForceConfig::default()
        };
        assert_eq!(c.lock_for(4, 5), None);
        assert_eq!(c.lock_for(5, 5), Some(Duration::from_secs(10)));
        assert_eq!(c.lock_for(6, 5), Some(Duration::from_secs(20)));
        assert_eq!(c.lock_for(7, 5), Some(Duration::from_secs(35)));
        assert_eq!(c.lock_for(900, 5), Some(Duration::from_secs(35)));
        assert_eq!(c.lock_for(900, 0), None);
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(2000)), 2);
    }
}
