//! The scheduler: every connection is synced every `sync_interval_seconds`, plus a
//! jitter of up to a tenth of the interval (fixed per connection, so replicas agree
//! and runs of many connections spread out). The lease keeps it to one run at a
//! time per connection, across processes too. A process has at most
//! `sync_max_concurrent_runs` scheduled runs going at once (due connections past
//! that start on a later tick), and prunes the run history past
//! `sync_run_retention_days` and the expired `Idempotency-Key`s once an hour.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::runner::{BeginError, Runner};
use crate::ids;
use crate::store::connection_status::{self, StatusRow};
use crate::store::connections::{self, Connection};
use crate::store::models::Trigger;
use crate::store::sync_runs;
use crate::store::{Store, StoreError};

/// How often the run history is pruned (and once when the scheduler starts; each
/// tick while a backlog lasts).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs pruned per batch, and batches per pass: a pass holds up its tick for a few
/// hundred milliseconds at most, and a long backlog drains over the next ticks.
const PRUNE_BATCH: i64 = 1000;
const PRUNE_BATCHES_PER_PASS: usize = 10;

/// Deletes the runs that finished more than `days` ago, each connection's latest
/// finished run excepted, in batches. Returns how many went, and whether more may
/// be left (the pass stopped at its batch limit).
pub async fn prune_history(store: &Store, days: u32) -> Result<(usize, bool), StoreError> {
    let cutoff = ids::now() - chrono::Duration::days(i64::from(days));
    let mut pruned = 0;
    for _ in 0..PRUNE_BATCHES_PER_PASS {
        let n = store
            .write(move |conn| sync_runs::prune_finished(conn, cutoff, PRUNE_BATCH))
            .await?;
        pruned += n;
        if (n as i64) < PRUNE_BATCH {
            return Ok((pruned, false));
        }
    }
    Ok((pruned, true))
}

fn jitter_secs(connection_id: &str, interval: u64) -> i64 {
    let h = connection_id
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    (h % (interval / 10).max(1)) as i64
}

/// How long after a run ends the connection's next scheduled run is due: its
/// interval plus its own jitter. The one place the formula is written.
pub fn gap(c: &Connection) -> chrono::Duration {
    let interval = c.settings.sync_interval_seconds;
    chrono::Duration::seconds(interval as i64 + jitter_secs(&c.id, interval))
}

/// When the connection's next scheduled run is due, after a run that finished
/// at `last` (`None`: never ran, due at once).
pub fn next_due(c: &Connection, last: Option<NaiveDateTime>) -> NaiveDateTime {
    match last {
        None => NaiveDateTime::MIN,
        Some(finished) => finished + gap(c),
    }
}

/// Connections whose next run is due at `now`.
pub fn due(
    conns: Vec<Connection>,
    last: &HashMap<String, Option<NaiveDateTime>>,
    now: NaiveDateTime,
) -> Vec<Connection> {
    conns
        .into_iter()
        .filter(|c| now >= next_due(c, last.get(&c.id).copied().flatten()))
        .collect()
}

/// What the scheduler is told.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// How often due connections are looked for.
    pub tick: Duration,
    /// Scheduled runs this process has going at once.
    pub max_concurrent_runs: u32,
    /// Days a finished run stays in the history (0: forever).
    pub retention_days: u32,
    /// Days an event stays in the change feed.
    pub event_retention_days: u32,
}

/// Runs until this process shuts down (the runner's tasks stop), checking every tick.
pub async fn run_scheduler(runner: Runner, schedule: Schedule) {
    let mut interval = tokio::time::interval(schedule.tick);
    let stop = runner.tasks().stop_token();
    let permits = Arc::new(tokio::sync::Semaphore::new(
        schedule.max_concurrent_runs as usize,
    ));
    let mut pruned_at: Option<Instant> = None;
    let mut keys_pruned_at: Option<Instant> = None;
    let store = runner.store().clone();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = interval.tick() => {}
        }
        let retention = schedule.retention_days;
        if retention > 0 && pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            match prune_history(&store, retention).await {
                Ok((0, _)) => {}
                Ok((n, more)) => {
                    tracing::info!(
                        pruned = n,
                        retention_days = retention,
                        "pruned the sync run history"
                    );
                    if more {
                        // The rest on the next tick, not in an hour.
                        pruned_at = None;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not prune the sync run history"),
            }
        }
        if keys_pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            keys_pruned_at = Some(Instant::now());
            let now = crate::ids::now();
            match store
                .write(move |conn| crate::store::idempotency::prune(conn, now))
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "pruned expired idempotency keys"),
                Err(e) => tracing::warn!(error = %e, "could not prune idempotency keys"),
            }
            let before = now - chrono::Duration::days(i64::from(schedule.event_retention_days));
            match store
                .write(move |conn| {
                    // Events, and the deliveries of those times (the log goes with the feed).
                    Ok(crate::store::events::prune(conn, before, PRUNE_BATCH)?
                        + crate::store::webhooks::prune_deliveries(conn, before, PRUNE_BATCH)?)
                })
                .await
            {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(pruned = n, "pruned old events");
                    if n as i64 >= PRUNE_BATCH {
                        keys_pruned_at = None;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not prune old events"),
            }
        }
        let sealer = match store.sealer() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler cannot open the connections");
                continue;
            }
        };
        let loaded = store
            .run(move |conn| {
                let conns = connections::list_all_connections(conn, &sealer, None)?;
                // Paused connections wait, and so do those whose credentials the
                // provider has not accepted yet (no sync with a placeholder key).
                let ids: Vec<String> = conns.iter().map(|c| c.id.clone()).collect();
                let status = connection_status::find(conn, &ids)?;
                let conns = conns
                    .into_iter()
                    .filter(|c| status.get(&c.id).is_some_and(StatusRow::schedulable))
                    .collect::<Vec<_>>();
                let last: HashMap<_, _> = sync_runs::last_finished(conn)?.into_iter().collect();
                Ok((conns, last))
            })
            .await;
        let (conns, last) = match loaded {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler could not read connections");
                continue;
            }
        };
        for c in due(conns, &last, ids::now()) {
            // This process's share of runs is taken: the rest wait for a later tick
            // (or another process, which may take them meanwhile).
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            match runner.begin(&c, Trigger::Schedule, Some(gap(&c))).await {
                Ok(begun) => runner.spawn(begun, permit),
                // Running already (here or elsewhere), or just finished: nothing to do.
                // A connection that cannot be used has its failed run recorded.
                Err(BeginError::Busy(_) | BeginError::NotDue | BeginError::Unusable(_)) => {}
                Err(e) => {
                    tracing::warn!(connection_id = %c.id, error = %e, "cannot start a scheduled sync");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(id: &str, interval: u64) -> Connection {
        let settings = crate::store::connections::ConnectionSettings {
            sync_interval_seconds: interval,
            ..Default::default()
        };
        Connection {
            id: id.to_string(),
            org_id: "org".into(),
            provider: unicontacts_adapters::ProviderKind::Wacr,
            name: "W".into(),
            base_url: String::new(),
            credentials: Default::default(),
            settings,
            created_at: ids::now(),
            updated_at: ids::now(),
        }
    }

    #[test]
    fn a_connection_is_due_its_interval_and_jitter_after_its_last_run() {
        let now = ids::now();
        let c = connection("con_01jd2x9v8c0000000000000000", 900);
        // The jitter: at most a tenth of the interval, the same every time.
        let g = gap(&c);
        assert!(g >= chrono::Duration::seconds(900) && g < chrono::Duration::seconds(990));
        assert_eq!(g, gap(&c));
        // Never ran: due at once.
        assert_eq!(next_due(&c, None), NaiveDateTime::MIN);
        let last = HashMap::from([(c.id.clone(), Some(now - g))]);
        assert_eq!(
            due(vec![c.clone()], &last, now).len(),
            1,
            "due exactly then"
        );
        let early = now - chrono::Duration::seconds(1);
        assert!(due(vec![c.clone()], &last, early).is_empty(), "not before");
        assert_eq!(due(vec![c], &HashMap::new(), early).len(), 1, "never ran");
    }
}
