//! The measurement verdict: `lmbench run` starved of CPU (pinned to one CPU at niceness 19,
//! beside a busy loop on that CPU at niceness 0) marks its point an invalid measurement,
//! says why (send lag over budget, runner threads waiting for a CPU) and what to change, in
//! the result file and in the end-of-suite summary.

use crate::util::*;
use std::process::{Child, Command, Stdio};

/// The first CPU this process may run on.
fn one_cpu() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status")
        .trim()
        .to_string();
    list.split([',', '-']).next().unwrap().to_string()
}

/// Busy loops pinned to `cpu`, killed when dropped.
struct Hogs(Vec<Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn a_starved_load_generator_is_marked_invalid() {
    for tool in ["taskset", "nice"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(found, "{tool} is needed (util-linux / coreutils)");
    }
    let cpu = one_cpu();
    let _hogs = Hogs(
        (0..1)
            .map(|_| {
                Command::new("taskset")
                    .args(["-c", &cpu, "sh", "-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let output = Command::new("taskset")
        .args(["-c", &cpu, "nice", "-n", "19"])
        .arg(env!("CARGO_BIN_EXE_lmbench"))
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--spec")
        .arg(repo().join("tests/e2e-specs/starved.yaml"))
        .arg("--results-dir")
        .arg(out.path())
        .args(["--port", &port.to_string()])
        .env_remove("RUST_BACKTRACE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The run itself succeeded: the verdict is about what its figures mean.
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let files = result_files(&out.path().join("e2e-starved"));
    assert_eq!(files.len(), 1, "{files:?}");
    let v = read_json(&files[0]);
    let m = &v["results"]["measurement"];
    assert_eq!(m["valid"], false, "{m}");
    let checks: Vec<&str> = m["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["check"].as_str().unwrap())
        .collect();
    assert!(
        checks.contains(&"send_lag") && checks.contains(&"cpu_wait"),
        "{m}"
    );
    for r in m["reasons"].as_array().unwrap() {
        assert!(!r["advice"].as_str().unwrap().is_empty(), "{r}");
    }
    let wait = m["checks"]["cpu_wait_share"].as_f64().unwrap();
    eprintln!("starved: {}", m["checks"]);
    assert!(
        wait > m["checks"]["cpu_wait_limit"].as_f64().unwrap(),
        "{m}"
    );
    assert!(
        v["results"]["warnings"]
            .to_string()
            .contains("INVALID measurement"),
        "{}",
        v["results"]["warnings"]
    );
    let summary_line = stderr
        .lines()
        .find(|l| l.starts_with("ok ") && l.contains("sim_sim vllm_random"))
        .unwrap_or_default()
        .to_string();
    assert!(
        summary_line.contains("INVALID measurement") && summary_line.contains("change:"),
        "{stderr}"
    );
    assert!(port_free(port), "the engine still holds {port}");
}
