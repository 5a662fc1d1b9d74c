//! Reading a suite folder's result files, choosing the sessions to report, and grouping the
//! results into workloads and series.
//!
//! LMBench's visualizer mixes every session ever run under a suite name and recovers baseline
//! keys by splitting file names on `_`, which cuts keys such as `flat_basic_vllm_run_llama8B`
//! short. Here the key comes from the file's own fields: `lmbench.baseline_key` when present,
//! otherwise the file name up to `_<workload.WORKLOAD>_<qps>_<timestamp>`, matched from the
//! right with the file's own `WORKLOAD` value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use crate::results::{is_result_file, ResultFile};

/// Session label for result files that carry no `lmbench-session-id`.
pub const NO_SESSION: &str = "(no session id)";

/// Workload keys that hold the swept value of one run rather than the item's configuration.
const SWEEP_KEYS: &[&str] = &[
    "QPS",
    "NEW_USER_INTERVAL",
    "TIME_BETWEEN_REQUESTS_PER_USER",
    "REQUEST_RATE",
];

/// One result file, read.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Where it was read from.
    pub path: PathBuf,
    /// `lmbench-session-id` ([`NO_SESSION`] when absent).
    pub session: String,
    /// The file's `timestamp` (`YYYYmmdd-HHMM`), empty when absent.
    pub timestamp: String,
    /// The file's modification time.
    pub mtime: SystemTime,
    /// The top-level `name`.
    pub suite: String,
    /// `workload.WORKLOAD`.
    pub workload: String,
    /// The baseline key.
    pub baseline_key: String,
    /// `serving.baseline_type`.
    pub baseline_type: String,
    /// `serving.config`.
    pub serving_config: Value,
    /// The whole `workload` object.
    pub workload_params: Value,
    /// `workload.QPS` as written (a number), or None (timed trace replay, or not a number).
    pub qps_value: Option<Value>,
    /// `lmbench.run.index`.
    pub run_index: Option<u64>,
    /// `lmbench.run.partial`.
    pub partial: bool,
    /// The `results` object.
    pub results: Value,
    /// `lmbench.run.sweep`'s key, e.g. `QPS` or `NEW_USER_INTERVAL`.
    pub sweep_key: Option<String>,
    /// `lmbench.run.sweep`'s value.
    pub sweep_value: Option<Value>,
    /// `lmbench.run.repeat`: which repeat of its point the run is.
    pub repeat: Option<crate::results::RepeatOf>,
}

impl RunResult {
    /// The x value of the plots: `workload.QPS` (Agentic's is its measured rate).
    pub fn qps(&self) -> Option<f64> {
        self.qps_value.as_ref().and_then(Value::as_f64)
    }

    /// `results.<block>.<stat>` as a number; for a point with repeats, the mean over them.
    pub fn stat(&self, block: &str, stat: &str) -> Option<f64> {
        self.repeat_mean(&format!("{block}.{stat}"))
            .or_else(|| self.results.get(block)?.get(stat)?.as_f64())
    }

    /// `results.<field>` as a number; for a point with repeats, the mean over them.
    pub fn field(&self, field: &str) -> Option<f64> {
        self.repeat_mean(field)
            .or_else(|| self.results.get(field)?.as_f64())
    }

    /// A headline metric's spread over the repeats (`results.repeats.stats.<metric>`).
    pub fn spread(&self, metric: &str) -> Option<&Value> {
        self.results
            .get("repeats")?
            .get("stats")?
            .get(metric)
            .filter(|s| s.is_object())
    }

    fn repeat_mean(&self, metric: &str) -> Option<f64> {
        self.spread(metric)?.get("mean")?.as_f64()
    }

    /// The 95 % confidence interval of a headline metric's mean over the repeats.
    pub fn ci95(&self, metric: &str) -> Option<(f64, f64)> {
        let ci = self.spread(metric)?.get("ci95")?;
        Some((ci.get(0)?.as_f64()?, ci.get(1)?.as_f64()?))
    }

    /// The file name.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// LMBench's error object: no request succeeded.
    pub fn error(&self) -> Option<String> {
        let e = self.results.get("error")?.as_str()?;
        match self.results.get("message").and_then(Value::as_str) {
            Some(m) if !m.is_empty() => Some(format!("{e}: {m}")),
            _ => Some(e.to_string()),
        }
    }

    /// `results.warnings`.
    pub fn warnings(&self) -> Vec<String> {
        self.results
            .get("warnings")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|w| match w {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The swept value as a short label: the QPS, or `interval 2` for Agentic, `timed` for a
    /// timed trace replay.
    pub fn point_label(&self) -> String {
        match (&self.sweep_key, &self.sweep_value) {
            (Some(k), Some(v)) if k != "QPS" && !v.is_null() => {
                format!("{} {}", sweep_name(k), json_scalar(v))
            }
            _ => match &self.qps_value {
                Some(v) => json_scalar(v),
                None => "timed".to_string(),
            },
        }
    }

    /// The workload item's configuration: the workload object without the swept value, so
    /// the runs of one item at different points compare equal.
    pub fn item_config(&self) -> Value {
        let mut params = self.workload_params.clone();
        if let Value::Object(m) = &mut params {
            for k in SWEEP_KEYS {
                m.remove(*k);
            }
            if let Some(k) = &self.sweep_key {
                m.remove(k);
            }
        }
        params
    }

    fn item_signature(&self) -> String {
        self.item_config().to_string()
    }

    /// How recent the result is: its `timestamp`, then its modification time.
    fn recency(&self) -> (String, SystemTime) {
        (self.timestamp.clone(), self.mtime)
    }
}

fn sweep_name(key: &str) -> &str {
    match key {
        "NEW_USER_INTERVAL" => "interval",
        "TIME_BETWEEN_REQUESTS_PER_USER" => "T",
        "REQUEST_RATE" => "rate",
        other => other,
    }
}

/// A JSON scalar as text, strings unquoted.
pub fn json_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A file in the folder that looked like a result but could not be used.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Everything read from a suite folder.
#[derive(Debug, Clone, Default)]
pub struct SuiteFiles {
    /// Every readable result, in file-name order.
    pub results: Vec<RunResult>,
    /// Unreadable `.json` files.
    pub skipped: Vec<Skipped>,
}

/// Reads every result JSON directly inside `dir` (not recursively).
pub fn read_suite_dir(dir: &Path) -> std::io::Result<SuiteFiles> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_result_file(p))
        .collect();
    paths.sort();
    let mut out = SuiteFiles::default();
    for path in paths {
        match read_result(&path) {
            Ok(r) => out.results.push(r),
            Err(reason) => out.skipped.push(Skipped { path, reason }),
        }
    }
    Ok(out)
}

/// Reads one result file.
pub fn read_result(path: &Path) -> Result<RunResult, String> {
    let file = ResultFile::read(path)?;
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    from_file(path, file, mtime)
}

/// Builds a [`RunResult`] from a parsed result JSON.
pub fn from_value(path: &Path, v: &Value, mtime: SystemTime) -> Result<RunResult, String> {
    from_file(path, ResultFile::from_value(v.clone())?, mtime)
}

/// Builds a [`RunResult`] from a result file.
pub fn from_file(path: &Path, f: ResultFile, mtime: SystemTime) -> Result<RunResult, String> {
    let workload = f.workload_name().to_string();
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .trim_end_matches(".json")
        .to_string();
    let lm = f.lmbench.clone().unwrap_or_default();
    let baseline_key = lm
        .baseline_key
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| baseline_key_from_stem(&stem, &workload));
    let (sweep_key, sweep_value) = match lm.run.sweep.iter().next() {
        Some((k, val)) => (Some(k.clone()), Some(val.clone())),
        None => (None, None),
    };
    let session = f
        .session_id
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| NO_SESSION.to_string());
    let workload_params = Value::Object(f.workload.clone());
    Ok(RunResult {
        path: path.to_path_buf(),
        session,
        timestamp: f.timestamp.clone(),
        mtime,
        suite: f.name.clone(),
        baseline_key,
        baseline_type: f.serving.baseline_type.clone().unwrap_or_default(),
        serving_config: f.serving.config.clone().unwrap_or(Value::Null),
        qps_value: f
            .workload
            .get("QPS")
            .filter(|q| q.as_f64().is_some_and(f64::is_finite))
            .cloned(),
        workload,
        workload_params,
        run_index: lm.run.index,
        partial: lm.run.partial.unwrap_or(false),
        results: Value::Object(f.results),
        sweep_key,
        sweep_value,
        repeat: lm.run.repeat,
    })
}

/// The baseline key from a result file's stem `<key>_<WORKLOAD>_<qps>_<YYYYmmdd-HHMM>[-N]`,
/// given the file's own WORKLOAD. The tail (`_<qps>_<timestamp>`) is taken off from the right
/// and the remainder must end in `_<WORKLOAD>`; names that do not have that shape fall back to
/// the last `_<WORKLOAD>_` in the stem, then to the whole stem.
pub fn baseline_key_from_stem(stem: &str, workload: &str) -> String {
    let workload = crate::results::file_name_part(workload);
    let suffix = format!("_{workload}");
    if let Some((head, _timestamp)) = stem.rsplit_once('_') {
        if let Some((rest, _qps)) = head.rsplit_once('_') {
            if let Some(key) = rest.strip_suffix(&suffix) {
                if !key.is_empty() {
                    return key.to_string();
                }
            }
        }
    }
    let infix = format!("_{workload}_");
    match stem.rfind(&infix) {
        Some(i) if i > 0 => stem[..i].to_string(),
        _ => stem.to_string(),
    }
}

/// One session found in a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The id.
    pub id: String,
    /// How many result files it has.
    pub files: usize,
    /// Its newest file's `timestamp`.
    pub latest_timestamp: String,
}

/// The sessions of a folder, oldest first: ordered by their newest file's `timestamp`, then
/// by that file's modification time, then by id.
pub fn sessions(results: &[RunResult]) -> Vec<SessionInfo> {
    let mut by_id: BTreeMap<&str, (usize, (String, SystemTime))> = BTreeMap::new();
    for r in results {
        let e = by_id
            .entry(r.session.as_str())
            .or_insert((0, (String::new(), SystemTime::UNIX_EPOCH)));
        e.0 += 1;
        e.1 = e.1.clone().max(r.recency());
    }
    let mut list: Vec<(&str, usize, (String, SystemTime))> = by_id
        .into_iter()
        .map(|(id, (n, rec))| (id, n, rec))
        .collect();
    list.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(b.0)));
    list.into_iter()
        .map(|(id, files, (ts, _))| SessionInfo {
            id: id.to_string(),
            files,
            latest_timestamp: ts,
        })
        .collect()
}

/// Which results to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The newest session in the folder.
    Newest,
    /// One session.
    Session(String),
    /// Every session (LMBench's behaviour).
    All,
}

/// Why a selection found nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// The folder has no readable result file.
    NoResults,
    /// No result file has this session id; the known ones are listed.
    UnknownSession(String, Vec<String>),
}

/// The results of the selected session(s), and their ids (oldest first).
pub fn select(
    results: &[RunResult],
    selection: &Selection,
) -> Result<(Vec<RunResult>, Vec<String>), SelectError> {
    let all = sessions(results);
    if all.is_empty() {
        return Err(SelectError::NoResults);
    }
    let ids: Vec<String> = match selection {
        Selection::All => all.iter().map(|s| s.id.clone()).collect(),
        Selection::Newest => vec![all.last().map(|s| s.id.clone()).unwrap_or_default()],
        Selection::Session(id) => {
            if !all.iter().any(|s| &s.id == id) {
                return Err(SelectError::UnknownSession(
                    id.clone(),
                    all.iter().map(|s| s.id.clone()).collect(),
                ));
            }
            vec![id.clone()]
        }
    };
    let chosen: Vec<RunResult> = results
        .iter()
        .filter(|r| ids.contains(&r.session))
        .cloned()
        .collect();
    Ok((fold_repeats(chosen), ids))
}

/// A point with repeats shows once, as its last repeat (whose result holds the spread over
/// all of them): the other repeats of a point that has a last one are left out. Repeats of a
/// point whose last repeat never came stay, each as a result of its own.
pub fn fold_repeats(results: Vec<RunResult>) -> Vec<RunResult> {
    let point = |r: &RunResult| (r.session.clone(), r.run_index, r.baseline_key.clone());
    let finished: Vec<_> = results
        .iter()
        .filter(|r| r.results.get("repeats").is_some())
        .map(point)
        .collect();
    results
        .into_iter()
        .filter(|r| match r.repeat {
            Some(rep) if rep.n < rep.of => !finished.contains(&point(r)),
            _ => true,
        })
        .collect()
}

/// One line of a plot and one key of the comparison JSON: a baseline (and, when a suite has
/// several items of one workload type, the item).
#[derive(Debug, Clone)]
pub struct Series {
    /// The label: the baseline key, with ` (item N)` when the workload has several items.
    pub label: String,
    /// The baseline key.
    pub baseline_key: String,
    /// Indices into [`WorkloadGroup::runs`] that the plots and the comparison JSON use: one
    /// per point (the newest where several results share a point), sorted by QPS, runs with
    /// no QPS last.
    pub points: Vec<usize>,
}

/// The selected results of one workload.
#[derive(Debug, Clone)]
pub struct WorkloadGroup {
    /// `WORKLOAD`, e.g. `synthetic`.
    pub workload: String,
    /// Every result, ordered by series, then QPS (no QPS last), then age.
    pub runs: Vec<RunResult>,
    /// The series of each run: an index into `series`, parallel to `runs`.
    pub series_of: Vec<usize>,
    /// The lines, in order of first appearance.
    pub series: Vec<Series>,
    /// Results left out of the plots and the JSON because a newer one has the same series and
    /// point.
    pub superseded: Vec<usize>,
    /// Every distinct item configuration (the workload object without the swept value). When
    /// series labels carry item numbers, item N is `items[N − 1]`.
    pub items: Vec<Value>,
}

impl WorkloadGroup {
    /// True when some run has no QPS (timed trace replay).
    pub fn has_untimed(&self) -> bool {
        self.runs.iter().any(|r| r.qps().is_none())
    }

    /// True when the x axis is a measured rate (Agentic).
    pub fn measured_x(&self) -> bool {
        self.workload == "agentic"
    }
}

fn order_key(r: &RunResult, session_rank: &BTreeMap<String, usize>) -> (usize, u64, String) {
    (
        session_rank.get(&r.session).copied().unwrap_or(usize::MAX),
        r.run_index.unwrap_or(u64::MAX),
        r.file_name(),
    )
}

/// Groups results by workload, in the order the runs were made (session, then run index).
/// Within a workload, a series is a baseline key; when the workload's results come from more
/// than one item configuration (two `LMCacheSynthetic` items, or sessions run with different
/// settings), each item gets its own series, labelled `<key> (item N)`.
pub fn group(results: &[RunResult], session_order: &[String]) -> Vec<WorkloadGroup> {
    let rank: BTreeMap<String, usize> = session_order
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), i))
        .collect();
    let mut sorted: Vec<&RunResult> = results.iter().collect();
    sorted.sort_by_key(|r| order_key(r, &rank));

    let mut workloads: Vec<String> = Vec::new();
    for r in &sorted {
        if !workloads.contains(&r.workload) {
            workloads.push(r.workload.clone());
        }
    }
    workloads
        .into_iter()
        .map(|w| {
            let runs: Vec<&RunResult> =
                sorted.iter().copied().filter(|r| r.workload == w).collect();
            build_group(w, runs)
        })
        .collect()
}

fn build_group(workload: String, runs: Vec<&RunResult>) -> WorkloadGroup {
    // Items are told apart by the runs with a QPS. A timed replay (no QPS) is drawn as an
    // unconnected marker anyway, so when the QPS runs come from one item, the timed runs join
    // its series instead of doubling the legend (a suite usually has one timed item and one
    // QPS item); their configuration is still listed.
    let mut sigs: Vec<String> = Vec::new();
    let mut items: Vec<Value> = Vec::new();
    let mut item_of: Vec<usize> = vec![0; runs.len()];
    for (i, r) in runs.iter().enumerate().filter(|(_, r)| r.qps().is_some()) {
        item_of[i] = intern(&mut sigs, &mut items, r);
    }
    let with_qps = sigs.len();
    let mut merged_sigs: Vec<String> = Vec::new();
    let mut merged_items: Vec<Value> = Vec::new();
    for (i, r) in runs.iter().enumerate().filter(|(_, r)| r.qps().is_none()) {
        let sig = r.item_signature();
        item_of[i] = match sigs.iter().position(|s| *s == sig) {
            Some(p) => p,
            None if with_qps == 1 => {
                intern(&mut merged_sigs, &mut merged_items, r);
                0
            }
            None => intern(&mut sigs, &mut items, r),
        };
    }
    let several = sigs.len() > 1;
    items.extend(merged_items);
    let label_at = |i: usize| {
        let key = &runs[i].baseline_key;
        if several {
            format!("{key} (item {})", item_of[i] + 1)
        } else {
            key.clone()
        }
    };

    let mut series_order: Vec<(String, String)> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let label = label_at(i);
        if !series_order.iter().any(|(l, _)| *l == label) {
            series_order.push((label, r.baseline_key.clone()));
        }
    }
    // Order: series, then QPS (untimed last), then newest first so the first of equal points
    // is the one plotted.
    let mut ordered: Vec<(usize, &RunResult)> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let label = label_at(i);
            let s = series_order
                .iter()
                .position(|(l, _)| *l == label)
                .unwrap_or(0);
            (s, *r)
        })
        .collect();
    ordered.sort_by(|(sa, a), (sb, b)| {
        sa.cmp(sb)
            .then_with(|| cmp_qps(a.qps(), b.qps()))
            .then_with(|| b.recency().cmp(&a.recency()))
    });

    let mut series: Vec<Series> = series_order
        .iter()
        .map(|(label, key)| Series {
            label: label.clone(),
            baseline_key: key.clone(),
            points: Vec::new(),
        })
        .collect();
    let mut superseded = Vec::new();
    let mut last: Option<(usize, Option<u64>)> = None;
    for (i, (s, r)) in ordered.iter().enumerate() {
        let point = (*s, r.qps().map(f64::to_bits));
        if last == Some(point) {
            superseded.push(i);
        } else {
            series[*s].points.push(i);
            last = Some(point);
        }
    }
    let series_of = ordered.iter().map(|(s, _)| *s).collect();
    WorkloadGroup {
        workload,
        runs: ordered.into_iter().map(|(_, r)| r.clone()).collect(),
        series_of,
        series,
        superseded,
        items,
    }
}

/// The index of `r`'s item configuration in `items`, added if new.
fn intern(sigs: &mut Vec<String>, items: &mut Vec<Value>, r: &RunResult) -> usize {
    let sig = r.item_signature();
    match sigs.iter().position(|s| *s == sig) {
        Some(p) => p,
        None => {
            sigs.push(sig);
            items.push(r.item_config());
            sigs.len() - 1
        }
    }
}

/// Ascending QPS, runs without a QPS last.
fn cmp_qps(a: Option<f64>, b: Option<f64>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    }
}
