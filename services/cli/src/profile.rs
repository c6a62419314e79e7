//! Where the CLI's platform, token and workspace come from: flags, then the environment
//! (`REFRACT_URL`, `REFRACT_TOKEN`, `REFRACT_WORKSPACE`), then the profile `refract login`
//! writes: a TOML file at `$REFRACT_CLI_CONFIG`, else `$XDG_CONFIG_HOME/refract/cli.toml`,
//! else `~/.config/refract/cli.toml`, readable by its owner only (mode 0600).
//!
//! The profile's token and default workspace belong to the profile's URL: a command aimed at
//! another platform (`--url`, `REFRACT_URL`) never sends it that token.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The platform's URL when none is given anywhere: `refract serve`'s default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";

/// The environment variable naming the profile file. `REFRACT_CONFIG` is the platform's own
/// settings file (`refract serve`), which the CLI must never overwrite.
pub const PROFILE_ENV: &str = "REFRACT_CLI_CONFIG";

/// What `refract login` stores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The platform's base URL.
    pub url: String,
    /// The personal access token the CLI calls it with.
    pub token: String,
    /// The token's id, to revoke it (`refract logout --revoke`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// When the token stops working (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The account that logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The workspace commands use when none is given (`refract workspaces use`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

/// The profile file's path in the environment `env`.
pub fn path(env: &HashMap<String, String>) -> anyhow::Result<PathBuf> {
    let var = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
    if let Some(p) = var(PROFILE_ENV) {
        return Ok(PathBuf::from(p));
    }
    if let Some(dir) = var("XDG_CONFIG_HOME") {
        return Ok(Path::new(dir).join("refract").join("cli.toml"));
    }
    match var("HOME") {
        Some(home) => Ok(Path::new(home).join(".config/refract/cli.toml")),
        None => bail!("no place for the CLI's profile: set {PROFILE_ENV}, XDG_CONFIG_HOME or HOME"),
    }
}

impl Profile {
    /// The profile at `path`, or `None` when there is no file.
    pub fn load(path: &Path) -> anyhow::Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        toml::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a refract CLI profile", path.display()))
    }

    /// Writes the profile to `path` (its folder created if need be), readable and writable by
    /// its owner only, replacing the file whole.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = format!(
            "# Written by `refract login`: the token below acts as {}.\n{}",
            self.email.as_deref().unwrap_or("you"),
            toml::to_string(self).context("encoding the profile")?
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let _ = std::fs::remove_file(&tmp);
        let mut file = private_file(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(file);
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// Removes the profile at `path`; whether there was one.
    pub fn remove(path: &Path) -> anyhow::Result<bool> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// The platform, credentials and workspace one command uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The platform's base URL, without a trailing `/`.
    pub url: String,
    /// The bearer token, when one is known for that URL.
    pub token: Option<String>,
    /// The workspace id, when one is known for that URL.
    pub workspace: Option<String>,
}

/// What the command line gave (each `None` when absent).
#[derive(Debug, Clone, Default)]
pub struct Given {
    /// `--url`.
    pub url: Option<String>,
    /// `--token`.
    pub token: Option<String>,
    /// `--workspace`.
    pub workspace: Option<String>,
}

/// Resolves each of URL, token and workspace: the flag, else its environment variable, else
/// the profile (token and workspace only when the URL is the profile's); the URL defaults to
/// [`DEFAULT_URL`].
pub fn resolve(given: &Given, env: &HashMap<String, String>, profile: Option<&Profile>) -> Target {
    let pick = |flag: &Option<String>, var: &str| {
        flag.clone()
            .or_else(|| env.get(var).cloned())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let url = pick(&given.url, "REFRACT_URL")
        .or_else(|| profile.map(|p| p.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let url = url.trim_end_matches('/').to_owned();
    let same = profile.filter(|p| p.url.trim_end_matches('/') == url);
    Target {
        token: pick(&given.token, "REFRACT_TOKEN").or_else(|| same.map(|p| p.token.clone())),
        workspace: pick(&given.workspace, "REFRACT_WORKSPACE")
            .or_else(|| same.and_then(|p| p.workspace.clone())),
        url,
    }
}

impl Target {
    /// The token, or the error that says how to get one.
    pub fn require_token(&self) -> anyhow::Result<&str> {
        self.token.as_deref().with_context(|| {
            format!(
                "not logged in to {}: run `refract login` or set REFRACT_TOKEN",
                self.url
            )
        })
    }

    /// The workspace, or the error that says how to name one.
    pub fn require_workspace(&self) -> anyhow::Result<&str> {
        self.workspace.as_deref().context(
            "no workspace: pass --workspace ID, set REFRACT_WORKSPACE or run `refract workspaces use ID`",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn profile() -> Profile {
        Profile {
            url: "https://a.example".into(),
            token: "at:profile".into(),
            workspace: Some("ws-profile".into()),
            ..Profile::default()
        }
    }

    #[test]
    fn the_profile_path_follows_the_environment() {
        let p = |pairs: &[(&str, &str)]| path(&env(pairs)).unwrap();
        assert_eq!(
            p(&[("REFRACT_CLI_CONFIG", "/x/p.toml"), ("HOME", "/h")]),
            PathBuf::from("/x/p.toml")
        );
        assert_eq!(
            p(&[("XDG_CONFIG_HOME", "/xdg"), ("HOME", "/h")]),
            PathBuf::from("/xdg/refract/cli.toml")
        );
        assert_eq!(
            p(&[("HOME", "/h")]),
            PathBuf::from("/h/.config/refract/cli.toml")
        );
        assert!(path(&env(&[])).is_err());
    }

    #[test]
    fn flags_beat_the_environment_which_beats_the_profile() {
        let given = Given {
            token: Some("flag".into()),
            ..Given::default()
        };
        let e = env(&[
            ("REFRACT_TOKEN", "env"),
            ("REFRACT_WORKSPACE", "ws-env"),
            ("REFRACT_URL", "https://a.example/"),
        ]);
        let t = resolve(&given, &e, Some(&profile()));
        assert_eq!(t.url, "https://a.example");
        assert_eq!(t.token.as_deref(), Some("flag"));
        assert_eq!(t.workspace.as_deref(), Some("ws-env"));
        let t = resolve(&Given::default(), &env(&[]), Some(&profile()));
        assert_eq!(
            t,
            Target {
                url: "https://a.example".into(),
                token: Some("at:profile".into()),
                workspace: Some("ws-profile".into()),
            }
        );
    }

    #[test]
    fn the_profile_token_never_goes_to_another_platform() {
        let given = Given {
            url: Some("https://b.example".into()),
            ..Given::default()
        };
        let t = resolve(&given, &env(&[]), Some(&profile()));
        assert_eq!(t.token, None);
        assert_eq!(t.workspace, None);
        let e = t.require_token().unwrap_err().to_string();
        assert_eq!(
            e,
            "not logged in to https://b.example: run `refract login` or set REFRACT_TOKEN"
        );
        let t = resolve(&Given::default(), &env(&[]), None);
        assert_eq!(t.url, DEFAULT_URL);
    }

    #[cfg(unix)]
    #[test]
    fn a_saved_profile_is_private_and_loads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("refract-profile-{}", std::process::id()));
        let path = dir.join("nested/cli.toml");
        let mut p = profile();
        p.email = Some("ada@example.com".into());
        p.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Profile::load(&path).unwrap(), Some(p.clone()));
        p.workspace = None;
        p.save(&path).unwrap();
        assert_eq!(Profile::load(&path).unwrap(), Some(p));
        assert!(Profile::remove(&path).unwrap());
        assert!(!Profile::remove(&path).unwrap());
        assert_eq!(Profile::load(&path).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
