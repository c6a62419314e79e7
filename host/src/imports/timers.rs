//! `refract:automation/timers`: a pause that spends the run's wall clock, counted as I/O so it
//! never spends its CPU budget; refused when it would outlast the run.

use std::time::Duration;

use crate::bindings::timers::Host;
use crate::store::RunCtx;

impl Host for RunCtx {
    async fn sleep(&mut self, ms: u32) -> wasmtime::Result<bool> {
        let pause = Duration::from_millis(u64::from(ms));
        if pause > self.time_left() {
            return Ok(false);
        }
        self.io("sleep", tokio::time::sleep(pause)).await;
        Ok(true)
    }
}
