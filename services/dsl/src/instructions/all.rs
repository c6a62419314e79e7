//! `all` (§3.10): every branch's own argument is interpolated first, against the scopes
//! before any branch runs; then the branches run in list order (host calls block, so they do
//! not interleave) and, once all have settled, the first error or break is raised.

use serde_json::{Map, Value};

use crate::error::{DslError, Invalid};
use crate::interpreter::runner::{Flow, Runner};
use crate::program::Instr;

use super::{Arg, exec, render_args};

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    Ok(Instr::All(arg.list(arg.value, arg.at)?))
}

pub(super) fn run(r: &mut Runner, branches: &[Instr]) -> Result<Flow, DslError> {
    let rendered: Vec<Result<Option<Map<String, Value>>, DslError>> =
        branches.iter().map(|b| render_args(r, b)).collect();
    let mut first: Option<Result<Flow, DslError>> = None;
    for (b, args) in branches.iter().zip(rendered) {
        let result = args.and_then(|a| exec(r, b, a));
        if first.is_none() && !matches!(result, Ok(Flow::Next)) {
            first = Some(result);
        }
    }
    first.unwrap_or(Ok(Flow::Next))
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
}
