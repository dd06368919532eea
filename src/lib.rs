//! unicontacts: one contacts API over the WhatsApp CRMs a business uses.
//! This file only declares the modules; `docs/ARCHITECTURE.md` maps them in
//! layers (a module uses only those below it; `tests/api/layers.rs` checks).

pub mod cache;
pub mod change;
pub mod cli;
pub mod config;
pub mod delivery;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod http;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod notices;
pub mod page;
pub mod providers;
pub mod redis;
pub mod routes;
pub mod secrets;
pub mod service;
pub mod startup;
pub mod state;
pub mod store;
pub mod sync;
pub mod tasks;
pub mod telemetry;
