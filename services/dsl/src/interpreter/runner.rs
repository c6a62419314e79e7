//! The state of one run and what every instruction shares: rendering its argument, writing its
//! result at `output`, how an instruction list ended ([`Flow`]).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::DslError;
use crate::eval::Env;
use crate::path::{self, Seg};
use crate::template::{Tpl, render};
use crate::value::Val;

use super::outside::{
    ConfigWriter, Coordination, HostReply, HttpOut, IdentitySwitch, Outside, RunInput, Scope,
    Ticket,
};
use super::paths::SetMode;

/// How an instruction list ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Flow {
    /// On to the next instruction.
    Next,
    /// A `break` (or a refused `rateLimit`) of this scope, with the `payload` that becomes the
    /// automation's output when this break ends it.
    Break(BreakScope, Option<Value>),
}

/// What a `break` ends (§3.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakScope {
    Automation,
    All,
    Repeat,
}

/// One run in progress.
pub(crate) struct Runner<'o> {
    pub(crate) out: &'o mut dyn Outside,
    pub(crate) input: RunInput,
    pub(crate) locals: Value,
    /// Persistent variables read or written in this run: (scope, name) → value.
    pub(crate) scopes: HashMap<(Scope, String), Option<Value>>,
    pub(crate) http: HttpOut,
    /// The run switched identity (§5.5): `user.email` and `user.authData` are empty.
    pub(crate) switched: bool,
    /// How many `all` are running (nested ones count): inside one, slow host calls are started,
    /// not waited for ([`super::concurrent`]).
    pub(crate) concurrent: u32,
    /// The host's replies to started calls, until their branch takes them.
    pub(crate) replies: HashMap<Ticket, HostReply>,
}

/// The error of an instruction used the wrong way.
pub(crate) fn invalid(message: impl Into<String>) -> DslError {
    DslError::new("InvalidInstructionError", message)
}

/// The error of an instruction whose capability this outside lacks (`rate limits`, `user
/// topics`, …): the one place a missing capability is refused.
fn unavailable(what: &str) -> DslError {
    DslError::new("PrismeError", format!("{what} not available here"))
}

impl<'o> Runner<'o> {
    pub(crate) fn new(mut input: RunInput, out: &'o mut dyn Outside) -> Self {
        let locals = Value::Object(std::mem::take(&mut input.locals));
        Runner {
            out,
            input,
            scopes: HashMap::new(),
            http: HttpOut::default(),
            locals,
            switched: false,
            concurrent: 0,
            replies: HashMap::new(),
        }
    }

    /// Renders an instruction's argument mapping.
    pub(crate) fn args(&mut self, t: &Tpl, name: &str) -> Result<Map<String, Value>, DslError> {
        match render(t, self)? {
            Val::Json(Value::Object(m)) => Ok(m),
            other => Err(invalid(format!(
                "{name} takes a mapping, got {}",
                other.type_name()
            ))),
        }
    }

    /// Writes an instruction's result at its `output` path, if any (§3.1).
    pub(crate) fn output_to(
        &mut self,
        args: &Map<String, Value>,
        value: Option<Value>,
    ) -> Result<(), DslError> {
        let (Some(target), Some(value)) = (args.get("output"), value) else {
            return Ok(());
        };
        let Some(name) = target.as_str() else {
            // A non-string output raises an error event in Prisme.ai; the run continues.
            return Ok(());
        };
        self.write(name, SetMode::Replace, Some(value))
    }

    /// Rate limits and user topics; `what` names the refused feature (`rate limits are`).
    pub(crate) fn coordination(&mut self, what: &str) -> Result<&mut dyn Coordination, DslError> {
        self.out.coordination().ok_or_else(|| unavailable(what))
    }

    /// Config writes, or the refusal.
    pub(crate) fn config_writer(&mut self) -> Result<&mut dyn ConfigWriter, DslError> {
        self.out
            .config()
            .ok_or_else(|| unavailable("config writes are"))
    }

    /// Identity switches, or the refusal.
    pub(crate) fn identity(&mut self) -> Result<&mut dyn IdentitySwitch, DslError> {
        self.out
            .identity()
            .ok_or_else(|| unavailable("identity switching is"))
    }

    /// Sets the local `name` (`item`, `$index`, `$error`).
    pub(crate) fn set_local(&mut self, name: &str, value: Value) {
        if let Value::Object(m) = &mut self.locals {
            m.insert(name.to_owned(), value);
        }
    }
}

impl Env for Runner<'_> {
    fn lookup(&mut self, segs: &[Seg]) -> Result<Val, DslError> {
        let Some(first) = segs.first() else {
            return Ok(Val::Undefined);
        };
        let first = first.as_key();
        if first == "config" {
            return Ok(path::lookup_value(Some(&self.input.config), &segs[1..]));
        }
        if first == "$workspace" {
            // Read-only (§5.1): a `set` of it writes a local that reads never see.
            return Ok(path::lookup_value(
                self.input.workspace.as_ref(),
                &segs[1..],
            ));
        }
        let Some(scope) = Scope::parse(&first) else {
            let local = self.locals.get(&*first);
            // `secret` means the workspace's secrets unless a local of that name exists
            // (§5.1); read one by one, never as a whole scope.
            if first == "secret"
                && local.is_none()
                && let Some(name) = segs.get(1)
            {
                let value = self.out.secret(&name.as_key())?;
                return Ok(path::lookup_value(value.as_ref(), &segs[2..]));
            }
            return Ok(path::lookup_value(local, &segs[1..]));
        };
        let Some(name) = segs.get(1) else {
            return Ok(Val::Json(self.whole_scope(scope)));
        };
        let v = self.variable(scope, &name.as_key())?;
        Ok(path::lookup_value(v.as_ref(), &segs[2..]))
    }

    fn random(&mut self) -> f64 {
        self.out.random()
    }
}
