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
use crate::paging::PageToken;

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

/// No index (an empty list, no 1-1 chat, no assignee).
const NONE: u32 = u32::MAX;

/// A 1-1 chat's fields, small: strings interned, lists as ranges of flat vectors.
struct Direct {
    assignee: u32,
    /// Range of `ChatIndex::properties`.
    properties: (u32, u32),
    /// Range of `ChatIndex::labels`.
    labels: (u32, u32),
}

/// One group membership; a contact's form a list through `next`.
struct Link {
    group: u32,
    role: Option<MemberRole>,
    next: u32,
}

/// What the index holds of one contact: its 1-1 chat and its first membership.
#[derive(Clone, Copy)]
struct Slot {
    direct: u32,
    first: u32,
}

impl Default for Slot {
    fn default() -> Self {
        Self {
            direct: NONE,
            first: NONE,
        }
    }
}

/// A contact id as a key: the number of a phone JID (`<digits>@c.us`, no leading
/// zero), else the id itself.
enum Key<'a> {
    Phone(u64),
    Other(&'a str),
}

fn key(remote_id: &str) -> Key<'_> {
    match remote_id.strip_suffix("@c.us") {
        Some(d)
            if (1..=19).contains(&d.len())
                && !d.starts_with('0')
                && d.bytes().all(|b| b.is_ascii_digit()) =>
        {
            d.parse().map(Key::Phone).unwrap_or(Key::Other(remote_id))
        }
        _ => Key::Other(remote_id),
    }
}

/// Every chat of a listing, by contact, held compactly (about 40 bytes a
/// contact, 12 a group membership, 20 a 1-1 chat, at a million contacts 70 MB
/// where a map of strings to vectors took 220): a contact is keyed by its
/// phone number, a group's id and name are held once, memberships are linked
/// in one vector, and assignees, property names and values and labels are
/// interned (a team has few of each).
#[derive(Default)]
pub struct ChatIndex {
    groups: Vec<(Box<str>, Option<Box<str>>)>,
    links: Vec<Link>,
    directs: Vec<Direct>,
    /// (name, value), interned.
    properties: Vec<(u32, u32)>,
    labels: Vec<u32>,
    names: Vec<Box<str>>,
    name_at: HashMap<Box<str>, u32>,
    values: Vec<Value>,
    value_at: HashMap<String, u32>,
    by_phone: HashMap<u64, Slot>,
    /// `by_phone` once the listing is over ([`ChatIndex::seal`]), sorted by
    /// number: 16 bytes a contact instead of the map's ~35 (its table is sized
    /// in powers of two, at most seven eighths full).
    sealed: Vec<(u64, Slot)>,
    by_other: HashMap<Box<str>, Slot>,
    chats: usize,
}

impl ChatIndex {
    fn slot(&mut self, remote_id: &str) -> &mut Slot {
        match key(remote_id) {
            Key::Phone(n) => match self.sealed.binary_search_by_key(&n, |(k, _)| *k) {
                Ok(at) => &mut self.sealed[at].1,
                // Added after sealing: in the map, which `find` reads first.
                Err(_) => self.by_phone.entry(n).or_default(),
            },
            Key::Other(id) => self.by_other.entry(id.into()).or_default(),
        }
    }

    fn find(&self, remote_id: &str) -> Option<Slot> {
        match key(remote_id) {
            Key::Phone(n) => self.by_phone.get(&n).copied().or_else(|| {
                self.sealed
                    .binary_search_by_key(&n, |(k, _)| *k)
                    .ok()
                    .map(|at| self.sealed[at].1)
            }),
            Key::Other(id) => self.by_other.get(id).copied(),
        }
    }

    /// Compacts the index once the listing is over: the contacts keyed by phone
    /// move from their map to a sorted vector (at a million contacts ~35 MB
    /// become 16). Chats added afterwards still count.
    pub fn seal(&mut self) {
        if self.by_phone.is_empty() {
            return;
        }
        let mut sealed = Vec::with_capacity(self.sealed.len() + self.by_phone.len());
        sealed.append(&mut self.sealed);
        sealed.extend(std::mem::take(&mut self.by_phone));
        sealed.sort_unstable_by_key(|(k, _)| *k);
        self.sealed = sealed;
    }

    fn name(&mut self, s: &str) -> u32 {
        if let Some(&at) = self.name_at.get(s) {
            return at;
        }
        let at = self.names.len() as u32;
        self.names.push(s.into());
        self.name_at.insert(s.into(), at);
        at
    }

    fn value(&mut self, v: Value) -> u32 {
        let text = v.to_string();
        if let Some(&at) = self.value_at.get(&text) {
            return at;
        }
        let at = self.values.len() as u32;
        self.values.push(v);
        self.value_at.insert(text, at);
        at
    }

    pub fn add(&mut self, chat: ChatRecord) {
        self.chats += 1;
        match chat.kind {
            ChatKind::Group { members } => {
                let group = self.groups.len() as u32;
                self.groups
                    .push((chat.remote_id.into(), chat.name.map(Into::into)));
                for (contact, role) in members {
                    let next = self.links.len() as u32;
                    let slot = self.slot(&contact);
                    let first = std::mem::replace(&mut slot.first, next);
                    self.links.push(Link {
                        group,
                        role,
                        next: first,
                    });
                }
            }
            ChatKind::Direct {
                assignee,
                custom_properties,
                labels,
            } => {
                let assignee = assignee.map_or(NONE, |a| self.name(&a));
                let from = self.properties.len() as u32;
                for (k, v) in custom_properties {
                    let pair = (self.name(&k), self.value(v));
                    self.properties.push(pair);
                }
                let properties = (from, self.properties.len() as u32);
                let from = self.labels.len() as u32;
                for l in labels {
                    let l = self.name(&l);
                    self.labels.push(l);
                }
                let labels = (from, self.labels.len() as u32);
                let at = self.directs.len() as u32;
                self.directs.push(Direct {
                    assignee,
                    properties,
                    labels,
                });
                self.slot(&chat.remote_id).direct = at;
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
        let slot = self.find(&record.remote_id).unwrap_or_default();
        let mut memberships = Vec::new();
        let mut at = slot.first;
        while at != NONE {
            let link = &self.links[at as usize];
            let (id, name) = &self.groups[link.group as usize];
            memberships.push(Membership {
                kind: MembershipKind::WhatsappGroup,
                remote_id: id.to_string(),
                name: name.as_deref().map(str::to_string),
                role: link.role.map(|r| r.as_str().to_string()),
                nickname: None,
                last_seen_at: None,
            });
            at = link.next;
        }
        // In the order listed; a group listed twice (the list moved under the
        // paging) counts once, as first listed.
        memberships.reverse();
        memberships.sort_by(|a, b| a.remote_id.cmp(&b.remote_id));
        memberships.dedup_by(|a, b| a.remote_id == b.remote_id);
        record.memberships = memberships;
        let direct = (slot.direct != NONE).then(|| &self.directs[slot.direct as usize]);
        record.has_direct_chat = Some(direct.is_some());
        record.assignee = direct
            .filter(|d| d.assignee != NONE)
            .map(|d| self.names[d.assignee as usize].to_string());
        record.custom_properties = direct
            .map(|d| {
                self.properties[d.properties.0 as usize..d.properties.1 as usize]
                    .iter()
                    .map(|&(k, v)| {
                        (
                            self.names[k as usize].to_string(),
                            self.values[v as usize].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        record.chat_labels = direct
            .map(|d| {
                self.labels[d.labels.0 as usize..d.labels.1 as usize]
                    .iter()
                    .map(|&l| self.names[l as usize].to_string())
                    .collect()
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(id: &str, name: &str, members: &[(&str, Option<MemberRole>)]) -> ChatRecord {
        ChatRecord {
            remote_id: id.into(),
            name: Some(name.into()),
            kind: ChatKind::Group {
                members: members.iter().map(|(c, r)| (c.to_string(), *r)).collect(),
            },
        }
    }

    fn direct(id: &str, assignee: Option<&str>, props: Value, labels: &[&str]) -> ChatRecord {
        ChatRecord {
            remote_id: id.into(),
            name: None,
            kind: ChatKind::Direct {
                assignee: assignee.map(str::to_string),
                custom_properties: serde_json::from_value(props).expect("props"),
                labels: labels.iter().map(|l| l.to_string()).collect(),
            },
        }
    }

    fn applied(index: &ChatIndex, id: &str) -> Value {
        let mut record = ContactRecord {
            remote_id: id.into(),
            ..ContactRecord::default()
        };
        index.apply(&mut record);
        json!({
            "memberships": record.memberships.iter()
                .map(|m| json!([m.remote_id, m.name, m.role])).collect::<Vec<_>>(),
            "direct": record.has_direct_chat,
            "assignee": record.assignee,
            "properties": record.custom_properties,
            "labels": record.chat_labels,
        })
    }

    #[test]
    fn each_contact_gets_its_own_chats_whatever_its_id() {
        use MemberRole::*;
        let mut index = ChatIndex::default();
        // Phone ids (kept as numbers), one with a leading zero, a LID, and a
        // number too long for 64 bits (kept as text).
        let (a, zero, lid, long) = (
            "919537851844@c.us",
            "0919537851844@c.us",
            "205227043110953@lid",
            "123456789012345678901234@c.us",
        );
        index.add(group("2@g.us", "Two", &[(a, Some(Admin)), (lid, None)]));
        index.add(group(
            "1@g.us",
            "One",
            &[
                (a, Some(Member)),
                (zero, Some(SuperAdmin)),
                (long, Some(Member)),
            ],
        ));
        // Listed again (paging moved): counted once, as first listed.
        index.add(group("2@g.us", "Two again", &[(a, Some(Member))]));
        index.add(direct(
            a,
            Some("agent@x.dev"),
            json!({"p-city": "Pune"}),
            &["l-1", "l-2"],
        ));
        index.add(direct(
            zero,
            Some("agent@x.dev"),
            json!({"p-city": "Pune", "p-n": 3}),
            &[],
        ));
        index.add(direct(long, None, json!({}), &["l-2"]));
        assert_eq!(index.len(), 6);
        let before = [a, zero, lid, long].map(|id| applied(&index, id));
        // Sealed: the same answers; chats added afterwards still count, for a
        // contact sealed before and for a new one.
        index.seal();
        assert_eq!([a, zero, lid, long].map(|id| applied(&index, id)), before);
        let late = "15550002222@c.us";
        index.add(group("3@g.us", "Three", &[(a, None), (late, None)]));
        index.seal();
        assert_eq!(
            applied(&index, late),
            json!({"memberships": [["3@g.us", "Three", null]], "direct": false,
                   "assignee": null, "properties": {}, "labels": []})
        );
        index.add(group("4@g.us", "Four", &[(late, None)]));
        assert_eq!(
            applied(&index, late)["memberships"],
            json!([["3@g.us", "Three", null], ["4@g.us", "Four", null]])
        );
        assert_eq!(
            applied(&index, a)["memberships"],
            json!([
                ["1@g.us", "One", "member"],
                ["2@g.us", "Two", "admin"],
                ["3@g.us", "Three", null]
            ])
        );
        assert_eq!(applied(&index, a)["direct"], json!(true));
        assert_eq!(
            before[0],
            json!({"memberships": [["1@g.us", "One", "member"], ["2@g.us", "Two", "admin"]],
                   "direct": true, "assignee": "agent@x.dev",
                   "properties": {"p-city": "Pune"}, "labels": ["l-1", "l-2"]})
        );
        assert_eq!(
            applied(&index, zero),
            json!({"memberships": [["1@g.us", "One", "superadmin"]],
                   "direct": true, "assignee": "agent@x.dev",
                   "properties": {"p-city": "Pune", "p-n": 3}, "labels": []})
        );
        assert_eq!(
            applied(&index, lid),
            json!({"memberships": [["2@g.us", "Two", null]], "direct": false,
                   "assignee": null, "properties": {}, "labels": []})
        );
        assert_eq!(
            applied(&index, long),
            json!({"memberships": [["1@g.us", "One", "member"]], "direct": true,
                   "assignee": null, "properties": {}, "labels": ["l-2"]})
        );
        // A contact in no chat: nothing, and known.
        assert_eq!(
            applied(&index, "15550001111@c.us"),
            json!({"memberships": [], "direct": false, "assignee": null,
                   "properties": {}, "labels": []})
        );
    }
}
