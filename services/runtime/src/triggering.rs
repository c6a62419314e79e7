//! Which events reach the runtime's consumer group and which of them start automations
//! (`automation-dsl.md` §2.6). Shared by the subscription (opened with the state), the consumer
//! and the metrics, so it sits below all three.

/// The consumer group every runtime instance reads work through.
pub(crate) const GROUP: &str = "runtime";

/// System event types that may trigger automations (`automation-dsl.md` §2.6); every other
/// type under a system namespace never does (`runtime.automations.executed` would loop).
pub(crate) const TRIGGERING_SYSTEM_EVENTS: &[&str] = &[
    "workspaces.configured",
    "workspaces.deleted",
    "workspaces.duplicated",
    "workspaces.apps.installed",
    "workspaces.apps.configured",
    "workspaces.apps.uninstalled",
    "workspaces.versions.published",
    "workspaces.versions.deleted",
    "workspaces.pages.permissions.shared",
    "workspaces.pages.permissions.deleted",
    "apps.published",
    "apps.deleted",
    "runtime.fetch.failed",
    "runtime.interactions.triggered",
];

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

/// Namespaces of the platform's own events: none of their types triggers, except those listed
/// in [`TRIGGERING_SYSTEM_EVENTS`].
const SYSTEM_NAMESPACES: &[&str] = &[
    "gateway",
    "workspaces",
    "runtime",
    "events",
    "apps",
    "apikeys",
];

/// Whether an event of `event_type` may start automations.
pub(crate) fn is_triggering(event_type: &str) -> bool {
    if TRIGGERING_SYSTEM_EVENTS.contains(&event_type) {
        return true;
    }
    let namespace = event_type.split('.').next().unwrap_or("");
    !(SYSTEM_NAMESPACES.contains(&namespace) || matches!(event_type, "error" | "usage"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::APP_EVENTS;

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
