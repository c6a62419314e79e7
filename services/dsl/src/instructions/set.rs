//! `set` (§3.2): writes a value at a variable path, replacing, merging or pushing.

use serde_json::{Map, Value};

use crate::error::{DslError, Invalid};
use crate::interpreter::paths::SetMode;
use crate::interpreter::runner::{Flow, Runner, invalid};
use crate::program::Instr;
use crate::template::{Tpl, render};

use super::Arg;

/// Checks that a `set` or `delete` names a string path.
pub(super) fn check_name(arg: &Arg, m: &Map<String, Value>) -> Result<(), Invalid> {
    match m.get("name") {
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(Arg::invalid(&arg.member("name"), "name must be a string")),
        None => Err(Arg::invalid(arg.at, format!("{} needs a name", arg.name))),
    }
}

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    let m = arg.object()?;
    check_name(arg, m)?;
    if let Some(t) = m.get("type").and_then(Value::as_str)
        && !["replace", "merge", "push", "delete"].contains(&t)
    {
        return Err(Arg::invalid(
            &arg.member("type"),
            "type is replace, merge, push or delete",
        ));
    }
    Ok(Instr::Set(arg.tpl()?))
}

/// `set` written as a mapping (nearly every one): its members rendered in order, as the
/// generic path does, but read as they come instead of gathered into a mapping first.
pub(super) fn run_members(r: &mut Runner, members: &[(String, Tpl)]) -> Result<Flow, DslError> {
    let (mut name, mut kind, mut value) = (None, None, None);
    for (key, t) in members {
        let rendered = render(t, r)?.into_json();
        match key.as_str() {
            "name" => name = rendered,
            "type" => kind = rendered,
            "value" => value = rendered,
            _ => {}
        }
    }
    set(r, name.as_ref(), kind.as_ref(), value)
}

pub(super) fn run(r: &mut Runner, mut a: Map<String, Value>) -> Result<Flow, DslError> {
    // The rendered value is this instruction's own: moved, not copied.
    let value = a.remove("value");
    set(r, a.get("name"), a.get("type"), value)
}

/// `set` once its argument is rendered.
fn set(
    r: &mut Runner,
    name: Option<&Value>,
    kind: Option<&Value>,
    value: Option<Value>,
) -> Result<Flow, DslError> {
    let name = name
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("set needs a string name"))?;
    let mode = match kind.and_then(Value::as_str) {
        Some("merge") => SetMode::Merge,
        Some("push") => SetMode::Push,
        // As the reference runtime does: `type: delete` is a `delete` of `name`.
        Some("delete") => {
            r.remove(name)?;
            return Ok(Flow::Next);
        }
        _ => SetMode::Replace,
    };
    let (name, mode) = match name.strip_suffix("[]") {
        Some(base) => (base, SetMode::Push),
        None => (name, mode),
    };
    r.write(name, mode, value)?;
    Ok(Flow::Next)
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn set_replace_merge_push() {
        let out = go(
            json!([
                {"set": {"name": "cart", "value": {"items": [], "total": 0}}},
                {"set": {"name": "cart.items[]", "value": {"sku": "A1", "qty": 2}}},
                {"set": {"name": "cart", "type": "merge", "value": {"total": 18.5}}},
                {"set": {"name": "l", "value": [1]}},
                {"set": {"name": "l", "type": "merge", "value": [2, 3]}},
                {"set": {"name": "l", "type": "push", "value": [4]}},
                {"set": {"name": "s", "value": "x"}},
                {"set": {"name": "s", "type": "push", "value": "y"}},
                {"set": {"name": "o", "value": {"a": 1}}},
                {"set": {"name": "o", "type": "merge", "value": 5}},
                {"set": {"name": "first", "value": "{{cart.items[0].sku}}"}}
            ]),
            json!({"cart": "{{cart}}", "l": "{{l}}", "s": "{{s}}", "o": "{{o}}", "first": "{{first}}"}),
        );
        assert_eq!(
            out,
            json!({"cart": {"items": [{"sku": "A1", "qty": 2}], "total": 18.5}, "l": [1, 2, 3, [4]],
            "s": ["y"], "o": {"a": 1}, "first": "A1"})
        );
    }

    #[test]
    fn set_with_type_delete_deletes() {
        let out = go(
            json!([
                {"set": {"name": "cart", "value": {"items": [1, 2, 3], "total": 6}}},
                {"set": {"name": "cart.total", "type": "delete"}},
                {"set": {"name": "cart.items[1]", "type": "delete", "value": "ignored"}}
            ]),
            json!("{{cart}}"),
        );
        assert_eq!(out, json!({"items": [1, 3]}));
    }
}
