//! What each provider can do, declared once per provider (its module's
//! `CAPABILITIES`): the operations, and the canonical fields each write takes.
//! `Adapter` (see `lib.rs`) gates every call on it, so an operation a provider
//! lacks is refused before anything is sent, whatever its client implements.

use serde::Serialize;
use utoipa::ToSchema;

/// An operation on a provider's contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Get,
    List,
    Create,
    Update,
    Delete,
    BatchCreate,
    BatchDelete,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Self::Get,
        Self::List,
        Self::Create,
        Self::Update,
        Self::Delete,
        Self::BatchCreate,
        Self::BatchDelete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::BatchCreate => "batch_create",
            Self::BatchDelete => "batch_delete",
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A canonical field a write can set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteField {
    DisplayName,
    FirstName,
    LastName,
    Phone,
    Email,
    Company,
    Kind,
    Labels,
    IsInternal,
    Notes,
    Address,
    StatusId,
    SourceId,
    CrmListIds,
}

impl WriteField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DisplayName => "display_name",
            Self::FirstName => "first_name",
            Self::LastName => "last_name",
            Self::Phone => "phone",
            Self::Email => "email",
            Self::Company => "company",
            Self::Kind => "kind",
            Self::Labels => "labels",
            Self::IsInternal => "is_internal",
            Self::Notes => "notes",
            Self::Address => "address",
            Self::StatusId => "status_id",
            Self::SourceId => "source_id",
            Self::CrmListIds => "crm_list_ids",
        }
    }
}

/// A provider's operations and, for each write, the fields it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Capabilities {
    pub operations: &'static [Operation],
    /// Fields `create` and `batch_create` take.
    pub create_fields: &'static [WriteField],
    /// Fields `update` takes.
    pub update_fields: &'static [WriteField],
}

impl Capabilities {
    pub fn supports(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }

    /// The fields `op` takes (none for reads and deletes).
    pub fn fields_of(&self, op: Operation) -> &'static [WriteField] {
        match op {
            Operation::Create | Operation::BatchCreate => self.create_fields,
            Operation::Update => self.update_fields,
            _ => &[],
        }
    }

    /// The fields of `given` that `op` cannot write.
    pub fn unwritable(&self, op: Operation, given: &[WriteField]) -> Vec<WriteField> {
        let allowed = self.fields_of(op);
        given
            .iter()
            .copied()
            .filter(|f| !allowed.contains(f))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProviderKind;

    #[test]
    fn capabilities_follow_the_providers_apis() {
        let p = ProviderKind::Periskope.capabilities();
        assert!(p.supports(Operation::Create) && p.supports(Operation::Update));
        assert!(!p.supports(Operation::Delete) && !p.supports(Operation::BatchDelete));
        assert_eq!(
            p.unwritable(Operation::Update, &[WriteField::Email, WriteField::Labels]),
            vec![WriteField::Email]
        );
        let g = ProviderKind::Gateway.capabilities();
        assert_eq!(g.operations, &[Operation::Get, Operation::List]);
        let w = ProviderKind::Wacr.capabilities();
        assert!(Operation::ALL.iter().all(|op| w.supports(*op)));
    }
}
