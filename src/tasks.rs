//! Background work of this process (sync runs): started on the runtime that
//! built the app, stopped together at shutdown, and waited for while each records
//! how it ended.

use std::future::Future;
use std::time::Duration;

pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tasks this process has going. A shutdown cancels their token; each is
/// expected to stop at its next safe point and record itself.
#[derive(Clone)]
pub struct BackgroundTasks {
    /// What the tasks are, for the log (`sync runs`).
    what: &'static str,
    stop: CancellationToken,
    tasks: TaskTracker,
    /// The runtime tasks go on: the one that built the app, not the HTTP worker's
    /// that handled the request (a worker's runtime ends with it at shutdown,
    /// taking its tasks along).
    runtime: tokio::runtime::Handle,
}

impl BackgroundTasks {
    /// Tasks on the current runtime (call it from within one); `what` names
    /// them in the log.
    pub fn on_current_runtime(what: &'static str) -> Self {
        Self {
            what,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Whether a shutdown has begun (no new task should start).
    pub fn stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// The token a shutdown cancels.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task(stop)` in the background.
    pub fn spawn<F>(&self, task: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let fut = task(self.stop.clone());
        self.tasks.spawn_on(fut, &self.runtime);
    }

    /// Stops every task and waits up to `grace` for them to end.
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.cancel();
        self.tasks.close();
        if self.tasks.is_empty() {
            return;
        }
        tracing::info!(tasks = self.tasks.len(), "stopping {}", self.what);
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                tasks = self.tasks.len(),
                "{} still going at the end of the shutdown timeout",
                self.what
            );
        }
    }
}
