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

/// Every event type the platform publishes (http-api §15), named once: producers stamp them
/// and consumers match on them through these constants, never through string literals.
pub mod types {
    // workspaces service: workspaces
    /// A workspace was created.
    pub const WORKSPACES_CREATED: &str = "workspaces.created";
    /// A workspace's name, description or other fields changed.
    pub const WORKSPACES_UPDATED: &str = "workspaces.updated";
    /// A workspace's `config` changed (`{config, oldConfig}`).
    pub const WORKSPACES_CONFIGURED: &str = "workspaces.configured";
    /// Deletes the workspace's history and forgets its automations.
    pub const WORKSPACES_DELETED: &str = "workspaces.deleted";
    /// A workspace was duplicated into a new one.
    pub const WORKSPACES_DUPLICATED: &str = "workspaces.duplicated";
    /// A workspace's security settings (roles, rules) changed.
    pub const SECURITY_UPDATED: &str = "workspaces.security.updated";
    /// A workspace's secrets changed (names only, never values).
    pub const SECRETS_UPDATED: &str = "workspaces.secrets.updated";
    /// A workspace version was published.
    pub const VERSIONS_PUBLISHED: &str = "workspaces.versions.published";
    /// A workspace version was deleted.
    pub const VERSIONS_DELETED: &str = "workspaces.versions.deleted";
    /// A user was given access to a workspace.
    pub const PERMISSIONS_SHARED: &str = "workspaces.permissions.shared";
    /// A user's access to a workspace was removed.
    pub const PERMISSIONS_DELETED: &str = "workspaces.permissions.deleted";
    /// A page was shared with a user.
    pub const PAGES_PERMISSIONS_SHARED: &str = "workspaces.pages.permissions.shared";
    /// A user's access to a page was removed.
    pub const PAGES_PERMISSIONS_DELETED: &str = "workspaces.pages.permissions.deleted";
    // workspaces service: automations, components, apps
    /// An automation was created; the runtime indexes its triggers.
    pub const AUTOMATIONS_CREATED: &str = "workspaces.automations.created";
    /// An automation changed; the runtime re-indexes it.
    pub const AUTOMATIONS_UPDATED: &str = "workspaces.automations.updated";
    /// An automation was deleted; the runtime forgets it.
    pub const AUTOMATIONS_DELETED: &str = "workspaces.automations.deleted";
    /// A component was uploaded (compiled and stored).
    pub const COMPONENTS_UPLOADED: &str = "workspaces.components.uploaded";
    /// An app instance was installed into a workspace.
    pub const APPS_INSTALLED: &str = "workspaces.apps.installed";
    /// An app instance's config changed.
    pub const APPS_CONFIGURED: &str = "workspaces.apps.configured";
    /// An app instance was removed from a workspace.
    pub const APPS_UNINSTALLED: &str = "workspaces.apps.uninstalled";
    /// An app version was published to the store; installing workspaces reload it.
    pub const APPS_PUBLISHED: &str = "apps.published";
    /// An app was deleted from the store.
    pub const APPS_DELETED: &str = "apps.deleted";
    /// An API key was created.
    pub const APIKEYS_CREATED: &str = "apikeys.created";
    /// An API key's rules or state changed.
    pub const APIKEYS_UPDATED: &str = "apikeys.updated";
    /// An API key was deleted.
    pub const APIKEYS_DELETED: &str = "apikeys.deleted";
    // runtime
    /// A run ended: its trigger, duration, output excerpt and error.
    pub const AUTOMATIONS_EXECUTED: &str = "runtime.automations.executed";
    /// A run failed every attempt of its retry policy and became a dead letter.
    pub const AUTOMATIONS_DEADLETTERED: &str = "runtime.automations.deadlettered";
    /// A workspace's limits were changed through the API: every runtime instance applies them.
    pub const QUOTAS_UPDATED: &str = "runtime.quotas.updated";
    /// A run was scheduled by a cron trigger or `repeat`/`schedule`.
    pub const AUTOMATIONS_SCHEDULED: &str = "runtime.automations.scheduled";
    /// A run changed a context (user, session, global) variable.
    pub const CONTEXTS_UPDATED: &str = "runtime.contexts.updated";
    /// A webhook or test run was triggered by a request.
    pub const INTERACTIONS_TRIGGERED: &str = "runtime.interactions.triggered";
    /// A run started waiting for an event.
    pub const WAITS_PENDING: &str = "runtime.waits.pending";
    /// A waiting run received its event.
    pub const WAITS_FULFILLED: &str = "runtime.waits.fulfilled";
    /// A run's fetch answered 4xx/5xx (automation-dsl §3.6).
    pub const FETCH_FAILED: &str = "runtime.fetch.failed";
    /// An error report: the platform's, or a run's own (automation-dsl §3.4).
    pub const ERROR: &str = "error";
    // events service
    /// A user topic was created.
    pub const USER_TOPICS_CREATED: &str = "events.userTopics.created";
    /// A user joined a user topic.
    pub const USER_TOPICS_JOINED: &str = "events.userTopics.joined";
    // gateway
    /// A user logged in.
    pub const LOGIN_SUCCEEDED: &str = "gateway.login.succeeded";
    /// A login attempt failed.
    pub const LOGIN_FAILED: &str = "gateway.login.failed";
    /// A user signed up.
    pub const SIGNUP_SUCCEEDED: &str = "gateway.signup.succeeded";
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

/// Platform event types that may trigger automations (automation-dsl §2.6). No other reserved
/// type does: `runtime.automations.executed` triggering a run would loop.
pub const TRIGGERING: &[&str] = &[
    types::WORKSPACES_CONFIGURED,
    types::WORKSPACES_DELETED,
    types::WORKSPACES_DUPLICATED,
    types::APPS_INSTALLED,
    types::APPS_CONFIGURED,
    types::APPS_UNINSTALLED,
    types::VERSIONS_PUBLISHED,
    types::VERSIONS_DELETED,
    types::PAGES_PERMISSIONS_SHARED,
    types::PAGES_PERMISSIONS_DELETED,
    types::APPS_PUBLISHED,
    types::APPS_DELETED,
    types::FETCH_FAILED,
    types::INTERACTIONS_TRIGGERED,
];

/// Whether an event of `event_type` may start automations: any tenant type, and the reserved
/// types listed in [`TRIGGERING`].
pub fn triggers_automations(event_type: &str) -> bool {
    TRIGGERING.contains(&event_type) || !is_reserved(event_type)
}

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
    /// The refused type.
    pub event_type: String,
}

impl ReservedType {
    /// Always [`crate::ErrorKind::Forbidden`]: the type is valid, the tenant may not use it.
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
