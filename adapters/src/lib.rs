//! Everything that speaks a provider's language. This release holds the provider
//! catalogue the service validates connections against; the wire types, clients,
//! mappings and simulators of each provider land here next (DESIGN.md §2).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
