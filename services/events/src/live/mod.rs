//! Live delivery over WebSocket (`spec/http-api.md` §8).
//!
//! - [`hub`]: this instance's sockets, delivery rules, slow consumers.
//! - [`filters`]: a socket's server-side filters.
//! - [`socket`]: the upgrade handler and the frame protocol.
//! - [`sockets`]: reconnection across the cluster: socket records in the cache and replay
//!   from the broker.
//! - [`recheck`]: open sockets re-evaluated when permissions change or the session ends.
//!
//! [`run_live`] feeds the hub from a broker fan-out subscription, so every events instance
//! delivers every event to its own sockets, and has sockets re-checked after access changes.

pub mod filters;
pub mod hub;
pub mod recheck;
pub mod socket;
pub mod sockets;

use std::future::Future;
use std::time::Duration;

use refract_broker::{Subscription, TypeFilter};

use crate::EventsState;

/// Delivers every published event to this instance's sockets until `shutdown`.
pub async fn run_live(state: EventsState, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut sub = loop {
        match state
            .broker
            .subscribe(Subscription::fan_out(TypeFilter::all()))
            .await
        {
            Ok(sub) => break sub,
            Err(error) => {
                tracing::warn!(%error, "events: live subscription failed; retrying");
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let (rechecks, rechecking) = recheck::start(state.clone());
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            next = sub.next() => match next {
                Ok(delivery) => {
                    state.hub.dispatch(&delivery.event);
                    if let Some(workspace) = crate::readers::changes_access(&delivery.event) {
                        rechecks.request(workspace);
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "events: broker closed; live delivery stops");
                    break;
                }
            },
        }
    }
    rechecking.abort();
}
