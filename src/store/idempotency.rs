//! Queries on `idempotency_keys`: a write's key, its request's fingerprint and,
//! once it ended, its answer.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::idempotency_keys as keys;
use super::{in_transaction, DbConnection, StoreError};

/// An answer kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

/// What a key says about a request arriving with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// Go ahead (the key is now held). `after_unknown`: an earlier attempt did
    /// not learn whether it wrote.
    Go { after_unknown: bool },
    /// The same request ended before: its answer.
    Replay(StoredAnswer),
    /// The key came with another request.
    Reused,
    /// The same request is still running.
    Running,
}

/// Looks the key up and, unless it answers for itself, holds it for this
/// request until `lock_until` (a process that dies holding it lets go then).
pub fn begin(
    conn: &mut DbConnection,
    org_id: &str,
    key: &str,
    fingerprint: &str,
    now: NaiveDateTime,
    lock_until: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<Begin, StoreError> {
    in_transaction(conn, |conn| {
        type Row = (
            String,
            String,
            NaiveDateTime,
            Option<i32>,
            Option<String>,
            Option<String>,
            Option<String>,
            NaiveDateTime,
        );
        let query = keys::table
            .filter(keys::org_id.eq(org_id))
            .filter(keys::idem_key.eq(key))
            .select((
                keys::fingerprint,
                keys::state,
                keys::locked_until,
                keys::status,
                keys::location,
                keys::content_type,
                keys::body,
                keys::expires_at,
            ));
        let found: Option<Row> = query.first(conn).optional()?;
        // Taken only if nobody took it meanwhile: one conditional update, so two
        // retries of one key never both go ahead.
        let hold = |conn: &mut DbConnection| -> Result<bool, StoreError> {
            let taken = diesel::update(
                keys::table
                    .filter(keys::org_id.eq(org_id))
                    .filter(keys::idem_key.eq(key))
                    .filter(keys::state.ne("done"))
                    .filter(keys::state.ne("running").or(keys::locked_until.le(now))),
            )
            .set((keys::state.eq("running"), keys::locked_until.eq(lock_until)))
            .execute(conn)?;
            Ok(taken == 1)
        };
        match found {
            Some((fp, state, locked_until, status, location, content_type, body, expires))
                if expires > now =>
            {
                if fp != fingerprint {
                    return Ok(Begin::Reused);
                }
                match state.as_str() {
                    "done" => Ok(Begin::Replay(StoredAnswer {
                        status: status.unwrap_or(200) as u16,
                        location,
                        content_type,
                        body: body.unwrap_or_default(),
                    })),
                    "running" if locked_until > now => Ok(Begin::Running),
                    // A holder that died, or an attempt that did not learn the outcome.
                    _ if hold(conn)? => Ok(Begin::Go {
                        after_unknown: true,
                    }),
                    _ => Ok(Begin::Running),
                }
            }
            stale => {
                if stale.is_some() {
                    diesel::delete(
                        keys::table
                            .filter(keys::org_id.eq(org_id))
                            .filter(keys::idem_key.eq(key)),
                    )
                    .execute(conn)?;
                }
                diesel::insert_into(keys::table)
                    .values((
                        keys::org_id.eq(org_id),
                        keys::idem_key.eq(key),
                        keys::fingerprint.eq(fingerprint),
                        keys::state.eq("running"),
                        keys::locked_until.eq(lock_until),
                        keys::created_at.eq(now),
                        keys::expires_at.eq(expires_at),
                    ))
                    .execute(conn)
                    .map_err(|e| match StoreError::from(e) {
                        // Another request took the key between our read and our insert.
                        StoreError::Conflict(_) => StoreError::Conflict("running".into()),
                        other => other,
                    })?;
                Ok(Begin::Go {
                    after_unknown: false,
                })
            }
        }
    })
}

/// The request ended with `answer`: kept for replay.
pub fn finish(
    conn: &mut DbConnection,
    org_id: &str,
    key: &str,
    answer: &StoredAnswer,
) -> Result<(), StoreError> {
    diesel::update(
        keys::table
            .filter(keys::org_id.eq(org_id))
            .filter(keys::idem_key.eq(key)),
    )
    .set((
        keys::state.eq("done"),
        keys::status.eq(Some(i32::from(answer.status))),
        keys::location.eq(&answer.location),
        keys::content_type.eq(&answer.content_type),
        keys::body.eq(Some(&answer.body)),
    ))
    .execute(conn)?;
    Ok(())
}

/// The request ended without an answer worth keeping: the key is let go, or
/// (`unknown`) kept so that the next attempt looks before it writes again.
pub fn release(
    conn: &mut DbConnection,
    org_id: &str,
    key: &str,
    unknown: bool,
) -> Result<(), StoreError> {
    let target = keys::table
        .filter(keys::org_id.eq(org_id))
        .filter(keys::idem_key.eq(key));
    if unknown {
        diesel::update(target)
            .set(keys::state.eq("unknown"))
            .execute(conn)?;
    } else {
        diesel::delete(target).execute(conn)?;
    }
    Ok(())
}

/// Deletes keys past their time; returns how many.
pub fn prune(conn: &mut DbConnection, now: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(diesel::delete(keys::table.filter(keys::expires_at.le(now))).execute(conn)?)
}
