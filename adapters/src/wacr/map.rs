//! WA.cr → canonical (docs/providers.md §6). Its "groups" are CRM lists.

use serde_json::Value;

use crate::canonical::{
    clean, parse_timestamp, Address, ContactKind, ContactRecord, Email, Membership, MembershipKind,
    Tag,
};
use crate::error::{from_value, AdapterError};
use crate::phone::phone_from_text;
use crate::wacr::wire::Contact;

pub fn map_contact_value(
    raw: Value,
    default_region: Option<&str>,
) -> Result<ContactRecord, AdapterError> {
    let wire: Contact = from_value("WA.cr contact", raw.clone())?;
    let mut record = map_contact(&wire, default_region);
    record.remote_data = Some(raw);
    Ok(record)
}

pub fn map_contact(c: &Contact, default_region: Option<&str>) -> ContactRecord {
    let first = clean(c.firstname.as_deref());
    let last = clean(c.lastname.as_deref());
    let display = match (&first, &last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(n), None) | (None, Some(n)) => Some(n.clone()),
        (None, None) => None,
    };
    let address = Address {
        street: clean(c.address.as_deref()),
        city: clean(c.city.as_deref()),
        state: clean(c.state.as_deref()),
        postal_code: clean(c.zip.as_deref()),
        country_ref: c.country_id.map(|id| id.to_string()),
    };
    // Names come with include=groups; the bare ids of `group_id` otherwise.
    let memberships: Vec<Membership> = match &c.groups {
        Some(groups) => groups
            .iter()
            .map(|g| Membership {
                kind: MembershipKind::CrmList,
                remote_id: g.id.to_string(),
                name: clean(g.name.as_deref()),
                role: None,
                nickname: None,
                last_seen_at: None,
            })
            .collect(),
        None => c
            .group_id
            .iter()
            .flatten()
            .map(|id| Membership {
                kind: MembershipKind::CrmList,
                remote_id: id.to_string(),
                name: None,
                role: None,
                nickname: None,
                last_seen_at: None,
            })
            .collect(),
    };
    ContactRecord {
        remote_id: c.id.to_string(),
        display_name: display,
        first_name: first,
        last_name: last,
        company: clean(c.company.as_deref()),
        kind: c.kind.as_deref().and_then(ContactKind::parse),
        phones: clean(c.phone.as_deref())
            .map(|p| phone_from_text(&p, default_region))
            .into_iter()
            .collect(),
        emails: clean(c.email.as_deref())
            .map(|address| Email {
                address,
                primary: true,
            })
            .into_iter()
            .collect(),
        address: (!address.is_empty()).then_some(address),
        status: c
            .status
            .as_ref()
            .map(|s| Tag {
                id: Some(s.id.to_string()),
                name: clean(s.name.as_deref()),
                color: clean(s.color.as_deref()),
            })
            .or_else(|| {
                c.status_id.map(|id| Tag {
                    id: Some(id.to_string()),
                    name: None,
                    color: None,
                })
            }),
        source: c
            .source
            .as_ref()
            .map(|s| Tag {
                id: Some(s.id.to_string()),
                name: clean(s.name.as_deref()),
                color: None,
            })
            .or_else(|| {
                c.source_id.map(|id| Tag {
                    id: Some(id.to_string()),
                    name: None,
                    color: None,
                })
            }),
        memberships,
        assignee: c.assigned_id.map(|id| id.to_string()),
        opted_out: c.is_opted_out,
        notes: clean(c.description.as_deref()),
        remote_created_at: c.created_at.as_deref().and_then(parse_timestamp),
        remote_updated_at: c.updated_at.as_deref().and_then(parse_timestamp),
        ..ContactRecord::default()
    }
}
