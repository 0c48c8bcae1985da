//! Timestamps as the anchored APIs write them.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Formats a UTC time as RFC 3339 with fractional seconds (`2026-11-28T11:38:33.123456Z`),
/// the shape Kratos and Oathkeeper emit.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Milliseconds since the Unix epoch, the portable timestamp column type in the store.
pub fn unix_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The inverse of [`unix_millis`]; out-of-range values clamp to the epoch.
pub fn from_unix_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_and_format() {
        let t = time::macros::datetime!(2026-11-28 11:38:33.123 UTC);
        assert_eq!(from_unix_millis(unix_millis(t)), t);
        assert_eq!(rfc3339(t), "2026-11-28T11:38:33.123Z");
    }
}
