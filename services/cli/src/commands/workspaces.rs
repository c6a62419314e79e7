//! `refract workspaces list|create|use`: the caller's workspaces (`GET /v2/workspaces`, every
//! page), a new one (`POST /v2/workspaces`), and the default workspace of the stored login.

use anyhow::Context;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Call, Console, WorkspacesCommand, segment};
use crate::api::all_pages;
use crate::output;

/// The members of a workspace the CLI prints.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Workspace {
    id: String,
    slug: String,
    #[serde(default)]
    name: Value,
    #[serde(default)]
    created_at: String,
}

/// Runs one `refract workspaces` command.
pub(super) async fn run(
    command: WorkspacesCommand,
    console: &mut Console<'_>,
) -> anyhow::Result<()> {
    match command {
        WorkspacesCommand::List(conn) => {
            let call = Call::new(console, &conn, None)?;
            let found: Vec<Value> = all_pages(&call.api()?, "/v2/workspaces").await?;
            if conn.json {
                return output::json(console.stdout, &found);
            }
            let mut rows = Vec::with_capacity(found.len());
            for value in found {
                let ws: Workspace =
                    serde_json::from_value(value).context("a workspace of the listing")?;
                let default = call.target.workspace.as_deref() == Some(ws.id.as_str());
                rows.push(vec![
                    ws.id,
                    ws.slug,
                    output::text(&ws.name),
                    ws.created_at,
                    if default { "*".into() } else { String::new() },
                ]);
            }
            output::table(
                console.stdout,
                &["ID", "SLUG", "NAME", "CREATED", "DEFAULT"],
                rows,
            )
        }
        WorkspacesCommand::Create {
            name,
            slug,
            use_it,
            conn,
        } => {
            let call = Call::new(console, &conn, None)?;
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            if let Some(slug) = slug {
                body.insert("slug".into(), json!(slug));
            }
            let created: Value = call
                .api()?
                .call(Method::POST, "/v2/workspaces", Some(&Value::Object(body)))
                .await?;
            let ws: Workspace =
                serde_json::from_value(created.clone()).context("the created workspace")?;
            if use_it {
                use_workspace(&call, &ws.id)?;
            }
            if conn.json {
                return output::json(console.stdout, &created);
            }
            writeln!(
                console.stdout,
                "Created workspace {} ({}): {}",
                ws.slug,
                output::text(&ws.name),
                ws.id
            )?;
            if use_it {
                writeln!(console.stdout, "It is now the default workspace.")?;
            }
            Ok(())
        }
        WorkspacesCommand::Use { id, conn } => {
            let call = Call::new(console, &conn, None)?;
            // Only a workspace the caller can read becomes the default.
            let found: Value = call
                .api()?
                .get(&format!("/v2/workspaces/{}", segment(&id)), &[])
                .await?;
            let ws: Workspace = serde_json::from_value(found.clone()).context("the workspace")?;
            use_workspace(&call, &ws.id)?;
            if conn.json {
                return output::json(console.stdout, &found);
            }
            writeln!(
                console.stdout,
                "Default workspace: {} ({}): {}",
                ws.slug,
                output::text(&ws.name),
                ws.id
            )?;
            Ok(())
        }
    }
}

/// Stores `id` as the default workspace of the profile (which must be the login of the
/// platform called).
fn use_workspace(call: &Call, id: &str) -> anyhow::Result<()> {
    let mut profile = call
        .profile
        .clone()
        .filter(|p| p.url.trim_end_matches('/') == call.target.url)
        .with_context(|| {
            format!(
                "no stored login for {}: run `refract login` first, or set REFRACT_WORKSPACE",
                call.target.url
            )
        })?;
    profile.workspace = Some(id.to_owned());
    profile.save(&call.profile_path)
}
