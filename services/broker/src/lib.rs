//! `refract-broker`: how Refract's services talk to each other.
//!
//! Events are appended to partitioned streams (ordered per workspace); each service kind reads
//! through its own consumer group so an event is handled by one instance, while live delivery
//! and cache invalidation read in fan-out mode so every instance sees every event. Delivery is
//! at-least-once: a [`Delivery`] is acknowledged only after its handler succeeds; what a dead
//! consumer left pending is reclaimed by a live one; after [`BrokerConfig::max_deliveries`]
//! failed deliveries an entry moves to a dead-letter stream with its error.
//!
//! - [`api`]: the [`Broker`] and [`Subscriber`] traits, [`Subscription`], [`Delivery`].
//! - [`filter`]: event type filters (exact types and `prefix.*`).
//! - [`config`]: [`BrokerConfig`] and its defaults.
//! - [`memory`]: the in-process broker of the embedded mode.
//! - [`redis`]: Redis Streams (5.0+), the broker of the distributed mode.
//! - [`keys`]: every Redis key name, built in one place.
//!
//! Both implementations pass the same conformance suite (`tests/conformance.rs`). This crate
//! depends on `refract-core` only; it knows nothing of HTTP or of the services.
#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod error;
pub mod filter;
pub mod keys;
pub mod memory;
mod observe;
pub mod redis;

pub use api::GroupStats;
pub use api::{Broker, DeadLetter, Delivery, Mode, Page, Subscriber, Subscription};
pub use config::BrokerConfig;
pub use error::BrokerError;
pub use filter::TypeFilter;
pub use memory::MemoryBroker;
pub use redis::RedisBroker;

use std::sync::Arc;

/// Opens the broker named by `url`: `memory://` or `redis://host:port[/db]` (`rediss://` for
/// TLS). Fails with the list of supported schemes for anything else, and with an error naming
/// the URL when Redis does not answer.
pub async fn open(url: &str, config: BrokerConfig) -> Result<Arc<dyn Broker>, BrokerError> {
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("memory") => Ok(Arc::new(MemoryBroker::new(config))),
        Some("redis" | "rediss") => Ok(Arc::new(RedisBroker::connect(url, config).await?)),
        _ => Err(BrokerError::Config(format!(
            "unsupported broker URL {:?}: use memory:// or redis://host:port",
            redact(url)
        ))),
    }
}

/// `url` with any password replaced by `***`, for error messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_string(),
    };
    match path {
        Some(p) => format!("{scheme}://{authority}/{p}"),
        None => format!("{scheme}://{authority}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redact("redis://:s3cret@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redact("redis://u:s3cret@h"), "redis://u:***@h");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }
}
