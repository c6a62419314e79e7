//! The scopes a run reads beyond its locals (§5.2): computed fields (`run.depth`,
//! `global.workspaceId`, `user.id`, …), persistent variables read once per run through the
//! outside, and identity switches (§5.5), which change the `user` and `session` scopes.

use serde_json::{Map, Value};

use crate::error::DslError;

use super::outside::Scope;
use super::runner::{Runner, invalid};

impl Runner<'_> {
    /// Computed fields of a scope (§5.2); they win over stored values.
    pub(crate) fn computed(&self, scope: Scope, name: &str) -> Option<Value> {
        match (scope, name) {
            (Scope::Global, n) => self.input.global.get(n).cloned(),
            (Scope::Run, n) => self.input.run.get(n).cloned(),
            (Scope::User, "id") => self.input.user_id.clone().map(Value::String),
            (Scope::Session, "id") => self
                .input
                .session_id
                .clone()
                .or_else(|| self.input.user_id.clone())
                .map(Value::String),
            (Scope::User, "email" | "authData") if self.switched => Some(Value::Null),
            _ => None,
        }
    }

    /// The variable `name` of `scope`: computed, read earlier in this run, or read now.
    pub(crate) fn variable(&mut self, scope: Scope, name: &str) -> Result<Option<Value>, DslError> {
        if let Some(v) = self.computed(scope, name) {
            return Ok(Some(v));
        }
        let key = (scope, name.to_owned());
        if let Some(v) = self.scopes.get(&key) {
            return Ok(v.clone());
        }
        let v = self.out.get(scope, name)?;
        self.scopes.insert(key, v.clone());
        Ok(v)
    }

    /// A whole scope as far as this run knows it: computed fields plus the variables read or
    /// written so far (the state import reads variables by name).
    pub(crate) fn whole_scope(&self, scope: Scope) -> Value {
        let mut m = Map::new();
        for ((s, name), v) in &self.scopes {
            if *s == scope
                && let Some(v) = v
            {
                m.insert(name.clone(), v.clone());
            }
        }
        let computed: Vec<(String, Value)> = match scope {
            Scope::Global => self.input.global.clone().into_iter().collect(),
            Scope::Run => self.input.run.clone().into_iter().collect(),
            Scope::Socket => Vec::new(),
            Scope::User | Scope::Session => self
                .computed(scope, "id")
                .map(|v| ("id".to_owned(), v))
                .into_iter()
                .collect(),
        };
        m.extend(computed);
        Value::Object(m)
    }

    /// `set user.id` / `set session.id` (§5.5): the run goes on as that identity, with the
    /// `user` and `session` scopes of the new one. Setting the current id changes nothing.
    pub(crate) fn switch_identity(
        &mut self,
        scope: Scope,
        value: Option<Value>,
    ) -> Result<(), DslError> {
        let id = match value {
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(invalid("an identity switch needs a non-empty string id")),
        };
        let current = if scope == Scope::User {
            &self.input.user_id
        } else {
            &self.input.session_id
        };
        if current.as_deref() == Some(id.as_str()) {
            return Ok(());
        }
        let (user, session) = match scope {
            Scope::User => self.identity()?.switch_identity(Some(&id), None)?,
            _ => self.identity()?.switch_identity(None, Some(&id))?,
        };
        self.input.user_id = user;
        self.input.session_id = session;
        self.switched = true;
        // The socket scope of a run without a socket is its session's or user's.
        self.scopes
            .retain(|(s, _), _| !matches!(s, Scope::User | Scope::Session | Scope::Socket));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn secrets_are_read_by_name_unless_a_local_is_called_secret() {
        let mut w = World::default();
        w.secrets.insert("apiKey".into(), json!("k-1"));
        w.secrets.insert("db".into(), json!({"user": "admin"}));
        let r = go_with(
            &mut w,
            json!([]),
            json!({"key": "Bearer {{secret.apiKey}}", "user": "{{secret.db.user}}", "none": "{{secret.missing}}"}),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!({"key": "Bearer k-1", "user": "admin"}));
        let r = go_with(
            &mut w,
            json!([]),
            json!({"key": "{{secret.apiKey}}"}),
            json!({"secret": {"apiKey": "local"}}),
        )
        .unwrap();
        assert_eq!(r.output, json!({"key": "local"}));
    }

    #[test]
    fn persistent_scopes_go_through_the_outside_and_computed_fields_are_read_only() {
        let mut w = World::default();
        w.state.insert((Scope::Global, "counter".into()), json!(41));
        let r = go_with(
            &mut w,
            json!([
                {"set": {"name": "global.counter", "value": "{% {{global.counter}} + 1 %}"}},
                {"set": {"name": "user.prefs.lang", "value": "fr"}},
                {"set": {"name": "session.seen[]", "value": 1}},
                {"set": {"name": "run.step", "value": "x"}},
                {"delete": {"name": "run.step"}}
            ]),
            json!({"c": "{{global.counter}}", "ws": "{{global.workspaceId}}", "u": "{{user.id}}", "s": "{{session.id}}",
                "d": "{{run.depth}}", "cfg": "{{config.apiBase}}", "lang": "{{user.prefs.lang}}"}),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            r.output,
            json!({"c": 42, "ws": "ws1", "u": "u1", "s": "u1", "d": 1, "cfg": "https://api.example", "lang": "fr"})
        );
        assert_eq!(w.state[&(Scope::Global, "counter".into())], json!(42));
        assert_eq!(
            w.state[&(Scope::User, "prefs".into())],
            json!({"lang": "fr"})
        );
        assert_eq!(w.state[&(Scope::Session, "seen".into())], json!([1]));
        assert!(!w.state.contains_key(&(Scope::Run, "step".into())));
        let e = go_with(
            &mut World::default(),
            json!([{"set": {"name": "run.depth", "value": 0}}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "InvalidInstructionError");
    }

    #[test]
    fn setting_user_or_session_id_switches_identity() {
        let mut w = World::default();
        w.state.insert((Scope::User, "bob/points".into()), json!(7));
        // What the host would answer for bob's account: a switched run must not see it (§5.5).
        w.state
            .insert((Scope::User, "bob/email".into()), json!("bob@example.com"));
        w.state.insert((Scope::User, "points".into()), json!(1));
        let r = go_with(
            &mut w,
            json!([
                {"set": {"name": "before", "value": "{{user.points}}"}},
                {"set": {"name": "user.id", "value": "u1"}},
                {"set": {"name": "user.id", "value": "bob"}},
                {"set": {"name": "bobs", "value": "{{user.points}}"}},
                {"set": {"name": "user.points", "value": "{% {{user.points}} + 1 %}"}},
                {"set": {"name": "as_bob", "value": {"u": "{{user.id}}", "s": "{{session.id}}", "email": "{{user.email}}"}}},
                {"set": {"name": "session.id", "value": "s-ada"}}
            ]),
            json!({"before": "{{before}}", "bobs": "{{bobs}}", "as_bob": "{{as_bob}}", "u": "{{user.id}}", "s": "{{session.id}}"}),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            r.output,
            json!({"before": 1, "bobs": 7, "as_bob": {"u": "bob", "s": "bob", "email": null}, "u": "ada", "s": "s-ada"})
        );
        assert_eq!(
            w.state[&(Scope::User, "bob/points".into())],
            json!(8),
            "written as bob, not as u1"
        );
        assert_eq!(w.state[&(Scope::User, "points".into())], json!(1));
        let e = go_with(
            &mut World::default(),
            json!([{"set": {"name": "user.id", "value": ""}}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "InvalidInstructionError");
    }
}
