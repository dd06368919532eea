//! The scheduler: every connection is synced every `sync_interval_seconds`, plus a
//! jitter of up to a tenth of the interval (fixed per connection, so replicas agree
//! and runs of many connections spread out). The lease keeps it to one run at a
//! time per connection, across processes too.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::ids;
use crate::startup::AppState;
use crate::store::connections::Connection;
use crate::store::models::ConnectionRow;
use crate::store::schema::connections;
use crate::store::sync_runs;
use crate::sync::run;

fn jitter_secs(connection_id: &str, interval: u64) -> i64 {
    let h = connection_id
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    (h % (interval / 10).max(1)) as i64
}

/// Connections whose next run is due at `now`.
pub fn due(
    conns: Vec<Connection>,
    last: &HashMap<String, Option<NaiveDateTime>>,
    now: NaiveDateTime,
) -> Vec<Connection> {
    conns
        .into_iter()
        .filter(|c| match last.get(&c.id).copied().flatten() {
            None => true,
            Some(finished) => {
                let interval = c.settings.sync_interval_seconds;
                now >= finished
                    + chrono::Duration::seconds(interval as i64 + jitter_secs(&c.id, interval))
            }
        })
        .collect()
}

/// Runs until the app state is gone, checking every `tick`.
pub async fn run_scheduler(state: Weak<AppState>, tick: Duration) {
    let holder = run::holder_id();
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        let Some(state) = state.upgrade() else { break };
        let loaded = state
            .store
            .run(|conn| {
                let rows: Vec<ConnectionRow> = connections::table
                    .select(ConnectionRow::as_select())
                    .load(conn)?;
                let conns = rows
                    .into_iter()
                    .map(Connection::try_from)
                    .collect::<Result<Vec<_>, _>>()?;
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
        let ttl = run::lease_ttl(&state.settings);
        for c in due(conns, &last, ids::now()) {
            let interval = c.settings.sync_interval_seconds;
            let gap = chrono::Duration::seconds(interval as i64 + jitter_secs(&c.id, interval));
            match run::start(&state.store, &c, "schedule", &holder, ttl, Some(gap)).await {
                Ok(r) => match unicontacts_adapters::connect(run::sync_adapter_config(&c)) {
                    Ok(provider) => {
                        tokio::spawn(run::execute(
                            state.store.clone(),
                            provider,
                            c,
                            r,
                            ttl,
                            |_| {},
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(connection_id = %c.id, error = %e, "cannot build the adapter")
                    }
                },
                // Running already (here or elsewhere), or just finished: nothing to do.
                Err(
                    crate::store::sync_runs::LeaseError::Held(_)
                    | crate::store::sync_runs::LeaseError::NotDue,
                ) => {}
                Err(e) => {
                    tracing::warn!(connection_id = %c.id, error = %e, "cannot start a scheduled sync")
                }
            }
        }
    }
}
