//! `delete` (§3.3): removes the variable or member at a path.

use serde_json::{Map, Value};

use crate::error::{DslError, Invalid};
use crate::interpreter::runner::{Flow, Runner, invalid};
use crate::program::Instr;

use super::Arg;

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    super::set::check_name(arg, arg.object()?)?;
    Ok(Instr::Delete(arg.tpl()?))
}

pub(super) fn run(r: &mut Runner, a: &Map<String, Value>) -> Result<Flow, DslError> {
    let name = a
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("delete needs a string name"))?;
    r.remove(name)?;
    Ok(Flow::Next)
}
