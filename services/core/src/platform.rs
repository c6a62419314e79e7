//! What belongs to the platform: the services that publish platform events, the event types
//! only they may publish, and how a consumer tells their events from a tenant's.
//!
//! Two rules protect every consumer of platform events (`workspaces.deleted` erases a
//! workspace's history, `workspaces.automations.*` feed the runtime's index, `apps.*` reload
//! and run app instances in every installing workspace):
//!
//! 1. No tenant emits a reserved type: [`check_emittable`] is called by every path a client
//!    or a guest emits through (the events service's emit, the runtime's bus).
//! 2. A consumer acts on a platform event only when [`Event::published_by`] the service that
//!    owns it: stamped by that service (`source.host.service`) and not emitted by a run.

use crate::event::{Event, EventType, type_is_under};

/// `source.host.service` of the events each platform service publishes.
pub mod service {
    /// The workspaces service: `workspaces.*` and `apps.*`.
    pub const WORKSPACES: &str = "workspaces";
    /// The runtime: `runtime.*`, and the events of runs (their emits included).
    pub const RUNTIME: &str = "runtime";
    /// The gateway: `gateway.*`.
    pub const GATEWAY: &str = "gateway";
}

/// Platform event types that a consumer acts on beyond triggering automations.
pub mod types {
    /// Deletes the workspace's history and forgets its automations.
    pub const WORKSPACES_DELETED: &str = "workspaces.deleted";
    pub const WORKSPACES_UPDATED: &str = "workspaces.updated";
    pub const WORKSPACES_CONFIGURED: &str = "workspaces.configured";
    pub const AUTOMATIONS_CREATED: &str = "workspaces.automations.created";
    pub const AUTOMATIONS_UPDATED: &str = "workspaces.automations.updated";
    pub const AUTOMATIONS_DELETED: &str = "workspaces.automations.deleted";
    pub const COMPONENTS_UPLOADED: &str = "workspaces.components.uploaded";
    pub const APPS_INSTALLED: &str = "workspaces.apps.installed";
    pub const APPS_CONFIGURED: &str = "workspaces.apps.configured";
    pub const APPS_UNINSTALLED: &str = "workspaces.apps.uninstalled";
    pub const APPS_PUBLISHED: &str = "apps.published";
    pub const APPS_DELETED: &str = "apps.deleted";
    /// An error report: the platform's, or a run's own (automation-dsl §3.4).
    pub const ERROR: &str = "error";
    /// A run's fetch answered 4xx/5xx (automation-dsl §3.6).
    pub const FETCH_FAILED: &str = "runtime.fetch.failed";
}

/// Type namespaces only the platform publishes (http-api §7.2).
pub const RESERVED_NAMESPACES: &[&str] = &[
    "gateway",
    "workspaces",
    "apps",
    "apikeys",
    "runtime",
    "events",
];

/// Single types only the platform publishes (http-api §7.2); automations may still report
/// their own `error` (see [`RUN_REPORTS`]).
pub const RESERVED_TYPES: &[&str] = &[types::ERROR, "usage"];

/// Reserved types a run emits about itself (automation-dsl §3.4, §3.6, §6.3): its `error`
/// reports and the `runtime.fetch.failed` of its own fetches. No consumer acts on them; they
/// only trigger automations of the run's own workspace, like any event it may emit.
pub const RUN_REPORTS: &[&str] = &[types::ERROR, types::FETCH_FAILED];

/// Who, other than the platform, asks to publish an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emitter {
    /// A user, API key or session, over HTTP or a WebSocket.
    Client,
    /// A run (a component's or the DSL interpreter's `emit`), after its app instance prefix.
    Automation,
}

/// A tenant asked to publish a type only the platform publishes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{event_type} is a system event type: only the platform emits it")]
pub struct ReservedType {
    pub event_type: String,
}

impl ReservedType {
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::Forbidden
    }
}

impl EventType {
    /// Whether this type is the platform's own: in a reserved namespace, or a reserved type.
    pub fn is_reserved(&self) -> bool {
        is_reserved(self.as_str())
    }
}

/// [`EventType::is_reserved`] for a type read as text.
pub fn is_reserved(event_type: &str) -> bool {
    RESERVED_TYPES.contains(&event_type)
        || RESERVED_NAMESPACES
            .iter()
            .any(|ns| type_is_under(event_type, ns))
}

/// The one check every tenant emit passes: refuses reserved types, except a run's reports
/// about itself ([`RUN_REPORTS`]).
pub fn check_emittable(event_type: &EventType, by: Emitter) -> Result<(), ReservedType> {
    let t = event_type.as_str();
    if by == Emitter::Automation && RUN_REPORTS.contains(&t) {
        return Ok(());
    }
    if is_reserved(t) {
        return Err(ReservedType {
            event_type: t.to_owned(),
        });
    }
    Ok(())
}

/// Whether an app instance slug may be used: events of the instance get its slug as a
/// prefix, so an instance named like a reserved namespace could only emit reserved types and
/// would receive the platform's events as its own.
pub fn is_reserved_namespace(slug: &str) -> bool {
    RESERVED_NAMESPACES
        .iter()
        .any(|ns| ns.eq_ignore_ascii_case(slug))
        || RESERVED_TYPES.iter().any(|t| t.eq_ignore_ascii_case(slug))
}

impl Event {
    /// Whether `service` published this event itself: stamped by it and not emitted by a run.
    /// Consumers of platform events act only on those, whatever type a tenant managed to send.
    pub fn published_by(&self, service: &str) -> bool {
        self.source
            .host
            .as_ref()
            .is_some_and(|h| h.service == service)
            && self.source.automation_slug.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SourceHost;
    use serde_json::Map;

    fn ty(t: &str) -> EventType {
        EventType::new(t).unwrap()
    }

    #[test]
    fn reserved_namespaces_and_types_are_refused_to_clients() {
        for t in [
            "workspaces.deleted",
            "workspaces.automations.updated",
            "apps.published",
            "runtime",
            "gateway.login.succeeded",
            "events.x",
            "apikeys.created",
            "error",
            "usage",
        ] {
            assert_eq!(
                check_emittable(&ty(t), Emitter::Client),
                Err(ReservedType {
                    event_type: t.into()
                }),
                "{t}"
            );
            assert!(ty(t).is_reserved(), "{t}");
        }
        for t in [
            "orders.created",
            "workspaces-like.custom",
            "appsx",
            "errors",
            "crm.workspaces.deleted",
            "Workspaces.deleted",
        ] {
            assert_eq!(check_emittable(&ty(t), Emitter::Client), Ok(()), "{t}");
        }
    }

    #[test]
    fn automations_may_report_errors_but_not_emit_platform_events() {
        assert_eq!(check_emittable(&ty("error"), Emitter::Automation), Ok(()));
        assert_eq!(
            check_emittable(&ty("runtime.fetch.failed"), Emitter::Automation),
            Ok(())
        );
        assert!(check_emittable(&ty("runtime.fetch.failed"), Emitter::Client).is_err());
        assert!(check_emittable(&ty("runtime.automations.executed"), Emitter::Automation).is_err());
        assert!(check_emittable(&ty("events.userTopics.joined"), Emitter::Automation).is_err());
        assert!(check_emittable(&ty("usage"), Emitter::Automation).is_err());
        assert!(check_emittable(&ty("workspaces.deleted"), Emitter::Automation).is_err());
        assert!(check_emittable(&ty("apps.published"), Emitter::Automation).is_err());
        assert_eq!(
            check_emittable(&ty("crm.apps.published"), Emitter::Automation),
            Ok(())
        );
    }

    #[test]
    fn instance_slugs_named_like_a_namespace_are_reserved() {
        assert!(is_reserved_namespace("workspaces"));
        assert!(is_reserved_namespace("Apps"));
        assert!(is_reserved_namespace("runtime"));
        assert!(!is_reserved_namespace("crm"));
    }

    #[test]
    fn only_the_owning_service_outside_any_run_publishes() {
        let mut event = Event::new(ty("workspaces.deleted"), None, Map::new());
        assert!(
            !event.published_by(service::WORKSPACES),
            "no host: a client emit"
        );
        event.source.host = Some(SourceHost {
            service: service::RUNTIME.into(),
            replica: None,
        });
        assert!(!event.published_by(service::WORKSPACES), "another service");
        event.source.host = Some(SourceHost {
            service: service::WORKSPACES.into(),
            replica: None,
        });
        assert!(event.published_by(service::WORKSPACES));
        event.source.host = Some(SourceHost {
            service: service::RUNTIME.into(),
            replica: Some("r1".into()),
        });
        event.source.automation_slug = Some("evil".into());
        assert!(
            !event.published_by(service::RUNTIME),
            "a run's emit is not the runtime's"
        );
    }
}
