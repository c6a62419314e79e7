//! `repeat` (§3.8): runs `do` once per item of `on` (a list, a mapping's entries, a string's
//! UTF-16 units) or `until` times, with `item` and `$index` set. With `batch: {size, interval}`
//! [newer], the iterations run `size` at a time, together as the branches of an `all` do
//! ([`concurrent`]), each seeing its own `item` and `$index`; a batch starts once the previous
//! one has settled and `interval` ms have passed ([`Outside::sleep`](crate::interpreter::Outside::sleep)).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::{Map, Value, json};

use crate::error::{DslError, Invalid};
use crate::interpreter::concurrent::{self, Branch, Shared};
use crate::interpreter::runner::{BreakScope, Flow};
use crate::program::Instr;
use crate::value::Val;

use super::{Arg, block};

/// The most iterations of one batch: each is a branch in memory at once, and the host runs
/// no more than 64 calls together anyway.
const MAX_BATCH: usize = 100;

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
    let batch = a.get("batch").and_then(Value::as_object);
    let number = |name: &str| {
        let n = batch
            .and_then(|b| b.get(name))
            .map(|v| Val::from_json(v.clone()).to_number());
        n.filter(|n| *n >= 1.0).unwrap_or(0.0)
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (size, interval) = (
        (number("size") as usize).clamp(1, MAX_BATCH),
        number("interval").min(f64::from(u32::MAX)) as u32,
    );
    let mut items = items.take(cap).enumerate();
    let flow = if size > 1 || interval > 0 {
        batches(r, &mut items, body, size, interval).await
    } else {
        one_by_one(r, &mut items, body).await
    };
    // Also after an error: a `try` around the loop does not see its last item.
    if let Value::Object(m) = &mut r.borrow_mut().locals {
        m.remove("item");
    }
    flow
}

type Items<'i> = dyn Iterator<Item = (usize, Value)> + 'i;

async fn one_by_one(
    r: Shared<'_, '_>,
    items: &mut Items<'_>,
    body: &[Instr],
) -> Result<Flow, DslError> {
    let mut flow = Flow::Next;
    for (index, item) in items {
        {
            let mut g = r.borrow_mut();
            g.set_local("item", item);
            g.set_local("$index", json!(index));
        }
        match block(r, body).await? {
            Flow::Next => {}
            Flow::Break(BreakScope::Repeat, _) => break,
            other => {
                flow = other;
                break;
            }
        }
    }
    Ok(flow)
}

/// The iterations `size` at a time. A `break` with scope `repeat` ends the loop once its batch
/// has settled; any other break or error, the first to settle, ends it then too and is raised.
async fn batches(
    r: Shared<'_, '_>,
    items: &mut Items<'_>,
    body: &[Instr],
    size: usize,
    interval: u32,
) -> Result<Flow, DslError> {
    let mut first = true;
    loop {
        let batch: Vec<(usize, Value)> = (&mut *items).take(size).collect();
        if batch.is_empty() {
            return Ok(Flow::Next);
        }
        if !first && interval > 0 {
            // A blocking pause: inside an `all`, the other branches wait for it too.
            r.borrow_mut().out.sleep(interval)?;
        }
        first = false;
        let last = batch.last().map_or(0, |(i, _)| *i);
        let running: Vec<Branch<'_>> = batch
            .into_iter()
            .map(|(index, item)| -> Branch<'_> {
                Box::pin(Iteration::new(r, index, item, Box::pin(block(r, body))))
            })
            .collect();
        let settled = concurrent::join(r, running).await;
        r.borrow_mut().set_local("$index", json!(last));
        let mut stop = false;
        for result in settled {
            match result? {
                Flow::Next => {}
                Flow::Break(BreakScope::Repeat, _) => stop = true,
                other => return Ok(other),
            }
        }
        if stop {
            return Ok(Flow::Next);
        }
    }
}

/// The locals each iteration of a batch has its own of.
const OWN: [&str; 2] = ["item", "$index"];

/// One iteration of a batch: its own `item` and `$index` (as it, or a loop nested in it, left
/// them) are the locals while it runs, put back before each of its steps (the others change
/// them between two).
struct Iteration<'r, 'o, 'b> {
    r: Shared<'r, 'o>,
    own: [Option<Value>; 2],
    body: Branch<'b>,
}

impl<'r, 'o, 'b> Iteration<'r, 'o, 'b> {
    fn new(r: Shared<'r, 'o>, index: usize, item: Value, body: Branch<'b>) -> Self {
        Iteration {
            r,
            own: [Some(item), Some(json!(index))],
            body,
        }
    }
}

impl Future for Iteration<'_, '_, '_> {
    type Output = Result<Flow, DslError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Value::Object(m) = &mut this.r.borrow_mut().locals {
            for (name, value) in OWN.iter().zip(&mut this.own) {
                match value.take() {
                    Some(v) => m.insert((*name).to_owned(), v),
                    None => m.remove(*name),
                };
            }
        }
        let polled = this.body.as_mut().poll(cx);
        if polled.is_pending()
            && let Value::Object(m) = &mut this.r.borrow_mut().locals
        {
            for (name, value) in OWN.iter().zip(&mut this.own) {
                *value = m.remove(*name);
            }
        }
        polled
    }
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

    #[test]
    fn a_batch_runs_its_iterations_together_each_with_its_own_item() {
        let mut w = World::together();
        let r = go_with(
            &mut w,
            json!([{"repeat": {"on": ["a", "b", "c", "d", "e"], "batch": {"size": 2, "interval": 50}, "do": [
                {"fetch": {"url": "https://slow.example/{{item}}/100", "output": "got"}},
                {"set": {"name": "seen[]", "value": "{{item}}{{$index}}"}}
            ]}}]),
            json!({"seen": "{{seen}}", "item": "{{item}}", "last": "{{$index}}"}),
            json!({}),
        )
        .unwrap();
        // After its fetch, each iteration still sees its own item, not the last one started.
        assert_eq!(
            r.output,
            json!({"seen": ["a0", "b1", "c2", "d3", "e4"], "last": 4})
        );
        assert_eq!(
            w.clock,
            3 * 100 + 2 * 50,
            "three batches of 100 ms fetches run together, 50 ms apart"
        );
        let pauses: Vec<_> = w
            .journal
            .iter()
            .filter(|j| j.starts_with("sleep"))
            .collect();
        assert_eq!(pauses, ["sleep 50", "sleep 50"]);
    }

    #[test]
    fn a_loop_nested_in_a_batch_keeps_its_own_index_and_a_failed_loop_its_item() {
        let r = go_with(
            &mut World::together(),
            json!([
                {"repeat": {"on": ["a", "b"], "batch": {"size": 2}, "do": [
                    {"repeat": {"on": ["x", "y"], "do": [
                        {"fetch": {"url": "https://slow.example/10"}},
                        {"set": {"name": "seen[]", "value": "{{item}}{{$index}}"}}
                    ]}}
                ]}},
                {"try": {"do": [{"repeat": {"on": [1], "do": [{"missing": {}}]}}]}}
            ]),
            json!({"seen": "{{seen}}", "item": "{{item}}"}),
            json!({}),
        )
        .unwrap();
        let mut seen: Vec<String> = serde_json::from_value(r.output["seen"].clone()).unwrap();
        seen.sort();
        assert_eq!(seen, ["x0", "x0", "y1", "y1"]);
        assert_eq!(
            r.output.get("item"),
            None,
            "a failed loop removes its item too"
        );
    }

    #[test]
    fn a_break_ends_the_batched_loop_once_its_batch_settled() {
        let r = go_with(
            &mut World::together(),
            json!([{"repeat": {"until": 10, "batch": {"size": 3}, "do": [
                {"conditions": {"{{item}} == 4": [{"break": {"scope": "repeat"}}], "default": []}},
                {"set": {"name": "ran[]", "value": "{{item}}"}}
            ]}}, {"set": {"name": "after", "value": true}}]),
            json!({"ran": "{{ran}}", "after": "{{after}}"}),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!({"ran": [0, 1, 2, 3, 5], "after": true}));
    }
}
