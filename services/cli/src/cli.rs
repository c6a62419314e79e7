//! The command line of `refract`: run the platform (`serve`), one of its services, deploy
//! an automation, or administer accounts (`admin`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use refract_telemetry::logs::LogFormat;

use crate::admin::AdminCommand;
use crate::{Config, Flags, admin, deploy, logs, serve};

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
    /// The workspaces service alone (distributed mode).
    Workspaces {
        #[arg(long)]
        listen: Option<SocketAddr>,
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
    /// Build a guest crate (or take a .wasm) and deploy it as an automation.
    Deploy {
        /// A guest crate folder (with refract.toml) or a .wasm file.
        path: PathBuf,
        /// The manifest (default: refract.toml in the crate folder).
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// The platform's URL.
        #[arg(long, env = "REFRACT_URL", default_value = "http://127.0.0.1:3000")]
        url: String,
        /// A session token or personal access token.
        #[arg(long, env = "REFRACT_TOKEN", hide_env_values = true)]
        token: String,
        /// The workspace id.
        #[arg(long, env = "REFRACT_WORKSPACE")]
        workspace: String,
    },
    /// Print the workspace's runs with their logs (oldest first), and with --follow the new
    /// ones as they are recorded.
    Logs {
        /// Only the runs of this automation (slug).
        #[arg(long)]
        automation: Option<String>,
        /// Keep printing new runs until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// How many of the latest runs to print first.
        #[arg(long, default_value_t = 20)]
        last: u32,
        /// The platform's URL.
        #[arg(long, env = "REFRACT_URL", default_value = "http://127.0.0.1:3000")]
        url: String,
        /// A session token, personal access token or API key.
        #[arg(long, env = "REFRACT_TOKEN", hide_env_values = true)]
        token: String,
        /// The workspace id.
        #[arg(long, env = "REFRACT_WORKSPACE")]
        workspace: String,
    },
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
        match run(cli).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("refract: {e:#}");
                std::process::ExitCode::FAILURE
            }
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
        Command::Deploy { .. } => "deploy",
        Command::Logs { .. } => "logs",
        Command::Admin { .. } => "admin",
    };
    refract_telemetry::logs::LogSettings {
        format,
        filter: var("RUST_LOG").unwrap_or_else(|| DEFAULT_LOG_FILTER.into()),
        otlp,
        service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| format!("refract-{command_name}")),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let load = |flags: Flags| {
        Config::load(cli.config.as_deref(), &env, flags).context("loading the configuration")
    };
    let only = |listen| Flags {
        listen,
        data_dir: None,
    };
    match cli.command {
        Command::Serve { data_dir, listen } => {
            serve::serve(load(Flags { listen, data_dir })?, serve::shutdown_signal()).await
        }
        Command::Gateway { listen } => {
            serve::service(serve::Service::Gateway, load(only(listen))?).await
        }
        Command::Workspaces { listen } => {
            serve::service(serve::Service::Workspaces, load(only(listen))?).await
        }
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
        Command::Deploy {
            path,
            manifest,
            url,
            token,
            workspace,
        } => {
            deploy::deploy(deploy::Deploy {
                path,
                manifest,
                url,
                token,
                workspace,
            })
            .await
        }
        Command::Logs {
            automation,
            follow,
            last,
            url,
            token,
            workspace,
        } => {
            let args = logs::Logs {
                url,
                token,
                workspace,
                automation,
                last,
                follow,
            };
            logs::logs(&args, &mut std::io::stdout()).await
        }
    }
}
