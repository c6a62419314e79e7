//! `rateLimit` (§3.13): takes points from a cluster-wide limiter; `output` gets the limiter's
//! state before a refusal breaks the automation.

use serde_json::{Map, Value, json};

use crate::error::{DslError, Invalid};
use crate::interpreter::RateLimitCall;
use crate::interpreter::runner::{BreakScope, Flow, Runner, invalid};
use crate::program::Instr;
use crate::value::Val;

use super::Arg;

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    let m = arg.object()?;
    for key in ["name", "limit", "window"] {
        if !m.contains_key(key) {
            return Err(Arg::invalid(arg.at, format!("rateLimit needs {key}")));
        }
    }
    Ok(Instr::RateLimit(arg.tpl()?))
}

pub(super) fn run(r: &mut Runner, a: &Map<String, Value>) -> Result<Flow, DslError> {
    let name = a
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid("rateLimit needs a name"))?;
    let number = |key: &str, default: Option<f64>| -> Result<u32, DslError> {
        let n = match a.get(key) {
            Some(v) => Val::from_json(v.clone()).to_number(),
            None => default.ok_or_else(|| invalid(format!("rateLimit needs {key}")))?,
        };
        if !n.is_finite() || n < 0.0 {
            return Err(invalid(format!(
                "rateLimit {key} must be a non-negative number"
            )));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(n.min(f64::from(u32::MAX)).ceil() as u32)
    };
    let limit = number("limit", None)?;
    let window = number("window", None)?;
    if limit == 0 || window == 0 {
        return Err(invalid("rateLimit limit and window must be positive"));
    }
    let consume = number("consume", Some(1.0))?;
    let consumer = match a.get("consumer") {
        None | Some(Value::Null) => "global".to_owned(),
        Some(v) => Val::from_json(v.clone()).to_js_string(),
    };
    let call = RateLimitCall {
        name: name.to_owned(),
        consumer: consumer.clone(),
        limit,
        window_secs: window,
        consume,
    };
    let state = r.coordination("rate limits are")?.rate_limit(&call)?;
    let result = json!({"ok": state.ok, "remaining": state.remaining, "retryAfter": state.retry_after,
        "limit": limit, "window": window, "consumer": consumer});
    r.output_to(a, Some(result))?;
    let breaks = a
        .get("break")
        .is_none_or(|b| Val::from_json(b.clone()).truthy());
    Ok(if !state.ok && breaks {
        Flow::Break(BreakScope::Automation, None)
    } else {
        Flow::Next
    })
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn rate_limit_writes_its_state_and_breaks_when_refused() {
        let mut w = World::default();
        let steps = json!([
            {"rateLimit": {"name": "api", "limit": 2, "window": 60, "consumer": "{{who}}", "output": "rl"}},
            {"set": {"name": "passed", "value": true}}
        ]);
        let out = json!({"rl": "{{rl}}", "passed": "{{passed}}"});
        let first = go_with(&mut w, steps.clone(), out.clone(), json!({"who": "ada"})).unwrap();
        assert_eq!(
            first.output,
            json!({"rl": {"ok": true, "remaining": 1, "retryAfter": 0, "limit": 2, "window": 60, "consumer": "ada"}, "passed": true})
        );
        go_with(&mut w, steps.clone(), out.clone(), json!({"who": "ada"})).unwrap();
        let third = go_with(&mut w, steps.clone(), out.clone(), json!({"who": "ada"})).unwrap();
        assert!(third.broke, "a refusal breaks by default");
        assert_eq!(
            third.output["rl"]["ok"],
            json!(false),
            "output is written before the break"
        );
        assert_eq!(third.output["rl"]["retryAfter"], json!(60));
        assert_eq!(third.output.get("passed"), None);
        // break: false continues; consume and the default consumer
        let r = go_with(&mut w, json!([{"rateLimit": {"name": "api", "limit": 2, "window": 60, "consume": 3, "break": false, "output": "rl"}}, {"set": {"name": "passed", "value": true}}]), out.clone(), json!({})).unwrap();
        assert_eq!(
            (
                r.output["rl"]["ok"].clone(),
                r.output["rl"]["consumer"].clone(),
                r.output["passed"].clone()
            ),
            (json!(false), json!("global"), json!(true))
        );
        let e = go_with(
            &mut w,
            json!([{"rateLimit": {"name": "api", "limit": 0, "window": 60}}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "InvalidInstructionError");
    }
}
