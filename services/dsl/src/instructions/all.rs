//! `all` (§3.10): every branch's own argument is interpolated first, against the scopes
//! before any branch runs; then the branches start in list order, each running until it waits
//! on the host (fetch, wait, call), and run together from there ([`concurrent`]); once all
//! have settled, the first error or break to settle is raised.

use serde_json::{Map, Value};

use crate::error::{DslError, Invalid};
use crate::interpreter::concurrent::{self, Branch, Shared};
use crate::interpreter::runner::Flow;
use crate::program::Instr;

use super::{Arg, exec, render_args};

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    Ok(Instr::All(arg.list(arg.value, arg.at)?))
}

pub(super) async fn run(r: Shared<'_, '_>, branches: &[Instr]) -> Result<Flow, DslError> {
    let rendered: Vec<Result<Option<Map<String, Value>>, DslError>> = {
        let mut g = r.borrow_mut();
        branches.iter().map(|b| render_args(&mut g, b)).collect()
    };
    let running: Vec<Branch<'_>> = branches
        .iter()
        .zip(rendered)
        .map(|(b, args)| -> Branch<'_> { Box::pin(async move { exec(r, b, args?).await }) })
        .collect();
    concurrent::join(r, running)
        .await
        .into_iter()
        .find(|settled| !matches!(settled, Ok(Flow::Next)))
        .unwrap_or(Ok(Flow::Next))
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn all_interpolates_every_branch_before_running_any() {
        let mut w = World::default();
        let r = go_with(
            &mut w,
            json!([
                {"set": {"name": "n", "value": 1}},
                {"all": [
                    {"set": {"name": "n", "value": 2}},
                    {"set": {"name": "seen", "value": "{{n}}"}},
                    {"emit": {"event": "boom", "payload": 3}},
                    {"missing": {}},
                    {"set": {"name": "after", "value": true}}
                ]}
            ]),
            json!({"n": "{{n}}", "seen": "{{seen}}", "after": "{{after}}"}),
            json!({}),
        );
        let e = r.unwrap_err();
        assert_eq!(
            e.class, "ObjectNotFoundError",
            "the first error is raised once all branches settled"
        );
        let r = go_with(&mut World::default(), json!([{"set": {"name": "n", "value": 1}}, {"all": [{"set": {"name": "n", "value": 2}}, {"set": {"name": "seen", "value": "{{n}}"}}]}]), json!({"n": "{{n}}", "seen": "{{seen}}"}), json!({})).unwrap();
        assert_eq!(
            r.output,
            json!({"n": 2, "seen": 1}),
            "branch 2 saw the scopes before branch 1 ran"
        );
        assert_eq!(
            w.emitted.len(),
            1,
            "the error event of branch 3 was emitted although branch 4 failed"
        );
        let mut w = World::default();
        let e = go_with(&mut w, json!([{"all": [{"missing": {}}, {"set": {"name": "x", "value": 1}}, {"emit": {"event": "after"}}]}]), json!({}), json!({})).unwrap_err();
        assert_eq!(e.class, "ObjectNotFoundError");
        assert_eq!(w.emitted.len(), 1, "later branches still ran");
    }

    /// A branch of several instructions.
    fn seq(steps: Value) -> Value {
        json!({"conditions": {"default": steps}})
    }

    fn fetch(ms: u32, output: &str) -> Value {
        json!({"fetch": {"url": format!("https://slow.example/{ms}"), "output": output}})
    }

    #[test]
    fn branches_wait_on_the_host_together() {
        let mut w = World::together();
        let r = go_with(
            &mut w,
            json!([{"all": [fetch(300, "a"), fetch(300, "b"), fetch(300, "c")]}]),
            json!(["{{a.ok}}", "{{b.ok}}", "{{c.ok}}"]),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!([true, true, true]));
        assert_eq!(
            w.clock, 300,
            "three 300 ms fetches in one all take 300 ms, not 900"
        );
        assert_eq!(w.fetched.len(), 3);
        let mut w = World::together();
        go_with(
            &mut w,
            json!([fetch(300, "a"), fetch(300, "b")]),
            json!({}),
            json!({}),
        )
        .unwrap();
        assert_eq!(w.clock, 600, "outside of all, one call after the other");
        assert!(w.journal.is_empty(), "nothing was started outside of all");
        let mut w = World::together();
        go_with(
            &mut w,
            json!([{"all": [
                {"wait": {"oneOf": [{"event": "a"}], "timeout": 0.3}},
                {"wait": {"oneOf": [{"event": "b"}], "timeout": 0.3}}
            ]}]),
            json!({}),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            (w.clock, w.waits.len()),
            (300, 2),
            "two waits wait together"
        );
    }

    #[test]
    fn branches_interleave_at_host_calls_and_share_locals() {
        let mut w = World::together();
        let push = |v: &str| json!({"set": {"name": "order", "type": "push", "value": v}});
        let r = go_with(
            &mut w,
            json!([{"all": [
                seq(json!([push("1 starts"), fetch(200, "x"), push("1 ends")])),
                seq(json!([push("2 starts"), fetch(50, "y"), push("2 ends"), fetch(50, "z"), push("2 again")])),
                {"repeat": {"on": [100, 100, 100], "do": [fetch(100, "w"), push("3 turns")]}}
            ]}]),
            json!("{{order}}"),
            json!({"order": []}),
        )
        .unwrap();
        assert_eq!(
            r.output,
            json!([
                "1 starts", "2 starts", "2 ends", "2 again", "3 turns", "1 ends", "3 turns",
                "3 turns"
            ]),
            "each branch runs until it waits on the host, then as the host answers; branches 2 \
             and 3 are answered together at 100 ms and go on in list order"
        );
        assert_eq!(
            w.clock, 300,
            "the longest branch: three 100 ms fetches in a row"
        );
    }

    #[test]
    fn nested_all_run_together_with_their_parent() {
        let mut w = World::together();
        go_with(
            &mut w,
            json!([{"all": [
                fetch(300, "a"),
                {"all": [fetch(300, "b"), {"try": {"do": [fetch(300, "c"), {"call-me": {}}]}}]}
            ]}]),
            json!({}),
            json!({}),
        )
        .unwrap();
        assert_eq!(w.clock, 300);
        assert_eq!((w.fetched.len(), w.calls.len()), (3, 1));
    }

    #[test]
    fn the_first_error_to_settle_is_raised_once_all_settled() {
        let mut w = World::together();
        let e = go_with(
            &mut w,
            json!([{"all": [
                seq(json!([fetch(300, "a"), {"missing": {}}])),
                seq(json!([fetch(100, "b"), {"emit": null}])),
                seq(json!([fetch(500, "c"), {"set": {"name": "last", "value": true}}]))
            ]}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(
            e.class, "InvalidInstructionError",
            "branch 2 failed first (at 100 ms), branch 1 later (at 300 ms)"
        );
        assert_eq!(
            w.clock, 500,
            "the failures cancelled nothing: branch 3 ran to its end"
        );
        assert_eq!(w.calls.len(), 1, "branch 1 reached its call");
    }
}
