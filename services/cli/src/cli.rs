//! The command line of `refract`: run the platform (`serve`), one of its services, administer
//! accounts (`admin`), make a new automation folder (`new`), or call a platform's API ([`commands`]: `login`, `workspaces`,
//! `automations`, `export`, `import`, `deploy`, `logs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use refract_telemetry::logs::LogFormat;

use crate::admin::AdminCommand;
use crate::commands::{
    ApiCommand, AutomationsCommand, Console, DeployArgs, ExportArgs, ImportArgs, LoginArgs,
    LogoutArgs, LogsArgs, WorkspacesCommand,
};
use crate::{Config, Flags, admin, commands, serve};

/// Log filter when `RUST_LOG` is unset: SQL statements are too chatty at info.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn";

#[derive(Parser)]
#[command(
    name = "refract",
    version,
    about = "Refract: WebAssembly-sandboxed automations"
)]
struct Cli {
    /// A TOML config file (settings: see the README).
    #[arg(long, global = true, env = "REFRACT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every service in one process, with embedded storage in a data folder.
    Serve {
        /// Where data lives (database, cache, files).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// The gateway alone (distributed mode).
    Gateway {
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// The workspaces service alone (distributed mode); with a subcommand, the workspaces
    /// you belong to (list, create, use).
    #[command(args_conflicts_with_subcommands = true)]
    Workspaces {
        #[arg(long)]
        listen: Option<SocketAddr>,
        #[command(subcommand)]
        action: Option<WorkspacesCommand>,
    },
    /// The runtime alone (distributed mode).
    Runtime {
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// The events service alone (distributed mode).
    Events {
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Operator commands on accounts, run against the configured database.
    Admin {
        /// Where `refract serve` keeps its data (when no `database_url` is set).
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        action: Admin,
    },
    /// Log in to a platform: stores its URL and a new personal access token in the CLI's
    /// profile (the password is read from the terminal or stdin, never from arguments).
    Login(LoginArgs),
    /// Remove the stored login (--revoke also revokes its token on the platform).
    Logout(LogoutArgs),
    /// A workspace's automations: list, get, apply a YAML file, versions, rollback.
    #[command(subcommand)]
    Automations(AutomationsCommand),
    /// Download a workspace as a zip (owners only).
    Export(ExportArgs),
    /// Import an export (zip or runtime.yml) into a workspace; prints its report.
    Import(ImportArgs),
    /// Build a guest folder (Rust crate, npm package or Python project), or take a .wasm, and
    /// deploy it as an automation.
    Deploy(DeployArgs),
    /// Make a new automation folder, ready for `refract deploy`, from the webhook-echo example
    /// of a language.
    New(NewArgs),
    /// Print the workspace's runs with their logs (oldest first), and with --follow the new
    /// ones as they are recorded.
    Logs(LogsArgs),
}

/// `refract new`.
#[derive(clap::Args)]
#[command(
    after_help = "The Rust SDK (refract-sdk) is not on crates.io: a Rust folder depends on it \
by path (--sdk-path, default: the checkout this binary was built from, if it is still there) or by \
git (--sdk-git). A JavaScript/TypeScript folder depends on @refract/sdk and a Python one on \
refract-sdk by version, or on a local copy with --sdk-path (guest-sdk/js, guest-sdk/python)."
)]
struct NewArgs {
    /// The language: rust, js, ts (TypeScript) or python.
    #[arg(value_enum)]
    language: crate::scaffold::Language,
    /// The automation's slug, also the folder's name (lower-case letters, digits, dashes).
    name: String,
    /// Where to create the folder.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Depend on a local copy of the SDK: <checkout>/guest-sdk (Rust), guest-sdk/js (js, ts)
    /// or guest-sdk/python (python).
    #[arg(long)]
    sdk_path: Option<PathBuf>,
    /// Rust only: depend on refract-sdk from this git repository (the Refract repository).
    #[arg(long, conflicts_with = "sdk_path")]
    sdk_git: Option<String>,
}

#[derive(Subcommand)]
enum Admin {
    /// Make the account with this email a platform superadmin.
    Grant { email: String },
    /// Take back a superadmin grant.
    Revoke { email: String },
    /// Refuse every session, token and login of the account.
    Deactivate { email: String },
    /// Undo a deactivation.
    Activate { email: String },
}

/// The `refract` command line: parses the arguments and runs the command. The `refract`
/// binary is this function; test harnesses link it into their own binary to start real
/// service processes. Call it first thing in `main`, before any other thread starts.
pub fn main() -> std::process::ExitCode {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // wasmtime builds an error value while dropping every component store; with
        // RUST_BACKTRACE set, each would capture a backtrace (measured: per-run p50 12 µs → 8 µs
        // without). Panics keep their backtraces (RUST_BACKTRACE still applies to them).
        #[allow(unsafe_code)]
        // SAFETY: no other thread exists yet (the tokio runtime is built below).
        unsafe {
            std::env::set_var("RUST_LIB_BACKTRACE", "0");
        }
    }
    let cli = Cli::parse();
    // Before the async runtime: the OTLP exporter builds a blocking HTTP client.
    let telemetry = match refract_telemetry::logs::init(&log_settings(&cli.command)) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("refract: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("refract: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        match cli.command.dispatch() {
            Dispatch::Api(command) => match run_api(command).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{}", commands::error_message(&e));
                    std::process::ExitCode::FAILURE
                }
            },
            Dispatch::Platform(command) => match run(cli.config, command).await {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("refract: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            },
        }
    });
    // Flushes the spans not yet exported.
    drop(telemetry);
    code
}

/// Logging and tracing from the environment: `RUST_LOG` (filter), `REFRACT_LOG_FORMAT`
/// (`text` or `json`), and the standard OpenTelemetry variables: traces are exported over
/// OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
/// (and `OTEL_SDK_DISABLED` is not `true`), as `OTEL_SERVICE_NAME` or `refract-<command>`.
fn log_settings(command: &Command) -> refract_telemetry::logs::LogSettings {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let format = var("REFRACT_LOG_FORMAT")
        .map_or(Ok(LogFormat::Text), |v| LogFormat::parse(&v))
        .unwrap_or_else(|e| {
            eprintln!("refract: REFRACT_LOG_FORMAT: {e}; logging as text");
            LogFormat::Text
        });
    let otlp = (var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
        && var("OTEL_SDK_DISABLED").is_none_or(|v| !v.eq_ignore_ascii_case("true"));
    let command_name = match command {
        Command::Serve { .. } => "serve",
        Command::Gateway { .. } => "gateway",
        Command::Workspaces { .. } => "workspaces",
        Command::Runtime { .. } => "runtime",
        Command::Events { .. } => "events",
        Command::Admin { .. } => "admin",
        Command::Login(_) => "login",
        Command::Logout(_) => "logout",
        Command::Automations(_) => "automations",
        Command::Export(_) => "export",
        Command::Import(_) => "import",
        Command::Deploy(_) => "deploy",
        Command::Logs(_) => "logs",
        Command::New(_) => "new",
    };
    refract_telemetry::logs::LogSettings {
        format,
        filter: var("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.into()),
        otlp,
        service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| format!("refract-{command_name}")),
    }
}

/// What a parsed command line runs.
enum Dispatch {
    /// A command that calls a platform's API ([`commands`]).
    Api(ApiCommand),
    /// A command that runs the platform, one of its services, or administers it.
    Platform(Command),
}

impl Command {
    /// The API command this is, or itself when it runs the platform or administers it.
    fn dispatch(self) -> Dispatch {
        Dispatch::Api(match self {
            Command::Login(args) => ApiCommand::Login(args),
            Command::Logout(args) => ApiCommand::Logout(args),
            Command::Workspaces {
                action: Some(action),
                ..
            } => ApiCommand::Workspaces(action),
            Command::Automations(command) => ApiCommand::Automations(command),
            Command::Export(args) => ApiCommand::Export(args),
            Command::Import(args) => ApiCommand::Import(args),
            Command::Deploy(args) => ApiCommand::Deploy(args),
            Command::Logs(args) => ApiCommand::Logs(args),
            other => return Dispatch::Platform(other),
        })
    }
}

/// Parses `args` (without the program's name) as the `refract` command line, for an API
/// command; any other command is an error.
pub(crate) fn parse_api_command(
    args: impl IntoIterator<Item = String>,
) -> anyhow::Result<ApiCommand> {
    let argv = std::iter::once("refract".to_owned()).chain(args);
    let cli = Cli::try_parse_from(argv).map_err(|e| anyhow::anyhow!("{}", e.render()))?;
    match cli.command.dispatch() {
        Dispatch::Api(command) => Ok(command),
        Dispatch::Platform(_) => anyhow::bail!("not a command that calls the API"),
    }
}

/// Runs an API command with the process's own environment, stdin and stdout, and progress
/// bars when stderr is a terminal.
async fn run_api(command: ApiCommand) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let mut stdin = std::io::BufReader::new(std::io::stdin());
    let mut stdout = std::io::stdout();
    let mut console = Console {
        env: std::env::vars().collect(),
        stdin: &mut stdin,
        stdout: &mut stdout,
        stdin_is_terminal: std::io::stdin().is_terminal(),
        progress: std::io::stderr().is_terminal(),
    };
    commands::run(command, &mut console).await
}

async fn run(config: Option<PathBuf>, command: Command) -> anyhow::Result<()> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let load = |flags: Flags| {
        Config::load(config.as_deref(), &env, flags).context("loading the configuration")
    };
    let only = |listen| Flags {
        listen,
        data_dir: None,
    };
    match command {
        Command::Serve { data_dir, listen } => {
            serve::serve(load(Flags { listen, data_dir })?, serve::shutdown_signal()).await
        }
        Command::Gateway { listen } => {
            serve::service(serve::Service::Gateway, load(only(listen))?).await
        }
        Command::Workspaces {
            listen,
            action: None,
        } => serve::service(serve::Service::Workspaces, load(only(listen))?).await,
        Command::Runtime { listen } => {
            serve::service(serve::Service::Runtime, load(only(listen))?).await
        }
        Command::Events { listen } => {
            serve::service(serve::Service::Events, load(only(listen))?).await
        }
        Command::Admin { data_dir, action } => {
            let (command, email) = match action {
                Admin::Grant { email } => (AdminCommand::Grant, email),
                Admin::Revoke { email } => (AdminCommand::Revoke, email),
                Admin::Deactivate { email } => (AdminCommand::Deactivate, email),
                Admin::Activate { email } => (AdminCommand::Activate, email),
            };
            let done = admin::run(
                &load(Flags {
                    listen: None,
                    data_dir,
                })?,
                command,
                &email,
            )
            .await?;
            println!("{done}");
            Ok(())
        }
        Command::New(args) => {
            let dir = crate::scaffold::new(&crate::scaffold::New {
                language: args.language,
                name: args.name,
                parent: args.dir,
                sdk_path: args.sdk_path,
                sdk_git: args.sdk_git,
            })?;
            println!("{}", crate::scaffold::next_steps(args.language, &dir));
            Ok(())
        }
        // `main` runs these through `run_api` (`Command::dispatch`).
        Command::Workspaces {
            action: Some(_), ..
        }
        | Command::Login(_)
        | Command::Logout(_)
        | Command::Automations(_)
        | Command::Export(_)
        | Command::Import(_)
        | Command::Deploy(_)
        | Command::Logs(_) => anyhow::bail!("an API command reached the platform's dispatch"),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Dispatch {
        let argv = std::iter::once("refract").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().command.dispatch()
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn workspaces_runs_the_service_or_calls_the_api() {
        assert!(matches!(
            parse(&["workspaces", "--listen", "127.0.0.1:4000"]),
            Dispatch::Platform(Command::Workspaces {
                listen: Some(_),
                action: None
            })
        ));
        assert!(matches!(
            parse(&["workspaces", "list", "--json"]),
            Dispatch::Api(ApiCommand::Workspaces(WorkspacesCommand::List(c))) if c.json
        ));
        assert!(matches!(parse(&["serve"]), Dispatch::Platform(_)));
        let mixed = Cli::try_parse_from(["refract", "workspaces", "--listen", "1.2.3.4:5", "list"]);
        assert!(mixed.is_err(), "a service flag and a subcommand do not mix");
    }

    #[test]
    fn new_takes_a_language_and_a_name() {
        assert!(matches!(
            parse(&["new", "python", "order-hook", "--dir", "/tmp"]),
            Dispatch::Platform(Command::New(NewArgs {
                language: crate::scaffold::Language::Python,
                ..
            }))
        ));
        assert!(Cli::try_parse_from(["refract", "new", "cobol", "x"]).is_err());
        assert!(Cli::try_parse_from(["refract", "new", "rust"]).is_err());
        let both = [
            "refract",
            "new",
            "rust",
            "x",
            "--sdk-path",
            "a",
            "--sdk-git",
            "b",
        ];
        assert!(Cli::try_parse_from(both).is_err());
    }
}
