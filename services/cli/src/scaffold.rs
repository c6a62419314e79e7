//! `refract new <rust|js|ts|python> NAME`: a ready-to-deploy automation folder, made from the
//! webhook-echo example of the language (its handler is compiled into this binary, so the
//! command works without the repository's checkout).
//!
//! The SDK dependency: the Rust SDK (`refract-sdk`) is not on crates.io, so a Rust folder depends
//! on it by path (`--sdk-path`, default: the checkout this binary was built from, when it is
//! still there) or by git (`--sdk-git`). A JavaScript/TypeScript folder depends on
//! `@refract/sdk` and a Python one on `refract-sdk` by version (their registries' names), or on
//! a local copy of the SDK with `--sdk-path`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::json;

/// The language of a new automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    /// A Rust crate (`cargo build --target wasm32-wasip2`).
    Rust,
    /// A JavaScript package (`npm run build`: esbuild and ComponentizeJS).
    Js,
    /// A TypeScript package (the same build).
    Ts,
    /// A Python project (`python -m refract.build`: componentize-py).
    Python,
}

/// What `refract new` makes.
#[derive(Debug, Clone)]
pub struct New {
    /// The language.
    pub language: Language,
    /// The automation's slug and folder name.
    pub name: String,
    /// The folder the new folder goes in.
    pub parent: PathBuf,
    /// A local copy of the SDK to depend on: `guest-sdk` (Rust), `guest-sdk/js` (JavaScript,
    /// TypeScript) or `guest-sdk/python` (Python) of a checkout.
    pub sdk_path: Option<PathBuf>,
    /// A git repository holding the Rust SDK (`guest-sdk` of this repository), for Rust.
    pub sdk_git: Option<String>,
}

/// The SDK versions the templates name (the packages' own versions).
const JS_SDK_VERSION: &str = "0.1.0";
const PYTHON_SDK_VERSION: &str = "0.1.0";

const RUST_HANDLER: &str = include_str!("../../../guest-sdk/examples/webhook-echo/src/lib.rs");
const JS_HANDLER: &str = include_str!("../../../guest-sdk/js/examples/webhook-echo/src/index.js");
const TS_HANDLER: &str = include_str!("../templates/webhook-echo.ts");
const PYTHON_HANDLER: &str = include_str!("../../../guest-sdk/python/examples/webhook-echo/app.py");

/// The checkout this binary was built from (its Rust SDK), if it is still there.
fn built_from_checkout() -> Option<PathBuf> {
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk");
    sdk.join("Cargo.toml")
        .is_file()
        .then(|| sdk.canonicalize().ok())
        .flatten()
}

/// A name that is a slug, a crate, an npm package and a Python project name at once.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !ok {
        bail!(
            "{name:?} cannot name an automation: use 1 to 64 lower-case letters, digits and single dashes, starting with a letter (e.g. order-webhook)"
        );
    }
    Ok(())
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The manifest `refract deploy` reads.
fn manifest(name: &str, language: &str) -> String {
    format!(
        "# `refract deploy .` creates (or updates) the automation {name} from this manifest.\n\
         slug = {slug}\n\
         name = {name_value}\n\
         description = \"Answers a webhook with its method, path, query and JSON body ({language}).\"\n\
         \n\
         [when]\n\
         endpoint = true\n\
         \n\
         # [config]        # what the handler reads as its config\n\
         # [limits]        # memoryMiB, timeoutMs\n",
        slug = toml_string(name),
        name_value = toml_string(name),
    )
}

fn readme(name: &str, build: &str, prerequisites: &str) -> String {
    format!(
        "# {name}\n\n\
         A Refract automation made by `refract new`: it answers its webhook with the request's\n\
         method, path, query and JSON body.\n\n\
         {prerequisites}\n\n\
         ```sh\n\
         {build}\n\
         refract deploy .          # builds, creates the automation {name}, uploads; prints the webhook URL\n\
         ```\n\n\
         `refract.toml` holds the automation's slug, triggers and config.\n"
    )
}

/// The files of a new automation, relative to its folder.
fn files(new: &New) -> anyhow::Result<Vec<(&'static str, String)>> {
    let name = new.name.as_str();
    let sdk_path = |what: &str, marker: &str| -> anyhow::Result<Option<String>> {
        let Some(p) = &new.sdk_path else {
            return Ok(None);
        };
        let p = p
            .canonicalize()
            .with_context(|| format!("--sdk-path {}", p.display()))?;
        if !p.join(marker).is_file() {
            bail!(
                "--sdk-path {} is not the {what} (no {marker} there)",
                p.display()
            );
        }
        Ok(Some(p.display().to_string()))
    };
    Ok(match new.language {
        Language::Rust => {
            let dependency = match (
                &new.sdk_git,
                sdk_path("Rust SDK (guest-sdk)", "Cargo.toml")?,
            ) {
                (Some(_), Some(_)) => bail!("pass --sdk-path or --sdk-git, not both"),
                (Some(git), None) => format!("{{ git = {} }}", toml_string(git)),
                (None, Some(path)) => format!("{{ path = {} }}", toml_string(&path)),
                (None, None) => match built_from_checkout() {
                    Some(path) => {
                        format!("{{ path = {} }}", toml_string(&path.display().to_string()))
                    }
                    None => bail!(
                        "refract-sdk is not on crates.io: pass --sdk-path <checkout>/guest-sdk or --sdk-git <URL of the Refract repository>"
                    ),
                },
            };
            let cargo = format!(
                "[package]\n\
                 name = {package}\n\
                 version = \"0.1.0\"\n\
                 edition = \"2024\"\n\
                 publish = false\n\
                 \n\
                 [lib]\n\
                 crate-type = [\"cdylib\"]          # a component, not a Rust library\n\
                 \n\
                 [dependencies]\n\
                 refract-sdk = {dependency}   # keep the name: the macro uses it\n\
                 serde = {{ version = \"1\", features = [\"derive\"] }}\n\
                 serde_json = \"1\"\n\
                 \n\
                 # Its own workspace, even when made inside another one.\n\
                 [workspace]\n\
                 \n\
                 # Small components.\n\
                 [profile.release]\n\
                 opt-level = \"s\"\n\
                 lto = true\n\
                 codegen-units = 1\n\
                 strip = true\n",
                package = toml_string(name),
            );
            vec![
                ("Cargo.toml", cargo),
                ("src/lib.rs", RUST_HANDLER.to_owned()),
                ("refract.toml", manifest(name, "Rust")),
                (".gitignore", "target/\n".to_owned()),
                (
                    "README.md",
                    readme(
                        name,
                        "cargo build --target wasm32-wasip2 --release   # or let refract deploy build it",
                        "Needs Rust with the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`).",
                    ),
                ),
            ]
        }
        Language::Js | Language::Ts => {
            let ts = new.language == Language::Ts;
            let dependency = match sdk_path("JavaScript SDK (guest-sdk/js)", "package.json")? {
                Some(path) => format!("file:{path}"),
                None => JS_SDK_VERSION.to_owned(),
            };
            let package = json!({
                "name": name,
                "version": "0.1.0",
                "private": true,
                "type": "module",
                "scripts": { "build": "refract-build" },
                "dependencies": { "@refract/sdk": dependency },
            });
            let mut files = vec![
                ("package.json", format!("{:#}\n", package)),
                (
                    if ts { "src/index.ts" } else { "src/index.js" },
                    if ts { TS_HANDLER } else { JS_HANDLER }.to_owned(),
                ),
                (
                    "refract.toml",
                    manifest(name, if ts { "TypeScript" } else { "JavaScript" }),
                ),
                (".gitignore", "node_modules/\ndist/\n".to_owned()),
                (
                    "README.md",
                    readme(
                        name,
                        "npm install\nnpm run build             # dist/component.wasm",
                        "Needs Node.js 20+.",
                    ),
                ),
            ];
            if ts {
                let tsconfig = json!({
                    "compilerOptions": {
                        "target": "ES2022", "module": "ES2022", "moduleResolution": "bundler",
                        "strict": true, "noEmit": true, "skipLibCheck": true,
                    },
                    "include": ["src"],
                });
                files.push(("tsconfig.json", format!("{:#}\n", tsconfig)));
            }
            files
        }
        Language::Python => {
            let dependency = match sdk_path("Python SDK (guest-sdk/python)", "pyproject.toml")? {
                Some(path) => format!("refract-sdk @ file://{path}"),
                None => format!("refract-sdk=={PYTHON_SDK_VERSION}"),
            };
            let pyproject = format!(
                "[project]\n\
                 name = {project}\n\
                 version = \"0.1.0\"\n\
                 requires-python = \">=3.10\"\n\
                 # refract deploy runs `python -m refract.build` here; the SDK brings componentize-py.\n\
                 dependencies = [{dependency}]\n\
                 \n\
                 [tool.refract]\n\
                 # The module defining handler(inv).\n\
                 module = \"app\"\n",
                project = toml_string(name),
                dependency = toml_string(&dependency),
            );
            vec![
                ("pyproject.toml", pyproject),
                ("app.py", PYTHON_HANDLER.to_owned()),
                ("refract.toml", manifest(name, "Python")),
                (".gitignore", ".venv/\ndist/\n__pycache__/\n".to_owned()),
                (
                    "README.md",
                    readme(
                        name,
                        "python3 -m venv .venv && .venv/bin/pip install -e .   # the SDK and componentize-py\n\
                         .venv/bin/refract-build   # dist/component.wasm",
                        "Needs Python 3.10+.",
                    ),
                ),
            ]
        }
    })
}

/// Writes the new automation's folder; returns its path. Refuses a folder that exists.
pub fn new(new: &New) -> anyhow::Result<PathBuf> {
    check_name(&new.name)?;
    if new.sdk_git.is_some() && new.language != Language::Rust {
        bail!("--sdk-git names the Rust SDK's repository: it is for `refract new rust` only");
    }
    let files = files(new)?;
    let dir = new.parent.join(&new.name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

/// What to do next, for the terminal.
pub fn next_steps(language: Language, dir: &Path) -> String {
    let d = dir.display();
    let build = match language {
        Language::Rust => "rustup target add wasm32-wasip2   # once".to_owned(),
        Language::Js | Language::Ts => format!("npm install --prefix {d}"),
        Language::Python => format!(
            "python3 -m venv {d}/.venv && {d}/.venv/bin/pip install -e {d}   # the SDK and componentize-py"
        ),
    };
    format!("created {d}\nnext:\n  {build}\n  refract deploy {d}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system's temporary one.
    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "refract-new-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn make(language: Language, parent: &Path, sdk_path: Option<PathBuf>) -> PathBuf {
        new(&New {
            language,
            name: "order-hook".into(),
            parent: parent.to_path_buf(),
            sdk_path,
            sdk_git: None,
        })
        .unwrap()
    }

    fn manifest_of(dir: &Path) -> crate::deploy::Manifest {
        toml::from_str(&std::fs::read_to_string(dir.join("refract.toml")).unwrap()).unwrap()
    }

    #[test]
    fn each_language_gets_a_deployable_folder() {
        let parent = scratch("all");
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for (language, sdk, marker, handler) in [
            (Language::Rust, "guest-sdk", "Cargo.toml", "src/lib.rs"),
            (Language::Js, "guest-sdk/js", "package.json", "src/index.js"),
            (Language::Ts, "guest-sdk/js", "package.json", "src/index.ts"),
            (
                Language::Python,
                "guest-sdk/python",
                "pyproject.toml",
                "app.py",
            ),
        ] {
            let within = parent.join(format!("{language:?}"));
            std::fs::create_dir(&within).unwrap();
            let dir = make(language, &within, None);
            assert_eq!(dir, within.join("order-hook"));
            let m = manifest_of(&dir);
            assert_eq!(
                (m.slug.as_str(), m.name.as_str()),
                ("order-hook", "order-hook")
            );
            assert_eq!(
                m.when.unwrap()["endpoint"],
                toml::Value::Boolean(true),
                "{language:?}"
            );
            assert!(dir.join(marker).is_file() && dir.join(handler).is_file());
            // The folder's language is the one asked for.
            let built_as = crate::build::Language::of_folder(&dir).unwrap().header();
            let expected = match language {
                Language::Rust => "rust",
                Language::Js | Language::Ts => "js",
                Language::Python => "python",
            };
            assert_eq!(built_as, expected);
            // The SDK dependency, by default and with --sdk-path.
            let text = std::fs::read_to_string(dir.join(marker)).unwrap();
            match language {
                Language::Rust => {
                    let cargo: toml::Table = toml::from_str(&text).unwrap();
                    let path = cargo["dependencies"]["refract-sdk"]["path"]
                        .as_str()
                        .unwrap();
                    assert!(Path::new(path).join("Cargo.toml").is_file(), "{path}");
                    assert_eq!(cargo["lib"]["crate-type"][0].as_str(), Some("cdylib"));
                    assert!(cargo.contains_key("workspace"));
                }
                Language::Js | Language::Ts => {
                    let package: serde_json::Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(package["dependencies"]["@refract/sdk"], JS_SDK_VERSION);
                    assert_eq!(package["scripts"]["build"], "refract-build");
                }
                Language::Python => {
                    let pyproject: toml::Table = toml::from_str(&text).unwrap();
                    assert_eq!(
                        pyproject["project"]["dependencies"][0].as_str(),
                        Some("refract-sdk==0.1.0")
                    );
                    assert_eq!(pyproject["tool"]["refract"]["module"].as_str(), Some("app"));
                }
            }
            let local = scratch("local");
            let dir = make(language, &local, Some(repo.join(sdk)));
            let text = std::fs::read_to_string(dir.join(marker)).unwrap();
            let sdk = repo.join(sdk).canonicalize().unwrap().display().to_string();
            assert!(text.contains(&sdk), "{language:?} depends on {sdk}: {text}");
            std::fs::remove_dir_all(local).unwrap();
        }
        std::fs::remove_dir_all(parent).unwrap();
    }

    #[test]
    fn bad_names_sdk_paths_and_existing_folders_are_refused() {
        let parent = scratch("bad");
        for name in [
            "",
            "Order",
            "1st",
            "a_b",
            "a--b",
            "a-",
            "../x",
            &"x".repeat(65),
        ] {
            let err = new(&New {
                language: Language::Python,
                name: name.into(),
                parent: parent.clone(),
                sdk_path: None,
                sdk_git: None,
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("cannot name an automation"), "{name:?}: {err}");
        }
        make(Language::Js, &parent, None);
        let again = new(&New {
            language: Language::Js,
            name: "order-hook".into(),
            parent: parent.clone(),
            sdk_path: None,
            sdk_git: None,
        })
        .unwrap_err()
        .to_string();
        assert!(again.contains("already exists"), "{again}");
        let wrong = new(&New {
            language: Language::Rust,
            name: "other".into(),
            parent: parent.clone(),
            sdk_path: Some(parent.clone()),
            sdk_git: None,
        })
        .unwrap_err()
        .to_string();
        assert!(wrong.contains("is not the Rust SDK"), "{wrong}");
        assert!(!parent.join("other").exists(), "nothing written on error");
        let both = new(&New {
            language: Language::Rust,
            name: "other".into(),
            parent: parent.clone(),
            sdk_path: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk")),
            sdk_git: Some("https://example.org/refract.git".into()),
        })
        .unwrap_err()
        .to_string();
        assert!(both.contains("not both"), "{both}");
        std::fs::remove_dir_all(parent).unwrap();
    }
}
