//! The rules, one module per domain noun, called alike by the HTTP routes, the
//! CLI, the demo, benches and tests. Services take the shared [`State`] and plain
//! values and answer domain values or an [`ApiError`]; they never see actix.
//!
//! [`State`]: crate::state::State
//! [`ApiError`]: crate::error::ApiError

pub mod api_keys;
pub mod audit;
pub mod connections;
pub mod contact_writes;
pub mod contacts;
pub mod events;
pub mod health;
pub mod identity;
pub mod people;
pub mod sync_runs;
pub mod webhooks;

/// The form of every URL a client gives us (a connection's `base_url`, a webhook's
/// `url`): `http(s)://`, a host name whose last label starts with a letter, an
/// IPv4 address or a bracketed IPv6 one, an optional port (1 to 65535), an optional plain path; no
/// credentials, query or fragment. The OpenAPI document carries the same rule as
/// this pattern, so what one accepts the other does.
pub const URL_PATTERN: &str = concat!(
    r"^[hH][tT][tT][pP][sS]?://",
    r"((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}",
    r"|\[[0-9A-Fa-f:.]+\]|([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*)",
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    r"(/[A-Za-z0-9._~/-]*)?$"
);

fn port_ok_of(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 5
        && !p.starts_with('0')
        && p.bytes().all(|b| b.is_ascii_digit())
        && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n))
}

/// What a URL outside [`URL_PATTERN`] is told.
pub const URL_FORM: &str =
    "must be an http(s) URL: a host name or IP address, an optional port and a plain path";

/// Whether `url` has the form of [`URL_PATTERN`].
pub fn url_form(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    else {
        return false;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path_ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._~/-".contains(c));
    let (host, port) = match authority.strip_prefix('[').and_then(|a| a.split_once(']')) {
        Some((v6, after)) => {
            let v6_ok = !v6.is_empty()
                && v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
            match (v6_ok, after) {
                (true, "") => (authority, None),
                (true, a) if a.starts_with(':') => (authority, Some(&a[1..])),
                _ => return false,
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.starts_with('[') {
        return path_ok && port.is_none_or(port_ok_of);
    }
    let port_ok = port.is_none_or(port_ok_of);
    let octet = |o: &str| {
        !o.is_empty()
            && o.len() <= 3
            && o.bytes().all(|b| b.is_ascii_digit())
            && (o == "0" || !o.starts_with('0'))
            && o.parse::<u32>().is_ok_and(|n| n <= 255)
    };
    let labels: Vec<&str> = host.split('.').collect();
    let ipv4 = labels.len() == 4 && labels.iter().all(|o| octet(o));
    let name = labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && labels
            .last()
            .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()));
    path_ok && port_ok && (ipv4 || name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_form_is_the_documented_pattern() {
        for ok in [
            "https://api.periskope.app/v1",
            "HTTP://127.0.0.1:42515/v1",
            "http://localhost",
            "https://a-b.example.com:65535/x/y_z~.-",
            "http://0.0.0.0:1",
            "https://[::1]/hook",
            "https://[2001:db8::1]:8443",
        ] {
            assert!(url_form(ok), "{ok}");
        }
        for bad in [
            "ftp://example.com",
            "https://user:pw@example.com",
            "https://example.com?x=1",
            "https://example.com/#f",
            "https://example.com:0",
            "https://example.com:65536",
            "https://example.com:080",
            "https://1.2.3.4.5",
            "https://256.1.1.1",
            "https://01.1.1.1",
            "https://example.123",
            "https://example.com/a*b",
            " https://example.com",
            "https://",
            "https://a..b",
            "https://[::1",
            "https://[zz]",
        ] {
            assert!(!url_form(bad), "{bad}");
        }
    }
}
