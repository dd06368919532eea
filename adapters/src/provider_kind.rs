//! [`ProviderKind`]: the providers unicontacts connects to, their names, the
//! credentials each takes and the forms of their contact ids; a provider's
//! [`RemoteId`]. What each provider can do (its capabilities, limits, how its
//! ids parse, the client it builds) is answered in `adapter.rs`, above the
//! providers' modules, so that they can name their own kind without a circle.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A provider's own id of a contact, in its canonical form: Periskope
/// `919537851844@c.us`, WA.cr `42`, Gateway `205227043110953@lid`. Made only by
/// [`ProviderKind::parse_remote_id`] (in `adapter.rs`), so a `RemoteId` is always one the provider
/// can have.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteId(String);

impl RemoteId {
    /// For `parse_remote_id` alone, which knows the id is one the provider can have.
    pub(crate) fn checked(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for RemoteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A remote id a provider cannot have; the message names the forms it takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a {kind} contact id ({forms})")]
pub struct InvalidRemoteId {
    pub kind: ProviderKind,
    pub forms: &'static str,
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

    /// The forms `parse_remote_id` takes, in words.
    pub fn remote_id_forms(self) -> &'static str {
        match self {
            Self::Periskope => {
                "a phone number such as 919537851844, 919537851844@c.us or +91 95378 51844"
            }
            Self::Wacr => "a positive integer such as 42",
            Self::Gateway => "a LID such as 205227043110953 or 205227043110953@lid",
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
