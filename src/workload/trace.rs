//! TraceReplayer (under construction).

use super::{RunContext, Workload, WorkloadError};
use crate::config::model::Trace as Cfg;
use crate::plan::PlannedRun;

/// Build the TraceReplayer workload.
pub fn build(
    _cfg: &Cfg,
    _run: &PlannedRun,
    _ctx: &RunContext,
) -> Result<Box<dyn Workload>, WorkloadError> {
    Err(WorkloadError::NotImplemented("TraceReplayer"))
}
