//! Shared test helpers: the repo root, free loopback ports, the `lmbench` command with a clean
//! environment, and result-file readers.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// The repository root (where run-bench.yaml lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True if nothing listens on the port.
pub fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Wait until something listens on `port` (a deployed engine came up); panics after `timeout`.
pub fn wait_port_busy(port: u16, timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while port_free(port) {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing started listening on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `lmbench` with backtraces off (this environment sets RUST_BACKTRACE=1) and no HF token.
pub fn lmbench() -> Command {
    let mut c = Command::cargo_bin("lmbench").unwrap();
    c.env_remove("RUST_BACKTRACE")
        .env("RUST_LIB_BACKTRACE", "0")
        .env_remove("HF_TOKEN")
        .env_remove("LMBENCH_PORT")
        .env("NO_COLOR", "1");
    c
}

/// Every result JSON (not `.requests.jsonl`) under `dir`, sorted.
pub fn result_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .filter(|p| lmbench::report::is_result_file(p))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Parse a JSON file.
pub fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Check the fields LMBench's dashboard and visualizer read.
pub fn assert_lmbench_shape(v: &serde_json::Value) {
    for k in [
        "name",
        "lmbench-session-id",
        "timestamp",
        "results",
        "infra",
        "serving",
        "workload",
    ] {
        assert!(v.get(k).is_some(), "missing top-level {k}: {v}");
    }
    let r = &v["results"];
    assert!(r["successful_requests"].is_u64(), "{r}");
    assert!(r["total_input_tokens"].is_u64());
    assert!(r["total_generated_tokens"].is_u64());
    for k in [
        "benchmark_duration_s",
        "request_throughput_req_per_s",
        "output_token_throughput_tok_per_s",
        "input_token_throughput_tok_per_s",
        "total_token_throughput_tok_per_s",
    ] {
        assert!(r[k].is_number(), "results.{k} missing: {r}");
    }
    for k in ["ttft_ms", "tpot_ms", "itl_ms"] {
        for s in ["mean", "median", "p99"] {
            assert!(r[k][s].is_number(), "results.{k}.{s} missing: {r}");
        }
    }
    assert!(v["serving"]["baseline_type"].is_string());
    assert!(v["workload"]["WORKLOAD"].is_string());
    // A timed trace replay has no QPS (LMBench leaves the key out); every other run has one.
    if v["workload"]["MODE"] != "timed" {
        assert!(
            v["workload"].get("QPS").is_some(),
            "workload.QPS missing: {}",
            v["workload"]
        );
    }
    let ts = v["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), 13, "timestamp YYYYmmdd-HHMM: {ts}");
}

/// `lmbench run` of one spec of `tests/e2e-specs/` (or an absolute path) with the
/// repository's run-bench.yaml, into `out`, on `port`, within two minutes.
pub fn e2e_spec_run(spec: &str, out: &Path, port: u16) -> Command {
    let mut c = lmbench();
    c.args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--spec")
        .arg(repo().join("tests/e2e-specs").join(spec))
        .arg("--results-dir")
        .arg(out)
        .args(["--port", &port.to_string()])
        .timeout(std::time::Duration::from_secs(120));
    c
}

/// Run one spec of `tests/e2e-specs/` (with the repository's run-bench.yaml, on a free port)
/// into `out`; it must succeed and free its port. Returns the suite's result files.
pub fn run_e2e_spec(spec: &str, suite: &str, out: &Path) -> Vec<PathBuf> {
    let port = free_port();
    e2e_spec_run(spec, out, port).assert().success();
    assert!(port_free(port), "the simulated engine still holds {port}");
    result_files(&out.join(suite))
}

/// The request records written beside a result file (`<name>.requests.jsonl`).
pub fn records(result: &Path) -> Vec<lmbench::record::RequestRecord> {
    let base = result.file_stem().unwrap().to_str().unwrap();
    lmbench::results::read_records(result.with_file_name(format!("{base}.requests.jsonl"))).unwrap()
}
