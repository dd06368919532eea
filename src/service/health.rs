//! Readiness: whether this process can serve (its database answers).

use std::time::Duration;

use crate::error::{ApiError, ErrorCode};
use crate::state::State;

/// `Ok` when the database answers within a second.
pub async fn ready(state: &State) -> Result<(), ApiError> {
    state
        .store
        .check_ready(Duration::from_secs(1))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(ErrorCode::ServiceUnavailable, "the database is unreachable")
        })
}

/// The metrics' text, with the figures read from the database now (the held
/// deletions by provider; left as last read when the database cannot say).
pub async fn metrics_text(state: &State) -> Result<String, ApiError> {
    let held = match state
        .store
        .run(crate::store::deletion_holds::held_by_provider)
        .await
    {
        Ok(held) => Some(held),
        Err(e) => {
            tracing::warn!(error = %e, "could not read the held deletions for the metrics");
            None
        }
    };
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || crate::metrics::render(&store, held))
        .await
        .map_err(ApiError::internal)
}
