//! One reconciliation run of one connection: page through the provider's whole
//! list, write only contacts whose content hash changed (a transaction per page),
//! note every remote id seen (on disk, so memory stays flat), and only after a
//! complete listing mark the contacts not seen as deleted upstream. The lease is
//! renewed every page; a run that cannot finish is recorded as failed and leaves
//! the stored contacts as they were.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use unicontacts_adapters::{
    AdapterError, ConnectionConfig, ContactRecord, PageToken, Provider, UpstreamConfig,
};

use crate::ids;
use crate::store::connections::Connection;
use crate::store::contacts::{self, Origin, Upserted};
use crate::store::models::SyncRunRow;
use crate::store::sync_runs::{self, LeaseError};
use crate::store::{DbConnection, Store, StoreError};

/// How long a lease lasts without renewal (a run renews it every page).
pub fn lease_ttl(settings: &crate::config::Settings) -> chrono::Duration {
    chrono::Duration::seconds(settings.sync_lease_seconds as i64)
}

/// This process, as a lease holder.
pub fn holder_id() -> String {
    format!(
        "pid{}-{}",
        std::process::id(),
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

/// Adapter settings for a sync: patient with the quota (waiting beats failing a
/// run), more attempts, longer deadlines than interactive reads.
pub fn sync_adapter_config(c: &Connection) -> ConnectionConfig {
    crate::live::connection_config(
        c,
        UpstreamConfig {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(60),
            max_attempts: 5,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(15),
            max_throttle_wait: Duration::from_secs(180),
            rate_limit_per_second: c.settings.rate_limit_per_second,
        },
    )
}

/// Starts a run and waits for it: the lease, the adapter, the run. For callers that
/// want the outcome (the CLI, the demo); the API starts runs and returns at once.
pub async fn sync_now(
    store: &Store,
    c: &Connection,
    trigger: &str,
    ttl: chrono::Duration,
) -> Result<SyncRunRow, String> {
    let run = start(store, c, trigger, &holder_id(), ttl, None)
        .await
        .map_err(|e| e.to_string())?;
    let provider = match unicontacts_adapters::connect(sync_adapter_config(c)) {
        Ok(p) => p,
        Err(e) => {
            return Ok(
                fail_before_start(store, run, format!("the connection cannot be used: {e}")).await,
            )
        }
    };
    Ok(execute(store.clone(), provider, c.clone(), run, ttl, |_| {}).await)
}

/// Records a run that could not begin (no usable adapter), releasing its lease.
pub async fn fail_before_start(store: &Store, mut run: SyncRunRow, error: String) -> SyncRunRow {
    run.status = "failed".into();
    run.error = Some(error);
    run.finished_at = Some(ids::now());
    let finished = run.clone();
    if let Err(e) = store
        .write(move |conn| sync_runs::finish_run(conn, &finished))
        .await
    {
        tracing::error!(run_id = %run.id, error = %e, "could not record the end of a sync run");
    }
    run
}

/// Takes the lease and records a running run.
pub async fn start(
    store: &Store,
    c: &Connection,
    trigger: &str,
    holder: &str,
    ttl: chrono::Duration,
    min_gap: Option<chrono::Duration>,
) -> Result<SyncRunRow, LeaseError> {
    let (org, id, trigger, holder) = (
        c.org_id.clone(),
        c.id.clone(),
        trigger.to_string(),
        holder.to_string(),
    );
    let outcome = store
        .write(move |conn| {
            match sync_runs::start_run(conn, &org, &id, &trigger, &holder, ttl, min_gap) {
                Ok(run) => Ok(Ok(run)),
                Err(LeaseError::Store(s)) => Err(s),
                Err(other) => Ok(Err(other)),
            }
        })
        .await;
    match outcome {
        Ok(result) => result,
        Err(e) => Err(LeaseError::Store(e)),
    }
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
}

#[allow(clippy::too_many_arguments)]
fn write_page(
    conn: &mut DbConnection,
    c: &Connection,
    run_id: &str,
    seen: &[String],
    fresh: &[(ContactRecord, Option<String>)],
    changed: &[(ContactRecord, Option<String>)],
    unchanged: i64,
    ttl: chrono::Duration,
) -> Result<PageOutcome, StoreError> {
    use diesel::Connection as _;
    let origin = Origin {
        org_id: &c.org_id,
        connection_id: &c.id,
        provider: c.provider,
    };
    let fetched_at = ids::now();
    let attempt = |conn: &mut DbConnection, batch_new: bool| {
        conn.transaction(|conn| {
            let mut out = PageOutcome {
                unchanged,
                ..PageOutcome::default()
            };
            let mut one_by_one: Vec<&(ContactRecord, Option<String>)> = changed.iter().collect();
            if batch_new {
                out.created +=
                    contacts::insert_new_contacts(conn, &origin, fresh, fetched_at)? as i64;
            } else {
                one_by_one.extend(fresh.iter());
            }
            for (record, list_hash) in one_by_one {
                let (row, what) = contacts::upsert_contact(conn, &origin, record, fetched_at)?;
                if let Some(h) = list_hash {
                    contacts::set_list_hash(conn, &row.id, h)?;
                }
                match what {
                    Upserted::Created => out.created += 1,
                    Upserted::Updated => out.updated += 1,
                    Upserted::Unchanged => out.unchanged += 1,
                }
            }
            sync_runs::mark_seen(conn, run_id, seen)?;
            sync_runs::renew_lease(conn, run_id, ttl)?;
            Ok(out)
        })
    };
    match attempt(conn, true) {
        // A live read stored one of the new contacts meanwhile: upsert them one by one.
        Err(StoreError::Conflict(_)) => attempt(conn, false),
        other => other,
    }
}

/// Runs the sync to its end and records the outcome; `on_page` sees the run after each page.
pub async fn execute(
    store: Store,
    provider: Arc<dyn Provider>,
    c: Connection,
    mut run: SyncRunRow,
    ttl: chrono::Duration,
    on_page: impl Fn(&SyncRunRow) + Send,
) -> SyncRunRow {
    let before = provider.stats();
    let result = page_through(&store, provider.as_ref(), &c, &mut run, ttl, &on_page).await;
    let after = provider.stats();
    run.upstream_requests = (after.requests - before.requests) as i64;
    run.throttled_429 = (after.throttled_429 - before.throttled_429) as i64;
    run.limiter_wait_ms = (after.limiter_wait_ms - before.limiter_wait_ms) as i64;
    run.finished_at = Some(ids::now());
    match result {
        Ok(()) => run.status = "succeeded".into(),
        Err(e) => {
            tracing::warn!(run_id = %run.id, connection_id = %c.id, error = %e, "sync run failed");
            run.status = "failed".into();
            run.error = Some(e);
        }
    }
    // Whatever was written, partial or not, is linked into people before the run
    // reads as finished.
    let org_id = c.org_id.clone();
    match store
        .write(move |conn| super::link::link_org(conn, &org_id))
        .await
    {
        Ok(l) => tracing::debug!(people = l.people, moved = l.contacts_moved, "people linked"),
        Err(e) => tracing::error!(org_id = %c.org_id, error = %e, "identity linking failed"),
    }
    let finished = run.clone();
    if let Err(e) = store
        .write(move |conn| sync_runs::finish_run(conn, &finished))
        .await
    {
        tracing::error!(run_id = %run.id, error = %e, "could not record the end of a sync run");
    }
    tracing::info!(
        run_id = %run.id, connection_id = %c.id, status = %run.status,
        created = run.created, updated = run.updated, unchanged = run.unchanged, deleted = run.deleted,
        pages = run.pages, "sync run finished"
    );
    run
}

async fn page_through(
    store: &Store,
    provider: &dyn Provider,
    c: &Connection,
    run: &mut SyncRunRow,
    ttl: chrono::Duration,
    on_page: &(impl Fn(&SyncRunRow) + Send),
) -> Result<(), String> {
    // The next page is fetched while the current one is written.
    let mut fetched = provider.list_contacts(None).await;
    loop {
        let page = fetched.map_err(|e| format!("listing page {}: {e}", run.pages + 1))?;
        run.pages += 1;
        let next: Option<PageToken> = page.next.clone();
        let seen: Vec<String> = page.contacts.iter().map(|r| r.remote_id.clone()).collect();
        let (connection_id, ids) = (c.id.clone(), seen.clone());
        let existing = store
            .run(move |conn| contacts::find_existing(conn, &connection_id, &ids))
            .await
            .map_err(|e| e.to_string())?;
        let mut changed = Vec::new();
        let mut fresh = Vec::new();
        let mut unchanged = 0;
        for item in page.contacts {
            let known = existing.get(&item.remote_id);
            if page.items_are_partial {
                // Thin list items: the detail call only for new or changed ones.
                let h = list_hash(&item);
                if known.is_some_and(|k| !k.deleted && k.list_hash.as_deref() == Some(h.as_str())) {
                    unchanged += 1;
                    continue;
                }
                match provider.get_contact(&item.remote_id).await {
                    Ok(full) if known.is_none() => fresh.push((full, Some(h))),
                    Ok(full) => changed.push((full, Some(h))),
                    // Gone between the list and the detail: the next run will see it missing.
                    Err(AdapterError::NotFound) => {}
                    Err(e) => return Err(format!("reading {}: {e}", item.remote_id)),
                }
            } else {
                let hash = contacts::content_hash(&item).map_err(|e| e.to_string())?;
                match known {
                    Some(k) if !k.deleted && k.content_hash == hash => unchanged += 1,
                    Some(_) => changed.push((item, None)),
                    None => fresh.push((item, None)),
                }
            }
        }
        let (connection, run_id) = (c.clone(), run.id.clone());
        let write = store.write(move |conn| {
            write_page(
                conn,
                &connection,
                &run_id,
                &seen,
                &fresh,
                &changed,
                unchanged,
                ttl,
            )
        });
        let (outcome, prefetched) = match &next {
            Some(token) => {
                let (o, p) = tokio::join!(write, provider.list_contacts(Some(token)));
                (o, Some(p))
            }
            None => (write.await, None),
        };
        let outcome = outcome.map_err(|e| e.to_string())?;
        run.created += outcome.created;
        run.updated += outcome.updated;
        run.unchanged += outcome.unchanged;
        let progress = run.clone();
        store
            .write(move |conn| sync_runs::save_progress(conn, &progress))
            .await
            .map_err(|e| e.to_string())?;
        on_page(run);
        match prefetched {
            Some(p) => fetched = p,
            None => break,
        }
    }
    // The listing is complete: what was not seen is gone upstream.
    let (connection_id, run_id) = (c.id.clone(), run.id.clone());
    run.deleted = store
        .write(move |conn| sync_runs::mark_unseen_deleted(conn, &connection_id, &run_id))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
