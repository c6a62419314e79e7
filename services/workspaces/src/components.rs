//! `PUT /v2/workspaces/{id}/automations/{slug}/component` (`spec/http-api.md` §5.3): read the
//! body under its cap (gzip allowed), check the digest and precondition, validate and compile
//! through the host (Cranelift runs on a blocking thread, within a compile slot of
//! [`crate::compiles`]), store the `.wasm` by content hash and the artifact through the host's
//! artifact store, and point the automation at the new digest.

use refract_core::platform::types;
use std::io::Read;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use bytes::Bytes;
use chrono::Utc;
use http_body_util::BodyExt;
use refract_core::ErrorKind;
use refract_core::model::{Automation, AutomationKind, ComponentStatus};
use refract_host::HostError;
use refract_http::{ApiError, Caller, Json};
use refract_storage::Expect;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::automations::{self, event_payload, kind_conflict};
use crate::compiles::{self, CompileSlot, Unfinished};
use crate::inspect::{self, normalize_language};
use crate::params;
use crate::state::{Access, Action, Subject, WorkspacesState, encode, storage};

/// The only accepted content type.
pub const WASM_CONTENT_TYPE: &str = "application/wasm";
/// Optional source-language hint header.
pub const LANGUAGE_HEADER: &str = "x-refract-component-language";
const CONTENT_DIGEST: &str = "content-digest";

/// 400 `InvalidComponent` with its `reason`.
pub fn invalid_component(reason: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidComponent", message)
        .with_details(json!({ "reason": reason }))
}

/// The API error of a host validation or compile failure.
pub fn host_error(e: HostError) -> ApiError {
    match e {
        HostError::InvalidComponent { reason } => invalid_component(
            reason.as_str(),
            format!("the upload is not a Wasm component ({})", reason.as_str()),
        ),
        HostError::Compile { message } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ComponentCompileError",
            "the component does not compile",
        )
        .with_details(json!({ "message": message })),
        HostError::WorldMismatch {
            missing_exports,
            forbidden_imports,
            detail,
        } => {
            let mut details =
                json!({ "missingExports": missing_exports, "forbiddenImports": forbidden_imports });
            if let Some(d) = detail {
                details["detail"] = json!(d);
            }
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "ComponentWorldMismatch",
                "the component does not target the Refract world",
            )
            .with_details(details)
        }
        other => ApiError::from_kind(other.kind(), other),
    }
}

fn too_large(length: Option<usize>, limit: usize) -> ApiError {
    let mut details = json!({ "limit": limit });
    if let Some(l) = length {
        details["length"] = json!(l);
    }
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        format!("the component is over the {limit}-byte limit"),
    )
    .with_details(details)
}

fn unsupported_media(expected: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        format!("expected {expected}"),
    )
    .with_details(json!({ "expected": expected }))
}

fn header(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `PUT …/automations/{slug}/component`: uploads, checks and compiles the automation's
/// WebAssembly component.
#[utoipa::path(put, path = "/v2/workspaces/{workspace_id}/automations/{slug}/component", tag = "automations",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The automation's slug."),
        ("validateOnly" = Option<bool>, Query, description = "`true`: every check of the upload, nothing stored."),
        ("content-encoding" = Option<String>, Header, nullable = false, description = "`gzip`, or none."),
        ("content-digest" = Option<String>, Header, nullable = false, description = "`sha-256=:<base64>:` of the body as sent, or of the decompressed component."),
        ("if-match" = Option<String>, Header, nullable = false, description = "The component digest the upload replaces (`*`: any)."),
        ("x-refract-component-language" = Option<String>, Header, nullable = false, description = "The source language: `rust`, `js`, `python` or `other`.")),
    request_body(description = "The WebAssembly component (optionally gzip-compressed), at most the configured size (64 MiB by default).", content((crate::openapi::Binary = "application/wasm"))),
    responses((status = 200, description = "The automation with its component, and whether the upload changed it.", body = crate::openapi::UploadedAutomation),
        (status = 409, description = "A DSL automation (`AutomationKindConflict`), or the automation changed during the upload.", body = refract_http::openapi::ErrorBody),
        (status = 412, description = "`If-Match` does not match the current component digest.", body = refract_http::openapi::ErrorBody),
        (status = 422, description = "The component does not compile (in time), or does not target the Refract world.", body = refract_http::openapi::ErrorBody)))]
pub async fn upload(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .authorize(
            &caller,
            &workspace_id,
            (Action::Update, Subject::Automations),
        )
        .await?;
    // Uploads are a user's (API keys read and run).
    caller.require_user()?;
    let ws = access.id.as_str();
    let (automation, version) = automations::load(&state, ws, &slug).await?;
    if automation.kind != AutomationKind::Component {
        return Err(kind_conflict(
            "this is a dsl automation; components go to component automations",
        ));
    }
    let media = header(&headers, CONTENT_TYPE)
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media.is_some_and(|m| m.eq_ignore_ascii_case(WASM_CONTENT_TYPE)) {
        return Err(unsupported_media(WASM_CONTENT_TYPE));
    }
    let gzip = match header(&headers, CONTENT_ENCODING) {
        None | Some("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(_) => return Err(unsupported_media("Content-Encoding: gzip or none")),
    };
    let language = match header(&headers, LANGUAGE_HEADER) {
        None => None,
        Some(l) if LANGUAGES.contains(&l) => Some(l.to_string()),
        Some(_) => {
            return Err(ApiError::validation(
                LANGUAGE_HEADER,
                "must be rust, js, python or other",
            ));
        }
    };
    let validate_only = params::query(raw.as_deref())
        .get("validateOnly")
        .is_some_and(|v| v == "true");

    // 2. Size, then digest.
    let limit = state.config.max_component_bytes;
    let declared = header(&headers, CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large(declared, limit));
    }
    let sent = read_body(body, limit).await?;
    let bytes = if gzip {
        let compressed = sent.clone();
        tokio::task::spawn_blocking(move || gunzip(&compressed, limit))
            .await
            .map_err(ApiError::internal)??
    } else {
        sent.clone()
    };
    if let Some(value) = header(&headers, CONTENT_DIGEST) {
        check_content_digest(value, &sent, &bytes)?;
    }
    let previous = automation.component.as_ref().and_then(|c| c.digest.clone());
    if let Some(tag) = header(&headers, IF_MATCH) {
        let wanted = tag.trim_matches('"');
        if wanted != "*" && previous.as_deref() != Some(wanted) {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "If-Match does not match the current component digest",
            ));
        }
    }

    // 3–5. Preamble, compile, world: within a compile slot, held until the compile ends.
    let slot = state.compile_slots().try_acquire(&access.id)?;
    if validate_only {
        check_without_storing(&state, slot, bytes).await?;
        let mut out = encode(&automation)?;
        out["unchanged"] = json!(false);
        return Ok(Json(out));
    }
    let (automation, unchanged) = install(
        &state,
        &caller,
        &access,
        (automation, version),
        slot,
        bytes,
        language,
    )
    .await?;
    let mut out = encode(&automation)?;
    out["unchanged"] = json!(unchanged);
    Ok(Json(out))
}

/// Compiles `bytes` (within `slot`), stores them as the component of `automation` (read at
/// `version`), keeps the automation it replaces as a version, and announces it: the upload's
/// last steps, shared with an import that brings a component by its grant. Answers the
/// automation and whether it was already running these bytes (then nothing changed).
pub(crate) async fn install(
    state: &WorkspacesState,
    caller: &Caller,
    access: &Access,
    (mut automation, version): (Automation, u64),
    slot: CompileSlot,
    bytes: Bytes,
    language: Option<String>,
) -> Result<(Automation, bool), ApiError> {
    let ws = access.id.as_str();
    let user = caller.require_user()?.to_string();
    let previous = automation.component.as_ref().and_then(|c| c.digest.clone());
    let host = state.host.clone();
    let sent_to_host = bytes.clone();
    let compiled = compiles::run(slot, state.config.compile_timeout, async move {
        host.upload(&sent_to_host).await
    })
    .await;
    let digest = compiled
        .map_err(|e| unfinished(e, state))?
        .map_err(host_error)?;
    let digest_text = digest.to_string();
    let ready = automation
        .component
        .as_ref()
        .is_some_and(|c| c.status == ComponentStatus::Ready);
    if ready && previous.as_deref() == Some(digest_text.as_str()) {
        return Ok((automation, true));
    }
    let size = bytes.len();
    let for_inspect = bytes.clone();
    let facts = tokio::task::spawn_blocking(move || inspect::inspect(&for_inspect))
        .await
        .map_err(ApiError::internal)?;
    let blob = state.files.put_blob(bytes).await.map_err(storage)?;
    if blob.to_string() != digest_text {
        return Err(ApiError::internal(format!(
            "blob digest {blob} differs from host digest {digest_text}"
        )));
    }
    let language = language.or(facts.language.map(|l| normalize_language(&l)));
    // The component it ran until now stays one restore away (a first upload replaces nothing).
    let previous = automation
        .component
        .as_ref()
        .is_some_and(|c| c.digest.is_some())
        .then(|| automation.clone());
    let now = Utc::now();
    let Some(info) = automation.component.as_mut() else {
        return Err(ApiError::internal(
            "component automation without component member",
        ));
    };
    info.status = ComponentStatus::Ready;
    info.digest = Some(digest_text.clone());
    info.size = Some(size as u64);
    info.world = Some(facts.world.clone());
    info.imports = facts.imports;
    info.language = language.clone();
    info.uploaded_at = Some(now);
    info.uploaded_by = Some(user.clone());
    info.compiled_with = Some(state.host.fingerprint().to_string());
    automation.updated_at = now;
    automation.updated_by = user;
    match automations::store(state, ws, &automation, Expect::Version(version)).await? {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::Conflict => {
            return Err(automations::changed_meanwhile("during the upload"));
        }
        Err(e) => return Err(storage(e)),
    }
    if let Some(previous) = &previous {
        crate::automation_versions::saved(state, ws, &automation.slug, previous).await;
    }
    tracing::info!(workspace_id = %access.id, automation = %automation.slug, digest = %digest_text, size,
        correlation_id = %caller.correlation_id, "component uploaded");
    state
        .emit(
            caller,
            &access.id,
            types::AUTOMATIONS_UPDATED,
            event_payload(&automation, None),
        )
        .await;
    let mut uploaded = json!({
        "automationSlug": automation.slug,
        "digest": digest_text,
        "size": size,
        "world": facts.world,
        "language": language,
    });
    if let Some(p) = previous {
        uploaded["previousDigest"] = json!(p);
    }
    state
        .emit(caller, &access.id, types::COMPONENTS_UPLOADED, uploaded)
        .await;
    Ok((automation, false))
}

/// `GET …/automations/{slug}/component` [next]: the stored `.wasm`, `ETag: "sha256:<hex>"`;
/// 404 while `status: missing`.
#[utoipa::path(get, path = "/v2/workspaces/{workspace_id}/automations/{slug}/component", tag = "automations",
    params(refract_http::openapi::InWorkspace, ("slug" = String, Path, description = "The automation's slug.")),
    responses((status = 200, description = "The stored component (404 while none is uploaded).", content_type = "application/wasm", body = crate::openapi::Binary,
        headers(("etag" = String, description = "`\"sha256:<hex>\"`: the component's digest.")))))]
pub async fn download(
    State(state): State<WorkspacesState>,
    caller: Caller,
    Path((workspace_id, slug)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let access = state
        .authorize(&caller, &workspace_id, (Action::Read, Subject::Automations))
        .await?;
    let (automation, _) = automations::load(&state, access.id.as_str(), &slug).await?;
    let missing = || ApiError::not_found(format!("automation {slug:?} has no component yet"));
    let digest = automation
        .component
        .and_then(|c| c.digest)
        .ok_or_else(missing)?;
    let bytes = stored(&state, &digest).await?.ok_or_else(missing)?;
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(WASM_CONTENT_TYPE));
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
        headers.insert(ETAG, tag);
    }
    Ok(response)
}

/// The source languages an upload may name (`x-refract-component-language`).
pub(crate) const LANGUAGES: &[&str] = &["rust", "js", "python", "other"];

/// The bytes of the stored component `digest` (`sha256:<hex>`), while its blob is kept.
pub(crate) async fn stored(
    state: &WorkspacesState,
    digest: &str,
) -> Result<Option<Bytes>, ApiError> {
    let parsed: refract_storage::Digest = digest.parse().map_err(ApiError::internal)?;
    state.files.get_blob(&parsed).await.map_err(storage)
}

/// Reads at most `limit` bytes of `body`.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(None, limit))
        }
        Err(e) => {
            tracing::debug!(error = %e, "reading an upload failed");
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidFile",
                "the upload could not be read",
            ))
        }
    }
}

/// Decompresses a gzip body, refusing more than `limit` bytes of output (a zip bomb stops
/// there).
fn gunzip(sent: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(sent)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidFile",
                "the body is not valid gzip",
            )
        })?;
    if out.len() > limit {
        return Err(too_large(None, limit));
    }
    Ok(Bytes::from(out))
}

/// `Content-Digest: sha-256=:<base64>:` must match the body as sent (RFC 9530) or, for gzip
/// uploads, the decompressed component.
fn check_content_digest(value: &str, sent: &[u8], decoded: &[u8]) -> Result<(), ApiError> {
    let bad = || invalid_component("digest", "Content-Digest does not match the body");
    for entry in value.split(',') {
        let Some((alg, encoded)) = entry.trim().split_once('=') else {
            return Err(bad());
        };
        if !alg.trim().eq_ignore_ascii_case("sha-256") {
            continue;
        }
        let wanted = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim().trim_matches(':'))
            .map_err(|_| bad())?;
        let matches = |b: &[u8]| Sha256::digest(b)[..] == wanted[..];
        return if matches(sent) || matches(decoded) {
            Ok(())
        } else {
            Err(bad())
        };
    }
    Ok(())
}

/// The API error of a compile whose result did not come back.
fn unfinished(e: Unfinished, state: &WorkspacesState) -> ApiError {
    match e {
        Unfinished::TimedOut => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ComponentCompileError",
            "the component did not compile in time",
        )
        .with_details(json!({ "message": format!("compilation exceeded {} s", state.config.compile_timeout.as_secs()) })),
        Unfinished::Failed => ApiError::internal("the compile task failed"),
    }
}

/// `validateOnly=true`: every check of the upload, nothing stored or cached.
async fn check_without_storing(
    state: &WorkspacesState,
    slot: CompileSlot,
    bytes: Bytes,
) -> Result<(), ApiError> {
    let host = state.host.clone();
    let task = async move { tokio::task::spawn_blocking(move || host.check(&bytes)).await };
    compiles::run(slot, state.config.compile_timeout, task)
        .await
        .map_err(|e| unfinished(e, state))?
        .map_err(ApiError::internal)?
        .map_err(host_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_digest_and_gzip() {
        let body = b"\0asm\x0d\0\x01\0";
        let good = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        assert!(check_content_digest(&format!("sha-256=:{good}:"), body, body).is_ok());
        assert!(check_content_digest("sha-256=:AAAA:", body, body).is_err());
        assert!(check_content_digest("sha-512=:AAAA:", body, body).is_ok());
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &[0u8; 4096]).ok();
        let gz = enc.finish().unwrap_or_default();
        assert_eq!(gunzip(&gz, 4096).map(|b| b.len()).ok(), Some(4096));
        assert_eq!(
            gunzip(&gz, 4095).err().map(|e| e.status),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        assert!(gunzip(b"nope", 10).is_err());
    }
}
