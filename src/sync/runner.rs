//! Starting a sync run, the one way every caller does it (the API, the scheduler,
//! the CLI, the demo, tests and benches): take the connection's lease and record
//! the run as running, build the adapter (a connection it cannot be built from
//! gets its run recorded as failed, which releases the lease), then run it, in the
//! background or waited for.

use std::time::Duration;

use unicontacts_adapters::Adapter;

use super::run::{self, SyncError};
use crate::ids;
use crate::providers::Providers;
use crate::store::connections::Connection;
use crate::store::models::{RunStatus, SyncRunRow, Trigger};
use crate::store::sync_runs::{self, LeaseError};
use crate::store::{Store, StoreError};
use crate::tasks::{BackgroundTasks, CancellationToken};

/// A run that holds its lease and has its adapter: ready to go.
pub struct Begun {
    pub run: SyncRunRow,
    adapter: Adapter,
    connection: Connection,
}

impl Begun {
    /// The adapter the run calls its provider with (its figures show how far it got).
    pub fn adapter(&self) -> &Adapter {
        &self.adapter
    }
}

/// Why a run did not begin.
#[derive(Debug, thiserror::Error)]
pub enum BeginError {
    /// Another run of the connection holds the lease (its id, when known).
    #[error("a sync of this connection is already running ({0})")]
    Busy(String),
    /// The connection finished a run less than the asked gap ago.
    #[error("the connection was synced recently")]
    NotDue,
    /// No adapter could be built from the stored connection; the run is recorded
    /// as failed with the reason.
    #[error("{}", .0.error.as_deref().unwrap_or("the connection cannot be used"))]
    Unusable(Box<SyncRunRow>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This process's starter of sync runs. Cheap to clone.
#[derive(Clone)]
pub struct Runner {
    store: Store,
    providers: Providers,
    tasks: BackgroundTasks,
    lease: chrono::Duration,
    /// This process, as a lease holder.
    holder: String,
}

impl Runner {
    /// `lease`: how long a run's lease lasts without renewal (renewed every page).
    pub fn new(
        store: Store,
        providers: Providers,
        tasks: BackgroundTasks,
        lease: Duration,
    ) -> Self {
        Self {
            store,
            providers,
            tasks,
            lease: chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(5)),
            holder: format!(
                "pid{}-{}",
                std::process::id(),
                ulid::Ulid::new().to_string().to_lowercase()
            ),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn tasks(&self) -> &BackgroundTasks {
        &self.tasks
    }

    /// Takes the lease, records a running run and builds the adapter. With
    /// `min_gap`, a connection whose last run finished less than that ago is
    /// `NotDue` (checked with the lease, so a run finishing meanwhile is not repeated).
    pub async fn begin(
        &self,
        c: &Connection,
        trigger: Trigger,
        min_gap: Option<chrono::Duration>,
    ) -> Result<Begun, BeginError> {
        let (org, id, holder, ttl) = (
            c.org_id.clone(),
            c.id.clone(),
            self.holder.clone(),
            self.lease,
        );
        let started = self
            .store
            .write(move |conn| {
                match sync_runs::start_run(conn, &org, &id, trigger, &holder, ttl, min_gap) {
                    Ok(run) => Ok(Ok(run)),
                    Err(LeaseError::Store(s)) => Err(s),
                    Err(other) => Ok(Err(other)),
                }
            })
            .await?;
        let run = match started {
            Ok(run) => run,
            Err(LeaseError::Held(by)) => return Err(BeginError::Busy(by)),
            Err(LeaseError::NotDue) => return Err(BeginError::NotDue),
            Err(LeaseError::Store(e)) => return Err(BeginError::Store(e)),
        };
        match self.providers.for_sync(c) {
            Ok(adapter) => Ok(Begun {
                run,
                adapter,
                connection: c.clone(),
            }),
            Err(e) => {
                tracing::warn!(connection_id = %c.id, error = %e, "cannot build the adapter");
                let failed = self.fail(run, SyncError::from(e)).await;
                Err(BeginError::Unusable(Box::new(failed)))
            }
        }
    }

    /// Records a run that could not go on, releasing its lease.
    async fn fail(&self, mut run: SyncRunRow, error: SyncError) -> SyncRunRow {
        run.status = RunStatus::Failed;
        run.error = Some(error.to_string());
        run.finished_at = Some(ids::now());
        run::record_end(&self.store, &run).await;
        run
    }

    /// Runs a begun run to its end in the background, stopped (and recorded) by
    /// this process's shutdown; `held` (a concurrency permit, say) is dropped when
    /// it ends.
    pub fn spawn(&self, begun: Begun, held: impl Send + 'static) {
        let runner = self.clone();
        self.tasks.spawn(move |stop| async move {
            runner.run(begun, stop, |_| {}).await;
            drop(held);
        });
    }

    /// Runs a begun run to its end (or until `stop`: then it fails as interrupted
    /// after the page being written), recording the outcome; `on_page` sees the run
    /// after each page.
    pub async fn run(
        &self,
        begun: Begun,
        stop: CancellationToken,
        on_page: impl Fn(&SyncRunRow) + Send,
    ) -> SyncRunRow {
        run::execute(
            self.store.clone(),
            begun.adapter,
            begun.connection,
            begun.run,
            self.lease,
            stop,
            on_page,
        )
        .await
    }

    /// Begins and runs the connection's sync, waiting for its end. If another run
    /// holds the lease (the scheduler got there first), waits until it is released
    /// or expires. A connection that cannot be used gives its failed run.
    pub async fn run_now(
        &self,
        c: &Connection,
        trigger: Trigger,
    ) -> Result<SyncRunRow, BeginError> {
        let begun = loop {
            match self.begin(c, trigger, None).await {
                Ok(begun) => break begun,
                Err(BeginError::Busy(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(BeginError::Unusable(run)) => return Ok(*run),
                Err(e) => return Err(e),
            }
        };
        Ok(self.run(begun, self.tasks.stop_token(), |_| {}).await)
    }
}
