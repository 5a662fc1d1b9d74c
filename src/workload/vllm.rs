//! VLLMBenchmark (under construction).

use super::{RunContext, Workload, WorkloadError};
use crate::config::model::Vllm as Cfg;
use crate::plan::PlannedRun;

/// Build the VLLMBenchmark workload.
pub fn build(
    _cfg: &Cfg,
    _run: &PlannedRun,
    _ctx: &RunContext,
) -> Result<Box<dyn Workload>, WorkloadError> {
    Err(WorkloadError::NotImplemented("VLLMBenchmark"))
}

/// vLLM bench's result names, added beside LMBench's in a VLLMBenchmark result: computed from
/// the `results` object and the workload's `stats()`.
pub fn vllm_result_fields(
    _results: &serde_json::Value,
    _stats: &serde_json::Value,
) -> serde_json::Map<String, serde_json::Value> {
    serde_json::Map::new()
}
