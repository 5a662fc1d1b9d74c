//! `lmbench run`, the suite loop: set up the infrastructure, then for each planned baseline
//! deploy it, wait until it answers, run its points one after another, tear it down — on
//! success, on failure and on Ctrl-C alike — then tear the infrastructure down, write each
//! suite's report, upload, and say how it went. A failed run or baseline does not stop the
//! others; the exit code says so.
//!
//! What a baseline is and how it comes up is its type's business (`baseline`, through the one
//! `deploy::Deployment` handle); what a point sends and what its result holds is its workload
//! type's (`workload`, through `point`). Nothing here names a baseline or workload type.

use crate::baseline::LaunchContext;
use crate::client::{Client, ClientConfig};
use crate::config::Secret;
use crate::deploy::cluster::ClusterOptions;
use crate::deploy::tools::ToolEnv;
use crate::deploy::{DeployError, DeployOptions, Deployment, Endpoint};
use crate::exit::ExitCode;
use crate::infra::InfraGuard;
use crate::plan::{BaselineRuns, PlannedRun, RunPlan};
use crate::point::{print_summary, run_point, Env, Role, RunOutcome, SuiteContext};
use crate::record::ApiType;
use crate::results::Serving;
use crate::suite::LoadedConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Which stages `run` performs (LMBench's `--start-from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// 1: infrastructure, baselines and workloads.
    Infra,
    /// 2: skip the infrastructure set-up; deploy baselines and run workloads.
    Baselines,
    /// 3: only the workloads, against an endpoint that is already up.
    Workloads,
}

/// Options of `lmbench run`, free of clap types.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Folder that receives `<suite>/…` result folders.
    pub results_dir: PathBuf,
    /// LMBench's `--start-from`.
    pub start_from: StartFrom,
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
    /// The p99 send-lag budget of the measurement verdict, ms.
    pub send_lag_budget_ms: f64,
    /// `--resume`: skip runs whose complete results for this session exist.
    pub resume: bool,
    /// Upload each result file here (`--upload-url`).
    pub upload_url: Option<String>,
    /// Bearer token for the upload.
    pub upload_token: Option<String>,
}

/// Seconds given to a local engine between SIGTERM and SIGKILL.
const TEARDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long to wait for the port to be released before a deployment.
const PORT_FREE_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The API key local and cluster endpoints are called with: `OPENAI_API_KEY`, when set.
fn openai_api_key() -> Option<Secret> {
    std::env::var("OPENAI_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .map(Secret::new)
}

/// Run the whole plan.
pub async fn run_plan(
    cfg: &LoadedConfig,
    plan: &RunPlan,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> ExitCode {
    if let Err(e) = check_results_dir(&opts.results_dir) {
        eprintln!("error: {e}");
        return ExitCode::BadInput;
    }
    let done = if opts.resume {
        let done = completed_runs(&opts.results_dir, plan);
        tracing::info!(
            "resuming session {}: {} of {} run(s) already have results",
            plan.session_id,
            done.len(),
            plan.run_count()
        );
        done
    } else {
        HashMap::new()
    };
    let suite = SuiteContext {
        session_id: plan.session_id.clone(),
        root: cfg.root.clone(),
        infra: cfg.infra.json.clone(),
        results_dir: opts.results_dir.clone(),
        duration_override_s: opts.duration_override_s,
        request_timeout: opts.request_timeout,
        send_lag_budget_ms: opts.send_lag_budget_ms,
        total_runs: plan.run_count(),
    };
    let mut outcomes: Vec<RunOutcome> = Vec::new();
    // The infrastructure step (LocalMinikube, LMCacheGKE): before the first baseline, torn down
    // after the last one, also after a failure or Ctrl-C. `--start-from 2` uses what exists.
    let infra_tools = ToolEnv::from_env(infra_log_path(opts, plan));
    let mut infra_failed = false;
    let mut guard: Option<InfraGuard> = None;
    match opts.start_from {
        StartFrom::Infra if !plan.baselines.is_empty() => {
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
                    outcomes.extend(plan.runs().map(|r| RunOutcome::failed(r, msg.clone())));
                }
            }
        }
        StartFrom::Baselines => guard = Some(InfraGuard::existing(cfg.infra.location)),
        _ => {}
    }
    if opts.start_from == StartFrom::Workloads {
        outcomes = run_against_existing(plan, opts, &suite, cancel).await;
    } else if !infra_failed {
        for b in &plan.baselines {
            if cancel.is_cancelled() {
                break;
            }
            if !b.runs.is_empty() && b.runs.iter().all(|r| done.contains_key(&r.index)) {
                tracing::info!("baseline {}: every run already has results", b.baseline_key);
                outcomes.extend(
                    b.runs
                        .iter()
                        .map(|r| RunOutcome::resumed(r, &done[&r.index])),
                );
                continue;
            }
            outcomes.extend(
                run_baseline(cfg, plan, b, opts, &suite, &done, cancel, guard.as_ref()).await,
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
    let mut report_failed = false;
    for name in plan.suites() {
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
            crate::exit::out(&p.display().to_string());
        }
    }
    if cancel.is_cancelled() {
        ExitCode::Interrupted
    } else if outcomes.iter().any(|o| !o.ok)
        || (outcomes.len() < plan.run_count() && opts.start_from != StartFrom::Workloads)
        || upload_failed
        || report_failed
        || teardown_failed
    {
        ExitCode::RunFailed
    } else {
        ExitCode::Ok
    }
}

/// Where the infrastructure step logs its commands: the first suite's `pod-logs/infra.log`.
fn infra_log_path(opts: &RunOptions, plan: &RunPlan) -> PathBuf {
    let suite = plan.suites().first().copied().unwrap_or("infra");
    opts.results_dir
        .join(suite)
        .join("pod-logs")
        .join("infra.log")
}

/// The runs of `plan` that already have a complete (not partial) result file for its session,
/// by plan index. A result counts when its session id, run index, baseline key (the file's own
/// `lmbench.baseline_key`, else its name) and WORKLOAD all match the plan, so a changed
/// configuration never matches stale files.
pub fn completed_runs(results_dir: &Path, plan: &RunPlan) -> HashMap<usize, PathBuf> {
    let runs: Vec<&PlannedRun> = plan.runs().collect();
    let mut out = HashMap::new();
    for suite in plan.suites() {
        for c in crate::results::complete_runs(&results_dir.join(suite), &plan.session_id) {
            // A search is run again in full: its probes depend on each other's outcomes.
            let Some(planned) = runs
                .get(c.index as usize)
                .filter(|r| r.item.search.is_none())
            else {
                continue;
            };
            let name = c.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let workload = planned.workload_name();
            let same_key = match &c.baseline_key {
                Some(k) => *k == planned.baseline_key,
                None => name.starts_with(&format!("{}_{workload}_", planned.baseline_key)),
            };
            // A point with repeats is done once its last repeat is.
            let repeats = planned.item.repeats.max(1);
            let last = match c.repeat {
                None => repeats == 1,
                Some(r) => r.of == repeats && r.n == repeats,
            };
            if planned.suite == suite && c.workload == workload && same_key && last {
                out.insert(planned.index, c.path);
            }
        }
    }
    out
}

/// The sum of the estimates of every run after `index`, for the progress line's ETA.
fn remaining_after(plan: &RunPlan, index: usize) -> f64 {
    plan.runs()
        .filter(|r| r.index > index)
        .map(PlannedRun::estimated_s)
        .sum()
}

/// Deploy one baseline, run its planned runs, tear it down.
#[allow(clippy::too_many_arguments)]
async fn run_baseline(
    cfg: &LoadedConfig,
    plan: &RunPlan,
    b: &BaselineRuns,
    opts: &RunOptions,
    suite: &SuiteContext,
    done: &HashMap<usize, PathBuf>,
    cancel: &CancellationToken,
    infra: Option<&InfraGuard>,
) -> Vec<RunOutcome> {
    let key = &b.baseline_key;
    let baseline = &b.baseline;
    let pod_logs = opts.results_dir.join(&b.suite).join("pod-logs");
    tracing::info!("deploying baseline {key} ({})", baseline.type_name());
    let fail_all = |msg: String| -> Vec<RunOutcome> {
        tracing::error!("{msg}");
        b.runs
            .iter()
            .map(|r| RunOutcome::failed(r, msg.clone()))
            .collect()
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail_all(format!("cannot find lmbench's own executable: {e}")),
    };
    let launch = match baseline.launch(&LaunchContext {
        root: cfg.root.clone(),
        port: opts.port,
        key: key.clone(),
        exe,
        log_path: pod_logs.join(format!("{key}.log")),
    }) {
        Ok(l) => l,
        Err(e) => return fail_all(e),
    };
    let mut tools = ToolEnv::from_env(pod_logs.join("infra.log"));
    if let Some(t) = &baseline.hf_token {
        tools = tools.redacting(t.expose());
    }
    let cluster = ClusterOptions {
        context: infra.and_then(|g| g.kube_context()).map(str::to_owned),
        ..ClusterOptions::new(opts.port, opts.ready_timeout)
    };
    let mut dep = Deployment::new(
        key,
        launch,
        DeployOptions {
            port: opts.port,
            ready_timeout: opts.ready_timeout,
            teardown_grace: TEARDOWN_GRACE,
            port_free_timeout: PORT_FREE_TIMEOUT,
            tools,
            cluster,
            hf_token: baseline.hf_token.clone(),
            api_key: openai_api_key(),
        },
    );
    let ready = match dep.deploy(cancel).await {
        Ok(()) => dep.wait_ready(cancel).await,
        Err(e) => Err(e),
    };
    let mut outcomes = Vec::new();
    match ready {
        Err(DeployError::Interrupted) => {
            outcomes.extend(
                b.runs
                    .iter()
                    .map(|r| RunOutcome::failed(r, "interrupted during deployment")),
            );
        }
        Err(e) => {
            let msg = match e {
                DeployError::PortBusy { .. } => format!("cannot deploy {key}: {e}"),
                DeployError::Spawn { .. } => format!("cannot start {key}: {e}"),
                e => format!("baseline {key} did not become ready: {e}"),
            };
            outcomes.extend(fail_all(msg));
        }
        Ok(info) => {
            tracing::info!(
                "baseline {key} ready in {:.1}s (log: {})",
                info.elapsed.as_secs_f64(),
                dep.logs_at(&pod_logs).display()
            );
            outcomes.extend(run_points(plan, b, &mut dep, suite, done, &pod_logs, cancel).await);
        }
    }
    // After a failed deployment, the pods' logs say why: collect them before removal.
    if !outcomes.iter().any(|o| o.result_file.is_some()) {
        dep.collect_logs(&pod_logs, &format!("{key}_deploy")).await;
    }
    match dep.teardown().await {
        Ok(None) => tracing::info!("baseline {key}: nothing was deployed, nothing to tear down"),
        Ok(Some(how)) if how.is_empty() => tracing::info!("baseline {key} torn down"),
        Ok(Some(how)) => tracing::info!("baseline {key} torn down {how}"),
        Err(e) => tracing::error!("teardown of {key} failed: {e}"),
    }
    outcomes
}

/// The runs of a deployed baseline, one after another.
async fn run_points(
    plan: &RunPlan,
    b: &BaselineRuns,
    dep: &mut Deployment,
    suite: &SuiteContext,
    done: &HashMap<usize, PathBuf>,
    pod_logs: &Path,
    cancel: &CancellationToken,
) -> Vec<RunOutcome> {
    let key = &b.baseline_key;
    let client = match client_for(
        dep.endpoint(),
        &b.baseline.model_url,
        b.baseline.api_type,
        suite.request_timeout,
        b.baseline.extra_body.clone(),
    ) {
        Ok(c) => c,
        Err(e) => {
            return b
                .runs
                .iter()
                .map(|r| RunOutcome::failed(r, format!("cannot build the HTTP client: {e}")))
                .collect()
        }
    };
    let serving = Serving {
        baseline_type: Some(b.baseline.type_name().to_string()),
        config: Some(b.baseline.config_json.clone()),
    };
    let engine_pods = dep.metrics_targets();
    let mut outcomes = Vec::new();
    let mut position = 0u64;
    for run in &b.runs {
        if cancel.is_cancelled() {
            break;
        }
        if let Some(path) = done.get(&run.index) {
            outcomes.push(RunOutcome::resumed(run, path));
            continue;
        }
        if let Some(reason) = dep.exit_reason() {
            let msg = format!("the engine of {key} exited: {reason}");
            tracing::error!("{msg}");
            outcomes.push(RunOutcome::failed(run, msg));
            continue;
        }
        let remaining = remaining_after(plan, run.index);
        let env = Env {
            client: &client,
            serving: &serving,
            suite,
            cancel,
            engine_pods: &engine_pods,
        };
        let mut os = run_one(run, env, &mut position, remaining).await;
        // An engine that died during the run: its records and result are kept (partial), but
        // the run failed.
        if let (Some(reason), Some(o)) = (dep.exit_reason(), os.last_mut()) {
            let msg = format!("the engine of {key} exited during the run: {reason}");
            tracing::error!("{msg}");
            o.ok = false;
            o.error = Some(msg);
        }
        // LMBench's pod logs after every point: <pod>_<KEY>_<workload>_<qps>.log (`sla` for
        // a search's probes).
        let qps = match run.item.search {
            Some(_) => "sla",
            None => run.qps_label(),
        };
        let tag = format!("{key}_{}_{qps}", run.workload_name());
        dep.collect_logs(pod_logs, &tag).await;
        outcomes.append(&mut os);
    }
    outcomes
}

/// One planned run: a point, its repeats, or an SLA search's probes. `position` counts the
/// baseline's points so far.
async fn run_one(
    run: &PlannedRun,
    env: Env<'_>,
    position: &mut u64,
    remaining: f64,
) -> Vec<RunOutcome> {
    if run.item.search.is_some() {
        return crate::search::run_search(run, env, position, remaining).await;
    }
    if run.item.repeats > 1 {
        return crate::repeats::run_repeats(run, run.item.repeats, env, position, remaining).await;
    }
    *position += 1;
    vec![run_point(run, env, *position - 1, remaining, Role::default()).await]
}

/// A streaming client for `endpoint`.
fn client_for(
    endpoint: &Endpoint,
    model: &str,
    api: ApiType,
    request_timeout: Duration,
    extra_body: serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<Client> {
    Client::new(ClientConfig {
        base_url: endpoint.base_url.clone(),
        model: model.to_string(),
        api,
        request_timeout,
        api_key: endpoint.api_key.as_ref().map(|k| k.expose().to_string()),
        extra_body,
        ca_cert: endpoint.ca_cert.clone(),
    })
}

/// `--start-from 3`: every suite's workloads against an endpoint that is already up.
async fn run_against_existing(
    plan: &RunPlan,
    opts: &RunOptions,
    suite: &SuiteContext,
    cancel: &CancellationToken,
) -> Vec<RunOutcome> {
    let model = opts.model_url.clone().unwrap_or_default();
    let key = opts.key.clone().unwrap_or_default();
    let endpoint = Endpoint::local(opts.port, openai_api_key());
    let mut outcomes = Vec::new();
    let serving = Serving::default();
    let mut pos = 0u64;
    // The first baseline of each suite stands for the suite: its runs, and its request settings
    // (`extraBody`, `cacheReset`), which shape what is measured.
    for name in plan.suites() {
        let Some(first) = plan.baselines.iter().find(|b| b.suite == name) else {
            continue;
        };
        let client = match client_for(
            &endpoint,
            &model,
            opts.api_type,
            opts.request_timeout,
            first.baseline.extra_body.clone(),
        ) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: cannot build the HTTP client: {e}");
                return outcomes;
            }
        };
        for run in &first.runs {
            if cancel.is_cancelled() {
                return outcomes;
            }
            let mut run = run.clone();
            run.baseline_key = key.clone();
            run.baseline_type = "existing-endpoint";
            let remaining = remaining_after(plan, run.index);
            let env = Env {
                client: &client,
                serving: &serving,
                suite,
                cancel,
                engine_pods: &[],
            };
            outcomes.extend(run_one(&run, env, &mut pos, remaining).await);
        }
    }
    outcomes
}
