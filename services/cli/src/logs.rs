//! `refract logs`: the runs of a workspace and their logs, as the platform recorded them
//! (`GET /v2/workspaces/{id}/runs`, then each run whole), oldest first; `--follow` keeps
//! printing runs as they are recorded.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

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

/// Prints the last runs of the workspace to `out`, then, with `follow`, the new ones as they
/// come.
pub async fn logs(args: &Logs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut runs = list(&client, args, &[("limit", args.last.to_string())]).await?;
    runs.reverse();
    let mut cursor = None;
    for summary in &runs {
        print_run(&client, args, summary, out).await?;
        cursor = summary["recordId"].as_str().map(str::to_owned);
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let mut query = vec![("limit", "100".to_owned())];
        if let Some(c) = &cursor {
            query.push(("afterId", c.clone()));
        }
        let new = list(&client, args, &query).await?;
        // Without a cursor yet the page is newest first; with one, oldest first.
        let new: Vec<Value> = if cursor.is_none() {
            new.into_iter().rev().collect()
        } else {
            new
        };
        for summary in &new {
            print_run(&client, args, summary, out).await?;
            cursor = summary["recordId"].as_str().map(str::to_owned);
        }
    }
}

async fn get(
    client: &reqwest::Client,
    args: &Logs,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Value> {
    let url = format!(
        "{}/v2/workspaces/{}/{path}",
        args.url.trim_end_matches('/'),
        args.workspace
    );
    let url = reqwest::Url::parse_with_params(&url, query)
        .with_context(|| format!("the platform URL {}", args.url))?;
    let res = client
        .get(url.clone())
        .bearer_auth(&args.token)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("GET {url}: {status} {body}");
    }
    Ok(body)
}

async fn list(
    client: &reqwest::Client,
    args: &Logs,
    query: &[(&str, String)],
) -> anyhow::Result<Vec<Value>> {
    let mut query = query.to_vec();
    if let Some(a) = &args.automation {
        query.push(("automation", a.clone()));
    }
    let body = get(client, args, "runs", &query).await?;
    Ok(body["result"]["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

async fn print_run(
    client: &reqwest::Client,
    args: &Logs,
    summary: &Value,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let Some(id) = summary["runId"].as_str() else {
        return Ok(());
    };
    let run = get(client, args, &format!("runs/{id}"), &[]).await?;
    out.write_all(format_run(&run).as_bytes())?;
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
