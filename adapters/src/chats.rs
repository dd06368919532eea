//! Chats a provider lists apart from its contacts (Periskope's `GET /chats`), and
//! what they say of each contact: the groups it is in (name, role), whether a 1-1
//! chat with it exists, and that chat's assignee, custom properties and labels.
//! A sync lists every chat into a [`ChatIndex`] before the contacts, then fills
//! each listed contact's chat fields from it: a contact in no chat has none, and
//! that is known, not guessed.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::canonical::{ContactRecord, Membership, MembershipKind, CHAT_FIELDS};
use crate::PageToken;

/// A member's standing in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRole {
    Member,
    Admin,
    SuperAdmin,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Admin => "admin",
            Self::SuperAdmin => "superadmin",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChatKind {
    /// A group: its members are contacts.
    Group {
        /// Contact remote ids and their roles, where the provider says.
        members: Vec<(String, Option<MemberRole>)>,
    },
    /// A 1-1 chat with the contact whose remote id is the chat's.
    Direct {
        assignee: Option<String>,
        custom_properties: BTreeMap<String, Value>,
        labels: Vec<String>,
    },
}

/// One chat, in canonical terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRecord {
    /// The chat id (`…@g.us` for a group; the contact's id for a 1-1 chat).
    pub remote_id: String,
    pub name: Option<String>,
    pub kind: ChatKind,
}

/// A page of chats; `next` is `None` after the last.
#[derive(Debug, Clone, Default)]
pub struct ChatPage {
    pub chats: Vec<ChatRecord>,
    pub next: Option<PageToken>,
    /// The pages after `next`, when the first page already tells them (offset
    /// paging with a total count): a caller may ask for several at once.
    pub ahead: Vec<PageToken>,
}

struct Direct {
    assignee: Option<String>,
    custom_properties: BTreeMap<String, Value>,
    labels: Vec<String>,
}

#[derive(Default)]
struct Facts {
    /// Indexes into `ChatIndex::groups`, with the role.
    groups: Vec<(u32, Option<MemberRole>)>,
    direct: Option<Box<Direct>>,
}

/// Every chat of a listing, by contact. Compact: a group's id and name are held
/// once, each member refers to it by index.
#[derive(Default)]
pub struct ChatIndex {
    groups: Vec<(String, Option<String>)>,
    by_contact: HashMap<String, Facts>,
    chats: usize,
}

impl ChatIndex {
    pub fn add(&mut self, chat: ChatRecord) {
        self.chats += 1;
        match chat.kind {
            ChatKind::Group { members } => {
                let at = self.groups.len() as u32;
                self.groups.push((chat.remote_id, chat.name));
                for (contact, role) in members {
                    self.by_contact
                        .entry(contact)
                        .or_default()
                        .groups
                        .push((at, role));
                }
            }
            ChatKind::Direct {
                assignee,
                custom_properties,
                labels,
            } => {
                self.by_contact.entry(chat.remote_id).or_default().direct =
                    Some(Box::new(Direct {
                        assignee,
                        custom_properties,
                        labels,
                    }));
            }
        }
    }

    /// How many chats were added.
    pub fn len(&self) -> usize {
        self.chats
    }

    pub fn is_empty(&self) -> bool {
        self.chats == 0
    }

    /// Sets the record's chat fields from the index: memberships (sorted by group
    /// id, a group listed twice counted once), whether a 1-1 chat exists, and that
    /// chat's assignee, custom properties and labels. They are known afterwards.
    pub fn apply(&self, record: &mut ContactRecord) {
        let facts = self.by_contact.get(&record.remote_id);
        let mut memberships: Vec<Membership> = facts
            .into_iter()
            .flat_map(|f| f.groups.iter())
            .map(|(at, role)| {
                let (id, name) = &self.groups[*at as usize];
                Membership {
                    kind: MembershipKind::WhatsappGroup,
                    remote_id: id.clone(),
                    name: name.clone(),
                    role: role.map(|r| r.as_str().to_string()),
                    nickname: None,
                    last_seen_at: None,
                }
            })
            .collect();
        memberships.sort_by(|a, b| a.remote_id.cmp(&b.remote_id));
        memberships.dedup_by(|a, b| a.remote_id == b.remote_id);
        record.memberships = memberships;
        let direct = facts.and_then(|f| f.direct.as_deref());
        record.has_direct_chat = Some(direct.is_some());
        record.assignee = direct.and_then(|d| d.assignee.clone());
        record.custom_properties = direct
            .map(|d| d.custom_properties.clone())
            .unwrap_or_default();
        record.chat_labels = direct.map(|d| d.labels.clone()).unwrap_or_default();
        record.know(CHAT_FIELDS);
    }
}

/// Sets a record's 1-1 chat fields from the chat itself (a live read).
pub fn apply_direct(record: &mut ContactRecord, chat: &ChatRecord) {
    use crate::canonical::RecordField;
    if let ChatKind::Direct {
        assignee,
        custom_properties,
        labels,
    } = &chat.kind
    {
        record.has_direct_chat = Some(true);
        record.assignee.clone_from(assignee);
        record.custom_properties.clone_from(custom_properties);
        record.chat_labels.clone_from(labels);
        record.know(&[
            RecordField::HasDirectChat,
            RecordField::Assignee,
            RecordField::CustomProperties,
            RecordField::ChatLabels,
        ]);
    }
}
