//! End-to-end: `lmbench run` against real servers on loopback — lmbench's simulated engine
//! (always) and llama.cpp's llama-server with Gemma-3-270M (when installed; required in CI) —
//! and the open-loop runner against a deliberately slow server.

use crate::util::*;
use lmbench::client::{Client, ClientConfig};
use lmbench::record::{ApiType, Completed, Prompt, RequestSpec};
use lmbench::workload::{runner, Workload};
use std::path::PathBuf;
use std::time::Duration;

#[test]
fn default_suite_runs_on_the_simulated_engine_and_cleans_up() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let assert = lmbench()
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--results-dir")
        .arg(out.path())
        .args(["--port", &port.to_string(), "--duration", "2"])
        .timeout(Duration::from_secs(180))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    let suite = out.path().join("default-simulated-demo");
    let files = result_files(&suite);
    assert_eq!(files.len(), 6, "one result per run: {files:?}");
    assert_eq!(
        stdout.lines().count(),
        6,
        "stdout lists the result files: {stdout}"
    );
    let mut cached = std::collections::HashMap::new();
    for f in &files {
        let v = read_json(f);
        assert_lmbench_shape(&v);
        let r = &v["results"];
        assert!(
            r["successful_requests"].as_u64().unwrap() > 0,
            "{}",
            f.display()
        );
        assert_eq!(r["failed_requests"], 0);
        let base = f.file_stem().unwrap().to_str().unwrap();
        let jsonl = suite.join(format!("{base}.requests.jsonl"));
        let lines = std::fs::read_to_string(&jsonl).unwrap();
        assert_eq!(
            lines.lines().count() as u64,
            r["total_requests"].as_u64().unwrap() + r["warmup_requests"].as_u64().unwrap(),
            "every request has a record line"
        );
        let key = v["lmbench"]["run"]["index"].as_u64().unwrap();
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("sim_prefix_cache_"), "{name}");
        assert!(v["lmbench-session-id"]
            .as_str()
            .unwrap()
            .starts_with("lmbench-"));
        if name.contains("_synthetic_") {
            cached.insert(
                (name.contains("cache_on"), key),
                r["total_cached_tokens"].as_u64().unwrap_or(0),
            );
        }
        // The engine's own metrics, scraped during the point, say what it did: its token and
        // prefix-cache counters moved by exactly what the responses reported (warmup
        // included), and the series is kept beside the result.
        let m = &r["engine_metrics"];
        assert_eq!(m["engine"], "lmbench_sim", "{name}: {m}");
        assert!(m["scrapes"].as_u64().unwrap() >= 2, "{name}: {m}");
        for k in ["prompt_tokens", "generation_tokens", "cached_tokens"] {
            let c = &m["server_vs_client"][k];
            assert_eq!(
                c["server"].as_f64(),
                c["client"].as_f64(),
                "{name} {k}: {m}"
            );
        }
        assert_eq!(
            m["raw_names"]["prefix_cache_hits_total"],
            "lmbench_sim:prefix_cache_hits_total"
        );
        let series = std::fs::read_to_string(suite.join(m["file"].as_str().unwrap())).unwrap();
        assert_eq!(
            series.lines().count() as u64,
            m["scrapes"].as_u64().unwrap()
        );
    }
    // Multi-round QA: the engine with the prefix cache reuses the shared system prompt and the
    // users' histories; the one without reuses nothing.
    assert_eq!(cached.len(), 4);
    assert!(
        cached
            .iter()
            .filter(|((on, _), _)| *on)
            .all(|(_, c)| *c > 0),
        "{cached:?}"
    );
    assert!(
        cached
            .iter()
            .filter(|((on, _), _)| !*on)
            .all(|(_, c)| *c == 0),
        "{cached:?}"
    );
    // Engine logs kept, engines gone.
    assert!(suite.join("pod-logs/sim_prefix_cache_on.log").is_file());
    assert!(
        port_free(port),
        "the simulated engine still holds port {port}"
    );
}

#[test]
fn a_turn_waits_for_its_answer_and_a_shortfall_is_flagged() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    lmbench()
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--spec")
        .arg(repo().join("tests/e2e-specs/sim-slow.yaml"))
        .arg("--results-dir")
        .arg(out.path())
        .args(["--port", &port.to_string()])
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    let files = result_files(&out.path().join("e2e-sim-slow"));
    assert_eq!(files.len(), 1);
    let v = read_json(&files[0]);
    let r = &v["results"];
    // Two users at 8 QPS want a turn every 0.25 s, but each answer takes over 0.7 s.
    assert_eq!(r["target_qps"], 8.0);
    assert!(r["achieved_qps"].as_f64().unwrap() < 6.0, "{r}");
    assert_eq!(r["qps_shortfall"], true);
    assert!(!r["warnings"].as_array().unwrap().is_empty());
    let held = v["lmbench"]["run"]["workload_stats"]["turns_held_back_by_answer"]
        .as_u64()
        .unwrap();
    assert!(held > 0, "{}", v["lmbench"]["run"]);
    // No turn of a user was sent before the previous one finished.
    let base = files[0].file_stem().unwrap().to_str().unwrap();
    let recs =
        lmbench::results::read_records(files[0].with_file_name(format!("{base}.requests.jsonl")))
            .unwrap();
    let mut by_user: std::collections::BTreeMap<u64, Vec<(f64, f64)>> = Default::default();
    for r in &recs {
        by_user
            .entry(r.user_id.unwrap())
            .or_default()
            .push((r.sent_s, r.end_s));
    }
    for turns in by_user.values_mut() {
        turns.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in turns.windows(2) {
            assert!(
                w[1].0 >= w[0].1,
                "a turn was sent before the previous answer ended: {w:?}"
            );
        }
    }
}

/// An open-loop schedule: `n` independent requests, one every `1/qps` seconds.
struct Evenly {
    n: u64,
    qps: f64,
    next: u64,
}

impl Workload for Evenly {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        if self.next >= self.n {
            return None;
        }
        let id = self.next;
        self.next += 1;
        Some(RequestSpec {
            id,
            user_id: Some(id),
            round: 1,
            due_s: id as f64 / self.qps,
            slot_s: None,
            prompt: Prompt::Text("hello there".into()),
            max_tokens: 4,
            client_prompt_tokens: 2,
            warmup: false,
            extra: Default::default(),
        })
    }
    fn on_complete(&mut self, _: &Completed, _: f64) -> Vec<RequestSpec> {
        Vec::new()
    }
    fn window(&self) -> Option<(f64, f64)> {
        Some((0.0, self.n as f64 / self.qps))
    }
}

#[test]
fn the_runner_keeps_due_times_while_the_server_is_slow() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Every request takes over a second; requests are due every 50 ms.
        let cfg: lmbench::sim::SimConfig = serde_json::from_value(serde_json::json!({
            "mode": "fixed", "ttftMs": 1000, "itlMs": 50
        }))
        .unwrap();
        let sim = lmbench::sim::spawn_local(cfg).await.unwrap();
        let client = Client::new(ClientConfig {
            base_url: sim.base_url(),
            model: "sim-model".into(),
            api: ApiType::Completions,
            request_timeout: Duration::from_secs(30),
            api_key: None,
            extra_body: Default::default(),
            ca_cert: None,
        })
        .unwrap();
        let wl = Evenly {
            n: 40,
            qps: 20.0,
            next: 0,
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let cancel = tokio_util::sync::CancellationToken::new();
        let stats = runner::run(Box::new(wl), &client, &cancel, tx).await.stats;
        let mut recs = Vec::new();
        while let Some(r) = rx.recv().await {
            recs.push(r);
        }
        assert_eq!(recs.len(), 40);
        assert!(
            recs.iter().all(|r| r.ok()),
            "{:?}",
            recs.iter().find(|r| !r.ok())
        );
        // Open loop: about 1.15 s / 50 ms = 23 requests were in flight together.
        assert!(
            stats.max_in_flight >= 15,
            "max in flight {}",
            stats.max_in_flight
        );
        let mut lags: Vec<f64> = recs.iter().map(|r| r.sent_s - r.due_s).collect();
        lags.sort_by(f64::total_cmp);
        for r in &recs {
            assert!(r.sent_s >= r.due_s, "sent before due: {r:?}");
            assert!(r.first_token_s.unwrap() - r.sent_s >= 0.99);
        }
        // Every request left well within the server's 1 s answer time, so none waited for an
        // earlier answer; the median lag is small (a busy 2-core machine can delay a few).
        assert!(
            lags[lags.len() - 1] < 0.9,
            "a request was held back: {lags:?}"
        );
        assert!(
            lags[lags.len() / 2] < 0.1,
            "median send lag {:.3}s",
            lags[lags.len() / 2]
        );
        // The last request was due at 1.95 s and sent then, not after the first ones finished.
        let last = recs
            .iter()
            .max_by(|a, b| a.due_s.total_cmp(&b.due_s))
            .unwrap();
        assert!(last.sent_s < 2.3, "last sent at {}", last.sent_s);
        let _ = sim.shutdown().await;
    });
}

/// llama-server and the Gemma GGUF from the repo's install scripts' cache, if installed.
fn llama_assets() -> Option<(PathBuf, PathBuf)> {
    let from_env = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    };
    let cache = std::env::var_os("LMBENCH_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/lmbench")))?;
    let server = from_env("LLAMA_SERVER").or_else(|| {
        let dir = cache.join("llama-server");
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path().join("llama-server"))
            .find(|p| p.is_file())
    })?;
    let model = from_env("GEMMA_GGUF")
        .or_else(|| Some(cache.join("models/gemma-3-270m-q4_k_m.gguf")).filter(|p| p.is_file()))?;
    Some((server, model))
}

/// Runs `specs` (under tests/e2e-specs/) on the real Gemma-3-270M through llama-server, within
/// `limit`: the results folder and the port used. `None` (the test then returns) when the
/// assets are not installed, unless LMBENCH_REQUIRE_LLAMA is set, which makes that a failure.
fn run_on_llama(specs: &[&str], limit: Duration) -> Option<(tempfile::TempDir, u16)> {
    let Some((server, model)) = llama_assets() else {
        if std::env::var_os("LMBENCH_REQUIRE_LLAMA").is_some() {
            panic!("LMBENCH_REQUIRE_LLAMA is set but llama-server or the Gemma model is not installed (scripts/install-llama-server.sh, scripts/fetch-gemma.sh)");
        }
        eprintln!("skipping: llama-server / Gemma not installed (run scripts/install-llama-server.sh and scripts/fetch-gemma.sh)");
        return None;
    };
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = lmbench();
    cmd.env("LLAMA_SERVER", &server)
        .env("GEMMA_GGUF", &model)
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"));
    for spec in specs {
        cmd.arg("--spec")
            .arg(repo().join("tests/e2e-specs").join(spec));
    }
    cmd.arg("--results-dir")
        .arg(out.path())
        .args([
            "--port",
            &port.to_string(),
            "--ready-timeout",
            "120",
            "--request-timeout",
            "120",
        ])
        .timeout(limit)
        .assert()
        .success();
    Some((out, port))
}

#[test]
fn llama_server_end_to_end() {
    let Some((out, port)) = run_on_llama(&["gemma.yaml"], Duration::from_secs(300)) else {
        return;
    };
    let suite = out.path().join("e2e-llama-gemma");
    let files = result_files(&suite);
    let mut names: Vec<String> = files
        .iter()
        .map(|f| {
            read_json(f)["workload"]["WORKLOAD"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "agentic",
            "random",
            "sharegpt",
            "strict_synthetic",
            "synthetic",
            "trace_replayer",
            "vllm_random"
        ],
        "one result per workload: {files:?}"
    );
    for f in &files {
        let v = read_json(f);
        assert_lmbench_shape(&v);
        let r = &v["results"];
        let what = format!("{}: {r}", f.display());
        assert!(r["successful_requests"].as_u64().unwrap() >= 2, "{what}");
        assert_eq!(r["failed_requests"], 0, "{what}");
        assert_eq!(r["token_source"]["completion"], "server", "{what}");
        assert!(r["ttft_ms"]["median"].as_f64().unwrap() > 0.0, "{what}");
        assert!(
            r["inter_token_latency_ms"]["count"].as_u64().unwrap() > 0,
            "{what}"
        );
        assert_eq!(v["serving"]["baseline_type"], "Flat");
        assert_eq!(
            v["serving"]["config"]["configSelection"],
            "llama-cpp/gemma-270m.sh"
        );
        // ignore_eos (the baseline's extraBody): every answer is exactly max_tokens long.
        let base = f.file_stem().unwrap().to_str().unwrap();
        let recs =
            lmbench::results::read_records(suite.join(format!("{base}.requests.jsonl"))).unwrap();
        for rec in recs.iter().filter(|x| x.ok()) {
            assert_eq!(rec.completion_tokens, Some(rec.max_tokens as u64), "{what}");
        }
        // llama-server's real /metrics (`--metrics`), scraped during the point: its token
        // counters moved by what the responses reported (prompt tokens: processed plus
        // reused from the cache).
        let m = &r["engine_metrics"];
        assert_eq!(m["engine"], "llamacpp", "{what}");
        assert_eq!(m["failed_scrapes"], 0, "{what}");
        assert_eq!(
            m["raw_names"]["prompt_tokens_total"],
            "llamacpp:prompt_tokens_total + llamacpp:prompt_tokens_cached_total"
        );
        for k in ["prompt_tokens", "generation_tokens"] {
            let c = &m["server_vs_client"][k];
            assert_eq!(c["server"].as_f64(), c["client"].as_f64(), "{k}: {what}");
        }
        assert!(
            m["metrics"]["requests_running"]["peak"].as_f64().is_some(),
            "{what}"
        );
    }
    assert!(suite
        .join("pod-logs/flat_llama_cpp_gemma_270m.log")
        .is_file());
    assert!(port_free(port), "llama-server still holds port {port}");
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &format!("llama-server.*--port {port}")])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "llama-server still running: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

/// The cache-state protocol on llama-server: VLLMBenchmark random prompts salted per point
/// (the default) find nothing of the previous rate's prompts in the cache at rates 2 and 4,
/// with or without a slot erase before each point, while LMCacheSynthetic still reuses its
/// prefixes within a point; the control (the same prompts at every rate) inherits the earlier
/// rates' cache, unless the baseline erases the slots before each point. Every result records
/// its `cache_state`.
#[test]
fn llama_server_cache_state_between_points() {
    let Some((out, port)) = run_on_llama(
        &["gemma-cache-salted.yaml", "gemma-cache-shared.yaml"],
        Duration::from_secs(400),
    ) else {
        return;
    };
    let mut seen = 0;
    for (suite, salted) in [
        ("e2e-llama-cache-salted", true),
        ("e2e-llama-cache-shared", false),
    ] {
        for f in result_files(&out.path().join(suite)) {
            let v = read_json(&f);
            let r = &v["results"];
            let reset = v["serving"]["config"]["cacheReset"] == "llamacpp";
            let state = &r["cache_state"];
            let ratio = r["cache_hit_ratio"].as_f64().unwrap_or(0.0);
            let workload = v["workload"]["WORKLOAD"].as_str().unwrap().to_string();
            let rate = v["workload"]["REQUEST_RATE"].as_f64();
            eprintln!(
                "{suite} reset={reset} {workload} rate={rate:?}: cache_hit_ratio {ratio:.3}, \
                 start {}, first request cached {} of {}, reset {}",
                state["start"],
                state["first_request_cached_tokens"],
                state["first_request_prompt_tokens"],
                state["reset"]
            );
            let what = format!("{}: {state}", f.display());
            assert_eq!(r["failed_requests"], 0, "{what}");
            if reset {
                assert_eq!(state["reset"]["ok"], true, "{what}");
                assert!(
                    state["reset"]["detail"]
                        .as_str()
                        .unwrap()
                        .contains("action=erase"),
                    "{what}"
                );
            } else {
                assert!(state["reset"].is_null(), "{what}");
            }
            let start = state["start"].as_str().unwrap();
            match (salted, reset) {
                (true, false) => assert_eq!(start, "salted", "{what}"),
                (true, true) => assert_eq!(start, "salted+reset", "{what}"),
                (false, false) => assert_eq!(start, "warm", "{what}"),
                (false, true) => assert_eq!(start, "reset", "{what}"),
            }
            if workload == "synthetic" {
                // Reuse within the point is what the workload is for: unchanged. On failure,
                // say what each request found cached (the engine log says which slot took it).
                let recs =
                    lmbench::results::read_records(f.with_extension("requests.jsonl")).unwrap();
                let cached: Vec<_> = recs
                    .iter()
                    .map(|r| (r.user_id, r.round, r.cached_tokens, r.prompt_tokens))
                    .collect();
                assert!(
                    ratio > 0.1,
                    "{what}: {ratio}; (user, round, cached, prompt): {cached:?}"
                );
                seen += 1;
                continue;
            }
            let rate = rate.unwrap();
            if rate > 1.0 {
                if salted || reset {
                    assert!(
                        ratio < 0.15,
                        "rate {rate} inherited the cache: {ratio} ({what})"
                    );
                    let warned = r["warnings"].to_string().contains("earlier point");
                    assert!(!warned, "{what}");
                } else {
                    // The control: the same prompts as the rate before, still cached.
                    assert!(ratio > 0.5, "rate {rate}: {ratio} ({what})");
                }
            }
            seen += 1;
        }
    }
    // Salted: 2 baselines × (3 rates + 1 synthetic point); shared: 2 baselines × 3 rates.
    assert_eq!(seen, 14);
    assert!(port_free(port), "llama-server still holds port {port}");
}

#[test]
fn ctrl_c_writes_a_partial_result_tears_down_and_exits_130() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let bin = assert_cmd::cargo::cargo_bin("lmbench");
    let child = std::process::Command::new(bin)
        .env_remove("RUST_BACKTRACE")
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--results-dir")
        .arg(out.path())
        .args(["--port", &port.to_string(), "--duration", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run is under way (the engine answers), then interrupt.
    wait_port_busy(port, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let files = result_files(&out.path().join("default-simulated-demo"));
    assert_eq!(
        files.len(),
        1,
        "only the interrupted run has a result: {files:?}"
    );
    let v = read_json(&files[0]);
    assert_eq!(v["lmbench"]["run"]["partial"], true);
    assert!(v["results"]["total_requests"].as_u64().unwrap() > 0);
    assert!(port_free(port), "the engine still holds port {port}");
}

#[test]
fn resume_runs_only_what_a_session_is_missing() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let run = |extra: &[&str]| {
        lmbench()
            .args(["run", "-c"])
            .arg(repo().join("run-bench.yaml"))
            .arg("--results-dir")
            .arg(out.path())
            .args(["--port", &port.to_string(), "--duration", "1"])
            .args(extra)
            .timeout(Duration::from_secs(180))
            .output()
            .unwrap()
    };
    let first = run(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let suite = out.path().join("default-simulated-demo");
    let files: Vec<PathBuf> = result_files(&suite)
        .into_iter()
        .filter(|f| !f.to_string_lossy().ends_with("_comparison.json"))
        .collect();
    assert_eq!(files.len(), 6);
    let session = read_json(&files[0])["lmbench-session-id"]
        .as_str()
        .unwrap()
        .to_string();
    // Lose three results (say, a disk that was cleaned up), then resume the session.
    let mut lost: Vec<u64> = Vec::new();
    for f in files.iter().step_by(2) {
        lost.push(read_json(f)["lmbench"]["run"]["index"].as_u64().unwrap());
        std::fs::remove_file(f).unwrap();
    }
    let second = run(&["--resume", &session]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(
        stderr.contains("3 of 6 run(s) already have results"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&second.stdout).lines().count(), 6);
    let now: Vec<PathBuf> = result_files(&suite)
        .into_iter()
        .filter(|f| !f.to_string_lossy().ends_with("_comparison.json"))
        .collect();
    assert_eq!(now.len(), 6, "{now:?}");
    let mut redone: Vec<u64> = Vec::new();
    for f in &now {
        let v = read_json(f);
        assert_eq!(v["lmbench-session-id"], session.as_str());
        if !files.contains(f) || lost.contains(&v["lmbench"]["run"]["index"].as_u64().unwrap()) {
            redone.push(v["lmbench"]["run"]["index"].as_u64().unwrap());
        }
    }
    redone.sort();
    lost.sort();
    assert_eq!(redone, lost);
    // A malformed id is bad input.
    let bad = run(&["--resume", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn an_engine_that_dies_mid_run_fails_its_runs_but_not_the_suite() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let o = lmbench()
        .env("DIE_AFTER_S", "2")
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--spec")
        .arg(repo().join("tests/e2e-specs/engine-dies.yaml"))
        .arg("--results-dir")
        .arg(out.path())
        .args(["--port", &port.to_string(), "--request-timeout", "5"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("exited during the run"), "{stderr}");
    assert!(stderr.contains("2 failed"), "{stderr}");
    let suite = out.path().join("e2e-engine-dies");
    let files = result_files(&suite);
    // The interrupted run keeps its partial result; the healthy baseline's two runs are there.
    let dying: Vec<_> = files
        .iter()
        .filter(|f| {
            f.to_string_lossy()
                .contains("flat_sim_dies_after_random_4_")
        })
        .collect();
    assert_eq!(dying.len(), 1, "{files:?}");
    let v = read_json(dying[0]);
    let r = &v["results"];
    assert!(r["successful_requests"].as_u64().unwrap() > 0, "{r}");
    assert!(r["failed_requests"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["failures_by_cause"]["connect"].as_u64().unwrap_or(0) > 0,
        "{r}"
    );
    assert_eq!(
        files
            .iter()
            .filter(|f| f.to_string_lossy().contains("sim_healthy_random_"))
            .count(),
        2,
        "{files:?}"
    );
    assert!(port_free(port));
}

#[test]
fn secrets_reach_no_file_and_no_output() {
    const TOKEN: &str = "hf_TestSecretToken1234567890";
    const KEY: &str = "sk-TestSecretApiKey0987654321";
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let spec = repo().join("tests/e2e-specs/secrets.yaml");
    let mut printed = String::new();
    let results_dir = out.path().to_str().unwrap().to_string();
    let port_s = port.to_string();
    for args in [
        vec!["validate"],
        vec!["plan"],
        vec!["plan", "--json"],
        vec!["run", "--port", &port_s, "--results-dir", &results_dir],
    ] {
        let o = lmbench()
            .env("HF_TOKEN", TOKEN)
            .env("OPENAI_API_KEY", KEY)
            .env("LMBENCH_LOG", "debug")
            .args(&args)
            .arg("-c")
            .arg(repo().join("run-bench.yaml"))
            .arg("--spec")
            .arg(&spec)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        printed.push_str(&String::from_utf8_lossy(&o.stdout));
        printed.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    assert!(printed.contains("e2e-secrets"), "the suite ran: {printed}");
    assert!(!printed.contains(TOKEN), "HF token printed");
    assert!(!printed.contains(KEY), "API key printed");
    let mut files = 0;
    let mut stack = vec![out.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&p).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(TOKEN), "HF token in {}", p.display());
            assert!(!text.contains(KEY), "API key in {}", p.display());
        }
    }
    assert!(
        files >= 3,
        "result JSON, its requests and the engine log were written"
    );
}

#[test]
fn server_faults_are_counted_by_cause_and_never_hang() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = std::time::Instant::now();
    let o = lmbench()
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--spec")
        .arg(repo().join("tests/e2e-specs/faults.yaml"))
        .arg("--results-dir")
        .arg(out.path())
        .args(["--port", &port.to_string(), "--request-timeout", "2"])
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Every request failed, so every run failed: exit 1, and well before any hang.
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(90));
    let suite = out.path().join("e2e-faults");
    for (name, cause) in [
        ("http500", "http_status"),
        ("malformed", "bad_response"),
        ("stall", "timeout"),
        ("reset", "stream_broken"),
    ] {
        let f = result_files(&suite)
            .into_iter()
            .find(|f| f.to_string_lossy().contains(&format!("sim_{name}_random_")))
            .unwrap_or_else(|| panic!("no result for {name}: {stderr}"));
        let r = &read_json(&f)["results"];
        let total = r["total_requests"].as_u64().unwrap();
        assert!(total >= 4, "{name}: {r}");
        assert_eq!(r["failed_requests"].as_u64().unwrap(), total, "{name}: {r}");
        assert_eq!(
            r["failures_by_cause"][cause].as_u64().unwrap(),
            total,
            "{name}: {r}"
        );
        // LMBench's error object takes the place of its metrics when nothing succeeded.
        assert_eq!(r["error"], "No successful requests completed", "{name}");
    }
}

#[test]
fn an_unwritable_results_folder_is_bad_input_before_any_deployment() {
    let out = tempfile::tempdir().unwrap();
    // A regular file where the results folder should be: nothing can be created under it.
    let blocker = out.path().join("not-a-folder");
    std::fs::write(&blocker, "x").unwrap();
    let port = free_port();
    let o = lmbench()
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--results-dir")
        .arg(blocker.join("results"))
        .args(["--port", &port.to_string()])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("results folder"), "{stderr}");
    assert!(
        !stderr.contains("deploying"),
        "nothing may be deployed: {stderr}"
    );
}

#[test]
fn a_second_ctrl_c_forces_exit_and_kills_the_engine() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let bin = assert_cmd::cargo::cargo_bin("lmbench");
    let mut child = std::process::Command::new(bin)
        .env_remove("RUST_BACKTRACE")
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--spec")
        .arg(repo().join("tests/e2e-specs/ignores-term.yaml"))
        .arg("--results-dir")
        .arg(out.path())
        .args(["--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_port_busy(port, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    // Teardown now waits up to 10 s for the launcher, which ignores SIGTERM.
    std::thread::sleep(Duration::from_millis(1500));
    let second = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        second.elapsed() < Duration::from_secs(3),
        "the forced exit was not immediate"
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("forced exit (killed 1 engine process group"),
        "{stderr}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "sim/ignores-term.sh"])
        .output()
        .unwrap();
    assert!(
        ps.stdout.is_empty(),
        "the launcher survived: {}",
        String::from_utf8_lossy(&ps.stdout)
    );
}

/// `--start-from 3` keeps the first baseline's `extraBody`: against an engine that may end an
/// answer early (`eosProbability`), the baseline's `{ignore_eos: true}` makes every answer
/// exactly `max_tokens` long. Without it about half the answers stop early.
#[test]
fn start_from_3_sends_the_first_baselines_extra_body() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    let bin = assert_cmd::cargo::cargo_bin("lmbench");
    let mut engine = std::process::Command::new(bin)
        .env_remove("RUST_BACKTRACE")
        .args(["sim", "--port", &port.to_string(), "--mode", "fixed"])
        .args([
            "--ttft-ms",
            "1",
            "--itl-ms",
            "1",
            "--set",
            "eosProbability=0.3",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_port_busy(port, Duration::from_secs(30));
    let spec = out.path().join("extra-body.yaml");
    std::fs::write(
        &spec,
        "Name: start-from-3\nServing:\n  - Simulated:\n      modelURL: sim-model\n      \
         extraBody: {ignore_eos: true}\nWorkload:\n  Random:\n    NUM_USERS: 4\n    \
         NUM_ROUNDS: 2\n    PROMPT_LEN: 20\n    ANSWER_LEN: 12\n    QPS: [10]\n    DURATION: 2\n",
    )
    .unwrap();
    let run = lmbench()
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--spec")
        .arg(&spec)
        .args([
            "--start-from",
            "3",
            "--model-url",
            "sim-model",
            "--key",
            "existing",
        ])
        .args(["--port", &port.to_string()])
        .arg("--results-dir")
        .arg(out.path().join("results"))
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let _ = engine.kill();
    let _ = engine.wait();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let files = result_files(&out.path().join("results/start-from-3"));
    assert_eq!(files.len(), 1, "{files:?}");
    let recs = records(&files[0]);
    assert!(recs.len() >= 10);
    for r in recs.iter().filter(|r| !r.warmup) {
        assert!(r.ok(), "{:?}", r.error);
        assert_eq!(
            r.completion_tokens,
            Some(12),
            "extraBody's ignore_eos was not sent"
        );
    }
}
