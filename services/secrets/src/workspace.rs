//! [`WorkspaceSecrets`]: one workspace's opened secrets, as a run reads and redacts them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{Keyring, KeyringError, Redactor, Sealed};

/// What a secret's sealed value is bound to: its workspace and name, so a sealed value copied
/// to another secret or workspace in the store does not open.
fn aad(workspace: &str, name: &str) -> Vec<u8> {
    format!("refract-secret\0{workspace}\0{name}").into_bytes()
}

/// Seals the value of secret `name` of `workspace` under the keyring's sealing key.
pub fn seal_secret(
    keyring: &Keyring,
    workspace: &str,
    name: &str,
    value: &Value,
) -> Result<Sealed, KeyringError> {
    let plain = serde_json::to_vec(value).map_err(|_| KeyringError::Corrupt)?;
    keyring.seal(&aad(workspace, name), &plain)
}

/// Opens the value of secret `name` of `workspace`.
pub fn open_secret(
    keyring: &Keyring,
    workspace: &str,
    name: &str,
    sealed: &Sealed,
) -> Result<Value, KeyringError> {
    let plain = keyring.open(&aad(workspace, name), sealed)?;
    serde_json::from_slice(&plain).map_err(|_| KeyringError::Corrupt)
}

/// The values of a workspace's secrets by name, and the redactor of every string in them
/// (`automation-dsl.md` §6.6). A run holds one snapshot from start to end, so a value it read
/// stays redacted even if the secret changes meanwhile.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceSecrets {
    values: BTreeMap<String, Value>,
    redactor: Redactor,
}

impl WorkspaceSecrets {
    /// The snapshot of `values` (name → JSON value).
    pub fn new(values: BTreeMap<String, Value>) -> Self {
        let mut strings = Vec::new();
        for v in values.values() {
            collect_strings(v, &mut strings);
        }
        Self {
            redactor: Redactor::new(strings),
            values,
        }
    }

    /// The value of secret `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// Every secret, name → value (the DSL's `secret` scope).
    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }

    /// What replaces these values wherever the platform records a run.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

/// Every string inside `v`; a structured secret is redacted member by member.
fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect_strings(i, out)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_as_itself() {
        let ring = Keyring::ephemeral();
        let sealed = seal_secret(&ring, "ws1", "apiKey", &json!({"k": "v"})).unwrap();
        assert_eq!(
            open_secret(&ring, "ws1", "apiKey", &sealed).unwrap(),
            json!({"k": "v"})
        );
        assert!(open_secret(&ring, "ws1", "other", &sealed).is_err());
        assert!(open_secret(&ring, "ws2", "apiKey", &sealed).is_err());
    }

    #[test]
    fn structured_secrets_are_redacted_member_by_member() {
        let s = WorkspaceSecrets::new(BTreeMap::from([
            ("apiKey".to_owned(), json!("k-123")),
            ("db".to_owned(), json!({"user": "admin-x", "port": 5432})),
        ]));
        assert_eq!(s.get("apiKey"), Some(&json!("k-123")));
        let mut v = json!({"line": "k-123 as admin-x on 5432"});
        s.redactor().redact_value(&mut v);
        assert_eq!(v, json!({"line": "REDACTED as REDACTED on 5432"}));
    }
}
