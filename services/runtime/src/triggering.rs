//! Which events reach the runtime's consumer group (which of them start automations is the
//! platform's rule, [`refract_core::platform::triggers_automations`]). Shared by the subscription (opened with the state), the consumer
//! and the metrics, so it sits below all three.

/// The consumer group every runtime instance reads work through.
pub(crate) const GROUP: &str = "runtime";

/// Event types the `runtime` group never needs: none may trigger an automation and the
/// consumer does nothing else with them, so the broker skips them before decoding (half of a
/// busy runtime's stream is its own `runtime.automations.executed`).
pub(crate) const NOT_CONSUMED: &[&str] = &[
    "gateway.*",
    "events.*",
    "apikeys.*",
    "error",
    "usage",
    "runtime.automations.*",
    "runtime.waits.*",
    "runtime.contexts.*",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::APP_EVENTS;
    use refract_core::platform::{
        TRIGGERING as TRIGGERING_SYSTEM_EVENTS, triggers_automations as is_triggering,
    };

    #[test]
    fn system_events_do_not_trigger_except_the_listed_ones() {
        assert!(is_triggering("orders.created"));
        assert!(is_triggering("workspaces.configured"));
        assert!(is_triggering("runtime.interactions.triggered"));
        assert!(!is_triggering("runtime.automations.executed"));
        assert!(!is_triggering("workspaces.automations.created"));
        assert!(!is_triggering("error"));
        assert!(is_triggering("workspaces-like.custom"));
    }

    #[test]
    fn the_group_skips_only_types_that_trigger_nothing() {
        let consumed = refract_broker::TypeFilter::except(NOT_CONSUMED);
        for ty in TRIGGERING_SYSTEM_EVENTS.iter().chain(APP_EVENTS).chain(&[
            "orders.created",
            "workspaces.automations.created",
            "workspaces.automations.updated",
            "errors.custom",
            "usage-report",
        ]) {
            assert!(consumed.matches(ty), "{ty} must reach the group");
        }
        for ty in [
            "gateway.requests.failed",
            "events.sockets.connected",
            "apikeys.created",
            "error",
            "usage",
            "runtime.automations.executed",
            "runtime.automations.scheduled",
            "runtime.waits.pending",
            "runtime.waits.fulfilled",
            "runtime.contexts.updated",
        ] {
            assert!(!consumed.matches(ty), "{ty} is skipped");
            assert!(
                !is_triggering(ty),
                "{ty} is skipped, so it must trigger nothing"
            );
        }
    }
}
