//! The Gateway's JSON (docs/providers.md §3.3; `gateway-contacts.openapi.json`).
//! Timestamps are epoch milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A list item: thin (no phone JID, no timestamps).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListContact {
    pub lid: String,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub business_name: Option<String>,
    /// `dm` whenever a direct chat exists, else `group`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactList {
    pub data: Vec<Value>,
    /// Absent or empty at the end.
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub id: i64,
    pub lid: String,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub phone_jid: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub business_name: Option<String>,
    pub first_seen_at: i64,
    pub updated_at: i64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMembership {
    pub jid: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The label WhatsApp shows next to the name in that group.
    #[serde(default)]
    pub tag: Option<String>,
    /// `member`, `admin` or `superadmin`.
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub last_seen: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactDetail {
    #[serde(default)]
    pub identity: Option<Identity>,
    #[serde(default)]
    pub dm: Option<bool>,
    #[serde(default)]
    pub groups: Option<Vec<GroupMembership>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `{"error": {"code", "message", "details"}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub details: Option<Value>,
}
