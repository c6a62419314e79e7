//! `break` (§3.11): ends the automation, the enclosing `all` or the enclosing `repeat`
//! (`scope`); `output` is still computed, unless a `payload` [newer] is the automation's output
//! instead.

use serde_json::{Map, Value};

use crate::error::Invalid;
use crate::interpreter::runner::{BreakScope, Flow};
use crate::program::Instr;

use super::Arg;

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    Ok(Instr::Break(arg.tpl()?))
}

pub(super) fn run(mut a: Map<String, Value>) -> Flow {
    let scope = match a.get("scope").and_then(Value::as_str) {
        Some("all") => BreakScope::All,
        Some("repeat") => BreakScope::Repeat,
        _ => BreakScope::Automation,
    };
    Flow::Break(scope, a.remove("payload"))
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn break_stops_the_automation_but_output_is_computed() {
        let r = go_with(
            &mut World::default(),
            json!([
                {"repeat": {"on": [1, 2, 3], "do": [
                    {"conditions": {"{{item}} == 2": [{"break": {"scope": "repeat"}}], "default": []}},
                    {"set": {"name": "seen[]", "value": "{{item}}"}}
                ]}},
                {"set": {"name": "after", "value": true}},
                {"break": {}},
                {"set": {"name": "never", "value": true}}
            ]),
            json!({"seen": "{{seen}}", "after": "{{after}}", "never": "{{never}}"}),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!({"seen": [1], "after": true}));
        assert!(r.broke);
    }

    #[test]
    fn a_break_payload_is_the_output() {
        let r = go_with(
            &mut World::default(),
            json!([
                {"set": {"name": "n", "value": 2}},
                {"repeat": {"on": [1], "do": [{"break": {"scope": "repeat", "payload": {"loop": true}}}]}},
                {"break": {"payload": {"error": "NotFound", "n": "{{n}}"}}},
                {"set": {"name": "never", "value": true}}
            ]),
            json!({"computed": true}),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!({"error": "NotFound", "n": 2}));
        assert!(r.broke);
        // The payload is the one of the break that ends the run: the first of an `all` to
        // settle, never one whose break was passed over.
        let r = go_with(
            &mut World::default(),
            json!([{"all": [{"break": {"payload": "A"}}, {"break": {"payload": "B"}}]}]),
            json!("output"),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!("A"));
        let r = go_with(
            &mut World::default(),
            json!([
                {"try": {"do": [{"all": [{"missing": {}}, {"break": {"payload": "stale"}}]}]}},
                {"break": {}}
            ]),
            json!("output"),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output, json!("output"));
    }
}
