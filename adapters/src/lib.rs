//! Everything that speaks a provider's language (DESIGN.md §2): the [`Provider`]
//! trait the service calls, the canonical contact, the upstream HTTP client, and
//! per provider its wire types, client, mapping and simulator. It never touches
//! the database or the service's HTTP layer.

pub mod canonical;
pub mod capabilities;
pub mod chats;
pub mod error;
pub mod gateway;
pub mod json_split;
pub mod metrics;
pub mod periskope;
pub mod phone;
pub mod quota;
#[cfg(feature = "sim")]
pub mod sim;
pub mod upstream;
pub mod wacr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::sync::Arc;

pub use canonical::{CanonicalContact, ContactRecord};
pub use capabilities::{Capabilities, Operation, WriteField};
pub use error::AdapterError;
pub use upstream::{Upstream, UpstreamConfig, UpstreamStats};

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

/// A contact to write, in canonical terms; each provider takes what its
/// capabilities list for the operation (see [`ContactInput::fields`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactInput {
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// E.164 (`+919537851844`); each provider gets it in its own form.
    pub phone: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub kind: Option<canonical::ContactKind>,
    /// Replaces the contact's labels.
    pub labels: Option<Vec<String>>,
    pub is_internal: Option<bool>,
    pub notes: Option<String>,
    pub address: Option<canonical::Address>,
    /// WA.cr's status and source ids (they must exist at the provider).
    pub status_id: Option<i64>,
    pub source_id: Option<i64>,
    /// WA.cr CRM lists (`groups`); replaces the contact's lists.
    pub crm_list_ids: Option<Vec<i64>>,
}

impl ContactInput {
    /// The fields this input sets.
    pub fn fields(&self) -> Vec<WriteField> {
        let mut out = Vec::new();
        let mut set = |present: bool, f: WriteField| {
            if present {
                out.push(f);
            }
        };
        set(self.display_name.is_some(), WriteField::DisplayName);
        set(self.first_name.is_some(), WriteField::FirstName);
        set(self.last_name.is_some(), WriteField::LastName);
        set(self.phone.is_some(), WriteField::Phone);
        set(self.email.is_some(), WriteField::Email);
        set(self.company.is_some(), WriteField::Company);
        set(self.kind.is_some(), WriteField::Kind);
        set(self.labels.is_some(), WriteField::Labels);
        set(self.is_internal.is_some(), WriteField::IsInternal);
        set(self.notes.is_some(), WriteField::Notes);
        set(self.address.is_some(), WriteField::Address);
        set(self.status_id.is_some(), WriteField::StatusId);
        set(self.source_id.is_some(), WriteField::SourceId);
        set(self.crm_list_ids.is_some(), WriteField::CrmListIds);
        out
    }

    /// The name to create a contact under where a provider has one name field:
    /// the display name, else first and last joined.
    pub fn full_name(&self) -> Option<String> {
        self.display_name.clone().or_else(|| {
            let parts: Vec<&str> = [&self.first_name, &self.last_name]
                .into_iter()
                .flatten()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    }
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

/// A provider's client. The write methods' defaults refuse; a client overrides
/// those its provider's `CAPABILITIES` list (a test holds the two together), and
/// callers go through [`Adapter`], which checks the capabilities first.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    /// Counters of the upstream traffic so far.
    fn stats(&self) -> UpstreamStats;

    async fn get_contact(&self, remote_id: &str) -> Result<ContactRecord, AdapterError>;
    /// A page of contacts; `None` starts at the beginning.
    async fn list_contacts(&self, page: Option<&PageToken>) -> Result<ContactPage, AdapterError>;
    /// A page of the chats the contacts' chat fields come from; `None`: the
    /// provider keeps none apart from its contacts.
    async fn list_chats(
        &self,
        _page: Option<&PageToken>,
    ) -> Result<Option<chats::ChatPage>, AdapterError> {
        Ok(None)
    }
    /// One chat by id, for a group its list named without members; `None`: gone.
    async fn get_chat(&self, _chat_id: &str) -> Result<Option<chats::ChatRecord>, AdapterError> {
        Err(AdapterError::Unsupported {
            operation: "get_chat",
        })
    }

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

    /// The shared quota, or a new one of the client's own.
    pub fn quota(&self) -> Arc<quota::Quota> {
        self.quota.clone().unwrap_or_else(|| {
            quota::Quota::new(quota::QuotaConfig {
                style: self.kind.rate_style(),
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

/// A connection's provider client behind its provider's capabilities: an
/// operation the provider lacks is refused here, before anything is sent.
#[derive(Clone)]
pub struct Adapter {
    client: Arc<dyn Provider>,
}

impl Adapter {
    pub fn new(client: Arc<dyn Provider>) -> Self {
        Self { client }
    }

    pub fn kind(&self) -> ProviderKind {
        self.client.kind()
    }

    pub fn capabilities(&self) -> &'static Capabilities {
        self.kind().capabilities()
    }

    pub fn stats(&self) -> UpstreamStats {
        self.client.stats()
    }

    fn check(&self, op: Operation) -> Result<(), AdapterError> {
        if self.capabilities().supports(op) {
            Ok(())
        } else {
            Err(AdapterError::Unsupported {
                operation: op.as_str(),
            })
        }
    }

    pub async fn get_contact(&self, remote_id: &str) -> Result<ContactRecord, AdapterError> {
        self.check(Operation::Get)?;
        self.client.get_contact(remote_id).await
    }

    pub async fn list_contacts(
        &self,
        page: Option<&PageToken>,
    ) -> Result<ContactPage, AdapterError> {
        self.check(Operation::List)?;
        self.client.list_contacts(page).await
    }

    /// A page of the provider's chats (`None`: it has none to list).
    pub async fn list_chats(
        &self,
        page: Option<&PageToken>,
    ) -> Result<Option<chats::ChatPage>, AdapterError> {
        self.check(Operation::List)?;
        self.client.list_chats(page).await
    }

    /// One chat of the provider's (`None`: not there).
    pub async fn get_chat(&self, chat_id: &str) -> Result<Option<chats::ChatRecord>, AdapterError> {
        self.check(Operation::List)?;
        self.client.get_chat(chat_id).await
    }

    pub async fn create_contact(
        &self,
        input: &ContactInput,
    ) -> Result<ContactRecord, AdapterError> {
        self.check(Operation::Create)?;
        self.in_our_terms(self.client.create_contact(input).await)
    }

    /// A provider's validation errors under our field names, each field's
    /// messages as a list: `{"first_name": ["First name is required"]}`.
    fn in_our_terms<T>(&self, result: Result<T, AdapterError>) -> Result<T, AdapterError> {
        result.map_err(|e| match e {
            AdapterError::Rejected {
                status,
                message,
                fields,
            } => AdapterError::Rejected {
                status,
                message,
                fields: self.kind().fields_in_our_terms(&fields),
            },
            other => other,
        })
    }

    pub async fn update_contact(
        &self,
        remote_id: &str,
        input: &ContactInput,
    ) -> Result<ContactRecord, AdapterError> {
        self.check(Operation::Update)?;
        self.in_our_terms(self.client.update_contact(remote_id, input).await)
    }

    pub async fn delete_contact(&self, remote_id: &str) -> Result<(), AdapterError> {
        self.check(Operation::Delete)?;
        self.client.delete_contact(remote_id).await
    }

    pub async fn batch_create(
        &self,
        inputs: &[ContactInput],
    ) -> Result<BatchOutcome, AdapterError> {
        self.check(Operation::BatchCreate)?;
        self.client.batch_create(inputs).await
    }

    pub async fn batch_delete(&self, remote_ids: &[String]) -> Result<BatchOutcome, AdapterError> {
        self.check(Operation::BatchDelete)?;
        self.client.batch_delete(remote_ids).await
    }
}

/// Builds the adapter of a connection.
pub fn connect(config: ConnectionConfig) -> Result<Adapter, AdapterError> {
    let size = config.page_size.unwrap_or(config.kind.max_page_size());
    let client: Arc<dyn Provider> = match config.kind {
        ProviderKind::Periskope => {
            Arc::new(periskope::client::PeriskopeClient::new(config)?.with_page_size(size))
        }
        ProviderKind::Wacr => Arc::new(wacr::client::WacrClient::new(config)?.with_page_size(size)),
        ProviderKind::Gateway => {
            Arc::new(gateway::client::GatewayClient::new(config)?.with_page_size(size))
        }
    };
    Ok(Adapter::new(client))
}

/// A provider's own id of a contact, in its canonical form: Periskope
/// `919537851844@c.us`, WA.cr `42`, Gateway `205227043110953@lid`. Made only by
/// [`ProviderKind::parse_remote_id`], so a `RemoteId` is always one the provider
/// can have.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteId(String);

impl RemoteId {
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

    /// The value as the provider takes it (Periskope's `x-phone` as digits or a
    /// `phone-…` id; a session trimmed), or why it cannot be one.
    pub fn normalize(self, raw: &str) -> Result<String, &'static str> {
        match self {
            Self::ApiKey => Ok(raw.to_string()),
            Self::Phone => periskope::client::x_phone(raw)
                .ok_or("must be a phone number with country code, or a `phone-…` id"),
            Self::Session => Ok(raw.trim().to_string()),
        }
    }

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

    /// How the provider tells its rate limit (its module's `RATE_STYLE`).
    pub fn rate_style(self) -> quota::RateStyle {
        match self {
            Self::Periskope => periskope::RATE_STYLE,
            Self::Wacr => wacr::RATE_STYLE,
            Self::Gateway => gateway::RATE_STYLE,
        }
    }

    /// The most records a list page of the provider holds.
    pub fn max_page_size(self) -> u32 {
        match self {
            Self::Periskope => periskope::client::MAX_PAGE,
            Self::Wacr => wacr::client::MAX_PAGE,
            Self::Gateway => gateway::client::MAX_PAGE,
        }
    }

    /// A provider's per-field errors (each provider's shape) under our field
    /// names, each with its messages.
    pub fn fields_in_our_terms(self, fields: &serde_json::Value) -> serde_json::Value {
        let Some(map) = fields.as_object() else {
            return serde_json::Value::Object(Default::default());
        };
        let mut out = serde_json::Map::new();
        for (name, value) in map {
            let ours = match self {
                Self::Periskope => periskope::client::canonical_field(name),
                Self::Wacr => wacr::client::canonical_field(name),
                Self::Gateway => name.as_str(),
            };
            let messages: Vec<serde_json::Value> = match value {
                serde_json::Value::Array(items) => items
                    .iter()
                    .filter_map(|m| m.as_str().map(|s| serde_json::Value::String(s.into())))
                    .collect(),
                serde_json::Value::String(m) => vec![serde_json::Value::String(m.clone())],
                other => other
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(|m| vec![serde_json::Value::String(m.into())])
                    .unwrap_or_default(),
            };
            let slot = out
                .entry(ours.to_string())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(list) = slot {
                list.extend(messages);
            }
        }
        serde_json::Value::Object(out)
    }

    /// What a create at the provider cannot do without: each missing field, and why.
    pub fn missing_on_create(self, input: &ContactInput) -> Vec<(WriteField, &'static str)> {
        let mut missing = Vec::new();
        match self {
            // `contact_id` (the phone) and `contact_name` are required (§1.2).
            Self::Periskope => {
                if input.phone.is_none() {
                    missing.push((
                        WriteField::Phone,
                        "is required by Periskope (it is the contact's id)",
                    ));
                }
                if input.full_name().is_none() {
                    missing.push((
                        WriteField::DisplayName,
                        "is required by Periskope (or first_name and last_name)",
                    ));
                }
            }
            // Required on create (§2.3).
            Self::Wacr => {
                for (present, field) in [
                    (input.first_name.is_some(), WriteField::FirstName),
                    (input.last_name.is_some(), WriteField::LastName),
                    (input.phone.is_some(), WriteField::Phone),
                    (input.kind.is_some(), WriteField::Kind),
                    (input.status_id.is_some(), WriteField::StatusId),
                    (input.source_id.is_some(), WriteField::SourceId),
                ] {
                    if !present {
                        missing.push((field, "is required by WA.cr to create a contact"));
                    }
                }
            }
            Self::Gateway => {}
        }
        missing
    }

    /// What the provider can do (its module's `CAPABILITIES`).
    pub fn capabilities(self) -> &'static Capabilities {
        match self {
            Self::Periskope => &periskope::CAPABILITIES,
            Self::Wacr => &wacr::CAPABILITIES,
            Self::Gateway => &gateway::CAPABILITIES,
        }
    }

    /// The provider's id of a contact from any form people write it in.
    pub fn parse_remote_id(self, raw: &str) -> Result<RemoteId, InvalidRemoteId> {
        let parsed = match self {
            Self::Periskope => periskope::client::contact_digits(raw)
                .ok()
                .map(|d| format!("{d}@c.us")),
            Self::Wacr => wacr::client::contact_id(raw).ok().map(|id| id.to_string()),
            Self::Gateway => phone::normalize_lid(raw),
        };
        parsed.map(RemoteId).ok_or(InvalidRemoteId {
            kind: self,
            forms: self.remote_id_forms(),
        })
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
    fn remote_ids_are_taken_in_the_forms_people_have_them() {
        let parse = |k: ProviderKind, raw: &str| k.parse_remote_id(raw).map(RemoteId::into_string);
        for raw in ["919537851844", "919537851844@c.us", "+91 95378 51844"] {
            assert_eq!(
                parse(ProviderKind::Periskope, raw).as_deref(),
                Ok("919537851844@c.us"),
                "{raw}"
            );
        }
        assert_eq!(parse(ProviderKind::Wacr, "42").as_deref(), Ok("42"));
        for raw in ["205227043110953", "205227043110953@lid"] {
            assert_eq!(
                parse(ProviderKind::Gateway, raw).as_deref(),
                Ok("205227043110953@lid")
            );
        }
        assert!(parse(ProviderKind::Wacr, "abc").is_err());
        assert!(parse(ProviderKind::Gateway, "919537851844@c.us").is_err());
        let err = ProviderKind::Periskope
            .parse_remote_id("205227043110953@lid")
            .expect_err("a LID is no Periskope id");
        assert!(err
            .to_string()
            .starts_with("is not a periskope contact id (a phone number"));
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
