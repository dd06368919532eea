//! Everything that speaks a provider's language (DESIGN.md §2): the [`Provider`]
//! trait the service calls, the canonical contact, the upstream HTTP client, and
//! per provider its wire types, client, mapping and simulator. It never touches
//! the database or the service's HTTP layer.

pub mod canonical;
pub mod error;
pub mod gateway;
pub mod periskope;
pub mod phone;
#[cfg(feature = "sim")]
pub mod sim;
pub mod upstream;
pub mod wacr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use canonical::{CanonicalContact, ContactRecord};
pub use error::AdapterError;
pub use upstream::{Upstream, UpstreamConfig, UpstreamStats};

/// What an adapter can do; calling anything else returns `AdapterError::Unsupported`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub get: bool,
    pub list: bool,
    pub create: bool,
    pub update: bool,
    pub delete: bool,
    pub batch_create: bool,
    pub batch_delete: bool,
}

/// An opaque position in a provider's list: an offset, a page number or a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageToken(pub String);

/// One page of a provider's contacts.
#[derive(Debug, Clone)]
pub struct ContactPage {
    pub contacts: Vec<ContactRecord>,
    /// `None` after the last page.
    pub next: Option<PageToken>,
    /// The list items are thin (the Gateway's): the full record needs `get_contact`.
    pub items_are_partial: bool,
}

/// A contact to create, in canonical terms; each provider takes what it supports.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContactInput {
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Any written form; providers get it in theirs.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub kind: Option<canonical::ContactKind>,
    pub labels: Option<Vec<String>>,
    pub is_internal: Option<bool>,
    pub notes: Option<String>,
    /// Provider-specific fields passed through as they are (WA.cr `status_id`, `source_id`, …).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Outcome of a batch write.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BatchOutcome {
    /// Created records, for batch creates that return them.
    pub created: Vec<ContactRecord>,
    pub succeeded_count: u64,
    pub failed_count: u64,
    /// (index in the request, reason), where the provider says which.
    pub failures: Vec<(usize, String)>,
}

/// One provider connection, as the service sees it.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    fn capabilities(&self) -> Capabilities;
    /// Counters of the upstream traffic so far.
    fn stats(&self) -> UpstreamStats;

    async fn get_contact(&self, remote_id: &str) -> Result<ContactRecord, AdapterError>;
    /// A page of contacts; `None` starts at the beginning.
    async fn list_contacts(&self, page: Option<&PageToken>) -> Result<ContactPage, AdapterError>;

    async fn create_contact(&self, _input: &ContactInput) -> Result<ContactRecord, AdapterError> {
        Err(AdapterError::Unsupported {
            operation: "create",
        })
    }
    async fn update_contact(
        &self,
        _remote_id: &str,
        _input: &ContactInput,
    ) -> Result<ContactRecord, AdapterError> {
        Err(AdapterError::Unsupported {
            operation: "update",
        })
    }
    async fn delete_contact(&self, _remote_id: &str) -> Result<(), AdapterError> {
        Err(AdapterError::Unsupported {
            operation: "delete",
        })
    }
    async fn batch_create(&self, _inputs: &[ContactInput]) -> Result<BatchOutcome, AdapterError> {
        Err(AdapterError::Unsupported {
            operation: "batch create",
        })
    }
    async fn batch_delete(&self, _remote_ids: &[String]) -> Result<BatchOutcome, AdapterError> {
        Err(AdapterError::Unsupported {
            operation: "batch delete",
        })
    }
}

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

/// Builds the adapter of a connection.
pub fn connect(config: ConnectionConfig) -> Result<std::sync::Arc<dyn Provider>, AdapterError> {
    Ok(match config.kind {
        ProviderKind::Periskope => {
            std::sync::Arc::new(periskope::client::PeriskopeClient::new(config)?)
        }
        ProviderKind::Wacr => std::sync::Arc::new(wacr::client::WacrClient::new(config)?),
        ProviderKind::Gateway => std::sync::Arc::new(gateway::client::GatewayClient::new(config)?),
    })
}

/// The upstream CRMs unicontacts connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Periskope (`api.periskope.app/v1`).
    Periskope,
    /// WA.cr APP API v2.
    Wacr,
    /// WhatsApp Gateway (quick-whatsapp-gateway).
    Gateway,
}

/// A credential field a provider needs to be called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialField {
    ApiKey,
    Phone,
    Session,
}

impl CredentialField {
    pub const ALL: [CredentialField; 3] = [Self::ApiKey, Self::Phone, Self::Session];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Phone => "phone",
            Self::Session => "session",
        }
    }
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [Self::Periskope, Self::Wacr, Self::Gateway];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Periskope => "periskope",
            Self::Wacr => "wacr",
            Self::Gateway => "gateway",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The public base URL, for providers that have one. WA.cr is white-labelled
    /// (several hosts) and the Gateway is self-hosted, so both need one given.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::Periskope => Some("https://api.periskope.app/v1"),
            Self::Wacr | Self::Gateway => None,
        }
    }

    /// The credential fields this provider's API needs, all of them required.
    pub fn credential_fields(self) -> &'static [CredentialField] {
        match self {
            // Bearer key plus the `x-phone` header that picks the connected phone.
            Self::Periskope => &[CredentialField::ApiKey, CredentialField::Phone],
            Self::Wacr => &[CredentialField::ApiKey],
            // Bearer key plus the session whose stored contacts we read.
            Self::Gateway => &[CredentialField::ApiKey, CredentialField::Session],
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_round_trip_through_parse_and_serde() {
        for p in ProviderKind::ALL {
            assert_eq!(ProviderKind::parse(p.as_str()), Some(p));
            let json = serde_json::to_string(&p).expect("serialize");
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert_eq!(ProviderKind::parse("Periskope"), None);
    }

    #[test]
    fn only_periskope_has_a_default_base_url() {
        assert_eq!(
            ProviderKind::Periskope.default_base_url(),
            Some("https://api.periskope.app/v1")
        );
        assert!(ProviderKind::Wacr.default_base_url().is_none());
        assert!(ProviderKind::Gateway.default_base_url().is_none());
    }
}
