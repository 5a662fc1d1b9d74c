//! End-to-end: the multi-round workloads (ShareGPT, Agentic, StrictSynthetic) through
//! `lmbench run --spec` against the simulated engine: LMBench's result shape and names, prefix
//! reuse visible as cache hits, and failures that are counted without losing records or hanging.

use crate::util::*;
use lmbench::record::RequestRecord;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Run one spec of `tests/e2e-specs/` and return the results folder and the suite's result
/// files (the folder is deleted when the first value drops).
fn run_spec(spec: &str, suite: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
    let out = tempfile::tempdir().unwrap();
    let files = run_e2e_spec(spec, suite, out.path());
    (out, files)
}

fn name_of(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn sharegpt_replays_the_sample_with_a_warmup_and_cache_hits() {
    let (_out, files) = run_spec("sharegpt-sample.yaml", "e2e-sharegpt");
    assert_eq!(files.len(), 1);
    let v = read_json(&files[0]);
    assert_lmbench_shape(&v);
    assert!(name_of(&files[0]).starts_with("sim_cache_on_sharegpt_20_"));
    assert_eq!(v["workload"]["WORKLOAD"], "sharegpt");
    assert_eq!(v["workload"]["QPS"], 20);
    let r = &v["results"];
    // 29 of the sample's 30 conversations have five human turns: rounds 3-5 measured, round 2
    // as warmup.
    assert_eq!(r["successful_requests"], 87);
    assert_eq!(r["failed_requests"], 0);
    assert_eq!(r["warmup_requests"], 29);
    assert!(r["total_cached_tokens"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["qps_shortfall"], false);
    let recs = records(&files[0]);
    assert_eq!(recs.len(), 29 + 87);
    let first_measured = recs
        .iter()
        .filter(|x| !x.warmup)
        .map(|x| x.sent_s)
        .fold(f64::INFINITY, f64::min);
    let warm_end = recs
        .iter()
        .filter(|x| x.warmup)
        .map(|x| x.end_s)
        .fold(0.0, f64::max);
    assert!(
        first_measured >= warm_end,
        "measured requests start after the warmup"
    );
    let mut rounds: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for x in recs.iter().filter(|x| !x.warmup) {
        rounds.entry(x.user_id.unwrap()).or_default().push(x.round);
    }
    assert_eq!(rounds.len(), 29);
    for rs in rounds.values_mut() {
        rs.sort_unstable();
        assert_eq!(rs, &[3, 4, 5]);
    }
    assert_eq!(v["lmbench"]["run"]["api_type"], "chat");
}

#[test]
fn agentic_runs_users_and_reports_the_measured_rate_as_qps() {
    let (_out, files) = run_spec("agentic-short.yaml", "e2e-agentic");
    assert_eq!(files.len(), 1);
    let v = read_json(&files[0]);
    assert_lmbench_shape(&v);
    assert!(name_of(&files[0]).starts_with("sim_cache_on_agentic_0.5_"));
    assert_eq!(v["workload"]["WORKLOAD"], "agentic");
    assert_eq!(v["workload"]["NEW_USER_INTERVAL"], 0.5);
    let r = &v["results"];
    assert_eq!(v["workload"]["QPS"], r["achieved_qps"]);
    assert!(r["achieved_qps"].as_f64().unwrap() > 0.0);
    assert_eq!(r["warmup_requests"], 1);
    // Users join at 0, 0.5, … 2.5 s after the warmup; each asks every second until the 3 s
    // window closes: 3 + 3 + 2 + 2 + 1 + 1 requests.
    assert_eq!(r["successful_requests"], 12);
    assert!(r["total_cached_tokens"].as_u64().unwrap() > 0, "{r}");
    let ws = &v["lmbench"]["run"]["workload_stats"];
    assert_eq!(ws["users_started"], 6);
    assert_eq!(ws["new_user_interval_s"], 0.5);
    let recs = records(&files[0]);
    let mut by_user: BTreeMap<u64, Vec<&RequestRecord>> = BTreeMap::new();
    for x in recs.iter().filter(|x| !x.warmup) {
        by_user.entry(x.user_id.unwrap()).or_default().push(x);
    }
    for reqs in by_user.values() {
        for p in reqs.windows(2) {
            assert!(p[1].due_s >= p[0].due_s + 1.0 - 1e-6);
            assert!(
                p[1].sent_s >= p[0].end_s,
                "a request went before its answer"
            );
        }
    }
}

#[test]
fn agentic_failures_are_counted_and_sessions_keep_their_records() {
    let (_out, files) = run_spec("agentic-faults.yaml", "e2e-agentic-faults");
    let v = read_json(&files[0]);
    assert_lmbench_shape(&v);
    let r = &v["results"];
    let failed = r["failed_requests"].as_u64().unwrap();
    assert!(failed > 0, "{r}");
    assert_eq!(r["failures_by_cause"]["http_status"], failed);
    assert_eq!(
        r["successful_requests"].as_u64().unwrap() + failed,
        r["total_requests"].as_u64().unwrap()
    );
    let recs = records(&files[0]);
    assert_eq!(recs.len() as u64, r["total_requests"].as_u64().unwrap());
    // A session with a failed request keeps its successful records, and goes on after it.
    let mut by_user: BTreeMap<u64, Vec<&RequestRecord>> = BTreeMap::new();
    for x in &recs {
        by_user.entry(x.user_id.unwrap()).or_default().push(x);
    }
    let went_on = by_user.values().any(|reqs| {
        reqs.iter()
            .position(|x| !x.ok())
            .is_some_and(|i| reqs[i + 1..].iter().any(|x| x.ok()))
    });
    assert!(went_on, "no session continued after a failure: {by_user:?}");
    assert_eq!(
        v["lmbench"]["run"]["workload_stats"]["requests_failed"],
        failed
    );
}

#[test]
fn strict_synthetic_reuse_ratio_lowers_the_cache_hit_ratio() {
    let (_out, files) = run_spec("strict-reuse.yaml", "e2e-strict");
    assert_eq!(files.len(), 2);
    let mut ratio_by_reuse = BTreeMap::new();
    for f in &files {
        let v = read_json(f);
        assert_lmbench_shape(&v);
        // QPS = N/T = 4/0.5, labelled `%.2f` as LMBench does.
        assert!(
            name_of(f).starts_with("sim_cache_on_strict_synthetic_8.00_"),
            "{}",
            f.display()
        );
        assert_eq!(v["workload"]["WORKLOAD"], "strict_synthetic");
        assert_eq!(v["workload"]["TIME_BETWEEN_REQUESTS_PER_USER"], 0.5);
        let r = &v["results"];
        // Only the recorded users 5-8 count: four users, three rounds each.
        assert_eq!(r["successful_requests"], 12);
        assert_eq!(r["total_requests"], 12);
        assert!(r["warmup_requests"].as_u64().unwrap() > 0);
        assert_eq!(r["target_qps"], 8.0);
        let ws = &v["lmbench"]["run"]["workload_stats"];
        assert_eq!(ws["configured_qps"], 8.0);
        // The recorded users alone send below N/T while they ramp in and out; the whole offered
        // rate is what says whether the target was delivered.
        let total = r["achieved_total_qps"].as_f64().unwrap();
        assert!((total - 8.0).abs() < 0.4, "{r}");
        assert_eq!(r["qps_shortfall"], false, "{r}");
        let recs = records(f);
        let recorded: std::collections::BTreeSet<u64> = recs
            .iter()
            .filter(|x| !x.warmup)
            .map(|x| x.user_id.unwrap())
            .collect();
        let first = ws["recorded_users"][0].as_u64().unwrap();
        assert_eq!(
            recorded,
            (first..first + 4).collect(),
            "users N+1..2N are recorded"
        );
        let key = (v["workload"]["KV_REUSE_RATIO"].as_f64().unwrap() * 10.0).round() as u64;
        ratio_by_reuse.insert(key, r["cache_hit_ratio"].as_f64().unwrap());
    }
    assert!(
        ratio_by_reuse[&2] < ratio_by_reuse[&10],
        "{ratio_by_reuse:?}"
    );
    assert!(ratio_by_reuse[&10] > 0.5, "{ratio_by_reuse:?}");
}

#[test]
fn strict_synthetic_finishes_when_requests_fail_and_counts_them() {
    let (_out, files) = run_spec("strict-faults.yaml", "e2e-strict-faults");
    assert_eq!(files.len(), 1);
    let v = read_json(&files[0]);
    assert_lmbench_shape(&v);
    assert!(name_of(&files[0]).contains("_strict_synthetic_8.33_"));
    let r = &v["results"];
    let failed = r["failed_requests"].as_u64().unwrap();
    assert!(failed > 0, "{r}");
    assert_eq!(r["failures_by_cause"]["http_status"], failed);
    // Every recorded user still sent all its rounds.
    assert_eq!(r["total_requests"], 15);
    let ws: &Value = &v["lmbench"]["run"]["workload_stats"];
    assert_eq!(ws["recorded_failed"], failed);
    assert_eq!(v["lmbench"]["run"]["partial"], false);
}
