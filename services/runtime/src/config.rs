//! The runtime's settings. Only the binary reads the environment; it fills this struct.

use std::collections::HashMap;
use std::time::Duration;

use refract_host::{EgressConfig, HostConfig};
use refract_secrets::Keyring;

use crate::sandbox::{SandboxPolicy, Sandboxes};

/// How long a webhook (or test run) caller waits for the run's output before a 504
/// (`spec/http-api.md` §1.9); the run itself goes on to its own wall-clock cap.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the scheduler looks for due ticks: bounds how late a cron tick fires.
pub const DEFAULT_SCHEDULER_TICK: Duration = Duration::from_millis(200);
/// Largest webhook body read (`WEBHOOK_BODY_MAX_SIZE`): protects memory from huge uploads.
pub const DEFAULT_WEBHOOK_BODY_LIMIT: usize = 1 << 20;
/// Event deliveries handled at once by one instance: bounds memory and sandbox slots used by
/// a burst of events.
pub const DEFAULT_MAX_CONCURRENT_EVENTS: usize = 64;
/// Lifetime of a session scope after its last write (a login session's default lifetime).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Lifetime of a run scope after its last write (`automation-dsl.md` §6.4).
pub const DEFAULT_RUN_SCOPE_TTL: Duration = Duration::from_secs(60);
/// Largest serialized variable of a persistent scope: protects the cache from state bombs.
pub const DEFAULT_MAX_VARIABLE_BYTES: usize = 1 << 20;
/// Bytes of output (and initial payload) kept in `runtime.automations.executed`: keeps the
/// event well under the 100 KB event limit.
pub const DEFAULT_EXECUTED_PREVIEW_BYTES: usize = 16 << 10;
/// How long a schedule tick lock is kept: longer than any clock skew between instances.
pub const DEFAULT_TICK_LOCK_TTL: Duration = Duration::from_secs(600);

/// The first wrong setting [`Config::validate`] finds; the text names it and says what is
/// allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `instance_id` is empty, too long or has other characters.
    #[error("instance_id: 1 to 64 characters of A-Z a-z 0-9 - _ .")]
    InstanceId,
    /// `webhook_timeout` is zero.
    #[error("webhook_timeout must be positive")]
    WebhookTimeout,
    /// `scheduler_tick` is zero or longer than a second.
    #[error("scheduler_tick must be between 1 ms and 1 s (cron has second precision)")]
    SchedulerTick,
    /// `max_concurrent_events` is zero.
    #[error("max_concurrent_events must be at least 1")]
    MaxConcurrentEvents,
    /// `max_concurrent_events_per_workspace` is zero.
    #[error("max_concurrent_events_per_workspace must be at least 1")]
    MaxConcurrentEventsPerWorkspace,
    /// One of the scope or tick-lock lifetimes is zero.
    #[error("session_ttl, run_scope_ttl and tick_lock_ttl must be positive")]
    Lifetimes,
    /// The platform or a workspace sandbox policy is invalid; the text names the field.
    #[error("sandbox: {0}")]
    Sandbox(String),
}

/// Settings of one runtime instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// This instance's id: its consumer name in the `runtime` group, and `source.host.replica`.
    pub instance_id: String,
    /// How long an HTTP caller waits for a run's output ([`DEFAULT_WEBHOOK_TIMEOUT`]).
    pub webhook_timeout: Duration,
    /// Largest webhook body read, in bytes ([`DEFAULT_WEBHOOK_BODY_LIMIT`]).
    pub webhook_body_limit: usize,
    /// How often the scheduler looks for due ticks ([`DEFAULT_SCHEDULER_TICK`]).
    pub scheduler_tick: Duration,
    /// Event deliveries handled at once ([`DEFAULT_MAX_CONCURRENT_EVENTS`]).
    pub max_concurrent_events: usize,
    /// Event deliveries of one workspace handled at once, so one tenant's slow automations
    /// leave room for the others' events; `None`: half of `max_concurrent_events` (at least 1).
    pub max_concurrent_events_per_workspace: Option<usize>,
    /// Lifetime of a session scope after its last write ([`DEFAULT_SESSION_TTL`]).
    pub session_ttl: Duration,
    /// Lifetime of a run scope after its last write ([`DEFAULT_RUN_SCOPE_TTL`]).
    pub run_scope_ttl: Duration,
    /// Largest serialized variable of a persistent scope ([`DEFAULT_MAX_VARIABLE_BYTES`]).
    pub max_variable_bytes: usize,
    /// Bytes of a run's input and output kept in `runtime.automations.executed`
    /// ([`DEFAULT_EXECUTED_PREVIEW_BYTES`]).
    pub executed_preview_bytes: usize,
    /// How long a schedule tick lock is kept ([`DEFAULT_TICK_LOCK_TTL`]).
    pub tick_lock_ttl: Duration,
    /// What runs may do: the platform policy, for every workspace without its own.
    pub sandbox: SandboxPolicy,
    /// Workspace id → the policy that replaces [`Config::sandbox`] for that workspace.
    pub workspace_sandboxes: HashMap<String, SandboxPolicy>,
    /// Lets `fetch` reach loopback addresses. Tests and local development only. It is a
    /// setting of the host: build the host with [`Config::host_config`].
    pub allow_loopback: bool,
    /// Opens the workspaces' sealed secrets: the keyring the workspaces service seals with.
    /// The default is a random key of this process only; binaries always set the configured
    /// one.
    pub keyring: Keyring,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            instance_id: format!("runtime-{}", uuid::Uuid::new_v4().simple()),
            webhook_timeout: DEFAULT_WEBHOOK_TIMEOUT,
            webhook_body_limit: DEFAULT_WEBHOOK_BODY_LIMIT,
            scheduler_tick: DEFAULT_SCHEDULER_TICK,
            max_concurrent_events: DEFAULT_MAX_CONCURRENT_EVENTS,
            max_concurrent_events_per_workspace: None,
            session_ttl: DEFAULT_SESSION_TTL,
            run_scope_ttl: DEFAULT_RUN_SCOPE_TTL,
            max_variable_bytes: DEFAULT_MAX_VARIABLE_BYTES,
            executed_preview_bytes: DEFAULT_EXECUTED_PREVIEW_BYTES,
            tick_lock_ttl: DEFAULT_TICK_LOCK_TTL,
            sandbox: SandboxPolicy::default(),
            workspace_sandboxes: HashMap::new(),
            allow_loopback: false,
            keyring: Keyring::ephemeral(),
        }
    }
}

impl Config {
    /// Event deliveries of one workspace handled at once: the setting, else half of
    /// `max_concurrent_events` (at least 1).
    pub(crate) fn event_share(&self) -> usize {
        self.max_concurrent_events_per_workspace
            .unwrap_or_else(|| (self.max_concurrent_events / 2).max(1))
    }

    /// Checks the settings, naming the first wrong one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ok_id = !self.instance_id.is_empty()
            && self.instance_id.len() <= 64
            && self
                .instance_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok_id {
            return Err(ConfigError::InstanceId);
        }
        if self.webhook_timeout.is_zero() {
            return Err(ConfigError::WebhookTimeout);
        }
        if self.scheduler_tick.is_zero() || self.scheduler_tick > Duration::from_secs(1) {
            return Err(ConfigError::SchedulerTick);
        }
        if self.max_concurrent_events == 0 {
            return Err(ConfigError::MaxConcurrentEvents);
        }
        if self.max_concurrent_events_per_workspace == Some(0) {
            return Err(ConfigError::MaxConcurrentEventsPerWorkspace);
        }
        if self.session_ttl.is_zero()
            || self.run_scope_ttl.is_zero()
            || self.tick_lock_ttl.is_zero()
        {
            return Err(ConfigError::Lifetimes);
        }
        self.sandboxes().map(drop)
    }

    /// The sandbox policies, parsed.
    pub(crate) fn sandboxes(&self) -> Result<Sandboxes, ConfigError> {
        Sandboxes::new(self.sandbox.clone(), &self.workspace_sandboxes)
            .map_err(ConfigError::Sandbox)
    }

    /// The host settings matching this config (egress loopback), other fields default.
    pub fn host_config(&self) -> HostConfig {
        HostConfig {
            egress: EgressConfig {
                allow_loopback: self.allow_loopback,
                ..EgressConfig::default()
            },
            ..HostConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_settings_are_named() {
        assert!(Config::default().validate().is_ok());
        let bad = Config {
            instance_id: "a b".into(),
            ..Config::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("instance_id")
        );
        let bad = Config {
            scheduler_tick: Duration::from_secs(5),
            ..Config::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("scheduler_tick")
        );
        let sandbox = SandboxPolicy {
            allow_hosts: vec!["*foo.com".into()],
            ..SandboxPolicy::default()
        };
        let bad = Config {
            sandbox,
            ..Config::default()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .starts_with("sandbox: allow_hosts")
        );
        let loopback = Config {
            allow_loopback: true,
            ..Config::default()
        };
        assert!(loopback.host_config().egress.allow_loopback);
    }
}
