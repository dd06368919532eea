//! Queries on `deletion_holds` and `held_deletions`: the deletion guard's holds.
//!
//! A run whose deletion check would mark too many of its connection's live
//! contacts deleted holds them instead: one `held_deletions` row per contact
//! (naming the run that holds it now) and one `deletion_holds` row for the run.
//! A connection has at most one hold in state `held`: a later run that still
//! lacks the contacts carries them into its own hold (the earlier one becomes
//! `superseded`), one that sees them all again releases them (`released`), and
//! an operator applies (`applied`) or discards (`discarded`) it.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::schema::{contacts, deletion_holds, held_deletions, sync_seen};
use super::{DbConnection, StoreError};

/// Where a run's hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldState {
    /// Waiting for an operator (or a later run).
    Held,
    /// An operator marked the contacts still held deleted.
    Applied,
    /// An operator released the hold; nothing was deleted.
    Discarded,
    /// A later run listed the contacts again.
    Released,
    /// A later run still lacked them and holds them now.
    Superseded,
}

impl HoldState {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldState::Held => "held",
            HoldState::Applied => "applied",
            HoldState::Discarded => "discarded",
            HoldState::Released => "released",
            HoldState::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            HoldState::Held,
            HoldState::Applied,
            HoldState::Discarded,
            HoldState::Released,
            HoldState::Superseded,
        ]
        .into_iter()
        .find(|h| h.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = deletion_holds)]
pub struct HoldRow {
    pub run_id: String,
    pub org_id: String,
    pub connection_id: String,
    pub state: String,
    /// How many the run held when it ended.
    pub held: i64,
    /// When the connection's hold began (an earlier run's, carried over).
    pub since: NaiveDateTime,
    pub reason: String,
    pub resolved_at: Option<NaiveDateTime>,
    /// The API key that applied or discarded it, or the run that released or
    /// superseded it.
    pub resolved_by: Option<String>,
    /// How many an apply marked deleted.
    pub applied: Option<i64>,
}

impl HoldRow {
    pub fn state(&self) -> HoldState {
        HoldState::parse(&self.state).unwrap_or(HoldState::Held)
    }
}

/// The connections' current holds (state `held`), by connection id.
pub fn current(
    conn: &mut DbConnection,
    connection_ids: &[String],
) -> Result<HashMap<String, HoldRow>, StoreError> {
    let mut out = HashMap::new();
    for chunk in connection_ids.chunks(500) {
        let rows: Vec<HoldRow> = deletion_holds::table
            .filter(deletion_holds::connection_id.eq_any(chunk))
            .filter(deletion_holds::state.eq(HoldState::Held.as_str()))
            .select(HoldRow::as_select())
            .load(conn)?;
        out.extend(rows.into_iter().map(|r| (r.connection_id.clone(), r)));
    }
    Ok(out)
}

/// The hold of the org's run, in any state.
pub fn find(
    conn: &mut DbConnection,
    org_id: &str,
    run_id: &str,
) -> Result<Option<HoldRow>, StoreError> {
    Ok(deletion_holds::table
        .filter(deletion_holds::org_id.eq(org_id))
        .filter(deletion_holds::run_id.eq(run_id))
        .select(HoldRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every current hold of every org (the CLI), oldest first.
pub fn all_current(conn: &mut DbConnection) -> Result<Vec<HoldRow>, StoreError> {
    Ok(deletion_holds::table
        .filter(deletion_holds::state.eq(HoldState::Held.as_str()))
        .order(deletion_holds::run_id.asc())
        .select(HoldRow::as_select())
        .load(conn)?)
}

/// How many of the connection's contacts are held.
pub fn count_held(conn: &mut DbConnection, connection_id: &str) -> Result<i64, StoreError> {
    Ok(held_deletions::table
        .filter(held_deletions::connection_id.eq(connection_id))
        .count()
        .get_result(conn)?)
}

/// Contacts held now, per provider (for `/metrics`).
pub fn held_by_provider(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, StoreError> {
    use super::schema::connections;
    Ok(held_deletions::table
        .inner_join(connections::table.on(connections::id.eq(held_deletions::connection_id)))
        .group_by(connections::provider)
        .select((connections::provider, diesel::dsl::count_star()))
        .load(conn)?)
}

/// How many live contacts of the connection the run did not see: what its
/// deletion check would mark deleted without a guard.
pub fn count_unseen(
    conn: &mut DbConnection,
    connection_id: &str,
    run_id: &str,
) -> Result<i64, StoreError> {
    Ok(contacts::table
        .filter(contacts::connection_id.eq(connection_id))
        .filter(contacts::remote_was_deleted.eq(false))
        .filter(not(exists(
            sync_seen::table
                .filter(sync_seen::run_id.eq(run_id))
                .filter(sync_seen::remote_id.eq(contacts::remote_id)),
        )))
        .count()
        .get_result(conn)?)
}

/// Lets go of the connection's held contacts that are no longer both live and
/// unseen by the run (`run_id`: `None` lets go of every one: the run saw all
/// live contacts). Returns how many.
pub fn release_seen(
    conn: &mut DbConnection,
    connection_id: &str,
    run_id: Option<&str>,
) -> Result<usize, StoreError> {
    let Some(run_id) = run_id else {
        return Ok(diesel::delete(
            held_deletions::table.filter(held_deletions::connection_id.eq(connection_id)),
        )
        .execute(conn)?);
    };
    let still_missing = contacts::table
        .filter(contacts::id.eq(held_deletions::contact_id))
        .filter(contacts::remote_was_deleted.eq(false))
        .filter(not(exists(
            sync_seen::table
                .filter(sync_seen::run_id.eq(run_id))
                .filter(sync_seen::remote_id.eq(contacts::remote_id)),
        )));
    Ok(diesel::delete(
        held_deletions::table
            .filter(held_deletions::connection_id.eq(connection_id))
            .filter(not(exists(still_missing))),
    )
    .execute(conn)?)
}

/// The connection's held contacts become the run's (a later run that still
/// lacks them holds them in its turn).
pub fn carry(conn: &mut DbConnection, connection_id: &str, run_id: &str) -> Result<(), StoreError> {
    diesel::update(held_deletions::table.filter(held_deletions::connection_id.eq(connection_id)))
        .set(held_deletions::run_id.eq(run_id))
        .execute(conn)?;
    Ok(())
}

/// Holds, for the run, every live contact of the connection it did not see and
/// that is not held yet. Returns how many.
pub fn hold_unseen(
    conn: &mut DbConnection,
    connection_id: &str,
    run_id: &str,
) -> Result<usize, StoreError> {
    let unseen = contacts::table
        .filter(contacts::connection_id.eq(connection_id))
        .filter(contacts::remote_was_deleted.eq(false))
        .filter(not(exists(
            sync_seen::table
                .filter(sync_seen::run_id.eq(run_id))
                .filter(sync_seen::remote_id.eq(contacts::remote_id)),
        )))
        .filter(not(exists(
            held_deletions::table
                .filter(held_deletions::connection_id.eq(connection_id))
                .filter(held_deletions::contact_id.eq(contacts::id)),
        )))
        .select((
            contacts::connection_id,
            contacts::id,
            run_id.into_sql::<diesel::sql_types::Text>(),
        ));
    Ok(diesel::insert_into(held_deletions::table)
        .values(unseen)
        .into_columns((
            held_deletions::connection_id,
            held_deletions::contact_id,
            held_deletions::run_id,
        ))
        .execute(conn)?)
}

/// The next `limit` contacts the run holds (by contact id, after `after`).
pub fn held_contact_ids(
    conn: &mut DbConnection,
    run_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let mut query = held_deletions::table
        .filter(held_deletions::run_id.eq(run_id))
        .select(held_deletions::contact_id)
        .order(held_deletions::contact_id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(held_deletions::contact_id.gt(after.to_string()));
    }
    Ok(query.load(conn)?)
}

/// Lets go of every contact the run holds; returns how many.
pub fn release_run(conn: &mut DbConnection, run_id: &str) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(held_deletions::table.filter(held_deletions::run_id.eq(run_id)))
            .execute(conn)?,
    )
}

/// Lets go of these held contacts of the run.
pub fn unhold(
    conn: &mut DbConnection,
    run_id: &str,
    contact_ids: &[String],
) -> Result<(), StoreError> {
    for chunk in contact_ids.chunks(500) {
        diesel::delete(
            held_deletions::table
                .filter(held_deletions::run_id.eq(run_id))
                .filter(held_deletions::contact_id.eq_any(chunk)),
        )
        .execute(conn)?;
    }
    Ok(())
}

/// Records where the connection's hold stands once the run's deletion check is
/// done: the earlier current hold is `superseded` by this run's (when it still
/// holds some) or `released` (when none is left); a run holding `held` contacts
/// records its own hold, carrying the earlier one's start. Returns the run's
/// hold, if any.
pub fn settle(
    conn: &mut DbConnection,
    org_id: &str,
    connection_id: &str,
    run_id: &str,
    held: i64,
    reason: &str,
    now: NaiveDateTime,
) -> Result<Option<HoldRow>, StoreError> {
    let earlier: Option<HoldRow> = deletion_holds::table
        .filter(deletion_holds::connection_id.eq(connection_id))
        .filter(deletion_holds::state.eq(HoldState::Held.as_str()))
        .filter(deletion_holds::run_id.ne(run_id))
        .select(HoldRow::as_select())
        .first(conn)
        .optional()?;
    if let Some(e) = &earlier {
        let state = if held > 0 {
            HoldState::Superseded
        } else {
            HoldState::Released
        };
        resolve(conn, &e.run_id, state, Some(run_id), None, now)?;
    }
    if held == 0 {
        return Ok(None);
    }
    let row = HoldRow {
        run_id: run_id.to_string(),
        org_id: org_id.to_string(),
        connection_id: connection_id.to_string(),
        state: HoldState::Held.as_str().to_string(),
        held,
        since: earlier.map(|e| e.since).unwrap_or(now),
        reason: reason.to_string(),
        resolved_at: None,
        resolved_by: None,
        applied: None,
    };
    diesel::insert_into(deletion_holds::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(Some(row))
}

/// Ends a hold that is still `held` (`false`: it was not).
pub fn resolve(
    conn: &mut DbConnection,
    run_id: &str,
    state: HoldState,
    by: Option<&str>,
    applied: Option<i64>,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let n = diesel::update(
        deletion_holds::table
            .filter(deletion_holds::run_id.eq(run_id))
            .filter(deletion_holds::state.eq(HoldState::Held.as_str())),
    )
    .set((
        deletion_holds::state.eq(state.as_str()),
        deletion_holds::resolved_at.eq(Some(now)),
        deletion_holds::resolved_by.eq(by),
        deletion_holds::applied.eq(applied),
    ))
    .execute(conn)?;
    Ok(n == 1)
}
