//! Sandbox policies: what a workspace's runs may do. The operator sets a platform policy and,
//! per workspace, a whole replacement for it (a bigger plan, a partner's API on the egress
//! allow-list). Tenants never set their own: an automation's `component.limits` only choose
//! within its workspace's policy.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use refract_core::model::Automation;
use refract_host::{EgressPolicy, Limits};
use serde::{Deserialize, Serialize};

/// Memory a run gets when its automation does not ask (`spec/http-api.md` §5.1).
pub(crate) const DEFAULT_MEMORY_MIB: u32 = 64;

/// The limits of one workspace's runs. Every field is a ceiling the host enforces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxPolicy {
    /// Hosts `fetch` may reach: `api.example.com`, `*.example.com` or `*`; empty denies all.
    /// Private, loopback and metadata addresses are refused whatever this says.
    pub allow_hosts: Vec<String>,
    /// Largest linear memory a run may ask for (`component.limits.memoryMiB`).
    pub max_memory_mib: u32,
    /// Longest wall clock a run may ask for (`component.limits.timeoutMs`), host calls included.
    pub max_timeout_ms: u64,
    /// Guest compute per run, host calls excluded (epoch deadline).
    pub cpu_ms: u64,
    /// Largest run output (body and headers).
    pub max_output_kib: usize,
    /// Largest streamed webhook answer (`$http` `chunk`, the `response` import).
    pub max_stream_kib: u64,
    /// Events one run may emit.
    pub max_emits: u32,
    /// Outbound requests one run may make.
    pub max_fetches: u32,
    /// Waits one run may make.
    pub max_waits: u32,
    /// Depth of automation chains (calls and emitted events).
    pub max_call_depth: u32,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            allow_hosts: Vec::new(),
            max_memory_mib: 256,
            max_timeout_ms: 120_000,
            cpu_ms: millis(limits.cpu_time),
            max_output_kib: limits.output_bytes >> 10,
            max_stream_kib: limits.stream_bytes >> 10,
            max_emits: limits.max_emits,
            max_fetches: limits.max_fetches,
            max_waits: limits.max_waits,
            max_call_depth: limits.max_call_depth,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SandboxPolicy {
    /// Checks the policy, naming the first wrong setting.
    pub(crate) fn validate(&self) -> Result<(), String> {
        EgressPolicy::new(&self.allow_hosts).map_err(|e| format!("allow_hosts: {e}"))?;
        let positive = [
            ("max_memory_mib", u64::from(self.max_memory_mib)),
            ("max_timeout_ms", self.max_timeout_ms),
            ("cpu_ms", self.cpu_ms),
            ("max_output_kib", self.max_output_kib as u64),
            ("max_stream_kib", self.max_stream_kib),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if self.max_memory_mib > 4096 {
            return Err("max_memory_mib is at most 4096 (the engine's memory slots)".into());
        }
        Ok(())
    }

    /// The limits of one run of `automation`: what its `component.limits` ask for (64 MiB and
    /// 30 s when it says nothing), capped by this policy.
    pub(crate) fn limits_for(&self, automation: &Automation) -> Limits {
        let defaults = Limits::default();
        let asked = automation.component.as_ref().map(|c| &c.limits);
        let memory_mib = asked
            .and_then(|l| l.memory_mib)
            .unwrap_or(DEFAULT_MEMORY_MIB);
        let timeout_ms = asked
            .and_then(|l| l.timeout_ms)
            .unwrap_or(millis(defaults.wall_time));
        Limits {
            memory_bytes: (memory_mib.clamp(1, self.max_memory_mib) as usize) << 20,
            wall_time: Duration::from_millis(timeout_ms.clamp(1, self.max_timeout_ms)),
            cpu_time: Duration::from_millis(self.cpu_ms),
            output_bytes: self.max_output_kib << 10,
            stream_bytes: self.max_stream_kib.saturating_mul(1024),
            max_emits: self.max_emits,
            max_fetches: self.max_fetches,
            max_waits: self.max_waits,
            max_call_depth: self.max_call_depth,
            ..defaults
        }
    }
}

/// Changes to one workspace's policy made through the API (`PUT …/quotas` by a superadmin,
/// `PUT …/quotas/egress` by an owner), over the policy the operator configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PolicyPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) allow_hosts: Option<Vec<String>>,
    #[serde(
        default,
        rename = "maxMemoryMiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) max_memory_mib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cpu_ms: Option<u64>,
    #[serde(
        default,
        rename = "maxOutputKiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) max_output_kib: Option<usize>,
    #[serde(
        default,
        rename = "maxStreamKiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) max_stream_kib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_emits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_fetches: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_waits: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_call_depth: Option<u32>,
}

impl PolicyPatch {
    /// `base` with this patch's settings over it.
    pub(crate) fn over(&self, base: &SandboxPolicy) -> SandboxPolicy {
        SandboxPolicy {
            allow_hosts: self
                .allow_hosts
                .clone()
                .unwrap_or_else(|| base.allow_hosts.clone()),
            max_memory_mib: self.max_memory_mib.unwrap_or(base.max_memory_mib),
            max_timeout_ms: self.max_timeout_ms.unwrap_or(base.max_timeout_ms),
            cpu_ms: self.cpu_ms.unwrap_or(base.cpu_ms),
            max_output_kib: self.max_output_kib.unwrap_or(base.max_output_kib),
            max_stream_kib: self.max_stream_kib.unwrap_or(base.max_stream_kib),
            max_emits: self.max_emits.unwrap_or(base.max_emits),
            max_fetches: self.max_fetches.unwrap_or(base.max_fetches),
            max_waits: self.max_waits.unwrap_or(base.max_waits),
            max_call_depth: self.max_call_depth.unwrap_or(base.max_call_depth),
        }
    }
}

/// A workspace's changes made through the API: the superadmin's patch, and the narrower
/// egress allow-list its owner chose (a host must be on both lists).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LiveQuota {
    pub(crate) patch: PolicyPatch,
    pub(crate) narrowed_hosts: Option<Vec<String>>,
}

/// The platform policy, the per-workspace ones the operator configured, and the changes made
/// live through the API, with their egress allow-lists parsed once.
#[derive(Debug)]
pub(crate) struct Sandboxes {
    platform: Arc<Resolved>,
    configured: HashMap<String, Arc<Resolved>>,
    live: RwLock<HashMap<String, Arc<Resolved>>>,
}

/// A workspace's effective policy.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) policy: SandboxPolicy,
    pub(crate) egress: Arc<EgressPolicy>,
    /// The owner's narrower allow-list, if any.
    pub(crate) narrowed_hosts: Option<Vec<String>>,
}

impl Resolved {
    fn new(policy: SandboxPolicy, narrowed_hosts: Option<Vec<String>>) -> Result<Self, String> {
        policy.validate()?;
        let mut egress = EgressPolicy::new(&policy.allow_hosts).map_err(|e| e.to_string())?;
        if let Some(hosts) = &narrowed_hosts {
            egress = egress
                .narrowed_to(hosts)
                .map_err(|e| format!("allowHosts: {e}"))?;
        }
        Ok(Self {
            policy,
            egress: Arc::new(egress),
            narrowed_hosts,
        })
    }
}

impl Sandboxes {
    /// `workspaces` maps a workspace id to the policy that replaces the platform's for it.
    pub(crate) fn new(
        platform: SandboxPolicy,
        workspaces: &HashMap<String, SandboxPolicy>,
    ) -> Result<Self, String> {
        let configured = workspaces
            .iter()
            .map(|(id, policy)| {
                Ok((
                    id.clone(),
                    Arc::new(
                        Resolved::new(policy.clone(), None)
                            .map_err(|e| format!("workspace {id}: {e}"))?,
                    ),
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            platform: Arc::new(Resolved::new(platform, None)?),
            configured,
            live: RwLock::default(),
        })
    }

    /// The effective policy of `workspace_id` and its parsed egress allow-list.
    pub(crate) fn of(&self, workspace_id: &str) -> Arc<Resolved> {
        if let Some(live) = self
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(workspace_id)
        {
            return live.clone();
        }
        self.configured_of(workspace_id).clone()
    }

    /// What the operator configured for `workspace_id` (before any live change).
    pub(crate) fn configured_of(&self, workspace_id: &str) -> &Arc<Resolved> {
        self.configured.get(workspace_id).unwrap_or(&self.platform)
    }

    /// The policy `quota` makes of the configured one, checked (without applying it).
    pub(crate) fn resolve(
        &self,
        workspace_id: &str,
        quota: &LiveQuota,
    ) -> Result<Resolved, String> {
        let base = &self.configured_of(workspace_id).policy;
        Resolved::new(quota.patch.over(base), quota.narrowed_hosts.clone())
    }

    /// Applies `quota` to `workspace_id` from now on (`None`: back to the configured policy).
    pub(crate) fn set_live(
        &self,
        workspace_id: &str,
        quota: Option<&LiveQuota>,
    ) -> Result<(), String> {
        let resolved = quota.map(|q| self.resolve(workspace_id, q)).transpose()?;
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        match resolved {
            Some(r) => live.insert(workspace_id.to_owned(), Arc::new(r)),
            None => live.remove(workspace_id),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn automation(limits: serde_json::Value) -> Automation {
        serde_json::from_value(json!({
            "slug": "a", "name": "A", "kind": "component",
            "component": {"status": "ready", "limits": limits},
            "createdAt": "2026-11-27T10:00:00.000Z", "createdBy": "u",
            "updatedAt": "2026-11-27T10:00:00.000Z", "updatedBy": "u",
        }))
        .unwrap()
    }

    #[test]
    fn an_automation_chooses_within_its_workspace_policy() {
        let policy = SandboxPolicy::default();
        let limits = policy.limits_for(&automation(json!({"memoryMiB": 4096, "timeoutMs": 5000})));
        assert_eq!(limits.memory_bytes, 256 << 20);
        assert_eq!(limits.wall_time, Duration::from_secs(5));
        let limits = policy.limits_for(&automation(json!({})));
        assert_eq!(limits.memory_bytes, 64 << 20);
        assert_eq!(limits.wall_time, Limits::default().wall_time);

        let small = SandboxPolicy {
            max_memory_mib: 16,
            max_timeout_ms: 1000,
            max_emits: 3,
            ..SandboxPolicy::default()
        };
        let limits = small.limits_for(&automation(json!({})));
        assert_eq!(
            limits.memory_bytes,
            16 << 20,
            "the default is capped by the workspace's ceiling"
        );
        assert_eq!(limits.wall_time, Duration::from_secs(1));
        assert_eq!(limits.max_emits, 3);
    }

    #[test]
    fn workspaces_without_a_policy_get_the_platform_one() {
        let partner = SandboxPolicy {
            allow_hosts: vec!["api.partner.example".into()],
            ..SandboxPolicy::default()
        };
        let sandboxes = Sandboxes::new(
            SandboxPolicy::default(),
            &HashMap::from([("ws1".to_string(), partner.clone())]),
        )
        .unwrap();
        assert_eq!(sandboxes.of("ws1").policy, partner);
        assert_eq!(sandboxes.of("ws2").policy, SandboxPolicy::default());
        assert!(
            sandboxes
                .of("ws1")
                .egress
                .allows_host("api.partner.example")
        );
        assert!(
            !sandboxes
                .of("ws2")
                .egress
                .allows_host("api.partner.example")
        );
        // Changed live: a patch over the configured policy, an owner's narrower list.
        let quota = LiveQuota {
            patch: PolicyPatch {
                max_emits: Some(2),
                ..PolicyPatch::default()
            },
            narrowed_hosts: Some(vec!["other.example".into()]),
        };
        sandboxes.set_live("ws1", Some(&quota)).unwrap();
        let live = sandboxes.of("ws1");
        assert_eq!(live.policy.max_emits, 2);
        assert_eq!(live.policy.allow_hosts, partner.allow_hosts);
        assert!(!live.egress.allows_host("api.partner.example"));
        assert!(
            !live.egress.allows_host("other.example"),
            "narrowing never adds a host"
        );
        sandboxes.set_live("ws1", None).unwrap();
        assert_eq!(sandboxes.of("ws1").policy, partner);
    }

    #[test]
    fn bad_policies_are_named() {
        let bad = SandboxPolicy {
            allow_hosts: vec!["*foo.com".into()],
            ..SandboxPolicy::default()
        };
        let err = Sandboxes::new(
            SandboxPolicy::default(),
            &HashMap::from([("ws9".to_string(), bad)]),
        )
        .unwrap_err();
        assert!(err.starts_with("workspace ws9: allow_hosts"), "{err}");
        let zero = SandboxPolicy {
            cpu_ms: 0,
            ..SandboxPolicy::default()
        };
        assert_eq!(zero.validate().unwrap_err(), "cpu_ms must be positive");
    }
}
