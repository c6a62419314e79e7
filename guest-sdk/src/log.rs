//! Log lines, tagged by the host with workspace, automation, run and correlation ids.
//!
//! Long messages are truncated; a run that logs too much has its extra lines dropped (and
//! counted), never fails. The crate-level macros [`trace!`](macro@crate::trace),
//! [`debug!`](macro@crate::debug), [`info!`](macro@crate::info), [`warn!`](macro@crate::warn) and
//! [`error!`](macro@crate::error) take `format!` arguments.

use crate::__bindings::refract::automation::logging as host;

/// A log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the run survived.
    Warn,
    /// A failure.
    Error,
}

impl Level {
    fn to_raw(self) -> host::Level {
        match self {
            Self::Trace => host::Level::Trace,
            Self::Debug => host::Level::Debug,
            Self::Info => host::Level::Info,
            Self::Warn => host::Level::Warn,
            Self::Error => host::Level::Error,
        }
    }
}

/// Records `message` at `level`.
pub fn log(level: Level, message: &str) {
    host::log(level.to_raw(), message);
}

/// Records `message` at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Records `message` at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Records `message` at info level.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Records `message` at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Records `message` at error level.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Logs at trace level with `format!` arguments: `refract_sdk::trace!("n = {n}")`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Trace, &::std::format!($($arg)+)) };
}

/// Logs at debug level with `format!` arguments: `refract_sdk::debug!("n = {n}")`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}

/// Logs at info level with `format!` arguments: `refract_sdk::info!("n = {n}")`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)+)) };
}

/// Logs at warn level with `format!` arguments: `refract_sdk::warn!("n = {n}")`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)+)) };
}

/// Logs at error level with `format!` arguments: `refract_sdk::error!("n = {n}")`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)+)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_in_order() {
        let all = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ];
        let raw: Vec<_> = all.iter().map(|l| l.to_raw()).collect();
        assert_eq!(
            raw,
            [
                host::Level::Trace,
                host::Level::Debug,
                host::Level::Info,
                host::Level::Warn,
                host::Level::Error
            ]
        );
        assert!(Level::Warn > Level::Info);
    }
}
