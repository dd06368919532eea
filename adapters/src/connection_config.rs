//! [`ConnectionConfig`]: what a provider's client is built from.

use std::sync::Arc;

use crate::provider_kind::ProviderKind;
use crate::quota;
use crate::upstream::UpstreamConfig;

/// The settings an adapter is built from (the connection, less what the service keeps).
#[derive(Clone)]
pub struct ConnectionConfig {
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_key: String,
    pub phone: Option<String>,
    pub session: Option<String>,
    pub default_country: Option<String>,
    pub upstream: UpstreamConfig,
    /// The credential's shared quota; `None`: one of the client's own, at
    /// `upstream.rate_limit_per_second`.
    pub quota: Option<Arc<quota::Quota>>,
    /// Records per list page; `None`: the most the provider gives.
    pub page_size: Option<u32>,
}

impl ConnectionConfig {
    /// The credential's identity: provider, base URL and API key, hashed (the key
    /// is never kept in clear). A quota belongs to it, not to a connection.
    pub fn credential_id(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            self.kind.as_str(),
            self.base_url.trim_end_matches('/'),
            &self.api_key,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        format!("{}:{}", self.kind, hex_of(&h.finalize()[..16]))
    }

    /// The shared quota, or a new one of the client's own, reading the
    /// provider's headers in `style` (its module's `RATE_STYLE`).
    pub fn quota(&self, style: quota::RateStyle) -> Arc<quota::Quota> {
        self.quota.clone().unwrap_or_else(|| {
            quota::Quota::new(quota::QuotaConfig {
                style,
                per_second: self.upstream.rate_limit_per_second,
                background_floor: 0.2,
            })
        })
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}
