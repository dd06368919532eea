//! Queries on `api_keys`. Only hashes are stored; the key itself is shown once.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::ApiKeyRow;
use super::schema::api_keys;
use super::{DbConnection, StoreError};
use crate::ids;

pub fn insert_api_key(conn: &mut DbConnection, row: &ApiKeyRow) -> Result<(), StoreError> {
    diesel::insert_into(api_keys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The unrevoked key with this hash, if any.
pub fn find_active_api_key_by_hash(
    conn: &mut DbConnection,
    key_hash: &str,
) -> Result<Option<ApiKeyRow>, StoreError> {
    Ok(api_keys::table
        .filter(api_keys::key_hash.eq(key_hash))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// One page of the org's keys in creation order, after the cursor id.
pub fn list_api_keys(
    conn: &mut DbConnection,
    org_id: &str,
    include_revoked: bool,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<ApiKeyRow>, StoreError> {
    let mut query = api_keys::table
        .filter(api_keys::org_id.eq(org_id))
        .select(ApiKeyRow::as_select())
        .order(api_keys::id.asc())
        .limit(limit)
        .into_boxed();
    if !include_revoked {
        query = query.filter(api_keys::revoked_at.is_null());
    }
    if let Some(after) = after {
        query = query.filter(api_keys::id.gt(after.to_string()));
    }
    Ok(query.load(conn)?)
}

/// Every key (of the org named `org`, when given) with its org's name, in
/// creation order; revoked ones only with `revoked`.
pub fn list_every_key(
    conn: &mut DbConnection,
    org: Option<&str>,
    revoked: bool,
) -> Result<Vec<(ApiKeyRow, String)>, StoreError> {
    use super::schema::orgs;
    let mut query = api_keys::table
        .inner_join(orgs::table.on(orgs::id.eq(api_keys::org_id)))
        .select((ApiKeyRow::as_select(), orgs::name))
        .order(api_keys::id.asc())
        .into_boxed();
    if let Some(org) = org {
        query = query.filter(orgs::name.eq(org.to_string()));
    }
    if !revoked {
        query = query.filter(api_keys::revoked_at.is_null());
    }
    Ok(query.load(conn)?)
}

/// The key with this id, whatever its org, with its org's name.
pub fn find_key(
    conn: &mut DbConnection,
    id: &str,
) -> Result<Option<(ApiKeyRow, String)>, StoreError> {
    use super::schema::orgs;
    Ok(api_keys::table
        .inner_join(orgs::table.on(orgs::id.eq(api_keys::org_id)))
        .filter(api_keys::id.eq(id))
        .select((ApiKeyRow::as_select(), orgs::name))
        .first(conn)
        .optional()?)
}

/// The org's active (unrevoked, unexpired) admin keys.
pub fn count_active_admin_keys(conn: &mut DbConnection, org_id: &str) -> Result<usize, StoreError> {
    let now = ids::now();
    let keys: Vec<ApiKeyRow> = api_keys::table
        .filter(api_keys::org_id.eq(org_id))
        .filter(api_keys::revoked_at.is_null())
        .select(ApiKeyRow::as_select())
        .load(conn)?;
    Ok(keys
        .iter()
        .filter(|k| k.is_admin() && k.is_active(now))
        .count())
}

/// What revoking a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now, or already.
    Done,
    /// The org has no such key.
    NotFound,
    /// It is the org's last active admin key, and `keep_an_admin` was asked.
    LastAdmin,
}

/// Revokes the org's key (revoking twice is fine). With `keep_an_admin`, the
/// org's last active admin key stays: checked under the org's lock, so two
/// revocations at once cannot both pass.
pub fn revoke_api_key(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
    keep_an_admin: bool,
) -> Result<Revoked, StoreError> {
    super::in_transaction(conn, |conn| {
        super::people::lock_org(conn, org_id)?;
        let now = ids::now();
        let Some(key) = api_keys::table
            .filter(api_keys::org_id.eq(org_id))
            .filter(api_keys::id.eq(id))
            .select(ApiKeyRow::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(Revoked::NotFound);
        };
        if key.revoked_at.is_some() {
            return Ok(Revoked::Done);
        }
        if keep_an_admin && key.is_admin() && key.is_active(now) {
            let others = api_keys::table
                .filter(api_keys::org_id.eq(org_id))
                .filter(api_keys::id.ne(id))
                .filter(api_keys::revoked_at.is_null())
                .filter(
                    api_keys::expires_at
                        .is_null()
                        .or(api_keys::expires_at.gt(now)),
                )
                .select(ApiKeyRow::as_select())
                .load(conn)?;
            if !others.iter().any(ApiKeyRow::is_admin) {
                return Ok(Revoked::LastAdmin);
            }
        }
        diesel::update(api_keys::table.filter(api_keys::id.eq(id)))
            .set(api_keys::revoked_at.eq(Some(now)))
            .execute(conn)?;
        Ok(Revoked::Done)
    })
}

/// Records that the key was used at `now`, unless that was recorded within the
/// last minute (by this process or another).
pub fn touch_api_key(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let minute_ago = now - chrono::Duration::minutes(1);
    diesel::update(
        api_keys::table.filter(api_keys::id.eq(id)).filter(
            api_keys::last_used_at
                .is_null()
                .or(api_keys::last_used_at.le(minute_ago)),
        ),
    )
    .set(api_keys::last_used_at.eq(Some(now)))
    .execute(conn)?;
    Ok(())
}
