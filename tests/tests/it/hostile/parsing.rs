//! Bodies that cost the machine before authorization: YAML alias bombs, deep or huge documents, imports.

use std::io::Write;

use refract_tests::platform::{Client, Platform};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `a: &a [0 × width]`, `b: [*a × copies]`: `width × copies` nodes once the aliases are expanded,
/// from a few kilobytes. The bomb (20,000 × 400, 41 KB) took 1.2 GB and 6 s of CPU;
/// this one (800,000 nodes) is over the budget and still harmless to a build without it.
fn alias_bomb() -> String {
    format!(
        "name: bomb\na: &a [{}]\nb: [{}]\n",
        vec!["0"; 2_000].join(","),
        vec!["*a"; 400].join(",")
    )
}

/// Sends `body` as `content_type` and returns the status and the JSON answer.
async fn send(
    client: &Client,
    method: Method,
    path: &str,
    content_type: &str,
    body: String,
) -> (StatusCode, Value) {
    let res = client
        .request(method, path)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let bytes = res.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A session from `POST /v2/login/anonymous`.
async fn anonymous(platform: &Platform) -> Client {
    let (status, body) = platform
        .client()
        .json(Method::POST, "/v2/login/anonymous", None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    Client {
        token: Some(body["token"].as_str().unwrap().to_owned()),
        ..platform.client()
    }
}

/// An anonymous session, or a signed-in stranger, sending a bomb (or any body) to a workspace
/// it may not touch is refused by the access check before the body is read: a body that does
/// not even parse gets the same 404 as a valid one, never the parser's 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_not_parsed_before_the_access_check() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Victim").await.unwrap();
    let anon = anonymous(&platform).await;
    let mallory = platform
        .client()
        .signed_up("mallory@example.com")
        .await
        .unwrap();

    for target in [
        format!("/v2/workspaces/{ws}/automations"),
        "/v2/workspaces/anything/automations".to_owned(),
    ] {
        for body in [alias_bomb(), "name: [".to_owned()] {
            let (status, answer) =
                send(&anon, Method::POST, &target, "application/yaml", body).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{target}: {answer}");
            assert_eq!(answer["error"], "ObjectNotFoundError", "{answer}");
        }
    }
    let (status, answer) = send(
        &platform.client(),
        Method::POST,
        &format!("/v2/workspaces/{ws}/automations"),
        "application/yaml",
        alias_bomb(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");

    // Every route of the service that takes a body: malformed JSON from a stranger is a 404.
    let routes = [
        (Method::PATCH, format!("/v2/workspaces/{ws}")),
        (Method::POST, format!("/v2/workspaces/{ws}/automations")),
        (
            Method::PATCH,
            format!("/v2/workspaces/{ws}/automations/any"),
        ),
        (Method::PUT, format!("/v2/workspaces/{ws}/security")),
        (
            Method::POST,
            format!("/v2/workspaces/{ws}/security/apikeys"),
        ),
        (
            Method::PUT,
            format!("/v2/workspaces/{ws}/security/apikeys/any"),
        ),
        (
            Method::PATCH,
            format!("/v2/workspaces/{ws}/security/secrets"),
        ),
        (Method::PUT, format!("/v2/workspaces/{ws}/security/secrets")),
        (Method::POST, format!("/v2/workspaces/{ws}/permissions")),
        (Method::POST, format!("/v2/workspaces/{ws}/apps")),
        (Method::PATCH, format!("/v2/workspaces/{ws}/apps/any")),
        (
            Method::PATCH,
            format!("/v2/workspaces/{ws}/apps/any/config"),
        ),
        (Method::POST, format!("/v2/workspaces/{ws}/versions")),
        (Method::POST, format!("/v2/workspaces/{ws}/import")),
    ];
    for (method, path) in routes {
        for client in [&anon, &mallory] {
            let (status, answer) = send(
                client,
                method.clone(),
                &path,
                "application/json",
                "{oops".to_owned(),
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        }
    }
    platform.stop().await.unwrap();
}

/// The workspace's owner sending the bomb (or a document nested too deep) gets a 400
/// `DocumentTooComplex` JSON error, not a parse that expands it; ordinary YAML, aliases
/// included, still saves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_bomb_is_a_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Mine").await.unwrap();
    let automations = format!("/v2/workspaces/{ws}/automations");

    let (status, answer) = send(
        &ada,
        Method::POST,
        &automations,
        "application/yaml",
        alias_bomb(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"], "DocumentTooComplex", "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("nodes"),
        "{answer}"
    );

    let deep = format!("name: deep\ndo: {}{}\n", "[".repeat(200), "]".repeat(200));
    let (status, answer) = send(&ada, Method::POST, &automations, "application/yaml", deep).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("DocumentTooComplex")),
        "{answer}"
    );
    let deep_json = format!(
        "{{\"name\": \"deep\", \"labels\": {}{}}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let (status, answer) = send(
        &ada,
        Method::POST,
        &automations,
        "application/json",
        deep_json,
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("DocumentTooComplex")),
        "{answer}"
    );

    let fine = "slug: fine\nname: Fine\ndo:\n  - set: &b {name: x, value: 1}\n  - set:\n      <<: *b\n      name: y\n".to_owned();
    let (status, answer) = send(&ada, Method::POST, &automations, "application/yaml", fine).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["do"][1]["set"],
        json!({"name": "y", "value": 1}),
        "{answer}"
    );
    platform.stop().await.unwrap();
}

/// An import holding a bomb lists it as an error (the archive's other files still import), in
/// the zip form and in the single-file `runtime.yml` form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_lists_its_bomb_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Imported").await.unwrap();
    let import = format!("/v2/workspaces/{ws}/import");

    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    // index.yml at the root: an archive whose entries share one folder is read as that
    // folder's export.
    for (name, text) in [
        ("index.yml", "name: Imported\n".to_owned()),
        ("automations/hello.yml", "name: Hello\ndo: []\n".to_owned()),
        ("automations/bomb.yml", alias_bomb()),
    ] {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    let archive = zip.finish().unwrap().into_inner();
    let res = ada
        .request(Method::POST, &import)
        .header("content-type", "application/zip")
        .body(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let report: Value = res.json().await.unwrap();
    assert_eq!(
        report["imported"],
        json!(["automations/hello.yml"]),
        "{report}"
    );
    assert_eq!(
        report["errors"][0]["path"], "automations/bomb.yml",
        "{report}"
    );
    assert_eq!(
        report["errors"][0]["error"], "DocumentTooComplex",
        "{report}"
    );

    let runtime = format!(
        "name: Shop\nautomations:\n  bomb:\n    {}",
        alias_bomb().replace('\n', "\n    ")
    );
    let (status, report) = send(&ada, Method::POST, &import, "application/yaml", runtime).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], json!([]), "{report}");
    assert_eq!(
        report["errors"][0]["error"], "DocumentTooComplex",
        "{report}"
    );
    platform.stop().await.unwrap();
}

/// Query values at the edges of their types (a long-poll `wait` past what a `Duration` holds,
/// found by schemathesis: it panicked the handler and the client got an empty reply) are
/// answered, capped or refused with a 400, and the service goes on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_query_values_get_an_answer() {
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path()).await.unwrap();
    let ada = platform
        .client()
        .signed_up("ada@example.com")
        .await
        .unwrap();
    let ws = ada.workspace("Edges").await.unwrap();
    for (query, want) in [
        ("wait=2e19", StatusCode::OK),
        ("wait=1e308", StatusCode::OK),
        ("wait=inf", StatusCode::BAD_REQUEST),
        ("wait=-1", StatusCode::BAD_REQUEST),
        ("limit=18446744073709551616", StatusCode::BAD_REQUEST),
        ("page=99999999999999999999", StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = ada
            .json(
                Method::GET,
                &format!("/v2/workspaces/{ws}/events?{query}"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, want, "{query}: {body}");
    }
    let (status, _) = ada
        .json(Method::GET, &format!("/v2/workspaces/{ws}/events"), None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    platform.stop().await.unwrap();
}
