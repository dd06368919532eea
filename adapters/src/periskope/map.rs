//! Periskope → canonical (docs/providers.md §6).

use serde_json::Value;

use crate::canonical::{
    clean, parse_timestamp, ContactKind, ContactRecord, Membership, MembershipKind, RecordField,
    CHAT_FIELDS, DIRECT_CHAT_FIELDS,
};
use crate::chats::{ChatKind, ChatRecord, MemberRole};
use crate::error::{from_value, AdapterError};
use crate::periskope::wire::{Chat, Contact};
use crate::phone::{normalize_lid, phone_from_digits, phone_from_jid, Jid, JidKind};

/// Maps one raw contact object; the raw value becomes `remote_data`.
pub fn map_contact_value(raw: Value) -> Result<ContactRecord, AdapterError> {
    let wire: Contact = from_value("Periskope contact", raw.clone())?;
    let mut record = map_contact(&wire);
    record.remote_data = Some(raw);
    Ok(record)
}

pub fn map_contact(c: &Contact) -> ContactRecord {
    let own = Jid::parse(&c.contact_id);
    let phone = match own.as_ref().map(Jid::kind) {
        Some(JidKind::Phone) => phone_from_jid(&c.contact_id),
        // A bare id: Periskope ids always carry the country code.
        None if c.contact_id.bytes().all(|b| b.is_ascii_digit()) => {
            Some(phone_from_digits(&c.contact_id))
        }
        _ => None,
    };
    let lid = c
        .contact_lid
        .as_deref()
        .and_then(normalize_lid)
        .or_else(|| {
            own.as_ref()
                .filter(|j| j.kind() == JidKind::Lid)
                .and_then(|_| normalize_lid(&c.contact_id))
        });
    let mut memberships: Vec<Membership> = c
        .chat_ids
        .iter()
        .flatten()
        .filter(|id| Jid::parse(id).is_some_and(|j| j.kind() == JidKind::Group))
        .map(|id| Membership {
            kind: MembershipKind::WhatsappGroup,
            remote_id: id.clone(),
            name: None,
            role: None,
            nickname: None,
            last_seen_at: None,
        })
        .collect();
    memberships.sort_by(|a, b| a.remote_id.cmp(&b.remote_id));
    memberships.dedup_by(|a, b| a.remote_id == b.remote_id);
    let own_user = own.as_ref().map(|j| j.user.clone());
    let has_direct_chat = c.chat_ids.as_ref().map(|ids| {
        ids.iter().any(|id| {
            Jid::parse(id)
                .is_some_and(|j| j.kind() == JidKind::Phone && Some(&j.user) == own_user.as_ref())
        })
    });
    let kind = c.contact_type.as_deref().and_then(ContactKind::parse);
    let mut labels: Vec<String> = c
        .labels
        .iter()
        .flatten()
        .filter_map(|l| clean(Some(l)))
        .collect();
    labels.dedup();
    ContactRecord {
        remote_id: c.contact_id.clone(),
        // contact_name null falls back to the WhatsApp names when sent; never the JID.
        display_name: clean(c.contact_name.as_deref())
            .or_else(|| clean(c.pushname.as_deref()))
            .or_else(|| clean(c.verified_name.as_deref())),
        kind,
        phones: phone.into_iter().collect(),
        wa_lid: lid,
        labels,
        memberships,
        has_direct_chat,
        is_internal: c.is_internal,
        is_business: c.is_business.or(kind.map(|k| k == ContactKind::Business)),
        avatar_url: clean(c.contact_image.as_deref()),
        color: clean(c.contact_color.as_deref()),
        remote_updated_at: c.updated_at.as_deref().and_then(parse_timestamp),
        // Only the detail answer carries `chat_ids` (docs/providers.md §1.2); without
        // them the chats are not known, not absent. With them, the groups' names
        // and roles and the 1-1 chat's fields are still the chats' to give.
        unknown: if c.chat_ids.is_none() {
            CHAT_FIELDS.to_vec()
        } else {
            [&[RecordField::MembershipDetails], DIRECT_CHAT_FIELDS].concat()
        },
        ..ContactRecord::default()
    }
}

/// One chat in canonical terms: a group with its members' roles, or a 1-1 chat
/// (user or business) with its assignee, custom properties and label ids.
/// `None` for a chat that is neither (a broadcast list, an unknown kind).
pub fn map_chat(raw: Value) -> Result<Option<ChatRecord>, AdapterError> {
    let chat: Chat = from_value("Periskope chat", raw)?;
    Ok(chat_record(chat))
}

pub fn chat_record(chat: Chat) -> Option<ChatRecord> {
    let jid = Jid::parse(&chat.chat_id)?;
    let kind = match jid.kind() {
        JidKind::Group => ChatKind::Group {
            members: chat
                .members
                .into_iter()
                .flatten()
                .map(|(key, m)| {
                    let id = if m.contact_id.is_empty() {
                        key
                    } else {
                        m.contact_id
                    };
                    (id, member_role(m.is_admin, m.is_super_admin))
                })
                .collect(),
        },
        JidKind::Phone | JidKind::Lid => ChatKind::Direct {
            assignee: clean(chat.assigned_to.as_deref()),
            // Keyed as sent: by property id where Periskope sends ids (its API
            // has no documented call that names them).
            custom_properties: chat
                .custom_properties
                .into_iter()
                .flatten()
                .filter(|(_, v)| !v.is_null())
                .collect(),
            labels: label_ids(chat.label_ids.as_ref()),
        },
        _ => return None,
    };
    Some(ChatRecord {
        remote_id: chat.chat_id,
        name: clean(chat.chat_name.as_deref()),
        kind,
    })
}

/// `is_super_admin` / `is_admin`; both absent: not said.
fn member_role(admin: Option<bool>, super_admin: Option<bool>) -> Option<MemberRole> {
    match (super_admin, admin) {
        (Some(true), _) => Some(MemberRole::SuperAdmin),
        (_, Some(true)) => Some(MemberRole::Admin),
        (None, None) => None,
        _ => Some(MemberRole::Member),
    }
}

/// The ids of a `{ "label-…": true }` map whose value is true, sorted.
fn label_ids(map: Option<&std::collections::BTreeMap<String, Value>>) -> Vec<String> {
    map.into_iter()
        .flatten()
        .filter(|(_, v)| v.as_bool() != Some(false) && !v.is_null())
        .map(|(k, _)| k.clone())
        .collect()
}
