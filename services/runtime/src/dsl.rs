//! DSL automations: the embedded interpreter component and the compiled programs.
//!
//! The interpreter (`services/dsl-interpreter`, built by this crate's build script) is one
//! component for every DSL automation: compiled by wasmtime once per process (its artifact is
//! stored like an uploaded component's, so a restart only deserializes it). A DSL automation's
//! `do`/`output` are compiled into a [`Program`](refract_dsl::Program) when the index learns of
//! the automation (the workspaces service has validated it on save); each run hands the program
//! to the interpreter in the invocation's config, in its compact form
//! ([`Program::encode`](refract_dsl::Program::encode)), never parsing YAML or templates on the
//! event path.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use refract_core::model::Automation;
use refract_dsl::Setup;
use refract_host::{ComponentDigest, Host, HostError, RunContext};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::run::TriggerInfo;

/// The interpreter component, built for wasm32-wasip2 by `build.rs`.
pub static INTERPRETER: &[u8] = include_bytes!(env!("REFRACT_DSL_INTERPRETER_WASM"));

/// A compiled program in its compact form, or why the stored automation does not compile.
pub type Compiled = Result<Arc<str>, refract_dsl::Invalid>;

/// Compiles a DSL automation's `do` and `output`.
pub fn compile(automation: &Automation) -> Compiled {
    let program = refract_dsl::compile(
        automation.instructions.as_ref().unwrap_or(&Value::Null),
        automation.output.as_ref(),
    )?;
    Ok(program.encode().into())
}

/// Compiled programs by workspace and slug, kept beside the trigger index.
#[derive(Debug, Default)]
pub struct Programs {
    map: RwLock<HashMap<(String, String), Arc<Compiled>>>,
}

impl Programs {
    /// Compiles and keeps `automation`'s program (DSL automations only).
    pub fn insert(&self, workspace: &str, automation: &Automation) {
        let compiled = Arc::new(compile(automation));
        if let Err(e) = compiled.as_ref() {
            tracing::warn!(%workspace, automation = %automation.slug, error = %e, "stored DSL automation does not compile");
        }
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((workspace.to_owned(), automation.slug.clone()), compiled);
    }

    pub fn remove(&self, workspace: &str, slug: &str) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(workspace.to_owned(), slug.to_owned()));
    }

    pub fn remove_workspace(&self, workspace: &str) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(w, _), _| w != workspace);
    }

    /// The program of `automation`: the one compiled when the index learnt of it, else (an
    /// automation read from the collection before the index caught up) compiled now.
    pub fn get(&self, workspace: &str, automation: &Automation) -> Arc<Compiled> {
        let key = (workspace.to_owned(), automation.slug.clone());
        if let Some(p) = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return p.clone();
        }
        Arc::new(compile(automation))
    }
}

/// The interpreter's digest once it is compiled (or its artifact loaded) in this process.
#[derive(Debug, Default)]
pub struct Interpreter {
    digest: OnceCell<ComponentDigest>,
}

impl Interpreter {
    /// The ready interpreter: its stored artifact if this engine has one, else compiled now
    /// (once per process; concurrent first runs wait for the same compile).
    pub async fn digest(&self, host: &Host) -> Result<ComponentDigest, HostError> {
        self.digest
            .get_or_try_init(|| async {
                let digest = ComponentDigest::of(INTERPRETER);
                match host.warm(&digest).await {
                    Ok(()) => Ok(digest),
                    Err(HostError::NotCompiled { .. }) => host.upload(INTERPRETER).await,
                    Err(e) => Err(e),
                }
            })
            .await
            .cloned()
    }
}

/// The invocation config of a DSL run: the interpreter's [`Setup`] (the program, the run's
/// `config` scope, its call depth and the WebSocket of its triggering event, the trigger as
/// `run.trigger` exposes it, and a webhook run's initial locals, `automation-dsl.md` §2.7).
pub fn invocation_config(
    program: &str,
    config: &Value,
    run: &RunContext,
    info: &TriggerInfo,
    locals: Option<&Value>,
) -> String {
    Setup {
        program: program.to_owned(),
        config: config.clone(),
        depth: run.depth,
        socket_id: run.socket_id.clone(),
        trigger: info.to_setup(),
        locals: locals.and_then(Value::as_object).cloned(),
    }
    .to_config()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn automation(body: Value) -> Automation {
        let mut v = json!({"slug": "a", "name": "a", "kind": "dsl",
            "createdAt": "2026-11-27T10:00:00.000Z", "createdBy": "u",
            "updatedAt": "2026-11-27T10:00:00.000Z", "updatedBy": "u"});
        if let (Some(m), Value::Object(extra)) = (v.as_object_mut(), body) {
            m.extend(extra);
        }
        serde_json::from_value(v).expect("automation")
    }

    #[test]
    fn the_interpreter_is_embedded_and_is_a_component() {
        assert!(INTERPRETER.starts_with(b"\0asm"), "a wasm binary");
        assert_eq!(
            &INTERPRETER[4..8],
            &[0x0d, 0x00, 0x01, 0x00],
            "component layer"
        );
    }

    #[test]
    fn programs_are_compiled_once_and_bad_documents_are_reported() {
        let programs = Programs::default();
        let good =
            automation(json!({"do": [{"set": {"name": "a", "value": 1}}], "output": "{{a}}"}));
        programs.insert("ws", &good);
        let p = programs.get("ws", &good);
        let text = p.as_ref().as_ref().expect("compiles");
        let back = refract_dsl::Program::decode(text).expect("compact program");
        assert_eq!(back.instructions.len(), 1);
        let bad = automation(json!({"slug": "b", "do": [{"set": {}}]}));
        programs.insert("ws", &bad);
        assert_eq!(
            programs.get("ws", &bad).as_ref().as_ref().unwrap_err().path,
            "do[0].set"
        );
        programs.remove_workspace("ws");
        assert!(
            programs
                .map
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
        );
    }

    #[test]
    fn the_invocation_config_carries_program_depth_socket_and_trigger() {
        let info = TriggerInfo {
            kind: crate::run::TriggerKind::Event,
            value: "orders.created".into(),
            id: Some("1-0".into()),
        };
        let ws = refract_core::WorkspaceId::new("ws").expect("workspace id");
        let run = RunContext {
            socket_id: Some("s1".into()),
            ..crate::run::run_context(
                &ws,
                "a",
                refract_core::CorrelationId::generate(),
                None,
                None,
                3,
            )
        };
        let locals = json!({"body": {"order": 1}});
        let cfg: Value = serde_json::from_str(&invocation_config(
            "{\"instructions\":[]}",
            &json!({"k": 1}),
            &run,
            &info,
            Some(&locals),
        ))
        .expect("json");
        assert_eq!(cfg["depth"], json!(3));
        assert_eq!(cfg["socketId"], json!("s1"));
        assert_eq!(cfg["config"], json!({"k": 1}));
        assert_eq!(
            cfg["trigger"],
            json!({"type": "event", "value": "orders.created", "id": "1-0"})
        );
        assert_eq!(cfg["program"], json!("{\"instructions\":[]}"));
        assert_eq!(cfg["locals"], locals);
    }
}
