//! The workspace's secrets (world 0.1.3): API keys and passwords its owners stored through the
//! API (`PATCH /v2/workspaces/{id}/security/secrets`), encrypted at rest.
//!
//! Every value a run can read here is replaced by `"REDACTED"` wherever the platform records
//! the run: the events it emits, its `runtime.automations.executed` report, its errors and its
//! log lines. It still travels where the run sends it on purpose (a `fetch` header, a webhook
//! answer). A run reads the secrets as they were when it started.
//!
//! ```no_run
//! let key = refract_sdk::secrets::get("apiKey").unwrap_or_default();
//! let request = refract_sdk::Request::get("https://api.example.com/v1/items")
//!     .header("authorization", format!("Bearer {key}"));
//! ```

use crate::__bindings::refract::automation::secrets as host;

/// The secret `name` as text: a string secret as it is, any other value as its JSON text;
/// `None` when the workspace has no such secret.
pub fn get(name: &str) -> Option<String> {
    let json = host::get(name)?;
    match serde_json::from_str::<serde_json::Value>(&json) {
        Ok(serde_json::Value::String(s)) => Some(s),
        _ => Some(json),
    }
}

/// The secret `name` as a JSON value (structured secrets: `{"user": …, "password": …}`);
/// `None` when the workspace has no such secret.
pub fn get_json(name: &str) -> Option<serde_json::Value> {
    host::get(name).and_then(|json| serde_json::from_str(&json).ok())
}
