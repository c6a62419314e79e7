//! Client emits (`POST …/events` and the WebSocket `emit` frame): the same checks, then
//! publication in request order (`spec/http-api.md` §7.2).

use axum::http::StatusCode;
use refract_core::model::Role;
use refract_core::platform;
use refract_core::{Event, EventOptions, EventType, Source, Target, WorkspaceId};
use refract_http::{ApiError, Caller};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::{EventsState, MAX_EMIT_BATCH, topics};

/// One event as a client sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmitEvent {
    /// The event type: dotted by convention (`orders.created`); the platform's own types are
    /// reserved.
    #[serde(rename = "type")]
    #[schema(pattern = "^[A-Za-z0-9 ._-]{1,128}$")]
    pub event_type: String,
    /// The event's data: a JSON object (none is `{}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Value>,
    /// `{userId?, sessionId?, userTopic?, currentSocket?}`: who receives it (another user,
    /// session or a topic the caller has not joined: editors and above).
    #[serde(default)]
    pub target: Option<Target>,
    /// `{persist?}`.
    #[serde(default)]
    pub options: Option<EventOptions>,
    /// Accepted and ignored: the server sets the source.
    #[serde(default, rename = "source")]
    pub _source: Option<Value>,
}

/// Who emits, and from where.
pub(crate) struct Emitter<'a> {
    pub caller: &'a Caller,
    pub workspace: &'a WorkspaceId,
    pub role: Role,
    /// The WebSocket the events come from (`source.socketId`).
    pub socket_id: Option<&'a str>,
}

/// Checks every event, then publishes them in order, all or none; returns the envelopes
/// with their final ids.
pub(crate) async fn emit(
    state: &EventsState,
    who: &Emitter<'_>,
    raw: Vec<EmitEvent>,
) -> Result<Vec<Event>, ApiError> {
    if raw.is_empty() || raw.len() > MAX_EMIT_BATCH {
        return Err(ApiError::validation(
            "events",
            format!("1 to {MAX_EMIT_BATCH} events"),
        ));
    }
    let mut events = Vec::with_capacity(raw.len());
    for (i, e) in raw.into_iter().enumerate() {
        events.push(prepare(state, who, i, e).await?);
    }
    let ids = state
        .broker
        .publish_all(events.clone())
        .await
        .map_err(|e| ApiError::from_kind(e.kind(), e))?;
    for (event, id) in events.iter_mut().zip(ids) {
        event.id = Some(id);
    }
    Ok(events)
}

async fn prepare(
    state: &EventsState,
    who: &Emitter<'_>,
    i: usize,
    e: EmitEvent,
) -> Result<Event, ApiError> {
    let invalid = |message: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidEventError",
            format!("events[{i}]: {message}"),
        )
    };
    let event_type = EventType::new(e.event_type).map_err(|err| invalid(err.to_string()))?;
    // The platform's own types (§7.2): the same rule as for automations' emits.
    platform::check_emittable(&event_type, platform::Emitter::Client).map_err(|e| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "ReservedEventType",
            format!("events[{i}]: {e}"),
        )
    })?;
    let payload = match e.payload {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(invalid("payload must be a JSON object".into())),
    };
    if let Some(target) = &e.target {
        check_target(state, who, i, target).await?;
    }
    let mut event = Event::new(event_type, Some(who.workspace.clone()), payload);
    event.source = Source {
        workspace_id: Some(who.workspace.clone()),
        user_id: who.caller.user_id.clone(),
        session_id: who.caller.session_id.clone(),
        correlation_id: who.caller.correlation_id.clone(),
        socket_id: who.socket_id.map(str::to_string),
        ..Source::default()
    };
    event.target = e.target;
    event.options = e.options;
    event.seal(&Default::default()).map_err(|err| match err {
        refract_core::ValidationError::TooLarge { .. } => ApiError::from(err),
        other => invalid(other.to_string()),
    })?;
    Ok(event)
}

/// A target naming another user or session, or a topic the caller has not joined, needs the
/// editor role (`manage events`).
async fn check_target(
    state: &EventsState,
    who: &Emitter<'_>,
    i: usize,
    target: &Target,
) -> Result<(), ApiError> {
    if who.role >= Role::Editor {
        return Ok(());
    }
    let forbidden = |what: &str| {
        ApiError::forbidden(format!(
            "events[{i}]: targeting {what} needs the editor role"
        ))
    };
    if target
        .user_id
        .as_ref()
        .is_some_and(|u| Some(u) != who.caller.user_id.as_ref())
    {
        return Err(forbidden("another user"));
    }
    if target
        .session_id
        .as_ref()
        .is_some_and(|s| Some(s) != who.caller.session_id.as_ref())
    {
        return Err(forbidden("another session"));
    }
    if let (Some(topic), Some(user)) = (&target.user_topic, &who.caller.user_id) {
        let joined = topics::joined(state.cache.as_ref(), who.workspace, user)
            .await
            .map_err(|e| ApiError::from_kind(e.kind(), e))?;
        if !joined.contains(topic) {
            return Err(forbidden("a user topic you have not joined"));
        }
    }
    Ok(())
}
