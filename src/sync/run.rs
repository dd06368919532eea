//! One reconciliation run of one connection: page through the provider's whole
//! list, write only contacts whose content hash changed (a transaction per page),
//! note every remote id seen (on disk, so memory stays flat), and only after a
//! complete listing mark the contacts not seen as deleted upstream. The lease is
//! renewed every page; a run that cannot finish is recorded as failed and leaves
//! the stored contacts as they were.

use std::borrow::Cow;
use std::time::Duration;

use sha2::{Digest, Sha256};
use unicontacts_adapters::chats::{ChatIndex, ChatKind, ChatRecord, ListedGroup};
use unicontacts_adapters::{Adapter, AdapterError, ContactPage, ContactRecord, PageToken};

use crate::change::{self, link, Scope};
use crate::ids;
use crate::store::chat_groups;
use crate::store::connection_status;
use crate::store::connections::Connection;
use crate::store::contacts::{self, NewContacts, Origin, Prepared, Upserted};
use crate::store::deletion_holds as holds;
use crate::store::event_type::EventType;
use crate::store::events;
use crate::store::models::ContactRow;
use crate::store::models::{RunStatus, SyncRunRow};
use crate::store::sync_runs::{self, Lease};
use crate::store::{self as store_fns, DbConnection, Store, StoreError};
use crate::tasks::CancellationToken;

/// The error of a run stopped by its process's shutdown.
pub const INTERRUPTED: &str = "interrupted: its process was shutting down";

/// Why a run could not finish its listing.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The provider would not give a page (after the client's own retries).
    #[error("the listing ended early at page {page}, so nothing was marked deleted: {source}")]
    Listing { page: i64, source: AdapterError },
    /// The provider would not give a page of its chats.
    #[error("listing chats, page {page}: {source}; nothing was marked deleted")]
    ListingChats { page: i64, source: AdapterError },
    /// The detail of a listed record could not be read, for a reason that is not
    /// about the record alone.
    #[error("reading {remote_id}: {source}")]
    Reading {
        remote_id: String,
        source: AdapterError,
    },
    /// No adapter could be built from the stored connection.
    #[error(transparent)]
    Unusable(#[from] crate::providers::Unusable),
    #[error("{INTERRUPTED}")]
    Interrupted,
    /// An operator cancelled the run.
    #[error("cancelled by an operator after page {page}")]
    Cancelled { page: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list_hash(item: &ContactRecord) -> String {
    let raw = item
        .remote_data
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default();
    hex::encode(&Sha256::digest(raw.as_bytes())[..16])
}

#[derive(Default)]
struct PageOutcome {
    created: i64,
    updated: i64,
    unchanged: i64,
    /// Records not stored: they hold an identifier an erasure suppressed.
    suppressed: i64,
    /// Remote ids the run's seen set did not hold yet.
    seen_added: i64,
    /// An operator asked the run to stop (after this page).
    cancelled: bool,
    /// Time spent linking, and inserting the new contacts.
    link: Duration,
    insert: Duration,
}

#[allow(clippy::too_many_arguments)]
/// Writes one page in one unit of work: its contacts, their people, the seen
/// set, the lease and the run's counts (`progress`: the run before this page's).
fn write_page(
    store: &Store,
    conn: &mut DbConnection,
    c: &Connection,
    progress: &SyncRunRow,
    seen: &[String],
    fresh: &[(Prepared, Option<String>)],
    changed: &[(Prepared, Option<String>)],
    unchanged: i64,
    ttl: chrono::Duration,
) -> Result<PageOutcome, StoreError> {
    let fetched_at = ids::now();
    // A page lost to a database crash is a run that did not finish: the next
    // one writes it again, so its commit need not wait for the disk.
    let scope = Scope::new(&c.org_id, events::Cause::sync(&progress.id))
        .of_connection(&c.id)
        .at(fetched_at)
        .relaxed();
    let origin = Origin {
        org_id: &c.org_id,
        connection_id: &c.id,
        provider: c.provider,
    };
    let attempt = |conn: &mut DbConnection, batch_new: bool| {
        change::apply_on(store, conn, &scope, |change| {
            let mut out = PageOutcome {
                unchanged,
                ..PageOutcome::default()
            };
            // Records of an erased person are not stored (counted as suppressed).
            let all: Vec<&Prepared> = fresh.iter().chain(changed).map(|(p, _)| p).collect();
            let skip = change.suppressed(&all)?;
            let kept = |list: &[(Prepared, Option<String>)], offset: usize| {
                list.iter()
                    .enumerate()
                    .filter(|(i, _)| skip.binary_search(&(i + offset)).is_err())
                    .map(|(_, r)| r.clone())
                    .collect::<Vec<_>>()
            };
            let (fresh, changed) = if skip.is_empty() {
                (Cow::Borrowed(fresh), Cow::Borrowed(changed))
            } else {
                out.suppressed = skip.len() as i64;
                (
                    Cow::Owned(kept(fresh, 0)),
                    Cow::Owned(kept(changed, fresh.len())),
                )
            };
            let (fresh, changed) = (fresh.as_ref(), changed.as_ref());
            // Nor are their remote ids kept in the run's seen set.
            let skipped: Vec<&str> = skip.iter().map(|&i| all[i].remote_id.as_str()).collect();
            let seen: Cow<'_, [String]> = if skipped.is_empty() {
                Cow::Borrowed(seen)
            } else {
                Cow::Owned(
                    seen.iter()
                        .filter(|r| !skipped.contains(&r.as_str()))
                        .cloned()
                        .collect(),
                )
            };
            // Contacts whose keys may have changed: linked before the page commits.
            let mut relink: Vec<String> = Vec::new();
            let mut upserted: Vec<(String, Upserted)> = Vec::new();
            let mut one_by_one: Vec<&(Prepared, Option<String>)> = changed.iter().collect();
            if !batch_new {
                one_by_one.extend(fresh.iter());
            }
            for (prepared, list_hash) in one_by_one {
                let (row, what) = change.upsert(&origin, prepared, fetched_at)?;
                if let Some(h) = list_hash {
                    contacts::set_list_hash(change.conn(), &row.id, h)?;
                }
                match what {
                    Upserted::Created => out.created += 1,
                    Upserted::Updated { .. } => out.updated += 1,
                    Upserted::Unchanged => out.unchanged += 1,
                }
                if what != Upserted::Unchanged {
                    relink.push(row.id.clone());
                    upserted.push((row.id, what));
                }
            }
            let mut created: Vec<ContactRow> = Vec::new();
            if batch_new {
                // New contacts are linked first and inserted with their people.
                let mut new = NewContacts::new(&origin, fresh, fetched_at);
                let mut incoming: Vec<link::Incoming<'_>> = new
                    .rows
                    .iter()
                    .map(|r| link::Incoming {
                        id: &r.id,
                        keys: Vec::new(),
                    })
                    .collect();
                for (row, kind, value) in &new.keys {
                    incoming[*row].keys.push((kind, value));
                }
                let t = std::time::Instant::now();
                let (_, people) = change.relink_incoming(&relink, &incoming)?;
                out.link = t.elapsed();
                drop(incoming);
                for row in &mut new.rows {
                    row.person_id = people.get(&row.id).cloned();
                }
                let t = std::time::Instant::now();
                change.insert_new(&new)?;
                out.insert = t.elapsed();
                out.created += new.rows.len() as i64;
                created = new.rows;
            } else {
                change.relink(&relink)?;
            }
            for row in &created {
                change.contact_event(EventType::ContactCreated, row, None);
            }
            // The upserted contacts as linked (their people are in the events).
            for (row, what) in contacts::find_contacts(change.conn(), &c.org_id, &upserted)? {
                change.upserted_event(&row, &what);
            }
            // A run that stalled past its lease's expiry has been taken over: it
            // must not write beside its successor (nor, later, take the contacts its
            // dropped seen set lacks for deleted).
            match sync_runs::renew_lease(change.conn(), &progress.id, ttl)? {
                Lease::Held => {}
                // This page still commits; the run stops after it.
                Lease::Cancelled => out.cancelled = true,
                Lease::Lost => return Err(StoreError::LeaseLost),
            }
            out.seen_added = sync_runs::mark_seen(change.conn(), &progress.id, &seen)? as i64;
            let mut saved = progress.clone();
            saved.created += out.created;
            saved.updated += out.updated;
            saved.unchanged += out.unchanged;
            saved.suppressed += out.suppressed;
            sync_runs::save_progress(change.conn(), &saved)?;
            Ok(out)
        })
    };
    match attempt(conn, true) {
        // A live read stored one of the new contacts meanwhile: upsert them one by one.
        Err(StoreError::Conflict(_)) => attempt(conn, false),
        other => other,
    }
}

/// Runs the sync to its end (or until `stop`: then it fails with [`INTERRUPTED`]
/// after the page being written) and records the outcome; `on_page` sees the run
/// after each page.
pub async fn execute(
    store: Store,
    provider: Adapter,
    c: Connection,
    mut run: SyncRunRow,
    ttl: chrono::Duration,
    stop: CancellationToken,
    on_page: impl Fn(&SyncRunRow) + Send,
) -> SyncRunRow {
    let before = provider.stats();
    let started = std::time::Instant::now();
    let mut store_time = Duration::ZERO;
    // The provider's trace id of the error that ended the run, if it sent one.
    let (result, trace) = unicontacts_adapters::upstream::with_trace_scope(async {
        let result = page_through(
            &store,
            &provider,
            &c,
            &mut run,
            ttl,
            &stop,
            &on_page,
            &mut store_time,
        )
        .await;
        (result, unicontacts_adapters::upstream::last_trace_id())
    })
    .await;
    let after = provider.stats();
    run.upstream_requests = (after.requests - before.requests) as i64;
    run.throttled_429 = (after.throttled_429 - before.throttled_429) as i64;
    run.limiter_wait_ms = (after.limiter_wait_ms - before.limiter_wait_ms) as i64;
    run.finished_at = Some(ids::now());
    // What the run says of the connection's health: a failure of the provider.
    let mut failure: Option<(&'static str, String)> = None;
    match result {
        Ok(Ended {
            held: Some(held),
            partial,
        }) => {
            run.status = RunStatus::Held;
            run.error = Some(match partial {
                Some(p) => format!("{held}; also {p}"),
                None => held,
            });
        }
        Ok(Ended {
            partial: None,
            held: None,
        }) => run.status = RunStatus::Succeeded,
        Ok(Ended {
            partial: Some(skipped),
            held: None,
        }) => {
            tracing::warn!(run_id = %run.id, connection_id = %c.id, error = %skipped, "sync run partial");
            run.status = RunStatus::Partial;
            run.error = Some(skipped);
        }
        Err(e @ SyncError::Cancelled { .. }) => {
            tracing::info!(run_id = %run.id, connection_id = %c.id, "sync run cancelled");
            run.status = RunStatus::Cancelled;
            run.error = Some(e.to_string());
        }
        Err(e) => {
            let upstream = matches!(
                e,
                SyncError::Listing { .. }
                    | SyncError::ListingChats { .. }
                    | SyncError::Reading { .. }
            );
            let message = match trace.filter(|_| upstream) {
                Some(t) => format!("{e} (upstream trace id {t})"),
                None => e.to_string(),
            };
            failure = match &e {
                SyncError::Listing { source, .. }
                | SyncError::ListingChats { source, .. }
                | SyncError::Reading { source, .. } => {
                    connection_status::failure_kind(source).map(|k| (k, message.clone()))
                }
                _ => None,
            };
            tracing::warn!(run_id = %run.id, connection_id = %c.id, error = %message, "sync run failed");
            run.status = RunStatus::Failed;
            run.error = Some(message);
        }
    }
    record_end(&store, &run).await;
    crate::metrics::sync_run(&run, c.provider.as_str(), started.elapsed());
    note_health(&store, &c.id, &run, failure.as_ref()).await;
    tracing::info!(
        run_id = %run.id, connection_id = %c.id, status = %run.status,
        created = run.created, updated = run.updated, unchanged = run.unchanged, deleted = run.deleted, deletions_held = run.deletions_held,
        pages = run.pages, elapsed_ms = started.elapsed().as_millis() as u64,
        store_ms = store_time.as_millis() as u64, "sync run finished"
    );
    run
}

/// Records the end of a run (status, counts, its events; its lease given back),
/// trying again while the database cannot be reached: a run whose end is not
/// recorded stays `running` and keeps its connection from syncing until its
/// lease expires. A restarted database is back within seconds; after two
/// minutes the lease's expiry is left to do the rest.
pub async fn record_end(store: &Store, run: &SyncRunRow) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut wait = Duration::from_millis(100);
    loop {
        let finished = run.clone();
        match store
            .write(move |conn| sync_runs::finish_run(conn, &finished))
            .await
        {
            Ok(()) => return,
            Err(StoreError::Unavailable(e)) if std::time::Instant::now() < deadline => {
                tracing::warn!(run_id = %run.id, error = %e, "the database is unavailable; recording the run's end again shortly");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(run_id = %run.id, error = %e, "could not record the end of a sync run");
                return;
            }
        }
    }
}

/// Records what a finished run says of its connection's health: the provider's
/// failure, or (a run that listed everything) a success.
async fn note_health(
    store: &Store,
    connection_id: &str,
    run: &SyncRunRow,
    failure: Option<&(&'static str, String)>,
) {
    let now = ids::now();
    let id = connection_id.to_string();
    let written = match (failure.cloned(), run.status) {
        (Some((kind, message)), _) => {
            store
                .write(move |conn| {
                    connection_status::record_failure(conn, &id, kind, &message, now)
                })
                .await
        }
        (None, RunStatus::Succeeded | RunStatus::Partial | RunStatus::Held) => {
            store
                .write(move |conn| connection_status::record_success(conn, &id, now))
                .await
        }
        _ => Ok(()),
    };
    if let Err(e) = written {
        tracing::warn!(error = %e, "could not record a connection's health");
    }
}

/// An error about one record rather than the provider or the connection as a
/// whole (those stop the run, after the client's own retries).
fn is_per_record(e: &AdapterError) -> bool {
    match e {
        AdapterError::Decode { .. }
        | AdapterError::Rejected { .. }
        | AdapterError::InvalidInput(_) => true,
        AdapterError::Upstream { status, .. } => *status < 500,
        _ => false,
    }
}

/// A page sorted against the store: what to insert, what to update, how many are unchanged.
struct Classified {
    seen: Vec<String>,
    fresh: Vec<(Prepared, Option<String>)>,
    changed: Vec<(Prepared, Option<String>)>,
    unchanged: i64,
    next: Option<PageToken>,
    /// Records the provider would not give us, and the first such error.
    skipped: i64,
    first_skip: Option<String>,
    /// Listed (so seen) but not stored: gone before their detail call, or skipped.
    not_stored: i64,
}

/// Sorts a listed page against the store (fetching details for thin list items
/// that are new or changed), each record completed from the run's chats first.
/// Returns the time spent waiting for the store.
async fn classify(
    store: &Store,
    provider: &Adapter,
    c: &Connection,
    page: ContactPage,
    chats: Option<&ChatIndex>,
) -> Result<(Classified, Duration), SyncError> {
    let complete = |mut record: ContactRecord| {
        if let Some(index) = chats {
            index.apply(&mut record);
        }
        record
    };
    let seen: Vec<String> = page.contacts.iter().map(|r| r.remote_id.clone()).collect();
    let (connection_id, ids) = (c.id.clone(), seen.clone());
    let t = std::time::Instant::now();
    let existing = store
        .run(move |conn| contacts::find_existing(conn, &connection_id, &ids))
        .await?;
    let waited = t.elapsed();
    let mut out = Classified {
        seen,
        fresh: Vec::new(),
        changed: Vec::new(),
        unchanged: 0,
        next: page.next,
        skipped: 0,
        first_skip: None,
        not_stored: 0,
    };
    for item in page.contacts {
        let known = existing.get(&item.remote_id);
        if page.items_are_partial {
            // Thin list items: the detail call only for new or changed ones.
            let h = list_hash(&item);
            if known.is_some_and(|k| !k.deleted && k.list_hash.as_deref() == Some(h.as_str())) {
                out.unchanged += 1;
                continue;
            }
            match provider.get_contact(&item.remote_id).await {
                Ok(full) => {
                    let full = contacts::prepare(complete(full))?;
                    match known {
                        None => out.fresh.push((full, Some(h))),
                        Some(_) => out.changed.push((full, Some(h))),
                    }
                }
                // Gone between the list and the detail: the next run will see it missing.
                Err(AdapterError::NotFound) => out.not_stored += 1,
                // One record the provider will not give us (an unreadable body, a
                // refusal for this id): the run goes on without it and ends partial.
                // Its list hash is not recorded, so the next run asks again; it was
                // listed, so it is not taken for deleted.
                Err(e) if is_per_record(&e) => {
                    tracing::warn!(remote_id = %item.remote_id, error = %e, "skipped a contact that cannot be read");
                    out.skipped += 1;
                    out.not_stored += 1;
                    out.first_skip
                        .get_or_insert_with(|| format!("reading {}: {e}", item.remote_id));
                }
                Err(source) => {
                    return Err(SyncError::Reading {
                        remote_id: item.remote_id,
                        source,
                    })
                }
            }
        } else {
            // Complete (a provider's chats applied): compared by content hash.
            let prepared = contacts::prepare(complete(item))?;
            match known {
                Some(k) if !k.deleted && k.content_hash == prepared.hash() => out.unchanged += 1,
                Some(_) => out.changed.push((prepared, None)),
                None => out.fresh.push((prepared, None)),
            }
        }
    }
    Ok((out, waited))
}

#[allow(clippy::too_many_arguments)]
async fn page_through(
    store: &Store,
    provider: &Adapter,
    c: &Connection,
    run: &mut SyncRunRow,
    ttl: chrono::Duration,
    stop: &CancellationToken,
    on_page: &(impl Fn(&SyncRunRow) + Send),
    store_time: &mut Duration,
) -> Result<Ended, SyncError> {
    use std::time::Instant;
    let started = Instant::now();
    // Records skipped so far, and the first error: a run with any ends partial.
    let (mut skipped, mut first_skip) = (0_i64, None::<String>);
    // Distinct remote ids listed, and how many of them were not stored.
    let (mut seen_total, mut not_stored) = (0_i64, 0_i64);
    // The seen set exists to find the contacts stored before the run that are gone
    // upstream. A connection without any (its first sync) needs none: every
    // contact the run stores was listed. That spares the run a write per contact.
    let track_seen = count_live(store, c).await? > 0;
    let chats = list_chats(store, provider, run, ttl, stop, on_page).await?;
    let chats = chats.as_ref();
    let first = tokio::select! {
        () = stop.cancelled() => return Err(SyncError::Interrupted),
        listed = provider.list_contacts(None) => listed
            .map_err(|source| SyncError::Listing { page: 1, source })?,
    };
    run.pages += 1;
    // Reading the page's details may take long (a call per record at the
    // Gateway): a stop does not wait for it.
    let (mut current, waited) = tokio::select! {
        () = stop.cancelled() => return Err(SyncError::Interrupted),
        classified = classify(store, provider, c, first, chats) => classified?,
    };
    *store_time += waited;
    // Contacts this run had created when the planner's statistics were last
    // refreshed: first at 5 000, then each time the run has created ten times as
    // many (a first sync is a bulk load). Between two, PostgreSQL scales its row
    // estimates by the tables' current size, so the plans stay right; a refresh
    // at each doubling fell in the last pages and took a core from their writes.
    let mut analyzed_at: i64 = 0;
    loop {
        let Classified {
            seen,
            fresh,
            changed,
            unchanged,
            next,
            skipped: skipped_here,
            first_skip: first_skip_here,
            not_stored: not_stored_here,
        } = current;
        not_stored += not_stored_here;
        skipped += skipped_here;
        if first_skip.is_none() {
            first_skip = first_skip_here;
        }
        let (connection, progress, handle) = (c.clone(), run.clone(), store.clone());
        let write = store.write(move |conn| {
            let t = Instant::now();
            write_page(
                &handle,
                conn,
                &connection,
                &progress,
                if track_seen { &seen } else { &[] },
                &fresh,
                &changed,
                unchanged,
                ttl,
            )
            .map(|o| (o, t.elapsed()))
        });
        // The next page is listed and sorted while this one is written. A contact on
        // both pages is then sorted before this write lands: if it looks new twice,
        // the second insert meets the unique key and that page is upserted instead.
        let number = run.pages + 1;
        let following = async {
            let token = next.as_ref()?;
            if stop.is_cancelled() {
                return Some(Err(SyncError::Interrupted));
            }
            Some(tokio::select! {
                // The page being written is finished; the listing (which may be
                // waiting for the quota) is not.
                () = stop.cancelled() => Err(SyncError::Interrupted),
                listed = async {
                    let page = provider
                        .list_contacts(Some(token))
                        .await
                        .map_err(|source| SyncError::Listing { page: number, source })?;
                    classify(store, provider, c, page, chats).await
                } => listed,
            })
        };
        let queued = Instant::now();
        let (outcome, following) = tokio::join!(write, following);
        let (outcome, took) = outcome?;
        tracing::debug!(
            page = run.pages,
            at_ms = started.elapsed().as_millis() as u64,
            write_ms = took.as_millis() as u64,
            link_ms = outcome.link.as_millis() as u64,
            insert_ms = outcome.insert.as_millis() as u64,
            joined_ms = queued.elapsed().as_millis() as u64,
            "page written"
        );
        *store_time += took;
        run.created += outcome.created;
        run.updated += outcome.updated;
        run.unchanged += outcome.unchanged;
        run.suppressed += outcome.suppressed;
        seen_total += outcome.seen_added;
        if run.created >= (analyzed_at * 10).max(5_000) {
            // In the background: nothing waits for it, and it blocks no write.
            analyzed_at = run.created;
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.refresh_statistics().await {
                    tracing::warn!(error = %e, "could not refresh the planner's statistics");
                }
            });
        }
        on_page(run);
        if outcome.cancelled {
            return Err(SyncError::Cancelled { page: run.pages });
        }
        match following {
            None => break,
            Some(Err(e)) => return Err(e),
            Some(Ok((classified, waited))) => {
                run.pages += 1;
                *store_time += waited;
                current = classified;
            }
        }
    }
    // The listing is complete: what was not seen is gone upstream, unless the
    // deletion guard holds it for an operator.
    let t = Instant::now();
    let held = if track_seen {
        check_deletions(store, c, run, seen_total, not_stored, ttl).await?
    } else {
        None
    };
    *store_time += t.elapsed();
    tracing::debug!(
        at_ms = started.elapsed().as_millis() as u64,
        check_ms = t.elapsed().as_millis() as u64,
        "deletion check done"
    );
    Ok(Ended {
        partial: first_skip.map(|e| {
            format!("{skipped} contact(s) could not be read and were left as they were; first: {e}")
        }),
        held,
    })
}

/// How a run that listed everything ended.
struct Ended {
    /// Records the provider would not give: how many, and the first reason.
    partial: Option<String>,
    /// Deletions the guard held: why, in an operator's words.
    held: Option<String>,
}

/// The deletion check after a complete listing. Held contacts the run saw again
/// (or that are gone otherwise) are let go. The live contacts the run did not
/// see and no hold keeps are marked deleted, unless the connection's deletion
/// guard says they are too many: then they are held, with the earlier held ones,
/// for an operator to apply or discard. Held contacts are never deleted here.
/// Sets the run's `deleted` and `deletions_held`; returns why it holds, if it does.
async fn check_deletions(
    store: &Store,
    c: &Connection,
    run: &mut SyncRunRow,
    seen_total: i64,
    not_stored: i64,
    ttl: chrono::Duration,
) -> Result<Option<String>, SyncError> {
    // Every seen record that was stored is live now. So when none was left out
    // and the connection has exactly as many live contacts as the run saw, no
    // live contact went unseen: nothing to mark or hold, no need to read them all.
    let live = count_live(store, c).await?;
    let everything_seen = not_stored == 0 && live == seen_total;
    let (connection, run_id) = (c.id.clone(), run.id.clone());
    let (unseen, carried) = store
        .write(move |conn| {
            store_fns::in_transaction(conn, |conn| {
                if everything_seen {
                    holds::release_seen(conn, &connection, None)?;
                    return Ok((0, 0));
                }
                holds::release_seen(conn, &connection, Some(&run_id))?;
                holds::carry(conn, &connection, &run_id)?;
                let unseen = holds::count_unseen(conn, &connection, &run_id)?;
                let carried = holds::count_held(conn, &connection)?;
                Ok((unseen, carried))
            })
        })
        .await?;
    // Unseen and not held yet: what this run's check would delete.
    let fresh = unseen - carried;
    let hold = c.settings.guard_holds(live, fresh, seen_total);
    if hold {
        let (connection, run_id) = (c.clone(), run.id.clone());
        store
            .write(move |conn| {
                store_fns::in_transaction(conn, |conn| {
                    link::lock_org(conn, &connection.org_id)?;
                    if sync_runs::renew_lease(conn, &run_id, ttl)? == Lease::Lost {
                        return Err(StoreError::LeaseLost);
                    }
                    holds::hold_unseen(conn, &connection.id, &run_id)
                })
            })
            .await?;
    } else if fresh > 0 {
        run.deleted += mark_unseen_deleted(store, c, &run.id, ttl).await?;
    }
    let connection = c.id.clone();
    let held = store
        .run(move |conn| holds::count_held(conn, &connection))
        .await?;
    run.deletions_held = held;
    let reason = (held > 0).then(|| {
        let shown = live - unseen;
        if hold {
            format!(
                "the listing showed {shown} of {live} live contacts; \
                 {held} deletions held for review"
            )
        } else {
            format!(
                "{held} deletions held for review are still missing from the listing \
                 (it showed {shown} of {live} live contacts); apply or discard them"
            )
        }
    });
    let (connection, run_id, why) = (c.clone(), run.id.clone(), reason.clone());
    store
        .write(move |conn| {
            holds::settle(
                conn,
                &connection.org_id,
                &connection.id,
                &run_id,
                held,
                why.as_deref().unwrap_or(""),
                ids::now(),
            )
        })
        .await?;
    if let Some(r) = &reason {
        tracing::warn!(run_id = %run.id, connection_id = %c.id, held, "{r}");
    }
    Ok(reason)
}

/// Completes the groups a round of chat pages named without members: from the
/// store where it holds the group at the version listed, else by reading the
/// group (two at a time, through the quota like every call). Returns what to
/// write of them.
async fn complete_groups(
    store: &Store,
    provider: &Adapter,
    connection_id: &str,
    listed: Vec<ListedGroup>,
    index: &mut ChatIndex,
    stop: &CancellationToken,
) -> Result<chat_groups::GroupWrites, SyncError> {
    use futures_util::StreamExt;
    let mut writes = chat_groups::GroupWrites::default();
    if listed.is_empty() {
        return Ok(writes);
    }
    // A group on two pages of one round (the list moved under the paging) once.
    let mut once = std::collections::HashSet::new();
    let listed: Vec<ListedGroup> = listed
        .into_iter()
        .filter(|g| once.insert(g.remote_id.clone()))
        .collect();
    let ids: Vec<String> = listed.iter().map(|g| g.remote_id.clone()).collect();
    let connection = connection_id.to_string();
    let mut known = store
        .run(move |conn| chat_groups::find(conn, &connection, &ids))
        .await?;
    let mut to_read = Vec::new();
    for group in listed {
        match known.remove(&group.remote_id) {
            Some(stored) if group.version.as_deref() == Some(stored.version.as_str()) => {
                writes.unchanged.push(group.remote_id.clone());
                index.add(ChatRecord {
                    remote_id: group.remote_id,
                    name: group.name,
                    kind: ChatKind::Group {
                        members: stored.members,
                    },
                });
            }
            _ => to_read.push(group),
        }
    }
    let reads = futures_util::stream::iter(to_read)
        .map(|group| async move {
            let read = provider.get_chat(&group.remote_id).await;
            (group, read)
        })
        .buffered(2)
        .collect::<Vec<_>>();
    let reads = tokio::select! {
        () = stop.cancelled() => return Err(SyncError::Interrupted),
        reads = reads => reads,
    };
    for (group, read) in reads {
        let read = read.map_err(|source| SyncError::Reading {
            remote_id: group.remote_id.clone(),
            source,
        })?;
        match read {
            Some(ChatRecord {
                name,
                kind: ChatKind::Group { members },
                ..
            }) => {
                if let Some(version) = &group.version {
                    writes
                        .read
                        .push((group.remote_id.clone(), version.clone(), members.clone()));
                }
                index.add(ChatRecord {
                    remote_id: group.remote_id,
                    name: group.name.or(name),
                    kind: ChatKind::Group { members },
                });
            }
            // Gone between the list and the read (or not a group after all).
            _ => writes.gone.push(group.remote_id),
        }
    }
    Ok(writes)
}

/// Lists every chat of the provider (Periskope's) into the index the contact
/// pages are completed from, each page counted in the run's pages; `None` when
/// the provider keeps none. Pages the first one announces are asked for two at a
/// time (the quota paces them; a page's own latency no longer does). Groups
/// listed without members are completed ([`complete_groups`]). The lease is
/// renewed after each round (no contact page is written meanwhile), which is
/// also where a cancel is heard, and the groups' reads are written with it;
/// after the last, the groups no longer listed are forgotten.
async fn list_chats(
    store: &Store,
    provider: &Adapter,
    run: &mut SyncRunRow,
    ttl: chrono::Duration,
    stop: &CancellationToken,
    on_page: &(impl Fn(&SyncRunRow) + Send),
) -> Result<Option<ChatIndex>, SyncError> {
    const IN_FLIGHT: usize = 2;
    let fetch = |token: Option<PageToken>, number: i64| async move {
        provider
            .list_chats(token.as_ref())
            .await
            .map_err(|source| SyncError::ListingChats {
                page: number,
                source,
            })
    };
    let first = tokio::select! {
        () = stop.cancelled() => return Err(SyncError::Interrupted),
        listed = fetch(None, run.pages + 1) => listed?,
    };
    let Some(first) = first else {
        return Ok(None);
    };
    let mut index = ChatIndex::default();
    let mut planned: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut queue: std::collections::VecDeque<PageToken> = std::collections::VecDeque::new();
    let mut round = vec![first];
    loop {
        let mut without_members = Vec::new();
        for page in round {
            run.pages += 1;
            for token in page.next.into_iter().chain(page.ahead) {
                if planned.insert(token.0.clone()) {
                    queue.push_back(token);
                }
            }
            for chat in page.chats {
                index.add(chat);
            }
            without_members.extend(page.without_members);
        }
        let groups = complete_groups(
            store,
            provider,
            &run.connection_id,
            without_members,
            &mut index,
            stop,
        )
        .await?;
        let listed_all = queue.is_empty();
        let progress = run.clone();
        let lease = store
            .write(move |conn| {
                let lease = sync_runs::renew_lease(conn, &progress.id, ttl)?;
                if lease == Lease::Held {
                    sync_runs::save_progress(conn, &progress)?;
                    if !groups.is_empty() {
                        chat_groups::save(conn, &progress.connection_id, &progress.id, &groups)?;
                    }
                    if listed_all {
                        chat_groups::forget_unlisted(conn, &progress.connection_id, &progress.id)?;
                    }
                }
                Ok(lease)
            })
            .await?;
        match lease {
            Lease::Held => {}
            Lease::Cancelled => return Err(SyncError::Cancelled { page: run.pages }),
            Lease::Lost => return Err(StoreError::LeaseLost.into()),
        }
        on_page(run);
        if queue.is_empty() {
            index.seal();
            tracing::debug!(chats = index.len(), pages = run.pages, "chats listed");
            return Ok(Some(index));
        }
        let tokens: Vec<PageToken> = (0..IN_FLIGHT).filter_map(|_| queue.pop_front()).collect();
        let base = run.pages;
        let listed = futures_util::future::join_all(
            tokens
                .into_iter()
                .enumerate()
                .map(|(i, t)| fetch(Some(t), base + 1 + i as i64)),
        );
        let pages = tokio::select! {
            () = stop.cancelled() => return Err(SyncError::Interrupted),
            pages = listed => pages,
        };
        round = Vec::with_capacity(pages.len());
        for page in pages {
            round.extend(page?);
        }
    }
}

/// How many of the connection's contacts are live (two index counts).
async fn count_live(store: &Store, c: &Connection) -> Result<i64, StoreError> {
    let connection_id = c.id.clone();
    store
        .run(move |conn| sync_runs::count_live(conn, &connection_id))
        .await
}

/// Marks the connection's live contacts the run did not see as deleted upstream,
/// in chunks by remote id, each marked and relinked in its own transaction.
/// Returns how many.
async fn mark_unseen_deleted(
    store: &Store,
    c: &Connection,
    run_id: &str,
    ttl: chrono::Duration,
) -> Result<i64, StoreError> {
    let mut deleted = 0;
    let mut after: Option<String> = None;
    loop {
        let (connection, run_id, from) = (c.clone(), run_id.to_string(), after.clone());
        let scope = Scope::new(&connection.org_id, events::Cause::sync(&run_id))
            .of_connection(&connection.id);
        let gone = change::apply(store, scope, move |change| {
            // The listing was complete: a cancel asked now lets the deletions
            // finish, so the store matches the provider.
            if sync_runs::renew_lease(change.conn(), &run_id, ttl)? == Lease::Lost {
                return Err(StoreError::LeaseLost);
            }
            change.mark_unseen_deleted(&run_id, from.as_deref(), 1000)
        })
        .await?;
        let Some((last, _)) = gone.last() else {
            return Ok(deleted);
        };
        deleted += gone.len() as i64;
        after = Some(last.clone());
    }
}
