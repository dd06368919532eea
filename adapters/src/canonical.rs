//! The canonical contact (docs/providers.md §6), shared by the service and the adapters.
//! Adapters produce a [`ContactRecord`]: everything a provider says about one
//! contact. The service wraps it in a [`CanonicalContact`] with the ids it owns.
//! Absent values are `null` or `[]`, never invented.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::provider_kind::ProviderKind;

/// A contact as served by the API: the provider's record plus our own ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CanonicalContact {
    /// Our stable opaque id (`ctc_…`).
    pub id: String,
    pub connection_id: String,
    pub provider: ProviderKind,
    /// The cross-provider person this contact belongs to.
    pub person_id: Option<String>,
    #[serde(flatten)]
    pub record: ContactRecord,
    /// Gone upstream, as seen by reconciliation.
    pub remote_was_deleted: bool,
    /// When we last read it from the provider.
    pub fetched_at: Option<DateTime<Utc>>,
}

/// Everything one provider says about one contact, mapped to canonical fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContactRecord {
    /// The provider's own id, as a string (`919537851844@c.us`, `"42"`, `205227043110953@lid`).
    pub remote_id: String,
    /// The best human name.
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub kind: Option<ContactKind>,
    pub phones: Vec<Phone>,
    /// The WhatsApp LID (`<digits>@lid`), when the provider knows it.
    pub wa_lid: Option<String>,
    pub emails: Vec<Email>,
    pub address: Option<Address>,
    /// Tag names.
    pub labels: Vec<String>,
    pub status: Option<Tag>,
    pub source: Option<Tag>,
    pub memberships: Vec<Membership>,
    /// Whether a 1-1 chat exists; `null` when the provider cannot tell.
    pub has_direct_chat: Option<bool>,
    /// Who owns the conversation: Periskope's 1-1 chat `assigned_to` (an agent's
    /// email), WA.cr's `assigned_id` (a user id).
    pub assignee: Option<String>,
    /// The CRM's own fields, from property name to value; where the provider
    /// keys them by property id and offers no way to name it (Periskope's
    /// `property-…`), the id is the key.
    #[serde(default)]
    #[schema(value_type = Object, additional_properties = true)]
    pub custom_properties: BTreeMap<String, Value>,
    /// The labels of the 1-1 chat (Periskope's chat `label_ids`: ids, since its
    /// API names only contact labels), apart from the contact's own `labels`.
    #[serde(default)]
    pub chat_labels: Vec<String>,
    pub is_internal: Option<bool>,
    pub is_business: Option<bool>,
    pub opted_out: Option<bool>,
    pub avatar_url: Option<String>,
    pub color: Option<String>,
    pub notes: Option<String>,
    pub remote_created_at: Option<DateTime<Utc>>,
    pub remote_updated_at: Option<DateTime<Utc>>,
    pub first_seen_at: Option<DateTime<Utc>>,
    /// The provider's object, untouched (served only with `include=remote_data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub remote_data: Option<Value>,
    /// The fields the answer this record came from does not carry (a Periskope
    /// list item has no `chat_ids`): storing it keeps the stored values of these,
    /// rather than taking their absence for a change.
    #[serde(skip)]
    pub unknown: Vec<RecordField>,
    /// Parts the provider would not give this time (`"chats"`: a Periskope
    /// contact read whose chat read failed). Their fields are `unknown`, so
    /// storing the record keeps the stored ones; the read is answered as partial.
    #[serde(skip)]
    pub partial: Vec<&'static str>,
}

/// A canonical field that some answers of a provider do not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordField {
    Memberships,
    HasDirectChat,
    /// The memberships' group names and roles (their ids are known).
    MembershipDetails,
    Assignee,
    CustomProperties,
    ChatLabels,
}

/// The fields a contact's 1-1 chat gives it.
pub const DIRECT_CHAT_FIELDS: &[RecordField] = &[
    RecordField::Assignee,
    RecordField::CustomProperties,
    RecordField::ChatLabels,
];

/// The fields a provider's chats give a contact (see [`crate::chats`]).
pub const CHAT_FIELDS: &[RecordField] = &[
    RecordField::Memberships,
    RecordField::HasDirectChat,
    RecordField::MembershipDetails,
    RecordField::Assignee,
    RecordField::CustomProperties,
    RecordField::ChatLabels,
];

impl ContactRecord {
    /// Takes the fields this record does not know from `stored`.
    pub fn keep_unknown_from(&mut self, stored: &ContactRecord) {
        for f in std::mem::take(&mut self.unknown) {
            match f {
                RecordField::Memberships => self.memberships = stored.memberships.clone(),
                RecordField::HasDirectChat => self.has_direct_chat = stored.has_direct_chat,
                RecordField::MembershipDetails => {
                    for m in &mut self.memberships {
                        if let Some(s) = stored
                            .memberships
                            .iter()
                            .find(|s| s.kind == m.kind && s.remote_id == m.remote_id)
                        {
                            m.name.clone_from(&s.name);
                            m.role.clone_from(&s.role);
                        }
                    }
                }
                RecordField::Assignee => self.assignee.clone_from(&stored.assignee),
                RecordField::CustomProperties => {
                    self.custom_properties.clone_from(&stored.custom_properties)
                }
                RecordField::ChatLabels => self.chat_labels.clone_from(&stored.chat_labels),
            }
        }
    }

    /// Marks `fields` as known (an answer that carries them was applied).
    pub fn know(&mut self, fields: &[RecordField]) {
        self.unknown.retain(|f| !fields.contains(f));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    User,
    Business,
    Lead,
    Customer,
    Guest,
}

impl ContactKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "user" => Some(Self::User),
            "business" => Some(Self::Business),
            "lead" => Some(Self::Lead),
            "customer" => Some(Self::Customer),
            "guest" => Some(Self::Guest),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Business => "business",
            Self::Lead => "lead",
            Self::Customer => "customer",
            Self::Guest => "guest",
        }
    }
}

/// A phone number: E.164 when it parses, always the raw text it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Phone {
    #[schema(example = "+919537851844")]
    pub e164: Option<String>,
    /// The text or JID the provider sent.
    pub raw: String,
    /// Valid under current numbering plans. WhatsApp ids of some BR/MX numbers are not, and are kept.
    pub valid: bool,
    /// ISO 3166-1 alpha-2 region of the number.
    pub region: Option<String>,
    /// The WhatsApp phone JID, normalised to `<digits>@s.whatsapp.net`.
    pub wa_jid: Option<String>,
    pub primary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Email {
    pub address: String,
    pub primary: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    /// The provider's country reference (WA.cr's `country_id`; not resolvable to ISO).
    pub country_ref: Option<String>,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        self == &Address::default()
    }
}

/// A status or source as the provider names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tag {
    pub id: Option<String>,
    pub name: Option<String>,
    pub color: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MembershipKind {
    /// A WhatsApp group (`…@g.us`).
    WhatsappGroup,
    /// A CRM list (WA.cr "groups").
    CrmList,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Membership {
    pub kind: MembershipKind,
    pub remote_id: String,
    pub name: Option<String>,
    /// `member`, `admin` or `superadmin`, where the provider says.
    pub role: Option<String>,
    /// The per-group label WhatsApp shows next to the name.
    pub nickname: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Parses a provider timestamp: RFC 3339 / ISO 8601 with or without offset (naive = UTC).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    // `2025-01-20 11:36:51+00` and friends.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    None
}

/// Epoch milliseconds to UTC (the Gateway's timestamps).
pub fn from_epoch_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// Trims; an empty string or the literal `"null"` is absent.
pub fn clean(s: Option<&str>) -> Option<String> {
    let t = s?.trim();
    (!t.is_empty() && !t.eq_ignore_ascii_case("null")).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_provider_formats_become_utc() {
        let t = parse_timestamp("2025-01-20T11:36:51.793829+00:00").expect("periskope");
        assert_eq!(t.to_rfc3339(), "2025-01-20T11:36:51.793829+00:00");
        let t = parse_timestamp("2025-01-20T13:36:51+02:00").expect("offset");
        assert_eq!(t.to_rfc3339(), "2025-01-20T11:36:51+00:00");
        assert!(parse_timestamp("2025-01-20T11:36:51.000000Z").is_some());
        assert!(parse_timestamp("2025-01-20 11:36:51").is_some());
        assert!(parse_timestamp("yesterday").is_none());
        assert_eq!(
            from_epoch_ms(1719662400000).expect("ms").to_rfc3339(),
            "2024-06-29T12:00:00+00:00"
        );
    }

    #[test]
    fn blank_and_null_strings_are_absent() {
        assert_eq!(clean(Some("  Bk ")), Some("Bk".into()));
        assert_eq!(clean(Some("null")), None);
        assert_eq!(clean(Some("")), None);
        assert_eq!(clean(None), None);
    }
}
