//! `<WORKLOAD>_sla.json`: the SLA searches of a suite's session (`crate::search`), one entry
//! per baseline and searching item: the SLA and range, the highest load that met the SLA
//! (`max_load`), the lowest that did not, the limit that bound at the top (`binding`), how the
//! search ended (`status`) and every probe with its result file. The report reads it back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::SLA_SUFFIX;
use crate::files::Existing;
use crate::measure::sla::Verdict;
use crate::workload::search::Status;

/// One probe of a search, as `_sla.json` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    /// 1 for the first.
    pub n: usize,
    /// The load probed (QPS or concurrency).
    pub load: f64,
    /// Whether it met the SLA; `null` when it produced no verdict (the run failed).
    pub pass: Option<bool>,
    /// The verdict: each limit's value, the binding one, an early stop.
    pub sla: Option<Verdict>,
    /// Whether the load generator's own measurement was sound (`results.measurement.valid`).
    pub measurement_valid: Option<bool>,
    /// The probe's result file (name within the suite folder).
    pub result_file: Option<String>,
    /// What went wrong, if the probe failed.
    pub error: Option<String>,
}

/// One search of one baseline, as `_sla.json` holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchResult {
    /// The baseline.
    pub baseline_key: String,
    /// The workload item (`Workload.<Type>[<index>]`).
    pub item: String,
    /// The searched key (`QPS`, `MAX_CONCURRENCY`).
    pub over: String,
    /// The SLA as validated.
    pub sla: Value,
    /// `SEARCH` as validated.
    pub search: Value,
    /// How the search ended: `found`, `below_low`, `at_least_high`, `budget_spent`,
    /// `searching` (interrupted or a probe failed; see `error`).
    pub status: Status,
    /// The highest load that met the SLA; `null` when none did.
    pub max_load: Option<f64>,
    /// The lowest load that did not; `null` when every probe met it.
    pub lowest_failing_load: Option<f64>,
    /// The limit that decided at the top: the binding limit of the lowest failing probe.
    pub binding: Option<String>,
    /// Why the search ended early, if it did.
    pub error: Option<String>,
    /// Every probe, in order.
    pub probes: Vec<Probe>,
}

/// A suite's `<WORKLOAD>_sla.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SlaFile {
    /// LMBench's WORKLOAD name.
    pub workload: String,
    /// The session.
    pub session_id: String,
    /// One entry per baseline and searching item, in the order they ran.
    pub searches: Vec<SearchResult>,
}

impl SlaFile {
    /// The file's path in `suite_dir`.
    pub fn path(suite_dir: &Path, workload: &str) -> PathBuf {
        suite_dir.join(format!(
            "{}{SLA_SUFFIX}",
            crate::results::file_name_part(workload)
        ))
    }

    /// Reads one.
    pub fn read(path: &Path) -> Result<SlaFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    /// Puts `r` in the file of its session in `suite_dir` (replacing an earlier entry of the
    /// same baseline and item; a file of another session is replaced whole).
    pub fn store(
        suite_dir: &Path,
        workload: &str,
        session: &str,
        r: &SearchResult,
    ) -> anyhow::Result<()> {
        let path = SlaFile::path(suite_dir, workload);
        let mut file = SlaFile::read(&path)
            .ok()
            .filter(|f| f.session_id == session)
            .unwrap_or_else(|| SlaFile {
                workload: workload.to_string(),
                session_id: session.to_string(),
                searches: Vec::new(),
            });
        match file
            .searches
            .iter_mut()
            .find(|s| s.baseline_key == r.baseline_key && s.item == r.item)
        {
            Some(s) => *s = r.clone(),
            None => file.searches.push(r.clone()),
        }
        let mut bytes = serde_json::to_vec_pretty(&file)?;
        bytes.push(b'\n');
        std::fs::create_dir_all(suite_dir)?;
        crate::files::write_atomic(&path, &bytes, Existing::Replace)?;
        Ok(())
    }
}
