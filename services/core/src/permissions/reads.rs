//! Who may read an event (`spec/http-api.md` §9.1): the one rule behind history, search,
//! long-polling and live delivery, so no read path can apply a rule of its own.
//!
//! A reader is a principal's [`Grant`] in the workspace, the workspace's [`Authorizations`]
//! and who it is (user, session, the user topics it joined). It reads an event when the event
//! is addressed to it (`source.userId`, `target.userId`, `target.sessionId`, a joined
//! `target.userTopic`) or when [`Grant::allows`] grants `read events` on it: built-in roles,
//! custom-role rules and API-key rules with their conditions, public rules, deny rules last.
//! Nobody reads [`UNREADABLE`] types.
//!
//! Live delivery adds its own routing on top (a targeted event goes only to its target), which
//! narrows what a reader receives, never widens it.

use crate::platform::types;
use std::collections::HashSet;

use serde_json::Value;

use super::{Action, Authorizations, Grant, PermissionRule, Subject};
use crate::{Event, SessionId, UserId};

/// Event types nobody reads, whatever their rules (§9.1): they carry run-scope context values.
pub const UNREADABLE: &[&str] = &[types::CONTEXTS_UPDATED];

/// A principal as an event reader in one workspace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventReader {
    /// What the principal holds in the workspace (role, superadmin).
    pub grant: Grant,
    /// The workspace's roles and rules its reads are checked against.
    pub rules: Authorizations,
    /// The principal's user: events targeted at them are theirs to read.
    pub user: Option<UserId>,
    /// The principal's session: events targeted at it are theirs to read.
    pub session: Option<SessionId>,
    /// The user topics the principal joined in the workspace.
    pub topics: HashSet<String>,
}

impl EventReader {
    /// Whether the reader may read `event`. `doc` caches the event as JSON, built only when a
    /// rule's conditions need it, so one event checked for many readers is serialized once.
    pub fn may_read(&self, event: &Event, doc: &mut Option<Value>) -> bool {
        if UNREADABLE.contains(&event.event_type.as_str()) {
            return false;
        }
        if self.addressed(event) {
            return true;
        }
        if !self.conditions_apply() {
            return self
                .grant
                .allows(&self.rules, Action::Read, Subject::Events, &Value::Null);
        }
        let doc = doc.get_or_insert_with(|| serde_json::to_value(event).unwrap_or(Value::Null));
        self.grant
            .allows(&self.rules, Action::Read, Subject::Events, doc)
    }

    /// Whether the reader reads every event but the [`UNREADABLE`] ones: a superadmin, or a
    /// built-in role that no deny rule narrows. Then a count of matching events is a count of
    /// readable ones, and the history index can count them.
    pub fn reads_everything(&self) -> bool {
        self.grant.superadmin
            || (self.grant.role.is_some()
                && self
                    .grant
                    .allows(&self.rules, Action::Read, Subject::Events, &Value::Null)
                && !self.read_rules().any(|r| r.inverted))
    }

    fn addressed(&self, event: &Event) -> bool {
        let target = event.target.as_ref();
        let user = self.user.as_ref();
        (user.is_some()
            && (event.source.user_id.as_ref() == user
                || target.and_then(|t| t.user_id.as_ref()) == user))
            || (self.session.is_some()
                && target.and_then(|t| t.session_id.as_ref()) == self.session.as_ref())
            || target
                .and_then(|t| t.user_topic.as_ref())
                .is_some_and(|topic| self.topics.contains(topic))
    }

    /// The rules that can decide `read events` for this principal (its roles', its API key's,
    /// everyone's), conditions aside.
    fn read_rules(&self) -> impl Iterator<Item = &PermissionRule> {
        self.rules
            .rules
            .iter()
            .filter(|rule| {
                rule.role
                    .as_ref()
                    .is_none_or(|names| names.contains(|n| self.grant.has_role(n)))
            })
            .chain(self.grant.api_key_rules.iter().flatten())
            .filter(|rule| {
                rule.action
                    .contains(|a| *a == Action::Read || *a == Action::Manage)
                    && rule.subject.contains(|s| *s == Subject::Events)
            })
    }

    /// Whether some rule's conditions could change the decision (else the event's JSON is
    /// not needed).
    fn conditions_apply(&self) -> bool {
        !self.grant.superadmin && self.read_rules().any(|r| r.conditions.is_some())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::model::Role;
    use crate::{EventType, Target, WorkspaceId};

    fn event(ty: &str, target: Option<Target>) -> Event {
        let mut e = Event::new(
            EventType::new(ty).expect("type"),
            Some(WorkspaceId::new("w").expect("ws")),
            Map::new(),
        );
        e.target = target;
        e
    }

    fn rules(v: Value) -> Authorizations {
        serde_json::from_value(v).expect("rules")
    }

    fn reads(reader: &EventReader, e: &Event) -> bool {
        reader.may_read(e, &mut None)
    }

    #[test]
    fn custom_roles_read_what_their_rules_allow_and_what_is_addressed_to_them() {
        let reader = EventReader {
            grant: Grant {
                custom_roles: vec!["support".into()],
                ..Grant::default()
            },
            rules: rules(json!({
                "roles": {"support": {}},
                "rules": [{"role": "support", "action": "read", "subject": "events",
                           "conditions": {"type": {"$in": ["tickets.opened"]}}}]
            })),
            user: Some(UserId::new("sam").expect("user")),
            session: Some(SessionId::new("s1").expect("session")),
            topics: HashSet::from(["ops".to_string()]),
        };
        assert!(reads(&reader, &event("tickets.opened", None)));
        assert!(!reads(&reader, &event("payroll.paid", None)));
        assert!(!reader.reads_everything());
        let to = |t: Target| event("payroll.paid", Some(t));
        assert!(reads(
            &reader,
            &to(Target {
                user_id: reader.user.clone(),
                ..Target::default()
            })
        ));
        assert!(reads(
            &reader,
            &to(Target {
                session_id: reader.session.clone(),
                ..Target::default()
            })
        ));
        assert!(reads(
            &reader,
            &to(Target {
                user_topic: Some("ops".into()),
                ..Target::default()
            })
        ));
        assert!(!reads(
            &reader,
            &to(Target {
                user_topic: Some("hr".into()),
                ..Target::default()
            })
        ));
    }

    #[test]
    fn built_in_roles_read_everything_unless_a_deny_rule_says_otherwise() {
        let viewer = EventReader {
            grant: Grant {
                role: Some(Role::Viewer),
                ..Grant::default()
            },
            ..EventReader::default()
        };
        assert!(viewer.reads_everything());
        assert!(reads(&viewer, &event("anything", None)));
        assert!(!reads(&viewer, &event("runtime.contexts.updated", None)));

        let narrowed = EventReader {
            rules: rules(
                json!({"rules": [{"role": "viewer", "action": "read", "subject": "events",
                                           "inverted": true, "conditions": {"type": "payroll.paid"}}]}),
            ),
            ..viewer
        };
        assert!(!narrowed.reads_everything());
        assert!(!reads(&narrowed, &event("payroll.paid", None)));
        assert!(reads(&narrowed, &event("tickets.opened", None)));
        let stranger = EventReader::default();
        assert!(!reads(&stranger, &event("tickets.opened", None)));
    }
}
