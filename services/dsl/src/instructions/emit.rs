//! `emit` (§3.4): publishes a custom event; `output` gets its envelope.

use serde_json::{Map, Value, json};

use crate::error::{DslError, Invalid};
use crate::interpreter::runner::{Flow, Runner};
use crate::program::Instr;
use crate::value::json_type_name;

use super::Arg;

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    let m = arg.object()?;
    if !m.get("event").is_some_and(Value::is_string) {
        return Err(Arg::invalid(
            &arg.member("event"),
            "emit needs an event (a string)",
        ));
    }
    Ok(Instr::Emit(arg.tpl()?))
}

pub(super) fn run(r: &mut Runner, a: &Map<String, Value>) -> Result<Flow, DslError> {
    let envelope = emit(r, a)?;
    r.output_to(a, Some(envelope))?;
    Ok(Flow::Next)
}

fn emit(r: &mut Runner, a: &Map<String, Value>) -> Result<Value, DslError> {
    let event = a
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let valid = !event.is_empty()
        && event.len() <= 128
        && event
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._-".contains(c));
    if !valid {
        return Err(DslError::new(
            "InvalidEventError",
            format!("invalid event type {event:?}"),
        ));
    }
    let payload = match a.get("payload") {
        None | Some(Value::Null) => json!({}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(other) => {
            // Not an error of the run: an `error` event is emitted instead (§3.4).
            let err = json!({"error": "InvalidEventError",
                "message": format!("Event payload must be an object, received {}", json_type_name(other)),
                "details": {"event": event, "payload": other}});
            let id = r.out.emit("error", &err, None, true)?;
            return Ok(json!({"id": id, "type": "error", "payload": err}));
        }
    };
    let persist = a
        .get("options")
        .and_then(|o| o.get("persist"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let target = a.get("target").filter(|t| t.is_object());
    let id = r.out.emit(&event, &payload, target, persist)?;
    Ok(json!({"id": id, "type": event, "payload": payload}))
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn emit_returns_the_envelope_and_bad_payloads_become_error_events() {
        let mut w = World::default();
        let r = go_with(
            &mut w,
            json!([
                {"emit": {"event": "order.done", "payload": {"id": "{{id}}"}, "output": "sent"}},
                {"emit": {"event": "quiet", "options": {"persist": false}}},
                {"emit": {"event": "bad", "payload": [1]}}
            ]),
            json!("{{sent.payload.id}}"),
            json!({"id": 7}),
        )
        .unwrap();
        assert_eq!(r.output, json!(7));
        assert_eq!(w.emitted[0], ("order.done".into(), json!({"id": 7}), true));
        assert_eq!(w.emitted[1], ("quiet".into(), json!({}), false));
        assert_eq!(w.emitted[2].0, "error");
        assert_eq!(w.emitted[2].1["error"], json!("InvalidEventError"));
        let e = go_with(
            &mut World::default(),
            json!([{"emit": {"event": "bad type!"}}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "InvalidEventError");
    }
}
