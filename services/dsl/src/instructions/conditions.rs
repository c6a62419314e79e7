//! `conditions` (§3.7): runs the first branch whose expression is truthy, else `default`.

use crate::error::{DslError, Invalid};
use crate::eval::eval;
use crate::expr::{self, Expr};
use crate::interpreter::concurrent::Shared;
use crate::interpreter::runner::Flow;
use crate::program::Instr;

use super::{Arg, block};

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    let m = arg.object()?;
    let mut branches = Vec::new();
    let mut default = Vec::new();
    for (key, body) in m {
        let p = format!("{}[{key:?}]", arg.at);
        let body = if body.is_null() {
            Vec::new()
        } else {
            arg.list(body, &p)?
        };
        if key == "default" {
            default = body;
        } else {
            let e = expr::parse(key)
                .map_err(|e| Invalid::new(&p, "InvalidExpressionSyntax", e.to_string()))?;
            branches.push((e, body));
        }
    }
    Ok(Instr::Conditions { branches, default })
}

pub(super) async fn run(
    r: Shared<'_, '_>,
    branches: &[(Expr, Vec<Instr>)],
    default: &[Instr],
) -> Result<Flow, DslError> {
    for (cond, body) in branches {
        let yes = eval(cond, &mut *r.borrow_mut())?.truthy();
        if yes {
            return block(r, body).await;
        }
    }
    block(r, default).await
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn conditions_take_the_first_truthy_branch_in_order() {
        let steps = json!([{"conditions": {
            "{{qty}} > 10": [{"set": {"name": "tier", "value": "bulk"}}],
            "{{qty}} exists": [{"set": {"name": "tier", "value": "normal"}}],
            "default": [{"set": {"name": "tier", "value": "none"}}]
        }}]);
        let tier = |locals: Value| {
            go_with(
                &mut World::default(),
                steps.clone(),
                json!("{{tier}}"),
                locals,
            )
            .unwrap()
            .output
        };
        assert_eq!(tier(json!({"qty": 20})), json!("bulk"));
        assert_eq!(tier(json!({"qty": 2})), json!("normal"));
        assert_eq!(tier(json!({})), json!("none"));
    }
}
