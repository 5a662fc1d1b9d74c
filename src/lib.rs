//! lmbench: benchmark LLM serving systems.
//!
//! Crate map, in the order a benchmark flows:
//! - [`config`]: run-bench.yaml and spec files → typed, validated [`config::LoadedConfig`].
//! - [`plan`]: pure expansion into runs (baseline × workload item × QPS point).
//! - [`deploy`]: bring a baseline up (supervised local process group), wait for readiness,
//!   tear it down.
//! - [`workload`]: what to send and when ([`record::RequestSpec`]s), and the open-loop runner.
//! - [`client`]: OpenAI-compatible streaming client; one [`record::RequestRecord`] per request.
//! - [`measure`]: records → summary statistics.
//! - [`results`]: LMBench-compatible result files.
//! - [`report`]: comparison JSON/PNG per suite and `report.html`.
//! - [`upload`]: sending result files to a dashboard.
//! - [`sim`]: the built-in simulated OpenAI-compatible engine.
//! - [`orchestrate`]: drives all of the above for `lmbench run`.

pub mod cli;
pub mod client;
pub mod config;
pub mod deploy;
pub mod infra;
pub mod measure;
pub mod orchestrate;
pub mod plan;
pub mod progress;
pub mod record;
pub mod report;
pub mod results;
pub mod sim;
pub mod upload;
pub mod workload;

use cli::{ApiTypeArg, Cli, Command, ConfigArg, SimArgs, SimMode, StartFrom};
use orchestrate::exit;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default suite: run-bench.yaml and its spec, used when no configuration is given
/// and ./run-bench.yaml does not exist.
pub const DEFAULT_RUN_BENCH: &str = include_str!("../run-bench.yaml");
/// The default suite's spec (`0-bench-specs/default/simulated-demo.yaml`).
pub const DEFAULT_SPEC: &str = include_str!("../0-bench-specs/default/simulated-demo.yaml");

/// Print one line to stdout; a closed pipe (`lmbench plan | head`) is not an error.
pub fn out(line: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
}

/// Where the configuration comes from.
struct ResolvedConfig {
    path: PathBuf,
    embedded: bool,
}

fn resolve_config(arg: &ConfigArg) -> std::io::Result<ResolvedConfig> {
    if let Some(p) = &arg.config {
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

fn load_config(arg: &ConfigArg) -> Result<(ResolvedConfig, config::LoadedConfig), u8> {
    let resolved = resolve_config(arg).map_err(|e| {
        eprintln!("error: cannot prepare the default configuration: {e}");
        exit::RUN_FAILED
    })?;
    let token = std::env::var("HF_TOKEN").ok();
    let loaded = if arg.specs.is_empty() {
        config::load(&resolved.path, token.as_deref())
    } else {
        config::load_with_specs(&resolved.path, token.as_deref(), &arg.specs)
    };
    match loaded {
        Ok(cfg) => {
            for w in &cfg.warnings {
                tracing::warn!("{w}");
            }
            Ok((resolved, cfg))
        }
        Err(e) => {
            eprint!("{e}");
            Err(exit::BAD_INPUT)
        }
    }
}

/// Run a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> u8 {
    match cli.command {
        Command::Validate(c) => match load_config(&c) {
            Ok((r, cfg)) => {
                let runs = plan::build(&cfg, plan::new_session_id()).runs.len();
                out(&format!(
                    "{}: valid ({} suite(s), {} run(s))",
                    r.path.display(),
                    cfg.suites.len(),
                    runs
                ));
                exit::OK
            }
            Err(code) => code,
        },
        Command::Plan(p) => match load_config(&p.config) {
            Ok((_, cfg)) => {
                let plan = plan::build(&cfg, plan::new_session_id());
                if p.json {
                    match serde_json::to_string_pretty(&plan) {
                        Ok(s) => out(&s),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return exit::RUN_FAILED;
                        }
                    }
                } else {
                    out(plan::render_table(&plan).trim_end());
                }
                exit::OK
            }
            Err(code) => code,
        },
        Command::Run(r) => {
            if r.start_from == StartFrom::Workloads && (r.model_url.is_none() || r.key.is_none()) {
                eprintln!("error: --start-from 3 needs --model-url and --key");
                return exit::BAD_INPUT;
            }
            if let Some(d) = r.duration {
                if !(d.is_finite() && d > 0.0) {
                    eprintln!("error: --duration must be a positive number of seconds");
                    return exit::BAD_INPUT;
                }
            }
            let (resolved, cfg) = match load_config(&r.config) {
                Ok(x) => x,
                Err(code) => return code,
            };
            if let Some(id) = &r.resume {
                if !plan::is_session_id(id) {
                    eprintln!("error: --resume expects a session id like lmbench-1752247763-b7e503a8, got `{id}`");
                    return exit::BAD_INPUT;
                }
            }
            let session = r.resume.clone().unwrap_or_else(plan::new_session_id);
            let plan = plan::build(&cfg, session);
            for w in &plan.warnings {
                tracing::warn!("{w}");
            }
            if cfg.infra.location == config::Location::NoBench {
                eprint!("{}", plan::render_table(&plan));
                eprintln!("Location is NoBench: not running any benchmarks");
                return exit::OK;
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
                plan.runs.len(),
                plan::fmt_duration(plan.estimated_total_s),
                results_dir.display()
            );
            let opts = orchestrate::RunOptions {
                results_dir,
                start_from: match r.start_from {
                    StartFrom::Infra => 1,
                    StartFrom::Baselines => 2,
                    StartFrom::Workloads => 3,
                },
                model_url: r.model_url,
                key: r.key,
                api_type: match r.api_type {
                    ApiTypeArg::Completions => record::ApiType::Completions,
                    ApiTypeArg::Chat => record::ApiType::Chat,
                },
                port: r.port,
                duration_override_s: r.duration,
                resume: r.resume.is_some(),
                upload_url: r.upload_url,
                upload_token: r.upload_token,
                ready_timeout: Duration::from_secs_f64(r.ready_timeout.max(0.1)),
                request_timeout: Duration::from_secs_f64(r.request_timeout.max(0.1)),
            };
            let cancel = tokio_util::sync::CancellationToken::new();
            orchestrate::install_signal_handler(cancel.clone());
            let code = orchestrate::run_plan(&cfg, &plan, &opts, &cancel).await;
            if resolved.embedded {
                if let Some(dir) = resolved.path.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            code
        }
        Command::Sim(s) => run_sim(s).await,
        Command::Report(r) => report::run_report(&report::ReportOptions {
            suite_dir: r.suite_dir,
            session: r.session,
            all: r.all,
        }),
        Command::Upload(u) => {
            match upload::upload_path(&u.path, &u.url, u.token.as_deref()).await {
                Ok(sum) => {
                    for p in &sum.uploaded {
                        out(&p.display().to_string());
                    }
                    exit::OK
                }
                Err(e) => {
                    eprintln!("error: upload failed: {e:#}");
                    exit::RUN_FAILED
                }
            }
        }
    }
}

/// Build the simulated engine's settings from the `sim` flags.
pub fn sim_config_from_args(s: &SimArgs) -> Result<sim::SimConfig, String> {
    let mut m = match &s.config_json {
        Some(j) => match serde_json::from_str::<serde_json::Value>(j) {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => return Err("--config-json must be a JSON object".into()),
            Err(e) => return Err(format!("--config-json is not valid JSON: {e}")),
        },
        None => serde_json::Map::new(),
    };
    if let Some(mode) = s.mode {
        let v = match mode {
            SimMode::Fixed => "fixed",
            SimMode::Engine => "engine",
        };
        m.insert("mode".into(), v.into());
    }
    if let Some(v) = &s.model {
        m.insert("model".into(), v.clone().into());
    }
    if let Some(v) = s.ttft_ms {
        m.insert("ttftMs".into(), v.into());
    }
    if let Some(v) = s.itl_ms {
        m.insert("itlMs".into(), v.into());
    }
    if let Some(v) = s.seed {
        m.insert("seed".into(), v.into());
    }
    for kv in &s.set {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(format!("--set expects KEY=VALUE, got `{kv}`"));
        };
        let val =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
        m.insert(k.trim().to_string(), val);
    }
    serde_json::from_value(serde_json::Value::Object(m))
        .map_err(|e| format!("invalid simulated-engine setting: {e}"))
}

async fn run_sim(s: SimArgs) -> u8 {
    let cfg = match sim_config_from_args(&s) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let addr = format!("{}:{}", s.host, s.port);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {addr}: {e}");
            return exit::RUN_FAILED;
        }
    };
    tracing::info!("simulated engine listening on http://{addr}");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let sd = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        match term.as_mut() {
            Some(t) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = t.recv() => {},
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        sd.cancel();
    });
    match sim::serve(listener, cfg, shutdown).await {
        Ok(()) => exit::OK,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::RUN_FAILED
        }
    }
}

/// Resolve `path` against `root` unless it is absolute.
pub fn resolve(root: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    }
}
