//! The workspace and automation documents (`spec/http-api.md` §4, §5), shared by the
//! workspaces service (which writes them) and the runtime (which runs them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ValidationError;

/// Workspace slugs that would collide with platform hosts.
pub const RESERVED_WORKSPACE_SLUGS: &[&str] = &[
    "platform", "api", "www", "admin", "console", "studio", "sys", "oidc",
];

/// Checks a workspace slug: a DNS label (`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`), not
/// reserved.
pub fn check_workspace_slug(slug: &str) -> Result<(), ValidationError> {
    let bytes = slug.as_bytes();
    let ok_char = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && ok_char(&bytes[0])
        && ok_char(&bytes[bytes.len() - 1])
        && bytes.iter().all(|b| ok_char(b) || *b == b'-');
    if !valid {
        return Err(ValidationError::invalid(
            "slug",
            "must be a DNS label: a-z, 0-9 and '-', 1 to 63 characters, not starting or ending with '-'",
        ));
    }
    if RESERVED_WORKSPACE_SLUGS.contains(&slug) {
        return Err(ValidationError::invalid(
            "slug",
            format!("{slug:?} is reserved"),
        ));
    }
    Ok(())
}

/// Checks an automation slug: `^[A-Za-z0-9 _-]{1,64}$`.
pub fn check_automation_slug(slug: &str) -> Result<(), ValidationError> {
    if slug.is_empty()
        || slug.len() > 64
        || !slug
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'-'))
    {
        return Err(ValidationError::invalid(
            "slug",
            "must be 1 to 64 characters of A-Z, a-z, 0-9, space, '_' or '-'",
        ));
    }
    Ok(())
}

/// A workspace's metadata (`WorkspaceMeta` plus `config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// The workspace id, generated at creation; stable across renames.
    pub id: String,
    /// The unique, DNS-label slug the workspace is addressed by in hosts and URLs.
    pub slug: String,
    /// Localized text: a string or `{lang: text}`.
    pub name: Value,
    /// Localized description: a string or `{lang: text}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Value>,
    /// URL of the workspace's picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo: Option<String>,
    /// Free-form labels for sorting and search.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// `{schema?, value?}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// When the workspace was created.
    pub created_at: DateTime<Utc>,
    /// When its metadata last changed.
    pub updated_at: DateTime<Utc>,
    /// The user id that created it.
    pub created_by: String,
}

/// How an automation is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AutomationKind {
    /// Instructions in the automation DSL, run by the interpreter.
    Dsl,
    /// A WebAssembly component uploaded for it.
    Component,
}

/// What starts an automation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Event types (exact match within the workspace).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// Cron expressions (with optional seconds and time zone, `automation-dsl.md` §2.6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<Schedule>,
    /// `true` (the slug is the endpoint name) or a custom endpoint name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
}

/// One entry of `when.schedules`: a plain cron string (UTC), or `{cron, timezone}` with an IANA
/// time zone (`automation-dsl.md` §2.6, D24). Cron has 5 fields, or 6 with leading seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Schedule {
    /// A cron expression evaluated in UTC.
    Utc(String),
    /// A cron expression evaluated in an IANA time zone (daylight saving time included).
    Zoned {
        /// The cron expression.
        cron: String,
        /// The IANA time zone it is evaluated in (e.g. `Europe/Paris`).
        timezone: String,
    },
}

impl Schedule {
    /// The cron expression.
    pub fn cron(&self) -> &str {
        match self {
            Schedule::Utc(cron) | Schedule::Zoned { cron, .. } => cron,
        }
    }

    /// The IANA time zone name; `None` means UTC.
    pub fn timezone(&self) -> Option<&str> {
        match self {
            Schedule::Utc(_) => None,
            Schedule::Zoned { timezone, .. } => Some(timezone),
        }
    }
}

/// `when.endpoint`: whether and under which name an automation answers webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Endpoint {
    /// `true`: the automation's slug is the endpoint name; `false`: no endpoint.
    Enabled(bool),
    /// A custom endpoint name.
    Named(String),
}

impl When {
    /// The webhook name this automation answers on, if any.
    pub fn endpoint_name<'a>(&'a self, slug: &'a str) -> Option<&'a str> {
        match &self.endpoint {
            Some(Endpoint::Enabled(true)) => Some(slug),
            Some(Endpoint::Named(name)) => Some(name),
            _ => None,
        }
    }
}

/// Whether a component automation can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ComponentStatus {
    /// No component uploaded yet: runs fail until one is.
    Missing,
    /// A component is uploaded and compiled.
    Ready,
}

/// Per-automation sandbox limits (`component.limits`); unset fields take the workspace's or
/// the platform's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentLimits {
    /// `memoryMiB` in the API (§5.1), not serde's `memoryMib`.
    #[serde(rename = "memoryMiB", default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// Longest run, in milliseconds (default 30,000, at most 120,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Fuel per run (instructions, roughly); unset means no fuel metering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
}

/// The `component` member of a component automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ComponentInfo {
    /// Whether a component is uploaded and runnable.
    pub status: ComponentStatus,
    /// The sandbox limits of its runs.
    #[serde(default)]
    pub limits: ComponentLimits,
    /// `sha256:<hex>` of the uploaded bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Size of the uploaded component, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The WIT world it targets, with its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<String>,
    /// The host interfaces it imports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// The source language the upload named (a hint, `x-refract-component-language`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// When the component was uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_at: Option<DateTime<Utc>>,
    /// The user id that uploaded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_by: Option<String>,
    /// The wasmtime version it was compiled with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compiled_with: Option<String>,
}

impl ComponentInfo {
    /// A component automation's before its first upload: nothing to run, default limits.
    pub fn missing() -> Self {
        Self {
            status: ComponentStatus::Missing,
            limits: ComponentLimits::default(),
            digest: None,
            size: None,
            world: None,
            imports: Vec::new(),
            language: None,
            uploaded_at: None,
            uploaded_by: None,
            compiled_with: None,
        }
    }
}

/// An automation of a workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Automation {
    /// The automation's slug, unique in its workspace: what triggers, calls and URLs name it by.
    pub slug: String,
    /// Localized display name: a string or `{lang: text}`.
    pub name: Value,
    /// Localized description: a string or `{lang: text}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Value>,
    /// Free-form labels for sorting and search.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// A disabled automation is never run, whatever its triggers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// Callable only from inside its own workspace or app, never from a parent (`automation-dsl.md` §8).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// What starts it: events, schedules, an endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<When>,
    /// JSON schema of its input (`automation-dsl.md` §2.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    /// Check each run's input against `arguments` first (`automation-dsl.md` §2.4; off by
    /// default, as in Prisme.ai).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validate_arguments: bool,
    /// Who may run it (`authorizations.action`, `spec/http-api.md` §9.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorizations: Option<AutomationAuthorizations>,
    /// How a failed event- or schedule-triggered run is tried again; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Free-form config handed to every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Whether it is DSL instructions or a component.
    pub kind: AutomationKind,
    /// DSL instructions (`kind: dsl`).
    #[serde(rename = "do", default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<Value>,
    /// The DSL expression the run returns (`kind: dsl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Component details (`kind: component`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// The user id that created it.
    pub created_by: String,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The user id that last changed it.
    pub updated_by: String,
}

/// `retry` of an automation: a failed run started by an event or a schedule is tried again,
/// up to `attempts` runs in all, after a delay that starts at `backoff.initialMs` and is
/// multiplied by `backoff.factor` after each attempt, up to `backoff.maxMs`. A run that fails
/// every attempt becomes a dead letter of its workspace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Runs in all, the first included (2 to [`RetryPolicy::MAX_ATTEMPTS`]).
    pub attempts: u32,
    /// The delays between attempts.
    #[serde(default)]
    pub backoff: Backoff,
}

/// Delays between the attempts of a [`RetryPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backoff {
    /// Delay before the second attempt, in ms.
    #[serde(default = "Backoff::default_initial")]
    pub initial_ms: u64,
    /// Longest delay, in ms.
    #[serde(default = "Backoff::default_max")]
    pub max_ms: u64,
    /// What each delay is multiplied by for the next one.
    #[serde(default = "Backoff::default_factor")]
    pub factor: f64,
}

impl Backoff {
    fn default_initial() -> u64 {
        1_000
    }
    fn default_max() -> u64 {
        60_000
    }
    fn default_factor() -> f64 {
        2.0
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial_ms: Self::default_initial(),
            max_ms: Self::default_max(),
            factor: Self::default_factor(),
        }
    }
}

impl RetryPolicy {
    /// Most runs a policy may ask for.
    pub const MAX_ATTEMPTS: u32 = 10;
    /// Shortest first delay and longest delay allowed, in ms.
    pub const MIN_DELAY_MS: u64 = 100;
    /// See [`RetryPolicy::MIN_DELAY_MS`].
    pub const MAX_DELAY_MS: u64 = 3_600_000;

    /// Why the policy is not allowed, naming the member; `Ok` when it is.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(2..=Self::MAX_ATTEMPTS).contains(&self.attempts) {
            return Err((
                "retry.attempts",
                format!("must be 2 to {} (runs in all)", Self::MAX_ATTEMPTS),
            ));
        }
        let b = &self.backoff;
        if !(Self::MIN_DELAY_MS..=Self::MAX_DELAY_MS).contains(&b.initial_ms) {
            return Err((
                "retry.backoff.initialMs",
                format!("must be {} to {}", Self::MIN_DELAY_MS, Self::MAX_DELAY_MS),
            ));
        }
        if !(b.initial_ms..=Self::MAX_DELAY_MS).contains(&b.max_ms) {
            return Err((
                "retry.backoff.maxMs",
                format!("must be initialMs to {}", Self::MAX_DELAY_MS),
            ));
        }
        if !(b.factor.is_finite() && (1.0..=10.0).contains(&b.factor)) {
            return Err(("retry.backoff.factor", "must be 1 to 10".into()));
        }
        Ok(())
    }

    /// The delay before attempt `next` (2 for the first retry).
    pub fn delay_before(&self, next: u32) -> std::time::Duration {
        let b = &self.backoff;
        let exponent = i32::try_from(next.saturating_sub(2)).unwrap_or(i32::MAX);
        let ms = (b.initial_ms as f64) * b.factor.powi(exponent);
        std::time::Duration::from_millis(ms.min(b.max_ms as f64) as u64)
    }
}

/// `authorizations` of an automation: with `action` set, only owners, editors and principals
/// a rule allows `execute` on `automations` (conditions see the automation's `slug` and
/// `authorizations.action`) may run it, whatever the trigger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutomationAuthorizations {
    /// The custom action a rule must allow for a principal to run the automation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Automation {
    /// The custom action a run of this automation needs, if any.
    pub fn required_action(&self) -> Option<&str> {
        self.authorizations
            .as_ref()
            .and_then(|a| a.action.as_deref())
    }
}

/// A member's role in a workspace (`spec/http-api.md` §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads the workspace, its automations and events; no writes, no secrets.
    Viewer,
    /// Also updates the workspace and automations, emits events, executes and tests.
    Editor,
    /// Everything in the workspace, security and secrets included.
    Owner,
}

/// The role a membership gives: a built-in one, or a custom role of the workspace's security
/// (`spec/http-api.md` §9.1). Stored as the bare name either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MemberRole {
    /// `viewer`, `editor` or `owner`.
    BuiltIn(Role),
    /// A custom role of the workspace's security, by name.
    Custom(String),
}

impl MemberRole {
    /// The built-in role, if this is one.
    pub fn built_in(&self) -> Option<Role> {
        match self {
            MemberRole::BuiltIn(r) => Some(*r),
            MemberRole::Custom(_) => None,
        }
    }
}

impl From<Role> for MemberRole {
    fn from(role: Role) -> Self {
        MemberRole::BuiltIn(role)
    }
}

/// Who a membership is for: a user id, [`PUBLIC_MEMBER`] (everyone authenticated), or
/// `role:<name>` (every holder of a custom role).
pub const PUBLIC_MEMBER: &str = "*";
/// Prefix of memberships shared with the holders of a custom role.
pub const ROLE_MEMBER_PREFIX: &str = "role:";

/// A role in a workspace given to a user, to the public or to a custom role's holders: a
/// document of the `permissions` collection with id [`permission_doc_id`]. Workspaces writes
/// them; every service reads them (through `refract_storage::access_of`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The workspace the role is held in.
    pub workspace_id: String,
    /// A user id, [`PUBLIC_MEMBER`] or `role:<name>`.
    pub user_id: String,
    /// The role given.
    pub role: MemberRole,
}

/// The `permissions` document id of `user` (or `*`, or `role:<name>`) in `workspace`.
pub fn permission_doc_id(workspace: &str, user: &str) -> String {
    format!("{workspace}:{user}")
}

/// The `automations` document id of `slug` in `workspace`.
pub fn automation_doc_id(workspace: &str, slug: &str) -> String {
    format!("{workspace}:{slug}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_to_their_ceiling_and_bad_policies_name_the_member() {
        let p: RetryPolicy = serde_json::from_value(serde_json::json!(
            {"attempts": 4, "backoff": {"initialMs": 500, "maxMs": 1500, "factor": 2}}
        ))
        .unwrap();
        assert!(p.check().is_ok());
        let ms = |n| p.delay_before(n).as_millis();
        assert_eq!((ms(2), ms(3), ms(4), ms(5)), (500, 1000, 1500, 1500));
        let d: RetryPolicy = serde_json::from_value(serde_json::json!({"attempts": 3})).unwrap();
        assert_eq!(d.backoff, Backoff::default());
        for (bad, member) in [
            (serde_json::json!({"attempts": 1}), "retry.attempts"),
            (serde_json::json!({"attempts": 11}), "retry.attempts"),
            (
                serde_json::json!({"attempts": 2, "backoff": {"initialMs": 10}}),
                "retry.backoff.initialMs",
            ),
            (
                serde_json::json!({"attempts": 2, "backoff": {"initialMs": 5000, "maxMs": 1000}}),
                "retry.backoff.maxMs",
            ),
            (
                serde_json::json!({"attempts": 2, "backoff": {"factor": 0.5}}),
                "retry.backoff.factor",
            ),
        ] {
            let p: RetryPolicy = serde_json::from_value(bad).unwrap();
            assert_eq!(p.check().unwrap_err().0, member);
        }
    }
    use serde_json::json;

    #[test]
    fn workspace_slugs_are_dns_labels_and_not_reserved() {
        assert!(check_workspace_slug("my-team-01").is_ok());
        for bad in ["", "-a", "a-", "My", "a_b", "api", &"a".repeat(64)] {
            assert!(check_workspace_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn automation_slugs_and_endpoints() {
        assert!(check_automation_slug("On order 2").is_ok());
        assert!(check_automation_slug("a/b").is_err());
        let when: When =
            serde_json::from_value(json!({"endpoint": true, "events": ["x"]})).unwrap();
        assert_eq!(when.endpoint_name("echo"), Some("echo"));
        let when: When = serde_json::from_value(json!({"endpoint": "hook"})).unwrap();
        assert_eq!(when.endpoint_name("echo"), Some("hook"));
        assert!(serde_json::from_value::<When>(json!({"endpoints": true})).is_err());
        let when: When = serde_json::from_value(json!({"schedules": ["*/5 * * * * *", {"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}]})).unwrap();
        assert_eq!(when.schedules[0].timezone(), None);
        assert_eq!(when.schedules[1].cron(), "0 9 * * 1-5");
        assert_eq!(when.schedules[1].timezone(), Some("Europe/Paris"));
    }
}
