//! Where webhooks may go. `https` only (unless `webhook_allow_http`); never a
//! cloud metadata address; not loopback, private, link-local or other
//! non-public addresses unless `webhook_allow_private_targets` (tests, the
//! demo). Checked when an endpoint is saved and again at every connection: the
//! client resolves names through [`CheckedResolver`], so a name that later
//! resolves to a refused address (DNS rebinding) is not reached either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What targets are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    pub allow_http: bool,
    pub allow_private: bool,
}

/// Cloud metadata services: refused whatever the policy.
const METADATA: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

/// Why a target is refused, in words for the 422.
pub fn refused_ip(ip: IpAddr, policy: TargetPolicy) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    if METADATA.contains(&ip) {
        return Some("is a cloud metadata address");
    }
    if policy.allow_private {
        return None;
    }
    let private = match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                // 100.64.0.0/10 (carrier-grade NAT), 198.18.0.0/15 (benchmarking)
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    };
    private.then_some("is a loopback, private or link-local address")
}

/// The URL's problems, for the 422 (empty: fine to store). Names are checked
/// by resolving them.
pub async fn check_url(raw: &str, policy: TargetPolicy) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|_| "must be an absolute URL".to_string())?;
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => return Err("must use https".into()),
        _ => return Err("must be an https URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    let host = match url.host() {
        Some(h) => h,
        None => return Err("must name a host".into()),
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(name) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| format!("host `{name}` does not resolve"))?
            .map(|a| a.ip())
            .collect(),
    };
    for ip in &addrs {
        if let Some(why) = refused_ip(*ip, policy) {
            return Err(format!("resolves to {ip}, which {why}"));
        }
    }
    if addrs.is_empty() {
        return Err("host does not resolve".into());
    }
    Ok(url)
}

/// Resolves names for the delivery client, keeping only allowed addresses.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver(pub TargetPolicy);

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| refused_ip(a.ip(), policy).is_none())
                .collect();
            if found.is_empty() {
                return Err(format!("`{}` resolves to no allowed address", name.as_str()).into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// The delivery client: no redirects, the policy's resolver, `timeout` per request.
pub fn client(policy: TargetPolicy, timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(CheckedResolver(policy)))
        .timeout(timeout)
        .user_agent(concat!("unicontacts-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_refused_always_private_unless_allowed() {
        let strict = TargetPolicy::default();
        let open = TargetPolicy {
            allow_http: true,
            allow_private: true,
        };
        for ip in ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(refused_ip(ip, open).is_some(), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.1.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "0.0.0.0",
            "100.64.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(refused_ip(ip, strict).is_some(), "{ip}");
            assert!(refused_ip(ip, open).is_none(), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(refused_ip(ip, strict).is_none(), "{ip}");
        }
    }

    #[tokio::test]
    async fn urls_are_checked_for_scheme_credentials_and_address() {
        let strict = TargetPolicy::default();
        assert!(check_url("http://93.184.216.34/hook", strict)
            .await
            .is_err());
        assert!(check_url("ftp://93.184.216.34/hook", strict).await.is_err());
        assert!(check_url("https://u:p@93.184.216.34/hook", strict)
            .await
            .is_err());
        assert!(check_url("https://127.0.0.1/hook", strict).await.is_err());
        assert!(check_url("https://localhost/hook", strict).await.is_err());
        assert!(check_url("https://[::1]/hook", strict).await.is_err());
        assert!(check_url("https://93.184.216.34/hook", strict)
            .await
            .is_ok());
        let open = TargetPolicy {
            allow_http: true,
            allow_private: true,
        };
        assert!(check_url("http://127.0.0.1:9/hook", open).await.is_ok());
        assert!(check_url("http://169.254.169.254/latest", open)
            .await
            .is_err());
    }
}
