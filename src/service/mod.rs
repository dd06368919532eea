//! The rules, one module per domain noun, called alike by the HTTP routes, the
//! CLI, the demo, benches and tests. Services take the shared [`State`] and plain
//! values and answer domain values or an [`ApiError`]; they never see actix.
//!
//! [`State`]: crate::state::State
//! [`ApiError`]: crate::error::ApiError

pub mod api_keys;
pub mod audit;
pub mod connections;
pub mod contact_writes;
pub mod contacts;
pub mod events;
pub mod health;
pub mod people;
pub mod sync_runs;
pub mod webhooks;
