//! [`ArgumentSchemas`]: the `arguments` of automations with `validateArguments`, compiled
//! once, and the check of a run's input against them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use refract_core::model::Automation;
use refract_dsl::SchemaError;
use refract_dsl::arguments::Arguments;
use serde_json::{Map, Value, json};

/// Most distinct `arguments` schemas kept compiled; past it the cache starts over.
const MAX_ARGUMENT_SCHEMAS: usize = 1_024;

/// The compiled `arguments` of automations with `validateArguments`, by the schema's text, so
/// a run never recompiles a schema it has seen (and an edited one is simply a new entry).
#[derive(Debug, Default)]
pub(crate) struct ArgumentSchemas {
    compiled: Mutex<HashMap<String, Arc<Result<Arguments, SchemaError>>>>,
}

impl ArgumentSchemas {
    /// The failures of `input` against `automation`'s arguments, as `{instancePath, message}`;
    /// a schema that does not compile (saved before a stricter check) fails every input.
    pub(crate) fn check(&self, automation: &Automation, input: &Value) -> Vec<Value> {
        let empty = Map::new();
        let arguments = automation
            .arguments
            .as_ref()
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let key = serde_json::to_string(arguments).unwrap_or_default();
        let schema = {
            let mut map = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
            if map.len() >= MAX_ARGUMENT_SCHEMAS && !map.contains_key(&key) {
                map.clear();
            }
            map.entry(key)
                .or_insert_with(|| Arc::new(Arguments::compile(arguments)))
                .clone()
        };
        match schema.as_ref() {
            Ok(schema) => schema
                .check(input)
                .into_iter()
                .map(|f| json!({"instancePath": f.path, "message": f.message}))
                .collect(),
            Err(e) => vec![
                json!({"instancePath": "", "message": format!("the arguments schema is invalid: {e}")}),
            ],
        }
    }
}
