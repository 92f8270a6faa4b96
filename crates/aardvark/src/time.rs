//! Every time format the product writes or reads, in one place: stored times (upstream's
//! `lastUpdated` form, UTC), RFC 3339 for the operator's endpoints, RFC 1123 for upstream's
//! `lastUpdated` on the wire, epoch seconds for `/metrics`, and days for reports. One parser
//! reads stored times back. A leaf: imports nothing of the crate.

use std::time::SystemTime;

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};

/// RFC 3339 in UTC, seconds precision: how the operator's endpoints write times.
const RFC3339_SECONDS: &str = "%Y-%m-%dT%H:%M:%SZ";

/// How times are stored (upstream's `lastUpdated`: UTC, microseconds).
const STORED: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// The current time as it is stored.
pub fn stored_now() -> String {
    format_stored(Utc::now().naive_utc())
}

/// `time` (UTC) as it is stored.
pub fn format_stored(time: NaiveDateTime) -> String {
    time.format(STORED).to_string()
}

/// A stored time read back: ours (`YYYY-MM-DD HH:MM:SS.ffffff`), upstream's with or without
/// fractions, and the same with a `T`, a `Z` or `+00:00`, all UTC.
pub fn parse_stored(stored: &str) -> Option<NaiveDateTime> {
    let trimmed = stored
        .trim()
        .trim_end_matches("+00:00")
        .trim_end_matches('Z');
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(trimmed, format).ok())
}

/// A stored time in RFC 3339 (UTC, seconds precision). Text that is not a stored time is
/// passed through.
pub fn rfc3339_seconds(stored: &str) -> String {
    parse_stored(stored)
        .map(|time| time.format(RFC3339_SECONDS).to_string())
        .unwrap_or_else(|| stored.to_owned())
}

/// Epoch milliseconds in RFC 3339 (UTC, seconds precision).
pub fn rfc3339_seconds_from_millis(ms: i64) -> Option<String> {
    // Not `format(RFC3339_SECONDS)`: that reads the format string at every call, and findings
    // write several of these per principal.
    DateTime::from_timestamp_millis(ms).map(|time| {
        if (0..=9999).contains(&time.year()) {
            time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        } else {
            time.format(RFC3339_SECONDS).to_string()
        }
    })
}

/// A stored time as seconds since the epoch (for `/metrics`).
pub fn epoch_seconds(stored: &str) -> Option<f64> {
    parse_stored(stored).map(|time| time.and_utc().timestamp_millis() as f64 / 1000.0)
}

/// A stored time as upstream sent `lastUpdated`: RFC 1123 in GMT, seconds precision. Text that
/// is not a stored time is passed through rather than hidden.
pub fn rfc1123(stored: &str) -> String {
    match parse_stored(stored) {
        Some(time) => httpdate::fmt_http_date(SystemTime::from(time.and_utc())),
        None => stored.to_owned(),
    }
}

/// The day (`YYYY-MM-DD`, UTC) of epoch milliseconds.
pub fn day_from_millis(ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(ms).map(|time| time.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_flask() {
        assert_eq!(
            rfc1123("2026-11-24 08:33:58.107145"),
            "Tue, 24 Nov 2026 08:33:58 GMT"
        );
        assert_eq!(
            rfc1123("2026-11-22 19:54:58"),
            "Sun, 22 Nov 2026 19:54:58 GMT"
        );
        assert_eq!(
            rfc1123("2026-11-22T19:54:58Z"),
            "Sun, 22 Nov 2026 19:54:58 GMT"
        );
        assert_eq!(rfc1123("garbage"), "garbage");
        assert_eq!(
            rfc3339_seconds("2026-11-24 08:33:58.107145"),
            "2026-11-24T08:33:58Z"
        );
        assert_eq!(rfc3339_seconds("garbage"), "garbage");
    }

    #[test]
    fn stored_times_read_back_as_written() {
        let time = DateTime::from_timestamp_micros(1_764_000_000_123_456)
            .unwrap()
            .naive_utc();
        let written = format_stored(time);
        assert_eq!(written, "2025-11-24 16:00:00.123456");
        assert_eq!(parse_stored(&written), Some(time));
        assert_eq!(
            rfc3339_seconds_from_millis(1_764_000_000_123).as_deref(),
            Some("2025-11-24T16:00:00Z")
        );
        assert_eq!(
            day_from_millis(1_764_000_000_123).as_deref(),
            Some("2025-11-24")
        );
    }

    #[test]
    fn rfc3339_seconds_are_written_as_the_format_string_writes_them() {
        for ms in [
            0,
            1,
            999,
            86_399_999,
            1_577_836_800_000,
            1_784_316_083_456,
            -1_000,
            253_402_300_799_000,
            253_402_300_800_000,
        ] {
            let time = DateTime::from_timestamp_millis(ms).unwrap();
            assert_eq!(
                rfc3339_seconds_from_millis(ms),
                Some(time.format(RFC3339_SECONDS).to_string()),
                "{ms}"
            );
        }
    }
}
