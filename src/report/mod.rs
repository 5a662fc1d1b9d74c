//! Reports (under construction): per-suite comparison JSON and PNG, and `report.html`.

use std::path::{Path, PathBuf};

/// Options of `lmbench report`.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The suite folder (`4-latest-results/<Name>`).
    pub suite_dir: PathBuf,
    /// Only this session's results (default: the newest session in the folder).
    pub session: Option<String>,
    /// Every session's results (LMBench's behaviour).
    pub all: bool,
}

/// Write `<WORKLOAD>_comparison.json` and `.png` for one session of a suite folder (the newest
/// when `session` is None) and `report.html`; returns the files written.
pub fn write_suite(_suite_dir: &Path, _session: Option<&str>) -> anyhow::Result<Vec<PathBuf>> {
    Ok(Vec::new())
}

/// `lmbench report`: returns the exit code.
pub fn run_report(_opts: &ReportOptions) -> u8 {
    0
}
