//! The members of an automation body (`spec/http-api.md` §5.1): how a create or PATCH body is
//! applied, `when` and `component.limits` checked, and slugs generated from names.

use axum::http::StatusCode;
use chrono::Utc;
use refract_core::EventType;
use refract_core::model::{
    Automation, AutomationAuthorizations, AutomationKind, ComponentLimits, Endpoint, RetryPolicy,
    When, automation_doc_id, check_automation_slug,
};
use refract_dsl::arguments::Arguments;
use refract_http::ApiError;
use refract_storage::collections;
use refract_storage::documents::MAX_FIND_LIMIT;
use serde_json::{Map, Value, json};

use crate::params::{self, invalid_slug};
use crate::schedule;
use crate::state::{WorkspacesState, storage};

/// Longest automation name and description, in characters.
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2_000;
/// Generated slugs keep at most this many characters of the name (§5.1).
const GENERATED_SLUG_LEN: usize = 20;
/// Ceilings of `component.limits` (§5.1).
const MAX_MEMORY_MIB: u32 = 256;
const MAX_TIMEOUT_MS: u64 = 120_000;

/// Applies a create or PATCH body (kind already checked). Read-only members are ignored so a
/// client can send back what it read.
pub(crate) fn apply(
    state: &WorkspacesState,
    a: &mut Automation,
    body: Map<String, Value>,
) -> Result<(), ApiError> {
    for (key, value) in body {
        match key.as_str() {
            "slug" => {
                let slug = params::string("slug", &value)?;
                check_automation_slug(slug).map_err(|e| invalid_slug(slug, e))?;
                a.slug = slug.to_string();
            }
            "name" => {
                params::localized("name", &value, params::check_text(MAX_NAME))?;
                a.name = value;
            }
            "description" if value.is_null() => a.description = None,
            "description" => {
                params::localized("description", &value, params::check_text(MAX_DESCRIPTION))?;
                a.description = Some(value);
            }
            "labels" if value.is_null() => a.labels.clear(),
            "labels" => a.labels = params::labels(&value)?,
            "disabled" => {
                a.disabled = value
                    .as_bool()
                    .ok_or_else(|| ApiError::validation("disabled", "must be a boolean"))?
            }
            "private" => {
                a.private = value
                    .as_bool()
                    .ok_or_else(|| ApiError::validation("private", "must be a boolean"))?
            }
            "when" if value.is_null() => a.when = None,
            "when" => a.when = Some(check_when(state, value)?),
            "arguments" if value.is_null() => a.arguments = None,
            "arguments" if value.is_object() => a.arguments = Some(value),
            "arguments" => return Err(ApiError::validation("arguments", "must be an object")),
            "validateArguments" => {
                a.validate_arguments = value
                    .as_bool()
                    .ok_or_else(|| ApiError::validation("validateArguments", "must be a boolean"))?
            }
            "retry" if value.is_null() => a.retry = None,
            "retry" => {
                let policy: RetryPolicy = serde_json::from_value(value)
                    .map_err(|e| ApiError::validation("retry", e.to_string()))?;
                policy
                    .check()
                    .map_err(|(member, reason)| ApiError::validation(member, reason))?;
                a.retry = Some(policy);
            }
            "authorizations" if value.is_null() => a.authorizations = None,
            "authorizations" => a.authorizations = check_authorizations(value)?,
            "config" if value.is_null() => a.config = None,
            "config" => a.config = Some(value),
            "do" if value.is_null() => {}
            "do" if value.is_array() => a.instructions = Some(value),
            "do" => return Err(ApiError::validation("do", "must be a list of instructions")),
            "output" if value.is_null() => a.output = None,
            "output" => a.output = Some(value),
            "component" if value.is_null() => {}
            "component" => {
                let limits = component_limits(&value)?;
                if let (Some(info), Some(limits)) = (a.component.as_mut(), limits) {
                    info.limits = limits;
                }
            }
            "kind" | "events" | "createdAt" | "createdBy" | "updatedAt" | "updatedBy"
            | "unchanged" => {}
            other => return Err(params::unknown_field(other)),
        }
    }
    if a.validate_arguments {
        let arguments = a
            .arguments
            .as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Arguments::compile(&arguments).map_err(|e| {
            ApiError::validation(
                "arguments",
                format!("not a valid schema for validateArguments: {e}"),
            )
        })?;
    }
    Ok(())
}

/// Longest custom action name.
const MAX_ACTION: usize = 128;

/// `authorizations` (`{action?}`): `None` when no action is set.
fn check_authorizations(value: Value) -> Result<Option<AutomationAuthorizations>, ApiError> {
    let auth: AutomationAuthorizations = serde_json::from_value(value)
        .map_err(|e| ApiError::validation("authorizations", e.to_string()))?;
    match auth.action.as_deref() {
        None => Ok(None),
        Some(action) if action.trim().is_empty() || action.chars().count() > MAX_ACTION => {
            Err(ApiError::validation(
                "authorizations.action",
                format!("must be 1 to {MAX_ACTION} characters"),
            ))
        }
        Some(_) => Ok(Some(auth)),
    }
}

/// The writable part of `component`: `limits`. Its read-only members are ignored.
fn component_limits(value: &Value) -> Result<Option<ComponentLimits>, ApiError> {
    let Some(obj) = value.as_object() else {
        return Err(ApiError::validation(
            "component",
            "must be an object ({limits?})",
        ));
    };
    let Some(raw) = obj.get("limits").filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let limits: ComponentLimits = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::validation("component.limits", e.to_string()))?;
    if limits
        .memory_mib
        .is_some_and(|m| m == 0 || m > MAX_MEMORY_MIB)
    {
        return Err(ApiError::validation(
            "component.limits.memoryMiB",
            format!("must be 1 to {MAX_MEMORY_MIB}"),
        ));
    }
    if limits
        .timeout_ms
        .is_some_and(|t| t == 0 || t > MAX_TIMEOUT_MS)
    {
        return Err(ApiError::validation(
            "component.limits.timeoutMs",
            format!("must be 1 to {MAX_TIMEOUT_MS}"),
        ));
    }
    Ok(Some(limits))
}

/// Parses and checks `when` (§5.1; `automation-dsl.md` §2.6).
/// Checks again what a save checks of an automation stored earlier (a restored version): its
/// triggers, against today's rules (a schedule interval may have been tightened since).
pub(crate) fn recheck(state: &WorkspacesState, a: &Automation) -> Result<(), ApiError> {
    if let Some(when) = &a.when {
        let value = serde_json::to_value(when).map_err(ApiError::internal)?;
        check_when(state, value)?;
    }
    if a.kind == AutomationKind::Dsl {
        crate::dsl::check(a)?;
    }
    Ok(())
}

fn check_when(state: &WorkspacesState, value: Value) -> Result<When, ApiError> {
    let when: When =
        serde_json::from_value(value).map_err(|e| ApiError::validation("when", e.to_string()))?;
    if when.events.is_empty() && when.schedules.is_empty() && when.endpoint.is_none() {
        return Err(ApiError::validation(
            "when",
            "needs at least one of events, schedules, endpoint",
        ));
    }
    for (i, ty) in when.events.iter().enumerate() {
        EventType::new(ty.as_str())
            .map_err(|e| ApiError::validation(&format!("when.events.{i}"), e.to_string()))?;
    }
    let now = Utc::now();
    for (i, s) in when.schedules.iter().enumerate() {
        schedule::check(s, state.config.min_schedule_interval, now).map_err(|reason| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidScheduleError",
                format!("when.schedules.{i}: {reason}"),
            )
            .with_details(json!({ "path": format!("when.schedules.{i}"), "message": reason }))
        })?;
    }
    if let Some(Endpoint::Named(name)) = &when.endpoint {
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'-'));
        if !ok {
            return Err(ApiError::validation(
                "when.endpoint",
                "true, or a name of A-Z a-z 0-9 space . _ - (1 to 128)",
            ));
        }
    }
    Ok(when)
}

/// A slug from `name` (§5.1): diacritics stripped, other characters dropped, at most 20
/// characters, `-N` appended until unique.
pub(crate) async fn free_slug(
    state: &WorkspacesState,
    workspace: &str,
    name: &Value,
) -> Result<String, ApiError> {
    let base = slugify(params::first_text(name).unwrap_or(""));
    let base = if base.is_empty() {
        "automation".to_string()
    } else {
        base
    };
    for n in 0..MAX_FIND_LIMIT {
        let candidate = if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let id = automation_doc_id(workspace, &candidate);
        if state
            .store
            .get(&collections::AUTOMATIONS, &id)
            .await
            .map_err(storage)?
            .is_none()
        {
            return Ok(candidate);
        }
    }
    Err(ApiError::already_used(
        "slug",
        "no free slug for this name; give one",
    ))
}

/// `name` reduced to slug characters.
pub fn slugify(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter_map(|c| {
            let c = strip_diacritic(c);
            (c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-')).then_some(c)
        })
        .take(GENERATED_SLUG_LEN)
        .collect();
    kept.trim().to_string()
}

fn strip_diacritic(c: char) -> char {
    const MAP: &[(&str, char)] = &[
        ("àáâãäåā", 'a'),
        ("ÀÁÂÃÄÅĀ", 'A'),
        ("çćč", 'c'),
        ("ÇĆČ", 'C'),
        ("èéêëēė", 'e'),
        ("ÈÉÊËĒĖ", 'E'),
        ("ìíîïī", 'i'),
        ("ÌÍÎÏĪ", 'I'),
        ("ñń", 'n'),
        ("ÑŃ", 'N'),
        ("òóôõöøō", 'o'),
        ("ÒÓÔÕÖØŌ", 'O'),
        ("ùúûüū", 'u'),
        ("ÙÚÛÜŪ", 'U'),
        ("ýÿ", 'y'),
        ("ÝŸ", 'Y'),
        ("šś", 's'),
        ("ŠŚ", 'S'),
        ("žźż", 'z'),
        ("ŽŹŻ", 'Z'),
    ];
    MAP.iter()
        .find(|(from, _)| from.contains(c))
        .map_or(c, |(_, to)| *to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_from_names() {
        assert_eq!(slugify("Été: send e-mails!"), "Ete send e-mails");
        assert_eq!(slugify("日本"), "");
        assert_eq!(slugify("a very long automation name indeed").len(), 20);
    }
}
