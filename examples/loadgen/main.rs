//! The load generator's own figures (issue 3): how accurately lmbench measures, how fast it
//! sends and how much memory it needs. A command that prints tables, not a timed test.
//!
//! ```sh
//! cargo run --release --example loadgen -- error-budget   # TTFT/ITL error at 1, 100, 1000 streams
//! cargo run --release --example loadgen -- max-rate       # rate sweep, highest sustained rate
//! cargo run --release --example loadgen -- memory         # peak RSS recording 1,000,000 requests
//! cargo run --release --example loadgen -- send-lag       # send lag per workload of the default suite
//! cargo run --release --example loadgen -- wire-budget    # TTFT/ITL against a packet capture
//! ```
//!
//! Every mode drives the real path: `lmbench::workload::runner::run` with a
//! `lmbench::client::Client`, records over an mpsc channel into a collector task that feeds an
//! `lmbench::measure::Aggregator` and streams every record to disk with
//! `lmbench::results::ResultWriter` (into a temporary directory), exactly as `lmbench run` does.
//!
//! The simulated engine (`lmbench::sim::serve`, fixed mode) runs by default in a child process:
//! this same executable re-run as `loadgen sim-child`, so the engine and the load generator
//! share neither a runtime nor an address space (CPU and peak memory are reported for each).
//! `--sim thread` runs it in-process on a runtime of its own instead. The engine gets a
//! one-worker runtime (`--sim-threads`).
//!
//! The load generator runs as `lmbench run` runs it: a multi-thread runtime with one worker per
//! CPU (`--threads`; the collector runs there), the runner driven from `block_on`, and the
//! request tasks on the runner's own send thread (a one-thread runtime that the runner starts
//! for each run). 1,000 streams need about 1,100 open
//! files (2,100 with `--sim thread`); the example warns when the soft limit is lower
//! (`ulimit -n 65536`).

// A benchmark program: its report is what it prints to stdout.
#![allow(clippy::print_stdout)]

mod send_lag;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use lmbench::client::{Client, ClientConfig};
use lmbench::measure::{percentile, Aggregator, LmbenchResults, Summary, SummaryContext};
use lmbench::record::{ApiType, Completed, Prompt, RequestRecord, RequestSpec};
use lmbench::results::ResultWriter;
use lmbench::sim::SimConfig;
use lmbench::workload::prompt::{mix_seed, PromptBuilder};
use lmbench::workload::runner::{self, RunStats};
use lmbench::workload::Workload;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod wire;

/// lmbench's load-generator benchmark.
///
/// Modes:
///
/// error-budget: against the simulated engine's fixed mode (known TTFT and ITL), N streams kept
/// in flight (closed loop) for N in --streams; prints the error of the measured TTFT
/// (first chunk − sent − ttftMs) and of every per-chunk gap (gap − itlMs), p50/p99/min, in ms.
///
/// max-rate: against the simulated engine with zero latency (fixed mode, ttftMs 0, itlMs 0;
/// --itl-ms spaces the tokens so that each is written on its own),
/// open-loop evenly spaced requests of --max-tokens output tokens at each rate of --rates;
/// prints achieved/target, send lag p50/p99/max, most in flight and CPU, then the highest rate
/// that passes (achieved/target ≥ --min-ratio, send lag p99 ≤ --max-lag-p99-ms, no failures).
///
/// memory: --requests requests at --rate against the zero-latency engine, every record
/// streamed to disk; prints the load generator's peak RSS (VmHWM) and the engine's separately.
///
/// send-lag: every point of real spec files (the default suite, plus an LMCacheSynthetic point
/// with 20,000-token histories at 4 QPS) against the engine in engine mode; prints send lag.
///
/// wire-budget: error-budget's runs captured with tshark; prints lmbench's TTFT and chunk gaps
/// against the packets' timestamps.
#[derive(Debug, Parser)]
#[command(name = "loadgen", verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// TTFT and ITL measurement error against fixed mode at several stream counts.
    ErrorBudget(ErrorBudgetArgs),
    /// Sweep request rates against a zero-latency engine; report the highest sustained rate.
    MaxRate(MaxRateArgs),
    /// Peak memory while recording many requests (records streamed to disk).
    Memory(MemoryArgs),
    /// lmbench's own send lag (sent − due) on every point of real spec files.
    SendLag(send_lag::SendLagArgs),
    /// TTFT and chunk gaps as lmbench recorded them against a packet capture (tshark) of the
    /// same run.
    WireBudget(wire::WireBudgetArgs),
    /// Internal: serve the simulated engine in this process (started by the other modes).
    #[command(hide = true)]
    SimChild(SimChildArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SimPlace {
    /// A child process (this executable, `sim-child`): the default.
    Process,
    /// This process, on a tokio runtime of its own.
    Thread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Prompts {
    /// The same filler words every time, counted once.
    Fixed,
    /// Fresh random filler per request, counted per request (as the Random workload).
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunnerOn {
    /// The thread that calls `block_on`, as `lmbench run` does.
    Main,
    /// A task on the runtime's worker threads.
    Worker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Api {
    Completions,
    Chat,
}

#[derive(Debug, Clone, Args)]
struct Common {
    /// Where the simulated engine runs.
    #[arg(long, value_enum, default_value = "process")]
    sim: SimPlace,
    /// Worker threads of the engine's runtime. One leaves more of a small machine to the load
    /// generator, which is what is measured (and needs less CPU than two: fewer cross-thread
    /// wake-ups); 0 means one per CPU.
    #[arg(long, default_value_t = 1)]
    sim_threads: usize,
    /// Niceness of the engine's process (`--sim process` only). On a small machine the engine's
    /// own CPU work (parsing and tokenizing long prompts) competes with the load generator's
    /// threads, and every wake-up of a load-generator thread that waits for a CPU shows as
    /// send lag; a positive value gives the load generator the CPUs first, as when the engine
    /// runs on cores (or a machine) of its own.
    #[arg(long, default_value_t = 0)]
    sim_nice: i32,
    /// Worker threads of the load generator's runtime (default: one per CPU, as `lmbench`).
    #[arg(long)]
    threads: Option<usize>,
    /// Prompt length in tokens (filler words, counted with lmbench's tokenizer).
    #[arg(long, default_value_t = 16)]
    prompt_tokens: usize,
    /// How prompts are built: `fixed` filler words after a per-request `Question <id>:`, counted
    /// once (the load generator alone), or `random` filler drawn and counted per request as the
    /// Random workload does (adds the workload's tokenizer cost to the scheduler thread).
    #[arg(long, value_enum, default_value = "fixed")]
    prompts: Prompts,
    /// max_tokens of every request (the engine generates exactly this many).
    #[arg(long, default_value_t = 16)]
    max_tokens: u32,
    /// Which OpenAI endpoint to call.
    #[arg(long, value_enum, default_value = "completions")]
    api: Api,
    /// Where the runner's scheduling loop runs: `main`, the thread of `block_on` (as in
    /// `lmbench run`), or `worker`, a task on the runtime's worker threads.
    #[arg(long, value_enum, default_value = "main")]
    runner_on: RunnerOn,
    /// Keep the per-request records in this directory instead of a temporary one.
    #[arg(long)]
    keep_records: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct ErrorBudgetArgs {
    #[command(flatten)]
    common: Common,
    /// Concurrent streams, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    streams: Vec<u64>,
    /// The engine's fixed time to first token (ms).
    #[arg(long, default_value_t = 100.0)]
    ttft_ms: f64,
    /// The engine's fixed time between tokens (ms).
    #[arg(long, default_value_t = 20.0)]
    itl_ms: f64,
    /// Measured seconds per stream count (after the warmup).
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of warmup per stream count (requests due then are not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
}

#[derive(Debug, Clone, Args)]
struct MaxRateArgs {
    #[command(flatten)]
    common: Common,
    /// Target rates (requests/s), one measurement each.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "500,1000,2000,3000,4000,5000,6000,8000,10000"
    )]
    rates: Vec<f64>,
    /// Measured seconds per rate (after the warmup).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of warmup per rate (requests due then are not measured).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Pass criterion: achieved/target at least this.
    #[arg(long, default_value_t = 0.995)]
    min_ratio: f64,
    /// Pass criterion: send lag p99 at most this (ms).
    #[arg(long, default_value_t = 1.0)]
    max_lag_p99_ms: f64,
    /// Measure every rate, even after two in a row have failed (by default the sweep stops
    /// there: an overloaded run leaves thousands of sockets in TIME_WAIT behind it).
    #[arg(long)]
    all: bool,
    /// The engine's time between tokens (ms). At 0 (the benchmark) every token of a response
    /// is due at once and the engine writes the whole response together; above 0 each token
    /// is written when due, so the client reads and wakes up once per chunk.
    #[arg(long, default_value_t = 0.0)]
    itl_ms: f64,
}

#[derive(Debug, Clone, Args)]
struct MemoryArgs {
    #[command(flatten)]
    common: Common,
    /// Requests to send and record (none is warmup: the summary keeps all of them).
    #[arg(long, default_value_t = 1_000_000)]
    requests: u64,
    /// Target rate (requests/s).
    #[arg(long, default_value_t = 4000.0)]
    rate: f64,
}

#[derive(Debug, Clone, Args)]
struct SimChildArgs {
    /// The engine's settings (a `Simulated` baseline's camelCase keys).
    #[arg(long)]
    config_json: String,
    /// Worker threads of the engine's runtime.
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Mode::SimChild(a) = &cli.mode {
        return match sim_child(a) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sim-child: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("LMBENCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    // Load the tokenizer before any run: its first use takes a while.
    let _ = PromptBuilder::global().count("warm up");
    let result = match cli.mode {
        Mode::ErrorBudget(a) => error_budget(&a),
        Mode::MaxRate(a) => max_rate(&a),
        Mode::Memory(a) => memory(&a),
        Mode::SendLag(a) => send_lag::send_lag(&a),
        Mode::WireBudget(a) => wire::wire_budget(&a),
        Mode::SimChild(_) => unreachable!("handled above"),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

// ---- the simulated engine -----------------------------------------------------------------

fn runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        b.worker_threads(n.max(1));
    }
    b.enable_all().build().context("building a tokio runtime")
}

/// `loadgen sim-child`: serve the engine on 127.0.0.1:0, print `listening ADDR` on stdout, and
/// stop when stdin closes (the parent exited or asked).
fn sim_child(a: &SimChildArgs) -> anyhow::Result<()> {
    let cfg: SimConfig =
        serde_json::from_str(&a.config_json).context("--config-json is not a sim config")?;
    let rt = runtime(a.threads)?;
    rt.block_on(async move {
        let listener = engine_listener()?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let on_eof = shutdown.clone();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            on_eof.cancel();
        });
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening {addr}")?;
            out.flush()?;
        }
        lmbench::sim::serve(listener, cfg, shutdown).await
    })
}

/// A running simulated engine: a child process, or a runtime of this process.
struct Sim {
    addr: SocketAddr,
    place: Place,
}

enum Place {
    Child {
        child: Child,
        stdin: Option<ChildStdin>,
    },
    Thread {
        rt: tokio::runtime::Runtime,
        shutdown: CancellationToken,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
}

impl Sim {
    fn start(c: &Common, cfg: &SimConfig) -> anyhow::Result<Sim> {
        cfg.validate()?;
        let threads = (c.sim_threads > 0).then_some(c.sim_threads);
        match c.sim {
            SimPlace::Process => {
                let exe = std::env::current_exe().context("locating this executable")?;
                let mut cmd = if c.sim_nice != 0 {
                    let mut n = Command::new("nice");
                    n.arg("-n").arg(c.sim_nice.to_string()).arg(exe);
                    n
                } else {
                    Command::new(exe)
                };
                cmd.arg("sim-child")
                    .arg("--config-json")
                    .arg(serde_json::to_string(cfg)?);
                if let Some(n) = threads {
                    cmd.arg("--threads").arg(n.to_string());
                }
                let mut child = cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .context("starting the simulated engine's process")?;
                let stdout = child.stdout.take().context("child stdout")?;
                let mut line = String::new();
                BufReader::new(stdout).read_line(&mut line)?;
                let addr = line
                    .trim()
                    .strip_prefix("listening ")
                    .and_then(|a| a.parse().ok());
                let Some(addr) = addr else {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("the simulated engine did not start (said {line:?})");
                };
                let stdin = child.stdin.take();
                Ok(Sim {
                    addr,
                    place: Place::Child { child, stdin },
                })
            }
            SimPlace::Thread => {
                let rt = runtime(threads)?;
                let listener = rt.block_on(async { engine_listener() })?;
                let addr = listener.local_addr()?;
                let shutdown = CancellationToken::new();
                let task = rt.spawn(lmbench::sim::serve(listener, cfg.clone(), shutdown.clone()));
                Ok(Sim {
                    addr,
                    place: Place::Thread { rt, shutdown, task },
                })
            }
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The engine process's id, when it has its own process.
    fn pid(&self) -> Option<u32> {
        match &self.place {
            Place::Child { child, .. } => Some(child.id()),
            Place::Thread { .. } => None,
        }
    }

    fn cpu_s(&self) -> Option<f64> {
        self.pid().and_then(|p| proc_cpu_s(&p.to_string()))
    }

    fn peak_rss_kib(&self) -> Option<u64> {
        self.pid()
            .and_then(|p| proc_status_kib(&p.to_string(), "VmHWM"))
    }

    fn stop(self) -> anyhow::Result<()> {
        match self.place {
            Place::Child { mut child, stdin } => {
                drop(stdin);
                for _ in 0..100 {
                    if child.try_wait()?.is_some() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                child.kill()?;
                child.wait()?;
                Ok(())
            }
            Place::Thread { rt, shutdown, task } => {
                shutdown.cancel();
                rt.block_on(task)??;
                rt.shutdown_timeout(Duration::from_secs(1));
                Ok(())
            }
        }
    }
}

/// The engine's listening socket on 127.0.0.1, an ephemeral port, with room in the accept
/// queue for 1,000 streams connecting at once.
fn engine_listener() -> anyhow::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((Ipv4Addr::LOCALHOST, 0).into())?;
    Ok(socket.listen(4096)?)
}

fn fixed_engine(ttft_ms: f64, itl_ms: f64) -> SimConfig {
    SimConfig {
        mode: lmbench::sim::SimMode::Fixed,
        ttft_ms,
        itl_ms,
        // Lookups cost the engine CPU and change nothing in fixed mode's timing.
        prefix_caching: false,
        ..SimConfig::default()
    }
}

// ---- /proc --------------------------------------------------------------------------------

/// User + system CPU seconds of a process (`self` or a pid), from /proc/PID/stat. Linux reports
/// them in USER_HZ ticks, which is 100 on every architecture this runs on.
fn proc_cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, so utime (14)
    // and stime (15) are at positions 11 and 12.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// CPU seconds the whole machine spent not idle (user, nice, system, irq, softirq and steal
/// from the first line of /proc/stat; USER_HZ ticks).
fn machine_busy_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| f.get(*i)).sum();
    Some(ticks as f64 / 100.0)
}

/// CPU seconds so far: this process, the engine's process (when it has one), the machine.
#[derive(Clone, Copy)]
struct CpuSnap {
    lg: Option<f64>,
    sim: Option<f64>,
    machine: Option<f64>,
}

impl CpuSnap {
    fn take(sim: &Sim) -> Self {
        CpuSnap {
            lg: proc_cpu_s("self"),
            sim: sim.cpu_s(),
            machine: machine_busy_s(),
        }
    }
}

/// Average cores used between two snapshots: by the load generator, by the engine, and by
/// everything else on the machine (other processes and the hypervisor's steal time).
#[derive(Clone, Copy)]
struct CpuUse {
    lg: Option<f64>,
    sim: Option<f64>,
    other: Option<f64>,
}

impl CpuUse {
    fn between(a: CpuSnap, b: CpuSnap, wall_s: f64) -> Self {
        let d = |x: Option<f64>, y: Option<f64>| {
            x.zip(y)
                .map(|(x, y)| (y - x) / wall_s)
                .filter(|v| *v >= 0.0)
        };
        let lg = d(a.lg, b.lg);
        let sim = d(a.sim, b.sim);
        let machine = d(a.machine, b.machine);
        let other = machine
            .zip(lg)
            .map(|(m, l)| (m - l - sim.unwrap_or(0.0)).max(0.0));
        CpuUse { lg, sim, other }
    }
}

/// A `kB` line of /proc/PID/status (`VmHWM`, `VmRSS`), in KiB.
fn proc_status_kib(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

fn open_files_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Warns when `needed` descriptors exceed the soft limit (the example cannot raise it itself:
/// lmbench forbids unsafe code and nix is built without its `resource` feature).
fn check_open_files(needed: u64) {
    if let Some(limit) = open_files_soft_limit() {
        if limit < needed {
            eprintln!(
                "warning: the open-files limit is {limit} but this needs about {needed}; \
                 run `ulimit -n 65536` first"
            );
        }
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = proc_meminfo_kib("MemTotal").map_or(0.0, |k| k as f64 / 1024.0 / 1024.0);
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), {mem_gib:.1} GiB RAM, load average {load} at start")
}

fn proc_meminfo_kib(key: &str) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

// ---- the workload -------------------------------------------------------------------------

/// When requests are due.
#[derive(Debug, Clone, Copy)]
enum Schedule {
    /// Open loop: request k is due at k/rate; the first `warmup` are warmup.
    Paced { rate: f64, count: u64, warmup: u64 },
    /// Closed loop: `streams` requests in flight; stream i starts at i·stagger_s and every
    /// finished request is replaced at once until `end_s`. Requests due before `warmup_s` are
    /// warmup.
    Closed {
        streams: u64,
        stagger_s: f64,
        warmup_s: f64,
        end_s: f64,
    },
}

/// Short independent prompts (`Question <id>:` and random filler words counted with lmbench's
/// tokenizer, as the Random workload builds them), `max_tokens` each.
struct Load {
    schedule: Schedule,
    prompts: Prompts,
    prompt_tokens: usize,
    /// `Prompts::Fixed`: the filler words and the prompt's token count, computed once.
    fixed: (String, u64),
    max_tokens: u32,
    next_id: u64,
    started: u64,
}

impl Load {
    fn new(schedule: Schedule, c: &Common) -> Self {
        let b = PromptBuilder::global();
        let filler = b.filler_seeded(c.prompt_tokens, mix_seed(&[0x10ad]));
        let tokens = b.count(&format!("Question 0:{filler}")) as u64;
        Load {
            schedule,
            prompts: c.prompts,
            prompt_tokens: c.prompt_tokens,
            fixed: (filler, tokens),
            max_tokens: c.max_tokens,
            next_id: 0,
            started: 0,
        }
    }

    fn spec(&mut self, due_s: f64, warmup: bool) -> RequestSpec {
        let id = self.next_id;
        self.next_id += 1;
        let (text, tokens) = match self.prompts {
            Prompts::Fixed => (format!("Question {id}:{}", self.fixed.0), self.fixed.1),
            Prompts::Random => {
                let b = PromptBuilder::global();
                let filler = b.filler_seeded(self.prompt_tokens, mix_seed(&[0x10ad, id]));
                let text = format!("Question {id}:{filler}");
                let tokens = b.count(&text) as u64;
                (text, tokens)
            }
        };
        RequestSpec {
            id,
            user_id: Some(id),
            round: 1,
            due_s,
            slot_s: None,
            prompt: Prompt::Text(text),
            max_tokens: self.max_tokens,
            client_prompt_tokens: tokens,
            warmup,
            extra: Default::default(),
        }
    }
}

impl Workload for Load {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        match self.schedule {
            Schedule::Paced {
                rate,
                count,
                warmup,
            } => {
                let k = self.next_id;
                (k < count).then(|| self.spec(k as f64 / rate, k < warmup))
            }
            Schedule::Closed {
                streams,
                stagger_s,
                warmup_s,
                ..
            } => {
                if self.started >= streams {
                    return None;
                }
                let due = self.started as f64 * stagger_s;
                self.started += 1;
                Some(self.spec(due, due < warmup_s))
            }
        }
    }

    fn on_complete(&mut self, _done: &Completed, now_s: f64) -> Vec<RequestSpec> {
        match self.schedule {
            Schedule::Closed {
                warmup_s, end_s, ..
            } if now_s < end_s => vec![self.spec(now_s, now_s < warmup_s)],
            _ => Vec::new(),
        }
    }

    fn window(&self) -> Option<(f64, f64)> {
        match self.schedule {
            Schedule::Paced {
                rate,
                count,
                warmup,
            } => Some((warmup as f64 / rate, count as f64 / rate)),
            Schedule::Closed {
                warmup_s, end_s, ..
            } => Some((warmup_s, end_s)),
        }
    }
}

// ---- one measured run ---------------------------------------------------------------------

/// Exact per-request errors against the engine's fixed timing.
#[derive(Default)]
struct Errors {
    ttft_ms: f64,
    itl_ms: f64,
    ttft: Vec<f64>,
    itl: Vec<f64>,
}

impl Errors {
    fn add(&mut self, r: &RequestRecord) {
        if r.warmup || !r.ok() {
            return;
        }
        if let Some(first) = r.first_token_s {
            self.ttft.push((first - r.sent_s) * 1e3 - self.ttft_ms);
        }
        for w in r.chunk_times_s.windows(2) {
            self.itl.push((w[1] - w[0]) * 1e3 - self.itl_ms);
        }
    }
}

struct Outcome {
    summary: Summary,
    stats: RunStats,
    errors: Option<Errors>,
    records_written: u64,
    records_bytes: u64,
    write_error: Option<String>,
    wall_s: f64,
    cpu: CpuUse,
}

fn client_for(sim: &Sim, c: &Common) -> anyhow::Result<Client> {
    Client::new(ClientConfig {
        base_url: sim.base_url(),
        model: SimConfig::default().model,
        api: match c.api {
            Api::Completions => ApiType::Completions,
            Api::Chat => ApiType::Chat,
        },
        request_timeout: Duration::from_secs(120),
        api_key: None,
        extra_body: Default::default(),
        ca_cert: None,
    })
}

/// Runs `wl` through lmbench's runner and collector on `rt`, recording into `dir`.
#[allow(clippy::too_many_arguments)]
fn drive(
    rt: &tokio::runtime::Runtime,
    sim: &Sim,
    client: &Client,
    wl: Load,
    dir: &Path,
    target_qps: Option<f64>,
    errors: Option<Errors>,
    runner_on_worker: bool,
) -> anyhow::Result<Outcome> {
    let mut writer = ResultWriter::create_with_base(dir, "loadgen")?;
    let cpu0 = CpuSnap::take(sim);
    let started = std::time::Instant::now();
    let (summary, stats, errors, writer, write_error) = rt.block_on(async {
        let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
        // As in `lmbench run`: the collector owns the records, streams them to disk and keeps
        // only what the summary needs.
        let collector = tokio::spawn(async move {
            let mut agg = Aggregator::new();
            let mut errors = errors;
            let mut write_error = None;
            while let Some(rec) = rx.recv().await {
                agg.add(&rec);
                if let Some(e) = errors.as_mut() {
                    e.add(&rec);
                }
                if write_error.is_none() {
                    if let Err(e) = writer.write_record(&rec) {
                        write_error = Some(e.to_string());
                    }
                }
            }
            (agg, errors, writer, write_error)
        });
        let client = client.clone();
        let run = async move {
            let cancel = CancellationToken::new();
            let done = runner::run(Box::new(wl), &client, &cancel, tx).await;
            (done.stats, done.workload)
        };
        // `lmbench run` drives the runner from `block_on` (the main thread); a worker thread
        // is the alternative measured with --runner-on worker.
        let (stats, wl) = if runner_on_worker {
            tokio::spawn(run).await?
        } else {
            run.await
        };
        let (agg, errors, writer, write_error) = collector.await?;
        let window = wl.window();
        let summary = agg.finish(&SummaryContext {
            target_qps,
            run_duration_s: window.map(|(a, b)| b - a),
            api: Default::default(),
            capped: false,
        });
        anyhow::Ok((summary, stats, errors, writer, write_error))
    })?;
    let wall_s = started.elapsed().as_secs_f64();
    let cpu = CpuUse::between(cpu0, CpuSnap::take(sim), wall_s);
    let records_written = writer.records_written();
    let result = lmbench::results::ResultFile {
        name: "loadgen".into(),
        session_id: None,
        timestamp: String::new(),
        results: summary
            .results_json()
            .as_object()
            .cloned()
            .unwrap_or_default(),
        infra: serde_json::Value::Null,
        serving: Default::default(),
        workload: serde_json::Map::from_iter([("WORKLOAD".to_string(), "loadgen".into())]),
        schema_version: None,
        lmbench: Some(lmbench::results::LmbenchBlock {
            run: lmbench::results::RunInfo {
                scheduler: Some(stats.clone()),
                ..Default::default()
            },
            ..Default::default()
        }),
    };
    let json = writer.finish(&result)?;
    let jsonl = json.with_file_name(format!(
        "{}{}",
        json.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("loadgen"),
        lmbench::results::REQUESTS_SUFFIX
    ));
    let records_bytes = std::fs::metadata(&jsonl).map_or(0, |m| m.len());
    Ok(Outcome {
        summary,
        stats,
        errors,
        records_written,
        records_bytes,
        write_error,
        wall_s,
        cpu,
    })
}

/// The directory records go to: `--keep-records DIR`, or a temporary one removed at the end.
fn records_dir(c: &Common) -> anyhow::Result<(Option<tempfile::TempDir>, std::path::PathBuf)> {
    match &c.keep_records {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            Ok((None, d.clone()))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("lmbench-loadgen-")
                .tempdir()?;
            let p = t.path().to_path_buf();
            Ok((Some(t), p))
        }
    }
}

/// Removes the previous run's files from a temporary records directory.
fn clear_dir(temp: &Option<tempfile::TempDir>) {
    if let Some(t) = temp {
        if let Ok(rd) = std::fs::read_dir(t.path()) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn opt(x: Option<f64>, dp: usize) -> String {
    x.filter(|v| v.is_finite())
        .map_or_else(|| "-".to_string(), |v| format!("{v:.dp$}"))
}

fn p(sorted: &[f64], q: f64) -> Option<f64> {
    (!sorted.is_empty()).then(|| percentile(sorted, q))
}

fn failures(s: &Summary) -> String {
    if s.failed_requests == 0 {
        return "0".into();
    }
    let causes: Vec<String> = s
        .failures_by_cause
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    format!("{} ({})", s.failed_requests, causes.join(", "))
}

// ---- error-budget -------------------------------------------------------------------------

impl ErrorBudgetArgs {
    /// The stream counts and durations make sense.
    fn check(&self) -> anyhow::Result<()> {
        if self.streams.is_empty() || self.streams.contains(&0) {
            bail!("--streams must list stream counts of at least 1");
        }
        if self.duration <= 0.0 || self.warmup < 0.0 {
            bail!("--duration must be positive and --warmup not negative");
        }
        Ok(())
    }

    /// The `engine:` and `load:` lines of the report.
    fn setup_lines(&self) -> [String; 2] {
        let c = &self.common;
        [
            format!(
                "engine: lmbench sim, fixed mode, ttftMs {} itlMs {}, {} output tokens, prompt {} \
                 tokens ({}), {} API, {}",
                self.ttft_ms,
                self.itl_ms,
                c.max_tokens,
                c.prompt_tokens,
                prompts_name(c.prompts),
                api_name(c.api),
                engine_desc(c)
            ),
            format!(
                "load: N streams kept in flight (closed loop; stream i starts at i/N of one \
                 request's duration), {} s warmup + {} s measured per N",
                self.warmup, self.duration
            ),
        ]
    }
}

fn error_budget(a: &ErrorBudgetArgs) -> anyhow::Result<()> {
    let c = &a.common;
    a.check()?;
    let most = a.streams.iter().copied().max().unwrap_or(1);
    check_open_files(most * if c.sim == SimPlace::Thread { 2 } else { 1 } + 256);
    println!("# lmbench measurement error budget");
    println!("machine: {}", machine());
    let [engine, load] = a.setup_lines();
    println!("{engine}");
    println!("{load}");
    println!(
        "TTFT error = (first chunk − sent) − ttftMs per request; ITL error = gap between \
         consecutive content chunks − itlMs; ms"
    );
    println!();
    let header = "| streams | requests | TTFT err p50 | TTFT err p99 | TTFT err min | ITL err p50 | ITL err p99 | ITL err min | gaps < ITL/2 | send lag p99 | failed | loadgen CPU | engine CPU | other CPU |";
    println!("{header}");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (temp, dir) = records_dir(c)?;
    let rt = runtime(c.threads)?;
    let request_s = (a.ttft_ms + a.itl_ms * f64::from(c.max_tokens.saturating_sub(1))) / 1e3;
    let mut checks = Vec::new();
    for &n in &a.streams {
        let sim = Sim::start(c, &fixed_engine(a.ttft_ms, a.itl_ms))?;
        let client = client_for(&sim, c)?;
        let wl = Load::new(
            Schedule::Closed {
                streams: n,
                stagger_s: request_s / n as f64,
                warmup_s: a.warmup,
                end_s: a.warmup + a.duration,
            },
            c,
        );
        clear_dir(&temp);
        let errors = Errors {
            ttft_ms: a.ttft_ms,
            itl_ms: a.itl_ms,
            ..Default::default()
        };
        let out = drive(
            &rt,
            &sim,
            &client,
            wl,
            &dir,
            None,
            Some(errors),
            c.runner_on == RunnerOn::Worker,
        )?;
        sim.stop()?;
        let mut e = out.errors.unwrap_or_default();
        e.ttft.sort_unstable_by(f64::total_cmp);
        e.itl.sort_unstable_by(f64::total_cmp);
        let coalesced = e.itl.iter().filter(|x| **x < -a.itl_ms / 2.0).count();
        let s = &out.summary;
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.total_requests,
            opt(p(&e.ttft, 0.5), 2),
            opt(p(&e.ttft, 0.99), 2),
            opt(e.ttft.first().copied(), 2),
            opt(p(&e.itl, 0.5), 2),
            opt(p(&e.itl, 0.99), 2),
            opt(e.itl.first().copied(), 2),
            format_args!(
                "{:.2} %",
                coalesced as f64 / e.itl.len().max(1) as f64 * 100.0
            ),
            opt(s.send_lag_ms.p99, 2),
            failures(s),
            opt(out.cpu.lg, 2),
            opt(out.cpu.sim, 2),
            opt(out.cpu.other, 2),
        );
        // The summary lmbench writes must say the same (its ITL percentiles come from an HDR
        // histogram with 3 significant digits).
        if let LmbenchResults::Metrics(m) = &s.lmbench {
            checks.push(format!(
                "N={n}: summary ttft_ms p50 {} p99 {}, inter_token_latency_ms p50 {} p99 {}, \
                 max in flight {}, {} records ({:.1} MB) written",
                opt(m.ttft_ms.median, 2),
                opt(m.ttft_ms.p99, 2),
                opt(s.inter_token_latency_ms.median, 2),
                opt(s.inter_token_latency_ms.p99, 2),
                out.stats.max_in_flight,
                out.records_written,
                out.records_bytes as f64 / 1e6,
            ));
        }
        if let Some(w) = &out.write_error {
            checks.push(format!("N={n}: writing records failed: {w}"));
        }
    }
    println!();
    println!(
        "CPU columns: cores used on average (user+system time ÷ wall time); other = the rest of \
         the machine (other processes, hypervisor steal). The error includes the engine's own \
         scheduling on the same machine."
    );
    for line in checks {
        println!("{line}");
    }
    Ok(())
}

fn api_name(a: Api) -> &'static str {
    match a {
        Api::Completions => "completions",
        Api::Chat => "chat",
    }
}

fn prompts_name(p: Prompts) -> &'static str {
    match p {
        Prompts::Fixed => "fixed filler",
        Prompts::Random => "random filler counted per request",
    }
}

fn engine_desc(c: &Common) -> String {
    let place = match c.sim {
        SimPlace::Process => "engine in a child process",
        SimPlace::Thread => "engine in this process (own runtime)",
    };
    let threads = match c.sim_threads {
        0 => "one worker per CPU".to_string(),
        1 => "1 worker thread".to_string(),
        n => format!("{n} worker threads"),
    };
    let lg = match c.threads {
        Some(n) => format!("{n} worker threads"),
        None => "one worker per CPU".to_string(),
    };
    let runner = match c.runner_on {
        RunnerOn::Main => "runner on block_on's thread",
        RunnerOn::Worker => "runner on a worker",
    };
    format!("{place}, {threads}; load generator: {lg}, {runner}, requests on its send thread")
}

// ---- max-rate -----------------------------------------------------------------------------

fn max_rate(a: &MaxRateArgs) -> anyhow::Result<()> {
    let c = &a.common;
    if a.rates.is_empty() || a.rates.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        bail!("--rates must list positive rates");
    }
    if a.duration <= 0.0 || a.warmup < 0.0 {
        bail!("--duration must be positive and --warmup not negative");
    }
    if !(a.itl_ms.is_finite() && a.itl_ms >= 0.0) {
        bail!("--itl-ms must not be negative");
    }
    check_open_files(4096);
    println!("# lmbench load generator: highest sustained rate");
    println!("machine: {}", machine());
    let latency = if a.itl_ms == 0.0 {
        "ttftMs 0 itlMs 0 (zero latency)".to_string()
    } else {
        format!("ttftMs 0 itlMs {} (one write per token)", a.itl_ms)
    };
    println!(
        "engine: lmbench sim, fixed mode, {latency}, loopback, {}",
        engine_desc(c)
    );
    println!(
        "load: open loop, evenly spaced, {} output tokens, prompt {} tokens ({}), {} API; {} s warmup \
         + {} s measured per rate; records streamed to disk",
        c.max_tokens,
        c.prompt_tokens,
        prompts_name(c.prompts),
        api_name(c.api),
        a.warmup,
        a.duration
    );
    println!(
        "pass: achieved/target ≥ {}, send lag p99 ≤ {} ms, no failed request",
        a.min_ratio, a.max_lag_p99_ms
    );
    println!();
    println!("| target req/s | achieved req/s | achieved/target | send lag p50 ms | p99 ms | max ms | max in flight | failed | loadgen CPU | engine CPU | other CPU | pass |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|");
    let (temp, dir) = records_dir(c)?;
    let rt = runtime(c.threads)?;
    let sim = Sim::start(c, &fixed_engine(0.0, a.itl_ms))?;
    let mut best: Option<f64> = None;
    let mut failed_in_a_row = 0;
    for &rate in &a.rates {
        if failed_in_a_row >= 2 && !a.all {
            println!("| {rate} | not measured: the two rates before failed (--all measures it) ||||||||||| |");
            continue;
        }
        let client = client_for(&sim, c)?;
        let warmup = (a.warmup * rate).round() as u64;
        let count = warmup + (a.duration * rate).round().max(2.0) as u64;
        let wl = Load::new(
            Schedule::Paced {
                rate,
                count,
                warmup,
            },
            c,
        );
        clear_dir(&temp);
        let out = drive(
            &rt,
            &sim,
            &client,
            wl,
            &dir,
            Some(rate),
            None,
            c.runner_on == RunnerOn::Worker,
        )?;
        let s = &out.summary;
        let ratio = s.achieved_qps.map(|q| q / rate);
        let lag = &s.send_lag_ms;
        let pass = ratio.is_some_and(|r| r >= a.min_ratio)
            && lag.p99.is_some_and(|l| l <= a.max_lag_p99_ms)
            && s.failed_requests == 0
            && out.write_error.is_none();
        if pass {
            best = Some(best.map_or(rate, |b: f64| b.max(rate)));
            failed_in_a_row = 0;
        } else {
            failed_in_a_row += 1;
        }
        println!(
            "| {rate} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            opt(s.achieved_qps, 1),
            opt(ratio, 4),
            opt(lag.median, 3),
            opt(lag.p99, 3),
            opt(lag.max, 2),
            out.stats.max_in_flight,
            failures(s),
            opt(out.cpu.lg, 2),
            opt(out.cpu.sim, 2),
            opt(out.cpu.other, 2),
            if pass { "yes" } else { "no" },
        );
        drop(client);
        // Let the previous rate's connections close before the next one starts.
        std::thread::sleep(Duration::from_millis(500));
    }
    sim.stop()?;
    println!();
    println!(
        "CPU columns: cores used on average (user+system time ÷ wall time, warmup and drain \
         included); other = the rest of the machine (other processes, hypervisor steal)."
    );
    match best {
        Some(b) => println!("highest passing rate: {b} requests/s"),
        None => println!("highest passing rate: none of the rates passed"),
    }
    Ok(())
}

// ---- memory -------------------------------------------------------------------------------

fn memory(a: &MemoryArgs) -> anyhow::Result<()> {
    let c = &a.common;
    if a.requests < 2 || !(a.rate.is_finite() && a.rate > 0.0) {
        bail!("--requests must be at least 2 and --rate positive");
    }
    check_open_files(4096);
    println!("# lmbench load generator: peak memory");
    println!("machine: {}", machine());
    println!(
        "load: {} requests at {} req/s, open loop, {} output tokens, prompt {} tokens ({}), against \
         the zero-latency engine ({}); every record streamed to disk, the summary kept in memory",
        a.requests,
        a.rate,
        c.max_tokens,
        c.prompt_tokens,
        prompts_name(c.prompts),
        engine_desc(c)
    );
    let (_temp, dir) = records_dir(c)?;
    let rt = runtime(c.threads)?;
    let sim = Sim::start(c, &fixed_engine(0.0, 0.0))?;
    let client = client_for(&sim, c)?;
    let rss_before = proc_status_kib("self", "VmRSS").unwrap_or(0);
    let wl = Load::new(
        Schedule::Paced {
            rate: a.rate,
            count: a.requests,
            warmup: 0,
        },
        c,
    );
    let out = drive(
        &rt,
        &sim,
        &client,
        wl,
        &dir,
        Some(a.rate),
        None,
        c.runner_on == RunnerOn::Worker,
    )?;
    let peak = proc_status_kib("self", "VmHWM").unwrap_or(0);
    let rss_after = proc_status_kib("self", "VmRSS").unwrap_or(0);
    let sim_peak = sim.peak_rss_kib();
    sim.stop()?;
    let s = &out.summary;
    let mib = |k: u64| k as f64 / 1024.0;
    println!();
    println!("| what | value |");
    println!("|---|---:|");
    println!("| requests recorded | {} |", out.records_written);
    println!("| failed | {} |", failures(s));
    println!(
        "| achieved req/s (target {}) | {} |",
        a.rate,
        opt(s.achieved_qps, 1)
    );
    println!("| send lag p99 | {} ms |", opt(s.send_lag_ms.p99, 3));
    println!("| max in flight | {} |", out.stats.max_in_flight);
    println!("| wall time | {:.1} s |", out.wall_s);
    println!(
        "| records on disk (JSONL) | {:.1} MB |",
        out.records_bytes as f64 / 1e6
    );
    println!(
        "| load generator RSS before the run | {:.1} MiB |",
        mib(rss_before)
    );
    println!(
        "| **load generator peak RSS (VmHWM)** | **{:.1} MiB** |",
        mib(peak)
    );
    println!(
        "| load generator RSS after the run | {:.1} MiB |",
        mib(rss_after)
    );
    println!(
        "| engine peak RSS ({}) | {} |",
        if sim_peak.is_some() {
            "its own process"
        } else {
            "in this process: included above"
        },
        sim_peak.map_or("-".into(), |k| format!("{:.1} MiB", mib(k)))
    );
    println!(
        "| CPU: load generator / engine / other | {} / {} / {} cores |",
        opt(out.cpu.lg, 2),
        opt(out.cpu.sim, 2),
        opt(out.cpu.other, 2)
    );
    if let Some(w) = &out.write_error {
        return Err(anyhow!("writing records failed: {w}"));
    }
    if out.records_written != a.requests {
        bail!(
            "recorded {} of {} requests",
            out.records_written,
            a.requests
        );
    }
    Ok(())
}
