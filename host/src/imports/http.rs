//! `refract:automation/http`: fetch, through [`crate::egress`].

use crate::bindings::http::{FetchError, Host, Request, Response};
use crate::egress::{self, FetchLimits, FetchRequest};
use crate::runlog::{LogLevel, LogSource};
use crate::store::{Cap, HostFuture, RunCtx, refused};

impl Host for RunCtx {
    async fn fetch(&mut self, request: Request) -> wasmtime::Result<Result<Response, FetchError>> {
        let call = self.fetch_call(request)?;
        Ok(self.io("fetch", call).await)
    }
}

impl RunCtx {
    /// Checks and counts a fetch (a trap only for a guest that keeps calling after the run's
    /// cap refused it); the request, to be awaited now or later.
    pub(crate) fn fetch_call(
        &mut self,
        request: Request,
    ) -> wasmtime::Result<HostFuture<Result<Response, FetchError>>> {
        let max = self.limits.max_fetches;
        if self.fetches >= max {
            self.refuse(Cap::Fetches, "fetch", max)?;
            return Ok(refused(FetchError::LimitExceeded(max)));
        }
        self.fetches += 1;
        let limits = FetchLimits {
            total_timeout: self.limits.fetch_timeout,
            max_bytes: self.limits.fetch_max_bytes,
            max_redirects: self.limits.fetch_max_redirects,
        };
        let req = FetchRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        let (client, policy, log) = (self.egress.clone(), self.policy.clone(), self.log.clone());
        Ok(Box::pin(async move {
            let result = client.fetch(&policy, limits, req).await;
            if let Err(e) = &result {
                log.push(
                    LogLevel::Warn,
                    LogSource::Host,
                    &format!("fetch refused or failed: {e}"),
                );
            }
            result
                .map(|r| Response {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                })
                .map_err(|e| match e {
                    egress::FetchError::Denied(m) => FetchError::Denied(m),
                    egress::FetchError::Timeout => FetchError::Timeout,
                    egress::FetchError::TooLarge(n) => FetchError::TooLarge(n),
                    egress::FetchError::ConnectionFailed(m) => FetchError::ConnectionFailed(m),
                    egress::FetchError::InvalidRequest(m) => FetchError::InvalidRequest(m),
                })
        }))
    }
}
