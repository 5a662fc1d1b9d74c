//! An SLA search, carried out against a deployed baseline: probe after probe as
//! [`crate::workload::search::Bisection`] picks them, each a real point (`point::run_point`)
//! with its own result file, judged against the item's SLA and stopped early when it clearly
//! cannot meet it. After every probe the suite's `<WORKLOAD>_sla.json` is rewritten, so an
//! interrupted search leaves what it found. Resumed (`--resume`), a search plays its probes
//! again in order, taking each one's verdict from its complete result file where the session
//! has one and running only the probes it lacks.
//!
//! What it writes is `results::sla`'s [`SlaFile`].

use std::path::Path;

use crate::config::Num;
use crate::plan::{point_seed, PlannedRun};
use crate::point::{run_point, Env, Role, RunOutcome};
use crate::results::sla::{Probe, SearchResult, SlaFile};
use crate::workload::search::{Bisection, SearchSpec, Status};

/// The searched value `load` as a number of the key's kind.
fn load_num(spec: &SearchSpec, load: f64) -> Num {
    Num {
        value: load,
        is_int: spec.axis.integer(),
    }
}

/// Runs the search `run` stands for (its item has a `SEARCH`); one outcome per probe.
/// `position` counts the baseline's points so far (user ids never repeat between them).
pub async fn run_search(
    run: &PlannedRun,
    env: Env<'_>,
    position: &mut u64,
    remaining_after_s: f64,
) -> Vec<RunOutcome> {
    let (suite, cancel) = (env.suite, env.cancel);
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
        let o = match measured(&probe_run, env.suite) {
            Some(o) => {
                tracing::info!(
                    "{} {workload}: SLA probe {n} already measured in this session",
                    run.baseline_key
                );
                o
            }
            None => {
                run_point(
                    &probe_run,
                    env,
                    *position,
                    remaining_after_s,
                    Role {
                        sla: Some(&spec.sla),
                        repeat: None,
                    },
                )
                .await
            }
        };
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

/// The probe `probe` as this session already measured it (a complete result of the same run,
/// baseline and load, with its verdict), when resuming.
fn measured(probe: &PlannedRun, suite: &crate::point::SuiteContext) -> Option<RunOutcome> {
    let dir = suite.results_dir.join(&probe.suite);
    let key = probe.point.sweep.key;
    let value = probe.point.sweep.value?.value;
    crate::results::complete_runs(&dir, &suite.session_id)
        .into_iter()
        .filter(|c| c.index == probe.index as u64)
        .filter(|c| c.baseline_key.as_deref() == Some(probe.baseline_key.as_str()))
        .find_map(|c| {
            let f = crate::results::ResultFile::read(&c.path).ok()?;
            let swept = f.run()?.sweep.get(key)?.as_f64()?;
            let verdict = serde_json::from_value(f.results.get("sla")?.clone()).ok()?;
            (swept == value).then(|| RunOutcome {
                sla: Some(verdict),
                ..RunOutcome::resumed(probe, &c.path)
            })
        })
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
