//! The API contract's shared parts: what every service's OpenAPI document (generated from its
//! handlers by `utoipa`) has in common. Each service builds its routes with
//! `utoipa_axum::router::OpenApiRouter`, so a route and its operation are written once; the
//! binary merges the documents and [`finish`] adds what the platform does on every route:
//!
//! - the error body [`ErrorBody`] (`{error, message, details?}`) as the `Error` schema;
//! - the answers the gateway and the shared extractors can give on any operation
//!   ([`PLATFORM_ERRORS`]), unless the operation documents that status itself;
//! - the security schemes, required by every operation that does not declare its own
//!   `security` (public routes declare an empty one).

use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder};
use utoipa::openapi::security::{SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, PathItem, Ref, RefOr, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

/// The error body of every 4xx and 5xx answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// A stable machine-readable code (`ObjectNotFoundError`, `RequestValidationError`, …).
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
    /// Structured context when there is any (e.g. `[{path, message}]` for validation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// Statuses any operation can answer whatever its handler does: a malformed path or body
/// (400), a missing or bad credential (401), a denied or unseen object (403/404; an object the
/// caller may not see answers 404), a method the route lacks (405), a body over the route's cap
/// (413), an unreadable content type (415), the rate limit (429), and the platform's own
/// failures (500, 503, 504).
pub const PLATFORM_ERRORS: &[(u16, &str)] = &[
    (400, "The request is malformed or fails validation."),
    (
        401,
        "No valid credential, where the operation requires one.",
    ),
    (403, "The caller may not do this."),
    (404, "No such object, or one the caller may not see."),
    (405, "The route does not accept this method."),
    (413, "The body is over the route's size limit."),
    (
        415,
        "The body's content type is not one the operation reads.",
    ),
    (
        429,
        "Too many requests: the rate limit (with `retry-after`).",
    ),
    (
        500,
        "An internal error (the message is generic; the log has the cause).",
    ),
    (
        503,
        "A backend the operation needs is unavailable; retry later.",
    ),
    (504, "The backend did not answer in time."),
];

/// The security schemes' names, as operations refer to them.
pub mod schemes {
    /// A session token from `POST /v2/login` or a personal access token (`at:…`), as
    /// `Authorization: Bearer …`.
    pub const BEARER: &str = "bearer";
    /// A workspace API key in `x-prismeai-api-key`.
    pub const API_KEY: &str = "apiKey";
    /// The session cookie the console uses.
    pub const COOKIE: &str = "sessionCookie";
    /// The session's CSRF token, required with the cookie on every write.
    pub const CSRF: &str = "csrfToken";
}

/// The platform's document with its info, its security schemes and the `Error` schema, and
/// `paths` merged in; then [`finish`]ed.
pub fn document(version: &str, paths: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut doc = OpenApi::new(
        InfoBuilder::new()
            .title("Refract API")
            .version(version)
            .description(Some(
                "The HTTP API of Refract, the WebAssembly-sandboxed automation platform. \
                 Every error answers `{error, message, details?}`.",
            ))
            .build(),
        utoipa::openapi::Paths::new(),
    );
    for part in paths {
        doc.merge(part);
    }
    finish(&mut doc);
    doc
}

/// Adds the security schemes, the `Error` schema, the platform-wide error answers and the
/// default security requirement to every operation of `doc`.
pub fn finish(doc: &mut OpenApi) {
    let components = doc
        .components
        .get_or_insert_with(|| ComponentsBuilder::new().build());
    components
        .schemas
        .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    let bearer = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(
            "A session token (`POST /v2/login`) or a personal access token (`at:…`).",
        ))
        .build();
    components.add_security_scheme(schemes::BEARER, SecurityScheme::Http(bearer));
    components.add_security_scheme(
        schemes::API_KEY,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            crate::headers::API_KEY,
            "A workspace API key.",
        ))),
    );
    components.add_security_scheme(
        schemes::COOKIE,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::cookies::SESSION,
            "The console's session cookie; writes also need the CSRF header.",
        ))),
    );
    components.add_security_scheme(
        schemes::CSRF,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            crate::headers::CSRF_TOKEN,
            "The session's CSRF token, sent with the cookie.",
        ))),
    );
    let required = vec![
        SecurityRequirement::new(schemes::BEARER, Vec::<String>::new()),
        SecurityRequirement::new(schemes::API_KEY, Vec::<String>::new()),
        SecurityRequirement::new(schemes::COOKIE, Vec::<String>::new())
            .add(schemes::CSRF, Vec::<String>::new()),
    ];
    unique_operation_ids(doc);
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            op.security.get_or_insert_with(|| required.clone());
            for (status, description) in PLATFORM_ERRORS {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| error_response(description));
            }
        }
    }
}

/// Operation ids are the handlers' names, which repeat across services (`list`, `get_one`):
/// each id held by more than one operation is replaced, for all its holders, by one built from
/// the method and the path (`GET /v2/workspaces/{workspace_id}/automations/{slug}` →
/// `getWorkspacesAutomationsBySlug`), so generated clients get one name per operation.
fn unique_operation_ids(doc: &mut OpenApi) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for item in doc.paths.paths.values_mut() {
        for (_, op) in methods_mut(item) {
            if let Some(id) = &op.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in methods_mut(item) {
            let repeated = op.operation_id.as_ref().is_none_or(|id| seen[id] > 1);
            if repeated {
                op.operation_id = Some(id_from_path(method, path));
            }
        }
    }
}

/// `method` and the path's literal segments in camel case, with a last parameter as `By…`.
fn id_from_path(method: &str, path: &str) -> String {
    let pascal = |word: &str| {
        word.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut chars = w.chars();
                chars.next().map_or(String::new(), |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect::<String>()
    };
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "v2")
        .collect();
    let mut id = method.to_string();
    for (i, segment) in segments.iter().enumerate() {
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) if i + 1 == segments.len() => id += &format!("By{}", pascal(param)),
            Some(_) => {}
            None => id += &pascal(segment),
        }
    }
    id
}

/// An error answer with the `Error` body.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .build()
        .into()
}

/// Every operation of a path.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    methods_mut(item).map(|(_, op)| op)
}

/// Every operation of a path with its method, lowercase.
fn methods_mut(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_operation_ids_are_named_by_method_and_path() {
        assert_eq!(
            id_from_path("get", "/v2/workspaces/{workspace_id}/automations/{slug}"),
            "getWorkspacesAutomationsBySlug"
        );
        assert_eq!(
            id_from_path(
                "post",
                "/v2/workspaces/{workspace_id}/deadletters/{id}/replay"
            ),
            "postWorkspacesDeadlettersReplay"
        );
        assert_eq!(
            id_from_path("get", "/v2/user/accessTokens"),
            "getUserAccessTokens"
        );
        assert_eq!(id_from_path("get", "/sys/healthcheck"), "getSysHealthcheck");
    }
}

/// The `{workspace_id}` path parameter most routes start with.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InWorkspace {
    /// The workspace's id.
    pub workspace_id: String,
}

/// Responses an operation documents beyond [`PLATFORM_ERRORS`], for `responses(...)`:
/// `409` when the object changed or the name is taken.
pub const CONFLICT: &str = "The object changed meanwhile, or the name is taken.";
