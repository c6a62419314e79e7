//! `refract:automation/logging`: guest log lines into the run's log ([`crate::runlog`]), which
//! bounds, redacts and traces them.

use crate::bindings::logging::{self, Host};
use crate::runlog::{LogLevel, LogSource};
use crate::store::RunCtx;

impl Host for RunCtx {
    fn log(&mut self, level: logging::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            logging::Level::Trace => LogLevel::Trace,
            logging::Level::Debug => LogLevel::Debug,
            logging::Level::Info => LogLevel::Info,
            logging::Level::Warn => LogLevel::Warn,
            logging::Level::Error => LogLevel::Error,
        };
        self.log.push(level, LogSource::Log, &message);
        Ok(())
    }
}
