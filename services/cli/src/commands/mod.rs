//! The `refract` commands that call a platform over its HTTP API: `login`, `logout`,
//! `workspaces list|create|use`, `automations list|get|apply|versions|rollback`, `export`,
//! `import`, `deploy` and `logs`.
//!
//! Each runs against a [`Console`] (its environment, stdin and stdout), so tests run them in
//! process with [`run_api_command`] exactly as the binary runs them. With `--json` a command
//! prints the API's JSON answer as one document on stdout; otherwise tables and short lines.
//! API errors come back as [`ApiError`](crate::api::ApiError) values, which the binary prints
//! as `error: <Code>: <message>` on stderr before exiting non-zero.

mod automations;
mod login;
mod transfer;
mod workspaces;

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::api::{Api, ApiError};
use crate::profile::{self, Given, Profile, Target};

/// What a command reads and writes besides the network.
pub struct Console<'a> {
    /// The environment (`REFRACT_URL`, `REFRACT_TOKEN`, `REFRACT_WORKSPACE`,
    /// `REFRACT_CLI_CONFIG`, `XDG_CONFIG_HOME`, `HOME`).
    pub env: HashMap<String, String>,
    /// Where `--password-stdin` reads the password.
    pub stdin: &'a mut (dyn BufRead + Send),
    /// Where results go.
    pub stdout: &'a mut (dyn Write + Send),
    /// Whether stdin is a terminal: a password is then read from it without echo.
    pub stdin_is_terminal: bool,
    /// Whether to draw progress bars on stderr (stderr is a terminal).
    pub progress: bool,
}

/// Where to call and how to print, common to every API command.
#[derive(Args, Debug, Clone, Default)]
pub struct Connection {
    /// The platform's URL [else REFRACT_URL, else the login's, else http://127.0.0.1:3000].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// A personal access token, session token or API key [else REFRACT_TOKEN, else the
    /// login's].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Print the API's JSON answer (one document on stdout) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// [`Connection`] and the workspace a command acts in.
#[derive(Args, Debug, Clone, Default)]
pub struct InWorkspace {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub conn: Connection,
    /// The workspace id [else REFRACT_WORKSPACE, else the one `refract workspaces use` set].
    #[arg(long, short = 'w', value_name = "ID")]
    pub workspace: Option<String>,
}

/// `refract login`.
#[derive(Args, Debug, Clone)]
pub struct LoginArgs {
    /// The platform's URL [else REFRACT_URL, else the last login's, else
    /// http://127.0.0.1:3000].
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The account's email (asked for on a terminal when absent).
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from stdin's first line (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
    /// Name of the personal access token created for the CLI [default: "refract CLI
    /// <date>"].
    #[arg(long, value_name = "NAME")]
    pub token_name: Option<String>,
    /// Days until that token expires.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u16).range(1..=366))]
    pub days: u16,
    /// Print the new token's description (never its value) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `refract logout`.
#[derive(Args, Debug, Clone)]
pub struct LogoutArgs {
    /// Also revoke the stored token on the platform: a personal access token cannot revoke
    /// itself, so this logs in with the account's password first.
    #[arg(long)]
    pub revoke: bool,
    /// With --revoke: read the password from stdin's first line.
    #[arg(long, requires = "revoke")]
    pub password_stdin: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `refract workspaces …`.
#[derive(Subcommand, Debug, Clone)]
pub enum WorkspacesCommand {
    /// The workspaces you belong to.
    List(Connection),
    /// Create a workspace, of which you become the owner.
    Create {
        /// Its display name.
        name: String,
        /// Its slug (generated when absent).
        #[arg(long)]
        slug: Option<String>,
        /// Also make it the default workspace of the stored login.
        #[arg(long = "use")]
        use_it: bool,
        #[command(flatten)]
        #[allow(missing_docs)]
        conn: Connection,
    },
    /// Make a workspace the default of the stored login.
    Use {
        /// The workspace id.
        id: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        conn: Connection,
    },
}

/// `refract automations …`.
#[derive(Subcommand, Debug, Clone)]
pub enum AutomationsCommand {
    /// The workspace's automations.
    List(InWorkspace),
    /// One automation, whole (YAML unless --json).
    Get {
        /// Its slug.
        slug: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        at: InWorkspace,
    },
    /// Create or update a DSL automation from a YAML (or JSON) file: the automation as the
    /// API takes it; its slug is the file's `slug`, else the file's name without extension.
    Apply {
        /// The file.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        #[allow(missing_docs)]
        at: InWorkspace,
    },
    /// An automation's kept versions, newest first.
    Versions {
        /// Its slug.
        slug: String,
        #[command(flatten)]
        #[allow(missing_docs)]
        at: InWorkspace,
    },
    /// Restore version N of an automation (what it replaces is kept as a version too).
    Rollback {
        /// Its slug.
        slug: String,
        /// The version to restore.
        version: u32,
        #[command(flatten)]
        #[allow(missing_docs)]
        at: InWorkspace,
    },
}

/// `refract export`.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Where to write the zip (`-` for stdout) [default: <workspace id>.zip, not overwritten].
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub at: InWorkspace,
}

/// `refract import`.
#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// An export's zip, or a single-file `runtime.yml` (.yml/.yaml).
    pub file: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub at: InWorkspace,
}

/// `refract deploy`.
#[derive(Args, Debug, Clone)]
pub struct DeployArgs {
    /// A guest folder with refract.toml (a Rust crate: Cargo.toml; a JavaScript or TypeScript
    /// package: package.json, built with `npm run build`) or a .wasm file.
    pub path: PathBuf,
    /// The manifest (default: refract.toml in the guest folder).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub at: InWorkspace,
}

/// `refract logs`.
#[derive(Args, Debug, Clone)]
pub struct LogsArgs {
    /// Only the runs of this automation (slug).
    #[arg(long)]
    pub automation: Option<String>,
    /// Keep printing new runs until interrupted (with --json: one run per line).
    #[arg(long, short)]
    pub follow: bool,
    /// How many of the latest runs to print first.
    #[arg(long, default_value_t = 20)]
    pub last: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub at: InWorkspace,
}

/// One API command, parsed.
#[derive(Debug, Clone)]
pub enum ApiCommand {
    /// `refract login`.
    Login(LoginArgs),
    /// `refract logout`.
    Logout(LogoutArgs),
    /// `refract workspaces …`.
    Workspaces(WorkspacesCommand),
    /// `refract automations …`.
    Automations(AutomationsCommand),
    /// `refract export`.
    Export(ExportArgs),
    /// `refract import`.
    Import(ImportArgs),
    /// `refract deploy`.
    Deploy(DeployArgs),
    /// `refract logs`.
    Logs(LogsArgs),
}

impl ApiCommand {
    /// The command's name, as logs and traces call it.
    pub fn name(&self) -> &'static str {
        match self {
            ApiCommand::Login(_) => "login",
            ApiCommand::Logout(_) => "logout",
            ApiCommand::Workspaces(_) => "workspaces",
            ApiCommand::Automations(_) => "automations",
            ApiCommand::Export(_) => "export",
            ApiCommand::Import(_) => "import",
            ApiCommand::Deploy(_) => "deploy",
            ApiCommand::Logs(_) => "logs",
        }
    }
}

/// Parses `args` (the arguments after the program's name, as on the `refract` command line)
/// and runs the API command they name against `console`.
pub async fn run_api_command(
    args: impl IntoIterator<Item = String>,
    console: &mut Console<'_>,
) -> anyhow::Result<()> {
    let command = crate::cli::parse_api_command(args)?;
    run(command, console).await
}

/// Runs a parsed API command against `console`.
pub async fn run(command: ApiCommand, console: &mut Console<'_>) -> anyhow::Result<()> {
    match command {
        ApiCommand::Login(args) => login::login(args, console).await,
        ApiCommand::Logout(args) => login::logout(args, console).await,
        ApiCommand::Workspaces(command) => workspaces::run(command, console).await,
        ApiCommand::Automations(command) => automations::run(command, console).await,
        ApiCommand::Export(args) => transfer::export(args, console).await,
        ApiCommand::Import(args) => transfer::import(args, console).await,
        ApiCommand::Deploy(args) => {
            let call = Call::new(console, &args.at.conn, args.at.workspace.as_deref())?;
            let api = call.api()?;
            let workspace = call.workspace()?.to_owned();
            let deploy = crate::deploy::Deploy {
                path: args.path,
                manifest: args.manifest,
                workspace,
                json: args.at.conn.json,
                progress: console.progress,
                env: console.env.clone(),
            };
            crate::deploy::deploy(&api, deploy, &mut *console.stdout).await
        }
        ApiCommand::Logs(args) => {
            let call = Call::new(console, &args.at.conn, args.at.workspace.as_deref())?;
            let logs = crate::logs::Logs {
                url: call.target.url.clone(),
                token: call.target.require_token()?.to_owned(),
                workspace: call.workspace()?.to_owned(),
                automation: args.automation,
                last: args.last,
                follow: args.follow,
            };
            let format = if args.at.conn.json {
                crate::logs::Format::Json
            } else {
                crate::logs::Format::Text
            };
            crate::logs::logs_as(&logs, format, &mut *console.stdout).await
        }
    }
}

/// The message the binary prints for a failed API command: `error: <Code>: <message>` (and
/// the error's details on the next line), or `error: ` and the error's chain.
pub fn error_message(error: &anyhow::Error) -> String {
    match error.downcast_ref::<ApiError>() {
        Some(e) => match &e.details {
            Some(details) => format!("error: {e}\n  details: {details}"),
            None => format!("error: {e}"),
        },
        None => format!("error: {error:#}"),
    }
}

/// One command's resolved platform, credentials and profile.
pub(crate) struct Call {
    /// The platform, token and workspace to use.
    pub target: Target,
    /// The profile file's path.
    pub profile_path: PathBuf,
    /// The profile, when there is one.
    pub profile: Option<Profile>,
}

impl Call {
    /// Resolves `conn` and `workspace` against the console's environment and profile.
    pub fn new(
        console: &Console<'_>,
        conn: &Connection,
        workspace: Option<&str>,
    ) -> anyhow::Result<Self> {
        let profile_path = profile::path(&console.env)?;
        let profile = Profile::load(&profile_path)?;
        let given = Given {
            url: conn.url.clone(),
            token: conn.token.clone(),
            workspace: workspace.map(str::to_owned),
        };
        Ok(Self {
            target: profile::resolve(&given, &console.env, profile.as_ref()),
            profile_path,
            profile,
        })
    }

    /// A client of the platform with the caller's token (an error when there is none).
    pub fn api(&self) -> anyhow::Result<Api> {
        let token = self.target.require_token()?;
        Api::new(&self.target.url, Some(token.to_owned()))
    }

    /// The workspace id (an error when there is none).
    pub fn workspace(&self) -> anyhow::Result<&str> {
        self.target.require_workspace()
    }
}

/// Reads one line (the password) from `input`, without its line ending; an error when there
/// is none.
pub(crate) fn read_secret_line(input: &mut dyn BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line).context("reading stdin")?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!line.is_empty(), "stdin had no password on its first line");
    Ok(line)
}

/// `value` percent-encoded as one path segment.
pub(crate) fn segment(value: &str) -> String {
    // A segment of dots only would move up the path once a URL parser normalizes it.
    let dots = !value.is_empty() && value.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if dots {
            out.push_str("%2E");
            continue;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_escape_their_place_in_a_path() {
        assert_eq!(segment("hello-1.v2"), "hello-1.v2");
        assert_eq!(segment("a/../b?x"), "a%2F..%2Fb%3Fx");
        assert_eq!(segment(".."), "%2E%2E");
    }

    #[test]
    fn a_password_is_stdins_first_line() {
        let mut input = std::io::Cursor::new("s3cret pass\r\nrest\n");
        assert_eq!(read_secret_line(&mut input).unwrap(), "s3cret pass");
        let mut empty = std::io::Cursor::new("");
        assert!(read_secret_line(&mut empty).is_err());
    }

    #[test]
    fn api_errors_print_their_code_and_message() {
        let e: anyhow::Error = ApiError {
            status: reqwest::StatusCode::NOT_FOUND,
            code: "ObjectNotFoundError".into(),
            message: "no automation nope".into(),
            details: None,
        }
        .into();
        assert_eq!(
            error_message(&e),
            "error: ObjectNotFoundError: no automation nope"
        );
        let e = anyhow::anyhow!("refused").context("POST http://x/v2/login failed");
        assert_eq!(
            error_message(&e),
            "error: POST http://x/v2/login failed: refused"
        );
    }
}
