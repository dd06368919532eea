//! Periskope → canonical (DESIGN.md §3, PROVIDERS.md §6.2).

use serde_json::Value;

use crate::canonical::{
    clean, parse_timestamp, ContactKind, ContactRecord, Membership, MembershipKind,
};
use crate::error::{from_value, AdapterError};
use crate::periskope::wire::{Chat, ChatMember, Contact};
use crate::periskope::LIST_LACKS;
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
    let memberships = c
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
        // Only the detail answer carries `chat_ids` (PROVIDERS.md §1.2); without
        // them the chats are not known, not absent.
        unknown: if c.chat_ids.is_none() {
            LIST_LACKS.to_vec()
        } else {
            Vec::new()
        },
        ..ContactRecord::default()
    }
}

/// The members of a chat as contacts; for a group chat each carries the group as a
/// membership with its role, for a 1-1 chat the peer has a direct chat.
pub fn map_chat_members(raw: Value) -> Result<Vec<ContactRecord>, AdapterError> {
    let chat: Chat = from_value("Periskope chat", raw)?;
    let is_group = Jid::parse(&chat.chat_id).is_some_and(|j| j.kind() == JidKind::Group)
        || chat.chat_type.as_deref() == Some("group");
    let mut out = Vec::new();
    for (key, member) in chat.members.iter().flatten() {
        let raw_member =
            serde_json::to_value(member).map_err(|e| AdapterError::decode(e.to_string()))?;
        let contact = member_contact(key, member);
        let mut record = map_contact(&contact);
        if is_group {
            let role = if member.is_super_admin == Some(true) {
                "superadmin"
            } else if member.is_admin == Some(true) {
                "admin"
            } else {
                "member"
            };
            record.memberships.push(Membership {
                kind: MembershipKind::WhatsappGroup,
                remote_id: chat.chat_id.clone(),
                name: clean(chat.chat_name.as_deref()),
                role: Some(role.to_string()),
                nickname: None,
                last_seen_at: None,
            });
        } else if member.contact_id == chat.chat_id {
            record.has_direct_chat = Some(true);
        }
        record.remote_data = Some(raw_member);
        out.push(record);
    }
    Ok(out)
}

fn member_contact(key: &str, m: &ChatMember) -> Contact {
    Contact {
        contact_id: if m.contact_id.is_empty() {
            key.to_string()
        } else {
            m.contact_id.clone()
        },
        org_id: m.org_id.clone(),
        contact_name: m.contact_name.clone(),
        contact_color: m.contact_color.clone(),
        contact_image: m.contact_image.clone(),
        is_internal: m.is_internal,
        ..Contact::default()
    }
}
