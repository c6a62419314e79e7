//! webhook-echo: answers a webhook request with its method, path, query and JSON body, with
//! status 201 for a `POST` (200 otherwise) and an `x-refract-echo` header.

use refract_sdk::{Error, Invocation, Output, Trigger};
use serde_json::{Value, json};

#[refract_sdk::automation]
fn handler(inv: Invocation) -> Result<Output, Error> {
    let Trigger::Http(req) = &inv.trigger else {
        return Err(Error::new("NotAWebhook", "webhook-echo only answers webhook requests"));
    };
    // An empty body echoes as null; a body that is not JSON fails the run with `InvalidJson`.
    let body: Value = if req.body.is_empty() { Value::Null } else { req.json()? };
    let query: Vec<Value> = req.query.iter().map(|(k, v)| json!([k, v])).collect();
    refract_sdk::debug!("echoing {} {}", req.method, req.path);
    let status = if req.method == "POST" { 201 } else { 200 };
    Ok(Output::json(&json!({
        "method": req.method,
        "path": req.path,
        "query": query,
        "body": body,
    }))
    .status(status)
    .header("x-refract-echo", inv.correlation_id.as_str()))
}
