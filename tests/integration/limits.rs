//! The open-file limit: `lmbench run` under a low hard limit (`ulimit -n`, which it cannot
//! raise) refuses a run whose concurrency cannot fit, before anything is deployed, and in an
//! open loop a connect that fails for want of descriptors names the limit.

use crate::util::*;
use std::path::Path;

/// A suite with one Endpoint baseline at `base_url` and the VLLMBenchmark item `item`.
fn write_suite(root: &Path, base_url: &str, item: &str) {
    std::fs::create_dir_all(root.join("0-bench-specs")).unwrap();
    std::fs::write(
        root.join("run-bench.yaml"),
        "0-bench-specs:\n  - limits.yaml\n1-infrastructure:\n  Location: Local-Flat\n",
    )
    .unwrap();
    std::fs::write(
        root.join("0-bench-specs/limits.yaml"),
        format!(
            "Name: e2e-limits\nServing:\n  - Endpoint:\n      name: remote\n      baseURL: {base_url}\n      modelURL: sim-model\nWorkload:\n  VLLMBenchmark:\n    - DATASET_NAME: random\n      RANDOM_INPUT_LEN: 16\n      RANDOM_OUTPUT_LEN: 4\n      IGNORE_EOS: true\n      SEED: 1\n{item}"
        ),
    )
    .unwrap();
}

/// `lmbench run` in `root` with soft and hard open-file limits of `files`.
fn run_with_open_files(root: &Path, files: u64) -> std::process::Output {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_lmbench"))
        .args(["run", "--results-dir"])
        .arg(root.join("results"))
        .current_dir(root)
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LIB_BACKTRACE", "0")
        .env_remove("HF_TOKEN")
        .env_remove("LMBENCH_PORT")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[test]
fn a_concurrency_the_open_file_limit_cannot_hold_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // Nothing listens there: the run must be refused before anything is contacted.
    let url = format!("http://127.0.0.1:{}/v1", free_port());
    write_suite(
        tmp.path(),
        &url,
        "      NUM_PROMPTS: 10\n      REQUEST_RATES: [5]\n      MAX_CONCURRENCY: 1000\n",
    );
    let out = run_with_open_files(tmp.path(), 200);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("MAX_CONCURRENCY needs about 1128 open files")
            && stderr.contains("only 200 are available")
            && stderr.contains("RLIMIT_NOFILE")
            && stderr.contains("VLLMBenchmark item 1"),
        "{stderr}"
    );
    assert!(!tmp.path().join("results").join("e2e-limits").exists());
}

#[test]
fn an_open_loop_out_of_descriptors_names_the_open_file_limit() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Every request stays in flight for 3 s, so a burst of 300 needs 300 sockets at once.
    let sim = rt
        .block_on(lmbench::sim::spawn_local(lmbench::sim::SimConfig {
            mode: lmbench::sim::SimMode::Fixed,
            ttft_ms: 3000.0,
            itl_ms: 1.0,
            ..lmbench::sim::SimConfig::default()
        }))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    write_suite(
        tmp.path(),
        &format!("{}/v1", sim.base_url()),
        "      NUM_PROMPTS: 300\n      REQUEST_RATES: [1000]\n",
    );
    let out = run_with_open_files(tmp.path(), 128);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let files = result_files(&tmp.path().join("results/e2e-limits"));
    assert_eq!(files.len(), 1, "{stderr}");
    let v = read_json(&files[0]);
    let r = &v["results"];
    assert!(
        r["failures_by_cause"]["connect"].as_u64().unwrap_or(0) > 0,
        "{r}"
    );
    assert!(r["successful_requests"].as_u64().unwrap() > 0, "{r}");
    let failed: Vec<_> = records(&files[0])
        .into_iter()
        .filter_map(|rec| rec.error)
        .collect();
    assert!(!failed.is_empty());
    eprintln!(
        "open files 128: {} of 300 requests failed to connect, {} succeeded; e.g. {}",
        failed.len(),
        r["successful_requests"],
        failed[0].message
    );
    for e in &failed {
        assert!(
            e.message
                .starts_with("out of file descriptors: the open-file limit (RLIMIT_NOFILE) is 128"),
            "{e:?}"
        );
    }
    rt.block_on(sim.shutdown()).unwrap();
}
