//! An SLA search, carried out against a deployed baseline: probe after probe as
//! [`crate::workload::search::Bisection`] picks them, each a real point (`point::run_point`)
//! with its own result file, judged against the item's SLA and stopped early when it clearly
//! cannot meet it. After every probe the suite's `<WORKLOAD>_sla.json` is rewritten, so an
//! interrupted search leaves what it found.
//!
//! `<WORKLOAD>_sla.json` holds one entry per baseline and searching item of the session: the
//! SLA and range, the highest load that met the SLA (`max_load`), the lowest that did not, the
//! limit that bound at the top (`binding`), how the search ended (`status`) and every probe.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::config::Num;
use crate::files::Existing;
use crate::measure::sla::Verdict;
use crate::plan::{point_seed, PlannedRun};
use crate::point::{run_point, RunOutcome, SuiteContext};
use crate::results::{Serving, SLA_SUFFIX};
use crate::workload::search::{Bisection, SearchSpec, Status};

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
    fn store(
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

/// The searched value `load` as a number of the key's kind.
fn load_num(spec: &SearchSpec, load: f64) -> Num {
    Num {
        value: load,
        is_int: spec.axis.integer(),
    }
}

/// Runs the search `run` stands for (its item has a `SEARCH`); one outcome per probe.
/// `position` counts the baseline's points so far (user ids never repeat between them).
#[allow(clippy::too_many_arguments)]
pub async fn run_search(
    run: &PlannedRun,
    client: &Client,
    serving: Serving,
    position: &mut u64,
    suite: &SuiteContext,
    remaining_after_s: f64,
    cancel: &CancellationToken,
) -> Vec<RunOutcome> {
    let Some(spec) = run.item.search.clone() else {
        return vec![RunOutcome::failed(run, "not a search")];
    };
    let suite_dir = suite.results_dir.join(&run.suite);
    let workload = run.workload_name();
    let mut bisection = Bisection::new(&spec);
    let mut result = SearchResult {
        baseline_key: run.baseline_key.clone(),
        item: format!("Workload.{}[{}]", run.item.type_name, run.item.index),
        over: spec.axis.key().into(),
        sla: spec.sla.to_json(),
        search: spec.to_json(),
        status: Status::Searching,
        max_load: None,
        lowest_failing_load: None,
        binding: None,
        error: None,
        probes: Vec::new(),
    };
    let mut outcomes = Vec::new();
    while let Some(load) = bisection.next() {
        if cancel.is_cancelled() {
            result.error = Some("interrupted".into());
            break;
        }
        let point = match run.item.spec.search_point(spec.axis, load_num(&spec, load)) {
            Ok(p) => p,
            Err(e) => {
                result.error = Some(e.clone());
                outcomes.push(RunOutcome::failed(run, e));
                break;
            }
        };
        let probe_run = PlannedRun {
            seed: point_seed(&run.suite, &run.item, &point),
            point,
            ..run.clone()
        };
        let n = bisection.probes + 1;
        tracing::info!(
            "{} {workload}: SLA probe {n} of at most {} at {}={}",
            run.baseline_key,
            spec.max_probes,
            spec.axis.key(),
            load_num(&spec, load).label()
        );
        let o = run_point(
            &probe_run,
            client,
            serving.clone(),
            *position,
            suite,
            remaining_after_s,
            cancel,
            Some(&spec.sla),
        )
        .await;
        *position += 1;
        let valid = o
            .result_file
            .as_deref()
            .and_then(|p| crate::results::ResultFile::read(p).ok())
            .and_then(|f| f.results.get("measurement")?.get("valid")?.as_bool());
        result.probes.push(Probe {
            n,
            load,
            pass: o.sla.as_ref().map(|v| v.pass),
            sla: o.sla.clone(),
            measurement_valid: valid,
            result_file: o
                .result_file
                .as_deref()
                .and_then(Path::file_name)
                .map(|f| f.to_string_lossy().into_owned()),
            error: o.error.clone(),
        });
        let interrupted = cancel.is_cancelled();
        let verdict = o.sla.clone();
        outcomes.push(o);
        match verdict {
            Some(v) if !interrupted => bisection.record(load, v.pass),
            _ => {
                result.error = Some(if interrupted {
                    "interrupted".into()
                } else {
                    format!("probe {n} produced no result")
                });
                settle(&mut result, &bisection);
                store(&suite_dir, &workload, &suite.session_id, &result);
                break;
            }
        }
        settle(&mut result, &bisection);
        store(&suite_dir, &workload, &suite.session_id, &result);
    }
    settle(&mut result, &bisection);
    store(&suite_dir, &workload, &suite.session_id, &result);
    tracing::info!(
        "{} {workload}: SLA search {:?}: highest {} meeting the SLA {} (binding {}) after {} probe(s)",
        run.baseline_key,
        result.status,
        spec.axis.key(),
        result
            .max_load
            .map_or("none".into(), |l| load_num(&spec, l).label()),
        result.binding.as_deref().unwrap_or("-"),
        result.probes.len()
    );
    outcomes
}

/// Brings the result's summary up to date with the bisection.
fn settle(r: &mut SearchResult, b: &Bisection) {
    r.status = b.status();
    r.max_load = b.best_pass;
    r.lowest_failing_load = b.lowest_fail;
    // The limit that failed at the top of the bracket, or where every probe passed, the one
    // closest to its bound at the highest.
    let at = b.lowest_fail.or(b.best_pass);
    r.binding = at.and_then(|l| {
        r.probes
            .iter()
            .find(|p| p.load == l)
            .and_then(|p| p.sla.as_ref()?.binding.clone())
    });
}

fn store(suite_dir: &Path, workload: &str, session: &str, r: &SearchResult) {
    if let Err(e) = SlaFile::store(suite_dir, workload, session, r) {
        tracing::error!(
            "cannot write {}: {e:#}",
            SlaFile::path(suite_dir, workload).display()
        );
    }
}
