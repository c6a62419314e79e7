//! `break` (§3.11): ends the automation, the enclosing `all` or the enclosing `repeat`
//! (`scope`); `output` is still computed.

use serde_json::{Map, Value};

use crate::error::Invalid;
use crate::interpreter::runner::{BreakScope, Flow};
use crate::program::Instr;

use super::Arg;

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    Ok(Instr::Break(arg.tpl()?))
}

pub(super) fn run(a: &Map<String, Value>) -> Flow {
    Flow::Break(match a.get("scope").and_then(Value::as_str) {
        Some("all") => BreakScope::All,
        Some("repeat") => BreakScope::Repeat,
        _ => BreakScope::Automation,
    })
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
}
