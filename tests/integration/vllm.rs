//! VLLMBenchmark end to end: `lmbench run` against the fixed-timing simulated engine, with the
//! random dataset at two request rates (concurrency cap, goodput) and once on every file
//! dataset shipped under `3-workloads/vllm-benchmark-serving/`.

use crate::util::*;
use serde_json::Value;
use std::collections::BTreeMap;

fn f(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("expected a number, got {v}"))
}

/// vLLM's names agree with lmbench's fields they come from.
fn assert_vllm_names(r: &Value) {
    assert_eq!(r["completed"], r["successful_requests"], "{r}");
    assert_eq!(r["duration"], r["benchmark_duration_s"]);
    assert_eq!(r["total_output_tokens"], r["total_generated_tokens"]);
    assert_eq!(r["request_throughput"], r["request_throughput_req_per_s"]);
    assert_eq!(
        r["output_throughput"],
        r["output_token_throughput_tok_per_s"]
    );
    assert_eq!(r["mean_ttft_ms"], r["ttft_ms"]["mean"]);
    assert_eq!(r["p99_tpot_ms"], r["tpot_ms"]["p99"]);
    assert_eq!(r["median_itl_ms"], r["inter_token_latency_ms"]["median"]);
    assert_eq!(r["p99_e2el_ms"], r["e2e_latency_ms"]["p99"]);
    for k in [
        "median_ttft_ms",
        "std_ttft_ms",
        "mean_tpot_ms",
        "mean_itl_ms",
        "p99_itl_ms",
        "mean_e2el_ms",
        "total_token_throughput",
    ] {
        assert!(r[k].is_number(), "{k} missing: {r}");
    }
}

fn figures(name: &str, r: &Value) {
    eprintln!(
        "{name}: completed {} in {} s, {} req/s, {} in / {} out tokens, TTFT mean {} ms, \
         TPOT p99 {} ms, ITL median {} ms, E2EL p99 {} ms, goodput {}",
        r["completed"],
        r["duration"],
        r["request_throughput"],
        r["total_input_tokens"],
        r["total_output_tokens"],
        r["mean_ttft_ms"],
        r["p99_tpot_ms"],
        r["median_itl_ms"],
        r["p99_e2el_ms"],
        r.get("request_goodput").unwrap_or(&Value::Null),
    );
}

#[test]
fn vllm_random_runs_once_per_rate_with_vllm_names_cap_and_goodput() {
    let out = tempfile::tempdir().unwrap();
    let files = run_e2e_spec("vllm-random.yaml", "e2e-vllm-random", out.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let mut prompts_by_rate = BTreeMap::new();
    for rate in [20u64, 100] {
        let file = files
            .iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&format!("sim_vllm_vllm_random_{rate}_"))
            })
            .unwrap_or_else(|| panic!("no result for rate {rate}: {files:?}"));
        let v = read_json(file);
        assert_lmbench_shape(&v);
        assert_eq!(v["workload"]["WORKLOAD"], "vllm_random");
        assert_eq!(v["workload"]["REQUEST_RATE"], rate);
        let r = &v["results"];
        figures(&format!("random @ {rate}"), r);
        assert_vllm_names(r);
        assert_eq!(r["completed"], 30);
        assert_eq!(r["failed"], 0);
        assert_eq!(r["request_rate"], rate as f64);
        assert_eq!(r["burstiness"], 0.5);
        assert_eq!(r["max_concurrency"], 4);
        // Fixed mode: 40 ms to the first token, then 5 ms per token.
        let ttft = f(&r["mean_ttft_ms"]);
        assert!((39.0..80.0).contains(&ttft), "TTFT {ttft}");
        let itl = f(&r["median_itl_ms"]);
        assert!((4.0..15.0).contains(&itl), "ITL {itl}");
        let tpot = f(&r["p99_tpot_ms"]);
        assert!((4.0..20.0).contains(&tpot), "TPOT {tpot}");
        // Every request meets the SLOs, so goodput is the request throughput.
        let goodput = f(&r["request_goodput"]);
        let throughput = f(&r["request_throughput"]);
        assert!(
            (goodput / throughput - 1.0).abs() < 0.01,
            "{goodput} vs {throughput}"
        );
        let run = &v["lmbench"]["run"];
        let stats = &run["workload_stats"];
        assert_eq!(stats["goodput"]["good_requests"], 30, "{stats}");
        assert_eq!(stats["dataset"], "random");
        assert_eq!(stats["seed"], 3);
        let in_flight = run["scheduler"]["max_in_flight"].as_u64().unwrap();
        assert!((1..=4).contains(&in_flight), "max_in_flight {in_flight}");
        let recs = records(file);
        assert_eq!(recs.len(), 30);
        let mut prompts = BTreeMap::new();
        for rec in &recs {
            assert!(rec.ok(), "{rec:?}");
            // 8 shared prefix tokens + 64 ± 25 %; 16 ± 25 % generated (ignore_eos).
            let p = rec.prompt_tokens.unwrap();
            assert!((8 + 48..=8 + 80).contains(&p), "prompt {p}");
            assert_eq!(p, rec.client_prompt_tokens, "one word is one token");
            assert!((12..=20).contains(&rec.max_tokens), "{}", rec.max_tokens);
            assert_eq!(rec.completion_tokens, Some(rec.max_tokens as u64));
            prompts.insert(rec.id, (p, rec.max_tokens));
        }
        prompts_by_rate.insert(rate, prompts);
    }
    // One seed: every rate gets the same prompts.
    assert_eq!(prompts_by_rate[&20], prompts_by_rate[&100]);
}

#[test]
fn vllm_file_datasets_each_run_once() {
    let out = tempfile::tempdir().unwrap();
    let files = run_e2e_spec("vllm-datasets.yaml", "e2e-vllm-datasets", out.path());
    assert_eq!(files.len(), 4, "{files:?}");
    let find = |part: &str| {
        files
            .iter()
            .find(|p| p.to_str().unwrap().contains(part))
            .unwrap_or_else(|| panic!("no {part} result: {files:?}"))
    };
    for (part, workload) in [
        ("_vllm_sonnet_50_", "vllm_sonnet"),
        ("_vllm_custom_50_", "vllm_custom"),
        ("_vllm_sharegpt_50_", "vllm_sharegpt"),
        (
            "_vllm_hf_3-workloads_vllm-benchmark-serving_hf-sample.jsonl_50_",
            "vllm_hf_3-workloads_vllm-benchmark-serving_hf-sample.jsonl",
        ),
    ] {
        let file = find(part);
        let v = read_json(file);
        assert_lmbench_shape(&v);
        assert_eq!(v["workload"]["WORKLOAD"], workload);
        let r = &v["results"];
        figures(workload, r);
        assert_vllm_names(r);
        assert_eq!(r["completed"], 20, "{r}");
        assert_eq!(r["failed"], 0);
        assert!(r.get("request_goodput").is_none(), "no GOODPUT, no goodput");
        let recs = records(file);
        assert!(recs
            .iter()
            .all(|x| x.completion_tokens == Some(x.max_tokens as u64)));
        let lens: std::collections::BTreeSet<u32> = recs.iter().map(|x| x.max_tokens).collect();
        let stats = &v["lmbench"]["run"]["workload_stats"];
        match workload {
            "vllm_sonnet" => {
                assert_eq!(lens, [8].into());
                for x in &recs {
                    let n = x.client_prompt_tokens as f64;
                    assert!((n / 200.0 - 1.0).abs() < 0.25, "sonnet prompt {n}");
                }
                assert!(stats["prefix_lines"].as_u64().unwrap() >= 2, "{stats}");
            }
            "vllm_custom" => {
                // Lines with `output_len` keep it; the others get vLLM's 256.
                assert!(lens.is_subset(&[12, 24, 32, 40, 256].into()), "{lens:?}");
                assert!(lens.len() >= 2, "{lens:?}");
                assert_eq!(stats["dataset_entries"], 8);
            }
            "vllm_sharegpt" => {
                // The answers' own lengths: one per usable conversation.
                assert!(lens.len() >= 3, "{lens:?}");
                assert_eq!(stats["entries_used"], 5, "{stats}");
                assert_eq!(stats["oversampled"], 15);
            }
            _ => {
                assert_eq!(lens, [16].into());
                assert_eq!(stats["dataset_entries"], 6);
            }
        }
    }
}

/// A closed loop of 4 against a fixed-timing engine (TTFT 40 ms, 16 tokens 5 ms apart): the
/// steady-state figures leave out the ramp-up and the drain, hold 4 requests in flight, and
/// their throughput is what Little's law says (in flight ÷ latency).
#[test]
fn steady_state_of_a_closed_loop_against_known_timings() {
    let out = tempfile::tempdir().unwrap();
    let files = run_e2e_spec("closed-loop.yaml", "e2e-closed-loop", out.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let r = &read_json(&files[0])["results"];
    let s = &r["steady_state"];
    eprintln!("steady state: {s}");
    let f = |v: &serde_json::Value| v.as_f64().unwrap();
    let [start, end] = [f(&s["window_s"][0]), f(&s["window_s"][1])];
    // Opens one median E2E (≥ 115 ms) after the first send, closes before the drain.
    assert!(start >= 0.115 && end > start, "{s}");
    assert!(f(&r["benchmark_duration_s"]) > end - start, "{r}");
    let n = s["requests"].as_u64().unwrap();
    assert!((10..80).contains(&n), "{s}");
    let in_flight = f(&s["mean_in_flight"]);
    assert!((3.5..=4.001).contains(&in_flight), "{s}");
    assert!(!s["growing"].as_bool().unwrap(), "{s}");
    let ttft = f(&s["ttft_ms"]["median"]);
    assert!((40.0..80.0).contains(&ttft), "{s}");
    let e2e = f(&s["e2e_latency_ms"]["mean"]) / 1000.0;
    assert!((0.115..0.2).contains(&e2e), "{s}");
    let little = in_flight / e2e;
    let tput = f(&s["request_throughput_req_per_s"]);
    assert!(
        (tput / little - 1.0).abs() < 0.1,
        "{tput} req/s vs {little} ({s})"
    );
    // The closed loop waits for free slots by design: not lateness of lmbench's.
    let m = &r["measurement"];
    assert_eq!(m["checks"]["capped"], true, "{m}");
    let checks = m["reasons"].to_string();
    assert!(
        !checks.contains("send_lag") && !checks.contains("shortfall"),
        "{m}"
    );
    // 16 tokens a request.
    let tok = f(&s["output_token_throughput_tok_per_s"]);
    assert!((tok / (16.0 * tput) - 1.0).abs() < 0.1, "{tok} tok/s ({s})");
}
