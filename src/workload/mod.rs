//! Workloads: what to send and when.
//!
//! A [`Workload`] yields [`RequestSpec`]s with due times. Open-loop arrivals come from
//! [`Workload::next_scheduled`] in due order; requests that depend on an answer (the next turn
//! of a conversation) come from [`Workload::on_complete`]. The [`runner`] sends each spec at its
//! due time, whatever earlier requests are doing.

pub mod agentic;
pub mod arrivals;
pub mod prompt;
pub mod random;
pub mod runner;
pub mod sharegpt;
pub mod strict;
pub mod synthetic;
pub mod trace;
pub mod vllm;

use crate::config::{Baseline, Workload as WorkloadCfg, WorkloadItem};
use crate::plan::PlannedRun;
use crate::record::{Completed, RequestSpec};

/// A source of requests for one run.
pub trait Workload: Send {
    /// The next request of the open-loop schedule, in due order; `None` when there are no more
    /// (requests may still come from `on_complete`).
    fn next_scheduled(&mut self) -> Option<RequestSpec>;

    /// A request finished at `now_s` (seconds since the run's start). Returns the requests that
    /// were waiting for it (each due no earlier than `now_s`).
    fn on_complete(&mut self, done: &Completed, now_s: f64) -> Vec<RequestSpec>;

    /// The seconds-since-start at which the measured send window closed or will close, once
    /// known (after warmup). Used to report the window; requests are not generated past it.
    fn window(&self) -> Option<(f64, f64)>;

    /// Most requests in flight at once (VLLMBenchmark's MAX_CONCURRENCY); `None` is a pure open
    /// loop. A request due while the cap is reached waits, and the wait shows as send lag.
    fn max_in_flight(&self) -> Option<usize> {
        None
    }

    /// Workload-specific counters for the result file (e.g. turns held back by a slow answer).
    fn stats(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// Everything a workload needs to build its requests for one run.
#[derive(Clone)]
pub struct RunContext {
    /// Counts tokens and builds exact-length prompt text.
    pub prompt: std::sync::Arc<prompt::PromptBuilder>,
    /// The folder of run-bench.yaml: data paths resolve against it.
    pub root: std::path::PathBuf,
    /// The endpoint the requests go to.
    pub api: crate::record::ApiType,
    /// The run's seed.
    pub seed: u64,
    /// First user id of this run (user ids never repeat between the runs of a baseline).
    pub user_id_base: u64,
    /// Target QPS at this sweep point, if the workload has one.
    pub qps: Option<f64>,
    /// Scales every configured send duration (tests use it to keep runs short).
    pub duration_override_s: Option<f64>,
}

/// Errors building a workload (an implemented-later type, or bad data).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The workload type is parsed and planned but not runnable in this version.
    #[error("workload {0} is not implemented yet in this version of lmbench")]
    NotImplemented(&'static str),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// The prompt builder of a workload item: its `TOKENIZER` file, or tiktoken.
pub fn prompt_builder(
    item: &WorkloadItem,
    root: &std::path::Path,
) -> Result<std::sync::Arc<prompt::PromptBuilder>, WorkloadError> {
    let tok = match &item.workload {
        WorkloadCfg::ShareGpt(x) => &x.TOKENIZER,
        WorkloadCfg::Synthetic(x) => &x.TOKENIZER,
        WorkloadCfg::Agentic(x) => &x.TOKENIZER,
        WorkloadCfg::Random(x) => &x.TOKENIZER,
        WorkloadCfg::Strict(x) => &x.TOKENIZER,
        WorkloadCfg::Trace(x) => &x.TOKENIZER,
        WorkloadCfg::Vllm(x) => &x.TOKENIZER,
    };
    match tok {
        None => Ok(prompt::PromptBuilder::global()),
        Some(p) => prompt::PromptBuilder::from_tokenizer_file(&root.join(&p.value))
            .map_err(WorkloadError::Other),
    }
}

/// Build the workload for a planned run.
pub fn build(
    item: &WorkloadItem,
    _baseline: &Baseline,
    run: &PlannedRun,
    ctx: &RunContext,
) -> Result<Box<dyn Workload>, WorkloadError> {
    match &item.workload {
        WorkloadCfg::Synthetic(cfg) => Ok(Box::new(synthetic::Synthetic::new(cfg, run, ctx)?)),
        WorkloadCfg::Random(cfg) => Ok(Box::new(random::RandomQa::new(cfg, run, ctx)?)),
        WorkloadCfg::ShareGpt(cfg) => sharegpt::build(cfg, run, ctx),
        WorkloadCfg::Agentic(cfg) => agentic::build(cfg, run, ctx),
        WorkloadCfg::Strict(cfg) => strict::build(cfg, run, ctx),
        WorkloadCfg::Trace(cfg) => trace::build(cfg, run, ctx),
        WorkloadCfg::Vllm(cfg) => vllm::build(cfg, run, ctx),
    }
}

/// LMBench's `workload` object of a result file: WORKLOAD, the item's keys as written (with
/// defaults filled in where LMBench fills them), and the swept key.
pub fn result_params(item: &WorkloadItem, run: &PlannedRun, api: &str) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut m = Map::new();
    m.insert("WORKLOAD".into(), json!(run.workload_name));
    let params = match &item.workload {
        WorkloadCfg::ShareGpt(x) => serde_json::to_value(x),
        WorkloadCfg::Synthetic(x) => serde_json::to_value(x),
        WorkloadCfg::Agentic(x) => serde_json::to_value(x),
        WorkloadCfg::Random(x) => serde_json::to_value(x),
        WorkloadCfg::Strict(x) => serde_json::to_value(x),
        WorkloadCfg::Trace(x) => serde_json::to_value(x),
        WorkloadCfg::Vllm(x) => serde_json::to_value(x),
    }
    .unwrap_or(Value::Null);
    if let Value::Object(p) = params {
        for (k, v) in p {
            // The swept list is replaced by this run's point below.
            if k == "QPS"
                || k == "NEW_USER_INTERVALS"
                || k == "TIME_BETWEEN_REQUESTS_PER_USER"
                || k == "REQUEST_RATES"
            {
                continue;
            }
            m.insert(k, v);
        }
    }
    match (&item.workload, run.sweep.value) {
        (WorkloadCfg::Agentic(_), Some(v)) => {
            m.insert("NEW_USER_INTERVAL".into(), v.to_json());
        }
        (WorkloadCfg::Strict(_), Some(v)) => {
            m.insert("TIME_BETWEEN_REQUESTS_PER_USER".into(), v.to_json());
        }
        (WorkloadCfg::Vllm(_), Some(v)) => {
            m.insert("REQUEST_RATE".into(), v.to_json());
        }
        (WorkloadCfg::Trace(_), None) => {
            m.insert("MODE".into(), json!("timed"));
        }
        _ => {}
    }
    if let WorkloadCfg::Synthetic(x) = &item.workload {
        if x.USE_SHAREGPT.is_none() {
            m.insert("USE_SHAREGPT".into(), json!(false));
        }
    }
    if matches!(
        &item.workload,
        WorkloadCfg::Synthetic(_) | WorkloadCfg::Strict(_) | WorkloadCfg::Trace(_)
    ) {
        m.insert("API_TYPE".into(), json!(api));
    }
    // A timed trace replay has no QPS: LMBench leaves the key out (its file name says
    // `unknown`), and readers default it.
    if let Some(q) = run.qps {
        m.insert("QPS".into(), q.to_json());
    }
    Value::Object(m)
}
