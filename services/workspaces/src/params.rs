//! Query strings, pagination and field checks shared by the handlers.

use std::collections::HashMap;

use axum::http::StatusCode;
use refract_http::ApiError;
use serde_json::{Value, json};

/// Default and largest page of a list (`spec/http-api.md` §1.3).
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// The query string's parameters, last value winning.
pub fn query(raw: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `page` (0-based) and `limit` (clamped), as an offset and a count.
pub fn page(q: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        match q.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| ApiError::validation(name, "must be a non-negative integer")),
        }
    };
    let limit = number("limit", DEFAULT_LIMIT)?.clamp(1, MAX_LIMIT);
    let page = number("page", 0)?;
    Ok((page.saturating_mul(limit), limit))
}

/// A comma-separated list parameter.
pub fn list(q: &HashMap<String, String>, name: &str) -> Option<Vec<String>> {
    q.get(name).map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// 400 `InvalidSlugError`.
pub fn invalid_slug(slug: &str, reason: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidSlugError",
        format!("invalid slug {slug:?}: {reason}"),
    )
    .with_details(json!({ "slug": slug }))
}

/// Localized text: a string, or an object of language → string.
pub fn localized(
    path: &str,
    value: &Value,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<(), ApiError> {
    match value {
        Value::String(s) => check(s).map_err(|m| ApiError::validation(path, m)),
        Value::Object(map) if !map.is_empty() => {
            for (lang, text) in map {
                let Value::String(text) = text else {
                    return Err(ApiError::validation(
                        &format!("{path}.{lang}"),
                        "must be a string",
                    ));
                };
                check(text).map_err(|m| ApiError::validation(&format!("{path}.{lang}"), m))?;
            }
            Ok(())
        }
        _ => Err(ApiError::validation(
            path,
            "must be a string or an object of language to text",
        )),
    }
}

/// The first text of a localized value (for slug generation).
pub fn first_text(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        Value::Object(map) => map.values().find_map(Value::as_str),
        _ => None,
    }
}

/// Workspace names: 2–60 characters of letters (any script), digits, space and `,.'-_()`.
pub fn check_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if !(2..=60).contains(&n) {
        return Err("must be 2 to 60 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || " ,.'-_()".contains(*c)))
    {
        return Err(format!(
            "{c:?} is not allowed; use letters, digits, space and ,.'-_()"
        ));
    }
    Ok(())
}

/// Any non-empty text up to `max` characters (automation names, descriptions).
pub fn check_text(max: usize) -> impl Fn(&str) -> Result<(), String> {
    move |s: &str| {
        let n = s.chars().count();
        if n == 0 || n > max {
            Err(format!("must be 1 to {max} characters"))
        } else {
            Ok(())
        }
    }
}

/// Most labels on one object, and their pattern `^[0-9A-Za-z._:-]{2,60}$`.
pub const MAX_LABELS: usize = 20;

pub fn labels(value: &Value) -> Result<Vec<String>, ApiError> {
    let Some(items) = value.as_array() else {
        return Err(ApiError::validation(
            "labels",
            "must be an array of strings",
        ));
    };
    if items.len() > MAX_LABELS {
        return Err(ApiError::validation(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = format!("labels.{i}");
            let s = v
                .as_str()
                .ok_or_else(|| ApiError::validation(&path, "must be a string"))?;
            let ok = (2..=60).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
            if !ok {
                return Err(ApiError::validation(
                    &path,
                    "must match ^[0-9A-Za-z._:-]{2,60}$",
                ));
            }
            Ok(s.to_string())
        })
        .collect()
}

/// 400 for a body member this route does not accept (request schemas are closed, §1.1).
pub fn unknown_field(name: &str) -> ApiError {
    ApiError::validation(name, "unknown field")
}

/// A string member, or 400.
pub fn string<'a>(name: &str, value: &'a Value) -> Result<&'a str, ApiError> {
    value
        .as_str()
        .ok_or_else(|| ApiError::validation(name, "must be a string"))
}

/// A few random bytes (v4 UUIDs come from the OS's random source).
pub fn random_bytes() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

/// A fresh opaque id (`^[A-Za-z0-9_-]{1,64}$`): 20 lowercase hex characters.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..20].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_clamped_and_bad_numbers_rejected() {
        let q = query(Some("page=2&limit=500"));
        assert_eq!(page(&q).ok(), Some((200, 100)));
        assert!(page(&query(Some("page=-1"))).is_err());
        assert_eq!(page(&query(None)).ok(), Some((0, 20)));
    }

    #[test]
    fn names_and_labels() {
        assert!(check_name("Équipe (ventes) 2").is_ok());
        assert!(check_name("a").is_err());
        assert!(check_name("bad<script>").is_err());
        assert!(labels(&json!(["ok-1", "x"])).is_err());
        assert_eq!(
            labels(&json!(["team:a"])).ok(),
            Some(vec!["team:a".to_string()])
        );
    }
}
