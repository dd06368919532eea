//! Chats a provider lists apart from its contacts (Periskope's `GET /chats`), and
//! what they say of each contact: the groups it is in (name, role), whether a 1-1
//! chat with it exists, and that chat's assignee, custom properties and labels.
//! A sync lists every chat into a [`ChatIndex`] before the contacts, then fills
//! each listed contact's chat fields from it: a contact in no chat has none, and
//! that is known, not guessed.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::canonical::{
    ContactRecord, Membership, MembershipKind, RecordField, CHAT_FIELDS, DIRECT_CHAT_FIELDS,
};
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

    /// The role [`Self::as_str`] names.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Member, Self::Admin, Self::SuperAdmin]
            .into_iter()
            .find(|r| r.as_str() == s)
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

/// A group a chat list names without its members (the SDK types them nullable):
/// they come from the group's own read (`GET /chats/{id}`), or, while `version`
/// is the one seen at that read, from what it gave then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub remote_id: String,
    pub name: Option<String>,
    /// What changes whenever the group does (Periskope: `updated_at` and
    /// `member_count`); `None` when the list does not say: read every time.
    pub version: Option<String>,
}

/// A page of chats; `next` is `None` after the last.
#[derive(Debug, Clone, Default)]
pub struct ChatPage {
    pub chats: Vec<ChatRecord>,
    /// Groups listed without their members, to be completed by the caller.
    pub without_members: Vec<ListedGroup>,
    pub next: Option<PageToken>,
    /// The pages after `next`, when the first page already tells them (offset
    /// paging with a total count): a caller may ask for several at once.
    pub ahead: Vec<PageToken>,
}

/// A 1-1 chat's fields, small: the assignee interned (a team has few agents),
/// empty lists without an allocation.
struct Direct {
    assignee: Option<u32>,
    custom_properties: Box<[(Box<str>, Value)]>,
    labels: Box<[Box<str>]>,
}

#[derive(Default)]
struct Facts {
    /// Indexes into `ChatIndex::groups`, with the role.
    groups: Vec<(u32, Option<MemberRole>)>,
    /// Index into `ChatIndex::directs`.
    direct: Option<u32>,
}

/// Every chat of a listing, by contact, held compactly (about 150 bytes a 1-1
/// chat, 8 a group membership): a group's id and name are held once and each
/// member refers to it by index; assignees are interned.
#[derive(Default)]
pub struct ChatIndex {
    groups: Vec<(Box<str>, Option<Box<str>>)>,
    directs: Vec<Direct>,
    assignees: Vec<Box<str>>,
    assignee_at: HashMap<Box<str>, u32>,
    by_contact: HashMap<Box<str>, Facts>,
    chats: usize,
}

impl ChatIndex {
    pub fn add(&mut self, chat: ChatRecord) {
        self.chats += 1;
        match chat.kind {
            ChatKind::Group { members } => {
                let at = self.groups.len() as u32;
                self.groups
                    .push((chat.remote_id.into(), chat.name.map(Into::into)));
                for (contact, role) in members {
                    self.by_contact
                        .entry(contact.into())
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
                let assignee = assignee.map(|a| match self.assignee_at.get(a.as_str()) {
                    Some(&at) => at,
                    None => {
                        let at = self.assignees.len() as u32;
                        self.assignees.push(a.as_str().into());
                        self.assignee_at.insert(a.into(), at);
                        at
                    }
                });
                let at = self.directs.len() as u32;
                self.directs.push(Direct {
                    assignee,
                    custom_properties: custom_properties
                        .into_iter()
                        .map(|(k, v)| (k.into(), v))
                        .collect(),
                    labels: labels.into_iter().map(Into::into).collect(),
                });
                self.by_contact
                    .entry(chat.remote_id.into())
                    .or_default()
                    .direct = Some(at);
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
        let facts = self.by_contact.get(record.remote_id.as_str());
        let mut memberships: Vec<Membership> = facts
            .into_iter()
            .flat_map(|f| f.groups.iter())
            .map(|(at, role)| {
                let (id, name) = &self.groups[*at as usize];
                Membership {
                    kind: MembershipKind::WhatsappGroup,
                    remote_id: id.to_string(),
                    name: name.as_deref().map(str::to_string),
                    role: role.map(|r| r.as_str().to_string()),
                    nickname: None,
                    last_seen_at: None,
                }
            })
            .collect();
        memberships.sort_by(|a, b| a.remote_id.cmp(&b.remote_id));
        memberships.dedup_by(|a, b| a.remote_id == b.remote_id);
        record.memberships = memberships;
        let direct = facts
            .and_then(|f| f.direct)
            .map(|at| &self.directs[at as usize]);
        record.has_direct_chat = Some(direct.is_some());
        record.assignee = direct
            .and_then(|d| d.assignee)
            .map(|at| self.assignees[at as usize].to_string());
        record.custom_properties = direct
            .map(|d| {
                d.custom_properties
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        record.chat_labels = direct
            .map(|d| d.labels.iter().map(|l| l.to_string()).collect())
            .unwrap_or_default();
        record.know(CHAT_FIELDS);
    }
}

/// Sets a record's 1-1 chat fields from the chat itself (a live read).
pub fn apply_direct(record: &mut ContactRecord, chat: &ChatRecord) {
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
        record.know(&[RecordField::HasDirectChat]);
        record.know(DIRECT_CHAT_FIELDS);
    }
}
