//! Guest stdout/stderr: each complete line becomes a `tracing` event tagged with the run; stderr
//! is also kept (up to the log budget) so a Rust panic message can be reported with the trap.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use refract_secrets::Redactor;

use crate::runlog::{LogLevel, LogSource, RunLog};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug)]
struct PipeState {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// Everything kept so far (stderr only).
    kept: Vec<u8>,
    budget: usize,
    max_line: usize,
    dropped: u64,
}

/// A write-only pipe that never fails the guest: over budget, bytes are dropped and counted.
#[derive(Clone)]
pub(crate) struct LogPipe {
    stream: Stream,
    /// Where each complete line goes (redacted there).
    log: RunLog,
    /// Secret values never reach what stderr keeps for a trap message.
    redactor: Redactor,
    state: Arc<Mutex<PipeState>>,
}

impl LogPipe {
    pub(crate) fn new(
        stream: Stream,
        log: RunLog,
        redactor: Redactor,
        budget: usize,
        max_line: usize,
    ) -> Self {
        let state = PipeState {
            line: Vec::new(),
            kept: Vec::new(),
            budget,
            max_line,
            dropped: 0,
        };
        LogPipe {
            stream,
            log,
            redactor,
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let take = bytes.len().min(st.budget);
        st.dropped += (bytes.len() - take) as u64;
        st.budget -= take;
        let bytes = &bytes[..take];
        if self.stream == Stream::Stderr {
            st.kept.extend_from_slice(bytes);
        }
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut st.line);
                self.emit(&line);
            } else if st.line.len() < st.max_line {
                st.line.push(b);
            }
        }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        match self.stream {
            Stream::Stdout => self.log.push(LogLevel::Info, LogSource::Stdout, &text),
            Stream::Stderr => self.log.push(LogLevel::Warn, LogSource::Stderr, &text),
        }
    }

    /// Flushes the unfinished line and returns what stderr kept and how many bytes were dropped.
    pub(crate) fn finish(&self) -> (String, u64) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let line = std::mem::take(&mut st.line);
        if !line.is_empty() {
            self.emit(&line);
        }
        let kept = String::from_utf8_lossy(&st.kept).into_owned();
        (self.redactor.redact_text(kept), st.dropped)
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The message of a Rust panic in what the guest wrote to stderr, if it panicked.
pub(crate) fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.find("panicked at")?;
    let after = &stderr[start..];
    // `panicked at src/lib.rs:10:5:\n<message>\nnote: run with ...`
    let body = after.split_once('\n').map(|(_, rest)| rest).unwrap_or("");
    let message: Vec<&str> = body
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    let message = message.join("\n").trim().to_owned();
    Some(if message.is_empty() {
        after.lines().next().unwrap_or("panic").to_owned()
    } else {
        message
    })
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn extracts_rust_panic_message() {
        let stderr = "thread '<unnamed>' panicked at src/lib.rs:10:5:\nboom: 42\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(panic_message(stderr).as_deref(), Some("boom: 42"));
        assert_eq!(panic_message("just a line\n"), None);
    }
}
