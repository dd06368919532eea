//! unicontacts: one contacts API over the WhatsApp CRMs a business uses.
//! This file only wires the modules; DESIGN.md §2 maps them.

pub mod auth;
pub mod config;
pub mod error;
pub mod extract;
pub mod ids;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
