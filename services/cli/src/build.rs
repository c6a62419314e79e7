//! Building a guest folder into a component, one room per language: the folder says which
//! (`Cargo.toml`: Rust, `package.json`: JavaScript or TypeScript).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

/// The source language of a guest, as the upload names it (`x-refract-component-language`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Language {
    Rust,
    Js,
}

impl Language {
    /// What a guest folder holds: `Cargo.toml` wins over `package.json`.
    pub(crate) fn of_folder(dir: &Path) -> anyhow::Result<Self> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Self::Rust)
        } else if dir.join("package.json").is_file() {
            Ok(Self::Js)
        } else {
            bail!(
                "{} has neither a Cargo.toml (a Rust guest) nor a package.json (a JavaScript or TypeScript guest)",
                dir.display()
            )
        }
    }

    /// The header value.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Js => "js",
        }
    }
}

/// The language a built `.wasm` names in its producers section (ComponentizeJS writes
/// `processed-by: ComponentizeJS`); Rust otherwise.
pub(crate) fn language_of_component(wasm: &[u8]) -> &'static str {
    let has = |needle: &[u8]| wasm.windows(needle.len()).any(|w| w == needle);
    if has(b"ComponentizeJS") {
        Language::Js.header()
    } else {
        Language::Rust.header()
    }
}

/// Builds the guest in `dir` and returns its language and `.wasm`.
pub(crate) fn build(dir: &Path) -> anyhow::Result<(Language, PathBuf)> {
    let language = Language::of_folder(dir)?;
    let wasm = match language {
        Language::Rust => rust(dir)?,
        Language::Js => js(dir)?,
    };
    Ok((language, wasm))
}

/// `cargo build --release --target wasm32-wasip2`; the crate's `.wasm` from cargo's messages.
fn rust(dir: &Path) -> anyhow::Result<PathBuf> {
    eprintln!(
        "building {} (Rust): cargo build --release --target wasm32-wasip2 …",
        dir.display()
    );
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()
        .context(
            "running cargo (is the Rust toolchain installed? `rustup target add wasm32-wasip2`)",
        )?;
    if !output.status.success() {
        bail!("cargo build failed in {}", dir.display());
    }
    let manifest = std::fs::canonicalize(dir.join("Cargo.toml"))
        .with_context(|| format!("{} has no Cargo.toml", dir.display()))?;
    let mut found = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact"
            || message["manifest_path"].as_str() != manifest.to_str()
        {
            continue;
        }
        if let Some(files) = message["filenames"].as_array() {
            found = files
                .iter()
                .filter_map(Value::as_str)
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
                .or(found);
        }
    }
    found.context("the build produced no .wasm: is the crate a cdylib?")
}

/// Where `refract-build` (the JavaScript SDK's build) writes the component by default.
const JS_OUTPUT: &str = "dist/component.wasm";

/// `npm run build` (the package's `build` script, `refract-build` from `@refract/sdk`); the
/// component it wrote at `dist/component.wasm`.
fn js(dir: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(dir.join("package.json"))
        .with_context(|| format!("reading {}", dir.join("package.json").display()))?;
    let package: Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", dir.join("package.json").display()))?;
    if package["scripts"]["build"].as_str().is_none() {
        bail!(
            "{} has no \"build\" script: add \"scripts\": {{\"build\": \"refract-build\"}} (from @refract/sdk)",
            dir.join("package.json").display()
        );
    }
    let has_dependencies = ["dependencies", "devDependencies"]
        .iter()
        .any(|k| package[k].as_object().is_some_and(|m| !m.is_empty()));
    if has_dependencies && !dir.join("node_modules").is_dir() {
        bail!(
            "{} has no node_modules: run `npm ci` (or `npm install`) in {} first",
            dir.display(),
            dir.display()
        );
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => bail!("node not found: JavaScript and TypeScript guests need Node.js 20+ on PATH"),
    }

    eprintln!("building {} (JavaScript): npm run build …", dir.display());
    // Removed first, so the file found after the build is the one it wrote.
    let wasm = dir.join(JS_OUTPUT);
    match std::fs::remove_file(&wasm) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the old {}", wasm.display()));
        }
        _ => {}
    }
    let status = Command::new("npm")
        .args(["run", "build"])
        .current_dir(dir)
        // npm's own output (the script line) would go to stdout, which is the command's answer.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .context("running npm (is npm on PATH? it comes with Node.js)")?;
    if !status.success() {
        bail!("npm run build failed in {} ({status})", dir.display());
    }
    if !wasm.is_file() {
        bail!(
            "npm run build did not write {}: the build script should run refract-build (from @refract/sdk)",
            wasm.display()
        );
    }
    Ok(wasm)
}
