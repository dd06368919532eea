//! Our opaque ids: a type prefix and a lowercase ULID, so they sort by creation time
//! and cursor paging over them follows creation order.

pub const ORG: &str = "org";
pub const API_KEY: &str = "key";
pub const CONNECTION: &str = "con";
pub const CONTACT: &str = "ctc";
pub const SYNC_RUN: &str = "run";
pub const PERSON: &str = "per";
pub const WEBHOOK: &str = "whk";
pub const DELIVERY: &str = "dlv";
pub const IDENTITY_OPERATION: &str = "idop";
pub const BLOCKED_VALUE: &str = "blk";
pub const SUPPRESSION: &str = "sup";

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// Now, as the naive UTC timestamp both backends store (microsecond precision,
/// which is what PostgreSQL keeps, so a value reads back equal to what was written).
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// RFC 3339 UTC, as every timestamp in our JSON.
pub fn rfc3339(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A timestamp as SQLite keeps it (`2026-12-06 15:04:05.123456`, the fraction
/// optional, or `T` between date and time), parsed by hand: diesel's parse goes
/// through chrono's format strings, a cost that shows on a list page. Anything
/// else is left to chrono.
pub fn parse_sql_timestamp(s: &str) -> Option<chrono::NaiveDateTime> {
    fn digits(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    }
    let b = s.as_bytes();
    let fast = || -> Option<chrono::NaiveDateTime> {
        if b.len() < 19
            || b[4] != b'-'
            || b[7] != b'-'
            || !matches!(b[10], b' ' | b'T')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let nanos = match &b[19..] {
            [] => 0,
            [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
                digits(frac)? * 10u32.pow(9 - frac.len() as u32)
            }
            _ => return None,
        };
        let date = chrono::NaiveDate::from_ymd_opt(
            i32::try_from(digits(&b[0..4])?).ok()?,
            digits(&b[5..7])?,
            digits(&b[8..10])?,
        )?;
        let time = chrono::NaiveTime::from_hms_nano_opt(
            digits(&b[11..13])?,
            digits(&b[14..16])?,
            digits(&b[17..19])?,
            nanos,
        )?;
        Some(date.and_time(time))
    };
    fast().or_else(|| {
        ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_timestamps_parse_as_chrono_parses_them() {
        let chrono_parse = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
                .ok()
        };
        let written = now().format("%F %T%.f").to_string();
        for s in [
            written.as_str(),
            "2026-12-06 15:04:05",
            "2026-12-06 15:04:05.1",
            "2026-12-06 15:04:05.000120",
            "2026-12-06 15:04:05.123456789",
            "2026-12-06T00:00:00.5",
            "2024-02-29 23:59:59.999999",
            // Past nanoseconds: left to chrono, which reads them.
            "2026-12-06 15:04:05.1234567890",
        ] {
            let parsed = parse_sql_timestamp(s);
            assert!(parsed.is_some(), "{s}");
            assert_eq!(parsed, chrono_parse(s), "{s}");
        }
        assert_eq!(
            parse_sql_timestamp("2026-12-06 15:04:05.000120")
                .map(|t| t.and_utc().timestamp_subsec_micros()),
            Some(120)
        );
        for s in [
            "",
            "2026-12-06",
            "2026-13-06 15:04:05",
            "2025-02-29 10:00:00",
            "2026-12-06 24:00:00",
            "2026-12-06 15:04:05.",
            "2026-12-06 15:04:05Z",
            "2026-12-06 1a:04:05",
            "2026-12-06 15:04:05.12é",
        ] {
            assert_eq!(parse_sql_timestamp(s), None, "{s}");
        }
    }

    #[test]
    fn ids_carry_their_prefix_and_sort_by_creation() {
        let a = new_id(CONNECTION);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id(CONNECTION);
        assert!(a.starts_with("con_") && a.len() == 30, "{a}");
        assert!(a < b);
    }
}
