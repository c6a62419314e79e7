//! `createUserTopic` / `joinUserTopic` (§3.14): user topics the events service delivers
//! `target.userTopic` events to; `output` gets the events the host published.

use serde_json::{Map, Value};

use crate::error::{DslError, Invalid};
use crate::interpreter::runner::{Flow, Runner};
use crate::program::Instr;
use crate::value::Val;

use super::Arg;

/// Checks a topic instruction names its topic.
fn check(arg: &Arg) -> Result<(), Invalid> {
    if !arg.object()?.contains_key("topic") {
        return Err(Arg::invalid(
            &arg.member("topic"),
            format!("{} needs a topic", arg.name),
        ));
    }
    Ok(())
}

pub(super) fn compile_create(arg: &Arg) -> Result<Instr, Invalid> {
    check(arg)?;
    Ok(Instr::CreateUserTopic(arg.tpl()?))
}

pub(super) fn compile_join(arg: &Arg) -> Result<Instr, Invalid> {
    check(arg)?;
    Ok(Instr::JoinUserTopic(arg.tpl()?))
}

/// `topic` and `userIds` of a rendered topic instruction.
fn topic_args(a: &Map<String, Value>, name: &str) -> Result<(String, Vec<String>), DslError> {
    let topic = match a.get("topic") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => {
            return Err(DslError::new(
                "PrismeError",
                format!("{name} needs a topic (a string)"),
            ));
        }
    };
    let users = match a.get("userIds") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| Val::from_json(v.clone()).to_js_string())
            .collect(),
        Some(other) => vec![Val::from_json(other.clone()).to_js_string()],
    };
    Ok((topic, users))
}

pub(super) fn run_create(r: &mut Runner, a: &Map<String, Value>) -> Result<Flow, DslError> {
    let (topic, users) = topic_args(a, "createUserTopic")?;
    let result = r
        .coordination("user topics are")?
        .create_user_topic(&topic, &users)?
        .unwrap_or(Value::Bool(true));
    r.output_to(a, Some(result))?;
    Ok(Flow::Next)
}

pub(super) fn run_join(r: &mut Runner, a: &Map<String, Value>) -> Result<Flow, DslError> {
    let (topic, users) = topic_args(a, "joinUserTopic")?;
    let create = a
        .get("create")
        .is_none_or(|c| Val::from_json(c.clone()).truthy());
    let events = r
        .coordination("user topics are")?
        .join_user_topic(&topic, &users, create)?;
    r.output_to(a, Some(Value::Array(events)))?;
    Ok(Flow::Next)
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn user_topics_are_created_once_and_joined() {
        let mut w = World::default();
        let out = go_with(
            &mut w,
            json!([
                {"createUserTopic": {"topic": "team", "userIds": ["a"], "output": "c1"}},
                {"createUserTopic": {"topic": "team", "output": "c2"}},
                {"joinUserTopic": {"topic": "team", "output": "j"}},
                {"joinUserTopic": {"topic": "new", "userIds": ["b", "c"], "output": "j2"}}
            ]),
            json!({"c1": "{{c1.type}}", "c2": "{{c2}}", "j": "{{j[0].payload.user.id}}", "n": "{{j2.length}}"}),
            json!({}),
        )
        .unwrap()
        .output;
        assert_eq!(
            out,
            json!({"c1": "events.userTopics.created", "c2": true, "j": "u1", "n": 2})
        );
        let e = go_with(
            &mut w,
            json!([{"joinUserTopic": {"topic": "nope", "create": false}}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "PrismeError");
        let e = go_with(
            &mut w,
            json!([{"joinUserTopic": {"topic": ""}}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "PrismeError");
    }
}
