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

/// Holds the server's log writer: dropping it writes out the lines still held.
/// Keep it until the process ends.
pub struct LogGuard(Option<BatchWriter>);

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.close();
        }
    }
}

/// Installs the global subscriber once; later calls are no-ops. The server's
/// lines (one access-log line per request) go through a [`BatchWriter`]: a
/// request formats its line and appends it to a shared buffer, and a thread of
/// its own writes the buffer out every few milliseconds, never waiting on, or
/// woken by, each line. Nothing is dropped: a full buffer makes the request wait.
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
        let w = BatchWriter::start(std::io::stdout());
        (w.clone(), w)
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

/// How long a log line may wait in the buffer before it is written.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(10);
/// A buffer this full is written at once, without waiting for the tick.
const FLUSH_AT: usize = 256 * 1024;
/// A buffer this full (the output cannot keep up) makes writers wait.
const HOLD_AT_MOST: usize = 8 * 1024 * 1024;

struct Batch {
    buf: Vec<u8>,
    closed: bool,
}

struct BatchShared {
    batch: std::sync::Mutex<Batch>,
    /// Wakes the writing thread: a line into an empty buffer, a full buffer, close.
    wake: std::sync::Condvar,
    /// Wakes writers waiting for room.
    room: std::sync::Condvar,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Log lines appended to one buffer and written out by a thread of its own at
/// most [`FLUSH_EVERY`] later (sooner once [`FLUSH_AT`] bytes wait). Unlike a
/// channel to a writer thread, a line does not wake the thread: only the first
/// line of a batch does, so at thousands of requests a second the log costs a
/// wake-up and a write per batch, not per line.
#[derive(Clone)]
pub struct BatchWriter(std::sync::Arc<BatchShared>);

impl BatchWriter {
    pub fn start<W: std::io::Write + Send + 'static>(out: W) -> Self {
        let shared = std::sync::Arc::new(BatchShared {
            batch: std::sync::Mutex::new(Batch {
                buf: Vec::with_capacity(FLUSH_AT),
                closed: false,
            }),
            wake: std::sync::Condvar::new(),
            room: std::sync::Condvar::new(),
            thread: std::sync::Mutex::new(None),
        });
        let writer = Self(shared.clone());
        let handle = std::thread::Builder::new()
            .name("unicontacts-log".into())
            .spawn(move || Self::write_out(&shared, out));
        if let Ok(handle) = handle {
            *writer.0.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        }
        writer
    }

    fn write_out<W: std::io::Write>(shared: &BatchShared, mut out: W) {
        let lock = || shared.batch.lock().unwrap_or_else(|e| e.into_inner());
        let mut spare: Vec<u8> = Vec::with_capacity(FLUSH_AT);
        loop {
            let mut batch = lock();
            while batch.buf.is_empty() && !batch.closed {
                batch = shared.wake.wait(batch).unwrap_or_else(|e| e.into_inner());
            }
            // Let the batch gather, unless it is already big or the end has come.
            if batch.buf.len() < FLUSH_AT && !batch.closed {
                batch = shared
                    .wake
                    .wait_timeout(batch, FLUSH_EVERY)
                    .map(|(b, _)| b)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            std::mem::swap(&mut batch.buf, &mut spare);
            let closed = batch.closed && spare.is_empty();
            drop(batch);
            shared.room.notify_all();
            if closed {
                let _ = out.flush();
                return;
            }
            let _ = out.write_all(&spare);
            let _ = out.flush();
            spare.clear();
            if spare.capacity() > 4 * FLUSH_AT {
                spare.shrink_to(FLUSH_AT);
            }
        }
    }

    /// Writes out what is held and stops the thread.
    fn close(&self) {
        self.0
            .batch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        self.0.wake.notify_all();
        let handle = self
            .0
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

impl std::io::Write for BatchWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let shared = &self.0;
        let mut batch = shared.batch.lock().unwrap_or_else(|e| e.into_inner());
        while batch.buf.len() >= HOLD_AT_MOST && !batch.closed {
            batch = shared.room.wait(batch).unwrap_or_else(|e| e.into_inner());
        }
        let before = batch.buf.len();
        batch.buf.extend_from_slice(line);
        let after = batch.buf.len();
        drop(batch);
        // Only the first line of a batch, or the one that fills it, wakes the thread.
        if before == 0 || (before < FLUSH_AT && after >= FLUSH_AT) {
            shared.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_whole_and_in_order() {
        let sink = Sink::default();
        let writer = BatchWriter::start(sink.clone());
        // A line shows without closing (the thread writes on its own), also
        // once the thread has gone idle after a batch.
        for line in ["first\n", "second\n", "third\n"] {
            let before = sink.0.lock().expect("sink").len();
            writer.clone().write_all(line.as_bytes()).expect("write");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while sink.0.lock().expect("sink").len() == before {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never written: {line}"
                );
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        // Many lines from several threads, more than one buffer's worth.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        w.write_all(format!("t{t} line {i} {}\n", "x".repeat(40)).as_bytes())
                            .expect("write");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        // Closing writes out what is held.
        drop(LogGuard(Some(writer)));
        let out = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf8");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3 + 4 * 20_000);
        assert_eq!(lines[..3], ["first", "second", "third"]);
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("t{t} line ")))
                .map(|l| l.split(' ').next().expect("n").parse().expect("number"))
                .collect();
            assert_eq!(mine, (0..20_000).collect::<Vec<_>>(), "thread {t}");
        }
    }
}
