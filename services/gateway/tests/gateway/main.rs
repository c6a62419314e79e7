//! Service tests of the gateway through `router(state).oneshot(..)`, with in-memory storage and
//! broker, and fake backends that echo what they received. One test binary; a module per topic.

mod accounts;
mod credentials;
mod health;
mod routing;
mod support;
mod upstreams;
