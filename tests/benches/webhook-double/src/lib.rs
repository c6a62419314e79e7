//! webhook-double: answers a webhook's JSON body `{"n": N}` with `{"result": 2N}`. The Rust
//! component of the peer benchmark (`tests/benches/peers.sh`), where the same contract is
//! answered by a bare axum handler, Node-RED and a YAML automation. Not one of the SDK's
//! examples: the end-to-end tests build all of those, and this one is the benchmark's alone.

use refract_sdk::{Error, Invocation, Output, Trigger};
use serde::Deserialize;
use serde_json::json;

/// The request body the benchmark sends.
#[derive(Deserialize)]
struct Body {
    n: i64,
}

#[refract_sdk::automation]
fn handler(inv: Invocation) -> Result<Output, Error> {
    let Trigger::Http(req) = &inv.trigger else {
        return Err(Error::new(
            "NotAWebhook",
            "webhook-double only answers webhook requests",
        ));
    };
    // A body that is not `{"n": <integer>}` fails the run with `InvalidJson`.
    let body: Body = req.json()?;
    Ok(Output::json(&json!({ "result": body.n.wrapping_mul(2) })))
}
