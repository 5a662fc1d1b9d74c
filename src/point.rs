//! One planned run, carried out: the workload's request stream goes through the open-loop
//! runner and the client; one collector task owns the records (streams them to the
//! `.requests.jsonl`, feeds the summary, counts progress); at the end the summary, the
//! workload's own fields and the run's details become the point's [`ResultFile`].
//!
//! [`result_file`] is the last step on its own, a pure function of what the run produced.
//!
//! A point may have a [`Role`] besides: a probe of an SLA search (`crate::search`) has an
//! [`Sla`]: its collector also feeds a [`Watch`], which stops the point once it clearly cannot
//! meet the SLA (in-flight requests are cancelled, nothing more is sent), and its result
//! carries the verdict (`results.sla`). One repeat of several (`crate::repeats`) says which it
//! is (`lmbench.run.repeat`); the last also carries the spread over all of them
//! (`results.repeats`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::CacheState;
use crate::client::Client;
use crate::engine_metrics::scrape::{self, Scraper, Target};
use crate::engine_metrics::ClientTotals;
use crate::measure::sla::{Sla, Stop, Verdict, Watch};
use crate::measure::steady::{Steady, SteadyState, Window};
use crate::measure::verdict::{self, Health, Measurement};
use crate::measure::{Aggregator, Summary, SummaryContext};
use crate::plan::PlannedRun;
use crate::record::ApiType;
use crate::results::{
    RepeatOf, ResultFile, ResultHead, ResultName, ResultWriter, RunInfo, Serving,
};
use crate::workload::runner::{self, RunStats};
use crate::workload::{PointResults, RunContext};

/// What every run of a suite shares.
#[derive(Debug, Clone)]
pub struct SuiteContext {
    /// `lmbench-<unix>-<8 hex>`.
    pub session_id: String,
    /// The folder of run-bench.yaml: data paths resolve against it.
    pub root: PathBuf,
    /// run-bench.yaml's `1-infrastructure` as written (results' `infra`).
    pub infra: Value,
    /// Where `<suite>/` result folders go.
    pub results_dir: PathBuf,
    /// Override of every workload's send duration.
    pub duration_override_s: Option<f64>,
    /// One request's limit.
    pub request_timeout: Duration,
    /// The p99 send-lag budget of the measurement verdict, ms.
    pub send_lag_budget_ms: f64,
    /// How many runs the plan has (for progress labels).
    pub total_runs: usize,
}

/// What every point against a deployed baseline runs with.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The endpoint's client.
    pub client: &'a Client,
    /// The results' `serving` block.
    pub serving: &'a Serving,
    /// What every run of the suite shares.
    pub suite: &'a SuiteContext,
    /// Ctrl-C.
    pub cancel: &'a CancellationToken,
    /// `(pod, metrics URL)` of the engine pods behind the endpoint, each through its own
    /// port-forward (a cluster baseline with a router); empty otherwise.
    pub engine_pods: &'a [(String, String)],
}

/// What a point is besides a planned run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Role<'a> {
    /// A probe of an SLA search: judged against this SLA, stopped early when it clearly
    /// cannot meet it.
    pub sla: Option<&'a Sla>,
    /// One repeat of several.
    pub repeat: Option<Repeat<'a>>,
}

/// One repeat of a point, and the repeats before it.
#[derive(Debug, Clone, Copy)]
pub struct Repeat<'a> {
    /// Which.
    pub of: RepeatOf,
    /// The earlier repeats' results (for the last one's spread).
    pub earlier: &'a [RepeatRun],
}

/// A finished repeat.
#[derive(Debug, Clone)]
pub struct RepeatRun {
    /// Which.
    pub n: u32,
    /// Its result file's name.
    pub file: String,
    /// Its `results` object.
    pub results: Map<String, Value>,
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
    /// The point against its SLA, for a probe of an SLA search.
    pub sla: Option<Verdict>,
    /// The result's `results` object, for the repeats after it.
    pub results: Option<Map<String, Value>>,
}

impl RunOutcome {
    /// A run that produced no result.
    pub fn failed(run: &PlannedRun, error: impl Into<String>) -> RunOutcome {
        RunOutcome {
            run: run.clone(),
            ok: false,
            result_file: None,
            error: Some(error.into()),
            figures: String::new(),
            sla: None,
            results: None,
        }
    }

    /// A run whose complete result this session already has (`--resume`).
    pub fn resumed(run: &PlannedRun, path: &Path) -> RunOutcome {
        RunOutcome {
            run: run.clone(),
            ok: true,
            result_file: Some(path.to_path_buf()),
            error: None,
            figures: "already measured in this session (resumed)".into(),
            sla: None,
            results: None,
        }
    }
}

/// The end-of-suite summary on stderr: one line per run, failures named.
pub fn print_summary(outcomes: &[RunOutcome]) {
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
        let status = if o.ok { "ok    " } else { "FAILED" };
        let detail = match (&o.error, o.figures.is_empty()) {
            (Some(e), true) => e.clone(),
            (Some(e), false) => format!("{} ({e})", o.figures),
            (None, _) => o.figures.clone(),
        };
        let probe = if o.run.item.search.is_some() {
            "SLA probe "
        } else {
            ""
        };
        eprintln!(
            "{status} {} {} {probe}{}: {detail}",
            o.run.baseline_key,
            o.run.workload_name(),
            o.run.point.label()
        );
    }
}

/// What a run produced besides its records, for its result file.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// The measured send window `(start, end)` in seconds since the start, once known.
    pub window: Option<(f64, f64)>,
    /// Wall-clock start, Unix seconds.
    pub started_at_unix_s: f64,
    /// The endpoint requests went to.
    pub endpoint: String,
    /// The API they used.
    pub api: ApiType,
    /// The model name sent.
    pub model: String,
    /// One request's limit.
    pub request_timeout: Duration,
    /// The tokenizer prompts were counted with.
    pub tokenizer: String,
    /// What the runner observed.
    pub stats: RunStats,
    /// The workload's own counters.
    pub workload_stats: Value,
    /// The engine's cache state at the point's start (`None` where no engine was asked, as in
    /// the golden-file test).
    pub cache_state: Option<CacheState>,
    /// The measurement verdict (`None` in the golden-file test).
    pub measurement: Option<Measurement>,
    /// The figures over the point's plateau, where it has one long enough.
    pub steady_state: Option<SteadyState>,
    /// The SLA a probe of a search is judged against.
    pub sla: Option<Sla>,
    /// Why the point was stopped before its end (an SLA it clearly could not meet).
    pub stopped_early: Option<Stop>,
    /// Which repeat of its point, and the earlier repeats' results.
    pub repeat: Option<(RepeatOf, Vec<RepeatRun>)>,
    /// The engine's metrics over the point (`engine_metrics::summarize`), where scraped.
    pub engine_metrics: Option<Value>,
}

/// The result file of `run`: the summary, the workload type's own fields and judgements, its
/// LMBench `workload` object, and how the run was made.
pub fn result_file(
    run: &PlannedRun,
    head: &ResultHead,
    summary: &Summary,
    facts: &RunFacts,
) -> ResultFile {
    let mut results = match summary.results_json() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut workload = run.item.result_params(&run.point, facts.api);
    run.item.spec.finish_result(&mut PointResults {
        results: &mut results,
        workload: &mut workload,
        stats: &facts.workload_stats,
    });
    if let Some(cache) = &facts.cache_state {
        let warnings = cache.warnings();
        if !warnings.is_empty() {
            if let Some(Value::Array(w)) = results.get_mut("warnings") {
                w.extend(warnings.into_iter().map(Value::String));
            }
        }
        results.insert(
            "cache_state".into(),
            serde_json::to_value(cache).unwrap_or(Value::Null),
        );
    }
    if let Some(s) = &facts.steady_state {
        results.insert("steady_state".into(), s.to_json());
    }
    if let Some(m) = &facts.engine_metrics {
        results.insert("engine_metrics".into(), m.clone());
    }
    if let Some(stop) = &facts.stopped_early {
        if let Some(Value::Array(w)) = results.get_mut("warnings") {
            w.push(Value::String(format!(
                "stopped early: {}; the figures cover the requests that finished before",
                stop.why
            )));
        }
    }
    if let Some(sla) = &facts.sla {
        let verdict = sla.judge(&results, facts.stopped_early.as_ref());
        results.insert(
            "sla".into(),
            serde_json::to_value(verdict).unwrap_or(Value::Null),
        );
    }
    if let Some((of, earlier)) = facts.repeat.as_ref().filter(|(of, _)| of.n == of.of) {
        results.insert("repeats".into(), repeats_json(*of, earlier, &results));
    }
    if let Some(m) = &facts.measurement {
        if let (Some(line), Some(Value::Array(w))) = (m.summary_line(), results.get_mut("warnings"))
        {
            w.push(Value::String(format!(
                "{line}: see results.measurement for why and what to change"
            )));
        }
        results.insert(
            "measurement".into(),
            serde_json::to_value(m).unwrap_or(Value::Null),
        );
    }
    let sweep = Map::from_iter([(
        run.point.sweep.key.to_string(),
        run.point.sweep.value.map_or(Value::Null, |v| v.to_json()),
    )]);
    let info = RunInfo {
        index: Some(run.index as u64),
        seed: Some(run.seed),
        sweep,
        started_at_unix_s: Some(facts.started_at_unix_s),
        send_window_s: facts.window.map(|(a, b)| [a, b]),
        endpoint: Some(facts.endpoint.clone()),
        api_type: Some(facts.api.as_str().to_string()),
        model: Some(facts.model.clone()),
        request_timeout_s: Some(facts.request_timeout.as_secs_f64()),
        tokenizer: Some(facts.tokenizer.clone()),
        // A point stopped early by its SLA watch is complete: it ran as far as it needed to.
        partial: Some(facts.stats.cancelled && facts.stopped_early.is_none()),
        scheduler: Some(facts.stats.clone()),
        workload_stats: facts.workload_stats.clone(),
        repeat: facts.repeat.as_ref().map(|(of, _)| *of),
    };
    ResultFile::new(head, results, workload, info)
}

/// `results.repeats` of the last repeat: every repeat's headline figures and their spread.
fn repeats_json(of: RepeatOf, earlier: &[RepeatRun], last: &Map<String, Value>) -> Value {
    let mut all: Vec<(u32, Option<&str>, &Map<String, Value>)> = earlier
        .iter()
        .map(|r| (r.n, Some(r.file.as_str()), &r.results))
        .collect();
    // This file's own name is the file itself.
    all.push((of.n, None, last));
    crate::measure::repeats::summary(of.of, &all)
}

/// Run `run` in `env`, write its files, and say how it went. `position` is the run's place
/// among its baseline's points (user ids never repeat between them); `role`: what else the
/// point is (a probe of an SLA search, one repeat of several).
pub async fn run_point(
    run: &PlannedRun,
    env: Env<'_>,
    position: u64,
    remaining_after_s: f64,
    role: Role<'_>,
) -> RunOutcome {
    let Env {
        client,
        serving,
        suite,
        cancel,
        engine_pods,
    } = env;
    let sla = role.sla;
    let label = format!(
        "[{}/{}] {} {} {}{}{}",
        run.index + 1,
        suite.total_runs,
        run.baseline_key,
        run.workload_name(),
        if sla.is_some() { "SLA probe " } else { "" },
        run.point.label(),
        role.repeat.map_or(String::new(), |r| format!(
            " repeat {} of {}",
            r.of.n, r.of.of
        )),
    );
    let prompt = match run.item.prompt_builder() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("{label}: {e}");
            return RunOutcome::failed(run, e.to_string());
        }
    };
    let api = client.config().api;
    let ctx = RunContext {
        prompt: prompt.clone(),
        root: suite.root.clone(),
        api,
        seed: run.seed,
        user_id_base: position * 1_000_000,
        duration_override_s: suite.duration_override_s,
        repeat: role.repeat.map_or(1, |r| r.of.n),
    };
    let wl = match run.item.spec.build(&run.point, &ctx) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("{label}: {e}");
            return RunOutcome::failed(run, e.to_string());
        }
    };
    let head = ResultHead {
        suite: run.suite.clone(),
        session_id: suite.session_id.clone(),
        name: ResultName {
            baseline_key: run.baseline_key.clone(),
            workload: run.workload_name(),
            qps_label: run.point.qps_label.clone(),
            timestamp: chrono::Local::now(),
        },
        infra: suite.infra.clone(),
        serving: serving.clone(),
    };
    let dir = suite.results_dir.join(&run.suite);
    let mut writer = match ResultWriter::create(&dir, &head.name) {
        Ok(w) => w,
        Err(e) => {
            let msg = format!("cannot create result files in {}: {e}", dir.display());
            tracing::error!("{label}: {msg}");
            return RunOutcome::failed(run, msg);
        }
    };
    // The cache state the point starts from: a reset through the engine's own interface if
    // the baseline asks for one (a failure is recorded and warned about, never fatal).
    let reset = match run.baseline.cache_reset {
        Some(via) => {
            let cfg = client.config();
            let r = crate::cache::reset(
                via,
                &cfg.base_url,
                cfg.api_key.as_deref(),
                cfg.ca_cert.as_deref(),
            )
            .await;
            if r.ok {
                tracing::info!("{label}: prefix cache reset ({})", r.detail);
            } else {
                tracing::warn!("{label}: prefix cache reset failed: {}", r.detail);
            }
            Some(r)
        }
        None => None,
    };
    tracing::info!("{label}: started");
    let counters = Arc::new(crate::progress::RunProgress::default());
    let _display = crate::progress::Display::start(
        crate::progress::RunLabel {
            title: label.clone(),
            target_qps: run.point.target_qps(),
            expected_s: Some(suite.duration_override_s.unwrap_or(run.estimated_s())),
            remaining_after_s,
        },
        counters.clone(),
    );
    // Generated text is counted with the tokenizer that counted the prompts.
    let client = &client
        .with_progress(counters.clone())
        .with_token_counter(prompt.clone());
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Ctrl-C stops the run through `cancel`; the SLA watch through `stop` alone.
    let stop = cancel.child_token();
    let mut watch = sla.map(|s| (Watch::new(s.clone()), stop.clone()));
    // The collector owns the records: it streams them to disk and keeps only what the summary
    // needs. With a watch, it also looks at the counts of sent and finished requests each
    // second.
    let watch_counts = counters.clone();
    let collector = tokio::spawn(async move {
        let mut agg = Aggregator::new();
        let mut write_error = None;
        let mut stopped = None;
        let mut totals = ClientTotals::default();
        let started = std::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let rec = tokio::select! {
                r = rx.recv() => match r {
                    Some(r) => r,
                    None => break,
                },
                _ = tick.tick(), if watch.is_some() && stopped.is_none() => {
                    if let Some((w, stop)) = &mut watch {
                        let sent = watch_counts.sent.load(Ordering::Relaxed);
                        let finished = watch_counts.finished.load(Ordering::Relaxed);
                        if let Some(why) = w.tick(started.elapsed().as_secs_f64(), sent, finished) {
                            stop.cancel();
                            stopped = Some(why);
                        }
                    }
                    continue;
                }
            };
            if let (Some((w, stop)), None) = (&mut watch, &stopped) {
                if let Some(why) = w.add(&rec) {
                    stop.cancel();
                    stopped = Some(why);
                }
            }
            agg.add(&rec);
            totals.add(&rec);
            counters.finished.fetch_add(1, Ordering::Relaxed);
            if !rec.ok() {
                counters.failed.fetch_add(1, Ordering::Relaxed);
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
        (writer, agg, write_error, stopped, totals)
    });
    let started_at_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // The engine's own metrics, once a second from before the first request to after the last.
    let scrape_start = tokio::time::Instant::now();
    let scrapers: Vec<(Option<String>, Scraper)> = Target::all(
        run.baseline.metrics_url.as_deref(),
        engine_pods,
        client.config(),
    )
    .into_iter()
    .map(|(pod, t)| (pod, Scraper::start(t, scrape_start)))
    .collect();
    let cpu_before = crate::cpu::process_cpu();
    let wall = std::time::Instant::now();
    let runner::Finished {
        stats,
        workload: wl,
    } = runner::run(wl, client, &stop, tx).await;
    let (mut writer, agg, write_error, stopped, totals) = match collector.await {
        Ok(x) => x,
        Err(e) => return RunOutcome::failed(run, format!("collector task failed: {e}")),
    };
    // Every pod's last scrape at once.
    let scraped: Vec<(Option<String>, scrape::Collected)> = futures_util::future::join_all(
        scrapers
            .into_iter()
            .map(|(pod, s)| async move { (pod, s.finish().await) }),
    )
    .await;
    let series = writer.requests_path().with_file_name(format!(
        "{}{}",
        writer.stem(),
        crate::results::METRICS_SUFFIX
    ));
    let engine_metrics = Some(crate::engine_metrics::keep(&series, &scraped, totals));
    let stopped_early = stopped.filter(|_| !cancel.is_cancelled());
    if let Some(stop) = &stopped_early {
        tracing::info!("{label}: stopped early: {}", stop.why);
    }
    let health = Health {
        send_lag_budget_ms: suite.send_lag_budget_ms,
        process_cpu_s: crate::cpu::process_cpu()
            .zip(cpu_before)
            .map(|(b, a)| b.saturating_sub(a).as_secs_f64()),
        wall_s: wall.elapsed().as_secs_f64(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        open_files_limit: crate::limits::open_file_limits().map(|l| l.soft),
        cpu_wait_share: stats.cpu_wait.as_ref().map(|w| w.share),
        // Requests a stopped probe did not send were left out on purpose.
        not_sent: if stopped_early.is_some() {
            0
        } else {
            stats.not_sent
        },
        max_in_flight: stats.max_in_flight,
        concurrency_cap: wl.max_in_flight(),
    };
    let window = wl.window();
    let first = agg.first_sent();
    let sent_span = agg.sent_span();
    let summary = agg.finish(&SummaryContext {
        target_qps: run.point.target_qps(),
        run_duration_s: window.map(|(a, b)| b - a),
        api,
        capped: health
            .concurrency_cap
            .is_some_and(|c| stats.max_in_flight >= c),
    });
    let facts = RunFacts {
        window,
        started_at_unix_s,
        endpoint: client.config().base_url.clone(),
        api,
        model: client.config().model.clone(),
        request_timeout: suite.request_timeout,
        tokenizer: prompt.tokenizer_name().to_string(),
        stats,
        workload_stats: wl.stats(),
        cache_state: Some(CacheState::new(
            run.item.spec.prompt_reuse(),
            reset,
            summary.total_cached_tokens,
            first.as_ref(),
        )),
        measurement: Some(verdict::judge(&summary, &health)),
        steady_state: steady_state(&mut writer, sent_span, summary.e2e_latency_ms.median),
        engine_metrics,
        sla: sla.cloned(),
        stopped_early,
        repeat: role.repeat.map(|r| (r.of, r.earlier.to_vec())),
    };
    let result = result_file(run, &head, &summary, &facts);
    let path = match writer.finish(&result) {
        Ok(p) => p,
        Err(e) => return RunOutcome::failed(run, format!("cannot write the result file: {e}")),
    };
    let verdict: Option<Verdict> = result
        .results
        .get("sla")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let figures = figures::line(&result.results, facts.stats.finished);
    tracing::info!("{label}: {figures} -> {}", path.display());
    let ok_count = result
        .results
        .get("successful_requests")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut error = write_error.map(|e| format!("request records could not all be written: {e}"));
    if ok_count == 0 {
        error = Some(error.unwrap_or_else(|| "no request succeeded".into()));
    }
    let interrupted = facts.stats.cancelled && facts.stopped_early.is_none();
    if interrupted {
        error = Some("interrupted: partial result".into());
    }
    RunOutcome {
        run: run.clone(),
        ok: ok_count > 0 && !interrupted,
        result_file: Some(path),
        error,
        figures,
        sla: verdict,
        results: Some(result.results),
    }
}

/// The point's steady-state figures ([`crate::measure::steady`]), from a second pass over its
/// records file; `None` where the point has no window or too few requests in it.
fn steady_state(
    writer: &mut ResultWriter,
    sent_span: Option<(f64, f64)>,
    median_e2e_ms: Option<f64>,
) -> Option<SteadyState> {
    let (first, last) = sent_span?;
    let w = Window::of(first, last, median_e2e_ms? / 1000.0)?;
    let mut acc = Steady::new(w);
    let read = writer
        .flush()
        .and_then(|()| crate::results::for_each_record(writer.requests_path(), |r| acc.add(&r)));
    if let Err(e) = read {
        tracing::warn!("steady-state figures left out: reading the records back: {e}");
        return None;
    }
    acc.finish()
}

mod figures;
#[cfg(test)]
mod tests;
