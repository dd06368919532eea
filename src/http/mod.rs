//! The request edge: who is calling (`auth`), reading bodies and query strings
//! into our error envelope (`extract`), and the per-request middleware
//! (`middleware`: request ids, access log, rate-limit headers), conditional GETs
//! (`conditional`: content ETags, 304), `Idempotency-Key`
//! on writes (`idempotency`), and the error
//! responses every route documents (`responses`).

pub mod audit;
pub mod auth;
pub mod conditional;
pub mod extract;
pub mod idempotency;
pub mod middleware;
pub mod responses;
