//! `loadgen send-lag`: how late lmbench itself sends, per workload.
//!
//! Send lag is `sent − due` per request: from the instant the workload's schedule says a
//! request is due to the instant the request task starts writing it. Anything lmbench does on
//! the way (building the prompt, counting its tokens, waking the scheduler) shows here; the
//! engine's speed does not, since nothing waits for the engine before a request is sent (a turn
//! that waits for an answer is due when the answer arrives, and its lag starts there).
//!
//! The mode loads real spec files through lmbench's own configuration path (by default the
//! default suite's specs, plus an LMCacheSynthetic point whose users carry 20,000-token
//! histories at 4 QPS), builds every point of the first baseline with the workload's own code,
//! and runs it through lmbench's runner against the simulated engine in engine mode (its own
//! process), as `lmbench run` does. It prints one row per point: requests, then send lag
//! p50 / p99 / max over all of them, over the schedule's requests and over the turns that
//! waited for an answer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use lmbench::client::{Client, ClientConfig};
use lmbench::record::{ApiType, RequestRecord};
use lmbench::sim::{SimConfig, SimMode};
use lmbench::workload::prompt::PromptBuilder;
use lmbench::workload::runner;
use lmbench::workload::RunContext;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{machine, runtime, Common, Sim};

#[derive(Debug, Clone, Args)]
pub struct SendLagArgs {
    #[command(flatten)]
    common: Common,
    /// run-bench.yaml whose spec list is measured (its folder holds `0-bench-specs/`).
    #[arg(long, default_value = "run-bench.yaml")]
    run_bench: PathBuf,
    /// Spec files to measure instead of run-bench.yaml's list (relative to `0-bench-specs/`).
    #[arg(long, value_delimiter = ',')]
    spec: Vec<String>,
    /// Tokens of each user's history in the added long-history LMCacheSynthetic point (0: no
    /// such point).
    #[arg(long, default_value_t = 20_000)]
    long_history: usize,
    /// The long-history point's rate.
    #[arg(long, default_value_t = 4.0)]
    long_qps: f64,
    /// The long-history point's seconds of sending.
    #[arg(long, default_value_t = 30.0)]
    long_duration: f64,
    /// Also write every request's record (every point, one JSON object per line) to this file.
    #[arg(long)]
    records: Option<PathBuf>,
}

/// The added long-history point, as a spec file.
fn long_history_spec(tokens: usize, qps: f64, duration: f64) -> String {
    format!(
        "Name: send-lag-long-history
Serving:
  - Simulated:
      name: sim
      modelURL: sim-model
      mode: engine
Workload:
  LMCacheSynthetic:
    - NUM_USERS_WARMUP: 2
      NUM_USERS: 8
      NUM_ROUNDS: 6
      SYSTEM_PROMPT: 1000
      CHAT_HISTORY: {tokens}
      ANSWER_LEN: 16
      QPS: [{qps}]
      DURATION: {duration}
"
    )
}

struct Lags {
    all: Vec<f64>,
    scheduled: Vec<f64>,
    follow_ups: Vec<f64>,
}

fn pct(v: &mut [f64], q: f64) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    format!("{:.2}", lmbench::measure::percentile(v, q))
}

fn max(v: &[f64]) -> String {
    v.iter()
        .copied()
        .reduce(f64::max)
        .map_or("-".into(), |m| format!("{m:.2}"))
}

fn row(name: &str, l: &mut Lags) -> String {
    let (n, s, f) = (l.all.len(), l.scheduled.len(), l.follow_ups.len());
    format!(
        "| {name} | {n} | {} / {} / {} | {s}: {} / {} | {f}: {} / {} |",
        pct(&mut l.all, 0.50),
        pct(&mut l.all, 0.99),
        max(&l.all),
        pct(&mut l.scheduled, 0.99),
        max(&l.scheduled),
        pct(&mut l.follow_ups, 0.99),
        max(&l.follow_ups),
    )
}

pub fn send_lag(a: &SendLagArgs) -> anyhow::Result<()> {
    let run_bench = a
        .run_bench
        .canonicalize()
        .with_context(|| format!("{}", a.run_bench.display()))?;
    let temp = tempfile::tempdir()?;
    let load = |specs: &[String]| {
        let cfg = if specs.is_empty() {
            lmbench::suite::load(&run_bench, None)
        } else {
            lmbench::suite::load_with_specs(&run_bench, None, specs)
        };
        cfg.map(|c| lmbench::plan::build(&c, lmbench::plan::new_session_id()))
            .map_err(|e| anyhow::anyhow!("{e}"))
    };
    let mut plans = vec![load(&a.spec)?];
    if a.long_history > 0 {
        let p = temp.path().join("long-history.yaml");
        std::fs::write(
            &p,
            long_history_spec(a.long_history, a.long_qps, a.long_duration),
        )?;
        plans.push(load(&[p.display().to_string()])?);
    }
    let root = run_bench.parent().unwrap_or(Path::new(".")).to_path_buf();
    let engine = SimConfig {
        mode: SimMode::Engine,
        prefix_caching: true,
        ..SimConfig::default()
    };
    println!("# send lag (ms): sent − due, lmbench's own delay in sending");
    println!();
    println!("machine: {}", machine());
    println!(
        "engine: lmbench sim, engine mode, prefix caching on, its own process, nice {}",
        a.common.sim_nice
    );
    println!();
    println!("| suite / workload / point | requests | all p50 / p99 / max | scheduled: p99 / max | waited for an answer: p99 / max |");
    println!("|---|---:|---:|---:|---:|");
    let rt = runtime(a.common.threads)?;
    let mut dump = match &a.records {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("{}", p.display()))?,
        )),
        None => None,
    };
    let mut worst_p99: f64 = 0.0;
    // One baseline per suite: every baseline of a suite gets the same request stream.
    let mut seen = Vec::new();
    for b in plans.iter().flat_map(|p| p.baselines.iter()) {
        if seen.contains(&&b.suite) {
            continue;
        }
        seen.push(&b.suite);
        for run in &b.runs {
            let sim = Sim::start(&a.common, &engine)?;
            let client = Client::new(ClientConfig {
                base_url: sim.base_url(),
                model: SimConfig::default().model,
                api: ApiType::Completions,
                request_timeout: Duration::from_secs(300),
                api_key: None,
                extra_body: Default::default(),
                ca_cert: None,
            })?;
            let ctx = RunContext {
                prompt: PromptBuilder::global(),
                root: root.clone(),
                api: ApiType::Completions,
                seed: run.seed,
                user_id_base: 0,
                duration_override_s: None,
                repeat: 1,
            };
            let wl = run
                .item
                .spec
                .build(&run.point, &ctx)
                .map_err(|e| anyhow::anyhow!("{}: {e}", run.workload()))?;
            let records: Vec<RequestRecord> = rt.block_on(async {
                let (tx, mut rx) = mpsc::unbounded_channel();
                let collect = tokio::spawn(async move {
                    let mut out = Vec::new();
                    while let Some(r) = rx.recv().await {
                        out.push(r);
                    }
                    out
                });
                let cancel = CancellationToken::new();
                let _ = runner::run(wl, &client, &cancel, tx).await;
                collect.await
            })?;
            sim.stop()?;
            if let Some(f) = &mut dump {
                for r in &records {
                    serde_json::to_writer(&mut *f, r)?;
                    writeln!(f)?;
                }
            }
            let failed = records.iter().filter(|r| !r.ok()).count();
            let mut lags = Lags {
                all: Vec::new(),
                scheduled: Vec::new(),
                follow_ups: Vec::new(),
            };
            for r in records.iter().filter(|r| !r.warmup) {
                let lag = (r.sent_s - r.due_s) * 1000.0;
                lags.all.push(lag);
                if r.slot_s.is_some() {
                    lags.follow_ups.push(lag);
                } else {
                    lags.scheduled.push(lag);
                }
            }
            if lags.all.is_empty() {
                bail!("{}: no measured request", run.workload());
            }
            let name = format!("{} / {} / {}", run.suite, run.workload(), run.point.label());
            let mut all = lags.all.clone();
            all.sort_by(f64::total_cmp);
            worst_p99 = worst_p99.max(lmbench::measure::percentile(&all, 0.99));
            println!("{}", row(&name, &mut lags));
            if failed > 0 {
                println!("|   ({failed} requests failed) | | | | |");
            }
        }
    }
    println!();
    println!("highest p99: {worst_p99:.2} ms");
    Ok(())
}
