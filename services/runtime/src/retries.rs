//! Retries and dead letters of failed runs (an automation's `retry` policy).
//!
//! A run started by an event or a schedule that fails (its own error, a trap, a refusal) is
//! kept in the `run_retries` collection with the time its next attempt is due, so the retry
//! survives the instance that ran it; every runtime instance polls for due retries, claims one
//! with a versioned write (so one instance runs it) and runs it again through the executor. A
//! claim not finished within [`LEASE`] (its instance died) is taken over. A run that fails its
//! last attempt becomes a dead letter of its workspace (`dead_letters`), announced by
//! `runtime.automations.deadlettered`; a dead letter can be replayed (run once more, with the
//! automation as it is now) or deleted through the API ([`crate::http`]).
//!
//! Both collections are bounded per workspace: past [`MAX_PENDING`] retries a failed run goes
//! straight to the dead letters, and past [`MAX_DEAD_LETTERS`] the oldest dead letter gives way.

use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use refract_core::platform::types;
use refract_core::{CorrelationId, SessionId, UserId, WorkspaceId};
use refract_host::{RunContext, RunOutcome, RunReport, ScheduleTick, Trigger, WitEvent};
use refract_storage::{Document, DocumentStore, Expect, StorageError, collections};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::bus::{BrokerBus, run_event};
use crate::error::RuntimeError;
use crate::index::TriggerIndex;
use crate::run::{Execution, TriggerInfo, TriggerKind, run_context};

/// How often an instance looks for due retries.
pub(crate) const POLL: Duration = Duration::from_millis(500);
/// How long a claimed retry may run before another instance takes it over.
pub(crate) const LEASE: Duration = Duration::from_secs(300);
/// Retries one instance claims per poll.
const CLAIMS_PER_POLL: usize = 32;
/// Pending retries per workspace.
pub(crate) const MAX_PENDING: u32 = 1_000;
/// Dead letters kept per workspace; the oldest gives way.
pub(crate) const MAX_DEAD_LETTERS: u32 = 1_000;
/// The broker's newest dead letters read for a workspace's view (every workspace's).
const BROKER_SCAN: usize = 1_000;

/// A run as it can be started again on any instance: what it was given, not how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredRun {
    pub(crate) workspace_id: String,
    /// The app instance's full slug, for an automation of an instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) app: Option<String>,
    pub(crate) automation: String,
    pub(crate) trigger: StoredTrigger,
    /// The run's input as its report shows it.
    pub(crate) payload: Value,
    pub(crate) correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) session_id: Option<String>,
    pub(crate) depth: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) socket_id: Option<String>,
}

/// What started the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(crate) enum StoredTrigger {
    /// An event (its type as the automation heard it, and the envelope as delivered).
    #[serde(rename_all = "camelCase")]
    Event {
        value: String,
        id: String,
        payload: String,
        source: String,
    },
    /// A schedule's tick.
    Schedule { expression: String, time: String },
}

impl StoredRun {
    /// The run of `exec`, when its trigger is one a retry applies to (event, schedule).
    pub(crate) fn of(exec: &Execution) -> Option<Self> {
        let trigger = match &exec.trigger {
            Trigger::Event(e) => StoredTrigger::Event {
                value: e.type_.clone(),
                id: e.id.clone(),
                payload: e.payload.clone(),
                source: e.source.clone(),
            },
            Trigger::Schedule(t) => StoredTrigger::Schedule {
                expression: t.expression.clone(),
                time: t.time.clone(),
            },
            Trigger::Http(_) | Trigger::Call(_) => return None,
        };
        let c = &exec.context;
        Some(StoredRun {
            workspace_id: c.workspace_id.to_string(),
            app: exec.app.as_ref().map(|s| s.full_slug.clone()),
            automation: exec.automation.slug.clone(),
            trigger,
            payload: exec.payload.clone(),
            correlation_id: c.correlation_id.to_string(),
            user_id: c.user_id.as_ref().map(ToString::to_string),
            session_id: c.session_id.as_ref().map(ToString::to_string),
            depth: c.depth,
            socket_id: c.socket_id.clone(),
        })
    }

    /// The identity of a new run of it in `ws` (a fresh run id; the original correlation, user,
    /// session, depth and socket).
    fn context(&self, ws: &WorkspaceId) -> RunContext {
        let correlation =
            CorrelationId::new(&self.correlation_id).unwrap_or_else(|_| CorrelationId::generate());
        RunContext {
            socket_id: self.socket_id.clone(),
            ..run_context(
                ws,
                &self.automation,
                correlation,
                self.user_id.as_deref().and_then(|u| UserId::new(u).ok()),
                self.session_id
                    .as_deref()
                    .and_then(|s| SessionId::new(s).ok()),
                self.depth,
            )
        }
    }

    /// A new run of it with the automation as the index holds it now (a fresh run id), or why
    /// it cannot run any more.
    pub(crate) fn execution(&self, index: &TriggerIndex) -> Result<Execution, String> {
        let ws = WorkspaceId::new(&self.workspace_id).map_err(|e| e.to_string())?;
        let app = match &self.app {
            None => None,
            Some(full) => Some(
                index
                    .scope(ws.as_str(), full)
                    .ok_or_else(|| format!("the app instance {full} is no longer installed"))?,
            ),
        };
        let key = app.as_ref().map_or(ws.as_str(), |s| s.key.as_str());
        let automation = index.get(key, &self.automation).ok_or_else(|| {
            format!(
                "the automation {} no longer exists or is disabled",
                self.automation
            )
        })?;
        let (trigger, info) = match &self.trigger {
            StoredTrigger::Event {
                value,
                id,
                payload,
                source,
            } => (
                Trigger::Event(WitEvent {
                    id: id.clone(),
                    type_: value.clone(),
                    payload: payload.clone(),
                    source: source.clone(),
                }),
                TriggerInfo {
                    kind: TriggerKind::Event,
                    value: value.clone(),
                    id: Some(id.clone()),
                },
            ),
            StoredTrigger::Schedule { expression, time } => (
                Trigger::Schedule(ScheduleTick {
                    expression: expression.clone(),
                    time: time.clone(),
                }),
                TriggerInfo {
                    kind: TriggerKind::Schedule,
                    value: expression.clone(),
                    id: None,
                },
            ),
        };
        Ok(Execution {
            context: self.context(&ws),
            automation,
            trigger,
            info,
            payload: self.payload.clone(),
            app,
            credentials: None,
            answer: None,
        })
    }
}

/// A failed run waiting for its next attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PendingRetry {
    pub(crate) workspace_id: String,
    pub(crate) run: StoredRun,
    /// The attempt it will be (2 for the first retry).
    pub(crate) attempt: u32,
    /// When it is due, in ms since the epoch.
    pub(crate) due_at: i64,
    /// `pending`, or `running` once an instance claimed it.
    pub(crate) state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) claimed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) claimed_at: Option<i64>,
    /// The last attempt's error: `{error, message}`.
    pub(crate) error: Value,
    pub(crate) first_failed_at: String,
    pub(crate) last_failed_at: String,
}

/// A run that failed every attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeadLetter {
    pub(crate) id: String,
    pub(crate) workspace_id: String,
    pub(crate) run: StoredRun,
    /// The last attempt's error: `{error, message}`.
    pub(crate) error: Value,
    /// Attempts made (replays included).
    pub(crate) attempts: u32,
    pub(crate) first_failed_at: String,
    pub(crate) last_failed_at: String,
}

impl DeadLetter {
    /// As the API lists it.
    pub(crate) fn to_json(&self) -> Value {
        let trigger = match &self.run.trigger {
            StoredTrigger::Event { value, id, .. } => {
                json!({"type": "event", "value": value, "id": id})
            }
            StoredTrigger::Schedule { expression, time } => {
                json!({"type": "schedule", "value": expression, "time": time})
            }
        };
        let mut v = json!({
            "id": self.id, "source": "run", "automation": self.run.automation, "trigger": trigger,
            "payload": self.run.payload, "error": self.error, "attempts": self.attempts,
            "firstFailedAt": self.first_failed_at, "lastFailedAt": self.last_failed_at,
            "correlationId": self.run.correlation_id,
        });
        if let Some(app) = &self.run.app {
            v["appInstance"] = json!(app);
        }
        v
    }
}

/// Which attempt of a run a run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The run its trigger started.
    First,
    /// A retry of a failed run (2 for the first retry), which first failed at that time.
    Retry {
        number: u32,
        first_failed_at: String,
    },
    /// A dead letter run again on request: its failure is recorded on the dead letter, not
    /// retried.
    Replay { number: u32 },
}

impl Attempt {
    /// 1 for the first run, then one more per attempt.
    pub(crate) fn number(&self) -> u32 {
        match self {
            Attempt::First => 1,
            Attempt::Retry { number, .. } | Attempt::Replay { number } => *number,
        }
    }
}

/// The error of a failed run as retries and dead letters keep it; `None` for a success.
pub(crate) fn failure(result: &Result<RunReport, RuntimeError>) -> Option<Value> {
    match result {
        Ok(report) => match &report.outcome {
            RunOutcome::Ok(_) => None,
            RunOutcome::Failed(e) => Some(json!({"error": e.code, "message": e.message})),
            RunOutcome::Trapped(t) => Some(
                json!({"error": "ComponentTrap", "message": format!("{}: {}", t.reason.as_str(), t.message)}),
            ),
        },
        // A transient error is the broker's to redeliver, not a failed run.
        Err(e) if e.is_transient() => None,
        Err(e) => Some(json!({"error": "RunNotStarted", "message": e.to_string()})),
    }
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The retries and dead letters of every workspace, in the store.
pub(crate) struct Retries {
    store: Arc<dyn DocumentStore>,
    bus: Arc<BrokerBus>,
    instance: String,
}

impl Retries {
    pub(crate) fn new(
        store: Arc<dyn DocumentStore>,
        bus: Arc<BrokerBus>,
        instance: String,
    ) -> Self {
        Self {
            store,
            bus,
            instance,
        }
    }

    /// After `attempt` of `exec` failed with `error`: keeps its next attempt, or makes it a
    /// dead letter when it was the last (or its workspace has too many pending). A replay's
    /// failure is the dead letter's own business ([`Retries::failed_again`]).
    pub(crate) async fn failed(
        &self,
        exec: &Execution,
        attempt: &Attempt,
        error: Value,
    ) -> Result<(), StorageError> {
        let first = match attempt {
            Attempt::First => now_text(),
            Attempt::Retry {
                first_failed_at, ..
            } => first_failed_at.clone(),
            Attempt::Replay { .. } => return Ok(()),
        };
        let attempt = attempt.number();
        let Some(policy) = exec.automation.retry else {
            return Ok(());
        };
        let Some(run) = StoredRun::of(exec) else {
            return Ok(());
        };
        let ws = run.workspace_id.clone();
        if attempt < policy.attempts {
            let pending = self
                .store
                .find(
                    &collections::RETRIES,
                    "workspaceId",
                    &json!(ws),
                    MAX_PENDING,
                )
                .await?;
            if (pending.len() as u32) < MAX_PENDING {
                let due = Utc::now().timestamp_millis()
                    + i64::try_from(policy.delay_before(attempt + 1).as_millis())
                        .unwrap_or(i64::MAX);
                let retry = PendingRetry {
                    workspace_id: ws,
                    run,
                    attempt: attempt + 1,
                    due_at: due,
                    state: "pending".into(),
                    claimed_by: None,
                    claimed_at: None,
                    error,
                    first_failed_at: first,
                    last_failed_at: now_text(),
                };
                let id = format!("rt-{}", uuid::Uuid::new_v4().simple());
                let body = serde_json::to_value(&retry).unwrap_or_default();
                self.store
                    .put(&collections::RETRIES, &id, &body, Expect::Absent)
                    .await?;
                return Ok(());
            }
            tracing::warn!(workspace_id = %ws, limit = MAX_PENDING, "too many pending retries: the failed run becomes a dead letter now");
        }
        self.dead_letter(run, attempt, error, first).await
    }

    /// A retry whose automation or app instance is gone: a dead letter now, with why.
    pub(crate) async fn orphaned(
        &self,
        retry: &PendingRetry,
        why: String,
    ) -> Result<(), StorageError> {
        let error = json!({"error": "AutomationGone", "message": why});
        self.dead_letter(
            retry.run.clone(),
            retry.attempt.saturating_sub(1),
            error,
            retry.first_failed_at.clone(),
        )
        .await
    }

    async fn dead_letter(
        &self,
        run: StoredRun,
        attempts: u32,
        error: Value,
        first_failed_at: String,
    ) -> Result<(), StorageError> {
        let ws = run.workspace_id.clone();
        let kept = self
            .store
            .find(
                &collections::DEAD_LETTERS,
                "workspaceId",
                &json!(ws),
                MAX_DEAD_LETTERS,
            )
            .await?;
        if kept.len() as u32 >= MAX_DEAD_LETTERS
            && let Some(oldest) = kept.first()
        {
            self.store
                .delete(&collections::DEAD_LETTERS, &oldest.id, Expect::Any)
                .await?;
        }
        let letter = DeadLetter {
            id: format!(
                "dl-{:013}-{}",
                Utc::now().timestamp_millis(),
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            workspace_id: ws,
            run,
            error,
            attempts,
            first_failed_at,
            last_failed_at: now_text(),
        };
        let body = serde_json::to_value(&letter).unwrap_or_default();
        self.store
            .put(
                &collections::DEAD_LETTERS,
                &letter.id,
                &body,
                Expect::Absent,
            )
            .await?;
        let payload = json!({"deadLetter": letter.to_json()});
        let context = WorkspaceId::new(&letter.workspace_id)
            .ok()
            .map(|ws| letter.run.context(&ws));
        if let Some(event) =
            context.and_then(|c| run_event(&c, types::AUTOMATIONS_DEADLETTERED, payload, c.depth))
            && let Err(e) = self.bus.publish(event).await
        {
            tracing::warn!(error = %e, "could not announce a dead letter");
        }
        Ok(())
    }

    /// The retries due now (and those whose claim expired), claimed for this instance.
    pub(crate) async fn claim_due(&self) -> Result<Vec<(String, PendingRetry)>, StorageError> {
        let now = Utc::now().timestamp_millis();
        let lease = i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX);
        let mut docs: Vec<Document> = self
            .store
            .find_all(&collections::RETRIES, "state", &json!("pending"))
            .await?;
        docs.extend(
            self.store
                .find_all(&collections::RETRIES, "state", &json!("running"))
                .await?,
        );
        let mut claimed = Vec::new();
        for doc in docs {
            if claimed.len() >= CLAIMS_PER_POLL {
                break;
            }
            let Ok(mut retry) = serde_json::from_value::<PendingRetry>(doc.body.clone()) else {
                tracing::warn!(id = %doc.id, "unreadable retry dropped");
                self.store
                    .delete(&collections::RETRIES, &doc.id, Expect::Version(doc.version))
                    .await?;
                continue;
            };
            let due = match retry.state.as_str() {
                "pending" => retry.due_at <= now,
                _ => retry.claimed_at.is_none_or(|at| at + lease <= now),
            };
            if !due {
                continue;
            }
            retry.state = "running".into();
            retry.claimed_by = Some(self.instance.clone());
            retry.claimed_at = Some(now);
            let body = serde_json::to_value(&retry).unwrap_or_default();
            match self
                .store
                .put(
                    &collections::RETRIES,
                    &doc.id,
                    &body,
                    Expect::Version(doc.version),
                )
                .await
            {
                Ok(_) => claimed.push((doc.id, retry)),
                // Another instance claimed it first.
                Err(e) if e.kind() == refract_core::ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Ok(claimed)
    }

    /// Forgets a retry once its attempt ran (a new failure made its own record).
    pub(crate) async fn done(&self, id: &str) -> Result<(), StorageError> {
        self.store
            .delete(&collections::RETRIES, id, Expect::Any)
            .await
            .map(|_| ())
    }

    /// A page of `workspace`'s dead letters, oldest first, after `after`.
    pub(crate) async fn dead_letters(
        &self,
        workspace: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StorageError> {
        let docs = self
            .store
            .find_after(
                &collections::DEAD_LETTERS,
                "workspaceId",
                &json!(workspace),
                after,
                limit,
            )
            .await?;
        Ok(docs
            .into_iter()
            .filter_map(|d| serde_json::from_value(d.body).ok())
            .collect())
    }

    /// The broker's own dead letters of `workspace`'s events (entries the runtime's consumer
    /// group gave up on after repeated transient failures), among the newest
    /// [`BROKER_SCAN`] of every workspace, newest first.
    pub(crate) async fn broker_dead_letters(&self, workspace: &str) -> Vec<Value> {
        let letters = match self.bus.broker_dead_letters(BROKER_SCAN).await {
            Ok(letters) => letters,
            Err(e) => {
                tracing::warn!(error = %e, "the broker's dead letters are unreadable");
                return Vec::new();
            }
        };
        letters
            .into_iter()
            .filter(|l| l.group == crate::triggering::GROUP)
            .filter_map(|l| {
                let event: refract_core::Event = serde_json::from_str(&l.raw).ok()?;
                let ws = event.source.workspace_id.as_ref()?;
                (ws.as_str() == workspace).then(|| {
                    json!({"id": l.id, "source": "broker", "event": {"id": event.id, "type": event.event_type,
                        "payload": event.payload}, "error": {"error": "DeliveryFailed", "message": l.error},
                        "attempts": l.deliveries, "correlationId": event.source.correlation_id})
                })
            })
            .collect()
    }

    /// Dead letter `id` of `workspace`, with its version.
    pub(crate) async fn dead_letter_of(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Option<(DeadLetter, u64)>, StorageError> {
        let Some(doc) = self.store.get(&collections::DEAD_LETTERS, id).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_value::<DeadLetter>(doc.body)
            .ok()
            .filter(|d| d.workspace_id == workspace)
            .map(|d| (d, doc.version)))
    }

    /// Records another failed attempt of a dead letter (a replay that failed).
    pub(crate) async fn failed_again(
        &self,
        mut letter: DeadLetter,
        version: u64,
        error: Value,
    ) -> Result<DeadLetter, StorageError> {
        letter.attempts += 1;
        letter.error = error;
        letter.last_failed_at = now_text();
        let body = serde_json::to_value(&letter).unwrap_or_default();
        self.store
            .put(
                &collections::DEAD_LETTERS,
                &letter.id,
                &body,
                Expect::Version(version),
            )
            .await?;
        Ok(letter)
    }

    /// Deletes dead letter `id`; `false` when it was not there.
    pub(crate) async fn delete_dead_letter(&self, id: &str) -> Result<bool, StorageError> {
        self.store
            .delete(&collections::DEAD_LETTERS, id, Expect::Any)
            .await
    }
}
