//! LMBench-compatible result files, as one typed [`ResultFile`].
//!
//! Each run writes two files into the suite's result folder:
//! - `<key>_<WORKLOAD>_<qps>_<YYYYmmdd-HHMM>.json`: LMBench's per-run JSON (`name`,
//!   `lmbench-session-id`, `timestamp`, `results`, `infra`, `serving`, `workload`, in that order)
//!   followed by lmbench's `schema_version` and `lmbench` keys, so LMBench's dashboard and
//!   visualizer read it unchanged;
//! - `<same stem>.requests.jsonl`: one [`crate::record::RequestRecord`] per line, written while
//!   the run goes ([`ResultWriter`]).
//!
//! The same [`ResultFile`] type is what `--resume` ([`completed_runs`]) and the report read
//! back; fields LMBench's own files lack (the session id, the `lmbench` block) are optional
//! when reading. Result files are never overwritten (LMBench's minute-resolution names
//! silently replaced earlier runs): a taken name gets a `-1`, `-2`, … suffix after the
//! timestamp, and the JSON is written atomically without clobbering.

pub mod sla;
mod writer;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::workload::runner::RunStats;
pub use writer::{for_each_record, read_records, ResultWriter};

/// Value of the top-level `schema_version` key.
pub const SCHEMA_VERSION: &str = "lmbench/1";

/// Suffix of the per-request file beside a result JSON.
pub const REQUESTS_SUFFIX: &str = ".requests.jsonl";

/// Suffix of the comparison files, which share a suite folder with results but are not results.
pub const COMPARISON_SUFFIX: &str = "_comparison.json";

/// Suffix of the engine-metrics series beside a result JSON (`crate::engine_metrics`).
pub const METRICS_SUFFIX: &str = ".metrics.jsonl";

/// Suffix of the SLA search files (`crate::search`), which are not results either.
pub const SLA_SUFFIX: &str = "_sla.json";

/// One result file. Field order is the file's key order: LMBench's keys first, then lmbench's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    /// The suite's `Name`.
    #[serde(default)]
    pub name: String,
    /// `lmbench-<unix>-<8 hex>`; absent in files LMBench wrote.
    #[serde(
        rename = "lmbench-session-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub session_id: Option<String>,
    /// When the run was summarized, `YYYYmmdd-HHMM`.
    #[serde(default)]
    pub timestamp: String,
    /// The measurements: [`crate::measure::Summary::results_json`] plus the workload's own
    /// fields, or LMBench's error object when nothing succeeded.
    pub results: Map<String, Value>,
    /// run-bench.yaml's `1-infrastructure`.
    #[serde(default)]
    pub infra: Value,
    /// `{"baseline_type": …, "config": {…}}` (`{}` for `--start-from 3`).
    #[serde(default)]
    pub serving: Serving,
    /// `{"WORKLOAD": …, the item's keys…, the swept key…, "QPS": …}`.
    pub workload: Map<String, Value>,
    /// [`SCHEMA_VERSION`]; absent in files LMBench wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
    /// lmbench's own block; absent in files LMBench wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lmbench: Option<LmbenchBlock>,
}

/// The `serving` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Serving {
    /// The baseline type as written in spec files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_type: Option<String>,
    /// The baseline's keys as written, without `hf_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

/// The `lmbench` object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LmbenchBlock {
    /// lmbench's version.
    #[serde(default)]
    pub version: String,
    /// The baseline key (the file name's first part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_key: Option<String>,
    /// How the run went.
    #[serde(default)]
    pub run: RunInfo,
    /// The `.requests.jsonl` beside the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_file: Option<String>,
}

/// `lmbench.run`: how the run was made. Every field is written; when reading, what is
/// missing is left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunInfo {
    /// Position in the plan, from 0.
    pub index: Option<u64>,
    /// Seed of the request stream.
    pub seed: Option<u64>,
    /// The swept key and its value at this point, e.g. `{"QPS": 2}` or `{"MODE": null}`.
    pub sweep: Map<String, Value>,
    /// Wall-clock start, Unix seconds.
    pub started_at_unix_s: Option<f64>,
    /// The measured send window `[start, end]` in seconds since the start, if known.
    pub send_window_s: Option<[f64; 2]>,
    /// The endpoint requests went to.
    pub endpoint: Option<String>,
    /// `completions` or `chat`.
    pub api_type: Option<String>,
    /// The model name sent.
    pub model: Option<String>,
    /// One request's time limit.
    pub request_timeout_s: Option<f64>,
    /// The tokenizer prompts were counted with.
    pub tokenizer: Option<String>,
    /// True when the run was interrupted.
    pub partial: Option<bool>,
    /// What the runner observed.
    pub scheduler: Option<RunStats>,
    /// The workload's own counters.
    pub workload_stats: Value,
    /// Which repeat of its point this run is (`REPEATS` above 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat: Option<RepeatOf>,
}

/// A run's place among the repeats of its point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatOf {
    /// 1 for the first.
    pub n: u32,
    /// How many the point has.
    pub of: u32,
}

/// Who and what a result is about, besides its measurements: what [`ResultFile::new`] needs.
#[derive(Debug, Clone)]
pub struct ResultHead {
    /// The suite's `Name` (top-level `name`).
    pub suite: String,
    /// The session id (top-level `lmbench-session-id`).
    pub session_id: String,
    /// The file name's parts (the baseline key and the timestamp are written in the file too).
    pub name: ResultName,
    /// run-bench.yaml's `1-infrastructure` (`infra`).
    pub infra: Value,
    /// The baseline (`serving`).
    pub serving: Serving,
}

impl ResultFile {
    /// A result file as lmbench writes it: `head`'s identity, the measurements, LMBench's
    /// `workload` object and lmbench's run details.
    pub fn new(
        head: &ResultHead,
        results: Map<String, Value>,
        workload: Map<String, Value>,
        run: RunInfo,
    ) -> ResultFile {
        ResultFile {
            name: head.suite.clone(),
            session_id: Some(head.session_id.clone()),
            timestamp: format_timestamp(&head.name.timestamp),
            results,
            infra: head.infra.clone(),
            serving: head.serving.clone(),
            workload,
            schema_version: Some(SCHEMA_VERSION.to_string()),
            lmbench: Some(LmbenchBlock {
                version: env!("CARGO_PKG_VERSION").to_string(),
                baseline_key: Some(head.name.baseline_key.clone()),
                run,
                requests_file: Some(format!("{}{REQUESTS_SUFFIX}", head.name.base())),
            }),
        }
    }

    /// The file's bytes: pretty JSON (2-space indent, like LMBench's `json.dump(indent=2)`)
    /// and a final newline. Any `hf_token`-like key in the values that come from user input
    /// (infra, serving, workload, the sweep and the workload's counters) is dropped first,
    /// whatever the caller put there.
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let mut f = self.clone();
        strip_secrets(&mut f.infra);
        if let Some(c) = &mut f.serving.config {
            strip_secrets(c);
        }
        strip_map(&mut f.workload);
        if let Some(lm) = &mut f.lmbench {
            strip_map(&mut lm.run.sweep);
            strip_secrets(&mut lm.run.workload_stats);
        }
        let mut bytes = serde_json::to_vec_pretty(&f)?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Read a result file.
    pub fn read(path: &Path) -> Result<ResultFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
        ResultFile::from_value(v)
    }

    /// A parsed result JSON as a [`ResultFile`]; says what is missing when it is not one.
    pub fn from_value(v: Value) -> Result<ResultFile, String> {
        if !v.get("results").is_some_and(Value::is_object) {
            return Err("no \"results\" object (not a result file)".into());
        }
        if !v
            .get("workload")
            .and_then(|w| w.get("WORKLOAD"))
            .is_some_and(Value::is_string)
        {
            return Err("no workload.WORKLOAD".into());
        }
        serde_json::from_value(v).map_err(|e| format!("not a result file: {e}"))
    }

    /// `workload.WORKLOAD`.
    pub fn workload_name(&self) -> &str {
        self.workload
            .get("WORKLOAD")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `lmbench.run`, when the file has lmbench's block.
    pub fn run(&self) -> Option<&RunInfo> {
        self.lmbench.as_ref().map(|l| &l.run)
    }
}

fn is_secret_key(k: &str) -> bool {
    let norm: String = k
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    norm == "hftoken"
}

fn strip_map(map: &mut Map<String, Value>) {
    map.retain(|k, _| !is_secret_key(k));
    map.values_mut().for_each(strip_secrets);
}

fn strip_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => strip_map(map),
        Value::Array(items) => items.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

/// What a result file's name is made of.
#[derive(Debug, Clone)]
pub struct ResultName {
    /// The baseline key.
    pub baseline_key: String,
    /// LMBench's `WORKLOAD` value, e.g. `synthetic`.
    pub workload: String,
    /// The QPS as LMBench writes it in file names: `0.5`, `2`, `unknown`.
    pub qps_label: String,
    /// When the run was summarized; written at minute resolution as `YYYYmmdd-HHMM`.
    pub timestamp: chrono::DateTime<chrono::Local>,
}

impl ResultName {
    /// The file name stem `<key>_<WORKLOAD>_<qps_label>_<YYYYmmdd-HHMM>` (no suffix, no
    /// `.json`). Path separators, whitespace and control characters in the parts become `-`
    /// so the name stays one file inside the result folder; an empty part becomes `unknown`.
    pub fn base(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            sanitize(&self.baseline_key),
            sanitize(&self.workload),
            sanitize(&self.qps_label),
            format_timestamp(&self.timestamp)
        )
    }

    /// `<base>.json`, LMBench's result file name.
    pub fn file_name(&self) -> String {
        format!("{}.json", self.base())
    }
}

/// `YYYYmmdd-HHMM`, LMBench's timestamp format.
pub fn format_timestamp(ts: &chrono::DateTime<chrono::Local>) -> String {
    ts.format("%Y%m%d-%H%M").to_string()
}

fn sanitize(part: &str) -> String {
    if part.is_empty() {
        return "unknown".to_string();
    }
    file_name_part(part)
}

/// A name part as it appears in file names lmbench writes: path separators, whitespace and
/// control characters become `-`.
pub fn file_name_part(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_whitespace() || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// True for a per-run result JSON: a `.json` file that is not a `*_comparison.json` nor a
/// hidden temporary file. (Result files sit beside `.requests.jsonl`, comparison files and
/// `report.html` in a suite folder.)
pub fn is_result_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.ends_with(".json")
        && !name.ends_with(COMPARISON_SUFFIX)
        && !name.ends_with(SLA_SUFFIX)
        && !name.starts_with('.')
}

/// A complete result of a session, found in a suite folder.
#[derive(Debug, Clone, PartialEq)]
pub struct CompleteRun {
    /// The file.
    pub path: PathBuf,
    /// `lmbench.run.index`.
    pub index: u64,
    /// `workload.WORKLOAD`.
    pub workload: String,
    /// `lmbench.baseline_key`.
    pub baseline_key: Option<String>,
    /// `lmbench.run.repeat`.
    pub repeat: Option<RepeatOf>,
}

/// The results in `dir` of session `session` that are complete (not partial), for
/// `--resume`. Unreadable files and other sessions' files are passed over.
pub fn complete_runs(dir: &Path, session: &str) -> Vec<CompleteRun> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let path = e.path();
        if !is_result_file(&path) {
            continue;
        }
        let Ok(f) = ResultFile::read(&path) else {
            continue;
        };
        if f.session_id.as_deref() != Some(session) {
            continue;
        }
        let Some(run) = f.run() else { continue };
        if run.partial != Some(false) {
            continue;
        }
        let Some(index) = run.index else { continue };
        out.push(CompleteRun {
            index,
            workload: f.workload_name().to_string(),
            baseline_key: f.lmbench.as_ref().and_then(|l| l.baseline_key.clone()),
            repeat: run.repeat,
            path,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}
