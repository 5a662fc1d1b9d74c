//! Agentic (under construction).

use super::{RunContext, Workload, WorkloadError};
use crate::config::model::Agentic as Cfg;
use crate::plan::PlannedRun;

/// Build the Agentic workload.
pub fn build(
    _cfg: &Cfg,
    _run: &PlannedRun,
    _ctx: &RunContext,
) -> Result<Box<dyn Workload>, WorkloadError> {
    Err(WorkloadError::NotImplemented("Agentic"))
}
