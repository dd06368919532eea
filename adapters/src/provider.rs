//! The [`Provider`] trait every provider's client implements, and what it
//! speaks: pages of contacts, a contact to write, a batch's outcome.

use serde::{Deserialize, Serialize};

use crate::canonical::{self, ContactRecord};
use crate::capabilities::WriteField;
use crate::chats;
use crate::error::AdapterError;
use crate::paging::PageToken;
use crate::provider_kind::ProviderKind;
use crate::upstream::UpstreamStats;

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
/// callers go through [`crate::adapter::Adapter`], which checks the capabilities first.
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
