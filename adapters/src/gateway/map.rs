//! Gateway → canonical (docs/providers.md §6). Groups are WhatsApp groups.

use serde_json::Value;

use crate::canonical::{
    clean, from_epoch_ms, ContactKind, ContactRecord, Membership, MembershipKind,
};
use crate::error::{from_value, AdapterError};
use crate::gateway::wire::{ContactDetail, ListContact};
use crate::phone::{normalize_lid, phone_from_digits, phone_from_jid};

fn display(name: Option<&str>, business: Option<&str>) -> Option<String> {
    clean(name).or_else(|| clean(business))
}

/// A thin list item; `remote_data` is the item.
pub fn map_list_item(raw: Value) -> Result<ContactRecord, AdapterError> {
    let item: ListContact = from_value("Gateway contact", raw.clone())?;
    let lid = normalize_lid(&item.lid);
    let business = clean(item.business_name.as_deref());
    Ok(ContactRecord {
        remote_id: lid.clone().unwrap_or_else(|| item.lid.clone()),
        display_name: display(item.name.as_deref(), item.business_name.as_deref()),
        company: business.clone(),
        kind: business.as_ref().map(|_| ContactKind::Business),
        phones: clean(item.phone_number.as_deref())
            .map(|p| phone_from_digits(&p))
            .into_iter()
            .collect(),
        wa_lid: lid,
        has_direct_chat: item.source.as_deref().map(|s| s == "dm"),
        is_business: Some(business.is_some()),
        remote_data: Some(raw),
        ..ContactRecord::default()
    })
}

/// The detail answer of `lid`; `remote_data` is the whole detail.
pub fn map_detail(lid: &str, raw: Value) -> Result<ContactRecord, AdapterError> {
    let detail: ContactDetail = from_value("Gateway contact detail", raw.clone())?;
    let identity = detail.identity.as_ref();
    let canonical_lid = identity
        .and_then(|i| normalize_lid(&i.lid))
        .or_else(|| normalize_lid(lid));
    let business = identity.and_then(|i| clean(i.business_name.as_deref()));
    // The phone JID carries the same number as phoneNumber, plus the JID itself.
    let phone = identity.and_then(|i| {
        i.phone_jid
            .as_deref()
            .and_then(phone_from_jid)
            .or_else(|| clean(i.phone_number.as_deref()).map(|p| phone_from_digits(&p)))
    });
    let memberships = detail
        .groups
        .iter()
        .flatten()
        .map(|g| Membership {
            kind: MembershipKind::WhatsappGroup,
            remote_id: g.jid.clone(),
            name: clean(g.name.as_deref()),
            // Documented roles only; anything else (the docs' own "string") is unknown.
            role: clean(g.role.as_deref())
                .map(|r| r.to_ascii_lowercase())
                .filter(|r| matches!(r.as_str(), "member" | "admin" | "superadmin")),
            nickname: clean(g.tag.as_deref()),
            last_seen_at: g.last_seen.filter(|ms| *ms > 0).and_then(from_epoch_ms),
        })
        .collect();
    Ok(ContactRecord {
        remote_id: canonical_lid.clone().unwrap_or_else(|| lid.to_string()),
        display_name: identity.and_then(|i| display(i.name.as_deref(), i.business_name.as_deref())),
        company: business.clone(),
        kind: business.as_ref().map(|_| ContactKind::Business),
        phones: phone.into_iter().collect(),
        wa_lid: canonical_lid,
        memberships,
        has_direct_chat: detail.dm,
        is_business: identity.map(|_| business.is_some()),
        remote_updated_at: identity.and_then(|i| from_epoch_ms(i.updated_at)),
        first_seen_at: identity.and_then(|i| from_epoch_ms(i.first_seen_at)),
        remote_data: Some(raw),
        ..ContactRecord::default()
    })
}
