//! `refract export` and `refract import`: a workspace as a zip (`GET …/export`, owners only)
//! and an export (zip, or a single-file `runtime.yml`) into a workspace (`POST …/import`,
//! streamed with a progress bar). An import that left files out prints its report and fails.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Call, Console, ExportArgs, ImportArgs, segment};
use crate::output;
use crate::progress;

/// `POST …/import`'s report, the members the CLI prints.
#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    imported: Vec<String>,
    #[serde(default)]
    skipped: Vec<Skipped>,
    #[serde(default)]
    errors: Vec<FileError>,
}

/// A file read but not imported, with why.
#[derive(Deserialize)]
struct Skipped {
    path: String,
    #[serde(default)]
    reason: String,
}

/// A file that failed, with the rule it broke.
#[derive(Deserialize)]
struct FileError {
    path: String,
    error: String,
    #[serde(default)]
    message: String,
}

/// `refract export`.
pub(super) async fn export(args: ExportArgs, console: &mut Console<'_>) -> anyhow::Result<()> {
    let json = args.at.conn.json;
    let call = Call::new(console, &args.at.conn, args.at.workspace.as_deref())?;
    let api = call.api()?;
    let ws = call.workspace()?.to_owned();
    let to_stdout = args.output.as_deref() == Some(Path::new("-"));
    if to_stdout && json {
        bail!("--json and `-o -` both print on stdout: write the zip to a file");
    }
    let zip = api
        .download(&format!("/v2/workspaces/{}/export", segment(&ws)))
        .await?;
    if to_stdout {
        console.stdout.write_all(&zip)?;
        return console.stdout.flush().map_err(Into::into);
    }
    let path = match args.output {
        Some(path) => {
            std::fs::write(&path, &zip).with_context(|| format!("writing {}", path.display()))?;
            path
        }
        None => {
            let path = std::path::PathBuf::from(format!("{ws}.zip"));
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .with_context(|| format!("creating {} (choose another with -o)", path.display()))?;
            file.write_all(&zip)
                .with_context(|| format!("writing {}", path.display()))?;
            path
        }
    };
    if json {
        return output::json(
            console.stdout,
            &json!({"workspace": ws, "path": path, "bytes": zip.len()}),
        );
    }
    writeln!(
        console.stdout,
        "Exported workspace {ws} to {} ({} bytes).",
        path.display(),
        zip.len()
    )?;
    Ok(())
}

/// `refract import`.
pub(super) async fn import(args: ImportArgs, console: &mut Console<'_>) -> anyhow::Result<()> {
    let call = Call::new(console, &args.at.conn, args.at.workspace.as_deref())?;
    let api = call.api()?;
    let ws = call.workspace()?.to_owned();
    let content_type = match args
        .file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("yml" | "yaml") => "application/yaml",
        _ => "application/zip",
    };
    let label = format!("importing {}", args.file.display());
    let (upload, bar) =
        progress::upload_file(&args.file, content_type, &label, console.progress).await?;
    let answer: anyhow::Result<Value> = api
        .upload(
            Method::POST,
            &format!("/v2/workspaces/{}/import", segment(&ws)),
            upload,
        )
        .await;
    bar.finish_and_clear();
    let answer = answer?;
    let report = Report::deserialize(&answer).context("the import's report")?;
    let out = &mut *console.stdout;
    if args.at.conn.json {
        output::json(out, &answer)?;
    } else {
        writeln!(
            out,
            "Imported {} file(s) into workspace {ws}.",
            report.imported.len()
        )?;
        for path in &report.imported {
            writeln!(out, "  imported {path}")?;
        }
        for s in &report.skipped {
            writeln!(out, "  skipped  {}: {}", s.path, s.reason)?;
        }
        for e in &report.errors {
            writeln!(out, "  failed   {}: {}: {}", e.path, e.error, e.message)?;
        }
    }
    if !report.errors.is_empty() {
        bail!(
            "{} file(s) of {} were not imported",
            report.errors.len(),
            args.file.display()
        );
    }
    Ok(())
}
