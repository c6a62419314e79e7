//! `try` / `catch` (§3.12): an error in `do` sets `$error` and runs `catch` instead of ending
//! the run.

use serde_json::{Value, json};

use crate::error::{DslError, Invalid};
use crate::interpreter::concurrent::Shared;
use crate::interpreter::runner::Flow;
use crate::program::Instr;

use super::{Arg, block};

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    let m = arg.object()?;
    let body = arg.list(m.get("do").unwrap_or(&Value::Null), &arg.member("do"))?;
    let catch = match m.get("catch") {
        None | Some(Value::Null) => None,
        Some(c) => Some(arg.list(c, &arg.member("catch"))?),
    };
    Ok(Instr::Try { body, catch })
}

pub(super) async fn run(
    r: Shared<'_, '_>,
    body: &[Instr],
    catch: Option<&[Instr]>,
) -> Result<Flow, DslError> {
    match block(r, body).await {
        Err(e) => {
            let err = json!({"error": e.class, "name": e.class, "message": e.message, "details": e.details});
            r.borrow_mut().set_local("$error", err);
            match catch {
                Some(c) => block(r, c).await,
                None => Ok(Flow::Next),
            }
        }
        ok => ok,
    }
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn try_catch_exposes_the_error_and_all_runs_every_branch() {
        let out = go(
            json!([
                {"try": {"do": [{"missing": {}}, {"set": {"name": "skipped", "value": 1}}],
                    "catch": [{"set": {"name": "caught", "value": "{{$error.error}}"}}]}},
                {"try": {"do": [{"emit": {"event": "bad!"}}]}},
                {"all": [{"set": {"name": "a", "value": 1}}, {"set": {"name": "b", "value": 2}}]}
            ]),
            json!({"caught": "{{caught}}", "skipped": "{{skipped}}", "class": "{{$error.name}}", "a": "{{a}}", "b": "{{b}}"}),
        );
        assert_eq!(
            out,
            json!({"caught": "ObjectNotFoundError", "class": "InvalidEventError", "a": 1, "b": 2})
        );
    }
}
