//! Changes to an org's contacts and people: [`ContactChange`], the one unit of
//! work every writer goes through (a sync's pages and its deletion check, live
//! reads, API writes and batches, a connection's deletion, the held deletions
//! applied), and `link`, the grouping of contacts into people.
//!
//! A unit of work, in one transaction: takes the org's lock (so that two
//! writers of one org never link against each other's half-written contacts,
//! and events are numbered in commit order), checks that the connection it
//! concerns still exists (a deleted connection's contacts are never written
//! again), runs the writer's steps (each write relinks the people it touches
//! and records its typed events), appends the events, commits, and then moves
//! the store's change counter, which the read caches compare against
//! ([`Store::contact_writes`]). The counter moves only after the commit, so a
//! copy made from a read that began before it is never taken for current.

pub mod identity;
pub mod link;

use std::collections::HashMap;

use chrono::NaiveDateTime;

use crate::store::contacts::{self, NewContacts, Origin, Prepared, Upserted};
use crate::store::event_type::EventType;
use crate::store::events::{self, Cause, NewEvent};
use crate::store::models::ContactRow;
use crate::store::people;
use crate::store::{self as store_fns, DbConnection, Store, StoreError};

/// What a unit of work is about.
#[derive(Debug, Clone)]
pub struct Scope {
    pub org_id: String,
    /// The connection whose contacts it writes: it must still exist when the
    /// org's lock is held, or the unit fails with [`StoreError::ConnectionGone`].
    pub connection_id: Option<String>,
    pub cause: Cause,
    /// When its events happened.
    pub at: NaiveDateTime,
    /// Its commit need not wait for the disk: for writes that are made again
    /// after a database crash (a sync's page: the next run writes it again).
    pub relaxed: bool,
    /// Everything is done and then rolled back: the unit's answer is what it
    /// would be, and nothing is written.
    pub dry_run: bool,
}

impl Scope {
    pub fn new(org_id: &str, cause: Cause) -> Self {
        Self {
            org_id: org_id.to_string(),
            connection_id: None,
            cause,
            at: crate::ids::now(),
            relaxed: false,
            dry_run: false,
        }
    }

    /// About the contacts of this connection, which must still exist.
    pub fn of_connection(mut self, connection_id: &str) -> Self {
        self.connection_id = Some(connection_id.to_string());
        self
    }

    pub fn at(mut self, at: NaiveDateTime) -> Self {
        self.at = at;
        self
    }

    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    pub fn relaxed(mut self) -> Self {
        self.relaxed = true;
        self
    }
}

/// One transaction's changes to an org's contacts and people. Its methods
/// write, relink and record the events; `conn` is for the reads and the
/// writer's own rows (a run's lease and counts, a hold).
pub struct ContactChange<'t> {
    conn: &'t mut DbConnection,
    scope: &'t Scope,
    rules: link::LinkRules,
    /// Keys the unit's upserts took from contacts: their other holders relink.
    touched: Vec<(String, String)>,
    events: Vec<NewEvent>,
    /// A contact or person was written.
    wrote: bool,
    /// Opens the org's key of identifier hashes (suppressions).
    sealer: Option<std::sync::Arc<crate::secrets::Sealer>>,
}

impl<'t> ContactChange<'t> {
    pub fn conn(&mut self) -> &mut DbConnection {
        self.conn
    }

    pub fn org_id(&self) -> &'t str {
        &self.scope.org_id
    }

    pub fn cause(&self) -> &'t Cause {
        &self.scope.cause
    }

    /// Stores a record the provider gave: written if new or changed; an
    /// unchanged one has its fetch time moved, which its served copy shows, so
    /// it counts as a change too (without an event). Relink it with
    /// [`Self::relink`] and record its event with [`Self::upserted_event`].
    pub fn upsert(
        &mut self,
        origin: &Origin<'_>,
        prepared: &Prepared,
        fetched_at: NaiveDateTime,
    ) -> Result<(ContactRow, Upserted), StoreError> {
        self.wrote = true;
        // The keys it held before: if it gives one up, that key's other holders
        // may link again (see `LinkRules`), so the next relink reads them.
        if let Some(stored) =
            contacts::find_contact_by_remote(self.conn, origin.connection_id, &prepared.remote_id)?
        {
            let held = people::keys_of_contacts(self.conn, &[&stored.id], &link::LINK_KINDS)?;
            self.touched
                .extend(held.into_iter().map(|(_, kind, value)| (kind, value)));
        }
        contacts::upsert_prepared(self.conn, origin, prepared, fetched_at)
    }

    /// Which of `records` (by index) hold an identifier the org suppresses:
    /// they are not to be stored.
    pub fn suppressed(&mut self, records: &[&Prepared]) -> Result<Vec<usize>, StoreError> {
        let identifiers: Vec<(usize, (&'static str, String))> = records
            .iter()
            .enumerate()
            .flat_map(|(i, r)| r.identifiers().into_iter().map(move |id| (i, id)))
            .collect();
        let refs: Vec<(&str, &str)> = identifiers
            .iter()
            .map(|(_, (kind, value))| (*kind, value.as_str()))
            .collect();
        let org = self.org_id();
        let hits = crate::store::suppressions::suppressed_identifiers(
            self.conn,
            self.sealer.as_deref(),
            org,
            &refs,
        )?;
        let mut out: Vec<usize> = hits.into_iter().map(|h| identifiers[h].0).collect();
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Inserts contacts no one has stored yet, with the people linking gave them.
    pub fn insert_new(&mut self, new: &NewContacts) -> Result<(), StoreError> {
        if !new.rows.is_empty() {
            self.wrote = true;
        }
        new.insert(self.conn)
    }

    /// Relinks the people of `changed` contacts (created, edited, deleted or
    /// revived); their people's events are recorded.
    pub fn relink(&mut self, changed: &[String]) -> Result<link::LinkCounts, StoreError> {
        self.relink_incoming(changed, &[]).map(|(counts, _)| counts)
    }

    /// [`Self::relink`], also for contacts about to be inserted (`incoming`):
    /// their people are returned by contact id, to insert them with.
    pub fn relink_incoming(
        &mut self,
        changed: &[String],
        incoming: &[link::Incoming<'_>],
    ) -> Result<(link::LinkCounts, HashMap<String, String>), StoreError> {
        let org_id = self.org_id();
        let touched = std::mem::take(&mut self.touched);
        let (counts, people) =
            link::link_incoming(self.conn, org_id, changed, incoming, &touched, self.rules)?;
        // Linking may move contacts between people, which their copies show.
        if !changed.is_empty() || !incoming.is_empty() {
            self.wrote = true;
        }
        self.events.extend(counts.changes.events(self.cause()));
        Ok((counts, people))
    }

    /// Records a contact's event (`changed`: the fields a `contact.updated` changed).
    pub fn contact_event(&mut self, kind: EventType, row: &ContactRow, changed: Option<&[String]>) {
        self.events
            .push(events::contact_event(kind, row, changed, self.cause()));
    }

    /// The contact's event for how it was upserted, if it changed.
    pub fn upserted_event(&mut self, row: &ContactRow, what: &Upserted) {
        if let Some(kind) = what.event_type() {
            let changed = match what {
                Upserted::Updated {
                    changed,
                    restored: false,
                } => Some(changed.as_slice()),
                _ => None,
            };
            self.contact_event(kind, row, changed);
        }
    }

    /// After contacts were marked deleted (by whichever query fits the writer):
    /// they leave their people, and each gets its `contact.deleted` before the
    /// people's events.
    pub fn deleted(&mut self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.wrote = true;
        let org_id = self.org_id();
        let linked = link::link_contacts(self.conn, org_id, ids, self.rules)?;
        for chunk in ids.chunks(1000) {
            let marked: Vec<(String, ())> = chunk.iter().map(|id| (id.clone(), ())).collect();
            for (row, ()) in contacts::find_contacts(self.conn, org_id, &marked)? {
                self.contact_event(EventType::ContactDeleted, &row, None);
            }
        }
        self.events.extend(linked.changes.events(self.cause()));
        Ok(())
    }

    /// Marks one contact deleted (the provider confirmed it is gone).
    pub fn mark_deleted(&mut self, id: &str) -> Result<(), StoreError> {
        contacts::mark_deleted(self.conn, id)?;
        self.deleted(&[id.to_string()])
    }

    /// Marks those of `ids` still live deleted; returns which were.
    pub fn mark_live_deleted(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let marked = contacts::mark_live_deleted(self.conn, self.org_id(), ids)?;
        self.deleted(&marked)?;
        Ok(marked)
    }

    /// After a sync's complete listing: marks the next `limit` live contacts of
    /// the scope's connection that run `run_id` did not see (and no hold keeps)
    /// deleted, in remote id order after `after`. Returns their `(remote id, id)`s.
    pub fn mark_unseen_deleted(
        &mut self,
        run_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let Some(connection_id) = self.scope.connection_id.as_deref() else {
            return Err(StoreError::Corrupt(
                "a sync's deletions without its connection".into(),
            ));
        };
        let gone = crate::store::sync_runs::mark_unseen_deleted(
            self.conn,
            connection_id,
            run_id,
            after,
            limit,
        )?;
        let ids: Vec<String> = gone.iter().map(|(_, id)| id.clone()).collect();
        self.deleted(&ids)?;
        Ok(gone)
    }

    /// Deletes the scope's connection: its live contacts leave their people as
    /// contacts deleted upstream do, each with its event, then the connection
    /// goes with its contacts and runs.
    pub fn delete_connection(&mut self) -> Result<(), StoreError> {
        let Some(connection_id) = self.scope.connection_id.as_deref() else {
            return Err(StoreError::Corrupt(
                "a connection's deletion without its connection".into(),
            ));
        };
        let gone = contacts::live_ids_of_connection(self.conn, connection_id)?;
        contacts::mark_connection_deleted(self.conn, connection_id)?;
        self.deleted(&gone)?;
        crate::store::connections::delete_connection(self.conn, self.org_id(), connection_id)?;
        // Its deleted contacts went too (a list with `include_deleted` showed them).
        self.wrote = true;
        Ok(())
    }

    /// Relinks every live contact of the org at once (`link::link_org`): after
    /// `max_contacts_per_identifier` changed, or as a repair.
    pub fn relink_org(&mut self) -> Result<link::LinkCounts, StoreError> {
        let counts = link::link_org(self.conn, self.org_id(), self.rules)?;
        if counts.contacts_moved + counts.people_created + counts.people_removed > 0 {
            self.wrote = true;
        }
        self.events.extend(counts.changes.events(self.cause()));
        Ok(counts)
    }

    /// Appends the events; whether contacts or people changed.
    fn finish(self) -> Result<bool, StoreError> {
        let changed = self.wrote || !self.events.is_empty();
        events::append(self.conn, &self.scope.org_id, self.scope.at, self.events)?;
        Ok(changed)
    }
}

/// Runs `f` as one unit of work on `conn`, outside any transaction: on a
/// blocking thread, as `Store::write` runs it (for a writer that times or
/// retries its own transaction).
pub fn apply_on<T>(
    store: &Store,
    conn: &mut DbConnection,
    scope: &Scope,
    f: impl FnOnce(&mut ContactChange<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // A dry run's answer, kept while its transaction rolls back.
    let mut dry: Option<T> = None;
    let done = store_fns::in_transaction(conn, |conn| {
        if scope.relaxed {
            store_fns::relax_commit(conn)?;
        }
        // Before the first write, so writers of one org never wait on each other's rows.
        link::lock_org(conn, &scope.org_id)?;
        if let Some(connection_id) = &scope.connection_id {
            // Deleted meanwhile (its deletion takes the same lock).
            if !crate::store::connections::connection_exists(conn, &scope.org_id, connection_id)? {
                return Err(StoreError::ConnectionGone);
            }
        }
        let mut change = ContactChange {
            conn,
            scope,
            rules: link::LinkRules {
                max_per_identifier: store.max_per_identifier(),
            },
            touched: Vec::new(),
            events: Vec::new(),
            wrote: false,
            sealer: store.sealer().ok(),
        };
        let out = f(&mut change)?;
        if scope.dry_run {
            dry = Some(out);
            return Err(StoreError::DryRun);
        }
        Ok((out, change.finish()?))
    });
    let (out, changed) = match (done, dry) {
        (Err(StoreError::DryRun), Some(out)) => return Ok(out),
        (done, _) => done?,
    };
    if changed {
        store.contacts_changed();
    }
    Ok(out)
}

/// Runs `f` as one unit of work, through [`Store::write`] (one writer at a
/// time on SQLite, retried while another process holds the lock).
pub async fn apply<T, F>(store: &Store, scope: Scope, f: F) -> Result<T, StoreError>
where
    F: Fn(&mut ContactChange<'_>) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let handle = store.clone();
    store
        .write(move |conn| apply_on(&handle, conn, &scope, &f))
        .await
}
