//! The platform's API contract: one OpenAPI 3.1 document merged from the operations each
//! service generates from its own handlers (the gateway's accounts and tokens, and the
//! workspaces, runtime and events services it fronts), finished with what the platform does on
//! every route ([`refract_http::openapi::finish`]). The gateway serves it at
//! `GET /v2/openapi.json`; this crate is the one that links every service, so it merges.

use utoipa::openapi::OpenApi;

/// The whole API as the gateway serves it.
pub fn api_document() -> OpenApi {
    refract_http::openapi::document(
        env!("CARGO_PKG_VERSION"),
        [
            refract_gateway::api().into_openapi(),
            refract_workspaces::api().into_openapi(),
            refract_runtime::api().into_openapi(),
            refract_events::api().into_openapi(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path with its parameters' names erased, to compare shapes.
    fn shape(path: &str) -> String {
        path.split('/')
            .map(|s| if s.starts_with('{') { "{}" } else { s })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A route a backend serves without a row in the gateway's table is unreachable, and a
    /// route without an operation is undocumented: the gateway's table, its own routes and the
    /// document must name the same paths.
    #[test]
    fn the_document_covers_every_route_the_gateway_serves_and_no_other() {
        let doc = api_document();
        let documented: std::collections::BTreeSet<String> =
            doc.paths.paths.keys().map(|p| shape(p)).collect();
        let own: std::collections::BTreeSet<String> = refract_gateway::api()
            .into_openapi()
            .paths
            .paths
            .keys()
            .map(|p| shape(p))
            .collect();
        let proxied: std::collections::BTreeSet<String> = refract_gateway::proxied_paths()
            .map(|(path, _)| shape(path))
            .collect();
        let served: std::collections::BTreeSet<String> = own.union(&proxied).cloned().collect();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "served without an operation in the document: {undocumented:?}"
        );
        assert!(
            unserved.is_empty(),
            "documented but not served by the gateway: {unserved:?}"
        );
        assert!(proxied.len() > 30 && own.len() > 5, "{proxied:?} {own:?}");
    }

    /// The gateway sends each backend's routes to that backend.
    #[test]
    fn the_gateway_sends_each_route_to_the_service_that_documents_it() {
        let backends = [
            ("workspaces", refract_workspaces::api().into_openapi()),
            ("runtime", refract_runtime::api().into_openapi()),
            ("events", refract_events::api().into_openapi()),
        ];
        let table: Vec<(String, &str)> = refract_gateway::proxied_paths()
            .map(|(path, service)| (shape(path), service))
            .collect();
        for (service, doc) in &backends {
            for path in doc.paths.paths.keys() {
                let row = table.iter().find(|(p, _)| *p == shape(path));
                assert_eq!(
                    row.map(|(_, s)| *s),
                    Some(*service),
                    "{path} is documented by {service}"
                );
            }
        }
    }

    /// Every operation has its own id and answers something documented on success, errors
    /// use the one `Error` schema, and the document is OpenAPI 3.1.
    #[test]
    fn every_operation_documents_its_success_and_the_error_body() {
        let doc = serde_json::to_value(api_document()).expect("the document serializes");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["components"]["schemas"]["Error"]["properties"]["error"].is_object());
        let mut operations = 0;
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                operations += 1;
                let id = op["operationId"].as_str().expect("an operation id");
                assert!(ids.insert(id.to_string()), "{method} {path}: {id} is taken");
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses
                        .keys()
                        .any(|s| s.starts_with('2') || s.starts_with('1') || s.starts_with('3')),
                    "{method} {path} documents no success"
                );
                assert_eq!(
                    responses["404"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path}"
                );
            }
        }
        assert!(operations > 50, "{operations} operations");
    }
}
