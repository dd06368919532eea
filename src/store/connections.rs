//! Queries on `connections`, and the typed shape of their JSON columns.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use unicontacts_adapters::ProviderKind;
use utoipa::ToSchema;

use super::models::ConnectionRow;
use super::schema::connections;
use super::{DbConnection, StoreError};

/// What a provider needs to be called. Write-only: never serialized into a response
/// or a log line (see `Debug`).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    pub api_key: String,
    /// Periskope's `x-phone`: digits only, or a `phone-…` id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The Gateway session whose contacts are read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("api_key", &"<redacted>")
            .field("phone", &self.phone)
            .field("session", &self.session)
            .finish()
    }
}

/// Per-connection settings, stored with every default filled in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct ConnectionSettings {
    /// ISO 3166-1 alpha-2 region for phones written without a country code.
    #[schema(example = "IN")]
    pub default_country: Option<String>,
    /// Starting upstream quota; learned from `X-RateLimit-*` replies after that.
    pub rate_limit_per_second: u32,
    /// How often reconciliation syncs this connection.
    pub sync_interval_seconds: u64,
    /// How long a live read stays fresh in the cache.
    pub cache_ttl_seconds: u64,
    /// Records per list page when syncing; unset: the most the provider gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// What a created contact gets when its body does not say (WA.cr requires
    /// a status, a source and a kind on create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_status_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_source_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "lead")]
    pub default_kind: Option<unicontacts_adapters::canonical::ContactKind>,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            default_country: None,
            rate_limit_per_second: 10,
            sync_interval_seconds: 900,
            cache_ttl_seconds: 60,
            page_size: None,
            default_status_id: None,
            default_source_id: None,
            default_kind: None,
        }
    }
}

/// A connection as the service uses it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub org_id: String,
    pub provider: ProviderKind,
    pub name: String,
    pub base_url: String,
    pub credentials: Credentials,
    pub settings: ConnectionSettings,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl TryFrom<ConnectionRow> for Connection {
    type Error = StoreError;

    fn try_from(row: ConnectionRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("connection {}: {what}", row.id));
        Ok(Connection {
            provider: ProviderKind::parse(&row.provider)
                .ok_or_else(|| corrupt("unknown provider"))?,
            credentials: serde_json::from_str(&row.credentials)
                .map_err(|_| corrupt("unreadable credentials"))?,
            settings: serde_json::from_str(&row.settings)
                .map_err(|_| corrupt("unreadable settings"))?,
            id: row.id,
            org_id: row.org_id,
            name: row.name,
            base_url: row.base_url,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

impl Connection {
    fn to_row(&self) -> Result<ConnectionRow, StoreError> {
        let json =
            |r: serde_json::Result<String>| r.map_err(|e| StoreError::Corrupt(e.to_string()));
        Ok(ConnectionRow {
            id: self.id.clone(),
            org_id: self.org_id.clone(),
            provider: self.provider.as_str().to_string(),
            name: self.name.clone(),
            base_url: self.base_url.clone(),
            credentials: json(serde_json::to_string(&self.credentials))?,
            settings: json(serde_json::to_string(&self.settings))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn name_taken(name: &str) -> StoreError {
    StoreError::Conflict(format!("a connection named `{name}` already exists"))
}

fn map_unique(e: diesel::result::Error, name: &str) -> StoreError {
    match StoreError::from(e) {
        StoreError::Conflict(_) => name_taken(name),
        other => other,
    }
}

pub fn insert_connection(conn: &mut DbConnection, c: &Connection) -> Result<(), StoreError> {
    diesel::insert_into(connections::table)
        .values(&c.to_row()?)
        .execute(conn)
        .map_err(|e| map_unique(e, &c.name))?;
    Ok(())
}

/// The org's connection with this id; another org's is `None`, as if it did not exist.
pub fn find_connection(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<Connection>, StoreError> {
    connections::table
        .filter(connections::org_id.eq(org_id))
        .filter(connections::id.eq(id))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()?
        .map(Connection::try_from)
        .transpose()
}

/// The org's connection of that name.
pub fn find_connection_by_name(
    conn: &mut DbConnection,
    org_id: &str,
    name: &str,
) -> Result<Option<Connection>, StoreError> {
    connections::table
        .filter(connections::org_id.eq(org_id))
        .filter(connections::name.eq(name))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()?
        .map(Connection::try_from)
        .transpose()
}

/// One page of the org's connections in creation order, after the cursor id.
pub fn list_connections(
    conn: &mut DbConnection,
    org_id: &str,
    provider: Option<ProviderKind>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Connection>, StoreError> {
    let mut query = connections::table
        .filter(connections::org_id.eq(org_id))
        .select(ConnectionRow::as_select())
        .order(connections::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(p) = provider {
        query = query.filter(connections::provider.eq(p.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(connections::id.gt(after.to_string()));
    }
    query
        .load(conn)?
        .into_iter()
        .map(Connection::try_from)
        .collect()
}

/// Saves every field of the connection; `false` when the org has no such connection.
pub fn update_connection(conn: &mut DbConnection, c: &Connection) -> Result<bool, StoreError> {
    let row = c.to_row()?;
    let n = diesel::update(
        connections::table
            .filter(connections::org_id.eq(&c.org_id))
            .filter(connections::id.eq(&c.id)),
    )
    .set(&row)
    .execute(conn)
    .map_err(|e| map_unique(e, &c.name))?;
    Ok(n == 1)
}

pub fn delete_connection(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<bool, StoreError> {
    diesel::Connection::transaction(conn, |conn| {
        let mine = connections::table
            .filter(connections::org_id.eq(org_id))
            .filter(connections::id.eq(id))
            .count()
            .get_result::<i64>(conn)?
            == 1;
        if !mine {
            return Ok(false);
        }
        // Seen sets are keyed by run, and the runs go with the connection (cascade).
        super::sync_runs::drop_seen_sets(conn, id)?;
        diesel::delete(connections::table.filter(connections::id.eq(id))).execute(conn)?;
        Ok(true)
    })
}

/// Every connection of every org in id order, or only the one with id `only`
/// (the scheduler and `unicontacts sync`, which act for all orgs).
pub fn list_all_connections(
    conn: &mut DbConnection,
    only: Option<&str>,
) -> Result<Vec<Connection>, StoreError> {
    let mut query = connections::table
        .select(ConnectionRow::as_select())
        .order(connections::id.asc())
        .into_boxed();
    if let Some(id) = only {
        query = query.filter(connections::id.eq(id.to_string()));
    }
    query
        .load(conn)?
        .into_iter()
        .map(Connection::try_from)
        .collect()
}
