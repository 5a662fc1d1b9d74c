//! A point with `REPEATS: N`, carried out: N runs of it one after another against the deployed
//! baseline, each with its own request stream (the first with the plan's seed, the others with
//! seeds mixed from it and their number: fresh prompts and arrival draws, so the repeats are
//! independent replications and none finds another's prefixes in the cache), each with its own
//! result file saying which repeat it is; the last one's result also holds every repeat's
//! headline figures and their spread (`measure::repeats`).

use crate::plan::PlannedRun;
use crate::point::{run_point, Env, Repeat, RepeatRun, Role, RunOutcome};
use crate::results::RepeatOf;
use crate::workload::repeat_seed;

/// Runs the `repeats` repeats of `run`; one outcome each. `position` counts the baseline's
/// points so far (user ids never repeat between them).
pub async fn run_repeats(
    run: &PlannedRun,
    repeats: u32,
    env: Env<'_>,
    position: &mut u64,
    remaining_after_s: f64,
) -> Vec<RunOutcome> {
    let cancel = env.cancel;
    let mut outcomes = Vec::new();
    let mut earlier: Vec<RepeatRun> = Vec::new();
    for n in 1..=repeats {
        if cancel.is_cancelled() {
            break;
        }
        let this = PlannedRun {
            seed: repeat_seed(run.seed, n),
            ..run.clone()
        };
        // The estimate of the repeats still to come counts toward the ETA.
        let left = remaining_after_s + f64::from(repeats - n) * run.point.estimated_s;
        let mut o = run_point(
            &this,
            env,
            *position,
            left,
            Role {
                sla: None,
                repeat: Some(Repeat {
                    of: RepeatOf { n, of: repeats },
                    earlier: &earlier,
                }),
            },
        )
        .await;
        *position += 1;
        if let (Some(results), Some(file)) = (o.results.take(), o.result_file.as_deref()) {
            earlier.push(RepeatRun {
                n,
                file: file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                results,
            });
        }
        outcomes.push(o);
    }
    outcomes
}
