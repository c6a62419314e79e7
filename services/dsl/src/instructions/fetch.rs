//! `fetch` (§3.6): an HTTP request under the host's egress policy; `output` gets the body
//! decoded by its content type, a detailed response or a data URL. Request bodies are encoded
//! in `body`, streamed responses read in `stream`.

mod body;
mod stream;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use refract_core::platform::types;
use serde_json::{Map, Value, json};

use crate::error::{DslError, Invalid};
use crate::interpreter::concurrent::{self, Shared};
use crate::interpreter::runner::{Flow, Runner, invalid};
use crate::interpreter::{FetchRequest, FetchResponse};
use crate::program::Instr;
use crate::value::{Val, pairs_object};

use super::Arg;

pub(super) fn compile(arg: &Arg) -> Result<Instr, Invalid> {
    let m = arg.object()?;
    if m.get("url")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(Arg::invalid(&arg.member("url"), "fetch needs a url"));
    }
    Ok(Instr::Fetch(arg.tpl()?))
}

pub(super) async fn run(r: Shared<'_, '_>, a: &Map<String, Value>) -> Result<Flow, DslError> {
    let req = request(&mut r.borrow_mut(), a)?;
    let resp = concurrent::fetch(r, req).await?;
    let mut r = r.borrow_mut();
    let result = answer(&mut r, a, &resp)?;
    r.output_to(a, Some(result))?;
    Ok(Flow::Next)
}

/// The request `a` describes.
fn request(r: &mut Runner, a: &Map<String, Value>) -> Result<FetchRequest, DslError> {
    let url = a
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid("fetch needs a url"))?;
    let mut url = url.to_owned();
    if let Some(Value::Object(q)) = a.get("query") {
        let mut pairs = Vec::new();
        for (k, v) in q {
            let values = match v {
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            for v in values {
                pairs.push(format!(
                    "{}={}",
                    body::encode(k),
                    body::encode(&Val::from_json(v).to_js_string())
                ));
            }
        }
        if !pairs.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&pairs.join("&"));
        }
    }
    let method = a
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or("GET")
        .to_ascii_uppercase();
    let mut headers = platform_headers(r, a.get("headers").and_then(Value::as_object));
    let body = match a.get("multipart") {
        Some(Value::Array(parts)) => {
            let boundary = format!(
                "----refract{:016x}",
                (r.out.random() * 2f64.powi(53)) as u64
            );
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case("content-type"));
            headers.push((
                "content-type".into(),
                format!("multipart/form-data; boundary={boundary}"),
            ));
            Some(body::multipart(parts, &boundary)?)
        }
        None | Some(Value::Null) => body::json_or_form(a.get("body"), &mut headers),
        Some(_) => {
            return Err(invalid(
                "fetch.multipart must be a list of {fieldname, value}",
            ));
        }
    };
    let body = body.filter(|_| method != "GET");
    Ok(FetchRequest {
        method,
        url,
        headers,
        body,
    })
}

/// What `output` gets of `resp`; a `runtime.fetch.failed` event for an error status.
fn answer(r: &mut Runner, a: &Map<String, Value>, resp: &FetchResponse) -> Result<Value, DslError> {
    let content_type = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase())
        .unwrap_or_default();
    let headers = pairs_object(
        resp.headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone()))),
    );
    let stream = a.get("stream").and_then(Value::as_object);
    let stream_event = stream
        .and_then(|s| s.get("event"))
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty());
    if content_type.contains("text/event-stream") || stream_event.is_some() {
        return stream::streamed(r, resp, headers, &content_type, stream);
    }
    let body = if content_type.contains("application/json") {
        if resp.body.is_empty() {
            json!("")
        } else {
            serde_json::from_slice(&resp.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&resp.body).into_owned()))
        }
    } else if !content_type.contains("text/")
        && (content_type.contains("application/") || content_type.contains("image/"))
    {
        // Bytes serialize as base64 (§1.2).
        Value::String(STANDARD.encode(&resp.body))
    } else {
        Value::String(String::from_utf8_lossy(&resp.body).into_owned())
    };
    if resp.status >= 400
        && a.get("emitErrors")
            .is_none_or(|e| Val::from_json(e.clone()).truthy())
    {
        let failed = json!({"request": a, "response": {"status": resp.status, "body": body, "headers": headers}});
        r.out.emit(types::FETCH_FAILED, &failed, None, true)?;
    }
    Ok(match a.get("outputMode").and_then(Value::as_str) {
        Some("detailed_response") => {
            json!({"status": resp.status, "headers": headers, "body": body, "stream": false})
        }
        Some("data_url") => {
            let ct = if content_type.is_empty() {
                "application/octet-stream".to_owned()
            } else {
                content_type
            };
            Value::String(format!("data:{ct};base64,{}", STANDARD.encode(&resp.body)))
        }
        _ => body,
    })
}

/// The request's headers (§3.6): `x-correlation-id` (the run's, unless the caller's headers
/// set one), the caller's headers with their values as JS strings, and the workspace id in
/// `x-prismeai-workspace-id`, which the caller cannot change.
fn platform_headers(r: &Runner, own: Option<&Map<String, Value>>) -> Vec<(String, String)> {
    let text =
        |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut headers = Vec::new();
    let overrides_correlation =
        own.is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("x-correlation-id")));
    if !overrides_correlation && let Some(id) = text(&r.input.run, "correlationId") {
        headers.push(("x-correlation-id".to_owned(), id));
    }
    headers.extend(
        own.into_iter()
            .flatten()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("x-prismeai-workspace-id"))
            .map(|(k, v)| (k.clone(), Val::from_json(v.clone()).to_js_string())),
    );
    if let Some(ws) = text(&r.input.global, "workspaceId") {
        headers.push(("x-prismeai-workspace-id".to_owned(), ws));
    }
    headers
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn fetch_builds_the_request_and_parses_json() {
        let mut w = World::default();
        let r = go_with(
            &mut w,
            json!([{"fetch": {"url": "https://x.example/a?z=1", "method": "post", "query": {"q": "a b", "n": [1, 2]},
                "body": {"k": "{{v}}"}, "output": "res"}}]),
            json!("{{res.ok}}"),
            json!({"v": 3}),
        )
        .unwrap();
        assert_eq!(r.output, json!(true));
        let req = &w.fetched[0];
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://x.example/a?z=1&q=a%20b&n=1&n=2");
        assert_eq!(req.body.as_deref(), Some(br#"{"k":3}"#.as_slice()));
        assert!(
            req.headers
                .contains(&("content-type".into(), "application/json".into()))
        );
    }

    #[test]
    fn requests_carry_the_correlation_and_the_workspace() {
        let mut w = World::default();
        go_with(&mut w, json!([
            {"fetch": {"url": "https://x.example/a", "headers": {"x-prismeai-workspace-id": "other", "accept": "text/plain"}}},
            {"fetch": {"url": "https://x.example/b", "headers": {"X-Correlation-Id": "mine"}}}
        ]), json!({}), json!({}))
        .unwrap();
        let has = |i: usize, k: &str, v: &str| w.fetched[i].headers.contains(&(k.into(), v.into()));
        assert!(has(0, "x-correlation-id", "c1") && has(0, "accept", "text/plain"));
        assert!(
            has(0, "x-prismeai-workspace-id", "ws1") && !has(0, "x-prismeai-workspace-id", "other"),
            "the workspace header is the platform's: {:?}",
            w.fetched[0].headers
        );
        assert!(has(1, "X-Correlation-Id", "mine") && !has(1, "x-correlation-id", "c1"));
    }

    #[test]
    fn fetch_output_modes_and_failure_events() {
        let mut w = World {
            response: response(404, "application/json", "{\"error\":\"nope\"}"),
            ..World::default()
        };
        let r = go_with(&mut w, json!([{"fetch": {"url": "https://x.test/a", "outputMode": "detailed_response", "output": "res"}}]), json!("{{res}}"), json!({})).unwrap();
        assert_eq!(r.output["status"], json!(404));
        assert_eq!(
            r.output["headers"],
            json!({"content-type": "application/json"})
        );
        assert_eq!(w.emitted[0].0, "runtime.fetch.failed");
        assert_eq!(w.emitted[0].1["response"]["body"], json!({"error": "nope"}));
        let mut w = World {
            response: response(500, "text/plain", "x"),
            ..World::default()
        };
        go_with(
            &mut w,
            json!([{"fetch": {"url": "https://x.test/a", "emitErrors": false}}]),
            json!({}),
            json!({}),
        )
        .unwrap();
        assert!(w.emitted.is_empty(), "emitErrors: false");
        let mut w = World {
            response: response(200, "image/png", "\u{1}\u{2}\u{3}"),
            ..World::default()
        };
        let r = go_with(&mut w, json!([{"fetch": {"url": "https://x.test/i", "output": "b"}}, {"fetch": {"url": "https://x.test/i", "outputMode": "data_url", "output": "d"}}]), json!({"b": "{{b}}", "d": "{{d}}"}), json!({})).unwrap();
        assert_eq!(
            r.output,
            json!({"b": "AQID", "d": "data:image/png;base64,AQID"})
        );
    }
}
