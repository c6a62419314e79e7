//! The run contract between the runtime and the interpreter component: what the runtime puts in
//! a DSL run's invocation `config` ([`Setup`], serialized as JSON) and the interpreter reads
//! back. One type on both sides, so neither can drift from the other.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Everything a DSL run needs beyond the invocation itself (`automation-dsl.md` §2.7, §5.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setup {
    /// The compiled program in its compact form, as [`Program::encode`](crate::Program::encode)
    /// wrote it when the automation was saved or indexed.
    pub program: String,
    /// The run's `config` scope: the workspace's config overlaid by the automation's own.
    #[serde(default)]
    pub config: Value,
    /// The run's call depth (`run.depth`): 0 for a run a user, a schedule or a webhook started.
    #[serde(default)]
    pub depth: u32,
    /// The WebSocket the triggering event came from (`run.socketId`): the run's events answer
    /// that socket only.
    #[serde(default, rename = "socketId", skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// The trigger as `run.trigger` exposes it and `runtime.automations.executed` reports it.
    #[serde(default)]
    pub trigger: SetupTrigger,
    /// A webhook run's initial locals (`method`, `headers`, `query`, `body` decoded by its
    /// content type, `workspaceId`, `automationSlug`), as the runtime read the request; `None`
    /// for every other trigger, whose locals the interpreter builds from the invocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locals: Option<Map<String, Value>>,
    /// The `$workspace` scope: the running workspace's document, for a program that reads it
    /// ([`reads_workspace`](crate::reads_workspace)); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<Value>,
}

/// What started a run (`run.trigger`): `{type, value, id?}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SetupTrigger {
    /// `event`, `endpoint`, `schedule` or `automation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event type, endpoint name, cron expression or calling automation's slug.
    pub value: String,
    /// The triggering event's id, for an event trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Setup {
    /// The JSON text the runtime puts in the invocation's `config`.
    pub fn to_config(&self) -> String {
        // Strings, numbers and JSON values only: serializing cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_setup_reads_back_what_it_wrote_and_omits_what_is_absent() {
        let setup = Setup {
            program: "AAAA".into(),
            config: json!({"k": 1}),
            depth: 2,
            socket_id: None,
            trigger: SetupTrigger {
                kind: "event".into(),
                value: "orders.created".into(),
                id: None,
            },
            locals: None,
            workspace: None,
        };
        let text = setup.to_config();
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            v,
            json!({"program": "AAAA", "config": {"k": 1}, "depth": 2,
                "trigger": {"type": "event", "value": "orders.created"}})
        );
        let back: Setup = serde_json::from_str(&text).expect("setup");
        assert_eq!(back, setup);
    }
}
