//! Streamed `fetch` responses (§3.6), read whole by the host: SSE events, or lines, become
//! items that are emitted one by one or returned as a list `repeat` can iterate.

use serde_json::{Map, Value, json};

use crate::error::DslError;
use crate::interpreter::FetchResponse;
use crate::interpreter::runner::Runner;
use crate::path;
use crate::value::Val;

/// A streamed response (§3.6), read whole by the host: SSE events (or lines) become items
/// `{index, chunk, concatenated?, additionalPayload}`. With `stream.event` each item is
/// emitted and the result has no body; otherwise `body` is the list of items, which
/// `repeat` iterates like the live stream.
pub(super) fn streamed(
    r: &mut Runner,
    resp: &FetchResponse,
    headers: Map<String, Value>,
    content_type: &str,
    stream: Option<&Map<String, Value>>,
) -> Result<Value, DslError> {
    let text = String::from_utf8_lossy(&resp.body);
    let chunks = if content_type.contains("text/event-stream") {
        sse_chunks(&text)
    } else {
        line_chunks(&text)
    };
    let concat_path = stream
        .and_then(|s| s.get("concatenate"))
        .and_then(|c| c.get("path"))
        .and_then(Value::as_str)
        .and_then(|p| path::parse(p).ok());
    let extra = stream
        .and_then(|s| s.get("payload"))
        .cloned()
        .unwrap_or(Value::Null);
    let mut acc: Option<Value> = None;
    let mut items = Vec::with_capacity(chunks.len());
    for (index, chunk) in chunks.into_iter().enumerate() {
        let mut item = json!({"index": index, "chunk": chunk, "additionalPayload": extra});
        if let Some(segs) = &concat_path {
            for data in item["chunk"]["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                if let Some(v) = path::lookup(&Val::Json(data), segs).into_json() {
                    acc = Some(match (acc.take(), v) {
                        (None, v) => v,
                        (Some(Value::Array(mut a)), Value::Array(b)) => {
                            a.extend(b);
                            Value::Array(a)
                        }
                        (Some(Value::Array(mut a)), v) => {
                            a.push(v);
                            Value::Array(a)
                        }
                        (Some(prev), v) => Value::String(
                            Val::Json(prev).to_js_string() + &Val::Json(v).to_js_string(),
                        ),
                    });
                }
            }
            item["concatenated"] = json!({"value": acc.clone().unwrap_or(Value::Null)});
        }
        items.push(item);
    }
    let Some(event) = stream
        .and_then(|s| s.get("event"))
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
    else {
        return Ok(
            json!({"status": resp.status, "headers": headers, "body": items, "stream": true}),
        );
    };
    let target = stream
        .and_then(|s| s.get("target"))
        .filter(|t| t.is_object());
    let persist = stream
        .and_then(|s| s.get("options"))
        .and_then(|o| o.get("persist"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    // The host hands over the whole body at once, so a throttle interval keeps the first
    // and the last item only (the last is always emitted).
    let throttled = stream
        .and_then(|s| s.get("concatenate"))
        .and_then(|c| c.get("throttle"))
        .is_some_and(|t| Val::from_json(t.clone()).to_number() > 0.0);
    let last = items.len().saturating_sub(1);
    for (i, item) in items.iter().enumerate() {
        if throttled && i != 0 && i != last {
            continue;
        }
        r.out.emit(event, item, target, persist)?;
    }
    Ok(json!({"status": resp.status, "headers": headers, "stream": true}))
}

/// SSE events of a body, one chunk per blank-line-delimited event (D11).
fn sse_chunks(text: &str) -> Vec<Value> {
    let normalized = text.replace("\r\n", "\n");
    let mut out = Vec::new();
    for block in normalized.split("\n\n") {
        let mut chunk = Map::new();
        let mut data = Vec::new();
        let mut comments = Vec::new();
        for line in block.lines() {
            if let Some(c) = line.strip_prefix(':') {
                comments.push(c.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.trim();
            match field {
                "data" => data.push(parse_data(value)),
                "event" | "id" => {
                    chunk.insert(field.to_owned(), json!(value));
                }
                "retry" => {
                    chunk.insert(
                        "retry".into(),
                        value
                            .parse::<u64>()
                            .map_or_else(|_| json!(value), |n| json!(n)),
                    );
                }
                _ => {}
            }
        }
        if data.is_empty() && chunk.is_empty() && comments.is_empty() {
            continue;
        }
        if !comments.is_empty() {
            chunk.insert("comment".into(), json!(comments.join("\n")));
        }
        chunk.insert("data".into(), Value::Array(data));
        out.push(Value::Object(chunk));
    }
    out
}

/// A non-SSE streamed body: one chunk per non-empty line.
fn line_chunks(text: &str) -> Vec<Value> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| json!({"data": [parse_data(l)]}))
        .collect()
}

/// A `data:` value: JSON when it starts with `{` or `[` and parses, else the text.
fn parse_data(v: &str) -> Value {
    if (v.starts_with('{') || v.starts_with('['))
        && let Ok(j) = serde_json::from_str(v)
    {
        return j;
    }
    Value::String(v.to_owned())
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn fetch_streams_sse_into_events_or_a_repeatable_body() {
        let sse = "data: {\"t\":\"Hel\"}\n\nevent: part\nid: 2\ndata: {\"t\":\"lo\"}\n\n: keep-alive\n\ndata: [DONE]\n\n";
        let mut w = World {
            response: response(200, "text/event-stream", sse),
            ..World::default()
        };
        let r = go_with(
            &mut w,
            json!([{"fetch": {"url": "https://x.test/s", "stream": {"event": "chunk", "concatenate": {"path": "t"}, "payload": {"k": 1}}, "output": "res"}}]),
            json!("{{res}}"),
            json!({}),
        )
        .unwrap();
        assert_eq!(r.output["stream"], json!(true));
        assert_eq!(
            r.output.get("body"),
            None,
            "with stream.event the body is not returned"
        );
        assert_eq!(w.emitted.len(), 4);
        assert_eq!(w.emitted[1].0, "chunk");
        assert_eq!(
            w.emitted[1].1,
            json!({"index": 1, "chunk": {"event": "part", "id": "2", "data": [{"t": "lo"}]}, "additionalPayload": {"k": 1}, "concatenated": {"value": "Hello"}})
        );
        assert_eq!(
            w.emitted[2].1["chunk"],
            json!({"comment": "keep-alive", "data": []})
        );
        assert_eq!(w.emitted[3].1["chunk"]["data"], json!(["[DONE]"]));

        let mut w = World {
            response: response(200, "text/event-stream", sse),
            ..World::default()
        };
        let r = go_with(
            &mut w,
            json!([{"fetch": {"url": "https://x.test/s", "output": "res"}}, {"repeat": {"on": "{{res.body}}", "do": [{"set": {"name": "seen[]", "value": "{{item.index}}"}}]}}]),
            json!("{{seen}}"),
            json!({}),
        )
        .unwrap();
        assert_eq!(
            r.output,
            json!([0, 1, 2, 3]),
            "repeat iterates the streamed body"
        );
    }
}
