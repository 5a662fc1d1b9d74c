//! Workloads: what to send and when.
//!
//! A [`Workload`] yields [`RequestSpec`]s with due times. Open-loop arrivals come from
//! [`Workload::next_scheduled`] in due order; requests that depend on an answer (the next turn
//! of a conversation) come from [`Workload::on_complete`]. The [`runner`] sends each spec at its
//! due time, whatever earlier requests are doing.

pub mod prompt;
pub mod random;
pub mod runner;
pub mod synthetic;

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

    /// Workload-specific counters for the result file (e.g. turns held back by a slow answer).
    fn stats(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// Everything a workload needs to build its requests for one run.
#[derive(Debug, Clone)]
pub struct RunContext {
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
        other => Err(WorkloadError::NotImplemented(other.type_name())),
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
    m.insert(
        "QPS".into(),
        run.qps.map(|q| q.to_json()).unwrap_or(Value::Null),
    );
    Value::Object(m)
}
