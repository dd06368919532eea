//! The kinds of event, apart from the queries that append them (so that any
//! store module may name one).

/// Every kind of event the feed and webhooks carry. The names exist here once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    ContactCreated,
    ContactUpdated,
    ContactDeleted,
    ContactRestored,
    PersonCreated,
    PersonMerged,
    PersonSplit,
    PersonDeleted,
    PersonErased,
    ContactErased,
    IdentityOperationUndone,
    SyncRunFinished,
    SyncRunHeld,
}

impl EventType {
    /// Every type, in the order the document lists them.
    pub const ALL: [EventType; 13] = [
        Self::ContactCreated,
        Self::ContactUpdated,
        Self::ContactDeleted,
        Self::ContactRestored,
        Self::PersonCreated,
        Self::PersonMerged,
        Self::PersonSplit,
        Self::PersonDeleted,
        Self::PersonErased,
        Self::ContactErased,
        Self::IdentityOperationUndone,
        Self::SyncRunFinished,
        Self::SyncRunHeld,
    ];

    /// The name clients see (`contact.updated`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ContactCreated => "contact.created",
            Self::ContactUpdated => "contact.updated",
            Self::ContactDeleted => "contact.deleted",
            Self::ContactRestored => "contact.restored",
            Self::PersonCreated => "person.created",
            Self::PersonMerged => "person.merged",
            Self::PersonSplit => "person.split",
            Self::PersonDeleted => "person.deleted",
            Self::PersonErased => "person.erased",
            Self::ContactErased => "contact.erased",
            Self::IdentityOperationUndone => "identity_operation.undone",
            Self::SyncRunFinished => "sync_run.finished",
            Self::SyncRunHeld => "sync_run.held",
        }
    }

    /// The type of a name, if it is one.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}
