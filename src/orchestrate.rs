//! `lmbench run`: for each baseline, deploy it, wait until it answers, run every workload at
//! every sweep point, write the results, and tear it down — on success, on failure and on
//! Ctrl-C alike. A failed run or baseline does not stop the others; the exit code says so.

use crate::client::{Client, ClientConfig};
use crate::config::{Baseline, BaselineKind, LoadedConfig, Suite};
use crate::deploy::cluster::{is_cluster_kind, ClusterDeployment, ClusterOptions};
use crate::deploy::local::{LaunchSpec, LocalProcess};
use crate::deploy::readiness;
use crate::deploy::tools::ToolEnv;
use crate::infra::InfraGuard;
use crate::measure::{Aggregator, SummaryContext};
use crate::plan::{PlannedBaseline, PlannedRun, RunPlan};
use crate::record::ApiType;
use crate::results::{build_result_json, ResultMeta, ResultWriter};
use crate::workload::{self, runner, RunContext};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Exit codes.
pub mod exit {
    /// Everything ran.
    pub const OK: u8 = 0;
    /// At least one run or deployment failed.
    pub const RUN_FAILED: u8 = 1;
    /// Bad configuration or arguments.
    pub const BAD_INPUT: u8 = 2;
    /// Interrupted by Ctrl-C or SIGTERM.
    pub const INTERRUPTED: u8 = 130;
}

/// Options of `lmbench run`, free of clap types.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Folder that receives `<suite>/…` result folders.
    pub results_dir: PathBuf,
    /// 1, 2 or 3 (LMBench's `--start-from`).
    pub start_from: u8,
    /// `--model-url` (stage 3).
    pub model_url: Option<String>,
    /// `--key` (stage 3).
    pub key: Option<String>,
    /// `--api-type` (stage 3).
    pub api_type: ApiType,
    /// Port of the endpoint.
    pub port: u16,
    /// Override of every workload's send duration.
    pub duration_override_s: Option<f64>,
    /// Deadline for readiness.
    pub ready_timeout: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// `--resume`: skip runs whose complete results for this session exist.
    pub resume: bool,
    /// Upload each result file here (`--upload-url`).
    pub upload_url: Option<String>,
    /// Bearer token for the upload.
    pub upload_token: Option<String>,
}

/// How one run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The planned run.
    pub run: PlannedRun,
    /// True if it produced a result with at least one successful request.
    pub ok: bool,
    /// The result file, if one was written.
    pub result_file: Option<PathBuf>,
    /// What went wrong, if anything.
    pub error: Option<String>,
    /// One-line figures for the end-of-suite summary.
    pub figures: String,
}

/// Seconds given to a local engine between SIGTERM and SIGKILL.
const TEARDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long to wait for the port to be released before a deployment.
const PORT_FREE_TIMEOUT: Duration = Duration::from_secs(30);

/// Install the Ctrl-C / SIGTERM handler: the first signal cancels the token (in-flight requests
/// are cancelled, their records kept, deployments torn down); a second forces exit 130.
pub fn install_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut count = 0;
        loop {
            let got = async {
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
            };
            got.await;
            count += 1;
            if count == 1 {
                tracing::warn!("interrupted: cancelling in-flight requests and tearing down (press Ctrl-C again to force)");
                cancel.cancel();
            } else {
                let killed = crate::deploy::local::kill_all_live_groups();
                eprintln!("forced exit (killed {killed} engine process group(s))");
                std::process::exit(exit::INTERRUPTED as i32);
            }
        }
    });
}

/// Check before the first deployment that results can be written there.
pub fn check_results_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("results folder {} cannot be created: {e}", dir.display()))?;
    let probe = dir.join(format!(".lmbench-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok")
        .map_err(|e| format!("results folder {} is not writable: {e}", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Run the whole plan. Returns the exit code.
pub async fn run_plan(
    cfg: &LoadedConfig,
    plan: &RunPlan,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> u8 {
    if let Err(e) = check_results_dir(&opts.results_dir) {
        eprintln!("error: {e}");
        return exit::BAD_INPUT;
    }
    let done = if opts.resume {
        let done = completed_runs(&opts.results_dir, plan);
        tracing::info!(
            "resuming session {}: {} of {} run(s) already have results",
            plan.session_id,
            done.len(),
            plan.runs.len()
        );
        done
    } else {
        HashMap::new()
    };
    let mut outcomes: Vec<RunOutcome> = Vec::new();
    // The infrastructure step (LocalMinikube, LMCacheGKE): before the first baseline, torn down
    // after the last one, also after a failure or Ctrl-C. `--start-from 2` uses what exists.
    let infra_tools = ToolEnv::from_env(infra_log_path(opts, plan));
    let mut infra_failed = false;
    let mut guard: Option<InfraGuard> = None;
    if opts.start_from == 1 && !plan.baselines.is_empty() {
        match crate::infra::setup(&cfg.infra, &cfg.root, &infra_tools, cancel).await {
            Ok(g) => guard = Some(g),
            Err(e) => {
                infra_failed = true;
                let msg = format!(
                    "infrastructure {} failed at {}: {e}",
                    cfg.infra.location.as_str(),
                    e.step()
                );
                tracing::error!("{msg}");
                outcomes.extend(plan.runs.iter().map(|r| failed(r, msg.clone())));
            }
        }
    } else if opts.start_from == 2 {
        guard = Some(InfraGuard::existing(cfg.infra.location));
    }
    if opts.start_from == 3 {
        outcomes = run_against_existing(cfg, plan, opts, cancel).await;
    } else if !infra_failed {
        for pb in &plan.baselines {
            if cancel.is_cancelled() {
                break;
            }
            let runs: Vec<&PlannedRun> = plan
                .runs
                .iter()
                .filter(|r| r.suite_idx == pb.suite_idx && r.baseline_idx == pb.baseline_idx)
                .collect();
            if !runs.is_empty() && runs.iter().all(|r| done.contains_key(&r.index)) {
                tracing::info!(
                    "baseline {}: every run already has results",
                    pb.baseline_key
                );
                outcomes.extend(runs.iter().map(|r| resumed(r, &done[&r.index])));
                continue;
            }
            outcomes.extend(
                run_baseline(cfg, plan, pb, &runs, opts, &done, cancel, guard.as_ref()).await,
            );
        }
    }
    let mut teardown_failed = false;
    if let Some(g) = guard {
        if let Err(e) = g.teardown(&infra_tools).await {
            teardown_failed = true;
            tracing::error!(
                "infrastructure {} teardown failed at {}: {e}",
                cfg.infra.location.as_str(),
                e.step()
            );
        }
    }
    // Per suite: comparison JSON/PNG and report.html over this session's results.
    let mut suite_names: Vec<&str> = plan.runs.iter().map(|r| r.suite.as_str()).collect();
    suite_names.dedup();
    let mut report_failed = false;
    for name in suite_names {
        let dir = opts.results_dir.join(name);
        if !dir.is_dir() {
            continue;
        }
        match crate::report::write_suite(&dir, Some(&plan.session_id)) {
            Ok(files) => {
                for f in files {
                    tracing::info!("report: {}", f.display());
                }
            }
            Err(e) => {
                report_failed = true;
                tracing::error!("report for suite {name} failed: {e:#}");
            }
        }
    }
    let mut upload_failed = false;
    if let Some(url) = &opts.upload_url {
        for o in &outcomes {
            let Some(p) = &o.result_file else { continue };
            if let Err(e) = crate::upload::upload_path(p, url, opts.upload_token.as_deref()).await {
                upload_failed = true;
                tracing::error!("upload of {} failed: {e:#}", p.display());
            }
        }
    }
    print_summary(&outcomes);
    for o in &outcomes {
        if let Some(p) = &o.result_file {
            crate::out(&p.display().to_string());
        }
    }
    if cancel.is_cancelled() {
        exit::INTERRUPTED
    } else if outcomes.iter().any(|o| !o.ok)
        || (outcomes.len() < plan.runs.len() && opts.start_from != 3)
        || upload_failed
        || report_failed
        || teardown_failed
    {
        exit::RUN_FAILED
    } else {
        exit::OK
    }
}

/// Where the infrastructure step logs its commands: the first suite's `pod-logs/infra.log`.
fn infra_log_path(opts: &RunOptions, plan: &RunPlan) -> PathBuf {
    let suite = plan
        .runs
        .first()
        .map(|r| r.suite.as_str())
        .unwrap_or("infra");
    opts.results_dir
        .join(suite)
        .join("pod-logs")
        .join("infra.log")
}

fn resumed(run: &PlannedRun, path: &Path) -> RunOutcome {
    RunOutcome {
        run: run.clone(),
        ok: true,
        result_file: Some(path.to_path_buf()),
        error: None,
        figures: "already measured in this session (resumed)".into(),
    }
}

/// The runs of `plan` that already have a complete (not partial) result file for its session,
/// by plan index. A result counts when its session id, run index, baseline key and WORKLOAD all
/// match the plan, so a changed configuration never matches stale files.
pub fn completed_runs(results_dir: &Path, plan: &RunPlan) -> HashMap<usize, PathBuf> {
    let mut out = HashMap::new();
    let mut suites: Vec<&str> = plan.runs.iter().map(|r| r.suite.as_str()).collect();
    suites.sort_unstable();
    suites.dedup();
    for suite in suites {
        let Ok(rd) = std::fs::read_dir(results_dir.join(suite)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".json") || name.ends_with("_comparison.json") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if v.get("lmbench-session-id").and_then(Value::as_str) != Some(plan.session_id.as_str())
            {
                continue;
            }
            let run = &v["lmbench"]["run"];
            if run.get("partial").and_then(Value::as_bool) != Some(false) {
                continue;
            }
            let Some(idx) = run.get("index").and_then(Value::as_u64) else {
                continue;
            };
            let Some(planned) = plan.runs.get(idx as usize) else {
                continue;
            };
            let workload = v["workload"]["WORKLOAD"].as_str().unwrap_or("");
            if planned.suite == suite
                && workload == planned.workload_name
                && name.starts_with(&format!(
                    "{}_{}_",
                    planned.baseline_key, planned.workload_name
                ))
            {
                out.insert(planned.index, p);
            }
        }
    }
    out
}

fn failed(run: &PlannedRun, error: String) -> RunOutcome {
    RunOutcome {
        run: run.clone(),
        ok: false,
        result_file: None,
        error: Some(error),
        figures: String::new(),
    }
}

/// The launch of a local baseline, or why it cannot be launched here.
fn launch_spec(
    cfg: &LoadedConfig,
    b: &Baseline,
    key: &str,
    log_path: PathBuf,
    port: u16,
) -> Result<LaunchSpec, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find lmbench's own executable: {e}"))?;
    let mut env = vec![
        ("LMBENCH_PORT".to_string(), port.to_string()),
        ("LMBENCH_ROOT".to_string(), cfg.root.display().to_string()),
        ("LMBENCH_BIN".to_string(), exe.display().to_string()),
        ("LMBENCH_BASELINE_KEY".to_string(), key.to_string()),
        ("LMBENCH_MODEL".to_string(), b.model_url.clone()),
    ];
    if let Some(t) = &b.hf_token {
        env.push(("HF_TOKEN".to_string(), t.expose().to_string()));
    }
    match &b.kind {
        BaselineKind::Flat { path, .. } => Ok(LaunchSpec {
            program: PathBuf::from("bash"),
            args: vec![path.clone().into_os_string()],
            cwd: cfg.root.clone(),
            env,
            log_path,
        }),
        BaselineKind::Simulated { params, .. } => Ok(LaunchSpec {
            program: exe,
            args: vec![
                "sim".into(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string().into(),
                "--config-json".into(),
                Value::Object(params.clone()).to_string().into(),
            ],
            cwd: cfg.root.clone(),
            env,
            log_path,
        }),
        // SGLang, RayServe and Dynamo run their launch files in the foreground as a supervised
        // process group, like Flat (LMBench nohup'ed them and grepped logs for readiness).
        BaselineKind::SGLang { path, .. } => Ok(LaunchSpec {
            program: PathBuf::from("bash"),
            args: vec![path.clone().into_os_string()],
            cwd: cfg.root.clone(),
            env,
            log_path,
        }),
        BaselineKind::RayServe {
            path, accelerator, ..
        } => Ok(LaunchSpec {
            program: PathBuf::from("python3"),
            args: vec![path.clone().into_os_string(), accelerator.into()],
            cwd: cfg.root.clone(),
            env,
            log_path,
        }),
        BaselineKind::Dynamo { path, .. } => {
            let launcher = cfg.root.join("2-serving-engines/dynamo/launch.sh");
            Ok(LaunchSpec {
                program: PathBuf::from("bash"),
                args: vec![launcher.into_os_string(), path.clone().into_os_string()],
                cwd: cfg.root.clone(),
                env,
                log_path,
            })
        }
        other => Err(format!(
            "baseline type {} is deployed on Kubernetes, not as a local process",
            other.type_name()
        )),
    }
}

/// A deployed baseline: a supervised local process group, or objects on a cluster reached
/// through a port-forward.
enum Engine {
    Local(Box<LocalProcess>),
    Cluster(Box<ClusterDeployment>),
}

impl Engine {
    /// Why the engine is gone, if it is.
    fn exit_reason(&mut self) -> Option<String> {
        match self {
            Engine::Local(p) => p.exit_reason(),
            Engine::Cluster(c) => (!c.is_forwarding()).then(|| "the port-forward is gone".into()),
        }
    }
}

/// Deploy one baseline (local process group or cluster), run its planned runs, tear it down.
#[allow(clippy::too_many_arguments)]
async fn run_baseline(
    cfg: &LoadedConfig,
    plan: &RunPlan,
    pb: &PlannedBaseline,
    runs: &[&PlannedRun],
    opts: &RunOptions,
    done: &HashMap<usize, PathBuf>,
    cancel: &CancellationToken,
    infra: Option<&InfraGuard>,
) -> Vec<RunOutcome> {
    let suite = &cfg.suites[pb.suite_idx];
    let b = &suite.baselines[pb.baseline_idx];
    let suite_dir = opts.results_dir.join(&suite.name);
    let pod_logs = suite_dir.join("pod-logs");
    let log_path = pod_logs.join(format!("{}.log", pb.baseline_key));
    tracing::info!(
        "deploying baseline {} ({})",
        pb.baseline_key,
        pb.baseline_type
    );
    let fail_all = |msg: String| -> Vec<RunOutcome> {
        tracing::error!("{msg}");
        runs.iter().map(|r| failed(r, msg.clone())).collect()
    };
    if let Err(e) = readiness::wait_port_free(opts.port, PORT_FREE_TIMEOUT).await {
        return fail_all(format!("cannot deploy {}: {e}", pb.baseline_key));
    }
    let base_url = format!("http://127.0.0.1:{}", opts.port);
    let cluster_opts = ClusterOptions {
        context: infra.and_then(|g| g.kube_context()).map(str::to_owned),
        ..ClusterOptions::new(opts.port, opts.ready_timeout)
    };
    let mut tools = ToolEnv::from_env(pod_logs.join("infra.log"));
    if let Some(t) = &b.hf_token {
        tools = tools.redacting(t.expose());
    }
    // Deploy. `ready` is None when interrupted.
    let (mut engine, ready) = if is_cluster_kind(&b.kind) {
        let mut c = Box::new(ClusterDeployment::new(&pb.baseline_key));
        let r = c
            .deploy(&b.kind, b.hf_token.as_ref(), &tools, &cluster_opts, cancel)
            .await;
        let r = if cancel.is_cancelled() { None } else { Some(r) };
        (Engine::Cluster(c), r)
    } else {
        let spec = match launch_spec(cfg, b, &pb.baseline_key, log_path.clone(), opts.port) {
            Ok(s) => s,
            Err(e) => return fail_all(e),
        };
        let mut proc = match LocalProcess::spawn(&spec) {
            Ok(p) => p,
            Err(e) => return fail_all(format!("cannot start {}: {e}", pb.baseline_key)),
        };
        let r = tokio::select! {
            r = readiness::wait_ready(&base_url, opts.ready_timeout, || proc.exit_reason()) => {
                Some(r.map_err(|e| e.to_string()))
            }
            _ = cancel.cancelled() => None,
        };
        (Engine::Local(Box::new(proc)), r)
    };
    let mut outcomes = Vec::new();
    match ready {
        None => {
            outcomes.extend(
                runs.iter()
                    .map(|r| failed(r, "interrupted during deployment".into())),
            );
        }
        Some(Err(e)) => {
            let msg = format!("baseline {} did not become ready: {e}", pb.baseline_key);
            tracing::error!("{msg}");
            outcomes.extend(runs.iter().map(|r| failed(r, msg.clone())));
        }
        Some(Ok(info)) => {
            tracing::info!(
                "baseline {} ready in {:.1}s (log: {})",
                pb.baseline_key,
                info.elapsed.as_secs_f64(),
                match &engine {
                    Engine::Local(_) => log_path.display().to_string(),
                    Engine::Cluster(_) => pod_logs.display().to_string(),
                }
            );
            let client = Client::new(ClientConfig {
                base_url: base_url.clone(),
                model: b.model_url.clone(),
                api: b.api_type,
                request_timeout: opts.request_timeout,
                api_key: std::env::var("OPENAI_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
                extra_body: b.extra_body.clone(),
            });
            match client {
                Err(e) => outcomes.extend(
                    runs.iter()
                        .map(|r| failed(r, format!("cannot build the HTTP client: {e}"))),
                ),
                Ok(client) => {
                    for (pos, run) in runs.iter().enumerate() {
                        if cancel.is_cancelled() {
                            break;
                        }
                        if let Some(path) = done.get(&run.index) {
                            outcomes.push(resumed(run, path));
                            continue;
                        }
                        if let Some(reason) = engine.exit_reason() {
                            let msg = format!("the engine of {} exited: {reason}", pb.baseline_key);
                            tracing::error!("{msg}");
                            outcomes.push(failed(run, msg));
                            continue;
                        }
                        let serving =
                            json!({"baseline_type": b.kind.type_name(), "config": b.config_json});
                        let mut o = execute_run(
                            cfg, plan, suite, run, &client, serving, pos as u64, opts, cancel,
                        )
                        .await;
                        // An engine that died during the run: its records and result are kept
                        // (partial), but the run failed.
                        if let Some(reason) = engine.exit_reason() {
                            let msg = format!(
                                "the engine of {} exited during the run: {reason}",
                                pb.baseline_key
                            );
                            tracing::error!("{msg}");
                            o.ok = false;
                            o.error = Some(msg);
                        }
                        // LMBench's pod logs after every point: <pod>_<KEY>_<workload>_<qps>.log.
                        if let Engine::Cluster(c) = &engine {
                            let tag = format!(
                                "{}_{}_{}",
                                pb.baseline_key, run.workload_name, run.qps_label
                            );
                            c.collect_logs(&pod_logs, &tag).await;
                        }
                        outcomes.push(o);
                    }
                }
            }
        }
    }
    match &mut engine {
        Engine::Local(proc) => match proc.teardown(TEARDOWN_GRACE).await {
            Ok(rep) => tracing::info!(
                "baseline {} torn down in {:.1}s{}",
                pb.baseline_key,
                rep.elapsed.as_secs_f64(),
                if rep.needed_sigkill {
                    " (needed SIGKILL)"
                } else {
                    ""
                }
            ),
            Err(e) => tracing::error!("teardown of {} failed: {e}", pb.baseline_key),
        },
        Engine::Cluster(c) => {
            // After a failed deployment, the pods' logs say why: collect them before removal.
            if !outcomes.iter().any(|o| o.result_file.is_some()) {
                c.collect_logs(&pod_logs, &format!("{}_deploy", pb.baseline_key))
                    .await;
            }
            match c.teardown(&tools, &cluster_opts).await {
                Ok(()) => tracing::info!("baseline {} torn down", pb.baseline_key),
                Err(e) => tracing::error!("teardown of {} failed: {e}", pb.baseline_key),
            }
        }
    }
    if let Err(e) = readiness::wait_port_free(opts.port, PORT_FREE_TIMEOUT).await {
        tracing::error!("after teardown of {}: {e}", pb.baseline_key);
    }
    outcomes
}

/// `--start-from 3`: every suite's workloads against an endpoint that is already up.
async fn run_against_existing(
    cfg: &LoadedConfig,
    plan: &RunPlan,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> Vec<RunOutcome> {
    let model = opts.model_url.clone().unwrap_or_default();
    let key = opts.key.clone().unwrap_or_default();
    let base_url = format!("http://127.0.0.1:{}", opts.port);
    let client = match Client::new(ClientConfig {
        base_url,
        model,
        api: opts.api_type,
        request_timeout: opts.request_timeout,
        api_key: std::env::var("OPENAI_API_KEY")
            .ok()
            .filter(|k| !k.is_empty()),
        extra_body: serde_json::Map::new(),
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build the HTTP client: {e}");
            return Vec::new();
        }
    };
    let mut outcomes = Vec::new();
    // The first baseline's runs of each suite stand for the suite's workloads.
    let firsts: Vec<&PlannedRun> = plan.runs.iter().filter(|r| r.baseline_idx == 0).collect();
    for (pos, run) in firsts.into_iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let mut run = run.clone();
        run.baseline_key = key.clone();
        run.baseline_type = "existing-endpoint";
        let suite = &cfg.suites[run.suite_idx];
        let o = execute_run(
            cfg,
            plan,
            suite,
            &run,
            &client,
            json!({}),
            pos as u64,
            opts,
            cancel,
        )
        .await;
        outcomes.push(o);
    }
    outcomes
}

#[allow(clippy::too_many_arguments)]
async fn execute_run(
    cfg: &LoadedConfig,
    plan: &RunPlan,
    suite: &Suite,
    run: &PlannedRun,
    client: &Client,
    serving: Value,
    position: u64,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> RunOutcome {
    let item = &suite.workloads[run.workload_idx];
    let baseline = &suite.baselines[run.baseline_idx.min(suite.baselines.len() - 1)];
    let label = format!(
        "[{}/{}] {} {} {}",
        run.index + 1,
        plan.runs.len(),
        run.baseline_key,
        run.workload_name,
        run.sweep
            .value
            .map(|v| format!("{}={}", run.sweep.key, v.label()))
            .unwrap_or_else(|| "timed".into())
    );
    let prompt = match workload::prompt_builder(item, &cfg.root) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{label}: {e}");
            return failed(run, e.to_string());
        }
    };
    let ctx = RunContext {
        prompt: prompt.clone(),
        root: cfg.root.clone(),
        api: client.config().api,
        seed: run.seed,
        user_id_base: position * 1_000_000,
        qps: run.qps.map(|q| q.value),
        duration_override_s: opts.duration_override_s,
    };
    let mut wl = match workload::build(item, baseline, run, &ctx) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("{label}: {e}");
            return failed(run, e.to_string());
        }
    };
    let api = client.config().api.as_str();
    let mut meta = ResultMeta {
        suite_name: suite.name.clone(),
        session_id: plan.session_id.clone(),
        timestamp: chrono::Local::now(),
        baseline_key: run.baseline_key.clone(),
        workload_name: run.workload_name.clone(),
        qps_label: run.qps_label.clone(),
        infra: cfg.infra.json.clone(),
        serving,
        workload: workload::result_params(item, run, api),
        run: Value::Null,
    };
    let dir = opts.results_dir.join(&suite.name);
    let mut writer = match ResultWriter::create(&dir, &meta) {
        Ok(w) => w,
        Err(e) => {
            let msg = format!("cannot create result files in {}: {e}", dir.display());
            tracing::error!("{label}: {msg}");
            return failed(run, msg);
        }
    };
    tracing::info!("{label}: started");
    let counters = std::sync::Arc::new(crate::progress::RunProgress::default());
    let remaining_after_s: f64 = plan.runs[run.index + 1..]
        .iter()
        .map(|r| r.estimated_s)
        .sum();
    let _display = crate::progress::Display::start(
        crate::progress::RunLabel {
            title: label.clone(),
            target_qps: run.qps.map(|q| q.value),
            expected_s: Some(opts.duration_override_s.unwrap_or(run.estimated_s)),
            remaining_after_s,
        },
        counters.clone(),
    );
    let client = &client.with_progress(counters.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    // The collector owns the records: it streams them to disk and keeps only what the summary
    // needs.
    let collector = tokio::spawn(async move {
        let mut agg = Aggregator::new();
        let mut write_error = None;
        while let Some(rec) = rx.recv().await {
            agg.add(&rec);
            counters
                .finished
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if !rec.ok() {
                counters
                    .failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if !rec.warmup {
                counters.record_lag(rec.sent_s - rec.due_s);
            }
            if write_error.is_none() {
                if let Err(e) = writer.write_record(&rec) {
                    write_error = Some(e.to_string());
                }
            }
        }
        (writer, agg, write_error)
    });
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let epoch = tokio::time::Instant::now();
    let stats = runner::run(wl.as_mut(), client, epoch, cancel, tx).await;
    let (writer, agg, write_error) = match collector.await {
        Ok(x) => x,
        Err(e) => return failed(run, format!("collector task failed: {e}")),
    };
    let window = wl.window();
    let summary = agg.finish(&SummaryContext {
        target_qps: run.qps.map(|q| q.value),
        run_duration_s: window.map(|(a, b)| b - a),
    });
    let mut results = summary.results_json();
    let workload_stats = wl.stats();
    match &item.workload {
        crate::config::Workload::Vllm(_) => {
            // A Poisson or gamma schedule's own rate differs from the target by chance; the
            // client under-delivers only if it sent slower than its schedule.
            let rate = |k: &str| results.get(k).and_then(Value::as_f64);
            if let (Some(achieved), Some(sched)) = (rate("achieved_qps"), rate("scheduled_qps")) {
                rejudge_shortfall(
                    &mut results,
                    achieved,
                    sched,
                    "sent vs the random schedule's own rate",
                );
            }
            // vLLM bench's names beside LMBench's, so users can compare with vLLM's own tool.
            let extra = workload::vllm::vllm_result_fields(&results, &workload_stats);
            if let Value::Object(m) = &mut results {
                m.extend(extra);
            }
        }
        crate::config::Workload::Strict(_) => {
            // Only the recorded users are measured, and they ramp in and out, so their own rate
            // is below N/T even when the whole N/T is offered: judge the whole offered rate.
            if let Some(total) = workload_stats
                .get("measured_total_qps")
                .and_then(Value::as_f64)
            {
                if let Some(target) = results.get("target_qps").and_then(Value::as_f64) {
                    rejudge_shortfall(
                        &mut results,
                        total,
                        target,
                        "all users' send rate vs the target",
                    );
                }
                if let Value::Object(m) = &mut results {
                    m.insert("achieved_total_qps".into(), json!(total));
                }
            }
        }
        crate::config::Workload::Agentic(_) => {
            // Agentic sweeps the new-user interval; its QPS is the measured rate (as in LMBench;
            // the file name keeps the interval, which is known when the file is created).
            if let Some(q) = results.get("achieved_qps").cloned() {
                if let Value::Object(m) = &mut meta.workload {
                    m.insert("QPS".into(), q.clone());
                }
            }
        }
        _ => {}
    }
    meta.run = json!({
        "index": run.index,
        "seed": run.seed,
        "sweep": {run.sweep.key: run.sweep.value.map(|v| v.to_json())},
        "started_at_unix_s": started_unix,
        "send_window_s": window.map(|(a, b)| json!([a, b])),
        "endpoint": client.config().base_url,
        "api_type": api,
        "model": client.config().model,
        "request_timeout_s": opts.request_timeout.as_secs_f64(),
        "tokenizer": prompt.tokenizer_name(),
        "partial": stats.cancelled,
        "scheduler": stats,
        "workload_stats": workload_stats,
    });
    let mut result = build_result_json(&meta, &summary);
    if let Some(r) = result.get_mut("results") {
        *r = results.clone();
    }
    let path = match writer.finish(&result) {
        Ok(p) => p,
        Err(e) => return failed(run, format!("cannot write the result file: {e}")),
    };
    let ok_count = results
        .get("successful_requests")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let total = results
        .get("total_requests")
        .and_then(Value::as_u64)
        .unwrap_or(stats.finished);
    let pick = |k: &str, s: &str| {
        results
            .get(k)
            .and_then(|v| v.get(s))
            .and_then(Value::as_f64)
    };
    let figures = format!(
        "{ok_count}/{total} ok, TTFT p50 {} ms, ITL p50 {} ms, achieved {} of target {} QPS, send lag p99 {} ms",
        fmt_opt(pick("ttft_ms", "median")),
        fmt_opt(pick("inter_token_latency_ms", "median")),
        fmt_opt(results.get("achieved_qps").and_then(Value::as_f64)),
        fmt_opt(results.get("target_qps").and_then(Value::as_f64)),
        fmt_opt(pick("send_lag_ms", "p99")),
    );
    tracing::info!("{label}: {figures} -> {}", path.display());
    let mut error = write_error.map(|e| format!("request records could not all be written: {e}"));
    if ok_count == 0 {
        error = Some(error.unwrap_or_else(|| "no request succeeded".into()));
    }
    if stats.cancelled {
        error = Some("interrupted: partial result".into());
    }
    RunOutcome {
        run: run.clone(),
        ok: ok_count > 0 && !stats.cancelled,
        result_file: Some(path),
        error,
        figures,
    }
}

/// Re-judge `qps_shortfall` as `delivered` vs `reference` for a workload where the summary's
/// achieved-vs-target is the wrong comparison: StrictSynthetic (only some users are measured)
/// and random arrival schedules. The summary's shortfall warning is replaced accordingly.
fn rejudge_shortfall(results: &mut Value, delivered: f64, reference: f64, what: &str) {
    let Value::Object(m) = results else { return };
    let short = reference > 0.0 && delivered / reference < crate::measure::QPS_SHORTFALL_RATIO;
    m.insert("qps_shortfall".into(), json!(short));
    if let Some(Value::Array(w)) = m.get_mut("warnings") {
        w.retain(|x| !x.as_str().is_some_and(|s| s.starts_with("achieved ")));
        if short {
            w.push(json!(format!(
                "delivered {delivered:.3} req/s is {:.1}% of {reference:.3} req/s ({what})",
                delivered / reference * 100.0
            )));
        }
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

fn print_summary(outcomes: &[RunOutcome]) {
    if outcomes.is_empty() {
        return;
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    eprintln!(
        "\n== lmbench: {} run(s), {} failed ==",
        outcomes.len(),
        failed
    );
    for o in outcomes {
        let point = o
            .run
            .sweep
            .value
            .map(|v| format!("{}={}", o.run.sweep.key, v.label()))
            .unwrap_or_else(|| "timed".into());
        let status = if o.ok { "ok    " } else { "FAILED" };
        let detail = match (&o.error, o.figures.is_empty()) {
            (Some(e), true) => e.clone(),
            (Some(e), false) => format!("{} ({e})", o.figures),
            (None, _) => o.figures.clone(),
        };
        eprintln!(
            "{status} {} {} {point}: {detail}",
            o.run.baseline_key, o.run.workload_name
        );
    }
}

/// Writes `tests/fixtures/result-golden/`: result files built from fixed records by this
/// version's result path (the meta, per-workload patches and writer of `execute_run`), so a
/// later version can be checked to write the same bytes from the same inputs.
#[cfg(test)]
mod golden {
    use super::*;
    use crate::record::{ErrorKind, RequestError, RequestRecord};
    use crate::workload::runner::RunStats;
    use chrono::TimeZone;

    const SPEC: &str = r#"Name: golden
Serving:
  - Simulated:
      modelURL: golden-model
      name: g
      mode: fixed
      extraBody: {ignore_eos: true}
      hf_token: hf_should_never_appear
Workload:
  LMCacheSynthetic:
    - NUM_USERS: 4
      NUM_ROUNDS: 3
      SYSTEM_PROMPT: 100
      CHAT_HISTORY: 200
      ANSWER_LEN: 8
      QPS: [2, 0.5]
  Agentic:
    - NUM_AGENTS: 2
      NUM_ROUNDS: 3
      SYSTEM_PROMPT: 10
      CHAT_HISTORY: 20
      ANSWER_LEN: 8
      NEW_USER_INTERVALS: [2]
  Random:
    - NUM_USERS: 2
      NUM_ROUNDS: 2
      PROMPT_LEN: 16
      ANSWER_LEN: 4
      QPS: [1.5]
  VLLMBenchmark:
    - DATASET_NAME: random
      NUM_PROMPTS: 12
      REQUEST_RATES: [4]
      RANDOM_INPUT_LEN: 32
      RANDOM_OUTPUT_LEN: 8
      GOODPUT: {ttft_ms: 150, e2el_ms: 900}
      TEMPERATURE: 0.5
  StrictSynthetic:
    - NUM_CONCURRENT_USERS: 2
      NUM_ROUNDS_PER_USER: 3
      TIME_BETWEEN_REQUESTS_PER_USER: [1]
      SHARED_SYSTEM_PROMPT_LEN: 10
      FIRST_PROMPT_LEN: 20
      FOLLOW_UP_PROMPTS_LEN: 5
      ANSWER_LEN: 4
  TraceReplayer:
    - TRACE_FILE: t.jsonl
      PRESERVE_TIMING: true
      SPEED_UP: 2
"#;

    /// Deterministic records: `n` requests every `gap` s, one warmup, failures where `fail(i)`.
    fn records(n: u64, gap: f64, fail: impl Fn(u64) -> bool) -> Vec<RequestRecord> {
        (0..n)
            .map(|i| {
                let due = i as f64 * gap;
                let sent = due + 0.0007 * ((i % 3) as f64);
                let ok = !fail(i);
                let ttft = 0.08 + 0.013 * ((i * 7 % 5) as f64);
                let chunks: Vec<f64> = if ok {
                    (0..6)
                        .map(|k| sent + ttft + 0.021 * k as f64 + 0.0003 * ((i + k) % 4) as f64)
                        .collect()
                } else {
                    Vec::new()
                };
                RequestRecord {
                    id: i,
                    user_id: Some(100 + i % 4),
                    round: (i % 3) as u32 + 1,
                    warmup: i == 0,
                    due_s: due,
                    sent_s: sent,
                    first_token_s: chunks.first().copied(),
                    end_s: chunks.last().copied().unwrap_or(sent + 0.05) + 0.001,
                    chunk_times_s: chunks,
                    prompt_tokens: ok.then_some(300 + i * 11),
                    completion_tokens: ok.then_some(6),
                    cached_tokens: ok.then_some(if i % 2 == 0 { 128 } else { 0 }),
                    client_prompt_tokens: 296 + i * 11,
                    client_completion_tokens: if ok { 6 } else { 0 },
                    max_tokens: 8,
                    status: Some(if ok { 200 } else { 503 }),
                    error: (!ok).then(|| RequestError {
                        kind: ErrorKind::HttpStatus,
                        message: "503 Service Unavailable".into(),
                    }),
                }
            })
            .collect()
    }

    #[test]
    #[ignore = "writes the golden result files; run once by hand"]
    #[allow(clippy::type_complexity)]
    fn write_result_goldens() {
        let out =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/result-golden");
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("0-bench-specs")).unwrap();
        std::fs::create_dir_all(root.join("3-workloads/trace-replayer")).unwrap();
        std::fs::write(
            root.join("3-workloads/trace-replayer/t.jsonl"),
            "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 4, \"hash_ids\": [1]}\n",
        )
        .unwrap();
        std::fs::write(
            root.join("run-bench.yaml"),
            "0-bench-specs:\n  - golden.yaml\n1-infrastructure:\n  Location: Local-Flat\n",
        )
        .unwrap();
        std::fs::write(root.join("0-bench-specs/golden.yaml"), SPEC).unwrap();
        std::fs::write(out.join("spec.yaml"), SPEC).unwrap();
        let cfg = crate::config::load(&root.join("run-bench.yaml"), None).unwrap();
        let plan = crate::plan::build(&cfg, "lmbench-1700000000-0badf00d".into());
        let ts = chrono::Local
            .with_ymd_and_hms(2026, 11, 30, 9, 41, 0)
            .earliest()
            .unwrap();
        // (case, run index, records, workload stats, window, partial, start-from-3 serving)
        let stats_vllm = json!({
            "backend": "vllm", "dataset": "random", "dataset_path": null, "num_prompts": 12,
            "requests_scheduled": 12, "request_rate": 4.0, "burstiness": 1.0, "seed": 0,
            "max_concurrency": null, "schedule_rate": 3.8712,
            "goodput": {"slo_ms": {"ttft_ms": 150.0, "tpot_ms": null, "e2el_ms": 900.0},
                        "requests_checked": 11, "good_requests": 9,
                        "missed": {"ttft_ms": 2, "tpot_ms": 0, "e2el_ms": 0}},
        });
        let cases: Vec<(
            &str,
            usize,
            Vec<RequestRecord>,
            Value,
            Option<(f64, f64)>,
            bool,
            bool,
        )> = vec![
            (
                "synthetic",
                0,
                records(12, 0.5, |i| i == 5),
                json!({"turns_held_back": 2, "turns_held_back_total_s": 0.31}),
                Some((0.0, 6.0)),
                false,
                false,
            ),
            (
                "synthetic-partial",
                1,
                records(5, 2.0, |_| false),
                json!({"turns_held_back": 0}),
                Some((0.0, 10.0)),
                true,
                false,
            ),
            (
                "agentic",
                3,
                records(9, 0.7, |i| i == 8),
                json!({"users_started": 4}),
                Some((0.0, 6.0)),
                false,
                false,
            ),
            (
                "random-all-failed",
                4,
                records(6, 0.66, |_| true),
                Value::Null,
                Some((0.0, 4.0)),
                false,
                false,
            ),
            (
                "vllm",
                5,
                records(12, 0.25, |i| i == 3),
                stats_vllm,
                Some((0.0, 3.0)),
                false,
                false,
            ),
            (
                "strict",
                6,
                records(10, 0.5, |_| false),
                json!({"measured_total_qps": 1.62, "users_started": 4}),
                Some((2.0, 8.0)),
                false,
                false,
            ),
            (
                "trace-timed",
                2,
                records(4, 1.0, |_| false),
                json!({"clipped": 0}),
                None,
                false,
                false,
            ),
            (
                "random-existing-endpoint",
                4,
                records(8, 0.66, |i| i == 2),
                Value::Null,
                Some((0.0, 5.0)),
                false,
                true,
            ),
        ];
        for (case, idx, recs, workload_stats, window, partial, existing) in cases {
            let run = plan.runs[idx].clone();
            assert!(
                case.starts_with(run.workload_name.split('_').next().unwrap()),
                "{case}: {}",
                run.workload_name
            );
            let suite = &cfg.suites[run.suite_idx];
            let item = &suite.workloads[run.workload_idx];
            let b = &suite.baselines[run.baseline_idx];
            let mut run = run;
            let serving = if existing {
                run.baseline_key = "existing".into();
                run.baseline_type = "existing-endpoint";
                json!({})
            } else {
                json!({"baseline_type": b.kind.type_name(), "config": b.config_json})
            };
            let api = b.api_type.as_str();
            let mut meta = ResultMeta {
                suite_name: suite.name.clone(),
                session_id: plan.session_id.clone(),
                timestamp: ts,
                baseline_key: run.baseline_key.clone(),
                workload_name: run.workload_name.clone(),
                qps_label: run.qps_label.clone(),
                infra: cfg.infra.json.clone(),
                serving,
                workload: workload::result_params(item, &run, api),
                run: Value::Null,
            };
            let dir = tmp.path().join(case);
            let mut writer = ResultWriter::create(&dir, &meta).unwrap();
            let mut agg = Aggregator::new();
            for r in &recs {
                agg.add(r);
                writer.write_record(r).unwrap();
            }
            let summary = agg.finish(&SummaryContext {
                target_qps: run.qps.map(|q| q.value),
                run_duration_s: window.map(|(a, b)| b - a),
            });
            let mut results = summary.results_json();
            // The per-workload patches of `execute_run`, verbatim.
            match &item.workload {
                crate::config::Workload::Vllm(_) => {
                    let rate = |k: &str| results.get(k).and_then(Value::as_f64);
                    if let (Some(achieved), Some(sched)) =
                        (rate("achieved_qps"), rate("scheduled_qps"))
                    {
                        rejudge_shortfall(
                            &mut results,
                            achieved,
                            sched,
                            "sent vs the random schedule's own rate",
                        );
                    }
                    let extra = workload::vllm::vllm_result_fields(&results, &workload_stats);
                    if let Value::Object(m) = &mut results {
                        m.extend(extra);
                    }
                }
                crate::config::Workload::Strict(_) => {
                    if let Some(total) = workload_stats
                        .get("measured_total_qps")
                        .and_then(Value::as_f64)
                    {
                        if let Some(target) = results.get("target_qps").and_then(Value::as_f64) {
                            rejudge_shortfall(
                                &mut results,
                                total,
                                target,
                                "all users' send rate vs the target",
                            );
                        }
                        if let Value::Object(m) = &mut results {
                            m.insert("achieved_total_qps".into(), json!(total));
                        }
                    }
                }
                crate::config::Workload::Agentic(_) => {
                    if let Some(q) = results.get("achieved_qps").cloned() {
                        if let Value::Object(m) = &mut meta.workload {
                            m.insert("QPS".into(), q.clone());
                        }
                    }
                }
                _ => {}
            }
            let stats = RunStats {
                sent: recs.len() as u64,
                finished: recs.len() as u64 - u64::from(partial),
                max_in_flight: 3,
                elapsed_s: 6.25,
                cancelled: partial,
                not_sent: u64::from(partial) * 2,
            };
            meta.run = json!({
                "index": run.index,
                "seed": run.seed,
                "sweep": {run.sweep.key: run.sweep.value.map(|v| v.to_json())},
                "started_at_unix_s": 1_764_495_660.123_456_7,
                "send_window_s": window.map(|(a, b)| json!([a, b])),
                "endpoint": "http://127.0.0.1:30080",
                "api_type": api,
                "model": b.model_url,
                "request_timeout_s": 600.0,
                "tokenizer": "tiktoken cl100k_base",
                "partial": stats.cancelled,
                "scheduler": stats,
                "workload_stats": workload_stats,
            });
            let mut result = build_result_json(&meta, &summary);
            if let Some(r) = result.get_mut("results") {
                *r = results.clone();
            }
            let path = writer.finish(&result).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let case_dir = out.join(case);
            std::fs::create_dir_all(&case_dir).unwrap();
            std::fs::copy(&path, case_dir.join(&name)).unwrap();
            let jsonl = path.with_file_name(name.replace(".json", crate::results::REQUESTS_SUFFIX));
            std::fs::copy(&jsonl, case_dir.join(jsonl.file_name().unwrap())).unwrap();
            let input = json!({
                "run_index": idx, "window": window.map(|(a, b)| json!([a, b])),
                "partial": partial, "existing_endpoint": existing,
                "workload_stats": workload_stats, "scheduler": stats,
                "result_file": name,
            });
            std::fs::write(
                case_dir.join("input.json"),
                serde_json::to_vec_pretty(&input).unwrap(),
            )
            .unwrap();
        }
    }
}
