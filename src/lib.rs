//! unicontacts: one contacts API over the WhatsApp CRMs a business uses.
//! This file only wires the modules; DESIGN.md §2 maps them.

pub mod auth;
pub mod cache;
pub mod config;
#[cfg(feature = "sim")]
pub mod demo;
pub mod error;
pub mod extract;
pub mod ids;
pub mod limits;
pub mod live;
pub mod routes;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
