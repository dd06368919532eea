//! The [`Adapter`] gate every caller goes through (a connection's client behind
//! its provider's capabilities: an operation the provider lacks is refused
//! before anything is sent), [`connect`], which builds it, and what each
//! provider can do, asked of its kind: the one place that names every
//! provider's module.

use std::sync::Arc;

use crate::canonical::ContactRecord;
use crate::capabilities::{Capabilities, Operation, WriteField};
use crate::chats;
use crate::connection_config::ConnectionConfig;
use crate::error::AdapterError;
use crate::paging::PageToken;
use crate::provider::{BatchOutcome, ContactInput, ContactPage, Provider};
use crate::provider_kind::{CredentialField, InvalidRemoteId, ProviderKind, RemoteId};
use crate::upstream::UpstreamStats;
use crate::{gateway, periskope, phone, quota, wacr};

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

impl CredentialField {
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
}

/// What each provider can do and how it names things: the answers live in each
/// provider's module; this asks the right one.
impl ProviderKind {
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
        parsed.map(RemoteId::checked).ok_or(InvalidRemoteId {
            kind: self,
            forms: self.remote_id_forms(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
