//! `repeat` (§3.8): runs `do` once per item of `on` (a list, a mapping's entries, a string's
//! UTF-16 units) or `until` times, with `item` and `$index` set.

use serde_json::{Map, Value, json};

use crate::error::{DslError, Invalid};
use crate::interpreter::concurrent::Shared;
use crate::interpreter::runner::{BreakScope, Flow};
use crate::program::Instr;
use crate::value::Val;

use super::{Arg, block};

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    let m = arg.object()?;
    if !m.contains_key("on") && !m.contains_key("until") {
        return Err(Arg::invalid(arg.at, "repeat needs on or until"));
    }
    let body = arg.list(m.get("do").unwrap_or(&Value::Null), &arg.member("do"))?;
    let mut rest = m.clone();
    rest.remove("do");
    Ok(Instr::Repeat {
        args: super::tpl(&Value::Object(rest), arg.at)?,
        body,
    })
}

pub(super) async fn run(
    r: Shared<'_, '_>,
    a: &Map<String, Value>,
    body: &[Instr],
) -> Result<Flow, DslError> {
    let until = a
        .get("until")
        .map(|u| Val::from_json(u.clone()).to_number())
        .filter(|n| *n > 0.0 && !n.is_nan());
    // Counted loops are not materialized: `until: 1e12` costs CPU time (stopped by the
    // host's budget), not memory.
    let items: Box<dyn Iterator<Item = Value>> = match a.get("on") {
        Some(Value::Array(items)) => Box::new(items.clone().into_iter()),
        Some(Value::Object(m)) => Box::new(
            m.iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect::<Vec<_>>()
                .into_iter(),
        ),
        Some(Value::String(s)) => Box::new(
            s.encode_utf16()
                .map(|u| Value::String(String::from_utf16_lossy(&[u])))
                .collect::<Vec<_>>()
                .into_iter(),
        ),
        Some(_) => Box::new(std::iter::empty()),
        None => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = until.unwrap_or(0.0).min(u64::MAX as f64) as u64;
            Box::new((0..n).map(|i| json!(i)))
        }
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let cap = if a.contains_key("on") {
        until.map_or(usize::MAX, |u| u as usize)
    } else {
        usize::MAX
    };
    let mut flow = Flow::Next;
    for (index, item) in items.take(cap).enumerate() {
        {
            let mut g = r.borrow_mut();
            g.set_local("item", item);
            g.set_local("$index", json!(index));
        }
        match block(r, body).await? {
            Flow::Next => {}
            Flow::Break(BreakScope::Repeat) => break,
            other => {
                flow = other;
                break;
            }
        }
    }
    if let Value::Object(m) = &mut r.borrow_mut().locals {
        m.remove("item");
    }
    Ok(flow)
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn repeat_over_arrays_objects_strings_and_counts() {
        let out = go(
            json!([
                {"set": {"name": "sum", "value": 0}},
                {"repeat": {"on": [1, 2, 3], "do": [{"set": {"name": "sum", "value": "{% {{sum}} + {{item}} %}"}}]}},
                {"repeat": {"on": {"a": 1, "b": 2}, "do": [{"set": {"name": "keys[]", "value": "{{item.key}}"}}]}},
                {"repeat": {"on": "hé", "do": [{"set": {"name": "chars[]", "value": "{{item}}"}}]}},
                {"repeat": {"until": 3, "do": [{"set": {"name": "idx[]", "value": "{{$index}}"}}]}},
                {"repeat": {"on": [1, 2, 3, 4], "until": 2, "do": [{"set": {"name": "capped[]", "value": "{{item}}"}}]}}
            ]),
            json!({"sum": "{{sum}}", "keys": "{{keys}}", "chars": "{{chars}}", "idx": "{{idx}}", "capped": "{{capped}}",
                "item": "{{item}}", "last": "{{$index}}"}),
        );
        assert_eq!(
            out,
            json!({"sum": 6, "keys": ["a", "b"], "chars": ["h", "é"], "idx": [0, 1, 2], "capped": [1, 2], "last": 1})
        );
    }
}
