//! Queries on `people` (the linking itself is `sync::link`).

use diesel::prelude::*;

use super::models::ContactRow;
use super::schema::{contact_keys, contacts, people};
use super::{DbConnection, StoreError};

/// The org's person with this id, if it exists.
pub fn person_exists(conn: &mut DbConnection, org_id: &str, id: &str) -> Result<bool, StoreError> {
    Ok(people::table
        .filter(people::org_id.eq(org_id))
        .filter(people::id.eq(id))
        .select(people::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

/// One page of person ids, in creation order, filtered by phone (E.164) and text.
pub fn list_people(
    conn: &mut DbConnection,
    org_id: &str,
    phone: Option<&str>,
    q: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let mut query = people::table
        .filter(people::org_id.eq(org_id))
        .select(people::id)
        .order(people::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(phone) = phone {
        query = query.filter(
            people::id.nullable().eq_any(
                contacts::table
                    .inner_join(contact_keys::table)
                    .filter(contacts::org_id.eq(org_id.to_string()))
                    .filter(contact_keys::kind.eq("phone"))
                    .filter(contact_keys::value.eq(phone.to_string()))
                    .select(contacts::person_id),
            ),
        );
    }
    if let Some(q) = q {
        query = query.filter(
            people::id.nullable().eq_any(
                contacts::table
                    .filter(contacts::org_id.eq(org_id.to_string()))
                    .filter(
                        contacts::search_text
                            .like(super::contacts::like_pattern(q))
                            .escape('\\'),
                    )
                    .select(contacts::person_id),
            ),
        );
    }
    if let Some(after) = after {
        query = query.filter(people::id.gt(after.to_string()));
    }
    Ok(query.load(conn)?)
}

/// The live contacts of these people, oldest first.
pub fn contacts_of(
    conn: &mut DbConnection,
    org_id: &str,
    person_ids: &[String],
) -> Result<Vec<ContactRow>, StoreError> {
    Ok(contacts::table
        .filter(contacts::org_id.eq(org_id))
        .filter(
            contacts::person_id.eq_any(
                person_ids
                    .iter()
                    .map(|p| Some(p.clone()))
                    .collect::<Vec<_>>(),
            ),
        )
        .filter(contacts::remote_was_deleted.eq(false))
        .order(contacts::id.asc())
        .select(ContactRow::as_select())
        .load(conn)?)
}
