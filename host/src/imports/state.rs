//! `refract:automation/state`: context variables by scope.

use refract_core::platform::types;
use std::time::Duration;

use refract_core::{EventLimits, SessionId, UserId};
use serde_json::{Value, json};

use crate::bindings::state::{Host, Identity, RateLimitState, Scope as WitScope, StateError};
use crate::services::{RateLimiter, ServiceError};
use crate::store::RunCtx;
use refract_core::Scope;

use super::parse_json;

/// The context scope a WIT `scope` names (the `socket` scope has functions of its own).
fn scope_of(scope: WitScope) -> Scope {
    match scope {
        WitScope::Global => Scope::Global,
        WitScope::User => Scope::User,
        WitScope::Session => Scope::Session,
        WitScope::Run => Scope::Run,
    }
}

impl RunCtx {
    /// Checks the scope has an owner in this run (a user, a session; for `socket`, a socket,
    /// a session or a user) and the path is well-formed.
    fn check(&self, scope: Scope, path: &str) -> Result<(), StateError> {
        let owned = match scope {
            Scope::Global | Scope::Run => true,
            Scope::User => self.info.user_id.is_some(),
            Scope::Session => self.info.session_id.is_some(),
            Scope::Socket => self.info.socket_owner().is_some(),
        };
        if !owned {
            return Err(StateError::NoSuchScope);
        }
        valid_path(path).map_err(StateError::Invalid)
    }

    async fn state_get(
        &mut self,
        scope: Scope,
        path: String,
    ) -> Result<Option<String>, StateError> {
        self.check(scope, &path)?;
        let (store, info) = (self.services.state.clone(), self.info.clone());
        let result = self.io("state.get", store.get(&info, scope, &path)).await;
        result
            .map(|v| v.map(|v| serde_json::to_string(&v).unwrap_or_else(|_| "null".into())))
            .map_err(to_wit)
    }

    async fn state_set(
        &mut self,
        scope: Scope,
        path: String,
        value: String,
    ) -> Result<(), StateError> {
        self.check(scope, &path)?;
        if value.len() > self.limits.max_state_value_bytes {
            return Err(StateError::TooLarge(
                u32::try_from(self.limits.max_state_value_bytes).unwrap_or(u32::MAX),
            ));
        }
        let value = parse_json("value", &value).map_err(StateError::Invalid)?;
        let (store, info) = (self.services.state.clone(), self.info.clone());
        self.io("state.set", store.set(&info, scope, &path, value))
            .await
            .map_err(to_wit)
    }

    async fn state_delete(&mut self, scope: Scope, path: String) -> Result<(), StateError> {
        self.check(scope, &path)?;
        let (store, info) = (self.services.state.clone(), self.info.clone());
        self.io("state.delete", store.delete(&info, scope, &path))
            .await
            .map_err(to_wit)
    }
}

/// Dotted names with optional `[n]` indexes: `a.b[2].c`.
fn valid_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > 512 {
        return Err("path must be 1 to 512 characters".into());
    }
    for part in path.split('.') {
        let name = part.split('[').next().unwrap_or("");
        if name.is_empty() {
            return Err(format!("empty name in path {path:?}"));
        }
        let mut rest = &part[name.len()..];
        while !rest.is_empty() {
            let Some(inner) = rest.strip_prefix('[').and_then(|r| r.split_once(']')) else {
                return Err(format!("malformed index in path {path:?}"));
            };
            if inner.0.is_empty() || !inner.0.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("malformed index in path {path:?}"));
            }
            rest = inner.1;
        }
    }
    Ok(())
}

/// Longest user topic name, in bytes.
const MAX_TOPIC_BYTES: usize = 256;
/// Most users one `create-user-topic` / `join-user-topic` call may name.
const MAX_TOPIC_USERS: usize = 1000;

/// The topic and user ids of a topic call, checked.
fn topic_args(topic: &str, users: Vec<String>) -> Result<Vec<UserId>, StateError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_BYTES {
        return Err(StateError::Invalid(format!(
            "a topic is 1 to {MAX_TOPIC_BYTES} bytes"
        )));
    }
    if users.len() > MAX_TOPIC_USERS {
        return Err(StateError::Invalid(format!(
            "at most {MAX_TOPIC_USERS} users per call"
        )));
    }
    users
        .into_iter()
        .map(|u| UserId::new(u).map_err(|e| StateError::Invalid(e.to_string())))
        .collect()
}

impl RunCtx {
    /// Publishes a user-topic event of the host (`events.userTopics.*`) under the run's
    /// identity, counted against the run's emits; returns its envelope.
    async fn topic_event(&mut self, ty: &str, payload: Value) -> Result<Value, StateError> {
        if self.emits >= self.limits.max_emits {
            return Err(StateError::Invalid(format!(
                "the run already emitted {} events",
                self.limits.max_emits
            )));
        }
        let depth = self.info.depth.saturating_add(1);
        let mut event = self
            .build_event(ty, &payload.to_string(), None, true, depth)
            .map_err(|e| StateError::Invalid(format!("{e:?}")))?;
        event
            .seal(&EventLimits {
                max_size: self.limits.max_event_bytes,
            })
            .map_err(|e| StateError::Invalid(e.to_string()))?;
        self.emits += 1;
        let (events, info) = (self.services.events.clone(), self.info.clone());
        let id = self
            .io("emit", events.emit_host_event(&info, event.clone()))
            .await
            .map_err(to_wit)?;
        event.id = Some(id);
        Ok(serde_json::to_value(&event).unwrap_or(Value::Null))
    }
}

fn to_wit(e: ServiceError) -> StateError {
    match e {
        ServiceError::Invalid(m) => StateError::Invalid(m),
        ServiceError::TooLarge(n) => StateError::TooLarge(n),
        ServiceError::Unavailable(m) => StateError::Unavailable(m),
    }
}

impl RunCtx {
    /// `switch-identity` (`automation-dsl.md` §5.5): the identity the run continues as.
    async fn switched(
        &mut self,
        user: Option<String>,
        session: Option<String>,
    ) -> Result<Identity, StateError> {
        let invalid = |e: refract_core::ValidationError| StateError::Invalid(e.to_string());
        let (user, session) = match (user, session) {
            // As user X: the session keyed by X.
            (Some(user), None) => (
                UserId::new(user.clone()).map_err(invalid)?,
                SessionId::new(user).map_err(invalid)?,
            ),
            // As login session S and its user, or a session and a user of that id.
            (None, Some(session)) => {
                let session = SessionId::new(session).map_err(invalid)?;
                let known = match self.services.identities() {
                    Some(identities) => {
                        let info = self.info.clone();
                        self.io(
                            "state.session_user",
                            identities.session_user(&info, &session),
                        )
                        .await
                        .map_err(to_wit)?
                    }
                    None => None,
                };
                let user = match known {
                    Some(user) => user,
                    None => UserId::new(session.as_str()).map_err(invalid)?,
                };
                (user, session)
            }
            _ => {
                return Err(StateError::Invalid(
                    "give exactly one of user-id and session-id".into(),
                ));
            }
        };
        let mut info = (*self.info).clone();
        info.user_id = Some(user);
        info.session_id = Some(session);
        self.info = std::sync::Arc::new(info);
        Ok(Identity {
            user_id: self.info.user_id.as_ref().map(|u| u.as_str().to_owned()),
            session_id: self.info.session_id.as_ref().map(|s| s.as_str().to_owned()),
        })
    }
}

impl Host for RunCtx {
    async fn set_config(
        &mut self,
        path: String,
        value: Option<String>,
    ) -> wasmtime::Result<Result<(), StateError>> {
        if let Err(m) = valid_path(&path) {
            return Ok(Err(StateError::Invalid(m)));
        }
        let value = match value {
            Some(v) if v.len() > self.limits.max_state_value_bytes => {
                return Ok(Err(StateError::TooLarge(
                    u32::try_from(self.limits.max_state_value_bytes).unwrap_or(u32::MAX),
                )));
            }
            Some(v) => match parse_json("value", &v) {
                Ok(v) => Some(v),
                Err(m) => return Ok(Err(StateError::Invalid(m))),
            },
            None => None,
        };
        let config = match self.services.config() {
            Ok(c) => c,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        let info = self.info.clone();
        let result = self
            .io("state.set_config", config.set_config(&info, &path, value))
            .await;
        Ok(result.map_err(to_wit))
    }

    async fn switch_identity(
        &mut self,
        user_id: Option<String>,
        session_id: Option<String>,
    ) -> wasmtime::Result<Result<Identity, StateError>> {
        Ok(self.switched(user_id, session_id).await)
    }

    async fn get(
        &mut self,
        scope: WitScope,
        path: String,
    ) -> wasmtime::Result<Result<Option<String>, StateError>> {
        Ok(self.state_get(scope_of(scope), path).await)
    }

    async fn set(
        &mut self,
        scope: WitScope,
        path: String,
        value: String,
    ) -> wasmtime::Result<Result<(), StateError>> {
        Ok(self.state_set(scope_of(scope), path, value).await)
    }

    async fn delete(
        &mut self,
        scope: WitScope,
        path: String,
    ) -> wasmtime::Result<Result<(), StateError>> {
        Ok(self.state_delete(scope_of(scope), path).await)
    }

    async fn socket_get(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Option<String>, StateError>> {
        Ok(self.state_get(Scope::Socket, path).await)
    }

    async fn socket_set(
        &mut self,
        path: String,
        value: String,
    ) -> wasmtime::Result<Result<(), StateError>> {
        Ok(self.state_set(Scope::Socket, path, value).await)
    }

    async fn socket_delete(&mut self, path: String) -> wasmtime::Result<Result<(), StateError>> {
        Ok(self.state_delete(Scope::Socket, path).await)
    }

    async fn rate_limit(
        &mut self,
        name: String,
        consumer: String,
        limit: u32,
        window_secs: u32,
        consume: u32,
    ) -> wasmtime::Result<Result<RateLimitState, StateError>> {
        if name.is_empty() || name.len() > 256 || consumer.len() > 256 {
            return Ok(Err(StateError::Invalid(
                "a limiter name is 1 to 256 bytes, a consumer at most 256".into(),
            )));
        }
        if limit == 0 || window_secs == 0 {
            return Ok(Err(StateError::Invalid(
                "limit and window must be positive".into(),
            )));
        }
        let limiter = RateLimiter {
            name,
            consumer,
            limit,
            window: Duration::from_secs(u64::from(window_secs)),
            consume,
        };
        let coordination = match self.services.coordination("rate limits are") {
            Ok(c) => c,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        let info = self.info.clone();
        let result = self
            .io("rate_limit", coordination.rate_limit(&info, &limiter))
            .await;
        Ok(result
            .map(|s| RateLimitState {
                ok: s.ok,
                remaining: s.remaining,
                retry_after: s.retry_after,
            })
            .map_err(to_wit))
    }

    async fn create_user_topic(
        &mut self,
        topic: String,
        user_ids: Vec<String>,
    ) -> wasmtime::Result<Result<Option<String>, StateError>> {
        let users = match topic_args(&topic, user_ids.clone()) {
            Ok(u) => u,
            Err(e) => return Ok(Err(e)),
        };
        let coordination = match self.services.coordination("user topics are") {
            Ok(c) => c,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        let info = self.info.clone();
        match self
            .io(
                "create_user_topic",
                coordination.create_user_topic(&info, &topic, &users),
            )
            .await
        {
            Ok(true) => return Ok(Ok(None)),
            Ok(false) => {}
            Err(e) => return Ok(Err(to_wit(e))),
        }
        let mut payload = json!({"topic": topic});
        if !user_ids.is_empty() {
            payload["userIds"] = json!(user_ids);
        }
        let event = self.topic_event(types::USER_TOPICS_CREATED, payload).await;
        Ok(event.map(|e| Some(e.to_string())))
    }

    async fn join_user_topic(
        &mut self,
        topic: String,
        user_ids: Vec<String>,
        create: bool,
    ) -> wasmtime::Result<Result<Vec<String>, StateError>> {
        let mut users = match topic_args(&topic, user_ids) {
            Ok(u) => u,
            Err(e) => return Ok(Err(e)),
        };
        if users.is_empty() {
            match &self.info.user_id {
                Some(u) => users.push(u.clone()),
                None => return Ok(Err(StateError::NoSuchScope)),
            }
        }
        let coordination = match self.services.coordination("user topics are") {
            Ok(c) => c,
            Err(e) => return Ok(Err(to_wit(e))),
        };
        let info = self.info.clone();
        if let Err(e) = self
            .io(
                "join_user_topic",
                coordination.join_user_topic(&info, &topic, &users, create),
            )
            .await
        {
            return Ok(Err(to_wit(e)));
        }
        let mut out = Vec::with_capacity(users.len());
        for user in users {
            let payload = json!({"topic": topic, "user": {"id": user.as_str()}});
            match self.topic_event(types::USER_TOPICS_JOINED, payload).await {
                Ok(e) => out.push(e.to_string()),
                Err(e) => return Ok(Err(e)),
            }
        }
        Ok(Ok(out))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_path;

    #[test]
    fn paths() {
        for ok in ["a", "a.b", "a.b[0].c", "items[12]"] {
            assert!(valid_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".a", "a..b", "a[", "a[x]", "a[]", "[0]"] {
            assert!(valid_path(bad).is_err(), "{bad}");
        }
    }
}
