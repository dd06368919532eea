//! Queries on `connections`, and the typed shape of their JSON columns.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use unicontacts_adapters::ProviderKind;
use utoipa::ToSchema;

use super::connection_status::Health;
use super::models::ConnectionRow;
use super::schema::connections;
use super::{in_transaction, DbConnection, StoreError};
use crate::secrets::Sealer;

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
    /// The deletion guard: a sync whose deletion check would mark more than
    /// this percentage of the connection's live contacts deleted (and at least
    /// `deletion_guard_min` of them) deletes none and holds them for review; a
    /// listing that comes back empty holds always. `100` turns the guard off.
    #[serde(default = "default_guard_percent")]
    #[schema(minimum = 0, maximum = 100, example = 10)]
    pub deletion_guard_percent: u8,
    /// The fewest deletions the percentage rule holds.
    #[serde(default = "default_guard_min")]
    #[schema(minimum = 0, maximum = 1000000, example = 5)]
    pub deletion_guard_min: u32,
}

fn default_guard_percent() -> u8 {
    10
}

fn default_guard_min() -> u32 {
    5
}

impl ConnectionSettings {
    /// Whether a deletion check that would mark `unseen` of `live` contacts
    /// deleted must hold them instead (`listed`: how many contacts the listing
    /// had). `unseen` counts only contacts no hold keeps already.
    pub fn guard_holds(&self, live: i64, unseen: i64, listed: i64) -> bool {
        if self.deletion_guard_percent >= 100 || unseen <= 0 {
            return false;
        }
        if listed == 0 && live > 0 {
            return true;
        }
        unseen * 100 > i64::from(self.deletion_guard_percent) * live
            && unseen >= i64::from(self.deletion_guard_min)
    }
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
            deletion_guard_percent: default_guard_percent(),
            deletion_guard_min: default_guard_min(),
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

impl Connection {
    /// The row as a connection, its credentials opened with `sealer`.
    fn from_row(row: ConnectionRow, sealer: &Sealer) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("connection {}: {what}", row.id));
        let credentials = sealer.open(&row.id, &row.credentials)?;
        Ok(Connection {
            provider: ProviderKind::parse(&row.provider)
                .ok_or_else(|| corrupt("unknown provider"))?,
            credentials: serde_json::from_str(&credentials)
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
    /// The connection as a row, its credentials sealed with `sealer`.
    fn to_row(&self, sealer: &Sealer) -> Result<ConnectionRow, StoreError> {
        let json =
            |r: serde_json::Result<String>| r.map_err(|e| StoreError::Corrupt(e.to_string()));
        Ok(ConnectionRow {
            id: self.id.clone(),
            org_id: self.org_id.clone(),
            provider: self.provider.as_str().to_string(),
            name: self.name.clone(),
            base_url: self.base_url.clone(),
            credentials: sealer.seal(&self.id, &json(serde_json::to_string(&self.credentials))?),
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

pub fn insert_connection(
    conn: &mut DbConnection,
    sealer: &Sealer,
    c: &Connection,
) -> Result<(), StoreError> {
    diesel::insert_into(connections::table)
        .values(&c.to_row(sealer)?)
        .execute(conn)
        .map_err(|e| map_unique(e, &c.name))?;
    Ok(())
}

/// The org's connection with this id; another org's is `None`, as if it did not exist.
pub fn find_connection(
    conn: &mut DbConnection,
    sealer: &Sealer,
    org_id: &str,
    id: &str,
) -> Result<Option<Connection>, StoreError> {
    connections::table
        .filter(connections::org_id.eq(org_id))
        .filter(connections::id.eq(id))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()?
        .map(|row| Connection::from_row(row, sealer))
        .transpose()
}

/// The org's connection of that name.
pub fn find_connection_by_name(
    conn: &mut DbConnection,
    sealer: &Sealer,
    org_id: &str,
    name: &str,
) -> Result<Option<Connection>, StoreError> {
    connections::table
        .filter(connections::org_id.eq(org_id))
        .filter(connections::name.eq(name))
        .select(ConnectionRow::as_select())
        .first(conn)
        .optional()?
        .map(|row| Connection::from_row(row, sealer))
        .transpose()
}

/// One page of the org's connections in creation order, after the cursor id.
#[allow(clippy::too_many_arguments)]
pub fn list_connections(
    conn: &mut DbConnection,
    sealer: &Sealer,
    org_id: &str,
    provider: Option<ProviderKind>,
    health: Option<Health>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Connection>, StoreError> {
    use super::connection_status as status_mod;
    use super::schema::connection_status as status;
    let mut query = connections::table
        .filter(connections::org_id.eq(org_id))
        .select(ConnectionRow::as_select())
        .order(connections::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(p) = provider {
        query = query.filter(connections::provider.eq(p.as_str()));
    }
    use super::schema::deletion_holds;
    let failing = status::table
        .filter(status::error_count.gt(0))
        .select(status::connection_id);
    let holding = || {
        deletion_holds::table
            .filter(deletion_holds::state.eq(super::deletion_holds::HoldState::Held.as_str()))
            .select(deletion_holds::connection_id)
    };
    query = match health {
        None => query,
        Some(Health::Healthy) => query
            .filter(diesel::dsl::not(connections::id.eq_any(failing)))
            .filter(diesel::dsl::not(connections::id.eq_any(holding()))),
        Some(Health::CredentialsRefused) => query.filter(
            connections::id
                .eq_any(failing.filter(status::last_error_kind.eq(status_mod::CREDENTIALS))),
        ),
        Some(Health::Failing) => query.filter(
            connections::id.eq_any(
                failing
                    .filter(status::last_error_kind.ne(status_mod::CREDENTIALS))
                    .filter(status::error_count.ge(status_mod::FAILING_AFTER)),
            ),
        ),
        Some(Health::Degraded) => query.filter(
            connections::id
                .eq_any(
                    failing
                        .filter(status::last_error_kind.ne(status_mod::CREDENTIALS))
                        .filter(status::error_count.lt(status_mod::FAILING_AFTER)),
                )
                .or(connections::id.eq_any(holding()).and(diesel::dsl::not(
                    connections::id.eq_any(
                        status::table
                            .filter(status::error_count.gt(0))
                            .select(status::connection_id),
                    ),
                ))),
        ),
    };
    if let Some(after) = after {
        query = query.filter(connections::id.gt(after.to_string()));
    }
    query
        .load(conn)?
        .into_iter()
        .map(|row| Connection::from_row(row, sealer))
        .collect()
}

/// Saves every field of the connection; `false` when the org has no such connection.
pub fn update_connection(
    conn: &mut DbConnection,
    sealer: &Sealer,
    c: &Connection,
) -> Result<bool, StoreError> {
    let row = c.to_row(sealer)?;
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

/// Whether the org has this connection.
pub fn connection_exists(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<bool, StoreError> {
    Ok(connections::table
        .filter(connections::org_id.eq(org_id))
        .filter(connections::id.eq(id))
        .count()
        .get_result::<i64>(conn)?
        == 1)
}

/// Deletes the org's connection with its contacts and their keys, its runs and
/// their seen sets; `false` if the org has no such connection. Inside the
/// caller's transaction, under the org's lock (its contacts' people are the
/// caller's to relink first).
pub fn delete_connection(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<bool, StoreError> {
    if !connection_exists(conn, org_id, id)? {
        return Ok(false);
    }
    // Seen sets are keyed by run, and the runs go with the connection (cascade).
    super::sync_runs::drop_seen_sets(conn, id)?;
    // No foreign key deletes them on PostgreSQL (see its migration 000014).
    super::contacts::delete_of_connection(conn, id)?;
    diesel::delete(connections::table.filter(connections::id.eq(id))).execute(conn)?;
    Ok(true)
}

/// Every connection of every org in id order, or only the one with id `only`
/// (the scheduler and `unicontacts sync`, which act for all orgs).
pub fn list_all_connections(
    conn: &mut DbConnection,
    sealer: &Sealer,
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
        .map(|row| Connection::from_row(row, sealer))
        .collect()
}

/// Every row's id and stored credentials, sealed or not.
fn stored_credentials(conn: &mut DbConnection) -> Result<Vec<(String, String)>, StoreError> {
    Ok(connections::table
        .select((connections::id, connections::credentials))
        .order(connections::id.asc())
        .load(conn)?)
}

fn set_credentials(conn: &mut DbConnection, id: &str, sealed: &str) -> Result<(), StoreError> {
    diesel::update(connections::table.filter(connections::id.eq(id)))
        .set(connections::credentials.eq(sealed))
        .execute(conn)?;
    Ok(())
}

/// The key ids the stored credentials are sealed with.
pub fn sealed_key_ids(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    let mut stored = stored_credentials(conn)?;
    stored.extend(super::webhooks::stored_secrets(conn)?);
    let mut ids: Vec<String> = stored
        .iter()
        .filter_map(|(_, c)| Sealer::sealed_with(c).map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Start-up's step: checks that every sealed row opens with `sealer` (a wrong
/// key is an error naming both key ids) and seals the rows stored plain before
/// sealing existed, in one transaction. Returns how many it sealed.
pub fn seal_plain_rows(conn: &mut DbConnection, sealer: &Sealer) -> Result<usize, StoreError> {
    in_transaction(conn, |conn| {
        let rows = stored_credentials(conn)?;
        let mut sealed = 0;
        for (id, stored) in rows {
            if Sealer::is_sealed(&stored) {
                sealer.open(&id, &stored)?;
            } else {
                serde_json::from_str::<Credentials>(&stored).map_err(|_| {
                    StoreError::Corrupt(format!("connection {id}: unreadable credentials"))
                })?;
                set_credentials(conn, &id, &sealer.seal(&id, &stored))?;
                sealed += 1;
            }
        }
        // Webhook secrets are sealed from the start: they must open too.
        for (id, stored) in super::webhooks::stored_secrets(conn)? {
            sealer.open(&id, &stored)?;
        }
        // And the orgs' keys of identifier hashes.
        for (org, stored) in super::suppressions::stored_keys(conn)? {
            sealer.open(&org, &stored)?;
        }
        Ok(sealed)
    })
}

/// Re-seals every row's credentials from `old` to `new` in one transaction: all
/// rows move to the new key, or none does. Returns how many.
pub fn reseal_all(
    conn: &mut DbConnection,
    old: &Sealer,
    new: &Sealer,
) -> Result<usize, StoreError> {
    in_transaction(conn, |conn| {
        let rows = stored_credentials(conn)?;
        for (id, stored) in &rows {
            let plain = if Sealer::is_sealed(stored) {
                old.open(id, stored)?
            } else {
                stored.clone()
            };
            set_credentials(conn, id, &new.seal(id, &plain))?;
        }
        let secrets = super::webhooks::stored_secrets(conn)?;
        for (id, stored) in &secrets {
            let plain = old.open(id, stored)?;
            super::webhooks::set_secrets(conn, id, &new.seal(id, &plain))?;
        }
        for (org, stored) in super::suppressions::stored_keys(conn)? {
            let plain = old.open(&org, &stored)?;
            super::suppressions::set_key(conn, &org, &new.seal(&org, &plain))?;
        }
        Ok(rows.len())
    })
}

#[cfg(test)]
mod tests {
    use super::ConnectionSettings;

    #[test]
    fn the_deletion_guard_holds_past_its_share_and_minimum_and_on_an_empty_listing() {
        let guard = |percent: u8, min: u32| ConnectionSettings {
            deletion_guard_percent: percent,
            deletion_guard_min: min,
            ..ConnectionSettings::default()
        };
        let default = ConnectionSettings::default();
        // (live, unseen, listed) → holds?
        for (live, unseen, listed, holds) in [
            (100, 10, 90, false), // 10 % is not more than 10 %
            (100, 11, 89, true),
            (40, 4, 36, false), // over 10 %, under the minimum of 5
            (40, 5, 35, true),
            (3, 3, 0, true),    // an empty listing holds whatever the minimum
            (43, 40, 3, true),  // the example
            (43, 0, 43, false), // nothing to delete
            (0, 0, 0, false),   // nothing stored
        ] {
            assert_eq!(
                default.guard_holds(live, unseen, listed),
                holds,
                "{live} live, {unseen} unseen, {listed} listed"
            );
        }
        // 100 turns it off, the empty listing included.
        assert!(!guard(100, 0).guard_holds(43, 43, 0));
        // 0 % with no minimum: any deletion holds.
        assert!(guard(0, 0).guard_holds(1000, 1, 999));
        assert!(!guard(50, 5).guard_holds(10, 5, 5));
        assert!(guard(49, 5).guard_holds(10, 5, 5));
    }
}
