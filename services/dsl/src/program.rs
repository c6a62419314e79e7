//! The compiled form of an automation: the [`Program`] the workspaces service validates on save,
//! the runtime keeps per automation and the interpreter component decodes on every run, with
//! every template and expression already parsed. Plain types: nothing here runs them.

use serde::{Deserialize, Serialize};

use crate::error::DecodeError;
use crate::expr::Expr;
use crate::template::Tpl;

/// A compiled automation: what the interpreter component receives per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// `do`: the instructions, run in order.
    pub instructions: Vec<Instr>,
    /// `output`, evaluated after `do`; `None` returns `{}`.
    pub output: Option<Tpl>,
}

impl Program {
    /// The compact form the runtime hands the interpreter on every run: postcard bytes as
    /// base64 text (it travels in the invocation's JSON config). Decoding it costs a fraction
    /// of decoding the JSON form, which matters because every run decodes it in a fresh
    /// instance.
    pub fn encode(&self) -> String {
        use base64::Engine as _;
        // Serializing into a Vec fails only for types postcard cannot express; Program has none.
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads what [`Program::encode`] wrote.
    pub fn decode(text: &str) -> Result<Program, DecodeError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| DecodeError::NotBase64(e.to_string()))?;
        match postcard::take_from_bytes(&bytes) {
            Ok((program, [])) => Ok(program),
            Ok((_, rest)) => Err(DecodeError::TrailingBytes(rest.len())),
            Err(e) => Err(DecodeError::NotAProgram(e.to_string())),
        }
    }
}

/// Serde for the JSON constants inside a program: as themselves in human-readable formats
/// (JSON), as JSON text in binary ones (postcard cannot carry a self-describing value).
pub(crate) mod json_value {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    /// Writes `v` as itself (JSON) or as its JSON text (postcard).
    pub fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            v.serialize(s)
        } else {
            s.serialize_str(&v.to_string())
        }
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        if d.is_human_readable() {
            Value::deserialize(d)
        } else {
            let text = <&str>::deserialize(d)?;
            // Most constants are plain strings (names, event types, text): no parser needed.
            if let Some(plain) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
                && !plain.contains(['"', '\\'])
            {
                return Ok(Value::String(plain.to_owned()));
            }
            serde_json::from_str(text).map_err(D::Error::custom)
        }
    }
}

/// One instruction with its argument pre-parsed. Lazy parts (`conditions` bodies, `repeat.do`,
/// `try.do`/`catch`) are instruction lists; everything else is interpolated when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Instr {
    /// `set` (§3.2): its argument mapping (`name`, `value`, `type`).
    Set(Tpl),
    /// `delete` (§3.3): its argument mapping (`name`).
    Delete(Tpl),
    /// `emit` (§3.4): its argument mapping (`event`, `payload`, `target`, `options`, `output`).
    Emit(Tpl),
    /// `wait` (§3.5): its argument mapping (`oneOf`, `timeout`, `output`).
    Wait(Tpl),
    /// `fetch` (§3.6): its argument mapping (`url`, `method`, `headers`, `body`, …).
    Fetch(Tpl),
    /// `conditions` (§3.7): the branches in document order, and the `default` branch.
    Conditions {
        /// Each condition's expression and the instructions it guards.
        branches: Vec<(Expr, Vec<Instr>)>,
        /// Run when no condition holds.
        default: Vec<Instr>,
    },
    /// `repeat` (§3.8).
    Repeat {
        /// Every member but `do` (`on`, `until`).
        args: Tpl,
        /// `do`: run once per item.
        body: Vec<Instr>,
    },
    /// `all` (§3.10): instructions whose arguments are all interpolated before any runs.
    All(Vec<Instr>),
    /// `break` (§3.11): its argument (`scope`), any value.
    Break(Tpl),
    /// `comment` (§3.9), or an empty instruction: does nothing.
    Comment,
    /// `try` (§3.12).
    Try {
        /// `do`: the instructions whose error is caught.
        body: Vec<Instr>,
        /// `catch`: run with `$error` set when `do` failed.
        catch: Option<Vec<Instr>>,
    },
    /// A call of another automation (`slug` or `instance.slug`), `args` its argument object.
    Call {
        /// The callee's slug, as the instruction names it.
        slug: String,
        /// The argument mapping handed to the callee.
        args: Tpl,
    },
    /// `rateLimit` (§3.13).
    RateLimit(Tpl),
    /// `createUserTopic` (§3.14).
    CreateUserTopic(Tpl),
    /// `joinUserTopic` (§3.14).
    JoinUserTopic(Tpl),
    /// An instruction given a `null` argument: raises `InvalidInstructionError` when reached.
    Null(String),
    /// A known instruction this interpreter does not run yet: fails when reached.
    Unsupported(String),
}
