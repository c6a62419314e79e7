//! Schemas of the answers the runtime's HTTP handlers build as JSON values rather than
//! serialize from a type: the OpenAPI document describes them with these types, which are
//! never serialized themselves. A comment above each one names the function that builds the
//! shape it describes (not in its doc, which becomes the schema's description): keep the two
//! together.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// The sandbox limits in force.
// Built by `crate::quotas::view` (`sandbox`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QuotaSandbox {
    /// Linear memory of a run, in MiB.
    #[serde(rename = "maxMemoryMiB")]
    pub max_memory_mib: u32,
    /// Wall-clock time of a run, in milliseconds.
    pub max_timeout_ms: u64,
    /// CPU time of a run, in milliseconds.
    pub cpu_ms: u64,
    /// Largest output, in KiB.
    #[serde(rename = "maxOutputKiB")]
    pub max_output_kib: u64,
    /// Largest streamed answer, in KiB.
    #[serde(rename = "maxStreamKiB")]
    pub max_stream_kib: u64,
    /// Events a run may emit.
    pub max_emits: u32,
    /// HTTP requests a run may make.
    pub max_fetches: u32,
    /// Waits a run may do.
    pub max_waits: u32,
    /// How deep automations may call automations.
    pub max_call_depth: u32,
}

/// The hosts runs may reach.
// Built by `crate::quotas::view` (`egress`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QuotaEgress {
    /// The platform's allow-list for the workspace.
    pub allow_hosts: Vec<String>,
    /// The owner's narrower list (`PUT …/quotas/egress`); null when it was not narrowed.
    #[schema(required = true)]
    pub narrowed_to: Option<Vec<String>>,
}

/// A token bucket: a sustained rate and a burst.
// Built by `crate::quotas::view` (`bucket`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QuotaBucket {
    /// Tokens added per second.
    pub per_second: f64,
    /// Most tokens kept.
    pub burst: u32,
}

/// The workspace's throttles: null when it has none.
// Built by `crate::quotas::view` (`throttles`).
#[derive(Serialize, ToSchema)]
pub(crate) struct QuotaThrottles {
    /// Runs (null: not throttled).
    #[schema(required = true)]
    pub runs: Option<QuotaBucket>,
    /// Emits (null: not throttled).
    #[schema(required = true)]
    pub emits: Option<QuotaBucket>,
}

/// The caps of the runs' context scopes.
// Built by `crate::quotas::view` (`contexts`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QuotaContexts {
    /// Variables in one scope.
    pub variables_per_scope: u64,
    /// Bytes of one run's `run` scope.
    pub run_scope_bytes: u64,
    /// Bytes of every `run` scope of the workspace together.
    pub workspace_run_scopes_bytes: u64,
    /// Bytes of a persistent scope (`global`, `user`, `session`).
    pub persistent_scope_bytes: u64,
}

/// How many event-triggered runs run at once on one instance.
// Built by `crate::quotas::view` (`concurrency`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QuotaConcurrency {
    /// Of this workspace.
    pub event_runs_per_instance: u64,
    /// Of every workspace.
    pub all_workspaces_per_instance: u64,
}

/// How long the workspace's history is kept.
// Built by `crate::quotas::view` (`history`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QuotaHistory {
    /// Days events are kept.
    pub retention_days: u32,
    /// Whether the workspace's config chose it (else the platform default).
    pub set_by_workspace: bool,
}

/// Counters of one day, or of a period.
// Built by `crate::usage::Usage::between` (one per `UsageMetric`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageCounts {
    /// Runs.
    pub runs: i64,
    /// Milliseconds of run time.
    pub run_ms: i64,
    /// Events emitted by runs.
    pub emits: i64,
    /// HTTP requests made by runs.
    pub fetches: i64,
    /// Bytes stored in the history.
    pub stored_bytes: i64,
}

/// The workspace's effective limits and today's usage.
// Built by `super::quotas::current` (`crate::quotas::view` plus `usage`, `workspaceId`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Quotas {
    /// The sandbox limits in force.
    pub sandbox: QuotaSandbox,
    /// The hosts runs may reach.
    pub egress: QuotaEgress,
    /// The workspace's throttles.
    pub throttles: QuotaThrottles,
    /// The caps of the context scopes.
    pub contexts: QuotaContexts,
    /// Concurrency of event-triggered runs.
    pub concurrency: QuotaConcurrency,
    /// History retention.
    pub history: QuotaHistory,
    /// Whether a superadmin or the owner changed the limits (`PUT …/quotas`, `…/egress`).
    pub changed_live: bool,
    /// Today's usage (UTC).
    pub usage: UsageCounts,
    /// The workspace.
    pub workspace_id: String,
}

/// One UTC day's usage.
// Built by `crate::usage::Usage::between` (`days`).
#[derive(Serialize, ToSchema)]
pub(crate) struct UsageDay {
    /// The day (`YYYY-MM-DD`).
    pub day: NaiveDate,
    /// Its counters.
    #[serde(flatten)]
    pub counts: UsageCounts,
}

/// Usage per UTC day of a period, with the total.
// Built by `super::quotas::usage` (`crate::usage::Usage::between` plus `from`, `to`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Usage {
    /// Every day of the period, oldest first.
    pub days: Vec<UsageDay>,
    /// The period's total.
    pub total: UsageCounts,
    /// The first day.
    pub from: NaiveDate,
    /// The last day.
    pub to: NaiveDate,
}

/// `{error, message}`: why a run failed.
// Built by `crate::retries::failure`.
#[derive(Serialize, ToSchema)]
pub(crate) struct RunFailure {
    /// The stable error code (`ComponentTrap`, `RunNotStarted`, a guest's own code, …).
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
}

/// What a run dead letter is: `run`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunLetterSource {
    /// A run that failed every attempt of its retry policy.
    Run,
}

/// What a broker dead letter is: `broker`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BrokerLetterSource {
    /// An event the broker gave up delivering to the runtime.
    Broker,
}

/// An event trigger: `{type: event, value, id}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventLetterTrigger {
    /// `event`.
    #[serde(rename = "type")]
    pub kind: EventTriggerType,
    /// The event type.
    pub value: String,
    /// The event's id.
    pub id: String,
}

/// `event`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EventTriggerType {
    /// An event started the run.
    Event,
}

/// A schedule trigger: `{type: schedule, value, time}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ScheduleLetterTrigger {
    /// `schedule`.
    #[serde(rename = "type")]
    pub kind: ScheduleTriggerType,
    /// The cron expression.
    pub value: String,
    /// The tick's time.
    pub time: String,
}

/// `schedule`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScheduleTriggerType {
    /// A schedule's tick started the run.
    Schedule,
}

/// What started a dead run: an event or a schedule's tick (the triggers a retry policy
/// applies to).
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum LetterTrigger {
    /// An event.
    Event(EventLetterTrigger),
    /// A schedule's tick.
    Schedule(ScheduleLetterTrigger),
}

/// A run that failed every attempt of its automation's retry policy.
// Built by `crate::retries::DeadLetter::to_json`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeadLetter {
    /// The dead letter's id.
    pub id: String,
    /// `run`.
    pub source: RunLetterSource,
    /// The automation's slug.
    pub automation: String,
    /// What started the run.
    pub trigger: LetterTrigger,
    /// The run's input as its report shows it.
    pub payload: Value,
    /// The last attempt's error.
    pub error: RunFailure,
    /// Attempts made (replays included).
    pub attempts: u32,
    /// When the first attempt failed.
    pub first_failed_at: String,
    /// When the last attempt failed.
    pub last_failed_at: String,
    /// The run's correlation id.
    pub correlation_id: String,
    /// The app instance's full slug, for an automation of an instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_instance: Option<String>,
}

/// The event of a broker dead letter.
// Built by `crate::retries::Retries::broker_dead_letters` (`event`).
#[derive(Serialize, ToSchema)]
pub(crate) struct BrokerLetterEvent {
    /// The event's id (null if the entry carried none).
    #[schema(required = true)]
    pub id: Option<String>,
    /// The event's type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's payload.
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// `{error: DeliveryFailed, message}`: why the broker gave up.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryFailure {
    /// `DeliveryFailed`.
    pub error: DeliveryFailed,
    /// The last handler error.
    pub message: String,
}

/// `DeliveryFailed`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
pub(crate) enum DeliveryFailed {
    /// The broker gave up delivering the event.
    DeliveryFailed,
}

/// An event of the workspace the broker gave up delivering to the runtime.
// Built by `crate::retries::Retries::broker_dead_letters`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BrokerDeadLetter {
    /// The broker entry's id.
    pub id: String,
    /// `broker`.
    pub source: BrokerLetterSource,
    /// The event.
    pub event: BrokerLetterEvent,
    /// Why it was given up.
    pub error: DeliveryFailure,
    /// How many times it was delivered.
    pub attempts: u32,
    /// The event's correlation id.
    pub correlation_id: String,
}

/// The dead letters of a page.
// Built by `super::deadletters::list` (`result`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeadLetterPageResult {
    /// The run dead letters, oldest first.
    pub dead_letters: Vec<DeadLetter>,
    /// The cursor of the next page (`after`); null on the last page.
    #[schema(required = true)]
    pub next: Option<String>,
    /// The broker's dead letters of the workspace's events (first page only; empty after).
    pub broker: Vec<BrokerDeadLetter>,
}

/// `{result: {deadLetters, next, broker}}`.
// Built by `super::deadletters::list`.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeadLetterPage {
    /// The page.
    pub result: DeadLetterPageResult,
}

/// `success`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ReplaySucceededStatus)]
pub(crate) enum SuccessStatus {
    /// The run succeeded.
    Success,
}

/// `error`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ReplayFailedStatus)]
pub(crate) enum ErrorStatus {
    /// The run failed again.
    Error,
}

/// A replay that succeeded: the dead letter is removed.
// Built by `super::deadletters::replay` (`None` failure).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplaySucceeded {
    /// `success`.
    pub status: SuccessStatus,
    /// The replay's run id.
    pub run_id: String,
    /// The run's output (any JSON).
    pub output: Value,
}

/// A replay that failed: the failure is recorded on the dead letter.
// Built by `super::deadletters::replay` (`Some` failure).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplayFailed {
    /// `error`.
    pub status: ErrorStatus,
    /// The replay's run id.
    pub run_id: String,
    /// Why it failed.
    pub error: RunFailure,
    /// The dead letter, with this attempt counted.
    pub dead_letter: DeadLetter,
}

/// What a replay answers: the run's output, or its failure with the dead letter.
// Built by `super::deadletters::replay`.
#[expect(
    dead_code,
    reason = "schema-only: the handler writes the value as JSON"
)]
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Replay {
    /// It succeeded.
    Succeeded(ReplaySucceeded),
    /// It failed again.
    Failed(Box<ReplayFailed>),
}

/// `{id}`: the removed dead letter's id.
// Built by `super::deadletters::remove`.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeletedLetter {
    /// The removed dead letter's id.
    pub id: String,
}
