//! `refract logs`: the runs of a workspace and their logs, as the platform recorded them
//! (`GET /v2/workspaces/{id}/runs`, then each run whole), oldest first; `--follow` keeps
//! printing runs as they are recorded.

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::api::Api;
use crate::commands::segment;

/// How often `--follow` asks for new runs.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// The arguments of `refract logs`.
#[derive(Debug, Clone)]
pub struct Logs {
    /// The platform's base URL.
    pub url: String,
    /// A session token, personal access token or API key.
    pub token: String,
    /// The workspace id.
    pub workspace: String,
    /// Only the runs of this automation.
    pub automation: Option<String>,
    /// How many of the latest runs to print first.
    pub last: u32,
    /// Keep printing new runs until interrupted.
    pub follow: bool,
}

/// How `refract logs` prints runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// [`format_run`]'s lines.
    Text,
    /// Each run whole as the API answers it: one JSON array without `follow`, else one run
    /// per line (JSON Lines).
    Json,
}

/// Prints the last runs of the workspace to `out`, then, with `follow`, the new ones as they
/// come.
pub async fn logs(args: &Logs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    logs_as(args, Format::Text, out).await
}

/// [`logs`], printed as `format`.
pub async fn logs_as(
    args: &Logs,
    format: Format,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let api = Api::new(&args.url, Some(args.token.clone()))?;
    let runs_path = format!("/v2/workspaces/{}/runs", segment(&args.workspace));
    let mut runs = list(&api, &runs_path, args, &[("limit", args.last.to_string())]).await?;
    runs.reverse();
    let mut cursor = None;
    let mut printed = Vec::new();
    for summary in &runs {
        if let Some(run) = fetch_run(&api, &runs_path, summary).await? {
            match (format, args.follow) {
                (Format::Json, false) => printed.push(run),
                _ => print_run(&run, format, out)?,
            }
        }
        cursor = summary.record_id.clone();
    }
    if !args.follow {
        if format == Format::Json {
            crate::output::json(out, &printed)?;
        }
        return Ok(());
    }
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let mut query = vec![("limit", "100".to_owned())];
        if let Some(c) = &cursor {
            query.push(("afterId", c.clone()));
        }
        let new = list(&api, &runs_path, args, &query).await?;
        // Without a cursor yet the page is newest first; with one, oldest first.
        let new: Vec<RunSummary> = if cursor.is_none() {
            new.into_iter().rev().collect()
        } else {
            new
        };
        for summary in &new {
            if let Some(run) = fetch_run(&api, &runs_path, summary).await? {
                print_run(&run, format, out)?;
            }
            cursor = summary.record_id.clone();
        }
    }
}

/// A run in the listing: what the CLI reads of it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunSummary {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    record_id: Option<String>,
}

/// `GET …/runs`' answer.
#[derive(Deserialize)]
struct Listing {
    result: ListingResult,
}

#[derive(Deserialize)]
struct ListingResult {
    #[serde(default)]
    runs: Vec<RunSummary>,
}

async fn list(
    api: &Api,
    runs_path: &str,
    args: &Logs,
    query: &[(&str, String)],
) -> anyhow::Result<Vec<RunSummary>> {
    let mut query = query.to_vec();
    if let Some(a) = &args.automation {
        query.push(("automation", a.clone()));
    }
    let listing: Listing = api.get(runs_path, &query).await?;
    Ok(listing.result.runs)
}

/// The run of `summary`, whole.
async fn fetch_run(
    api: &Api,
    runs_path: &str,
    summary: &RunSummary,
) -> anyhow::Result<Option<Value>> {
    let Some(id) = &summary.run_id else {
        return Ok(None);
    };
    let run = api
        .get(&format!("{runs_path}/{}", segment(id)), &[])
        .await?;
    Ok(Some(run))
}

fn print_run(run: &Value, format: Format, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    match format {
        Format::Text => out.write_all(format_run(run).as_bytes())?,
        Format::Json => {
            serde_json::to_writer(&mut *out, run)?;
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A run as `refract logs` prints it: a header line (start, automation, status, duration,
/// trigger, run id), its log lines indented with their offset, level and source, and its error.
pub fn format_run(run: &Value) -> String {
    let s = |k: &str| run[k].as_str().unwrap_or("-");
    let trigger = format!(
        "{}:{}",
        run["trigger"]["type"].as_str().unwrap_or("?"),
        run["trigger"]["value"].as_str().unwrap_or("")
    );
    let mut text = format!(
        "{} {} {} {}ms {} {}\n",
        s("startedAt"),
        s("automation"),
        s("status"),
        run["duration"].as_u64().unwrap_or(0),
        trigger,
        s("runId"),
    );
    for line in run["logs"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "  +{}ms {:<5} {:<6} {}\n",
            line["at"].as_u64().unwrap_or(0),
            line["level"].as_str().unwrap_or("info"),
            line["source"].as_str().unwrap_or("log"),
            line["message"].as_str().unwrap_or(""),
        ));
    }
    let dropped = run["logsDropped"].as_u64().unwrap_or(0);
    if dropped > 0 {
        text.push_str(&format!("  ({dropped} log lines or bytes dropped)\n"));
    }
    if let Some(error) = run.get("error").filter(|e| !e.is_null()) {
        text.push_str(&format!(
            "  error {}: {}\n",
            error["error"].as_str().unwrap_or("?"),
            error["message"].as_str().unwrap_or("")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_run_prints_its_header_lines_and_error() {
        let run = json!({"runId": "run-1", "automation": "sync", "status": "error",
            "startedAt": "2026-12-07T06:00:00.000Z", "duration": 12,
            "trigger": {"type": "event", "value": "orders.created"},
            "logs": [{"at": 3, "level": "warn", "source": "host", "message": "fetch refused"}],
            "logsDropped": 2, "error": {"error": "FetchError", "message": "denied"}});
        assert_eq!(
            format_run(&run),
            "2026-12-07T06:00:00.000Z sync error 12ms event:orders.created run-1\n  \
             +3ms warn  host   fetch refused\n  (2 log lines or bytes dropped)\n  \
             error FetchError: denied\n"
        );
    }
}
