//! `refract:automation/secrets`: the workspace's secrets from the run's snapshot, which the
//! runtime took when the run started. No I/O: a run reads them as they were then.

use crate::bindings::secrets::Host;
use crate::store::RunCtx;

impl Host for RunCtx {
    fn get(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.secrets.get(&name).map(ToString::to_string))
    }
}
