//! The data of one run's `Store`: the WASI context that grants nothing, the memory limiter, and
//! the [`RunCtx`] the imports reach through the [`RunView`] trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use refract_secrets::WorkspaceSecrets;

use crate::answer::Answer;
use crate::egress::{Egress, EgressPolicy};
use crate::imports::InFlight;
use crate::limits::{Limits, MemoryLimiter};
use crate::runlog::{LogLevel, LogSource, RunLog};
use crate::services::{RunContext, Services};
use crate::stdio::{LogPipe, Stream};

/// A host call in progress, owning all it needs: awaited at once by a blocking import, or
/// kept in flight by the `concurrent` interface.
pub(crate) type HostFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A host call refused before it started: its error, ready at once.
pub(crate) fn refused<T: Send + 'static, E: Send + 'static>(e: E) -> HostFuture<Result<T, E>> {
    Box::pin(std::future::ready(Err(e)))
}

/// A per-run cap the guest hit once; calling again after the refusal ends the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    Emits,
    Fetches,
    Waits,
}

/// The error an import raises (a trap) when a guest keeps calling after a refusal.
#[derive(Debug, thiserror::Error)]
#[error("{what} limit of {limit} per run exceeded, and the guest kept calling")]
pub(crate) struct LimitTrap {
    pub(crate) what: &'static str,
    pub(crate) limit: u32,
}

/// What the imports of one run share.
pub(crate) struct RunCtx {
    pub(crate) info: Arc<RunContext>,
    pub(crate) services: Services,
    pub(crate) limits: Arc<Limits>,
    pub(crate) egress: Arc<Egress>,
    pub(crate) policy: Arc<EgressPolicy>,
    pub(crate) started: Instant,
    /// Time spent awaiting async host calls: not guest CPU.
    pub(crate) io_time: Duration,
    pub(crate) emits: u32,
    pub(crate) fetches: u32,
    pub(crate) waits: u32,
    pub(crate) calls: u32,
    pub(crate) refused: Vec<Cap>,
    /// The run's log: `log` lines, stdio lines, the host's messages about the run.
    pub(crate) log: RunLog,
    /// The workspace's secrets for this run (the `secrets` import; redaction of what it
    /// emits and logs).
    pub(crate) secrets: Arc<WorkspaceSecrets>,
    /// Host calls started through the `concurrent` interface and not reported yet.
    pub(crate) in_flight: InFlight,
    /// The streamed answer of a run a webhook started; `None` for every other run.
    pub(crate) answer: Option<Answer>,
}

impl RunCtx {
    /// Runs the async host call `name` (`fetch`, `emit`, ...), counting its time as I/O, not
    /// guest CPU, inside a span of its own: with traces on, each host call is a child span of
    /// the run, and what it publishes carries that span's trace context.
    pub(crate) async fn io<F: std::future::Future>(
        &mut self,
        name: &'static str,
        f: F,
    ) -> F::Output {
        let t = Instant::now();
        let out =
            tracing::Instrument::instrument(f, tracing::info_span!("host_call", call = name)).await;
        self.io_time += t.elapsed();
        out
    }

    /// Records a refusal of `cap`; `Err` (a trap) if the guest was already refused once.
    pub(crate) fn refuse(
        &mut self,
        cap: Cap,
        what: &'static str,
        limit: u32,
    ) -> wasmtime::Result<()> {
        self.host_log(
            LogLevel::Warn,
            &format!("{what} refused: the run reached its limit of {limit}"),
        );
        if self.refused.contains(&cap) {
            return Err(wasmtime::Error::new(LimitTrap { what, limit }));
        }
        self.refused.push(cap);
        Ok(())
    }

    /// A message of the host about this run, into its log.
    pub(crate) fn host_log(&self, level: LogLevel, message: &str) {
        self.log.push(level, LogSource::Host, message);
    }
}

/// How host code reaches the run's context without seeing the whole store.
pub(crate) trait RunView: Send {
    fn run_ctx(&mut self) -> &mut RunCtx;
}

pub(crate) struct StoreData {
    /// Built on the guest's first WASI call: many runs never make one, and building it (random
    /// generators, stdio pipes) is a measurable share of a short run.
    wasi: Option<Wasi>,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) run: RunCtx,
}

struct Wasi {
    ctx: WasiCtx,
    stdout: LogPipe,
    stderr: LogPipe,
}

impl Wasi {
    fn new(run: &RunCtx) -> Self {
        let (budget, line) = (run.limits.max_log_bytes, run.limits.max_log_line);
        let redactor = run.secrets.redactor();
        let stdout = LogPipe::new(
            Stream::Stdout,
            run.log.clone(),
            redactor.clone(),
            budget,
            line,
        );
        let stderr = LogPipe::new(
            Stream::Stderr,
            run.log.clone(),
            redactor.clone(),
            budget,
            line,
        );
        // The context grants nothing: no args, no env, no preopens, stdin closed, and no
        // network: TCP, UDP and name lookups are off and no socket address passes the check
        // (each already the default; said here so that no default change can open them).
        let ctx = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        Wasi {
            ctx,
            stdout,
            stderr,
        }
    }
}

impl StoreData {
    pub(crate) fn new(run: RunCtx) -> Self {
        StoreData {
            wasi: None,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(run.limits.memory_bytes),
            run,
        }
    }

    /// Flushes guest stdio: what stderr kept, and the bytes dropped over the log budget.
    pub(crate) fn finish_stdio(&self) -> (String, u64) {
        match &self.wasi {
            None => (String::new(), 0),
            Some(w) => {
                let (stderr, dropped_err) = w.stderr.finish();
                let (_, dropped_out) = w.stdout.finish();
                (stderr, dropped_err + dropped_out)
            }
        }
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(|| Wasi::new(&self.run));
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut self.table,
        }
    }
}

impl RunView for StoreData {
    fn run_ctx(&mut self) -> &mut RunCtx {
        &mut self.run
    }
}

struct IoTable;
impl HasData for IoTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Links the minimal WASI subset: I/O streams, clocks, random, the `wasi:cli` interfaces Rust's
/// std imports (environment, exit, stdio, terminals), and `wasi:filesystem` with no preopened
/// directory (JavaScript components built by ComponentizeJS import it through their WASI
/// adapter; with nothing preopened, no descriptor can be had), and `wasi:sockets` with every use
/// denied by the context (Python components built by componentize-py import it: CPython is
/// built with socket support). No HTTP: outbound requests go through our `http` import.
pub(crate) fn add_minimal_wasi<T: WasiView + 'static>(l: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, io, random, sockets};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView as _};
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView as _};

    io::error::add_to_linker::<T, IoTable>(l, |t| t.ctx().table)?;
    io::poll::add_to_linker::<T, IoTable>(l, |t| t.ctx().table)?;
    io::streams::add_to_linker::<T, IoTable>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, T::random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, T::random)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    // The context preopens nothing: `get-directories` is empty and every descriptor call
    // needs a descriptor the guest cannot obtain.
    filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    // Every socket call answers `access-denied` (or `not-supported`): see `Wasi::new`.
    let options = sockets::network::LinkOptions::default();
    sockets::network::add_to_linker::<T, WasiSockets>(l, &options, T::sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    Ok(())
}
