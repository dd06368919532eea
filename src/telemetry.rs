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

/// Holds the server's log writer: dropping it writes out the lines still queued.
/// Keep it until the process ends.
pub struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// Installs the global subscriber once; later calls are no-ops. The server's
/// lines (one access-log line per request) are written by a thread of their own
/// through a buffer, flushed whenever the queue runs dry: a request formats its
/// line and hands it over, and never waits for the write, nor for another
/// worker's. Nothing is dropped: a full queue (100 000 lines) makes the
/// request wait instead.
pub fn init(settings: &Settings, target: LogTarget) -> LogGuard {
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let ansi = match target {
        LogTarget::Stdout => std::io::stdout().is_terminal(),
        LogTarget::Stderr => std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let stdout = || {
        tracing_appender::non_blocking::NonBlockingBuilder::default()
            .lossy(false)
            .buffered_lines_limit(100_000)
            .thread_name("unicontacts-log")
            .finish(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stdout(),
            ))
    };
    let (result, guard) = match (settings.log_format, target) {
        (LogFormat::Json, LogTarget::Stdout) => {
            let (writer, guard) = stdout();
            (builder.json().with_writer(writer).try_init(), Some(guard))
        }
        (LogFormat::Json, LogTarget::Stderr) => {
            (builder.json().with_writer(|| AboveBar).try_init(), None)
        }
        (LogFormat::Text, LogTarget::Stdout) => {
            let (writer, guard) = stdout();
            (builder.with_writer(writer).try_init(), Some(guard))
        }
        (LogFormat::Text, LogTarget::Stderr) => (builder.with_writer(|| AboveBar).try_init(), None),
    };
    // Already installed (tests build several apps in one process): keep the first.
    if result.is_err() {
        return LogGuard(None);
    }
    LogGuard(guard)
}

/// The progress bar a command draws on the terminal, if any.
static BAR: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

fn bar() -> Option<indicatif::ProgressBar> {
    BAR.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Makes `bar` the one log lines are printed above (`None`: no bar any more).
pub fn show_bar(bar: Option<indicatif::ProgressBar>) {
    *BAR.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// Prints a line to stderr above the progress bar (the bar is taken away while
/// the line is written, then drawn again below it), so no line shares the bar's.
pub fn eprint_above_bar(line: &str) {
    use std::io::Write;
    let _ = AboveBar.write_all(format!("{line}\n").as_bytes());
}

/// Stderr for log lines: each event is one write, made with the bar suspended.
struct AboveBar;

impl std::io::Write for AboveBar {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match bar() {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
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
