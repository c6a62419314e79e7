//! The permission model of `spec/http-api.md` §9.1, and the one function every service uses to
//! decide a request: [`Grant::allows`].
//!
//! A principal's [`Grant`] in a workspace is what the storage layer found for it: its built-in
//! role, its custom roles, the rules of the workspace API key it presented, whether it is a
//! superadmin. The workspace's [`Authorizations`] add rules per role or for everyone. Rules are
//! `(action, subject, conditions?)`; `manage` matches every action; inverted (deny) rules are
//! applied last and win. Conditions are a small Mongo-style query over the resource the action
//! touches (an event, an automation), so a rule can say "read events of type `orders.*`".
//!
//! No I/O here: evaluation is pure, so the workspaces, events and runtime services decide the
//! same request the same way. [`reads`] applies it to events: who may read one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::Role;

pub mod reads;

/// What a rule protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", schema(as = PermissionSubject))]
pub enum Subject {
    /// The workspace itself: its settings, security and sharing.
    Workspaces,
    /// Apps installed in the workspace.
    Apps,
    /// The workspace's pages.
    Pages,
    /// The workspace's uploaded files.
    Files,
    /// The workspace's events.
    Events,
    /// The workspace's automations.
    Automations,
    /// The workspace's secrets.
    Secrets,
}

/// What a rule allows (or, inverted, denies). `Manage` stands for every action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", schema(as = PermissionAction))]
pub enum Action {
    /// Every action.
    Manage,
    /// Create a new resource.
    Create,
    /// Read a resource.
    Read,
    /// Change a resource.
    Update,
    /// Delete a resource.
    Delete,
    /// Share the workspace: give and take back roles.
    ManagePermissions,
    /// Change the workspace's security (roles, rules, API keys).
    ManageSecurity,
    /// Manage the workspace's repositories.
    ManageRepositories,
    /// Read an app's DSUL (its source description).
    ReadAppDsul,
    /// Read the workspace's usage figures.
    GetUsage,
    /// Run searches over the workspace's events.
    AggregateSearch,
    /// Run an automation.
    Execute,
    /// Run an automation as a test.
    Test,
}

/// One value or a list of them, as rules accept both (`action: read` or `action: [read]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list of values.
    Many(Vec<T>),
}

impl<T: PartialEq> OneOrMany<T> {
    fn contains(&self, wanted: impl Fn(&T) -> bool) -> bool {
        match self {
            OneOrMany::One(v) => wanted(v),
            OneOrMany::Many(vs) => vs.iter().any(wanted),
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, T> {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v).iter(),
            OneOrMany::Many(vs) => vs.iter(),
        }
    }
}

/// `PermissionRule` (§9.1). Rules without `role` apply to everyone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PermissionRule {
    /// The role or roles the rule applies to (built-in or custom); none means everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<OneOrMany<String>>,
    /// The action or actions it allows (or denies, inverted).
    pub action: OneOrMany<Action>,
    /// The subject or subjects it covers.
    pub subject: OneOrMany<Subject>,
    /// Mongo-style query the resource must match for the rule to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Value>,
    /// The rule denies instead of allowing; deny rules are applied last.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inverted: bool,
    /// Why the rule exists; informative, stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl PermissionRule {
    fn matches(&self, action: Action, subject: Subject, resource: &Value) -> bool {
        self.action
            .contains(|a| *a == action || *a == Action::Manage)
            && self.subject.contains(|s| *s == subject)
            && self
                .conditions
                .as_ref()
                .is_none_or(|c| conditions_hold(c, resource))
    }
}

/// `WorkspaceRole` (§9.1): a custom role; `auth` binds users to it by their `authData`
/// (`{provider: {conditions}}`), so an identity provider's claims can give a role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceRole {
    /// What the role is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// By identity provider name: the `authData` conditions that give a user this role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<BTreeMap<String, RoleBinding>>,
}

/// One provider's binding of a custom role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleBinding {
    /// Mongo-style query on the provider's `authData` entry of the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Value>,
}

/// A workspace's custom roles and rules (`WorkspaceSecurity.authorizations`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Authorizations {
    /// The custom roles, by name.
    #[serde(default)]
    pub roles: BTreeMap<String, WorkspaceRole>,
    /// The workspace rules, in order (later rules win).
    #[serde(default)]
    pub rules: Vec<PermissionRule>,
}

/// Role names a workspace may not define (§9.2).
pub const RESERVED_ROLE_NAMES: &[&str] = &["owner", "editor", "viewer", "superadmin", "default"];
/// Most custom roles per workspace (§9.2): bounds the work of every permission check.
pub const MAX_ROLES: usize = 100;
/// Most rules per workspace or API key (§9.2).
pub const MAX_RULES: usize = 500;

impl Authorizations {
    /// The problems of a security document, as `(path, message)`; empty when valid.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.roles.len() > MAX_ROLES {
            out.push(("roles".into(), format!("at most {MAX_ROLES} roles")));
        }
        for name in self.roles.keys() {
            if RESERVED_ROLE_NAMES.contains(&name.as_str()) {
                out.push((format!("roles.{name}"), "is a reserved role name".into()));
            } else if name.is_empty() || name.len() > 64 {
                out.push((
                    format!("roles.{name}"),
                    "names are 1 to 64 characters".into(),
                ));
            }
        }
        out.extend(rule_problems(&self.rules, Some(&self.roles)));
        out
    }

    /// The custom roles whose `auth` binding matches `auth_data` (provider → identity).
    pub fn bound_roles(&self, auth_data: &Value) -> Vec<String> {
        self.roles
            .iter()
            .filter(|(_, role)| {
                role.auth.as_ref().is_some_and(|bindings| {
                    bindings.iter().any(|(provider, binding)| {
                        auth_data.get(provider).is_some_and(|identity| {
                            binding
                                .conditions
                                .as_ref()
                                .is_none_or(|c| conditions_hold(c, identity))
                        })
                    })
                })
            })
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// The problems of a rule list (`roles` given: role names must exist in it or be built-in).
pub fn rule_problems(
    rules: &[PermissionRule],
    roles: Option<&BTreeMap<String, WorkspaceRole>>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if rules.len() > MAX_RULES {
        out.push(("rules".into(), format!("at most {MAX_RULES} rules")));
    }
    for (i, rule) in rules.iter().enumerate() {
        if let (Some(names), Some(roles)) = (&rule.role, roles) {
            for name in names.iter() {
                if Role::parse(name).is_none() && !roles.contains_key(name) {
                    out.push((format!("rules.{i}.role"), format!("unknown role {name:?}")));
                }
            }
        }
        if let Some(c) = &rule.conditions
            && let Err(error) = check_conditions(c)
        {
            out.push((format!("rules.{i}.conditions"), error.to_string()));
        }
    }
    out
}

impl Role {
    /// The built-in role called `name`.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "owner" => Some(Role::Owner),
            "editor" => Some(Role::Editor),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The role's name as stored and sent (`owner`, `editor`, `viewer`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// What the built-in role may do (§9.1).
    fn allows(self, action: Action, subject: Subject) -> bool {
        use Action as A;
        use Subject as S;
        match self {
            Role::Owner => true,
            Role::Editor => match subject {
                S::Workspaces => matches!(
                    action,
                    A::Read | A::Update | A::GetUsage | A::AggregateSearch
                ),
                S::Automations | S::Files | S::Pages => true,
                S::Events => matches!(action, A::Read | A::Create),
                S::Apps => matches!(action, A::Read),
                S::Secrets => false,
            },
            Role::Viewer => match subject {
                S::Workspaces => matches!(action, A::Read | A::AggregateSearch),
                S::Automations | S::Events | S::Pages | S::Files | S::Apps => {
                    matches!(action, A::Read)
                }
                S::Secrets => false,
            },
        }
    }
}

/// What a principal holds in one workspace, as found by the storage layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grant {
    /// A platform superadmin: everything, everywhere.
    pub superadmin: bool,
    /// The built-in role of its membership (direct, or through the public or a role share).
    pub role: Option<Role>,
    /// Its custom roles (by membership or by an `auth` binding).
    pub custom_roles: Vec<String>,
    /// The rules of the workspace API key presented with the request, if any. A key alone is
    /// a principal with only these rules; beside a user they add to the user's.
    pub api_key_rules: Option<Vec<PermissionRule>>,
}

impl Grant {
    /// Whether anything ties the principal to the workspace (else the workspace is hidden).
    pub fn is_member(&self) -> bool {
        self.superadmin || self.role.is_some() || !self.custom_roles.is_empty()
    }

    fn has_role(&self, name: &str) -> bool {
        self.role.is_some_and(|r| r.name() == name) || self.custom_roles.iter().any(|r| r == name)
    }

    /// THE permission check: may this principal do `action` on `subject` (described by
    /// `resource`, e.g. the event or automation as JSON) under the workspace's `rules`?
    pub fn allows(
        &self,
        rules: &Authorizations,
        action: Action,
        subject: Subject,
        resource: &Value,
    ) -> bool {
        if self.superadmin {
            return true;
        }
        let mut allowed = self.role.is_some_and(|r| r.allows(action, subject));
        let applicable = rules
            .rules
            .iter()
            .filter(|rule| {
                rule.role
                    .as_ref()
                    .is_none_or(|names| names.contains(|n| self.has_role(n)))
            })
            .chain(self.api_key_rules.iter().flatten());
        let mut denied = false;
        for rule in applicable {
            if rule.matches(action, subject, resource) {
                if rule.inverted {
                    denied = true;
                } else {
                    allowed = true;
                }
            }
        }
        allowed && !denied
    }
}

/// Prefix of workspace API keys (§9.2): `rfk_` + 43 base64url characters (32 random bytes).
pub const API_KEY_PREFIX: &str = "rfk_";

/// A workspace API key as stored (`api_keys` collection, by id): the SHA-256 of the key, never
/// the key. Workspaces writes them; the gateway checks a presented key exists and is enabled;
/// backends evaluate its `rules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    /// The key record's id.
    pub id: String,
    /// The workspace the key belongs to.
    pub workspace_id: String,
    /// Its display name.
    pub name: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
    /// The key's last 4 characters.
    pub key_hint: String,
    /// What the key allows, evaluated by the backends like a role's rules.
    pub rules: Vec<PermissionRule>,
    /// A disabled key is refused by the gateway.
    #[serde(default)]
    pub disabled: bool,
    /// When the key was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The user id that created it.
    pub created_by: String,
}

/// Why a condition document is refused when a rule is saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The document (or a `$not`/`$and`/`$or` operand) is not an object.
    #[error("conditions must be an object")]
    NotAnObject,
    /// `$and` or `$or` was given something other than a list.
    #[error("{0} takes a list")]
    NotAList(String),
    /// An operator this evaluator does not know; it would silently never match.
    #[error("unknown operator {0}")]
    UnknownOperator(String),
}

/// Checks the operators of a condition document without a resource, so bad rules are refused
/// when saved instead of silently never matching.
pub fn check_conditions(conditions: &Value) -> Result<(), ConditionError> {
    let Value::Object(map) = conditions else {
        return Err(ConditionError::NotAnObject);
    };
    for (key, value) in map {
        match key.as_str() {
            "$and" | "$or" => match value {
                Value::Array(items) => items.iter().try_for_each(check_conditions)?,
                _ => return Err(ConditionError::NotAList(key.clone())),
            },
            "$not" => check_conditions(value)?,
            k if k.starts_with('$') => return Err(ConditionError::UnknownOperator(k.into())),
            _ => {
                if let Value::Object(ops) = value
                    && ops.keys().any(|k| k.starts_with('$'))
                {
                    for op in ops.keys() {
                        if !FIELD_OPERATORS.contains(&op.as_str()) {
                            return Err(ConditionError::UnknownOperator(op.clone()));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

const FIELD_OPERATORS: &[&str] = &[
    "$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists",
];

/// Whether `resource` satisfies `conditions` (`$eq $ne $in $nin $gt $gte $lt $lte $exists
/// $and $or $not`, dotted field paths; a plain value means `$eq`). Unknown operators fail.
pub fn conditions_hold(conditions: &Value, resource: &Value) -> bool {
    let Value::Object(map) = conditions else {
        return false;
    };
    map.iter().all(|(key, expected)| match key.as_str() {
        "$and" => expected
            .as_array()
            .is_some_and(|items| items.iter().all(|c| conditions_hold(c, resource))),
        "$or" => expected
            .as_array()
            .is_some_and(|items| items.iter().any(|c| conditions_hold(c, resource))),
        "$not" => !conditions_hold(expected, resource),
        k if k.starts_with('$') => false,
        path => field_holds(lookup(resource, path), expected),
    })
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn field_holds(actual: Option<&Value>, expected: &Value) -> bool {
    match expected {
        Value::Object(ops) if ops.keys().any(|k| k.starts_with('$')) => {
            ops.iter().all(|(op, arg)| operator_holds(actual, op, arg))
        }
        _ => actual == Some(expected),
    }
}

fn operator_holds(actual: Option<&Value>, op: &str, arg: &Value) -> bool {
    let in_list = |list: &Value| {
        list.as_array()
            .is_some_and(|items| actual.is_some_and(|a| items.contains(a)))
    };
    let compare = |want: fn(std::cmp::Ordering) -> bool| match (actual, arg) {
        (Some(Value::Number(a)), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b))
            .is_some_and(want),
        (Some(Value::String(a)), Value::String(b)) => want(a.as_str().cmp(b.as_str())),
        _ => false,
    };
    match op {
        "$eq" => actual == Some(arg),
        "$ne" => actual != Some(arg),
        "$in" => in_list(arg),
        "$nin" => arg.is_array() && !in_list(arg),
        "$gt" => compare(|o| o.is_gt()),
        "$gte" => compare(|o| o.is_ge()),
        "$lt" => compare(|o| o.is_lt()),
        "$lte" => compare(|o| o.is_le()),
        "$exists" => arg.as_bool() == Some(actual.is_some()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(v: Value) -> Authorizations {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn built_in_roles_follow_the_spec() {
        let none = Authorizations::default();
        let grant = |role| Grant {
            role: Some(role),
            ..Grant::default()
        };
        let ev = json!({});
        assert!(grant(Role::Owner).allows(&none, Action::ManageSecurity, Subject::Workspaces, &ev));
        assert!(grant(Role::Editor).allows(&none, Action::Update, Subject::Automations, &ev));
        assert!(!grant(Role::Editor).allows(&none, Action::Read, Subject::Secrets, &ev));
        assert!(!grant(Role::Editor).allows(&none, Action::Delete, Subject::Workspaces, &ev));
        assert!(grant(Role::Viewer).allows(&none, Action::Read, Subject::Events, &ev));
        assert!(!grant(Role::Viewer).allows(&none, Action::Update, Subject::Automations, &ev));
        assert!(!Grant::default().allows(&none, Action::Read, Subject::Workspaces, &ev));
        let admin = Grant {
            superadmin: true,
            ..Grant::default()
        };
        assert!(admin.allows(&none, Action::Delete, Subject::Workspaces, &ev));
    }

    #[test]
    fn custom_roles_public_rules_and_denials() {
        let security = rules(json!({
            "roles": { "support": { "description": "reads order events" } },
            "rules": [
                { "role": "support", "action": "read", "subject": "events",
                  "conditions": { "type": { "$in": ["orders.created", "orders.paid"] } } },
                { "action": "read", "subject": "automations" },
                { "role": ["editor"], "action": "manage", "subject": "automations",
                  "conditions": { "slug": "billing" }, "inverted": true }
            ]
        }));
        assert!(security.problems().is_empty());
        let support = Grant {
            custom_roles: vec!["support".into()],
            ..Grant::default()
        };
        assert!(support.allows(
            &security,
            Action::Read,
            Subject::Events,
            &json!({"type": "orders.paid"})
        ));
        assert!(!support.allows(
            &security,
            Action::Read,
            Subject::Events,
            &json!({"type": "users.deleted"})
        ));
        assert!(!support.allows(
            &security,
            Action::Create,
            Subject::Events,
            &json!({"type": "orders.paid"})
        ));
        // The rule without a role reaches everyone, even strangers.
        assert!(Grant::default().allows(&security, Action::Read, Subject::Automations, &json!({})));
        let editor = Grant {
            role: Some(Role::Editor),
            ..Grant::default()
        };
        assert!(editor.allows(
            &security,
            Action::Update,
            Subject::Automations,
            &json!({"slug": "other"})
        ));
        assert!(!editor.allows(
            &security,
            Action::Update,
            Subject::Automations,
            &json!({"slug": "billing"})
        ));
    }

    #[test]
    fn api_key_rules_are_the_keys_whole_power() {
        let none = Authorizations::default();
        let key: Vec<PermissionRule> =
            serde_json::from_value(json!([{ "action": "read", "subject": "events" }])).unwrap();
        let grant = Grant {
            api_key_rules: Some(key),
            ..Grant::default()
        };
        assert!(grant.allows(&none, Action::Read, Subject::Events, &json!({"type": "a"})));
        assert!(!grant.allows(&none, Action::Update, Subject::Automations, &json!({})));
        assert!(!grant.allows(&none, Action::Create, Subject::Events, &json!({})));
    }

    #[test]
    fn conditions_cover_the_documented_operators() {
        let r = json!({"type": "orders.paid", "payload": {"amount": 12, "tags": ["a"]}});
        let holds = |c: Value| conditions_hold(&c, &r);
        assert!(holds(json!({"payload.amount": {"$gte": 10, "$lt": 13}})));
        assert!(holds(
            json!({"$or": [{"type": "x"}, {"payload.tags.0": "a"}]})
        ));
        assert!(holds(
            json!({"$not": {"type": "x"}, "payload.missing": {"$exists": false}})
        ));
        assert!(holds(
            json!({"type": {"$nin": ["a", "b"]}, "payload.amount": {"$ne": 3}})
        ));
        assert!(!holds(
            json!({"$and": [{"type": "orders.paid"}, {"payload.amount": {"$gt": 12}}]})
        ));
        assert!(!holds(json!({"type": {"$regex": "."}})));
        assert!(check_conditions(&json!({"type": {"$regex": "."}})).is_err());
        assert!(check_conditions(&json!({"$or": {}})).is_err());
    }

    #[test]
    fn bad_security_documents_are_explained() {
        let bad = rules(json!({
            "roles": { "owner": {} },
            "rules": [{ "role": "ghost", "action": "read", "subject": "events" }]
        }));
        let paths: Vec<String> = bad.problems().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            vec!["roles.owner".to_string(), "rules.0.role".to_string()]
        );
        assert!(
            serde_json::from_value::<Authorizations>(
                json!({"rules": [{"action": "fly", "subject": "events"}]})
            )
            .is_err()
        );
    }

    #[test]
    fn roles_bind_by_identity_provider_claims() {
        let security = rules(json!({
            "roles": { "staff": { "auth": { "corp": { "conditions": { "email_verified": true } } } } }
        }));
        assert_eq!(
            security.bound_roles(&json!({"corp": {"id": "s1", "email_verified": true}})),
            vec!["staff".to_string()]
        );
        assert!(
            security
                .bound_roles(&json!({"corp": {"id": "s1"}}))
                .is_empty()
        );
        assert!(
            security
                .bound_roles(&json!({"prismeai": {"id": "u"}}))
                .is_empty()
        );
    }
}

/// The caller, as the gateway's trusted headers describe it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Principal<'a> {
    /// The authenticated user, if any.
    pub user_id: Option<&'a str>,
    /// The `x-prismeai-api-key` the client sent (the gateway checked it exists and is enabled).
    pub api_key: Option<&'a str>,
    /// A platform super-admin: every workspace check passes.
    pub superadmin: bool,
    /// `user.authData` (provider → identity), for custom roles bound by claims.
    pub auth_data: Option<&'a Value>,
}
