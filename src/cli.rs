//! The command line (clap). Clap types stay in this file: [`Cli::into_request`] turns them
//! into the plain [`Request`] the rest of the crate takes.

use crate::commands::{ConfigSource, Request, RunRequest};
use crate::orchestrate::StartFrom as Stage;
use crate::record::ApiType;
use crate::report::Selection;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Benchmark LLM serving systems: deploy baselines, drive open-loop streaming load, write
/// LMBench-compatible results.
#[derive(Debug, Parser)]
#[command(name = "lmbench", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration, deploy each baseline, run every workload, write results.
    Run(RunArgs),
    /// Print the runs the configuration expands into, with a time estimate.
    Plan(PlanArgs),
    /// Check the configuration and report every problem; deploys nothing.
    Validate(ConfigArg),
    /// Serve lmbench's simulated OpenAI-compatible engine.
    Sim(SimArgs),
    /// Regenerate a suite folder's comparison JSON/PNG and write report.html.
    Report(ReportArgs),
    /// Upload result files to a dashboard (LMBench's protocol).
    Upload(UploadArgs),
}

/// `lmbench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The suite folder, e.g. 4-latest-results/<Name>.
    pub suite_dir: PathBuf,
    /// Only this session's results (default: the newest session in the folder).
    #[arg(long, conflicts_with = "all")]
    pub session: Option<String>,
    /// Every session's results together (LMBench's behaviour).
    #[arg(long)]
    pub all: bool,
}

/// `lmbench upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// A result JSON, or a folder whose result JSONs are all uploaded.
    pub path: PathBuf,
    /// The upload endpoint, e.g. http://localhost:3001/upload.
    #[arg(long)]
    pub url: String,
    /// Sent as `Authorization: Bearer …` (never logged).
    #[arg(long, env = "LMBENCH_UPLOAD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The configuration file.
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// run-bench.yaml. When it is not given and ./run-bench.yaml does not exist, the embedded
    /// default suite (simulated engine, no GPU) is used.
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Run these spec files or folders instead of run-bench.yaml's `0-bench-specs` list
    /// (relative to 0-bench-specs/, or absolute). Repeatable.
    #[arg(long = "spec", value_name = "SPEC")]
    pub specs: Vec<String>,
    /// Run every point this many times (each workload item's REPEATS, overridden; SLA search
    /// probes run once): each repeat with its own request stream, and the last one's result
    /// holds the mean, spread and 95 % confidence interval of the headline metrics.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repeats: Option<u32>,
}

/// `lmbench plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The configuration.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which stages `run` performs (LMBench's `--start-from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartFrom {
    /// Infrastructure, baselines and workloads.
    #[value(name = "1")]
    Infra,
    /// Skip infrastructure set-up; deploy baselines and run workloads.
    #[value(name = "2")]
    Baselines,
    /// Only run the workloads against an endpoint that is already up.
    #[value(name = "3")]
    Workloads,
}

/// API type for `--start-from 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiTypeArg {
    /// /v1/completions.
    Completions,
    /// /v1/chat/completions.
    Chat,
}

/// `lmbench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration.
    #[command(flatten)]
    pub config: ConfigArg,
    /// Where result folders go (default: 4-latest-results beside run-bench.yaml).
    #[arg(long)]
    pub results_dir: Option<PathBuf>,
    /// 1 = everything; 2 = skip infrastructure set-up; 3 = only the workloads, against an
    /// endpoint that is already up (needs --model-url and --key).
    #[arg(long, value_enum, default_value = "1")]
    pub start_from: StartFrom,
    /// Model name to send (with --start-from 3).
    #[arg(long)]
    pub model_url: Option<String>,
    /// Baseline key for result file names (with --start-from 3).
    #[arg(long)]
    pub key: Option<String>,
    /// API type (with --start-from 3).
    #[arg(long, value_enum, default_value = "completions")]
    pub api_type: ApiTypeArg,
    /// Port the endpoint answers on (LMBench's 30080). Launch scripts read it as LMBENCH_PORT.
    #[arg(long, default_value_t = 30080, env = "LMBENCH_PORT")]
    pub port: u16,
    /// Override every workload's seconds of sending per point (quick local loops, CI).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Seconds to wait for a deployed baseline to answer GET /v1/models.
    #[arg(long, default_value_t = 900.0, value_name = "SECONDS")]
    pub ready_timeout: f64,
    /// Seconds one request may take, streaming included, before it counts as timed out.
    #[arg(long, default_value_t = 600.0, value_name = "SECONDS")]
    pub request_timeout: f64,
    /// Budget for a point's p99 send lag (how late lmbench sent): a point over it is marked
    /// an invalid measurement (`results.measurement`).
    #[arg(long, default_value_t = crate::measure::verdict::SEND_LAG_BUDGET_MS, value_name = "MS")]
    pub send_lag_budget_ms: f64,
    /// Continue an earlier session: runs whose complete results for that session id are in
    /// the results folder are skipped, the rest run under the same session id.
    #[arg(long, value_name = "SESSION_ID")]
    pub resume: Option<String>,
    /// After the runs, upload every result file of this session to this endpoint (LMBench's
    /// protocol; http:// only); a failed upload makes the exit code 1, the files stay on disk.
    #[arg(long, value_name = "URL")]
    pub upload_url: Option<String>,
    /// Bearer token for --upload-url (never logged).
    #[arg(long, env = "LMBENCH_UPLOAD_TOKEN", hide_env_values = true)]
    pub upload_token: Option<String>,
}

/// Simulated engine mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SimMode {
    /// Exact TTFT and inter-token delay, independent of load.
    Fixed,
    /// Prefill, batched decode, queueing and a prefix cache, like a real engine.
    Engine,
}

/// `lmbench sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 30080)]
    pub port: u16,
    /// fixed or engine.
    #[arg(long, value_enum)]
    pub mode: Option<SimMode>,
    /// Model name served.
    #[arg(long)]
    pub model: Option<String>,
    /// Time to first token in fixed mode (ms).
    #[arg(long)]
    pub ttft_ms: Option<f64>,
    /// Delay between tokens in fixed mode (ms).
    #[arg(long)]
    pub itl_ms: Option<f64>,
    /// Seed of the generated text and of the fault knobs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Any other engine setting, as KEY=VALUE (camelCase keys as in a `Simulated` baseline;
    /// VALUE is read as JSON when it parses, else as a string). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// All settings as one JSON object (applied before the other flags).
    #[arg(long, value_name = "JSON")]
    pub config_json: Option<String>,
}

impl ConfigArg {
    fn source(&self) -> ConfigSource {
        ConfigSource {
            path: self.config.clone(),
            specs: self.specs.clone(),
            repeats: self.repeats,
        }
    }
}

impl Cli {
    /// What the command line asks for, in plain types.
    pub fn into_request(self) -> Request {
        match self.command {
            Command::Validate(c) => Request::Validate(c.source()),
            Command::Plan(p) => Request::Plan {
                config: p.config.source(),
                json: p.json,
            },
            Command::Run(r) => Request::Run(Box::new(RunRequest {
                config: r.config.source(),
                results_dir: r.results_dir,
                start_from: match r.start_from {
                    StartFrom::Infra => Stage::Infra,
                    StartFrom::Baselines => Stage::Baselines,
                    StartFrom::Workloads => Stage::Workloads,
                },
                model_url: r.model_url,
                key: r.key,
                api_type: match r.api_type {
                    ApiTypeArg::Completions => ApiType::Completions,
                    ApiTypeArg::Chat => ApiType::Chat,
                },
                port: r.port,
                duration: r.duration,
                ready_timeout: r.ready_timeout,
                request_timeout: r.request_timeout,
                send_lag_budget_ms: r.send_lag_budget_ms,
                resume: r.resume,
                upload_url: r.upload_url,
                upload_token: r.upload_token,
            })),
            Command::Sim(s) => Request::Sim {
                addr: format!("{}:{}", s.host, s.port),
                config: sim_config(&s).map(Box::new),
            },
            Command::Report(r) => Request::Report {
                suite_dir: r.suite_dir,
                selection: if r.all {
                    Selection::All
                } else if let Some(id) = r.session {
                    Selection::Session(id)
                } else {
                    Selection::Newest
                },
            },
            Command::Upload(u) => Request::Upload {
                path: u.path,
                url: u.url,
                token: u.token,
            },
        }
    }
}

/// The simulated engine's settings from the `sim` flags: `--config-json` first, then each flag.
pub fn sim_config(s: &SimArgs) -> Result<crate::sim::SimConfig, String> {
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
