//! The ceiling of the webhook benchmark (`tests/benches/peers.sh`): one axum route answering
//! `POST /` with `{"n": N}` by `{"result": 2N}`, on tokio's default multi-threaded runtime. No
//! sandbox, no history, no auth: what the machine does for the same HTTP contract when nothing
//! else is in the way.
//!
//!     refract-bench-ceiling 127.0.0.1:3930

use axum::{Json, Router, routing::post};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3930".to_owned());
    let app = Router::new().route("/", post(double));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}

/// `{"n": N}` -> `{"result": 2N}`: an integer stays an integer (`42`, not `42.0`, as the peers
/// answer); `null` when `n` is not a number.
async fn double(Json(body): Json<Value>) -> Json<Value> {
    let n = body.get("n");
    let result = match (n.and_then(Value::as_i64), n.and_then(Value::as_f64)) {
        (Some(i), _) => json!(i.wrapping_mul(2)),
        (None, Some(f)) => json!(f * 2.0),
        (None, None) => Value::Null,
    };
    Json(json!({ "result": result }))
}
