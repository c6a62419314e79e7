//! `refract:automation/logging`: guest log lines into `tracing`, tagged with the run.

use tracing::Level;

use crate::bindings::logging::{self, Host};
use crate::store::RunCtx;

impl Host for RunCtx {
    fn log(&mut self, level: logging::Level, message: String) -> wasmtime::Result<()> {
        let budget = self.limits.max_log_bytes;
        if self.log_bytes >= budget {
            self.logs_dropped = self.logs_dropped.saturating_add(1);
            return Ok(());
        }
        let mut message = message;
        let max_line = self.limits.max_log_line;
        if message.len() > max_line {
            let mut cut = max_line;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.log_bytes += message.len();
        let level = match level {
            logging::Level::Trace => Level::TRACE,
            logging::Level::Debug => Level::DEBUG,
            logging::Level::Info => Level::INFO,
            logging::Level::Warn => Level::WARN,
            logging::Level::Error => Level::ERROR,
        };
        let r = &self.info;
        macro_rules! line {
            ($lvl:expr) => {
                tracing::event!(
                    target: "refract::guest", $lvl, run_id = %r.run_id, workspace_id = %r.workspace_id,
                    automation = %r.automation_slug, correlation_id = %r.correlation_id, "{message}"
                )
            };
        }
        match level {
            Level::TRACE => line!(Level::TRACE),
            Level::DEBUG => line!(Level::DEBUG),
            Level::INFO => line!(Level::INFO),
            Level::WARN => line!(Level::WARN),
            _ => line!(Level::ERROR),
        }
        Ok(())
    }
}
