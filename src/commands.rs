//! The subcommands, each from a plain [`Request`] (built from the command line in `cli`) to an
//! [`ExitCode`]: `validate`, `plan`, `run`, `sim`, `report`, `upload`.
//!
//! Also where the configuration comes from: `-c`, else `./run-bench.yaml`, else the embedded
//! default suite (written to a temporary folder for the run and removed afterwards).

use crate::exit::{out, ExitCode};
use crate::orchestrate::{RunOptions, StartFrom};
use crate::record::ApiType;
use crate::report::Selection;
use crate::suite::LoadedConfig;
use crate::{plan, report, sim, suite, upload};
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The embedded default suite: run-bench.yaml and its spec, used when no configuration is given
/// and ./run-bench.yaml does not exist.
pub const DEFAULT_RUN_BENCH: &str = include_str!("../run-bench.yaml");
/// The default suite's spec (`0-bench-specs/default/simulated-demo.yaml`).
pub const DEFAULT_SPEC: &str = include_str!("../0-bench-specs/default/simulated-demo.yaml");

/// Where the configuration comes from.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// `-c`: run-bench.yaml.
    pub path: Option<PathBuf>,
    /// `--spec`: spec files or folders replacing run-bench.yaml's list.
    pub specs: Vec<String>,
    /// `--repeats`: every item's REPEATS, overridden (searching items excepted).
    pub repeats: Option<u32>,
}

/// `lmbench run`'s options as given.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The configuration.
    pub config: ConfigSource,
    /// `--results-dir`.
    pub results_dir: Option<PathBuf>,
    /// `--start-from`.
    pub start_from: StartFrom,
    /// `--model-url`.
    pub model_url: Option<String>,
    /// `--key`.
    pub key: Option<String>,
    /// `--api-type`.
    pub api_type: ApiType,
    /// `--port`.
    pub port: u16,
    /// `--duration`, seconds.
    pub duration: Option<f64>,
    /// `--ready-timeout`, seconds.
    pub ready_timeout: f64,
    /// `--request-timeout`, seconds.
    pub request_timeout: f64,
    /// `--send-lag-budget-ms`.
    pub send_lag_budget_ms: f64,
    /// `--resume`.
    pub resume: Option<String>,
    /// `--upload-url`.
    pub upload_url: Option<String>,
    /// `--upload-token`.
    pub upload_token: Option<String>,
}

/// What the command line asks for, in plain types.
#[derive(Debug)]
pub enum Request {
    /// `lmbench validate`.
    Validate(ConfigSource),
    /// `lmbench plan`.
    Plan {
        /// The configuration.
        config: ConfigSource,
        /// `--json`.
        json: bool,
    },
    /// `lmbench run`.
    Run(Box<RunRequest>),
    /// `lmbench sim`.
    Sim {
        /// `host:port` to listen on.
        addr: String,
        /// The engine's settings, or why they are invalid.
        config: Result<Box<sim::SimConfig>, String>,
    },
    /// `lmbench report`.
    Report {
        /// The suite folder.
        suite_dir: PathBuf,
        /// Which sessions.
        selection: Selection,
    },
    /// `lmbench upload`.
    Upload {
        /// A result file or a suite folder.
        path: PathBuf,
        /// The upload endpoint.
        url: String,
        /// Bearer token.
        token: Option<String>,
    },
}

/// Carry out a request; the process's exit code.
pub async fn execute(req: Request) -> anyhow::Result<ExitCode> {
    // Every request in flight holds a socket: the soft open-file limit (often 1,024) goes up to
    // the hard one before anything is opened.
    if matches!(req, Request::Run(_) | Request::Sim { .. }) {
        crate::limits::raise_open_file_limit();
    }
    Ok(match req {
        Request::Validate(c) => validate(&c),
        Request::Plan { config, json } => print_plan(&config, json),
        Request::Run(r) => run(*r).await,
        Request::Sim { addr, config } => serve_sim(&addr, config).await,
        Request::Report {
            suite_dir,
            selection,
        } => report(&suite_dir, &selection),
        Request::Upload { path, url, token } => {
            match upload::upload_path(&path, &url, token.as_deref()).await {
                Ok(sum) => {
                    for p in &sum.uploaded {
                        out(&p.display().to_string());
                    }
                    ExitCode::Ok
                }
                Err(e) => {
                    eprintln!("error: upload failed: {e:#}");
                    ExitCode::RunFailed
                }
            }
        }
    })
}

/// Where the configuration comes from, once resolved.
struct ResolvedConfig {
    path: PathBuf,
    embedded: bool,
}

fn resolve_config(src: &ConfigSource) -> std::io::Result<ResolvedConfig> {
    if let Some(p) = &src.path {
        return Ok(ResolvedConfig {
            path: p.clone(),
            embedded: false,
        });
    }
    let local = PathBuf::from("run-bench.yaml");
    if local.is_file() {
        return Ok(ResolvedConfig {
            path: local,
            embedded: false,
        });
    }
    let dir = std::env::temp_dir().join(format!("lmbench-default-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("0-bench-specs/default"))?;
    std::fs::write(dir.join("run-bench.yaml"), DEFAULT_RUN_BENCH)?;
    std::fs::write(
        dir.join("0-bench-specs/default/simulated-demo.yaml"),
        DEFAULT_SPEC,
    )?;
    tracing::info!(
        "no run-bench.yaml here: using the embedded default suite (simulated engine, no GPU)"
    );
    Ok(ResolvedConfig {
        path: dir.join("run-bench.yaml"),
        embedded: true,
    })
}

fn load_config(src: &ConfigSource) -> Result<(ResolvedConfig, LoadedConfig), ExitCode> {
    let resolved = resolve_config(src).map_err(|e| {
        eprintln!("error: cannot prepare the default configuration: {e}");
        ExitCode::RunFailed
    })?;
    let token = std::env::var("HF_TOKEN").ok();
    let loaded = if src.specs.is_empty() {
        suite::load(&resolved.path, token.as_deref())
    } else {
        suite::load_with_specs(&resolved.path, token.as_deref(), &src.specs)
    };
    match loaded {
        Ok(mut cfg) => {
            if let Some(n) = src.repeats {
                for item in cfg.suites.iter_mut().flat_map(|s| s.workloads.iter_mut()) {
                    if item.search.is_none() {
                        item.repeats = n;
                    }
                }
            }
            for w in &cfg.warnings {
                tracing::warn!("{w}");
            }
            Ok((resolved, cfg))
        }
        Err(e) => {
            eprint!("{e}");
            Err(ExitCode::BadInput)
        }
    }
}

fn validate(src: &ConfigSource) -> ExitCode {
    match load_config(src) {
        Ok((r, cfg)) => {
            let runs = plan::build(&cfg, plan::new_session_id()).run_count();
            out(&format!(
                "{}: valid ({} suite(s), {} run(s))",
                r.path.display(),
                cfg.suites.len(),
                runs
            ));
            ExitCode::Ok
        }
        Err(code) => code,
    }
}

fn print_plan(src: &ConfigSource, json: bool) -> ExitCode {
    let cfg = match load_config(src) {
        Ok((_, cfg)) => cfg,
        Err(code) => return code,
    };
    let plan = plan::build(&cfg, plan::new_session_id());
    if json {
        match serde_json::to_string_pretty(&plan.to_json()) {
            Ok(s) => out(&s),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::RunFailed;
            }
        }
    } else {
        out(plan::render_table(&plan).trim_end());
    }
    ExitCode::Ok
}

async fn run(r: RunRequest) -> ExitCode {
    if r.start_from == StartFrom::Workloads && (r.model_url.is_none() || r.key.is_none()) {
        eprintln!("error: --start-from 3 needs --model-url and --key");
        return ExitCode::BadInput;
    }
    if let Some(d) = r.duration {
        if !(d.is_finite() && d > 0.0) {
            eprintln!("error: --duration must be a positive number of seconds");
            return ExitCode::BadInput;
        }
    }
    let (resolved, cfg) = match load_config(&r.config) {
        Ok(x) => x,
        Err(code) => return code,
    };
    if let Some(id) = &r.resume {
        if !plan::is_session_id(id) {
            eprintln!(
                "error: --resume expects a session id like lmbench-1752247763-b7e503a8, got `{id}`"
            );
            return ExitCode::BadInput;
        }
    }
    let session = r.resume.clone().unwrap_or_else(plan::new_session_id);
    let plan = plan::build(&cfg, session);
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    if cfg.infra.location == crate::config::Location::NoBench {
        eprint!("{}", plan::render_table(&plan));
        eprintln!("Location is NoBench: not running any benchmarks");
        return ExitCode::Ok;
    }
    if let Err(problems) = open_files_fit(&plan, r.start_from) {
        for p in problems {
            eprintln!("error: {p}");
        }
        return ExitCode::BadInput;
    }
    let results_dir = r.results_dir.clone().unwrap_or_else(|| {
        if resolved.embedded {
            PathBuf::from("4-latest-results")
        } else {
            cfg.root.join("4-latest-results")
        }
    });
    tracing::info!(
        "session {}: {} run(s), estimated {}, results in {}",
        plan.session_id,
        plan.run_count(),
        plan::fmt_duration(plan.estimated_total_s),
        results_dir.display()
    );
    let opts = RunOptions {
        results_dir,
        start_from: r.start_from,
        model_url: r.model_url,
        key: r.key,
        api_type: r.api_type,
        port: r.port,
        duration_override_s: r.duration,
        resume: r.resume.is_some(),
        upload_url: r.upload_url,
        upload_token: r.upload_token,
        ready_timeout: Duration::from_secs_f64(r.ready_timeout.max(0.1)),
        request_timeout: Duration::from_secs_f64(r.request_timeout.max(0.1)),
        send_lag_budget_ms: r.send_lag_budget_ms,
    };
    let cancel = CancellationToken::new();
    crate::signals::on_interrupt(
        cancel.clone(),
        Some("interrupted: cancelling in-flight requests and tearing down (press Ctrl-C again to force)"),
        || {
            let killed = crate::deploy::local::kill_all_live_groups();
            eprintln!("forced exit (killed {killed} engine process group(s))");
            std::process::exit(i32::from(ExitCode::Interrupted.code()));
        },
    );
    let code = crate::orchestrate::run_plan(&cfg, &plan, &opts, &cancel).await;
    if resolved.embedded {
        if let Some(dir) = resolved.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    code
}

/// Every run whose concurrency is known beforehand must fit the open-file limit: checked
/// before anything is deployed, every problem reported. The one such key is VLLMBenchmark's
/// `MAX_CONCURRENCY` (read from the item as written); open-loop runs have no bound to check,
/// and a connect that fails for want of descriptors says so in its record instead.
fn open_files_fit(plan: &plan::RunPlan, start_from: StartFrom) -> Result<(), Vec<String>> {
    use crate::baseline::Hosting;
    let mut problems = std::collections::BTreeSet::new();
    for run in plan.runs() {
        let Some(cap) = run
            .item
            .written
            .get("MAX_CONCURRENCY")
            .and_then(serde_json::Value::as_u64)
        else {
            continue;
        };
        // Through lmbench's port-forward a request holds the client's socket, the accepted
        // one and the stream to the API server; a local engine's sockets are its own.
        let per_request = match run.baseline.ty.hosting {
            Hosting::Cluster if start_from != StartFrom::Workloads => 3,
            _ => 1,
        };
        if let Err(e) = crate::limits::check_open_files(cap, per_request, "MAX_CONCURRENCY") {
            let line = run
                .item
                .line
                .map_or(String::new(), |l| format!(" (line {l})"));
            problems.insert(format!(
                "suite {}, {} item {}{line}, baseline {}: {e}",
                run.suite,
                run.item.type_name,
                run.item.index + 1,
                run.baseline_key
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.into_iter().collect())
    }
}

async fn serve_sim(addr: &str, config: Result<Box<sim::SimConfig>, String>) -> ExitCode {
    let cfg = match config {
        Ok(c) => *c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::BadInput;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return ExitCode::RunFailed;
        }
    };
    tracing::info!("simulated engine listening on http://{addr}");
    let shutdown = CancellationToken::new();
    crate::signals::on_interrupt(shutdown.clone(), None, || {
        std::process::exit(i32::from(ExitCode::Interrupted.code()))
    });
    match sim::serve(listener, cfg, shutdown).await {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::RunFailed
        }
    }
}

/// `lmbench report`: 0 written; 2 no such folder, no result files or an unknown session; 1 a
/// file could not be written.
pub fn report(suite_dir: &std::path::Path, selection: &Selection) -> ExitCode {
    match report::generate(suite_dir, selection) {
        Ok(g) => {
            for f in &g.written {
                out(&f.display().to_string());
            }
            for e in &g.errors {
                eprintln!("error: {e}");
            }
            if g.errors.is_empty() {
                ExitCode::Ok
            } else {
                ExitCode::RunFailed
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            if e.is_bad_input() {
                ExitCode::BadInput
            } else {
                ExitCode::RunFailed
            }
        }
    }
}
