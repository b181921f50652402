//! How a time is shown to people: China Standard Time (UTC+8, no daylight saving), to the
//! second, always with its zone. Pages and the console's human output both use [`shown`], so a
//! reconciliation run started at 06:54:55Z reads "2026-12-05 14:54:55 UTC+8" everywhere;
//! machine output (`--json`, the API, logs) keeps RFC 3339 UTC.

use chrono::{DateTime, FixedOffset, Offset, Utc};

/// UTC+8 (China Standard Time).
fn china() -> FixedOffset {
    // 8 hours is within ±24 h, so `east_opt` is always Some; UTC is an unreachable fallback.
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// `2026-12-05 14:54:55 UTC+8`.
pub fn shown(t: DateTime<Utc>) -> String {
    format!(
        "{} UTC+8",
        t.with_timezone(&china()).format("%Y-%m-%d %H:%M:%S")
    )
}

/// [`shown`], or "—" for no time.
pub fn shown_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "—".to_owned(), shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_utc_time_is_shown_in_china_time_with_its_zone() {
        let t = DateTime::parse_from_rfc3339("2026-12-05T06:54:55Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(shown(t), "2026-12-05 14:54:55 UTC+8");
        let late = DateTime::parse_from_rfc3339("2026-12-31T20:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(shown(late), "2027-01-01 04:00:00 UTC+8");
        assert_eq!(shown_opt(None), "—");
    }
}
