//! Building a guest folder into a component, one room per language: the folder says which
//! (`Cargo.toml`: Rust, `package.json`: JavaScript or TypeScript, `pyproject.toml`: Python).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

/// The source language of a guest, as the upload names it (`x-refract-component-language`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Language {
    Rust,
    Js,
    Python,
}

impl Language {
    /// What a guest folder holds: `Cargo.toml` wins over `package.json`, which wins over
    /// `pyproject.toml`.
    pub(crate) fn of_folder(dir: &Path) -> anyhow::Result<Self> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Self::Rust)
        } else if dir.join("package.json").is_file() {
            Ok(Self::Js)
        } else if dir.join("pyproject.toml").is_file() {
            Ok(Self::Python)
        } else {
            bail!(
                "{} has no Cargo.toml (a Rust guest), package.json (a JavaScript or TypeScript guest) \
                 or pyproject.toml (a Python guest)",
                dir.display()
            )
        }
    }

    /// The header value.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Js => "js",
            Self::Python => "python",
        }
    }
}

/// The language a built `.wasm` says it was made from: ComponentizeJS writes
/// `processed-by: ComponentizeJS` in its producers section; componentize-py's producers name
/// only `wit-component` and `component-init-transform`, but its runtime module
/// (`componentize_py_runtime`) is named throughout the component. Rust otherwise.
pub(crate) fn language_of_component(wasm: &[u8]) -> &'static str {
    let has = |needle: &[u8]| wasm.windows(needle.len()).any(|w| w == needle);
    if has(b"ComponentizeJS") {
        Language::Js.header()
    } else if has(b"componentize_py_runtime") {
        Language::Python.header()
    } else {
        Language::Rust.header()
    }
}

/// Builds the guest in `dir` and returns its language and `.wasm`. `env` is the command's
/// environment (the Python build reads `REFRACT_PYTHON`, `VIRTUAL_ENV` and `PYTHONPATH`).
pub(crate) fn build(
    dir: &Path,
    env: &HashMap<String, String>,
) -> anyhow::Result<(Language, PathBuf)> {
    let language = Language::of_folder(dir)?;
    let wasm = match language {
        Language::Rust => rust(dir)?,
        Language::Js => js(dir)?,
        Language::Python => python(dir, env)?,
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

/// Where `refract-build` (the Python SDK's build) writes the component by default.
const PYTHON_OUTPUT: &str = "dist/component.wasm";

/// The componentize-py the Python SDK pins (guest-sdk/python/pyproject.toml).
pub(crate) const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// What the interpreter lacks, printed by a probe run before the build: `old` (before 3.10),
/// `refract` (the SDK), `componentize_py`.
const PYTHON_PROBE: &str = r#"import importlib.util as u, sys
missing = [] if sys.version_info >= (3, 10) else ['old']
for m in ('refract', 'componentize_py'):
    try:
        found = u.find_spec(m) is not None
    except Exception:
        found = False
    if not found:
        missing.append(m)
if 'refract' not in missing and u.find_spec('refract.build') is None:
    missing.append('refract')
print(' '.join(missing))
"#;

/// The interpreter that builds a Python guest: `REFRACT_PYTHON`, else the folder's `.venv`, else
/// the active virtualenv's (`VIRTUAL_ENV`), else `python3` on PATH.
/// A path is made absolute (against the command's own folder): the build runs in `dir`.
fn python_interpreter(dir: &Path, env: &HashMap<String, String>) -> PathBuf {
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let set = |k: &str| env.get(k).filter(|v| !v.trim().is_empty());
    if let Some(p) = set("REFRACT_PYTHON") {
        // A bare name (`python3.12`) is looked up on PATH; a path is a path.
        return if p.contains('/') {
            absolute(PathBuf::from(p))
        } else {
            PathBuf::from(p)
        };
    }
    let local = dir.join(".venv/bin/python");
    if local.is_file() {
        return absolute(local);
    }
    if let Some(venv) = set("VIRTUAL_ENV") {
        let p = Path::new(venv).join("bin/python");
        if p.is_file() {
            return absolute(p);
        }
    }
    PathBuf::from("python3")
}

/// `python -m refract.build` (the Python SDK's `refract-build`, which runs componentize-py);
/// the component it wrote at `dist/component.wasm`. Says which piece is missing first.
fn python(dir: &Path, env: &HashMap<String, String>) -> anyhow::Result<PathBuf> {
    let interpreter = python_interpreter(dir, env);
    let shown = interpreter.display();
    let command = |args: &[&str]| {
        let mut c = Command::new(&interpreter);
        c.args(args).current_dir(dir);
        if let Some(path) = env.get("PYTHONPATH") {
            c.env("PYTHONPATH", path);
        }
        c
    };
    let probe = match command(&["-c", PYTHON_PROBE]).output() {
        Ok(out) if out.status.success() => out,
        Ok(out) => bail!(
            "{shown} failed ({}): Python guests need Python 3.10+ (set REFRACT_PYTHON, or activate a virtualenv)\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(_) => bail!(
            "{shown} not found: Python guests need Python 3.10+ on PATH (or set REFRACT_PYTHON, or activate a virtualenv)"
        ),
    };
    let missing = String::from_utf8_lossy(&probe.stdout);
    let missing: Vec<&str> = missing.split_whitespace().collect();
    if missing.contains(&"old") {
        bail!("{shown} is older than Python 3.10: Python guests need 3.10+ (set REFRACT_PYTHON)");
    }
    if missing.contains(&"componentize_py") && missing.contains(&"refract") {
        bail!(
            "neither the Python SDK nor componentize-py is installed for {shown}: \
             pip install refract-sdk (from a checkout: pip install ./guest-sdk/python), which brings {COMPONENTIZE_PY}"
        );
    }
    if missing.contains(&"componentize_py") {
        bail!("componentize-py not installed for {shown}: pip install {COMPONENTIZE_PY}");
    }
    if missing.contains(&"refract") {
        bail!(
            "the Python SDK (import refract) is not installed for {shown}: \
             pip install refract-sdk (from a checkout: pip install ./guest-sdk/python)"
        );
    }

    eprintln!(
        "building {} (Python): {shown} -m refract.build (componentize-py) …",
        dir.display()
    );
    let wasm = dir.join(PYTHON_OUTPUT);
    match std::fs::remove_file(&wasm) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the old {}", wasm.display()));
        }
        _ => {}
    }
    let status = command(&["-m", "refract.build", "--quiet", "-o", PYTHON_OUTPUT])
        // The build's own output would go to stdout, which is the command's answer.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("running {shown}"))?;
    if !status.success() {
        bail!(
            "python -m refract.build failed in {} ({status})",
            dir.display()
        );
    }
    if !wasm.is_file() {
        bail!("python -m refract.build did not write {}", wasm.display());
    }
    Ok(wasm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary one.
    fn scratch() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("refract-build-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_folder_names_its_language_cargo_first_then_npm_then_python() {
        let dir = scratch();
        let language = || Language::of_folder(&dir);
        let err = language().unwrap_err().to_string();
        assert!(err.contains("pyproject.toml"), "{err}");
        std::fs::write(dir.join("pyproject.toml"), "").unwrap();
        assert_eq!(language().unwrap(), Language::Python);
        std::fs::write(dir.join("package.json"), "{}").unwrap();
        assert_eq!(language().unwrap(), Language::Js);
        std::fs::write(dir.join("Cargo.toml"), "").unwrap();
        assert_eq!(language().unwrap(), Language::Rust);
        assert_eq!(Language::Python.header(), "python");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_component_says_what_made_it() {
        assert_eq!(language_of_component(b"\0asm...wit-component"), "rust");
        assert_eq!(
            language_of_component(b"\0asm..processed-by..ComponentizeJS"),
            "js"
        );
        assert_eq!(
            language_of_component(b"\0asm..componentize_py_runtime.."),
            "python"
        );
    }

    #[test]
    fn a_python_build_says_what_is_missing() {
        let dir = scratch();
        std::fs::write(dir.join("pyproject.toml"), "[project]\nname = \"x\"\n").unwrap();
        let env: HashMap<String, String> = [(
            "REFRACT_PYTHON".to_owned(),
            dir.join("no-such-python").display().to_string(),
        )]
        .into();
        let err = build(&dir, &env).unwrap_err().to_string();
        assert!(
            err.contains("not found") && err.contains("REFRACT_PYTHON"),
            "{err}"
        );
        // A real interpreter without the SDK (an empty PYTHONPATH cannot bring it, and the
        // system's python3 has none): the message names what to install.
        let has_sdk = Command::new("python3")
            .args(["-c", "import refract.build"])
            .output()
            .is_ok_and(|o| o.status.success());
        if Command::new("python3").arg("--version").output().is_ok() && !has_sdk {
            let env: HashMap<String, String> =
                [("REFRACT_PYTHON".to_owned(), "python3".to_owned())].into();
            let err = build(&dir, &env).unwrap_err().to_string();
            assert!(err.contains("pip install"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
