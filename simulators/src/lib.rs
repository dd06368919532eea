//! Simulators of the providers unicontacts connects to, each a real HTTP server
//! on loopback that behaves as the provider documents it (paths, bodies,
//! errors, its own rate-limit headers): for the tests, the benches and
//! `unicontacts serve --demo`. Nothing here is part of the service: a build
//! without the `demo` feature has none of it.
//!
//! Read top-down: `set` (the three over one world) over `periskope`, `wacr`,
//! `gateway` (each provider's API) over `harness` (the server, recorded
//! requests, rate-limit windows, injected faults) and `world` (the people).

pub mod gateway;
pub mod harness;
pub mod periskope;
pub mod set;
pub mod wacr;
pub mod world;

pub use harness::{
    Faults, Listing, RateHeaders, RateLimit, RecordedRequest, SimApi, SimRequest, SimResponse,
    SimServer,
};
pub use set::{start_all, SimAddrs, SimSet};
pub use world::{Person, World};
