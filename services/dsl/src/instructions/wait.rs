//! `wait` (§3.5): waits for the first event matching one of `oneOf`, or a timeout.

use serde_json::{Map, Value};

use crate::error::{DslError, Invalid};
use crate::interpreter::WaitFor;
use crate::interpreter::concurrent::{self, Shared};
use crate::interpreter::runner::{Flow, invalid};
use crate::program::Instr;
use crate::value::Val;

use super::Arg;

/// Seconds a `wait` without a (positive) `timeout` waits.
const DEFAULT_TIMEOUT_SECS: f64 = 20.0;

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    let m = arg.object()?;
    if !m.get("oneOf").is_some_and(Value::is_array) {
        return Err(Arg::invalid(
            &arg.member("oneOf"),
            "wait needs oneOf (a list)",
        ));
    }
    Ok(Instr::Wait(arg.tpl()?))
}

pub(super) async fn run(r: Shared<'_, '_>, a: &Map<String, Value>) -> Result<Flow, DslError> {
    let (on, ms) = conditions(a)?;
    let event = concurrent::wait(r, on, ms).await?;
    r.borrow_mut().output_to(a, event)?;
    Ok(Flow::Next)
}

/// The entries of `oneOf` and the timeout in milliseconds.
fn conditions(a: &Map<String, Value>) -> Result<(Vec<WaitFor>, u32), DslError> {
    let Some(Value::Array(entries)) = a.get("oneOf") else {
        return Err(invalid("wait needs oneOf"));
    };
    let mut on = Vec::new();
    for e in entries {
        let Some(event_type) = e.get("event").and_then(Value::as_str) else {
            return Err(invalid("each wait.oneOf entry needs an event"));
        };
        let filters = e
            .get("filters")
            .and_then(Value::as_object)
            .map(|f| f.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        on.push(WaitFor {
            event_type: event_type.to_owned(),
            filters,
        });
    }
    let secs = a
        .get("timeout")
        .map(|t| Val::from_json(t.clone()).to_number())
        .filter(|t| *t > 0.0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ms = (secs * 1000.0).min(f64::from(u32::MAX)) as u32;
    Ok((on, ms))
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn wait_passes_filters_and_timeout() {
        let mut w = World {
            reply: Some(json!({"type": "reply", "payload": {"ok": 1}})),
            ..World::default()
        };
        let r = go_with(
            &mut w,
            json!([{"wait": {"oneOf": [{"event": "reply", "filters": {"source.correlationId": "{{run.correlationId}}"}}],
                "timeout": 2, "output": "got"}}]),
            json!("{{got.payload.ok}}"),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!(1));
        assert_eq!(w.waits[0].1, 2000);
        assert_eq!(
            w.waits[0].0[0].filters,
            vec![("source.correlationId".to_owned(), json!("c1"))]
        );
    }
}
