//! fetch-then-wait: fetches `config.url`, emits a `fetch-then-wait.requested` event with the
//! result, then waits (`config.timeoutMs`, default 5 s) for a `config.replyType` event
//! (default `fetch-then-wait.replied`) with the run's correlation id. Returns both.

use std::time::Duration;

use refract_sdk::http::Request;
use refract_sdk::{Condition, Error, Invocation, Output};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    url: String,
    #[serde(default = "default_reply_type")]
    reply_type: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
}

fn default_reply_type() -> String {
    "fetch-then-wait.replied".to_owned()
}

fn default_timeout_ms() -> u64 {
    5_000
}

#[refract_sdk::automation]
fn handler(inv: Invocation) -> Result<Output, Error> {
    let config: Config = inv.config_as()?;
    let response = Request::get(&config.url).header("accept", "application/json").send()?;
    // A JSON body is returned as JSON, anything else as text (lossy for non-UTF-8 bytes).
    let body = response
        .json::<Value>()
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()));

    let request_id = refract_sdk::emit(
        "fetch-then-wait.requested",
        &json!({ "url": config.url, "status": response.status, "correlationId": inv.correlation_id }),
    )?;

    let reply = refract_sdk::wait(
        &[Condition::new(config.reply_type).correlation_id(&inv.correlation_id)],
        Duration::from_millis(config.timeout_ms),
    )?;
    if reply.is_none() {
        refract_sdk::warn!("no reply within {} ms", config.timeout_ms);
    }

    Ok(Output::json(&json!({
        "fetch": { "status": response.status, "body": body },
        "requestEventId": request_id,
        "reply": reply.map(|e| json!({ "id": e.id, "payload": e.payload })),
    })))
}
