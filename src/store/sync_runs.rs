//! Queries on `sync_runs`, `sync_leases` and `sync_seen`: run history, the
//! one-run-per-connection lease, and the seen set of a run.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::models::{RunStatus, SyncRunRow, Trigger};
use super::schema::{contacts, deletion_holds, held_deletions, sync_leases, sync_runs, sync_seen};
use super::{DbConnection, StoreError};
use crate::ids;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another run holds the lease: its id (or who, when unknown).
    #[error("a sync of this connection is already running ({0})")]
    Held(String),
    /// The last run finished less than the asked gap ago.
    #[error("the connection was synced recently")]
    NotDue,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Takes the connection's lease for a new run and records the run as running, in
/// one transaction. An expired lease (its holder died) is taken over, and the run
/// it belonged to is marked failed.
pub fn start_run(
    conn: &mut DbConnection,
    org_id: &str,
    connection_id: &str,
    trigger: Trigger,
    holder: &str,
    ttl: chrono::Duration,
    min_gap: Option<chrono::Duration>,
) -> Result<SyncRunRow, LeaseError> {
    let now = ids::now();
    let run = SyncRunRow {
        id: ids::new_id(ids::SYNC_RUN),
        org_id: org_id.to_string(),
        connection_id: connection_id.to_string(),
        trigger_kind: trigger,
        status: RunStatus::Running,
        created: 0,
        updated: 0,
        unchanged: 0,
        deleted: 0,
        pages: 0,
        upstream_requests: 0,
        throttled_429: 0,
        limiter_wait_ms: 0,
        error: None,
        started_at: now,
        finished_at: None,
        deletions_held: 0,
        suppressed: 0,
    };
    let result = conn.transaction(|conn| {
        if let Some(gap) = min_gap {
            // Checked with the lease, so a run finishing meanwhile is not repeated.
            let last: Option<NaiveDateTime> = sync_runs::table
                .filter(sync_runs::connection_id.eq(connection_id))
                .select(diesel::dsl::max(sync_runs::finished_at))
                .first(conn)?;
            if last.is_some_and(|f| now < f + gap) {
                return Err(LeaseError::NotDue);
            }
        }
        let current: Option<(String, NaiveDateTime)> = sync_leases::table
            .filter(sync_leases::connection_id.eq(connection_id))
            .select((sync_leases::run_id, sync_leases::expires_at))
            .first(conn)
            .optional()?;
        match current {
            Some((run_id, expires_at)) if expires_at > now => return Err(LeaseError::Held(run_id)),
            Some((old_run, _)) => {
                // Take over only if nobody renewed it meanwhile.
                let taken = diesel::update(
                    sync_leases::table
                        .filter(sync_leases::connection_id.eq(connection_id))
                        .filter(sync_leases::expires_at.le(now)),
                )
                .set((
                    sync_leases::run_id.eq(&run.id),
                    sync_leases::holder.eq(holder),
                    sync_leases::expires_at.eq(now + ttl),
                ))
                .execute(conn)?;
                if taken != 1 {
                    return Err(LeaseError::Held(old_run));
                }
                diesel::update(
                    sync_runs::table
                        .filter(sync_runs::id.eq(&old_run))
                        .filter(sync_runs::status.eq(RunStatus::Running.as_str())),
                )
                .set((
                    sync_runs::status.eq(RunStatus::Failed.as_str()),
                    sync_runs::error.eq("abandoned: its process stopped before finishing"),
                    sync_runs::finished_at.eq(Some(now)),
                ))
                .execute(conn)?;
            }
            None => {
                diesel::insert_into(sync_leases::table)
                    .values((
                        sync_leases::connection_id.eq(connection_id),
                        sync_leases::run_id.eq(&run.id),
                        sync_leases::holder.eq(holder),
                        sync_leases::expires_at.eq(now + ttl),
                    ))
                    .execute(conn)
                    .map_err(|e| match StoreError::from(e) {
                        StoreError::Conflict(_) => LeaseError::Held("another process".into()),
                        other => LeaseError::Store(other),
                    })?;
            }
        }
        // The seen sets of the connection's earlier runs (finished, or abandoned
        // just above): dropped here rather than at the end of each run, where
        // deleting 100 000 rows kept a finished run waiting.
        drop_seen_sets(conn, connection_id)?;
        diesel::insert_into(sync_runs::table)
            .values(run.clone())
            .execute(conn)?;
        Ok::<_, LeaseError>(())
    });
    result.map(|()| run)
}

impl From<diesel::result::Error> for LeaseError {
    fn from(e: diesel::result::Error) -> Self {
        LeaseError::Store(e.into())
    }
}

/// Extends the lease of a running run; `false` when the run lost it.
pub fn renew_lease(
    conn: &mut DbConnection,
    run_id: &str,
    ttl: chrono::Duration,
) -> Result<Lease, StoreError> {
    let n = diesel::update(
        sync_leases::table
            .filter(sync_leases::run_id.eq(run_id))
            .filter(sync_leases::cancel_requested.eq(false)),
    )
    .set(sync_leases::expires_at.eq(ids::now() + ttl))
    .execute(conn)?;
    if n == 1 {
        return Ok(Lease::Held);
    }
    let cancelled: Option<bool> = sync_leases::table
        .filter(sync_leases::run_id.eq(run_id))
        .select(sync_leases::cancel_requested)
        .first(conn)
        .optional()?;
    Ok(match cancelled {
        Some(true) => Lease::Cancelled,
        _ => Lease::Lost,
    })
}

/// Whether a run still holds its connection's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Held, and renewed.
    Held,
    /// Held, and an operator asked the run to stop.
    Cancelled,
    /// Taken over: the run must stop without writing.
    Lost,
}

/// What asking a run to stop did.
#[derive(Debug)]
pub enum CancelOutcome {
    /// The run will stop after the page being written.
    Requested(SyncRunRow),
    /// The run has ended already.
    Finished(SyncRunRow),
}

/// Asks the org's running run to stop after the page being written (on its
/// lease, which every process running it reads at each page). `None`: no such run.
pub fn request_cancel(
    conn: &mut DbConnection,
    org_id: &str,
    run_id: &str,
) -> Result<Option<CancelOutcome>, StoreError> {
    let Some(run) = find_run(conn, org_id, run_id)? else {
        return Ok(None);
    };
    if run.status != RunStatus::Running {
        return Ok(Some(CancelOutcome::Finished(run)));
    }
    let n = diesel::update(sync_leases::table.filter(sync_leases::run_id.eq(run_id)))
        .set(sync_leases::cancel_requested.eq(true))
        .execute(conn)?;
    if n == 0 {
        // Its lease went between the two reads: the run ended.
        let run = find_run(conn, org_id, run_id)?.unwrap_or(run);
        return Ok(Some(CancelOutcome::Finished(run)));
    }
    Ok(Some(CancelOutcome::Requested(run)))
}

/// Records the run's counts so far.
pub fn save_progress(conn: &mut DbConnection, run: &SyncRunRow) -> Result<(), StoreError> {
    diesel::update(sync_runs::table.filter(sync_runs::id.eq(&run.id)))
        .set((
            sync_runs::created.eq(run.created),
            sync_runs::updated.eq(run.updated),
            sync_runs::unchanged.eq(run.unchanged),
            sync_runs::deleted.eq(run.deleted),
            sync_runs::pages.eq(run.pages),
            sync_runs::upstream_requests.eq(run.upstream_requests),
            sync_runs::throttled_429.eq(run.throttled_429),
            sync_runs::limiter_wait_ms.eq(run.limiter_wait_ms),
            sync_runs::deletions_held.eq(run.deletions_held),
            sync_runs::suppressed.eq(run.suppressed),
        ))
        .execute(conn)?;
    Ok(())
}

/// Drops the seen sets of every run of the connection.
pub fn drop_seen_sets(conn: &mut DbConnection, connection_id: &str) -> Result<(), StoreError> {
    diesel::delete(
        sync_seen::table.filter(
            sync_seen::run_id.eq_any(
                sync_runs::table
                    .filter(sync_runs::connection_id.eq(connection_id))
                    .select(sync_runs::id),
            ),
        ),
    )
    .execute(conn)?;
    Ok(())
}

/// Ends the run: final status and counts, its lease released. (Its seen set goes
/// when the connection's next run starts.)
pub fn finish_run(conn: &mut DbConnection, run: &SyncRunRow) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        // The org's lock first, as every writer of its events takes it.
        super::people::lock_org(conn, &run.org_id)?;
        save_progress(conn, run)?;
        diesel::update(sync_runs::table.filter(sync_runs::id.eq(&run.id)))
            .set((
                sync_runs::status.eq(run.status.as_str()),
                sync_runs::error.eq(&run.error),
                sync_runs::finished_at.eq(run.finished_at),
            ))
            .execute(conn)?;
        diesel::delete(sync_leases::table.filter(sync_leases::run_id.eq(&run.id))).execute(conn)?;
        let data = serde_json::json!({
            "run_id": run.id,
            "connection_id": run.connection_id,
            "trigger": run.trigger_kind.as_str(),
            "status": run.status.as_str(),
            "counts": {
                "created": run.created,
                "updated": run.updated,
                "unchanged": run.unchanged,
                "deleted": run.deleted,
                "deletions_held": run.deletions_held,
                "suppressed": run.suppressed,
            },
            "error": run.error,
        });
        let mut events = vec![super::events::NewEvent {
            event_type: super::event_type::EventType::SyncRunFinished,
            connection_id: Some(run.connection_id.clone()),
            data: data.to_string(),
        }];
        if run.status == RunStatus::Held {
            let since = super::deletion_holds::find(conn, &run.org_id, &run.id)?
                .map(|h| h.since)
                .or(run.finished_at)
                .unwrap_or_else(crate::ids::now);
            let data = serde_json::json!({
                "run_id": run.id,
                "connection_id": run.connection_id,
                "count": run.deletions_held,
                "since": crate::ids::rfc3339(since),
                "error": run.error,
            });
            events.push(super::events::NewEvent {
                event_type: super::event_type::EventType::SyncRunHeld,
                connection_id: Some(run.connection_id.clone()),
                data: data.to_string(),
            });
        }
        super::events::append(
            conn,
            &run.org_id,
            run.finished_at.unwrap_or_else(crate::ids::now),
            events,
        )?;
        Ok(())
    })
}

/// Adds remote ids to the run's seen set; returns how many it did not hold yet.
pub fn mark_seen(
    conn: &mut DbConnection,
    run_id: &str,
    remote_ids: &[String],
) -> Result<usize, StoreError> {
    if remote_ids.is_empty() {
        return Ok(0);
    }
    // Offset paging can list a record twice (when records before it come or go
    // between two pages): seen once is enough.
    match conn {
        // Multi-row inserts exist per backend, not on the MultiBackend.
        DbConnection::Sqlite(c) => {
            let mut added = 0;
            for chunk in remote_ids.chunks(500) {
                let rows: Vec<_> = chunk
                    .iter()
                    .map(|r| (sync_seen::run_id.eq(run_id), sync_seen::remote_id.eq(r)))
                    .collect();
                added += diesel::insert_into(sync_seen::table)
                    .values(&rows)
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }
            Ok(added)
        }
        // One statement of two parameters (the ids as an array), planned once per
        // connection, instead of statements of a thousand parameters planned each time.
        DbConnection::Postgresql(c) => Ok(diesel::sql_query(
            "INSERT INTO sync_seen (run_id, remote_id) SELECT $1, unnest($2::text[])
             ON CONFLICT DO NOTHING",
        )
        .bind::<diesel::sql_types::Text, _>(run_id)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(remote_ids)
        .execute(c)?),
    }
}

/// How many of the connection's contacts are live (not deleted upstream): all of
/// them, counted in the unique index, less the deleted ones, counted in their
/// partial index. Neither count reads a row.
pub fn count_live(conn: &mut DbConnection, connection_id: &str) -> Result<i64, StoreError> {
    let all: i64 = contacts::table
        .filter(contacts::connection_id.eq(connection_id))
        .count()
        .get_result(conn)?;
    // The bare column (no bound `= true`) is what lets the planner use the
    // partial index `WHERE remote_was_deleted`.
    let deleted: i64 = contacts::table
        .filter(contacts::connection_id.eq(connection_id))
        .filter(contacts::remote_was_deleted)
        .count()
        .get_result(conn)?;
    Ok(all - deleted)
}

/// After a complete listing: the next `limit` live contacts of the connection the
/// run did not see and no hold keeps (in remote id order, after the remote id `after`: the order of
/// the connection's unique index, so no sort) are marked deleted upstream. Returns
/// their `(remote id, id)`s (none left: empty).
pub fn mark_unseen_deleted(
    conn: &mut DbConnection,
    connection_id: &str,
    run_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let gone: Vec<(String, String)> = match conn {
        // SQLite keeps `remote_was_deleted` after the documents in a row, so reading
        // it walks the row's overflow pages: 185 ms for 100 000 contacts if read
        // for each, which SQLite does when the flag is a term beside the anti-join.
        // The unseen are found in the unique index alone (remote id and rowid), and
        // only their rows are read (37 ms).
        DbConnection::Sqlite(c) => diesel::sql_query(
            "SELECT c.remote_id, c.id FROM contacts c
             WHERE c.rowid IN (
                 SELECT u.rowid FROM contacts u
                 WHERE u.connection_id = ? AND u.remote_id > ?
                   AND NOT EXISTS (SELECT 1 FROM sync_seen s
                                   WHERE s.run_id = ? AND s.remote_id = u.remote_id))
               AND NOT c.remote_was_deleted
               AND NOT EXISTS (SELECT 1 FROM held_deletions h
                               WHERE h.connection_id = ? AND h.contact_id = c.id)
             ORDER BY c.remote_id
             LIMIT ?",
        )
        .bind::<diesel::sql_types::Text, _>(connection_id)
        .bind::<diesel::sql_types::Text, _>(after.unwrap_or(""))
        .bind::<diesel::sql_types::Text, _>(run_id)
        .bind::<diesel::sql_types::Text, _>(connection_id)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load::<Unseen>(c)?
        .into_iter()
        .map(|u| (u.remote_id, u.id))
        .collect(),
        DbConnection::Postgresql(c) => {
            let mut query = contacts::table
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
                .select((contacts::remote_id, contacts::id))
                .order(contacts::remote_id.asc())
                .limit(limit)
                .into_boxed();
            if let Some(after) = after {
                query = query.filter(contacts::remote_id.gt(after.to_string()));
            }
            query.load(c)?
        }
    };
    let ids: Vec<&str> = gone.iter().map(|(_, id)| id.as_str()).collect();
    diesel::update(contacts::table.filter(contacts::id.eq_any(&ids)))
        .set((
            contacts::remote_was_deleted.eq(true),
            contacts::updated_at.eq(ids::now()),
        ))
        .execute(conn)?;
    Ok(gone)
}

#[derive(QueryableByName)]
struct Unseen {
    #[diesel(sql_type = diesel::sql_types::Text)]
    remote_id: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

/// The org of a run, whatever org (the CLI acts for every org).
pub fn org_of_run(conn: &mut DbConnection, id: &str) -> Result<Option<String>, StoreError> {
    Ok(sync_runs::table
        .filter(sync_runs::id.eq(id))
        .select(sync_runs::org_id)
        .first(conn)
        .optional()?)
}

pub fn find_run(
    conn: &mut DbConnection,
    org_id: &str,
    id: &str,
) -> Result<Option<SyncRunRow>, StoreError> {
    Ok(sync_runs::table
        .filter(sync_runs::org_id.eq(org_id))
        .filter(sync_runs::id.eq(id))
        .select(SyncRunRow::as_select())
        .first(conn)
        .optional()?)
}

/// The org's runs, newest first, before the cursor id.
pub fn list_runs(
    conn: &mut DbConnection,
    org_id: &str,
    connection_id: Option<&str>,
    status: Option<RunStatus>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<SyncRunRow>, StoreError> {
    let mut query = sync_runs::table
        .filter(sync_runs::org_id.eq(org_id))
        .select(SyncRunRow::as_select())
        .order(sync_runs::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(c) = connection_id {
        query = query.filter(sync_runs::connection_id.eq(c.to_string()));
    }
    if let Some(s) = status {
        query = query.filter(sync_runs::status.eq(s.as_str()));
    }
    if let Some(b) = before {
        query = query.filter(sync_runs::id.lt(b.to_string()));
    }
    Ok(query.load(conn)?)
}

#[derive(QueryableByName)]
struct LastFinished {
    #[diesel(sql_type = diesel::sql_types::Text)]
    connection_id: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamp>)]
    finished_at: Option<NaiveDateTime>,
}

/// The connection's last finished run, if any.
pub fn last_finished_run(
    conn: &mut DbConnection,
    connection_id: &str,
) -> Result<Option<SyncRunRow>, StoreError> {
    Ok(sync_runs::table
        .filter(sync_runs::connection_id.eq(connection_id))
        .filter(sync_runs::finished_at.is_not_null())
        .order(sync_runs::finished_at.desc())
        .select(SyncRunRow::as_select())
        .first(conn)
        .optional()?)
}

/// When each connection last finished a run (`None`: never), for the scheduler:
/// one probe of `sync_runs_connection_finished` per connection, however long
/// the history.
pub fn last_finished(
    conn: &mut DbConnection,
) -> Result<Vec<(String, Option<NaiveDateTime>)>, StoreError> {
    const SQL: &str = "SELECT c.id AS connection_id, \
        (SELECT MAX(r.finished_at) FROM sync_runs r WHERE r.connection_id = c.id) AS finished_at \
        FROM connections c";
    let rows: Vec<LastFinished> = match conn {
        DbConnection::Sqlite(c) => diesel::sql_query(SQL).load(c)?,
        DbConnection::Postgresql(c) => diesel::sql_query(SQL).load(c)?,
    };
    Ok(rows
        .into_iter()
        .map(|r| (r.connection_id, r.finished_at))
        .collect())
}

/// Deletes up to `limit` runs that finished before `cutoff`, except each
/// connection's latest finished run (the scheduler times the next run from it)
/// and a run whose deletions are held still (an operator has yet to decide).
/// Returns how many went.
pub fn prune_finished(
    conn: &mut DbConnection,
    cutoff: NaiveDateTime,
    limit: i64,
) -> Result<usize, StoreError> {
    let newer = diesel::alias!(sync_runs as newer);
    let old: Vec<String> = sync_runs::table
        .filter(sync_runs::finished_at.lt(cutoff))
        .filter(exists(
            newer
                .filter(
                    newer
                        .field(sync_runs::connection_id)
                        .eq(sync_runs::connection_id),
                )
                .filter(
                    newer
                        .field(sync_runs::finished_at)
                        .gt(sync_runs::finished_at),
                ),
        ))
        .filter(not(exists(
            deletion_holds::table
                .filter(deletion_holds::run_id.eq(sync_runs::id))
                .filter(deletion_holds::state.eq(super::deletion_holds::HoldState::Held.as_str())),
        )))
        .select(sync_runs::id)
        .limit(limit)
        .load(conn)?;
    if old.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(sync_runs::table.filter(sync_runs::id.eq_any(&old))).execute(conn)?)
}
