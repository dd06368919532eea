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
