//! [`Refusal`]: a run refused before the automation's code ran. It fails the run like a guest's
//! error (same report, same `call` failure), under a code callers can tell apart.

use std::time::Duration;

use refract_host::{AutomationError, RunOutcome, RunReport};
use serde_json::{Value, json};

use crate::throttle::ThrottledError;

/// Why a run did not start.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    /// The workspace's execution rate is spent for longer than a run may wait.
    Throttled(ThrottledError),
    /// The call chain is deeper than the sandbox policy allows.
    TooDeep {
        /// The run's call depth.
        depth: u32,
        /// The policy's `max_call_depth`.
        limit: u32,
    },
    /// The run's principal may not execute the automation's `authorizations.action`.
    Forbidden {
        /// The refused automation.
        slug: String,
        /// The action it is protected by.
        action: String,
    },
    /// The input does not match the automation's `arguments` (`validateArguments`).
    InvalidArguments {
        /// The refused automation.
        slug: String,
        /// `{instancePath, message}` of each failure.
        failures: Vec<Value>,
    },
    /// The stored DSL document does not compile; its validation error fails the run.
    InvalidProgram(refract_dsl::Invalid),
}

/// The codes of the refusals a caller is told by name. A guest that fails with one of them
/// (passing on a refused call's error) is answered the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RefusalCode {
    /// `ThrottledError`.
    Throttled,
    /// `TooManyCallError`.
    TooDeep,
    /// `ForbiddenError`.
    Forbidden,
    /// `InvalidArgumentsError`.
    InvalidArguments,
}

impl RefusalCode {
    const ALL: [RefusalCode; 4] = [
        RefusalCode::Throttled,
        RefusalCode::TooDeep,
        RefusalCode::Forbidden,
        RefusalCode::InvalidArguments,
    ];

    /// The error code of the run's failure.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RefusalCode::Throttled => "ThrottledError",
            RefusalCode::TooDeep => "TooManyCallError",
            RefusalCode::Forbidden => "ForbiddenError",
            RefusalCode::InvalidArguments => "InvalidArgumentsError",
        }
    }

    /// The refusal a failure's `code` names, if any.
    pub(crate) fn of(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl Refusal {
    /// The failure's error code.
    fn code(&self) -> &str {
        match self {
            Refusal::Throttled(_) => RefusalCode::Throttled.as_str(),
            Refusal::TooDeep { .. } => RefusalCode::TooDeep.as_str(),
            Refusal::Forbidden { .. } => RefusalCode::Forbidden.as_str(),
            Refusal::InvalidArguments { .. } => RefusalCode::InvalidArguments.as_str(),
            Refusal::InvalidProgram(invalid) => &invalid.rule,
        }
    }

    /// The failure's message.
    fn message(&self) -> String {
        match self {
            Refusal::Throttled(e) => e.to_string(),
            Refusal::TooDeep { depth, limit } => {
                format!("call depth {depth} is over the limit of {limit}")
            }
            Refusal::Forbidden { slug, action } => {
                format!("running {slug} needs the permission to execute {action:?}")
            }
            Refusal::InvalidArguments { slug, .. } => {
                format!("the input of {slug} does not match its arguments")
            }
            Refusal::InvalidProgram(invalid) => invalid.message.clone(),
        }
    }

    /// The failure's details.
    fn details(&self) -> Value {
        match self {
            Refusal::Throttled(e) => {
                json!({"throttle": e.kind, "perSecond": e.per_second, "burst": e.burst})
            }
            Refusal::TooDeep { limit, .. } => json!({"limit": limit}),
            Refusal::Forbidden { action, .. } => json!({"action": action}),
            Refusal::InvalidArguments { failures, .. } => Value::Array(failures.clone()),
            Refusal::InvalidProgram(invalid) => json!({"path": invalid.path}),
        }
    }

    /// The report of the run that did not happen: failed with this refusal, nothing done.
    pub(crate) fn into_report(self) -> RunReport {
        RunReport {
            outcome: RunOutcome::Failed(AutomationError {
                code: self.code().to_owned(),
                message: self.message(),
                details: Some(self.details().to_string()),
            }),
            emits: 0,
            fetches: 0,
            elapsed: Duration::ZERO,
            logs: Vec::new(),
            logs_dropped: 0,
            timings: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_fail_the_run_under_their_code() {
        let report = Refusal::Forbidden {
            slug: "refund".into(),
            action: "refund".into(),
        }
        .into_report();
        let RunOutcome::Failed(e) = report.outcome else {
            panic!("a refusal fails the run");
        };
        assert_eq!(RefusalCode::of(&e.code), Some(RefusalCode::Forbidden));
        assert_eq!(e.details.as_deref(), Some(r#"{"action":"refund"}"#));
        assert_eq!(RefusalCode::of("AutomationError"), None);
    }
}
