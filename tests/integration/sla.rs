//! SLA search against the simulated engine with a known capacity (10 requests a second, see
//! `tests/e2e-specs/sla-search.yaml`): the search finds the highest QPS meeting a TTFT p99
//! limit within its precision, checked against a dense scan of the same item at fixed QPS
//! points, with far fewer probes than a dense scan of its whole range, and its probes over
//! capacity stop early.

use crate::util::*;
use serde_json::Value;

/// The item's SLA, as the spec writes it.
const TTFT_P99_LIMIT_MS: f64 = 120.0;
const MAX_ERROR_RATE: f64 = 0.01;
/// The search's range and precision, as the spec writes them.
const LOW: f64 = 2.0;
const HIGH: f64 = 40.0;
const PRECISION: f64 = 0.05;
/// The item's seconds of sending per point.
const DURATION_S: f64 = 5.0;

/// Whether a scan point's result meets the SLA (judged here from its figures, independently
/// of lmbench's own verdict).
fn meets(v: &Value) -> bool {
    let r = &v["results"];
    let ttft = r["ttft_ms"]["p99"].as_f64().expect("ttft p99");
    let failed = r["failed_requests"].as_u64().unwrap() as f64;
    let total = r["total_requests"].as_u64().unwrap() as f64;
    ttft <= TTFT_P99_LIMIT_MS && failed / total <= MAX_ERROR_RATE
}

#[test]
fn sla_search_matches_a_dense_scan_with_fewer_probes() {
    // The search.
    let out = tempfile::tempdir().unwrap();
    let files = run_e2e_spec("sla-search.yaml", "e2e-sla", out.path());
    let sla = read_json(&out.path().join("e2e-sla/random_sla.json"));
    let searches = sla["searches"].as_array().unwrap();
    assert_eq!(searches.len(), 1, "{sla}");
    let s = &searches[0];
    assert_eq!(s["baseline_key"], "sim_knee");
    assert_eq!(s["item"], "Workload.Random[0]");
    assert_eq!(s["over"], "QPS");
    assert_eq!(s["status"], "found", "{s}");
    let probes = s["probes"].as_array().unwrap();
    let max_probes = s["search"]["max_probes"].as_u64().unwrap() as usize;
    assert!(probes.len() <= max_probes, "{s}");
    // Every probe is a real run with its own result file, judged as the file says.
    assert_eq!(files.len(), probes.len(), "{files:?}");
    for p in probes {
        let name = p["result_file"].as_str().unwrap();
        let v = read_json(&out.path().join("e2e-sla").join(name));
        assert_lmbench_shape(&v);
        assert_eq!(v["workload"]["QPS"].as_f64(), p["load"].as_f64(), "{name}");
        assert_eq!(v["results"]["sla"], p["sla"], "{name}");
        assert_eq!(v["lmbench"]["run"]["partial"], false, "{name}");
    }
    let (first, second) = (&probes[0], &probes[1]);
    assert_eq!(
        (first["load"].as_f64(), first["pass"].as_bool()),
        (Some(LOW), Some(true))
    );
    assert_eq!(
        (second["load"].as_f64(), second["pass"].as_bool()),
        (Some(HIGH), Some(false))
    );
    // Over capacity, the probe at `high` stopped well before its end, bound by TTFT.
    let stopped = second["sla"]["stopped_early"]
        .as_str()
        .expect("stopped early");
    assert!(stopped.contains("had TTFT over 120 ms"), "{stopped}");
    assert_eq!(second["sla"]["binding"], "ttft_p99_ms");
    let high = read_json(
        &out.path()
            .join("e2e-sla")
            .join(second["result_file"].as_str().unwrap()),
    );
    let sent = high["results"]["total_requests"].as_u64().unwrap() as f64;
    assert!(
        sent < 0.5 * HIGH * DURATION_S,
        "{sent} requests at {HIGH} QPS"
    );
    let max_load = s["max_load"].as_f64().unwrap();
    let lowest_failing = s["lowest_failing_load"].as_f64().unwrap();
    assert!(lowest_failing <= max_load * (1.0 + PRECISION) + 1e-9, "{s}");
    assert_eq!(s["binding"], "ttft_p99_ms", "{s}");
    // The report shows the search.
    let html = std::fs::read_to_string(out.path().join("e2e-sla/report.html")).unwrap();
    assert!(
        html.contains("<h2 id=\"sla\">SLA search</h2>"),
        "no SLA section"
    );
    assert!(
        html.contains(&format!("Highest QPS meeting the SLA: {max_load}</b>")),
        "no {max_load} in the SLA section"
    );

    // The dense scan: the same item at fixed points 4 % apart around the capacity.
    let spec = std::fs::read_to_string(repo().join("tests/e2e-specs/sla-search.yaml")).unwrap();
    let scan_qps = [9.0, 9.4, 9.8, 10.2, 10.6, 11.0];
    let list = scan_qps.map(|q| q.to_string()).join(", ");
    let scan_spec: String = spec
        .lines()
        .filter(|l| !l.contains("SLA:"))
        .map(|l| match l.contains("SEARCH:") {
            true => format!("      QPS: [{list}]"),
            false => l.replace("Name: e2e-sla", "Name: e2e-sla-scan"),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let scan_file = dir.path().join("scan.yaml");
    std::fs::write(&scan_file, scan_spec).unwrap();
    let scan_out = tempfile::tempdir().unwrap();
    let scan = run_e2e_spec(scan_file.to_str().unwrap(), "e2e-sla-scan", scan_out.path());
    assert_eq!(scan.len(), scan_qps.len());
    let mut judged: Vec<(f64, bool)> = scan
        .iter()
        .map(|f| {
            let v = read_json(f);
            (v["workload"]["QPS"].as_f64().unwrap(), meets(&v))
        })
        .collect();
    judged.sort_by(|a, b| a.0.total_cmp(&b.0));
    // The scan's own bracket: the highest point meeting the SLA below the first that misses.
    let scan_fail = judged
        .iter()
        .find(|(_, ok)| !ok)
        .map(|(q, _)| *q)
        .expect("the scan's top misses the SLA");
    let scan_pass = judged
        .iter()
        .rev()
        .find(|(q, ok)| *ok && *q < scan_fail)
        .map(|(q, _)| *q)
        .expect("the scan's bottom meets the SLA");
    assert!(
        max_load >= scan_pass / (1.0 + PRECISION) - 1e-9 && max_load <= scan_fail,
        "search {max_load}..{lowest_failing}, scan {judged:?}"
    );
    assert!(
        lowest_failing >= scan_pass && lowest_failing <= scan_fail * (1.0 + PRECISION) + 1e-9,
        "search {max_load}..{lowest_failing}, scan {judged:?}"
    );
    eprintln!(
        "search: {max_load}..{lowest_failing} in {} probes; scan: {judged:?}",
        probes.len()
    );
    // A dense scan of the whole range at the same precision needs this many points.
    let dense = ((HIGH / LOW).ln() / (1.0 + PRECISION).ln()).ceil() as usize + 1;
    assert!(
        probes.len() * 5 < dense,
        "{} probes vs {dense}",
        probes.len()
    );
}

#[test]
fn a_max_concurrency_search_finds_the_engines_batch_size() {
    let out = tempfile::tempdir().unwrap();
    let files = run_e2e_spec("sla-concurrency.yaml", "e2e-sla-concurrency", out.path());
    let sla = read_json(&out.path().join("e2e-sla-concurrency/vllm_random_sla.json"));
    let s = &sla["searches"][0];
    assert_eq!(s["over"], "MAX_CONCURRENCY");
    assert_eq!(s["status"], "found", "{s}");
    assert_eq!(
        (s["max_load"].as_f64(), s["lowest_failing_load"].as_f64()),
        (Some(4.0), Some(5.0)),
        "{s}"
    );
    let probes = s["probes"].as_array().unwrap();
    assert!(probes.len() <= s["search"]["max_probes"].as_u64().unwrap() as usize);
    assert_eq!(files.len(), probes.len());
    for p in probes {
        let load = p["load"].as_f64().unwrap();
        assert_eq!(load.fract(), 0.0, "{p}");
        let v = read_json(
            &out.path()
                .join("e2e-sla-concurrency")
                .join(p["result_file"].as_str().unwrap()),
        );
        // Every probe runs at one cap on requests in flight: the searched one.
        assert_eq!(v["workload"]["MAX_CONCURRENCY"].as_f64(), Some(load), "{p}");
        assert!(
            v["lmbench"]["run"]["scheduler"]["max_in_flight"]
                .as_f64()
                .unwrap()
                <= load
        );
    }
    // Resumed, the search plays its probes again from their results: nothing is sent again,
    // and it reaches the same answer.
    let output = e2e_spec_run("sla-concurrency.yaml", out.path(), free_port())
        .args(["--resume", sla["session_id"].as_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        result_files(&out.path().join("e2e-sla-concurrency")),
        files,
        "{stderr}"
    );
    assert!(
        stderr.contains("already measured in this session"),
        "{stderr}"
    );
    let again = read_json(&out.path().join("e2e-sla-concurrency/vllm_random_sla.json"));
    assert_eq!(again["searches"][0]["probes"], s["probes"]);
    assert_eq!(again["searches"][0]["max_load"], s["max_load"]);
}
