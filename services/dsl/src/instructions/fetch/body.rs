//! Request bodies of `fetch` (§3.6): JSON, urlencoded forms, multipart; query encoding.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::error::DslError;
use crate::interpreter::runner::invalid;
use crate::value::Val;

/// A truthy `fetch.body` (§3.6): objects and arrays as JSON, or as form pairs under an
/// urlencoded content type; other values as text. Without a content type, JSON is declared.
pub(super) fn json_or_form(
    body: Option<&Value>,
    headers: &mut Vec<(String, String)>,
) -> Option<Vec<u8>> {
    let body = body.cloned().map(Val::from_json).filter(Val::truthy)?;
    let content_type = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_ascii_lowercase());
    let Some(content_type) = content_type else {
        headers.push(("content-type".into(), "application/json".into()));
        return Some(json_text(body));
    };
    Some(match body {
        Val::Json(Value::Object(fields))
            if content_type.contains("application/x-www-form-urlencoded") =>
        {
            fields
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        encode(&k),
                        encode(&Val::from_json(v).to_js_string())
                    )
                })
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        }
        other => json_text(other),
    })
}

fn json_text(v: Val) -> Vec<u8> {
    match v {
        Val::Json(v @ (Value::Object(_) | Value::Array(_))) => {
            serde_json::to_vec(&v).unwrap_or_default()
        }
        other => other.to_js_string().into_bytes(),
    }
}

/// A `multipart/form-data` body from `fetch.multipart` parts `{fieldname, value, filename?,
/// contentType?}` (§3.6): a base64-looking string is decoded (as Prisme.ai does, even `test`),
/// an array of numbers is bytes, anything else is its text.
pub(super) fn multipart(parts: &[Value], boundary: &str) -> Result<Vec<u8>, DslError> {
    static BASE64: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^([0-9a-zA-Z+/]{4})*(([0-9a-zA-Z+/]{2}==)|([0-9a-zA-Z+/]{3}=))?$")
            .expect("a valid pattern")
    });
    // Quotes and line breaks cannot appear inside a header's quoted string.
    let quoted = |s: &str| {
        s.replace('"', "%22")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let field = |k: &str| {
            part.get(k)
                .map(|v| Val::from_json(v.clone()).to_js_string())
        };
        let Some(name) = part
            .get("fieldname")
            .filter(|v| !v.is_null())
            .and(field("fieldname"))
        else {
            return Err(invalid(format!("fetch.multipart[{i}] needs a fieldname")));
        };
        let bytes = match part.get("value") {
            Some(Value::String(s))
                if s != "true"
                    && s != "false"
                    && BASE64.is_match(&s[..s.floor_char_boundary(1024)]) =>
            {
                STANDARD
                    .decode(s)
                    .unwrap_or_else(|_| s.clone().into_bytes())
            }
            Some(Value::Array(items)) if items.iter().all(Value::is_u64) => items
                .iter()
                .map(|n| n.as_u64().map_or(0, |n| (n & 0xff) as u8))
                .collect(),
            Some(v) => Val::from_json(v.clone()).to_js_string().into_bytes(),
            None => Vec::new(),
        };
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
                quoted(&name)
            )
            .as_bytes(),
        );
        if let Some(filename) = field("filename") {
            out.extend_from_slice(format!("; filename=\"{}\"", quoted(&filename)).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if let Some(content_type) = field("contentType") {
            out.extend_from_slice(
                format!("Content-Type: {}\r\n", quoted(&content_type)).as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(out)
}

/// Percent-encoding of a query component.
pub(super) fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::interpreter::twin::*;

    #[test]
    fn fetch_sends_form_and_multipart_bodies() {
        let mut w = World::default();
        go_with(
            &mut w,
            json!([
                {"fetch": {"url": "https://api.example/form", "method": "post",
                    "headers": {"content-type": "application/x-www-form-urlencoded"}, "body": {"q": "a b&c", "n": 2}}},
                {"fetch": {"url": "https://api.example/upload", "method": "post", "headers": {"Content-Type": "application/json"},
                    "body": {"ignored": true},
                    "multipart": [
                        {"fieldname": "doc", "value": "aGVsbG8=", "filename": "a\"b.txt", "contentType": "text/plain"},
                        {"fieldname": "note", "value": "hi there"},
                        {"fieldname": "raw", "value": [104, 105]}
                    ]}},
                {"fetch": {"url": "https://api.example/get", "body": {"dropped": true}}}
            ]),
            json!({}),
            json!({}),
        )
        .unwrap();
        let [form, upload, get] = &w.fetched[..] else {
            panic!("three requests: {:?}", w.fetched)
        };
        assert_eq!(form.body.as_deref(), Some(&b"q=a%20b%26c&n=2"[..]));

        let content_types: Vec<&str> = upload
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
            .collect();
        let [content_type] = content_types[..] else {
            panic!("one content type: {content_types:?}")
        };
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .expect("a multipart content type");
        let body = String::from_utf8(upload.body.clone().expect("a body")).unwrap();
        let expected = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a%22b.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
    --{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi there\r\n\
    --{boundary}\r\nContent-Disposition: form-data; name=\"raw\"\r\n\r\nhi\r\n--{boundary}--\r\n"
        );
        assert_eq!(body, expected);
        assert_eq!(get.body, None, "GET sends no body");
        assert!(
            get.headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "application/json"),
            "but declares JSON"
        );

        let e = go_with(&mut World::default(), json!([{"fetch": {"url": "https://x.example", "method": "post", "multipart": [{"value": "v"}]}}]), json!({}), json!({}))
            .unwrap_err();
        assert_eq!(e.class, "InvalidInstructionError");
    }
}
