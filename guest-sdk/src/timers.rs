//! Pausing a run (world 0.1.6): the pause counts against the run's wall clock, never against
//! its CPU budget (a busy loop or `std::thread::sleep` would spend that).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! // Pace calls to a rate-limited API.
//! if !refract_sdk::timers::sleep(Duration::from_millis(500)) {
//!     // Too little wall clock is left for the pause: stop instead of running unpaced.
//! }
//! ```

use std::time::Duration;

use crate::__bindings::refract::automation::timers as host;

/// Pauses the run for `pause` (whole milliseconds, at most `u32::MAX`) and returns `true`;
/// returns `false` at once when the pause would not end before the run's wall clock (less a
/// tenth of it, at most 1 s) runs out.
pub fn sleep(pause: Duration) -> bool {
    host::sleep(u32::try_from(pause.as_millis()).unwrap_or(u32::MAX))
}
