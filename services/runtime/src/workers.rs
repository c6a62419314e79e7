//! The background work of an instance: the event consumer (group `runtime`), the fan-out
//! listener (index updates and waits) and the scheduler. Triggers only: every run goes through
//! the [`Executor`](crate::executor::Executor).

use refract_core::platform::types;
use std::future::Future;
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use refract_broker::{Delivery, Subscriber};
use refract_core::platform::service;
use refract_core::{CorrelationId, Event, EventType};
use refract_host::{ComponentDigest, RunContext, ScheduleTick, Trigger, WitEvent};
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

use crate::apps::{APP_EVENTS, AppScope};
use crate::error::RuntimeError;
use crate::fair::FairPermits;
use crate::retries::{self, Attempt};
use crate::run::{Execution, TriggerInfo, TriggerKind, run_context};
use crate::schedule::{Fire, Planner, claim_tick, tick_lock};
use crate::state::RuntimeState;
use crate::usage;
use refract_core::platform::triggers_automations;

/// Runs the event consumer, the fan-out listener and the scheduler until `shutdown` resolves
/// (then returns `Ok`) or the broker closes (an error). Call once per state.
pub async fn run_workers(
    state: RuntimeState,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RuntimeError> {
    let subs = state
        .take_subscriptions()
        .ok_or_else(|| RuntimeError::WorkersStarted)?;
    tracing::info!(instance_id = %state.config().instance_id, "runtime workers started");
    let result = tokio::select! {
        r = consume(state.clone(), subs.group) => r,
        r = listen(state.clone(), subs.fan_out) => r,
        () = schedule(state.clone()) => Ok(()),
        () = retry(state.clone()) => Ok(()),
        () = count_usage(state.clone()) => Ok(()),
        () = shutdown => Ok(()),
    };
    tracing::info!(instance_id = %state.config().instance_id, "runtime workers stopped");
    result
}

/// Adds this instance's usage counts to the shared counters every [`usage::FLUSH_EVERY`].
async fn count_usage(state: RuntimeState) {
    let mut tick = tokio::time::interval(usage::FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.executor().usage().flush().await;
    }
}

/// Retry worker: every [`retries::POLL`], claims the failed runs whose next attempt is due (on
/// whichever instance failed them) and runs each again; a retry whose automation or instance
/// is gone becomes a dead letter at once.
async fn retry(state: RuntimeState) {
    let mut tick = tokio::time::interval(retries::POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let executor = state.executor().clone();
        let claimed = match executor.retries().claim_due().await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "could not read due retries");
                continue;
            }
        };
        for (id, pending) in claimed {
            let executor = executor.clone();
            tokio::spawn(async move {
                let attempt = Attempt::Retry {
                    number: pending.attempt,
                    first_failed_at: pending.first_failed_at.clone(),
                };
                match pending.run.execution(executor.index()) {
                    Ok(exec) => {
                        if let Err(e) = executor.attempt(&exec, attempt).await
                            && e.is_transient()
                        {
                            // Not run: leave the claim to expire and be taken again.
                            tracing::warn!(error = %e, "a retry could not start; it will be tried again");
                            return;
                        }
                    }
                    Err(gone) => {
                        if let Err(e) = executor.retries().orphaned(&pending, gone).await {
                            tracing::warn!(error = %e, "an orphaned retry could not be dead-lettered");
                            return;
                        }
                    }
                }
                if let Err(e) = executor.retries().done(&id).await {
                    tracing::warn!(error = %e, "a finished retry could not be forgotten");
                }
            });
        }
    }
}

/// Group consumer: each event is handled by one instance; acknowledged once its runs are done.
async fn consume(state: RuntimeState, mut sub: Box<dyn Subscriber>) -> Result<(), RuntimeError> {
    let config = state.config();
    let total = config.max_concurrent_events;
    let permits = FairPermits::new(total, config.event_share());
    // Deliveries held at once: those running, and as many waiting for their workspace's share
    // (a workspace over its share does not stop the consumer from reading the others' events).
    let held = Arc::new(Semaphore::new(total.saturating_mul(2)));
    loop {
        let Ok(holding) = held.clone().acquire_owned().await else {
            return Ok(());
        };
        let delivery = sub.next().await?;
        let state = state.clone();
        let permits = permits.clone();
        tokio::spawn(async move {
            let workspace = delivery
                .event
                .source
                .workspace_id
                .as_ref()
                .map_or("", |w| w.as_str())
                .to_owned();
            let permit = permits.acquire(&workspace).await;
            let span = consumer_span(&delivery.event);
            crate::observe::record_pickup(&delivery.event);
            let started = std::time::Instant::now();
            tracing::Instrument::instrument(handle_event(&state, delivery), span).await;
            crate::observe::record_processed(started.elapsed());
            drop(permit);
            drop(holding);
        });
    }
}

/// The span of one consumed event: it continues the trace of the span that published it
/// (the envelope's `traceparent`), so the runs it starts join the emitter's trace.
fn consumer_span(event: &Event) -> tracing::Span {
    let span = tracing::info_span!("event", event_type = %event.event_type, correlation_id = %event.source.correlation_id);
    if let Some(parent) = &event.source.traceparent {
        refract_telemetry::propagation::set_parent(&span, parent);
    }
    span
}

fn wit_event(event: &Event) -> WitEvent {
    WitEvent {
        id: event
            .id
            .as_ref()
            .map(|i| i.as_str().to_owned())
            .unwrap_or_default(),
        type_: event.event_type.as_str().to_owned(),
        payload: serde_json::to_string(&event.payload).unwrap_or_else(|_| "{}".into()),
        source: serde_json::to_string(&event.source).unwrap_or_else(|_| "{}".into()),
    }
}

/// Runs every automation of the event's workspace listening to its type, then settles the
/// delivery: nack when a run could not start for a transient reason, else ack (a guest's
/// failure is reported, not retried).
async fn handle_event(state: &RuntimeState, delivery: Delivery) {
    let event = &delivery.event;
    let ty = event.event_type.as_str();
    if APP_EVENTS.contains(&ty) && ty != types::APPS_UNINSTALLED {
        // The new instance definition is loaded before its triggers run (§8.4), whatever the
        // fan-out listener of this instance has done so far.
        if let Err(e) = state.reload_for(event).await {
            tracing::warn!(event_type = ty, error = %e, "app instances not reloaded");
        }
    }
    let automations: Vec<_> = listeners(state, event)
        .into_iter()
        .flat_map(|(app, local)| {
            let key = app.as_ref().map_or_else(
                || {
                    event
                        .source
                        .workspace_id
                        .as_ref()
                        .map(|w| w.as_str().to_owned())
                        .unwrap_or_default()
                },
                |s| s.key.clone(),
            );
            state
                .index()
                .by_event(&key, &local)
                .into_iter()
                .map(move |a| (app.clone(), local.clone(), a))
        })
        .collect();
    if ty == types::AUTOMATIONS_CREATED || ty == types::AUTOMATIONS_UPDATED {
        announce_schedules(state, event).await;
    }
    let mut runs = Vec::with_capacity(automations.len());
    // Events sent by users and the platform start an interaction; those emitted by automations
    // continue one.
    let mut announce = event.source.automation_slug.is_none();
    // Most events start nothing (every run's own records among them): nothing is copied for them.
    if let Some(ws) = event
        .source
        .workspace_id
        .as_ref()
        .filter(|_| !automations.is_empty())
    {
        let wit = wit_event(event);
        let id = event.id.as_ref().map(|i| i.as_str().to_owned());
        let payload = json!({"payload": event.payload, "source": event.source, "id": id});
        for (app, local, automation) in automations {
            let ws = app.as_ref().map_or(ws, |s| &s.workspace);
            let mut wit = wit.clone();
            wit.type_ = local;
            let context = RunContext {
                socket_id: event.source.socket_id.clone(),
                ..run_context(
                    ws,
                    &automation.slug,
                    event.source.correlation_id.clone(),
                    event.source.user_id.clone(),
                    event.source.session_id.clone(),
                    event.source.automation_depth.unwrap_or(0),
                )
            };
            let exec = Execution {
                app,
                credentials: None,
                automation,
                trigger: Trigger::Event(wit),
                info: TriggerInfo {
                    kind: TriggerKind::Event,
                    value: ty.to_owned(),
                    id: id.clone(),
                },
                context,
                payload: payload.clone(),
                answer: None,
            };
            let executor = state.executor().clone();
            if std::mem::take(&mut announce) {
                executor.reports().announce(&exec, false).await;
            }
            runs.push(async move { executor.execute(&exec).await });
        }
    }
    let results = futures::future::join_all(runs).await;
    let transient = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .find(|e| e.is_transient())
        .map(ToString::to_string);
    let settled = match transient {
        Some(error) => delivery.nack(&error).await,
        None => delivery.ack().await,
    };
    if let Err(e) = settled {
        tracing::warn!(error = %e, "could not settle an event delivery");
    }
}

/// Who listens to `event`: the workspace itself (type as is), the app instances its type
/// reaches by prefix (type without it, §8.3), and the instances a lifecycle event is about
/// (unprefixed, §8.4).
fn listeners(state: &RuntimeState, event: &Event) -> Vec<(Option<Arc<AppScope>>, String)> {
    let Some(ws) = event.source.workspace_id.as_ref().map(|w| w.as_str()) else {
        return Vec::new();
    };
    let ty = event.event_type.as_str();
    let mut out = Vec::new();
    if triggers_automations(ty) {
        out.push((None, ty.to_owned()));
        out.extend(
            state
                .index()
                .route(ws, ty)
                .into_iter()
                .map(|(scope, rest)| (Some(scope), rest)),
        );
    }
    // The instances a lifecycle event is about hear it only from the workspaces service (a
    // forged `apps.published` would run every instance of the app, in every workspace).
    if !event.published_by(service::WORKSPACES) {
        return out;
    }
    let text = |k: &str| event.payload.get(k).and_then(serde_json::Value::as_str);
    match ty {
        types::APPS_INSTALLED | types::APPS_CONFIGURED | types::APPS_UNINSTALLED => {
            if let Some(scope) = text("slug").and_then(|slug| state.index().scope(ws, slug)) {
                out.push((Some(scope), ty.to_owned()));
            }
        }
        types::APPS_PUBLISHED | types::APPS_DELETED => {
            if let Some(app) = text("appSlug") {
                out.extend(
                    state
                        .index()
                        .scopes_of_app(app)
                        .into_iter()
                        .map(|s| (Some(s), ty.to_owned())),
                );
            }
        }
        _ => {}
    }
    out
}

/// `runtime.automations.scheduled` for an automation saved with schedules: emitted by the one
/// instance that consumed the save.
async fn announce_schedules(state: &RuntimeState, event: &Event) {
    if !event.published_by(service::WORKSPACES) {
        return;
    }
    let Some(automation) = event.payload.get("automation") else {
        return;
    };
    let schedules = automation
        .get("when")
        .and_then(|w| w.get("schedules"))
        .cloned()
        .unwrap_or_default();
    let disabled = automation
        .get("disabled")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if disabled || schedules.as_array().is_none_or(Vec::is_empty) {
        return;
    }
    let (Ok(ty), Some(ws)) = (
        EventType::new(types::AUTOMATIONS_SCHEDULED),
        event.source.workspace_id.clone(),
    ) else {
        return;
    };
    let mut payload = serde_json::Map::new();
    payload.insert(
        "slug".into(),
        automation.get("slug").cloned().unwrap_or_default(),
    );
    payload.insert("schedules".into(), schedules);
    let mut scheduled = Event::new(ty, Some(ws), payload);
    scheduled.source.correlation_id = event.source.correlation_id.clone();
    state.executor().reports().publish_event(scheduled).await;
}

/// Fan-out listener: every instance keeps its index current, fulfils its waits, and loads
/// newly uploaded components ahead of their first run.
async fn listen(state: RuntimeState, mut sub: Box<dyn Subscriber>) -> Result<(), RuntimeError> {
    loop {
        let delivery = sub.next().await?;
        let event = &delivery.event;
        state.index().apply(event);
        if matches!(
            event.event_type.as_str(),
            types::SECRETS_UPDATED | types::WORKSPACES_DELETED
        ) && let Some(ws) = &event.source.workspace_id
        {
            state.executor().forget_secrets(ws.as_str());
        }
        if event.event_type.as_str() == types::QUOTAS_UPDATED
            && event.published_by(service::RUNTIME)
            && let Some(ws) = &event.source.workspace_id
            && let Err(e) = crate::quotas::reload(
                state.inner.store.as_ref(),
                state.executor().sandboxes(),
                ws.as_str(),
            )
            .await
        {
            tracing::warn!(workspace_id = %ws, error = %e, "a workspace's new limits could not be read");
        }
        if APP_EVENTS.contains(&event.event_type.as_str())
            && let Err(e) = state.reload_for(event).await
        {
            tracing::warn!(event_type = %event.event_type, error = %e, "app instances not reloaded");
        }
        state.inner.waiters.dispatch(event);
        if event.event_type.as_str() == types::COMPONENTS_UPLOADED
            && event.published_by(service::WORKSPACES)
            && let Some(digest) = event
                .payload
                .get("digest")
                .and_then(|d| d.as_str())
                .and_then(ComponentDigest::parse)
        {
            let executor = state.executor().clone();
            tokio::spawn(async move { executor.warm(&digest).await });
        }
        // Fan-out deliveries have nothing to acknowledge; settle explicitly all the same.
        let _ = delivery.ack().await;
    }
}

/// Scheduler: every tick, fire the due schedule ticks this instance wins the lock of.
async fn schedule(state: RuntimeState) {
    let mut planner = Planner::new();
    let mut interval = tokio::time::interval(state.config().scheduler_tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        let now = Utc::now();
        planner.refresh(state.index(), now);
        for fire in planner.due(now) {
            let state = state.clone();
            tokio::spawn(async move { fire_tick(&state, fire).await });
        }
    }
}

/// Runs one tick if this instance takes its lock.
async fn fire_tick(state: &RuntimeState, fire: Fire) {
    let config = state.config();
    let key = tick_lock(
        &fire.workspace,
        &fire.automation.slug,
        &fire.lock,
        fire.tick,
    );
    match claim_tick(
        state.inner.cache.as_ref(),
        &key,
        &config.instance_id,
        config.tick_lock_ttl,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(workspace_id = %fire.workspace, automation = %fire.automation.slug, error = %e, "tick lock unavailable; tick skipped");
            return;
        }
    }
    // An app instance's schedule fires inside the instance, in its root workspace.
    let app = state.index().scope_of_key(&fire.workspace);
    let ws = match &app {
        Some(scope) => scope.workspace.clone(),
        None => match refract_core::WorkspaceId::new(&fire.workspace) {
            Ok(ws) => ws,
            Err(_) => return,
        },
    };
    let time = fire.tick.to_rfc3339_opts(SecondsFormat::Millis, true);
    let info = TriggerInfo {
        kind: TriggerKind::Schedule,
        value: fire.expression.clone(),
        id: None,
    };
    // The run's initial locals (automation-dsl §2.7).
    let payload = json!({"payload": {"workspaceId": ws, "automation": fire.automation.slug,
        "trigger": info.to_json(), "startedAt": time}});
    let exec = Execution {
        app,
        credentials: None,
        context: run_context(
            &ws,
            &fire.automation.slug,
            CorrelationId::generate(),
            None,
            None,
            0,
        ),
        trigger: Trigger::Schedule(ScheduleTick {
            expression: fire.expression.clone(),
            time,
        }),
        info,
        automation: fire.automation,
        payload,
        answer: None,
    };
    state.executor().reports().announce(&exec, false).await;
    let _ = state.executor().execute(&exec).await;
}
