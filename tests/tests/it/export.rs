//! Workspace export through the gateway: the zip is in the import's layout, an import of it into
//! another workspace gives the same DSL and component automations, config, security rules and
//! app instances (the new workspace's webhooks answer like the old one's), secrets leave by name
//! only, a component crosses only with its export's grant, and only the workspace's owners may
//! export.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use anyhow::{Context, ensure};
use refract_tests::platform::{Platform, example};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The files of a zip, by name, parsed (every document of an export is JSON, hence YAML).
fn files(zip: &[u8]) -> anyhow::Result<BTreeMap<String, Value>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip))?;
    let mut out = BTreeMap::new();
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i)?;
        let mut text = String::new();
        entry.read_to_string(&mut text)?;
        out.insert(entry.name()?.into_owned(), serde_json::from_str(&text)?);
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_imports_into_another_workspace_as_it_was() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let platform = Platform::start(dir.path()).await?;
    let ada = platform.client().signed_up("ada@example.com").await?;
    let ws = ada.workspace("Source").await?;
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("/v2/workspaces/{ws}"),
            Some(json!({"config": {"value": {"greeting": "Bonjour"}}})),
        )
        .await?;
    ensure!(status == StatusCode::OK, "{status} {body}");
    let hello = json!({"slug": "hello", "name": "Hello", "when": {"endpoint": true},
        "do": [{"set": {"name": "to", "value": "{{body.name}}"}}],
        "output": {"message": "{{config.greeting}} {{to}}"}});
    ada.create_automation(&ws, hello.clone()).await?;
    ada.create_automation(
        &ws,
        json!({"slug": "noted", "name": "Noted", "when": {"events": ["note.taken"]},
            "do": [{"emit": {"event": "note.stored"}}]}),
    )
    .await?;
    let (status, body) = ada
        .json(
            Method::PATCH,
            &format!("/v2/workspaces/{ws}/security/secrets"),
            Some(json!({"apiToken": {"value": "s3cr3t-value", "description": "the CRM's"}})),
        )
        .await?;
    ensure!(status == StatusCode::OK, "{status} {body}");
    let echo = json!({"slug": "echo", "name": "Echo", "when": {"endpoint": true},
        "component": {"limits": {"memoryMiB": 32}}});
    ada.deploy(&ws, echo, &example("webhook-echo")?).await?;

    // An app published from another workspace, installed in this one.
    let lib = ada.workspace("Library").await?;
    ada.create_automation(
        &lib,
        json!({"slug": "hi", "name": "Hi", "when": {"endpoint": true}, "do": [],
            "output": {"hi": true}}),
    )
    .await?;
    let (status, body) = ada
        .json(
            Method::POST,
            "/v2/apps",
            Some(json!({"workspaceId": lib, "slug": "greeter"})),
        )
        .await?;
    ensure!(status == StatusCode::OK, "publish: {status} {body}");
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/apps"),
            Some(json!({"appSlug": "greeter", "slug": "greet", "config": {"tone": "warm"}})),
        )
        .await?;
    ensure!(status == StatusCode::OK, "install: {status} {body}");
    let security = json!({"authorizations": {
        "roles": {"auditor": {}},
        "rules": [{"role": "auditor", "action": "read", "subject": ["workspaces", "automations"]}]
    }});
    let (status, body) = ada
        .json(
            Method::PUT,
            &format!("/v2/workspaces/{ws}/security"),
            Some(security),
        )
        .await?;
    ensure!(status == StatusCode::OK, "{status} {body}");
    let res = ada
        .request(Method::GET, &format!("/v2/workspaces/{ws}/export"))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "export: {}", res.status());
    ensure!(
        res.headers()
            .get("content-type")
            .is_some_and(|v| v == "application/zip")
    );
    let zip = res.bytes().await?.to_vec();
    ensure!(
        !String::from_utf8_lossy(&zip).contains("s3cr3t") && !zip_text(&zip)?.contains("s3cr3t"),
        "a secret value left in the export"
    );
    let exported = files(&zip)?;
    let names: Vec<&str> = exported.keys().map(String::as_str).collect();
    ensure!(
        names
            == [
                "automations/hello.yml",
                "automations/noted.yml",
                "components/echo.yml",
                "imports/greet.yml",
                "index.yml",
                "secrets.yml",
                "security.yml",
            ],
        "{names:?}"
    );
    ensure!(
        exported["index.yml"]["config"]["value"] == json!({"greeting": "Bonjour"}),
        "{}",
        exported["index.yml"]
    );
    ensure!(
        exported["secrets.yml"]["apiToken"]["description"] == "the CRM's",
        "{}",
        exported["secrets.yml"]
    );
    ensure!(
        exported["security.yml"]["authorizations"]["roles"].is_object(),
        "{}",
        exported["security.yml"]
    );

    // Another workspace imports it: the same automations, the same config, the same answer.
    let copy = ada.workspace("Copy").await?;
    let res = ada
        .request(Method::POST, &format!("/v2/workspaces/{copy}/import"))
        .header("content-type", "application/zip")
        .body(zip.clone())
        .send()
        .await?;
    let status = res.status();
    let report: Value = res.json().await?;
    ensure!(status == StatusCode::OK, "{status} {report}");
    ensure!(
        report["errors"].as_array().is_some_and(Vec::is_empty),
        "{report}"
    );
    for slug in ["hello", "noted"] {
        let (_, original) = ada
            .json(
                Method::GET,
                &format!("/v2/workspaces/{ws}/automations/{slug}"),
                None,
            )
            .await?;
        let (status, imported) = ada
            .json(
                Method::GET,
                &format!("/v2/workspaces/{copy}/automations/{slug}"),
                None,
            )
            .await?;
        ensure!(status == StatusCode::OK, "{slug}: {status} {imported}");
        for member in ["name", "when", "do", "output", "kind"] {
            ensure!(
                original[member] == imported[member],
                "{slug}.{member}: {} vs {}",
                original[member],
                imported[member]
            );
        }
    }
    let (_, source_security) = ada
        .json(Method::GET, &format!("/v2/workspaces/{ws}/security"), None)
        .await?;
    let (_, copied_security) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{copy}/security"),
            None,
        )
        .await?;
    ensure!(
        source_security == copied_security
            && copied_security["authorizations"]["rules"][0]["role"] == "auditor",
        "{source_security} vs {copied_security}"
    );
    let (status, instance) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{copy}/apps/greet"),
            None,
        )
        .await?;
    ensure!(status == StatusCode::OK, "{status} {instance}");
    ensure!(
        instance["appSlug"] == "greeter" && instance["config"]["tone"] == "warm",
        "{instance}"
    );
    let (status, answer) = platform
        .client()
        .json(
            Method::POST,
            &format!("/v2/workspaces/{copy}/webhooks/hello"),
            Some(json!({"name": "Ada"})),
        )
        .await?;
    ensure!(status == StatusCode::OK, "{status} {answer}");
    ensure!(answer == json!({"message": "Bonjour Ada"}), "{answer}");
    let (_, original) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{ws}/automations/echo"),
            None,
        )
        .await?;
    let (_, component) = ada
        .json(
            Method::GET,
            &format!("/v2/workspaces/{copy}/automations/echo"),
            None,
        )
        .await?;
    ensure!(
        component["component"]["digest"] == original["component"]["digest"]
            && component["component"]["status"] == "ready"
            && component["component"]["limits"]["memoryMiB"] == 32,
        "{component}"
    );
    let res = platform
        .client()
        .request(
            Method::POST,
            &format!("/v2/workspaces/{copy}/webhooks/echo"),
        )
        .json(&json!({"n": 1}))
        .send()
        .await?;
    ensure!(res.status() == StatusCode::CREATED, "{}", res.status());
    let echoed: Value = res.json().await?;
    ensure!(echoed["body"] == json!({"n": 1}), "{echoed}");

    // A component crosses with its grant only: a document naming a digest without one, or with
    // an edited one, is refused (a digest alone would run another tenant's code).
    let mut doc = exported["components/echo.yml"].clone();
    let grant = doc["grant"].take();
    ensure!(grant.is_object(), "{doc}");
    let mut forged = grant.clone();
    forged["data"] = json!("AAAA".repeat(16));
    for (name, grant) in [("no grant", Value::Null), ("an edited grant", forged)] {
        let mut doc = doc.clone();
        if !grant.is_null() {
            doc["grant"] = grant;
        }
        let stranger = ada.workspace(&format!("Stranger {name}")).await?;
        let report = import_files(&ada, &stranger, &[("components/echo.yml", &doc)]).await?;
        ensure!(
            report["errors"][0]["error"] == "ForbiddenError" && report["imported"] == json!([]),
            "{name}: {report}"
        );
        let (status, _) = ada
            .json(
                Method::GET,
                &format!("/v2/workspaces/{stranger}/automations/echo"),
                None,
            )
            .await?;
        ensure!(status == StatusCode::NOT_FOUND, "{name}: {status}");
    }

    // Only owners export: an editor of the workspace may not, a stranger does not see it.
    let bob = platform.client().signed_up("bob@example.com").await?;
    let (_, me) = bob.json(Method::GET, "/v2/me", None).await?;
    let bob_id = me["id"].as_str().context("bob's id")?.to_owned();
    let (status, body) = ada
        .json(
            Method::POST,
            &format!("/v2/workspaces/{ws}/permissions"),
            Some(json!({"target": {"id": bob_id}, "permissions": {"role": "editor"}})),
        )
        .await?;
    ensure!(status == StatusCode::OK, "sharing: {status} {body}");
    let (status, _) = bob
        .json(Method::GET, &format!("/v2/workspaces/{ws}/export"), None)
        .await?;
    ensure!(status == StatusCode::FORBIDDEN, "an editor: {status}");
    let eve = platform.client().signed_up("eve@example.com").await?;
    let (status, _) = eve
        .json(Method::GET, &format!("/v2/workspaces/{ws}/export"), None)
        .await
        .context("a stranger's export")?;
    ensure!(status == StatusCode::NOT_FOUND, "a stranger: {status}");
    platform.stop().await
}

/// Imports a zip of `files` (JSON documents) into `workspace`; answers the import's report.
async fn import_files(
    client: &refract_tests::platform::Client,
    workspace: &str,
    files: &[(&str, &Value)],
) -> anyhow::Result<Value> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zip.add_directory("export/", zip::write::SimpleFileOptions::default())?;
    for (name, doc) in files {
        zip.start_file(
            format!("export/{name}"),
            zip::write::SimpleFileOptions::default(),
        )?;
        std::io::Write::write_all(&mut zip, doc.to_string().as_bytes())?;
    }
    let zip = zip.finish()?.into_inner();
    let res = client
        .request(Method::POST, &format!("/v2/workspaces/{workspace}/import"))
        .header("content-type", "application/zip")
        .body(zip)
        .send()
        .await?;
    ensure!(res.status() == StatusCode::OK, "import: {}", res.status());
    Ok(res.json().await?)
}

/// Every entry's text, decompressed, concatenated.
fn zip_text(zip: &[u8]) -> anyhow::Result<String> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip))?;
    let mut all = String::new();
    for i in 0..archive.len() {
        archive.by_index(i)?.read_to_string(&mut all)?;
    }
    Ok(all)
}
