//! A webhook's request as its run sees it (`spec/http-api.md` §6.1, `automation-dsl.md` §2.7):
//! the query as an object (repeated keys → arrays) and the body decoded by its content type —
//! JSON parsed, a urlencoded form as an object, `text/*` as a string, multipart fields as
//! strings and files as `{originalname, mimetype, size, encoding, base64}`, anything else as
//! `{base64, mimetype}`. Decoded once, natively: the same value is the DSL run's `body`, what
//! `validateArguments` checks and what `runtime.automations.executed` reports.

use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use refract_dsl::value::pairs_object;
use refract_http::ApiError;
use serde_json::{Value, json};

/// Most parts of a multipart body.
pub(crate) const MAX_PARTS: usize = 50;

/// The body by its content type; `{}` when empty. Only a malformed multipart body is refused.
pub(crate) async fn body(headers: &HeaderMap, bytes: bytes::Bytes) -> Result<Value, ApiError> {
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = || String::from_utf8_lossy(&bytes).into_owned();
    Ok(match mime.as_str() {
        m if m == "application/json" || m.ends_with("+json") => {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(text()))
        }
        "application/x-www-form-urlencoded" => {
            let pairs =
                url::form_urlencoded::parse(&bytes).map(|(k, v)| (k.into_owned(), json!(v)));
            Value::Object(pairs_object(pairs))
        }
        "multipart/form-data" => multipart(headers, bytes).await?,
        m if m.starts_with("text/") => json!(text()),
        "" => json!(text()),
        _ => json!({"base64": STANDARD.encode(&bytes), "mimetype": mime}),
    })
}

async fn multipart(headers: &HeaderMap, bytes: bytes::Bytes) -> Result<Value, ApiError> {
    let bad = |e: &dyn std::fmt::Display| {
        ApiError::validation("body", format!("malformed multipart body: {e}"))
    };
    let mut request = axum::extract::Request::new(axum::body::Body::from(bytes));
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, ct.clone());
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| bad(&e))?;
    let mut fields = Vec::new();
    while let Some(field) = form.next_field().await.map_err(|e| bad(&e))? {
        if fields.len() == MAX_PARTS {
            return Err(ApiError::validation(
                "body",
                format!("at most {MAX_PARTS} multipart parts"),
            ));
        }
        let name = field.name().unwrap_or_default().to_owned();
        let file = field.file_name().map(str::to_owned);
        let mimetype = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let data = field.bytes().await.map_err(|e| bad(&e))?;
        let value = match file {
            Some(originalname) => json!({
                "originalname": originalname, "mimetype": mimetype, "size": data.len(),
                "encoding": "7bit", "base64": STANDARD.encode(&data),
            }),
            None => json!(String::from_utf8_lossy(&data)),
        };
        fields.push((name, value));
    }
    Ok(Value::Object(pairs_object(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn typed(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    async fn decode(ct: &str, body: &'static [u8]) -> Value {
        body_of(ct, body).await.unwrap()
    }

    async fn body_of(ct: &str, body: &'static [u8]) -> Result<Value, ApiError> {
        super::body(&typed(ct), bytes::Bytes::from_static(body)).await
    }

    #[tokio::test]
    async fn bodies_are_decoded_by_content_type() {
        assert_eq!(
            decode("application/json; charset=utf-8", br#"{"a":[1]}"#).await,
            json!({"a": [1]})
        );
        assert_eq!(
            decode("application/json", b"{oops").await,
            json!("{oops"),
            "unparsable JSON stays text"
        );
        assert_eq!(
            decode(
                "application/x-www-form-urlencoded",
                b"text=hi+there&tag=a&tag=b&e=%C3%A9"
            )
            .await,
            json!({"text": "hi there", "tag": ["a", "b"], "e": "é"})
        );
        assert_eq!(decode("text/csv", b"a,b").await, json!("a,b"));
        assert_eq!(
            decode("image/png", b"\x89PNG").await,
            json!({"base64": "iVBORw==", "mimetype": "image/png"})
        );
        assert_eq!(decode("application/json", b"").await, json!({}));
    }

    #[tokio::test]
    async fn multipart_fields_are_strings_and_files_are_described() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
--XX\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nabc\r\n\
--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nagain\r\n--XX--\r\n";
        let value = decode("multipart/form-data; boundary=XX", body).await;
        assert_eq!(value["note"], json!(["hello", "again"]));
        assert_eq!(
            value["doc"],
            json!({"originalname": "a.txt", "mimetype": "text/plain", "size": 3, "encoding": "7bit", "base64": "YWJj"})
        );
        let err = body_of("multipart/form-data; boundary=XX", b"--XX\r\nnot a part")
            .await
            .unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST);
    }
}
