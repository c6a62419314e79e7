//! A run's log as its workspace reads it: the guest's `log` lines, its stdout and stderr lines,
//! and the host's own messages about the run (a limit hit, a fetch refused, the trap that ended
//! it). Bounded per run (lines and bytes, [`Limits`](crate::Limits)); past the bound lines are
//! dropped and counted, never an error. Every kept line also goes to `tracing` for the operator,
//! tagged with the run. Secret values are redacted before a line is kept or traced.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use refract_secrets::Redactor;
use tracing::Level;

use crate::services::RunContext;

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogSource {
    /// The guest's `log` import.
    Log,
    /// A line the guest wrote to stdout.
    Stdout,
    /// A line the guest wrote to stderr.
    Stderr,
    /// The host, about the run.
    Host,
}

impl LogSource {
    /// `log`, `stdout`, `stderr` or `host`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::Log => "log",
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
            LogSource::Host => "host",
        }
    }
}

/// How important a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected the run survived.
    Warn,
    /// A failure.
    Error,
}

impl LogLevel {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One kept line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Time since the run started.
    pub at: Duration,
    /// Its level.
    pub level: LogLevel,
    /// Who wrote it.
    pub source: LogSource,
    /// The text, cut to the longest line kept, secrets redacted.
    pub message: String,
}

/// The log of one run, shared by the `log` import and the stdio pipes.
#[derive(Clone)]
pub(crate) struct RunLog(Arc<Mutex<Lines>>);

struct Lines {
    run: Arc<RunContext>,
    redactor: Redactor,
    started: Instant,
    kept: Vec<LogLine>,
    bytes: usize,
    dropped: u64,
    max_lines: usize,
    max_bytes: usize,
    max_line: usize,
}

impl RunLog {
    /// The empty log of `run`, keeping at most `max_lines` lines and `max_bytes` of text, each
    /// line cut to `max_line` bytes, with `redactor`'s values redacted.
    pub(crate) fn new(
        run: Arc<RunContext>,
        redactor: Redactor,
        started: Instant,
        max_lines: usize,
        max_bytes: usize,
        max_line: usize,
    ) -> Self {
        RunLog(Arc::new(Mutex::new(Lines {
            run,
            redactor,
            started,
            kept: Vec::new(),
            bytes: 0,
            dropped: 0,
            max_lines,
            max_bytes,
            max_line,
        })))
    }

    /// Keeps (and traces) `message`, or counts it as dropped when the log is full.
    pub(crate) fn push(&self, level: LogLevel, source: LogSource, message: &str) {
        let mut l = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if l.kept.len() >= l.max_lines || l.bytes >= l.max_bytes {
            l.dropped = l.dropped.saturating_add(1);
            return;
        }
        let mut message = l.redactor.redact_text(message.to_owned());
        let cut = l.max_line.min(l.max_bytes - l.bytes);
        if message.len() > cut {
            let mut end = cut;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        l.bytes += message.len();
        trace(&l.run, level, source, &message);
        let at = l.started.elapsed();
        l.kept.push(LogLine {
            at,
            level,
            source,
            message,
        });
    }

    /// The kept lines and how many were dropped.
    pub(crate) fn take(&self) -> (Vec<LogLine>, u64) {
        let mut l = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        (std::mem::take(&mut l.kept), l.dropped)
    }
}

/// The line as a `tracing` event for the operator, tagged with the run.
fn trace(r: &RunContext, level: LogLevel, source: LogSource, message: &str) {
    let source = source.as_str();
    macro_rules! line {
        ($lvl:expr) => {
            tracing::event!(
                target: "refract::guest", $lvl, run_id = %r.run_id, workspace_id = %r.workspace_id,
                automation = %r.automation_slug, correlation_id = %r.correlation_id, source, "{message}"
            )
        };
    }
    match level {
        LogLevel::Trace => line!(Level::TRACE),
        LogLevel::Debug => line!(Level::DEBUG),
        LogLevel::Info => line!(Level::INFO),
        LogLevel::Warn => line!(Level::WARN),
        LogLevel::Error => line!(Level::ERROR),
    }
}

#[cfg(test)]
mod tests {
    use refract_core::{CorrelationId, WorkspaceId};

    use super::*;

    fn run() -> Arc<RunContext> {
        Arc::new(RunContext {
            run_id: "r1".into(),
            workspace_id: WorkspaceId::new("ws").expect("id"),
            automation_slug: "a".into(),
            correlation_id: CorrelationId::generate(),
            user_id: None,
            session_id: None,
            depth: 0,
            socket_id: None,
        })
    }

    #[test]
    fn lines_are_bounded_cut_and_redacted() {
        let log = RunLog::new(run(), Redactor::new(["s3cret"]), Instant::now(), 3, 30, 8);
        log.push(LogLevel::Info, LogSource::Log, "key=s3cret");
        log.push(LogLevel::Warn, LogSource::Stderr, "0123456789abc");
        log.push(LogLevel::Error, LogSource::Host, "third");
        log.push(LogLevel::Info, LogSource::Log, "fourth: over the line cap");
        let (lines, dropped) = log.take();
        let text: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        // 8 bytes per line at most, 3 lines.
        assert_eq!(text, ["key=REDA…", "01234567…", "third"]);
        assert_eq!(lines[1].source, LogSource::Stderr);
        assert_eq!(lines[2].level, LogLevel::Error);
        assert_eq!(dropped, 1);
        // And a byte budget for all of them.
        let log = RunLog::new(run(), Redactor::default(), Instant::now(), 100, 12, 8);
        for line in ["abcdefghij", "xyz", "more"] {
            log.push(LogLevel::Info, LogSource::Stdout, line);
        }
        let (lines, dropped) = log.take();
        let text: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(text, ["abcdefgh…", "x…"]);
        assert_eq!(dropped, 1);
    }
}
