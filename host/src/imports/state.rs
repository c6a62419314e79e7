//! `refract:automation/state`: context variables by scope.

use crate::bindings::state::{Host, Scope, StateError};
use crate::services::{ServiceError, StateScope};
use crate::store::RunCtx;

use super::parse_json;

impl RunCtx {
    /// Checks the scope has an owner in this run and the path is well-formed.
    fn check(&self, scope: Scope, path: &str) -> Result<StateScope, StateError> {
        let scope = match scope {
            Scope::Global => StateScope::Global,
            Scope::User if self.info.user_id.is_none() => return Err(StateError::NoSuchScope),
            Scope::User => StateScope::User,
            Scope::Session if self.info.session_id.is_none() => {
                return Err(StateError::NoSuchScope);
            }
            Scope::Session => StateScope::Session,
            Scope::Run => StateScope::Run,
        };
        valid_path(path).map_err(StateError::Invalid)?;
        Ok(scope)
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

fn to_wit(e: ServiceError) -> StateError {
    match e {
        ServiceError::Invalid(m) => StateError::Invalid(m),
        ServiceError::TooLarge(n) => StateError::TooLarge(n),
        ServiceError::Unavailable(m) => StateError::Unavailable(m),
    }
}

impl Host for RunCtx {
    async fn get(
        &mut self,
        scope: Scope,
        path: String,
    ) -> wasmtime::Result<Result<Option<String>, StateError>> {
        let scope = match self.check(scope, &path) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let (store, info) = (self.services.state.clone(), self.info.clone());
        let result = self.io(store.get(&info, scope, &path)).await;
        Ok(result
            .map(|v| v.map(|v| serde_json::to_string(&v).unwrap_or_else(|_| "null".into())))
            .map_err(to_wit))
    }

    async fn set(
        &mut self,
        scope: Scope,
        path: String,
        value: String,
    ) -> wasmtime::Result<Result<(), StateError>> {
        let scope = match self.check(scope, &path) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        if value.len() > self.limits.max_state_value_bytes {
            return Ok(Err(StateError::TooLarge(
                u32::try_from(self.limits.max_state_value_bytes).unwrap_or(u32::MAX),
            )));
        }
        let value = match parse_json("value", &value) {
            Ok(v) => v,
            Err(m) => return Ok(Err(StateError::Invalid(m))),
        };
        let (store, info) = (self.services.state.clone(), self.info.clone());
        let result = self.io(store.set(&info, scope, &path, value)).await;
        Ok(result.map_err(to_wit))
    }

    async fn delete(
        &mut self,
        scope: Scope,
        path: String,
    ) -> wasmtime::Result<Result<(), StateError>> {
        let scope = match self.check(scope, &path) {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        let (store, info) = (self.services.state.clone(), self.info.clone());
        let result = self.io(store.delete(&info, scope, &path)).await;
        Ok(result.map_err(to_wit))
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
