//! Reconciliation: sync runs of a connection (`run`), the scheduler that starts
//! them (`scheduler`), and identity linking into people (`link`).

pub mod link;
pub mod run;
pub mod scheduler;
