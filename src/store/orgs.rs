//! Queries on `orgs`, the tenants.

use diesel::prelude::*;

use super::models::Org;
use super::schema::orgs;
use super::{DbConnection, StoreError};
use crate::ids;

pub fn find_org_by_name(conn: &mut DbConnection, name: &str) -> Result<Option<Org>, StoreError> {
    Ok(orgs::table
        .filter(orgs::name.eq(name))
        .select(Org::as_select())
        .first(conn)
        .optional()?)
}

/// The org of that name, created if it does not exist (safe against a concurrent creator).
pub fn find_or_insert_org(conn: &mut DbConnection, name: &str) -> Result<Org, StoreError> {
    if let Some(org) = find_org_by_name(conn, name)? {
        return Ok(org);
    }
    let org = Org {
        id: ids::new_id(ids::ORG),
        name: name.to_string(),
        created_at: ids::now(),
    };
    match diesel::insert_into(orgs::table).values(&org).execute(conn) {
        Ok(_) => Ok(org),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => find_org_by_name(conn, name)?.ok_or(StoreError::NotFound),
        Err(e) => Err(e.into()),
    }
}

pub fn find_org(conn: &mut DbConnection, id: &str) -> Result<Option<Org>, StoreError> {
    Ok(orgs::table
        .filter(orgs::id.eq(id))
        .select(Org::as_select())
        .first(conn)
        .optional()?)
}

/// Every org, oldest first.
pub fn all_orgs(conn: &mut DbConnection) -> Result<Vec<Org>, StoreError> {
    Ok(orgs::table
        .order(orgs::created_at.asc())
        .select(Org::as_select())
        .load(conn)?)
}
