//! Schemas of the answers (and the search body) the events service builds as JSON values
//! rather than serializes from a type: the OpenAPI document describes them with these types,
//! which are never serialized themselves. A comment above each one names the function that
//! builds the shape it describes (not in its doc, which becomes the schema's description):
//! keep the two together. The event envelope itself is [`refract_core::Event`], whose schema
//! lives with it.

use refract_core::Event;
use refract_core::model::AutomationKind;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `{result: {events}}`: a page of the workspace's history.
// Built by `crate::api::history`.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// The page.
    pub result: EventPageResult,
}

/// The events of a history page.
#[derive(Serialize, ToSchema)]
pub struct EventPageResult {
    /// The events the caller may read, newest first unless `sort=asc` (empty when a long-poll
    /// ends without news).
    pub events: Vec<Event>,
}

/// One sort key of a search: `createdAt` or `id`.
// Read by `crate::search::to_query` (`SortKey`).
#[derive(Serialize, ToSchema)]
pub struct SearchSort {
    /// `createdAt` or `id`.
    pub field: String,
    /// `asc` or `desc` (default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

/// The body of `POST …/search`: a condition tree over the history's indexed fields, sort,
/// projection and paging. Search-engine bodies (`query`, `aggs`, `runtime_mappings`,
/// `track_total_hits`) are refused with 400 `InvalidQuery`.
// Read by `crate::search::parse` (`SearchBody`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    /// `events` (the only scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The condition: `{and: [condition]}` (1 to 20, nested at most 5 deep), `{text}` or a
    /// leaf `{field, op, value}` (`type` `eq`/`in`/`prefix`, `createdAt` `gt`/`gte`/`lt`/`lte`,
    /// `id` `gt`/`lt`, `source.correlationId` `eq`, `eq` on `payload.*`, `source.*`,
    /// `target.*`, `error.*`, `options.*`); at most 50 leaves. A recursive tree: described,
    /// not typed.
    #[serde(rename = "where", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub condition: Option<Value>,
    /// Sort keys (the last one decides).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<Vec<SearchSort>>,
    /// Dotted paths to keep of each document (at most 50); the whole events without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// The page, from 0 (page × limit ≤ 10,000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Documents per page, 1 to 500 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Count every match in `size` instead of capping it at 10,000.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_total: Option<bool>,
}

/// `{size, documents}`: what a search found.
// Built by `crate::api::search`.
#[derive(Serialize, ToSchema)]
pub struct SearchAnswer {
    /// How many events match (capped at 10,000 unless `trackTotal`).
    pub size: u64,
    /// The page's events, or with `fields` the parts of each event at those paths (so each
    /// document is an `Event` or any subset of one: typed as an object).
    #[schema(value_type = Vec<Object>)]
    pub documents: Vec<Value>,
}

/// `{result: {runs}}`: a page of runs.
// Built by `crate::runs::list`.
#[derive(Serialize, ToSchema)]
pub struct RunPage {
    /// The page.
    pub result: RunPageResult,
}

/// The runs of a page.
#[derive(Serialize, ToSchema)]
pub struct RunPageResult {
    /// The runs, newest first (oldest first after `afterId`).
    pub runs: Vec<RunSummary>,
}

/// What started a run: `{type, value, id?}`.
// `refract_dsl::setup::SetupTrigger`, as `refract_runtime`'s report writes it.
#[derive(Serialize, ToSchema)]
pub struct RunTrigger {
    /// `event`, `endpoint`, `schedule` or `automation`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event type, endpoint name, cron expression or calling automation's slug.
    pub value: String,
    /// The triggering event's id, for an event trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `success` or `error`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The run ended with an output.
    Success,
    /// The run failed, or could not start.
    Error,
}

/// Why a run failed.
#[derive(Serialize, ToSchema)]
pub struct RunError {
    /// The stable error code (`ComponentTrap`, a guest's own code, …).
    pub error: String,
    /// Human-readable explanation.
    pub message: String,
    /// Structured context (the guest's own JSON, cut to the preview size), or null.
    pub details: Value,
}

/// A run as its list shows it. The members come from the run's
/// `runtime.automations.executed` record: each is null when the record lacks it.
// Built by `crate::runs::run` (`whole` false).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// The run's id.
    #[schema(required = true)]
    pub run_id: Option<String>,
    /// The id of the run's record in the history: the cursor of the next page (`beforeId`).
    #[schema(required = true)]
    pub record_id: Option<String>,
    /// The automation's slug.
    #[schema(required = true)]
    pub automation: Option<String>,
    /// How the automation is implemented.
    #[schema(required = true)]
    pub kind: Option<AutomationKind>,
    /// How it ended.
    #[schema(required = true)]
    pub status: Option<RunStatus>,
    /// What started it.
    #[schema(required = true)]
    pub trigger: Option<RunTrigger>,
    /// When it started (ISO 8601, milliseconds).
    #[schema(required = true)]
    pub started_at: Option<String>,
    /// How long it ran, in milliseconds (0 when it could not start).
    #[schema(required = true)]
    pub duration: Option<u64>,
    /// How long it waited for the workspace's throttle, in milliseconds.
    #[schema(required = true)]
    pub throttled: Option<u64>,
    /// The id shared by everything its trigger caused.
    pub correlation_id: String,
    /// Why it failed (failed runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RunError>,
    /// How many lines its log kept.
    pub log_lines: u64,
}

/// One line of a run's log.
// Written by `refract_runtime`'s `report::log_lines`.
#[derive(Serialize, ToSchema)]
pub struct RunLogLine {
    /// Milliseconds since the run started.
    pub at: u64,
    /// How important it is.
    pub level: RunLogLevel,
    /// Who wrote it.
    pub source: RunLogSource,
    /// The text (secrets redacted).
    pub message: String,
}

/// How important a log line is.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunLogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected the run survived.
    Warn,
    /// A failure.
    Error,
}

/// Who wrote a log line: the guest's `log` import, its stdout or stderr, or the host.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunLogSource {
    /// The guest's `log` import.
    Log,
    /// A line the guest wrote to stdout.
    Stdout,
    /// A line the guest wrote to stderr.
    Stderr,
    /// The host, about the run.
    Host,
}

/// A run whole: its summary with its input, output and log.
// Built by `crate::runs::run` (`whole` true).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// The summary.
    #[serde(flatten)]
    pub summary: RunSummary,
    /// The run's input (its JSON text, cut, when over the preview size), or null.
    pub input: Value,
    /// The run's output (cut like the input); null for a failed run.
    pub output: Value,
    /// Its log (empty for a run that could not start).
    pub logs: Vec<RunLogLine>,
    /// Lines dropped past the log's bounds.
    pub logs_dropped: u64,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use refract_core::{Event, EventId, EventType};
    use serde_json::{Value, json};

    fn document() -> Value {
        let mut doc = crate::api::api().into_openapi();
        refract_http::openapi::finish(&mut doc);
        serde_json::from_str(&doc.to_json().expect("the document serializes")).expect("JSON")
    }

    /// The required and all members of schema `name`, through `allOf` (flattened types).
    fn members(doc: &Value, name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let schema = &doc["components"]["schemas"][name];
        let mut required = BTreeSet::new();
        let mut all = BTreeSet::new();
        let parts = match schema["allOf"].as_array() {
            Some(parts) => parts.clone(),
            None => vec![schema.clone()],
        };
        for part in parts {
            let part = match part["$ref"].as_str() {
                Some(r) => {
                    let (req, props) = members(doc, r.trim_start_matches("#/components/schemas/"));
                    required.extend(req);
                    all.extend(props);
                    continue;
                }
                None => part,
            };
            for r in part["required"].as_array().into_iter().flatten() {
                required.insert(r.as_str().expect("a name").to_owned());
            }
            for k in part["properties"].as_object().into_iter().flatten() {
                all.insert(k.0.clone());
            }
        }
        (required, all)
    }

    fn keys(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect()
    }

    /// A `runtime.automations.executed` record as the runtime's report writes it.
    fn record(failed: bool) -> Event {
        let mut payload = json!({
            "runId": "r1", "slug": "echo", "kind": "dsl",
            "trigger": {"type": "event", "value": "orders.created", "id": "1-0"},
            "status": if failed { "error" } else { "success" },
            "payload": {"a": 1}, "output": if failed { Value::Null } else { json!({"ok": true}) },
            "logs": [{"at": 3, "level": "info", "source": "log", "message": "hi"}],
            "logsDropped": 0, "duration": 12, "throttled": 0,
            "startedAt": "2026-12-01T10:00:00.000Z",
        });
        if failed {
            payload["error"] = json!({"error": "Boom", "message": "it broke", "details": null});
        }
        let Value::Object(payload) = payload else {
            unreachable!()
        };
        let mut event = Event::new(
            EventType::new("runtime.automations.executed").expect("a type"),
            None,
            payload,
        );
        event.id = Some(EventId::from_parts(1, 0));
        event
    }

    #[test]
    fn runs_built_as_values_have_their_schemas_members() {
        let doc = document();
        let (required, all) = members(&doc, "RunSummary");
        let (whole_required, whole_all) = members(&doc, "Run");
        for failed in [false, true] {
            let summary = keys(&crate::runs::run(&record(failed), false));
            assert!(required.is_subset(&summary), "{required:?} ⊄ {summary:?}");
            assert!(summary.is_subset(&all), "{summary:?} ⊄ {all:?}");
            let whole = keys(&crate::runs::run(&record(failed), true));
            assert!(
                whole_required.is_subset(&whole),
                "{whole_required:?} ⊄ {whole:?}"
            );
            assert!(whole.is_subset(&whole_all), "{whole:?} ⊄ {whole_all:?}");
        }
        assert!(!required.contains("error") && all.contains("error"));
    }

    #[test]
    fn the_event_schema_has_the_envelopes_members() {
        let doc = document();
        let (required, all) = members(&doc, "Event");
        let event = serde_json::to_value(record(true)).expect("JSON");
        assert!(required.is_subset(&keys(&event)));
        assert!(keys(&event).is_subset(&all));
        assert_eq!(
            required,
            ["type", "source", "payload", "createdAt"]
                .map(String::from)
                .into()
        );
    }
}
