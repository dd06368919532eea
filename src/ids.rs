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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_sort_by_creation() {
        let a = new_id(CONNECTION);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id(CONNECTION);
        assert!(a.starts_with("con_") && a.len() == 30, "{a}");
        assert!(a < b);
    }
}
