//! Periskope's JSON exactly as sent (docs/providers.md §1.3–1.7; `@periskope/types`).
//! Every field the provider may leave out or send as null is an `Option`; fields
//! we do not know are kept in `extra`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A contact (`tbl_contacts` row plus `labels`, and `chat_ids` on GET by id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// `919537851844@c.us`; the primary key.
    pub contact_id: String,
    #[serde(default)]
    pub org_id: Option<String>,
    #[serde(default)]
    pub contact_name: Option<String>,
    /// `user` or `business`.
    #[serde(default)]
    pub contact_type: Option<String>,
    #[serde(default)]
    pub contact_color: Option<String>,
    #[serde(default)]
    pub contact_image: Option<String>,
    #[serde(default)]
    pub contact_lid: Option<String>,
    #[serde(default)]
    pub is_imported: Option<bool>,
    #[serde(default)]
    pub is_internal: Option<bool>,
    #[serde(default)]
    pub is_my_contact: Option<bool>,
    #[serde(default)]
    pub is_wa_contact: Option<bool>,
    #[serde(default)]
    pub is_business: Option<bool>,
    #[serde(default)]
    pub is_blocked: Option<bool>,
    /// `{ "label-xxxx": true }`.
    #[serde(default)]
    pub label_ids: Option<BTreeMap<String, Value>>,
    /// Label names (computed; not paired with `label_ids` by position).
    #[serde(default)]
    pub labels: Option<Vec<String>>,
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Only on GET by id: `@g.us` groups plus the own `@c.us` 1-1 chat.
    #[serde(default)]
    pub chat_ids: Option<Vec<String>>,
    #[serde(default)]
    pub pushname: Option<String>,
    #[serde(default)]
    pub verified_name: Option<String>,
    #[serde(default)]
    pub short_name: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /contacts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactList {
    /// Kept raw so each item's `remote_data` is the provider's object untouched.
    pub contacts: Vec<Value>,
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub from: Option<u64>,
    #[serde(default)]
    pub to: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /chats`: `{chats, count, from, to}` like the contacts (`ListChatsType`),
/// less the chats. A page of 2 000 chats is megabytes, hundreds when every group
/// carries all its members, so its chats are read one by one as the body
/// arrives (`json_split`), each straight into the few fields a contact takes
/// from a chat ([`Chat`]); this is the rest of the body, the array emptied.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ChatListHead {
    /// Present (emptied by the splitter): a body without it is not a chat list.
    pub chats: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    pub count: Option<u64>,
}

/// A member of a chat (`tbl_chat_participants` + `tbl_contacts`): who, and whether admin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatMember {
    #[serde(default)]
    pub contact_id: String,
    #[serde(default)]
    pub is_admin: Option<bool>,
    #[serde(default)]
    pub is_super_admin: Option<bool>,
}

/// The parts of a chat (docs/providers.md §1.4) that concern contacts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    pub chat_id: String,
    #[serde(default)]
    pub chat_name: Option<String>,
    /// `user`, `group`, `business` or `unknown`.
    #[serde(default)]
    pub chat_type: Option<String>,
    /// The agent who owns the conversation (an email).
    #[serde(default)]
    pub assigned_to: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub member_count: Option<u64>,
    /// `{ "label-…": true }`.
    #[serde(default)]
    pub label_ids: Option<BTreeMap<String, Value>>,
    /// `{ "<contact_id>": member }`; typed nullable by the SDK.
    #[serde(default)]
    pub members: Option<BTreeMap<String, ChatMember>>,
    /// Keyed by property id (`property-…`) or name; values are strings.
    #[serde(default)]
    pub custom_properties: Option<Map<String, Value>>,
}

/// The documented error body: `{code, message, name, status, fields}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub fields: Option<Value>,
}

/// `POST /contacts/create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateContact {
    pub contact_id: String,
    pub contact_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_internal: Option<bool>,
    /// Comma-separated label names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
}

/// `PATCH /contacts/{digits}`: at least one field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateContact {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_internal: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
}
