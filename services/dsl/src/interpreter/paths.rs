//! Writes and deletes at a variable path (§3.2, §3.3): locals, a persistent scope's variable
//! (read, changed, written back whole), the `config` scope (stored for later runs) and the
//! `$http` channel. `set`, `delete` and every instruction's `output` go through here.

use serde_json::{Map, Value, json};

use crate::error::DslError;
use crate::path::{self, Seg};
use crate::value::Val;

use super::outside::Scope;
use super::runner::{Runner, invalid};

/// How `set` combines its value with what is there (§3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetMode {
    Replace,
    Merge,
    Push,
}

/// The table of §3.2 applied at `segs` inside `doc`.
fn apply_set(
    doc: &mut Value,
    segs: &[Seg],
    mode: SetMode,
    value: Option<Value>,
) -> Result<(), DslError> {
    let existed = !matches!(path::lookup_value(Some(doc), segs), Val::Undefined);
    let Some(value) = value else {
        // `undefined` replaces by removing.
        if mode == SetMode::Replace {
            return path::delete(doc, segs).map_err(|e| invalid(e.to_string()));
        }
        return Ok(());
    };
    let slot = path::slot(doc, segs).map_err(|e| invalid(e.to_string()))?;
    match mode {
        SetMode::Replace => *slot = value,
        SetMode::Merge => match (&mut *slot, value) {
            (Value::Array(a), Value::Array(v)) => a.extend(v),
            (Value::Array(a), v) => a.push(v),
            (Value::Object(o), Value::Object(v)) => o.extend(v),
            (Value::Null, Value::Object(v)) => *slot = Value::Object(v),
            (Value::Object(_), _) => {}
            (Value::Null, _) if existed => {}
            (_, v) => *slot = v,
        },
        SetMode::Push => match &mut *slot {
            Value::Array(a) => a.push(value),
            _ => *slot = Value::Array(vec![value]),
        },
    }
    Ok(())
}

impl Runner<'_> {
    /// `set` at `name` (§3.2): locals, or a persistent scope variable written whole.
    pub(crate) fn write(
        &mut self,
        name: &str,
        mode: SetMode,
        value: Option<Value>,
    ) -> Result<(), DslError> {
        let segs = path::parse(name).map_err(|e| invalid(e.to_string()))?;
        let first = segs[0].as_key();
        if first == "$http" {
            if segs.len() == 1
                && let Some(Value::Object(v)) = &value
            {
                return self.set_http(v);
            }
            return Ok(());
        }
        if let Some(scope) = Scope::parse(&first) {
            let Some(var) = segs.get(1).map(|s| s.as_key().into_owned()) else {
                return Err(invalid(format!("cannot replace the whole {first} scope")));
            };
            if matches!(scope, Scope::User | Scope::Session)
                && var == "id"
                && segs.len() == 2
                && mode == SetMode::Replace
            {
                return self.switch_identity(scope, value);
            }
            if self.computed(scope, &var).is_some() {
                // Computed fields (run.depth, global.workspaceId, …) cannot be written.
                return Err(invalid(format!("{first}.{var} is read-only here")));
            }
            return self.change_variable(scope, var, |doc| apply_set(doc, &segs[1..], mode, value));
        }
        if first == "config" {
            return self.change_config(&segs, |doc| apply_set(doc, &segs, mode, value));
        }
        apply_set(&mut self.locals, &segs, mode, value)
    }

    /// `delete` at `name` (§3.3).
    pub(crate) fn remove(&mut self, name: &str) -> Result<(), DslError> {
        let segs = path::parse(name).map_err(|e| invalid(e.to_string()))?;
        let first = segs[0].as_key();
        if let Some(scope) = Scope::parse(&first) {
            let Some(var) = segs.get(1).map(|s| s.as_key().into_owned()) else {
                return Err(invalid(format!("cannot delete the whole {first} scope")));
            };
            return self.change_variable(scope, var, |doc| {
                path::delete(doc, &segs[1..]).map_err(|e| invalid(e.to_string()))
            });
        }
        if first == "config" {
            return self.change_config(&segs, |doc| {
                path::delete(doc, &segs).map_err(|e| invalid(e.to_string()))
            });
        }
        path::delete(&mut self.locals, &segs).map_err(|e| invalid(e.to_string()))
    }

    /// A change to the persistent variable `var` of `scope` (`change` sees it as the member
    /// `var` of a document): the variable is written back whole, or deleted when gone.
    fn change_variable(
        &mut self,
        scope: Scope,
        var: String,
        change: impl FnOnce(&mut Value) -> Result<(), DslError>,
    ) -> Result<(), DslError> {
        let mut doc = json!({});
        if let Some(current) = self.variable(scope, &var)? {
            doc[&var] = current;
        }
        change(&mut doc)?;
        let new = doc.get(&var).cloned();
        match &new {
            Some(v) => self.out.set(scope, &var, v)?,
            None => self.out.delete(scope, &var)?,
        }
        self.scopes.insert((scope, var), new);
        Ok(())
    }

    /// A write to `config` at `segs` (§5.2): applied to this run's config, then the changed
    /// member is stored for every later run.
    fn change_config(
        &mut self,
        segs: &[Seg],
        change: impl FnOnce(&mut Value) -> Result<(), DslError>,
    ) -> Result<(), DslError> {
        let Some(key) = segs.get(1).map(|s| s.as_key().into_owned()) else {
            return Err(invalid("cannot replace the whole config"));
        };
        let mut doc = json!({"config": std::mem::take(&mut self.input.config)});
        let changed = change(&mut doc);
        self.input.config = doc["config"].take();
        changed?;
        let value = self.input.config.get(&key).cloned();
        self.config_writer()?.set_config(&key, value.as_ref())
    }

    /// `set $http` (§6.2): `status`, `headers` and `sseKeepAlive` until the answer streams;
    /// `sseKeepAlive` or a `chunk` starts streaming it, and each `chunk` is sent at once.
    fn set_http(&mut self, v: &Map<String, Value>) -> Result<(), DslError> {
        if !self.http.streamed {
            if let Some(s) = v
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .filter(|s| (100..=599).contains(s))
            {
                self.http.status = Some(s);
            }
            if let Some(Value::Object(h)) = v.get("headers") {
                for (k, val) in h {
                    let text = Val::from_json(val.clone()).to_js_string();
                    self.http
                        .headers
                        .retain(|(n, _)| !n.eq_ignore_ascii_case(k));
                    self.http.headers.push((k.to_ascii_lowercase(), text));
                }
            }
            let keep_alive = v
                .get("sseKeepAlive")
                .and_then(Value::as_f64)
                .filter(|ms| *ms >= 1.0);
            if let Some(ms) = keep_alive {
                // Saturates: the host raises anything under 5 s to 5 s.
                self.http.keep_alive_ms = Some(ms as u32);
            }
            if keep_alive.is_some() || v.contains_key("chunk") {
                self.out.start_answer(&self.http)?;
                self.http.streamed = true;
            }
        }
        match v.get("chunk") {
            Some(chunk) => self.out.send_chunk(chunk),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn set_through_a_scalar_is_an_error_and_delete_splices() {
        let e = go_with(
            &mut World::default(),
            json!([{"set": {"name": "a", "value": 1}}, {"set": {"name": "a.b", "value": 2}}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "InvalidInstructionError");
        let out = go(
            json!([{"set": {"name": "l", "value": [1, 2, 3]}}, {"delete": {"name": "l[0]"}}, {"delete": {"name": "nothing"}}]),
            json!("{{l}}"),
        );
        assert_eq!(out, json!([2, 3]));
    }

    #[test]
    fn http_channel_sets_status_and_headers() {
        let r = go_with(
            &mut World::default(),
            json!([{"set": {"name": "$http", "value": {"status": 201, "headers": {"X-Id": 5}}}}, {"set": {"name": "$http.status", "value": 500}}]),
            json!({"ok": true}),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            r.http,
            HttpOut {
                status: Some(201),
                headers: vec![("x-id".into(), "5".into())],
                ..HttpOut::default()
            }
        );
    }

    #[test]
    fn a_chunk_streams_the_answer_with_the_head_set_before_it() {
        let mut w = World::default();
        let r = go_with(
            &mut w,
            json!([
                {"set": {"name": "$http", "value": {"status": 202, "headers": {"X-Run": "a"}}}},
                {"set": {"name": "$http", "value": {"chunk": {"token": "Hel"}}}},
                {"set": {"name": "$http", "value": {"status": 500, "headers": {"X-Late": 1}, "chunk": "lo"}}},
                {"set": {"name": "$http", "value": {"chunk": null}}}
            ]),
            json!({"done": true}),
            json!({}),
        )
        .unwrap();
        let head = w.answer_head.expect("the answer started");
        assert_eq!(head.status, Some(202));
        assert_eq!(head.headers, vec![("x-run".to_owned(), "a".to_owned())]);
        assert_eq!(
            w.chunks,
            vec![json!({"token": "Hel"}), json!("lo"), json!(null)]
        );
        // Status and headers written once the answer streams change nothing.
        assert_eq!(r.http.status, Some(202));
        assert!(r.http.streamed);
        assert_eq!(r.output, json!({"done": true}));
    }

    #[test]
    fn sse_keep_alive_starts_the_answer_and_a_run_without_one_buffers() {
        let mut w = World::default();
        go_with(
            &mut w,
            json!([{"set": {"name": "$http", "value": {"sseKeepAlive": 15000}}}]),
            json!({}),
            json!({}),
        )
        .unwrap();
        let head = w.answer_head.expect("the keep-alive started the answer");
        assert_eq!(head.keep_alive_ms, Some(15000));
        assert!(w.chunks.is_empty());
        // Without a chunk or a keep-alive nothing streams: the answer is the output.
        let mut w = World::default();
        let r = go_with(
            &mut w,
            json!([{"set": {"name": "$http", "value": {"status": 201}}}]),
            json!({}),
            json!({}),
        )
        .unwrap();
        assert!(w.answer_head.is_none());
        assert!(!r.http.streamed);
    }

    #[test]
    fn config_writes_change_the_run_and_store_the_member() {
        let mut w = World::default();
        let r = go_with(
            &mut w,
            json!([
                {"set": {"name": "config.greeting", "value": "hi"}},
                {"set": {"name": "config.limits.daily", "value": 5}},
                {"delete": {"name": "config.apiBase"}}
            ]),
            json!("{{config}}"),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!({"greeting": "hi", "limits": {"daily": 5}}));
        assert_eq!(
            w.config_writes,
            vec![
                ("greeting".to_owned(), Some(json!("hi"))),
                ("limits".to_owned(), Some(json!({"daily": 5}))),
                ("apiBase".to_owned(), None)
            ]
        );
        let e = go_with(
            &mut World::default(),
            json!([{"set": {"name": "config", "value": {}}}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "InvalidInstructionError");
    }
}
