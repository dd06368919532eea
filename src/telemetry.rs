//! Logging: text or JSON lines through tracing, to stdout (the server) or stderr
//! (CLI commands, whose stdout carries their result).

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, Settings};

/// Where log lines go: the server logs to stdout; CLI commands to stderr, so that
/// their stdout carries only their result (a new API key, say).
#[derive(Debug, Clone, Copy)]
pub enum LogTarget {
    Stdout,
    Stderr,
}

/// Installs the global subscriber once; later calls are no-ops.
pub fn init(settings: &Settings, target: LogTarget) {
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = match target {
        LogTarget::Stdout => std::io::stdout().is_terminal(),
        LogTarget::Stderr => std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let result = match (settings.log_format, target) {
        (LogFormat::Json, LogTarget::Stdout) => {
            builder.json().with_writer(std::io::stdout).try_init()
        }
        (LogFormat::Json, LogTarget::Stderr) => {
            builder.json().with_writer(std::io::stderr).try_init()
        }
        (LogFormat::Text, LogTarget::Stdout) => builder.with_writer(std::io::stdout).try_init(),
        (LogFormat::Text, LogTarget::Stderr) => builder.with_writer(std::io::stderr).try_init(),
    };
    // Already installed (tests build several apps in one process): keep the first.
    let _ = result;
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `f` with `id` as the current request's id (see [`request_id`]).
pub async fn with_request_id<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The id of the request being served on this task, if any (for the events a
/// request causes).
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}
