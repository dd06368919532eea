//! Queries on `api_keys`. Only hashes are stored; the key itself is shown once.

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

/// Revokes the org's key. `false` when the org has no such key; revoking twice is fine.
pub fn revoke_api_key(conn: &mut DbConnection, org_id: &str, id: &str) -> Result<bool, StoreError> {
    let exists = api_keys::table
        .filter(api_keys::org_id.eq(org_id))
        .filter(api_keys::id.eq(id))
        .select(api_keys::id)
        .first::<String>(conn)
        .optional()?
        .is_some();
    if exists {
        diesel::update(
            api_keys::table
                .filter(api_keys::id.eq(id))
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(api_keys::revoked_at.eq(Some(ids::now())))
        .execute(conn)?;
    }
    Ok(exists)
}
