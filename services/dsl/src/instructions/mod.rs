//! The instructions (`automation-dsl.md` §3), one file each: how its argument is checked and
//! compiled when a document is saved, and how it runs. This file is the registry: the
//! instruction names [`compile_one`] knows, the [`Instr`] variants [`exec`] runs, and the run
//! loop ([`block`]) they share.
//!
//! Adding an instruction: a file here with its `compile` and `run`, its [`Instr`] variant (in
//! `program.rs`, at the end: compiled programs are stored by variant index), and one line in
//! each of [`compile_one`], [`Instr::argument`] (if it has an interpolated argument) and
//! [`exec`].

mod all;
mod r#break;
mod call;
mod conditions;
mod delete;
mod emit;
mod fetch;
mod rate_limit;
mod repeat;
mod set;
mod r#try;
mod user_topics;
mod wait;

use serde_json::{Map, Value};

use crate::error::{DslError, Invalid};
use crate::interpreter::concurrent::Shared;
use crate::interpreter::runner::{Flow, Runner, invalid};
use crate::program::Instr;
use crate::template::{self, Tpl, render};
use crate::value::Val;

/// Instruction lists nested deeper than this are refused on save, so running one can never
/// exhaust the interpreter's stack.
pub const MAX_NESTING: usize = 48;

/// Instructions of the spec not run by this interpreter yet (they fail when reached).
const UNSUPPORTED: &[&str] = &[];

/// One instruction's argument being compiled: where it is in the document and how deep.
struct Arg<'a> {
    /// The instruction's name (`set`, a callee's slug, …).
    name: &'a str,
    /// Its argument, never `null` (except for `break` and `comment`).
    value: &'a Value,
    /// Its path in the document: `do[2].set`.
    at: &'a str,
    /// Nesting depth of the list it is in.
    depth: usize,
}

impl<'a> Arg<'a> {
    /// The argument as a mapping, or the error of an instruction that takes one.
    fn object(&self) -> Result<&'a Map<String, Value>, Invalid> {
        self.value.as_object().ok_or_else(|| {
            Invalid::new(
                self.at,
                "InvalidInstructionError",
                format!("{} takes a mapping", self.name),
            )
        })
    }

    /// The whole argument as a template.
    fn tpl(&self) -> Result<Tpl, Invalid> {
        tpl(self.value, self.at)
    }

    /// The path of the argument's member `key`.
    fn member(&self, key: &str) -> String {
        member(self.at, key)
    }

    /// An error of the rule `InvalidInstructionError` at `path`.
    fn invalid(path: &str, message: impl Into<String>) -> Invalid {
        Invalid::new(path, "InvalidInstructionError", message)
    }

    /// A nested instruction list at `path`, one level deeper.
    fn list(&self, v: &Value, path: &str) -> Result<Vec<Instr>, Invalid> {
        list(v, path, self.depth + 1)
    }
}

fn tpl(v: &Value, path: &str) -> Result<Tpl, Invalid> {
    template::compile(v).map_err(|e| Invalid::new(path, e.rule, e.message))
}

/// `a.b` for identifier-like keys, `a['k']` for the rest.
fn member(path: &str, key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        && !key.is_empty()
    {
        format!("{path}.{key}")
    } else {
        format!("{path}[{key:?}]")
    }
}

/// Compiles the instruction list `v` found at `path`, `depth` lists deep.
pub(crate) fn list(v: &Value, path: &str, depth: usize) -> Result<Vec<Instr>, Invalid> {
    if depth > MAX_NESTING {
        return Err(Arg::invalid(
            path,
            format!("instructions nested deeper than {MAX_NESTING}"),
        ));
    }
    let Value::Array(items) = v else {
        return Err(Arg::invalid(path, "must be a list of instructions"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| instruction(item, &format!("{path}[{i}]"), depth))
        .collect()
}

fn instruction(item: &Value, path: &str, depth: usize) -> Result<Instr, Invalid> {
    let Some(map) = item.as_object() else {
        return Err(Arg::invalid(path, "an instruction is a one-key mapping"));
    };
    // `{}` is a no-op; several keys: the first one counts (as in Prisme.ai).
    let Some((name, value)) = map.iter().next() else {
        return Ok(Instr::Comment);
    };
    if value.is_null() && name != "break" && name != "comment" {
        return Ok(Instr::Null(name.clone()));
    }
    let at = member(path, name);
    compile_one(&Arg {
        name,
        value,
        at: &at,
        depth,
    })
}

/// The registry of instruction names: compiles one instruction's argument.
fn compile_one(arg: &Arg) -> Result<Instr, Invalid> {
    match arg.name {
        "set" => set::compile(arg),
        "delete" => delete::compile(arg),
        "emit" => emit::compile(arg),
        "wait" => wait::compile(arg),
        "fetch" => fetch::compile(arg),
        "conditions" => conditions::compile(arg),
        "repeat" => repeat::compile(arg),
        "all" => all::compile(arg),
        "break" => r#break::compile(arg),
        "comment" => Ok(Instr::Comment),
        "try" => r#try::compile(arg),
        "rateLimit" => rate_limit::compile(arg),
        "createUserTopic" => user_topics::compile_create(arg),
        "joinUserTopic" => user_topics::compile_join(arg),
        n if UNSUPPORTED.contains(&n) => Ok(Instr::Unsupported(n.to_owned())),
        _ => call::compile(arg),
    }
}

/// Runs an instruction list until its end or a break.
pub(crate) async fn block(r: Shared<'_, '_>, list: &[Instr]) -> Result<Flow, DslError> {
    for i in list {
        let flow = run(r, i).await?;
        if flow != Flow::Next {
            return Ok(flow);
        }
    }
    Ok(Flow::Next)
}

async fn run(r: Shared<'_, '_>, i: &Instr) -> Result<Flow, DslError> {
    if let Instr::Set(Tpl::Obj(members)) = i {
        return set::run_members(&mut r.borrow_mut(), members);
    }
    let args = render_args(&mut r.borrow_mut(), i)?;
    exec(r, i, args).await
}

impl Instr {
    /// The instruction's own interpolated argument and its name for errors: everything but its
    /// lazy lists (§3.1).
    fn argument(&self) -> Option<(&Tpl, &str)> {
        Some(match self {
            Instr::Set(t) => (t, "set"),
            Instr::Delete(t) => (t, "delete"),
            Instr::Emit(t) => (t, "emit"),
            Instr::Wait(t) => (t, "wait"),
            Instr::Fetch(t) => (t, "fetch"),
            Instr::Repeat { args, .. } => (args, "repeat"),
            Instr::RateLimit(t) => (t, "rateLimit"),
            Instr::CreateUserTopic(t) => (t, "createUserTopic"),
            Instr::JoinUserTopic(t) => (t, "joinUserTopic"),
            Instr::Call { slug, args } => (args, slug.as_str()),
            _ => return None,
        })
    }
}

/// Interpolates an instruction's own argument (§3.1).
fn render_args(r: &mut Runner, i: &Instr) -> Result<Option<Map<String, Value>>, DslError> {
    if let Instr::Break(t) = i {
        // Any value: only a mapping's `scope` counts.
        return Ok(match render(t, r)? {
            Val::Json(Value::Object(m)) => Some(m),
            _ => Some(Map::new()),
        });
    }
    match i.argument() {
        Some((t, name)) => r.args(t, name).map(Some),
        None => Ok(None),
    }
}

/// The registry of instruction kinds: runs one instruction, its argument rendered. The
/// instructions holding lists are boxed: they are where the run recurses.
async fn exec(
    r: Shared<'_, '_>,
    i: &Instr,
    args: Option<Map<String, Value>>,
) -> Result<Flow, DslError> {
    let a = args.unwrap_or_default();
    match i {
        Instr::Comment => Ok(Flow::Next),
        Instr::Null(name) => Err(invalid(format!("{name} needs an argument"))),
        Instr::Unsupported(name) => Err(invalid(format!(
            "{name} is not supported by this interpreter yet"
        ))),
        Instr::Set(_) => set::run(&mut r.borrow_mut(), a),
        Instr::Delete(_) => delete::run(&mut r.borrow_mut(), &a),
        Instr::Emit(_) => emit::run(&mut r.borrow_mut(), &a),
        Instr::Wait(_) => wait::run(r, &a).await,
        Instr::Fetch(_) => fetch::run(r, &a).await,
        Instr::Conditions { branches, default } => {
            Box::pin(conditions::run(r, branches, default)).await
        }
        Instr::Repeat { body, .. } => Box::pin(repeat::run(r, &a, body)).await,
        Instr::All(branches) => Box::pin(all::run(r, branches)).await,
        Instr::Break(_) => Ok(r#break::run(a)),
        Instr::Try { body, catch } => Box::pin(r#try::run(r, body, catch.as_deref())).await,
        Instr::RateLimit(_) => rate_limit::run(&mut r.borrow_mut(), &a),
        Instr::CreateUserTopic(_) => user_topics::run_create(&mut r.borrow_mut(), &a),
        Instr::JoinUserTopic(_) => user_topics::run_join(&mut r.borrow_mut(), &a),
        Instr::Call { slug, .. } => call::run(r, slug, &a).await,
    }
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn null_arguments_and_unsupported_instructions_fail_when_reached() {
        let e = go_with(
            &mut World::default(),
            json!([{"emit": null}]),
            json!({}),
            json!({}),
        )
        .unwrap_err();
        assert_eq!(e.class, "InvalidInstructionError");
        let e = compile(&json!([{"rateLimit": {"name": "x"}}]), None).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.rule.as_str()),
            ("do[0].rateLimit", "InvalidInstructionError")
        );
        assert_eq!(
            go(
                json!([{"break": null}, {"set": {"name": "a", "value": 1}}]),
                json!("{{a}}")
            ),
            json!(null),
            "the output names a variable never set: undefined, null in JSON"
        );
    }

    #[test]
    fn compiled_programs_survive_serialization() {
        let p = compile(&json!([{"conditions": {"{{a}} > 1 and {{b}}": [{"emit": {"event": "x"}}], "default": []}}]), Some(&json!("{{a}}"))).unwrap();
        let text = serde_json::to_string(&p).unwrap();
        let back: crate::Program = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
    }
}
