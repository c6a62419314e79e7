//! Automation calls (§3.15): any other instruction name is the slug of an automation to run
//! with the argument mapping; `output` gets what it returns.

use serde_json::{Map, Value};

use crate::error::{DslError, Invalid};
use crate::interpreter::BREAK_ALL;
use crate::interpreter::concurrent::{self, Shared};
use crate::interpreter::runner::{BreakScope, Flow};
use crate::program::Instr;

use super::Arg;

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    if !arg.value.is_object() {
        return Err(Arg::invalid(
            arg.at,
            "an automation call takes a mapping of arguments",
        ));
    }
    Ok(Instr::Call {
        slug: arg.name.to_owned(),
        args: arg.tpl()?,
    })
}

pub(super) async fn run(
    r: Shared<'_, '_>,
    slug: &str,
    a: &Map<String, Value>,
) -> Result<Flow, DslError> {
    let result = concurrent::call(r, slug, Value::Object(a.clone())).await;
    let mut r = r.borrow_mut();
    // The callee shares the persistent scopes: what it wrote is read afresh (§5.3).
    r.scopes.clear();
    match result {
        // The callee ended with `break: {scope: all}`: its output is still the call's result,
        // and this automation stops too (§3.11). A break, not an error: `try` lets it pass.
        Err(e) if e.class == BREAK_ALL => {
            r.output_to(a, Some(e.details))?;
            Ok(Flow::Break(BreakScope::All, None))
        }
        result => {
            r.output_to(a, Some(result?))?;
            Ok(Flow::Next)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn calls_pass_interpolated_arguments_and_write_the_output() {
        let mut w = World::default();
        let r = go_with(
            &mut w,
            json!([{"quote": {"sku": "{{sku}}", "output": "price"}}]),
            json!("{{price.with.sku}}"),
            json!({"sku": "A1"}),
        )
        .unwrap();
        assert_eq!(r.output, json!("A1"));
        assert_eq!(
            w.calls,
            vec![("quote".into(), json!({"sku": "A1", "output": "price"}))]
        );
        let e = go_with(
            &mut World::default(),
            json!([{"missing": {}}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "ObjectNotFoundError");
    }

    #[test]
    fn a_callee_breaking_all_stops_its_caller_which_still_computes_its_output() {
        let r = go_with(
            &mut World::default(),
            json!([
                {"set": {"name": "before", "value": true}},
                {"try": {"do": [{"breaks-all": {"output": "got"}}], "catch": [{"set": {"name": "caught", "value": true}}]}},
                {"set": {"name": "after", "value": true}}
            ]),
            json!({"before": "{{before}}", "got": "{{got}}", "caught": "{{caught}}", "after": "{{after}}"}),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!({"before": true, "got": {"partial": 1}}));
        assert!(
            r.broke && r.stops_callers,
            "the caller stops its own callers"
        );
    }

    #[test]
    fn a_callees_writes_to_shared_scopes_are_seen_after_the_call() {
        let out = go(
            json!([
                {"set": {"name": "global.n", "value": 1}},
                {"set": {"name": "before", "value": "{{global.n}}"}},
                {"bump": {}},
                {"set": {"name": "after", "value": "{{global.n}}"}}
            ]),
            json!({"before": "{{before}}", "after": "{{after}}"}),
        );
        assert_eq!(out, json!({"before": 1, "after": 2}));
    }
}
