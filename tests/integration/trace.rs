//! TraceReplayer end to end: `lmbench run` replays the shipped sample trace, and short windows
//! of the mooncake and gmi traces (from ../shared/data, when present), against the simulated
//! engine with its prefix cache on.

use crate::util::*;

/// LMBench's result shape (no QPS in a timed replay) for a trace replay.
fn assert_trace_shape(v: &serde_json::Value) {
    assert_lmbench_shape(v);
    assert_eq!(v["workload"]["WORKLOAD"], "trace_replayer");
}
use lmbench::workload::trace::{self, TimeUnit};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `lmbench run` of one spec into `out`; every run must succeed.
fn run_spec(spec: &Path, out: &Path) {
    lmbench()
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--spec")
        .arg(spec)
        .arg("--results-dir")
        .arg(out)
        .args(["--port", &free_port().to_string()])
        .timeout(Duration::from_secs(180))
        .assert()
        .success();
}

/// The result file whose name contains `part`.
fn result_named(dir: &Path, part: &str) -> (PathBuf, serde_json::Value) {
    let files = result_files(dir);
    let f = files
        .iter()
        .find(|f| f.file_name().unwrap().to_str().unwrap().contains(part))
        .unwrap_or_else(|| panic!("no result named *{part}* in {files:?}"));
    (f.clone(), read_json(f))
}

fn records(result: &Path) -> Vec<lmbench::record::RequestRecord> {
    let base = result.file_stem().unwrap().to_str().unwrap();
    lmbench::results::read_records(result.with_file_name(format!("{base}.requests.jsonl"))).unwrap()
}

/// The figures worth reading in a test log.
fn figures(label: &str, v: &serde_json::Value) {
    let r = &v["results"];
    eprintln!(
        "{label}: {} requests, {} ok, achieved {} req/s, TTFT p50 {} ms, cache hit ratio {}",
        r["total_requests"],
        r["successful_requests"],
        r["achieved_qps"],
        r["ttft_ms"]["median"],
        r["cache_hit_ratio"]
    );
}

#[test]
fn the_sample_trace_replays_timed_and_at_a_qps_point() {
    let out = tempfile::tempdir().unwrap();
    run_spec(
        &repo().join("tests/e2e-specs/trace-sample.yaml"),
        out.path(),
    );
    let suite = out.path().join("e2e-trace-sample");
    assert_eq!(result_files(&suite).len(), 2);

    // Timed: every request of the trace, at its offset / 60, file named like LMBench's.
    let (f, v) = result_named(&suite, "sim_trace_trace_replayer_unknown_");
    figures("sample, timed 60x", &v);
    assert_trace_shape(&v);
    assert!(v["workload"].get("QPS").is_none(), "{}", v["workload"]);
    assert_eq!(v["workload"]["MODE"], "timed");
    let r = &v["results"];
    assert_eq!(r["successful_requests"], 200, "{r}");
    assert_eq!(r["failed_requests"], 0);
    assert!(r["target_qps"].is_null());
    // Conversations share system prompts and their own earlier turns.
    assert!(r["total_cached_tokens"].as_u64().unwrap() > 0, "{r}");
    let st = &v["lmbench"]["run"]["workload_stats"];
    assert_eq!(st["format"], "ms_offsets");
    assert_eq!(st["requests_in_window"], 200);
    assert_eq!(st["block_size"], 512);
    let recs = records(&f);
    assert_eq!(recs.len(), 200);
    let last_due = recs.iter().map(|r| r.due_s).fold(0.0, f64::max);
    assert!((last_due - 180.876 / 60.0).abs() < 1e-9, "{last_due}");
    // Streaming: the first token came before the end, and the prompt length is the trace's.
    assert!(recs.iter().all(|r| r.first_token_s.unwrap() <= r.end_s));
    assert!(recs
        .iter()
        .all(|r| r.prompt_tokens == Some(r.client_prompt_tokens)));

    // QPS mode: an open loop at the target over the first minute of the trace.
    let (f, v) = result_named(&suite, "sim_trace_trace_replayer_25_");
    figures("sample, QPS 25", &v);
    assert_trace_shape(&v);
    assert_eq!(v["workload"]["QPS"], 25);
    let r = &v["results"];
    assert_eq!(r["failed_requests"], 0);
    let achieved = r["achieved_qps"].as_f64().unwrap();
    assert!((achieved / 25.0 - 1.0).abs() < 0.1, "achieved {achieved}");
    assert_eq!(r["qps_shortfall"], false);
    let n = v["lmbench"]["run"]["workload_stats"]["requests_scheduled"]
        .as_u64()
        .unwrap();
    assert_eq!(records(&f).len() as u64, n);
}

/// The shared data folder beside the repository, if this checkout has one.
fn shared_trace(name: &str) -> Option<PathBuf> {
    let p = repo().join("../shared/data").join(name);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("skipping: {} is not here", p.display());
        None
    }
}

/// A spec replaying `window` (YAML keys) of the trace at `path` on a fast simulated engine.
fn shared_spec(dir: &Path, name: &str, path: &Path, window: &str) -> PathBuf {
    let spec = dir.join(format!("{name}.yaml"));
    let text = format!(
        "Name: {name}
Serving:
  - Simulated:
      name: trace
      modelURL: sim-model
      prefixCaching: true
      prefillUsPerToken: 1
      maxBatchedTokens: 32768
      cacheCapacityTokens: 4000000
      decodeBaseUs: 2000
      decodeUsPerSeq: 20
Workload:
  TraceReplayer:
    - TRACE_FILE: {}
      PRESERVE_TIMING: true
      MAX_OUTPUT_TOKENS: 32
{window}",
        path.display()
    );
    std::fs::write(&spec, text).unwrap();
    spec
}

#[test]
fn the_mooncake_trace_loads_and_a_window_replays() {
    let Some(path) = shared_trace("mooncake_trace.jsonl") else {
        return;
    };
    let t = trace::load(&path).unwrap();
    assert_eq!(t.entries.len(), 12_031);
    assert_eq!(t.unit, TimeUnit::MsOffsets);
    assert!((t.span_s - 3536.999).abs() < 1e-6, "{}", t.span_s);

    let out = tempfile::tempdir().unwrap();
    let window = "      START_TIME: 0\n      DURATION: 30\n      SPEED_UP: 10\n";
    let spec = shared_spec(out.path(), "e2e-trace-mooncake", &path, window);
    run_spec(&spec, out.path());
    let (_, v) = result_named(&out.path().join("e2e-trace-mooncake"), "_unknown_");
    figures("mooncake 0-30 s, timed 10x", &v);
    assert_trace_shape(&v);
    let r = &v["results"];
    let st = &v["lmbench"]["run"]["workload_stats"];
    assert_eq!(st["format"], "ms_offsets");
    assert_eq!(r["successful_requests"], st["requests_scheduled"], "{r}");
    assert_eq!(r["failed_requests"], 0);
    assert!(st["clipped_outputs"].as_u64().unwrap() > 0, "{st}");
    assert!(r["total_cached_tokens"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn the_gmi_trace_loads_and_a_window_replays() {
    let Some(path) = shared_trace("gmi_trace.jsonl") else {
        return;
    };
    let t = trace::load(&path).unwrap();
    assert_eq!(t.entries.len(), 1_931);
    assert_eq!(t.unit, TimeUnit::UnixNs);
    assert!((t.span_s - 86_245.21).abs() < 0.01, "{}", t.span_s);

    let out = tempfile::tempdir().unwrap();
    // LMBench's own gmi window (vllm-prefix-caching-versus-lmcache/traces.yaml), 40× faster,
    // with gmi's ~32-token blocks.
    let window = "      START_TIME: 85200\n      DURATION: 120\n      SPEED_UP: 40\n      MAX_DELAY: 1\n      BLOCK_SIZE: 32\n";
    let spec = shared_spec(out.path(), "e2e-trace-gmi", &path, window);
    run_spec(&spec, out.path());
    let (_, v) = result_named(&out.path().join("e2e-trace-gmi"), "_unknown_");
    figures("gmi 85200-85320 s, timed 40x", &v);
    assert_trace_shape(&v);
    let r = &v["results"];
    let st = &v["lmbench"]["run"]["workload_stats"];
    assert_eq!(st["format"], "unix_ns");
    assert_eq!(st["requests_in_window"], 44);
    assert_eq!(r["successful_requests"], 44, "{r}");
    assert_eq!(r["failed_requests"], 0);
    assert!(r["total_cached_tokens"].is_u64(), "{r}");
}
