//! Reconciliation: starting runs (`runner`: lease → adapter → run), one run of a
//! connection (`run`), the scheduler that starts them (`scheduler`), and identity
//! linking into people (`link`).

pub mod run;
pub mod runner;
pub mod scheduler;

pub use run::{SyncError, INTERRUPTED};
pub use runner::{BeginError, Begun, Runner};
