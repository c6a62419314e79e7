//! authorized-fetch: calls `config.url` with the workspace secret named `config.secret`
//! (default `apiKey`) as a bearer token, and answers the API's status and body.
//!
//! The secret is stored through `PATCH /v2/workspaces/{id}/security/secrets`, read here with
//! [`refract_sdk::secrets::get`], and sent where this automation sends it; wherever the
//! platform records the run (its events, its report, its log lines) the value reads
//! `REDACTED`.

use refract_sdk::http::Request;
use refract_sdk::{Error, Invocation, Output};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct Config {
    url: String,
    #[serde(default = "default_secret")]
    secret: String,
}

fn default_secret() -> String {
    "apiKey".to_owned()
}

#[refract_sdk::automation]
fn handler(inv: Invocation) -> Result<Output, Error> {
    let config: Config = inv.config_as()?;
    let Some(key) = refract_sdk::secrets::get(&config.secret) else {
        return Err(Error::new(
            "MissingSecret",
            format!("the workspace has no secret {:?}", config.secret),
        ));
    };
    // Logged as the platform records it: the key reads REDACTED.
    refract_sdk::info!("calling {} with key {key}", config.url);
    let response = Request::get(&config.url)
        .header("authorization", format!("Bearer {key}"))
        .header("accept", "application/json")
        .send()?;
    let body = response
        .json::<Value>()
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()));
    Ok(Output::json(&json!({ "status": response.status, "body": body })))
}
