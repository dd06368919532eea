//! Rows as stored. JSON columns are text; their typed shape lives with their queries.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::schema::{api_keys, connections, contacts, orgs};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = orgs)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    /// The first characters of the key, shown to tell keys apart.
    pub prefix: String,
    /// SHA-256 of the whole key, hex.
    pub key_hash: String,
    /// Comma-separated scope names.
    pub scopes: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
    /// Written at most once a minute.
    pub last_used_at: Option<NaiveDateTime>,
    /// When it stops working; `None`: never.
    pub expires_at: Option<NaiveDateTime>,
}

impl ApiKeyRow {
    pub fn is_admin(&self) -> bool {
        self.scopes.split(',').any(|s| s == "admin")
    }

    /// Not revoked, and not past its expiry at `now`.
    pub fn is_active(&self, now: NaiveDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

#[derive(Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = connections)]
pub struct ConnectionRow {
    pub id: String,
    pub org_id: String,
    pub provider: String,
    pub name: String,
    pub base_url: String,
    /// JSON of `connections::Credentials`; never logged.
    pub credentials: String,
    /// JSON of `connections::ConnectionSettings`.
    pub settings: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl std::fmt::Debug for ConnectionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRow")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("provider", &self.provider)
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("credentials", &"<redacted>")
            .field("settings", &self.settings)
            .finish()
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = contacts)]
// `None` is NULL (no column of it has another default), as COPY requires.
#[diesel(treat_none_as_default_value = false)]
pub struct ContactRow {
    pub id: String,
    pub org_id: String,
    pub connection_id: String,
    pub provider: String,
    pub remote_id: String,
    pub person_id: Option<String>,
    pub search_text: String,
    /// JSON of the `ContactRecord`, without `remote_data`.
    pub record: String,
    /// The provider's object, as JSON.
    pub remote_data: Option<String>,
    pub content_hash: String,
    pub remote_updated_at: Option<NaiveDateTime>,
    pub fetched_at: NaiveDateTime,
    pub remote_was_deleted: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Hash of the thin list item the record was last read from (the Gateway's).
    pub list_hash: Option<String>,
}

/// Where a sync run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    /// The listing could not be completed: nothing was marked deleted.
    Failed,
    /// The listing was complete but some records could not be read.
    Partial,
    /// An operator cancelled it; it stopped after the page being written, and
    /// nothing was marked deleted.
    Cancelled,
    /// The listing was complete, everything but deletions was written, and the
    /// deletion guard held the contacts it would have marked deleted for an
    /// operator to apply or discard.
    Held,
}

/// What started a sync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The scheduler, at the connection's interval.
    Schedule,
    /// `POST /v1/admin/connections/{id}/sync`.
    Api,
    /// `unicontacts sync`.
    Cli,
    /// `serve --demo` loading the demo providers.
    Demo,
}

/// `as_str`, `parse` and the text conversions diesel stores them through.
macro_rules! text_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s).ok_or_else(|| {
                    format!("`{s}` is not a {}", stringify!($name))
                })
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }
    };
}

text_enum!(RunStatus {
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Partial => "partial",
    Cancelled => "cancelled",
    Held => "held",
});

/// Where one event's delivery to a webhook endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// To be tried again at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up: retries spent, 410 Gone, or the endpoint disabled.
    Failed,
}

text_enum!(DeliveryStatus {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

text_enum!(Trigger {
    Schedule => "schedule",
    Api => "api",
    Cli => "cli",
    Demo => "demo",
});

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::sync_runs)]
pub struct SyncRunRow {
    pub id: String,
    pub org_id: String,
    pub connection_id: String,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub trigger_kind: Trigger,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub status: RunStatus,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub deleted: i64,
    pub pages: i64,
    pub upstream_requests: i64,
    pub throttled_429: i64,
    pub limiter_wait_ms: i64,
    pub error: Option<String>,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
    /// Deletions the run's guard held for an operator (status `held`).
    pub deletions_held: i64,
    /// Records skipped because they hold an identifier an erasure suppressed.
    pub suppressed: i64,
}
