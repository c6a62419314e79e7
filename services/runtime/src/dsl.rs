//! DSL automations: the embedded interpreter component and the compiled programs.
//!
//! The interpreter (`services/dsl-interpreter`, built by this crate's build script) is one
//! component for every DSL automation: compiled by wasmtime once per process (its artifact is
//! stored like an uploaded component's, so a restart only deserializes it). A DSL automation's
//! `do`/`output` are compiled into a [`Program`](refract_dsl::Program) on its first run in
//! this instance and kept in a byte-bounded LRU ([`Programs`]), so an instance holding many
//! tenants' automations keeps compiled only those that run; each run hands the program
//! to the interpreter in the invocation's config, in its compact form
//! ([`Program::encode`](refract_dsl::Program::encode)), never parsing YAML or templates on the
//! event path.

use std::sync::{Arc, Mutex, PoisonError};

use lru::LruCache;

use refract_core::model::Automation;
use refract_dsl::Setup;
use refract_host::{ComponentDigest, Host, HostError, RunContext};
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::run::TriggerInfo;

/// The interpreter component, built for wasm32-wasip2 by `build.rs`.
pub static INTERPRETER: &[u8] = include_bytes!(env!("REFRACT_DSL_INTERPRETER_WASM"));

/// A compiled program: its compact form, and whether it reads `$workspace` (only then is the
/// workspace's document handed to its runs).
#[derive(Debug, Clone)]
pub struct Ready {
    pub encoded: Arc<str>,
    pub reads_workspace: bool,
}

/// A compiled program, or why the stored automation does not compile.
pub type Compiled = Result<Ready, refract_dsl::Invalid>;

/// Compiles a DSL automation's `do` and `output`.
pub fn compile(automation: &Automation) -> Compiled {
    let instructions = automation.instructions.as_ref().unwrap_or(&Value::Null);
    let output = automation.output.as_ref();
    let program = refract_dsl::compile(instructions, output)?;
    Ok(Ready {
        encoded: program.encode().into(),
        reads_workspace: refract_dsl::reads_workspace(instructions, output),
    })
}

/// Bytes of compiled programs (their compact form) one instance keeps: the most used ones stay
/// compiled; the others are compiled again on their next run. 10,000 typical automations fit.
pub const PROGRAM_CACHE_BYTES: usize = 64 << 20;

/// What a program that does not compile counts for in the cache.
const INVALID_BYTES: usize = 256;

/// Compiled programs by workspace and slug, compiled on an automation's first run and kept
/// while they fit in [`PROGRAM_CACHE_BYTES`] (least recently run out first). Each entry
/// remembers the automation it was compiled from: a run of a newer version (an update that
/// raced the compile) compiles again instead of reusing it.
#[derive(Debug)]
pub struct Programs {
    cache: Mutex<Cache>,
}

#[derive(Debug)]
struct Cache {
    lru: LruCache<(String, String), Entry>,
    bytes: usize,
    max_bytes: usize,
}

#[derive(Debug)]
struct Entry {
    source: Arc<Automation>,
    compiled: Arc<Compiled>,
    bytes: usize,
}

impl Default for Programs {
    fn default() -> Self {
        Self::with_capacity(PROGRAM_CACHE_BYTES)
    }
}

impl Programs {
    /// A cache of at most `max_bytes` of compiled programs.
    pub fn with_capacity(max_bytes: usize) -> Self {
        Self {
            cache: Mutex::new(Cache {
                lru: LruCache::unbounded(),
                bytes: 0,
                max_bytes,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the program of `slug` (the automation changed or is gone).
    pub fn remove(&self, workspace: &str, slug: &str) {
        let mut cache = self.lock();
        if let Some(e) = cache.lru.pop(&(workspace.to_owned(), slug.to_owned())) {
            cache.bytes -= e.bytes;
        }
    }

    /// Forgets every program of `workspace`.
    pub fn remove_workspace(&self, workspace: &str) {
        let mut cache = self.lock();
        let keys: Vec<_> = cache
            .lru
            .iter()
            .filter(|((w, _), _)| w == workspace)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(e) = cache.lru.pop(&k) {
                cache.bytes -= e.bytes;
            }
        }
    }

    /// Bytes of the programs kept.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The program of `automation` (its `do` and `output` compiled): kept from an earlier run
    /// of this same version, else compiled now and kept.
    pub fn get(&self, workspace: &str, automation: &Arc<Automation>) -> Arc<Compiled> {
        let key = (workspace.to_owned(), automation.slug.clone());
        if let Some(e) = self.lock().lru.get(&key)
            && Arc::ptr_eq(&e.source, automation)
        {
            return e.compiled.clone();
        }
        let compiled = Arc::new(compile(automation));
        let bytes = match compiled.as_ref() {
            Ok(program) => program.encoded.len(),
            Err(e) => {
                tracing::warn!(%workspace, automation = %automation.slug, error = %e, "stored DSL automation does not compile");
                INVALID_BYTES
            }
        };
        let mut cache = self.lock();
        if bytes <= cache.max_bytes {
            let entry = Entry {
                source: automation.clone(),
                compiled: compiled.clone(),
                bytes,
            };
            if let Some(old) = cache.lru.put(key, entry) {
                cache.bytes -= old.bytes;
            }
            cache.bytes += bytes;
            while cache.bytes > cache.max_bytes {
                let Some((_, e)) = cache.lru.pop_lru() else {
                    break;
                };
                cache.bytes -= e.bytes;
            }
        }
        compiled
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
/// `run.trigger` exposes it, a webhook run's initial locals, `automation-dsl.md` §2.7, and the
/// `$workspace` document when the program reads it).
pub fn invocation_config(
    program: &str,
    config: &Value,
    run: &RunContext,
    info: &TriggerInfo,
    locals: Option<&Value>,
    workspace: Option<&Value>,
) -> String {
    Setup {
        program: program.to_owned(),
        config: config.clone(),
        depth: run.depth,
        socket_id: run.socket_id.clone(),
        trigger: info.to_setup(),
        locals: locals.and_then(Value::as_object).cloned(),
        workspace: workspace.cloned(),
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
    fn programs_are_compiled_once_per_version_and_bad_documents_are_reported() {
        let programs = Programs::default();
        let good = Arc::new(automation(
            json!({"do": [{"set": {"name": "a", "value": 1}}], "output": "{{a}}"}),
        ));
        let p = programs.get("ws", &good);
        let ready = p.as_ref().as_ref().expect("compiles");
        assert!(!ready.reads_workspace);
        let back = refract_dsl::Program::decode(&ready.encoded).expect("compact program");
        assert_eq!(back.instructions.len(), 1);
        assert!(Arc::ptr_eq(&p, &programs.get("ws", &good)), "kept");
        // A new version of the same slug is compiled from its own document.
        let newer = Arc::new(automation(json!({"do": [
            {"set": {"name": "a", "value": 1}}, {"set": {"name": "b", "value": 2}}]})));
        let p2 = programs.get("ws", &newer);
        let back = refract_dsl::Program::decode(&p2.as_ref().as_ref().expect("compiles").encoded)
            .expect("compact program");
        assert_eq!(back.instructions.len(), 2);
        let bad = Arc::new(automation(json!({"slug": "b", "do": [{"set": {}}]})));
        assert_eq!(
            programs.get("ws", &bad).as_ref().as_ref().unwrap_err().path,
            "do[0].set"
        );
        programs.remove_workspace("ws");
        assert_eq!(programs.bytes(), 0);
    }

    #[test]
    fn the_least_recently_run_programs_leave_a_full_cache() {
        let one = |slug: &str| {
            Arc::new(automation(
                json!({"slug": slug, "do": [{"set": {"name": "a", "value": 1}}]}),
            ))
        };
        let (a, b, c) = (one("a"), one("b"), one("c"));
        let size = compile(&a).expect("compiles").encoded.len();
        let programs = Programs::with_capacity(2 * size);
        let pa = programs.get("ws", &a);
        programs.get("ws", &b);
        assert!(Arc::ptr_eq(&pa, &programs.get("ws", &a)), "a is kept");
        programs.get("ws", &c);
        assert_eq!(programs.bytes(), 2 * size);
        // b was the least recently run: it left; a is still kept.
        assert!(Arc::ptr_eq(&pa, &programs.get("ws", &a)));
        let lock = programs.lock();
        assert!(!lock.lru.contains(&("ws".to_owned(), "b".to_owned())));
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
            None,
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
        assert!(
            cfg.get("workspace").is_none(),
            "no document for a program that does not read $workspace"
        );
    }
}
