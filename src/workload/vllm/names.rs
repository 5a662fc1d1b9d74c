//! vLLM bench's result names, written beside LMBench's in a VLLMBenchmark result so a
//! VLLMBenchmark run reads like `vllm bench serve`'s output.

use serde_json::{json, Map, Value};

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// vLLM bench's result names, added beside LMBench's in a VLLMBenchmark result: computed from
/// the `results` object and the workload's `stats()`.
///
/// | vLLM name | from |
/// |---|---|
/// | `backend`, `num_prompts`, `request_rate`, `burstiness`, `max_concurrency` | `stats()` |
/// | `duration` | `benchmark_duration_s` |
/// | `completed`, `failed` | `successful_requests`, `failed_requests` |
/// | `total_input_tokens`, `total_output_tokens` | `total_input_tokens`, `total_generated_tokens` |
/// | `request_throughput`, `output_throughput`, `total_token_throughput` | `request_throughput_req_per_s`, `output_token_throughput_tok_per_s`, `total_token_throughput_tok_per_s` |
/// | `request_goodput` (only with GOODPUT) | `stats().goodput.good_requests ÷ benchmark_duration_s` |
/// | `{mean,median,std,p99}_ttft_ms` | `ttft_ms` |
/// | `{mean,median,std,p99}_tpot_ms` | `tpot_ms` |
/// | `{mean,median,p99}_itl_ms` | `inter_token_latency_ms` (per-chunk gaps; no std) |
/// | `{mean,median,std,p99}_e2el_ms` | `e2e_latency_ms` |
pub fn vllm_result_fields(results: &Value, stats: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    for k in [
        "backend",
        "num_prompts",
        "request_rate",
        "burstiness",
        "max_concurrency",
    ] {
        m.insert(k.into(), stats.get(k).cloned().unwrap_or(Value::Null));
    }
    let pick = |k: &str| results.get(k).cloned().unwrap_or(Value::Null);
    m.insert("duration".into(), pick("benchmark_duration_s"));
    m.insert(
        "completed".into(),
        results
            .get("successful_requests")
            .cloned()
            .unwrap_or(json!(0)),
    );
    m.insert("failed".into(), pick("failed_requests"));
    m.insert("total_input_tokens".into(), pick("total_input_tokens"));
    m.insert("total_output_tokens".into(), pick("total_generated_tokens"));
    m.insert(
        "request_throughput".into(),
        pick("request_throughput_req_per_s"),
    );
    if let Some(g) = stats.get("goodput").filter(|g| !g.is_null()) {
        let good = g
            .get("good_requests")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let num = |k: &str| results.get(k).and_then(Value::as_f64);
        // good ÷ duration, through the throughput (completed ÷ duration) where possible: the
        // duration is rounded to 10 ms, the throughput far more finely.
        let goodput = match (
            num("request_throughput_req_per_s"),
            num("successful_requests"),
        ) {
            (Some(t), Some(c)) if c > 0.0 => Some(round4(t * good / c)),
            _ => num("benchmark_duration_s")
                .filter(|d| *d > 0.0)
                .map(|d| round4(good / d)),
        };
        m.insert("request_goodput".into(), json!(goodput));
    }
    m.insert(
        "output_throughput".into(),
        pick("output_token_throughput_tok_per_s"),
    );
    m.insert(
        "total_token_throughput".into(),
        pick("total_token_throughput_tok_per_s"),
    );
    for (name, block, has_std) in [
        ("ttft", "ttft_ms", true),
        ("tpot", "tpot_ms", true),
        ("itl", "inter_token_latency_ms", false),
        ("e2el", "e2e_latency_ms", true),
    ] {
        let b = results.get(block);
        let stat = |s: &str| b.and_then(|b| b.get(s)).cloned().unwrap_or(Value::Null);
        m.insert(format!("mean_{name}_ms"), stat("mean"));
        m.insert(format!("median_{name}_ms"), stat("median"));
        if has_std {
            m.insert(format!("std_{name}_ms"), stat("std"));
        }
        m.insert(format!("p99_{name}_ms"), stat("p99"));
    }
    m
}
