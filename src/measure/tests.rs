//! Hand-computed summaries of small synthetic runs.

use super::*;
use crate::record::{ApiType, ErrorKind, RequestError, RequestRecord};
use serde_json::Value;

const EPS: f64 = 1e-9;

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6 * b.abs().max(1.0))
}

macro_rules! assert_close {
    ($got:expr, $want:expr) => {
        assert!(
            close($got, $want),
            "{} = {:?}, want {}",
            stringify!($got),
            $got,
            $want
        )
    };
}

/// A successful record; the client's counts default to the server's prompt count (or 10) and
/// the number of chunks.
pub(crate) fn rec(
    id: u64,
    due: f64,
    sent: f64,
    chunks: &[f64],
    end: f64,
    prompt: Option<u64>,
    completion: Option<u64>,
) -> RequestRecord {
    RequestRecord {
        id,
        user_id: Some(id),
        round: 1,
        warmup: false,
        due_s: due,
        slot_s: None,
        sent_s: sent,
        new_connection: None,
        connect_ms: None,
        first_token_s: chunks.first().copied(),
        end_s: end,
        chunk_times_s: chunks.to_vec(),
        prompt_tokens: prompt,
        completion_tokens: completion,
        cached_tokens: None,
        client_prompt_tokens: prompt.unwrap_or(10),
        client_completion_tokens: chunks.len() as u64,
        content_chunks: chunks.len() as u64,
        max_tokens: 64,
        status: Some(200),
        error: None,
    }
}

pub(crate) fn failed(id: u64, due: f64, sent: f64, end: f64, kind: ErrorKind) -> RequestRecord {
    RequestRecord {
        first_token_s: None,
        chunk_times_s: Vec::new(),
        status: None,
        error: Some(RequestError {
            kind,
            message: "boom".into(),
        }),
        ..rec(id, due, sent, &[], end, None, None)
    }
}

/// Three successful requests with hand-computable numbers.
fn three() -> Vec<RequestRecord> {
    let mut r1 = rec(
        1,
        0.0,
        0.01,
        &[0.21, 0.26, 0.31, 0.36],
        0.37,
        Some(100),
        Some(4),
    );
    r1.client_prompt_tokens = 98;
    r1.cached_tokens = Some(50);
    let mut r2 = rec(2, 1.0, 1.0, &[1.157, 1.207], 1.217, Some(200), Some(2));
    r2.cached_tokens = Some(0);
    let r3 = rec(3, 2.0, 2.02, &[2.5], 2.5, Some(300), Some(1));
    vec![r1, r2, r3]
}

fn ctx(target: Option<f64>) -> SummaryContext {
    SummaryContext {
        target_qps: target,
        run_duration_s: None,
        api: Default::default(),
        capped: false,
    }
}

#[test]
fn hand_computed_summary() {
    let s = summarize(&three(), &ctx(Some(1.0)));
    let m = s.metrics().expect("metrics");
    assert_eq!(m.successful_requests, 3);
    // max end 2.5 − min sent 0.01
    assert!((m.benchmark_duration_s - 2.49).abs() < EPS);
    assert_eq!(m.total_input_tokens, 600);
    assert_eq!(m.total_generated_tokens, 7);
    assert_close!(m.request_throughput_req_per_s, 3.0 / 2.49);
    assert_close!(m.output_token_throughput_tok_per_s, 7.0 / 2.49);
    assert_close!(m.input_token_throughput_tok_per_s, 600.0 / 2.49);
    assert_close!(m.total_token_throughput_tok_per_s, 607.0 / 2.49);

    // TTFT: 200, 157, 480 → sorted 157, 200, 480; p99 rank 1.98 → 200 + 0.98·280
    assert_eq!(m.ttft_ms.count, 3);
    assert_close!(m.ttft_ms.mean, 279.0);
    assert_close!(m.ttft_ms.median, 200.0);
    assert_close!(m.ttft_ms.p99, 474.4);
    assert_close!(m.ttft_ms.p90, 200.0 + 0.8 * 280.0);
    assert_close!(m.ttft_ms.min, 157.0);
    assert_close!(m.ttft_ms.max, 480.0);

    // TPOT: (0.37−0.21)/3 = 53.333 ms, (1.217−1.157)/1 = 60 ms; the 1-token request is excluded.
    assert_eq!(m.tpot_ms.count, 2);
    assert_close!(m.tpot_ms.mean, (160.0 / 3.0 + 60.0) / 2.0);
    assert_close!(m.tpot_ms.median, (160.0 / 3.0 + 60.0) / 2.0);
    assert_close!(m.tpot_ms.p99, 160.0 / 3.0 + 0.99 * (60.0 - 160.0 / 3.0));
    assert_close!(m.tpot_ms.std, (60.0 - 160.0 / 3.0) / 2.0);

    // LMBench ITL: 360/4 = 90, 217/2 = 108.5, 480/1 = 480.
    assert_close!(m.itl_ms.mean, (90.0 + 108.5 + 480.0) / 3.0);
    assert_close!(m.itl_ms.median, 108.5);
    assert_close!(m.itl_ms.p99, 108.5 + 0.98 * (480.0 - 108.5));

    // Per-chunk gaps: 50, 50, 50 and 50.
    assert_eq!(s.inter_token_latency_ms.count, 4);
    assert_close!(s.inter_token_latency_ms.mean, 50.0);
    assert_close!(s.inter_token_latency_ms.max, 50.0);
    assert!((s.inter_token_latency_ms.median.unwrap() - 50.0).abs() < 0.05);
    assert!((s.inter_token_latency_ms.p99.unwrap() - 50.0).abs() < 0.05);

    assert_close!(s.e2e_latency_ms.mean, (360.0 + 217.0 + 480.0) / 3.0);
    assert_close!(s.e2e_latency_ms.median, 360.0);
    assert_close!(s.ttft_from_due_ms.median, 210.0);
    assert_close!(s.ttft_from_due_ms.max, 500.0);
    assert_close!(s.e2e_from_due_ms.mean, (370.0 + 217.0 + 500.0) / 3.0);
    assert_close!(s.send_lag_ms.mean, 10.0);
    assert_close!(s.send_lag_ms.max, 20.0);

    // Sends at 0.01, 1.0, 2.02: span 2.01 · 3/2 = 3.015 s; dues 0, 1, 2: 3 s.
    assert_close!(s.send_window_s, 3.015);
    assert_close!(s.achieved_qps, 3.0 / 3.015);
    assert_close!(s.scheduled_qps, 1.0);
    assert_eq!(s.target_qps, Some(1.0));
    assert!(!s.qps_shortfall);

    assert_eq!(s.total_requests, 3);
    assert_eq!(s.failed_requests, 0);
    assert!(s.failures_by_cause.is_empty());
    assert_eq!(s.warmup_requests, 0);
    assert_eq!(s.token_source.prompt, Some(CountSource::Server));
    assert_eq!(s.token_source.completion, Some(CountSource::Server));
    let p = &s.token_disagreement.prompt;
    assert_eq!(
        (p.client_total, p.server_total, p.requests_compared),
        (598, 600, 3)
    );
    assert_close!(p.mean_abs_diff_pct, 2.0 / 3.0);
    assert_close!(s.token_disagreement.completion.mean_abs_diff_pct, 0.0);
    assert_eq!(s.total_cached_tokens, Some(50));
    assert_close!(s.cache_hit_ratio, 50.0 / 300.0);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn results_json_is_rounded_and_ordered() {
    let v = summarize(&three(), &ctx(Some(1.0))).results_json();
    let obj = v.as_object().unwrap();
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "successful_requests",
            "benchmark_duration_s",
            "total_input_tokens",
            "total_generated_tokens",
            "request_throughput_req_per_s",
            "output_token_throughput_tok_per_s",
            "input_token_throughput_tok_per_s",
            "total_token_throughput_tok_per_s",
            "ttft_ms",
            "tpot_ms",
            "itl_ms",
            "total_requests",
            "failed_requests",
            "failures_by_cause",
            "warmup_requests",
            "e2e_latency_ms",
            "inter_token_latency_ms",
            "ttft_from_due_ms",
            "e2e_from_due_ms",
            "ttft_from_slot_ms",
            "e2e_from_slot_ms",
            "send_lag_ms",
            "target_qps",
            "achieved_qps",
            "scheduled_qps",
            "send_window_s",
            "configured_duration_s",
            "qps_shortfall",
            "token_source",
            "token_disagreement",
            "total_cached_tokens",
            "cache_hit_ratio",
            "warnings",
        ]
    );
    assert_eq!(v["successful_requests"], 3);
    assert!(v["successful_requests"].is_u64());
    assert_eq!(v["benchmark_duration_s"], 2.49);
    assert_eq!(v["request_throughput_req_per_s"], 1.2);
    assert_eq!(v["output_token_throughput_tok_per_s"], 2.81);
    assert_eq!(v["input_token_throughput_tok_per_s"], 240.96);
    assert_eq!(v["ttft_ms"]["mean"], 279.0);
    assert_eq!(v["ttft_ms"]["p99"], 474.4);
    let stat_keys: Vec<&str> = v["ttft_ms"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        stat_keys,
        ["mean", "median", "p99", "p90", "min", "max", "std", "count"]
    );
    assert_eq!(v["tpot_ms"]["mean"], 56.67);
    assert_eq!(v["itl_ms"]["p99"], 472.57);
    assert_eq!(v["achieved_qps"], 0.995);
    assert_eq!(v["cache_hit_ratio"], 0.1667);
    assert_eq!(v["token_source"]["prompt"], "server");
    assert_eq!(v["token_disagreement"]["prompt"]["mean_abs_diff_pct"], 0.67);
    assert_eq!(v["configured_duration_s"], Value::Null);

    let lm = summarize(&three(), &ctx(None)).lmbench_results_json();
    assert_eq!(lm.as_object().unwrap().len(), 11);
    assert_eq!(lm["tpot_ms"]["p99"], 59.93);
}

#[test]
fn warmup_is_excluded_everywhere() {
    let base = summarize(&three(), &ctx(Some(1.0)));
    let mut recs = three();
    let mut w = rec(90, -10.0, -9.0, &[-5.0, -1.0], 0.0, Some(5000), Some(2));
    w.warmup = true;
    recs.push(w.clone());
    w.id = 91;
    w.error = Some(RequestError {
        kind: ErrorKind::Timeout,
        message: "late".into(),
    });
    recs.insert(0, w);
    let s = summarize(&recs, &ctx(Some(1.0)));
    assert_eq!(s.warmup_requests, 2);
    let mut s_no_warmup = s.clone();
    s_no_warmup.warmup_requests = 0;
    assert_eq!(s_no_warmup, base);
}

#[test]
fn failures_counted_by_cause_and_excluded_from_latency() {
    let mut recs = three();
    recs.push(failed(4, 3.0, 3.0, 33.0, ErrorKind::Timeout));
    recs.push(failed(5, 4.0, 4.04, 4.1, ErrorKind::HttpStatus));
    recs.push(failed(6, 5.0, 5.0, 5.2, ErrorKind::HttpStatus));
    let s = summarize(&recs, &ctx(None));
    let m = s.metrics().unwrap();
    assert_eq!(m.successful_requests, 3);
    // The window and latencies are the successful requests' only.
    assert!((m.benchmark_duration_s - 2.49).abs() < EPS);
    assert_eq!(m.ttft_ms.count, 3);
    assert_close!(m.ttft_ms.mean, 279.0);
    assert_eq!(s.e2e_latency_ms.count, 3);
    assert_eq!(s.total_requests, 6);
    assert_eq!(s.failed_requests, 3);
    let causes: Vec<(&str, u64)> = s
        .failures_by_cause
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(causes, [("http_status", 2), ("timeout", 1)]);
    // Send lag and the achieved rate include failed requests (they were sent).
    assert_eq!(s.send_lag_ms.count, 6);
    assert_close!(s.send_lag_ms.max, 40.0);
    assert_close!(s.scheduled_qps, 6.0 / (5.0 * 6.0 / 5.0));
    assert!(s
        .warnings
        .iter()
        .any(|w| w.contains("3 of 6 requests failed")));
}

#[test]
fn zero_and_one_token_responses_never_give_negative_or_infinite_tpot() {
    let recs = vec![
        // No content at all (server count 0).
        rec(1, 0.0, 0.0, &[], 0.3, Some(10), Some(0)),
        // No usage and no chunks: client count 0.
        rec(2, 0.5, 0.5, &[], 0.6, None, None),
        // One token.
        rec(3, 1.0, 1.0, &[1.2], 1.25, Some(10), Some(1)),
        // Server says 2 tokens but the stream ended "before" the first chunk (clock edge).
        rec(4, 1.5, 1.5, &[1.9], 1.8, Some(10), Some(2)),
    ];
    let s = summarize(&recs, &ctx(None));
    let m = s.metrics().unwrap();
    assert_eq!(m.successful_requests, 4);
    assert_eq!(m.tpot_ms.count, 1);
    assert_eq!(m.tpot_ms.min, Some(0.0));
    // TTFT only where a content chunk arrived.
    assert_eq!(m.ttft_ms.count, 2);
    // LMBench ITL needs ≥ 1 token: requests 3 and 4.
    assert_eq!(m.itl_ms.count, 2);
    assert_close!(m.itl_ms.min, 150.0);
    assert_eq!(s.inter_token_latency_ms.count, 0);
    assert_eq!(s.inter_token_latency_ms.mean, None);
    assert_eq!(s.e2e_latency_ms.count, 4);
    assert_no_bad_numbers(&s.results_json());
    let v = s.results_json();
    assert_eq!(v["inter_token_latency_ms"]["p99"], Value::Null);
}

fn assert_no_bad_numbers(v: &Value) {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap();
            assert!(x.is_finite() && x >= 0.0, "bad number {x}");
        }
        Value::Array(a) => a.iter().for_each(assert_no_bad_numbers),
        Value::Object(o) => o.values().for_each(assert_no_bad_numbers),
        _ => {}
    }
}

#[test]
fn token_source_and_disagreement() {
    let mut a = rec(1, 0.0, 0.0, &[0.1, 0.2, 0.3], 0.3, Some(100), Some(3));
    a.client_prompt_tokens = 110; // +10 %
    let mut b = rec(2, 1.0, 1.0, &[1.1, 1.2], 1.2, None, None);
    b.client_prompt_tokens = 50;
    let mut c = rec(3, 2.0, 2.0, &[2.1, 2.2], 2.2, Some(40), Some(4));
    c.client_prompt_tokens = 40;
    let s = summarize(&[a.clone(), b.clone(), c], &ctx(None));
    assert_eq!(s.token_source.prompt, Some(CountSource::Mixed));
    assert_eq!(s.token_source.completion, Some(CountSource::Mixed));
    let m = s.metrics().unwrap();
    // Best counts: server 100 + client 50 + server 40; completions 3 + 2 (client) + 4.
    assert_eq!(m.total_input_tokens, 190);
    assert_eq!(m.total_generated_tokens, 9);
    let p = &s.token_disagreement.prompt;
    assert_eq!(
        (p.client_total, p.server_total, p.requests_compared),
        (150, 140, 2)
    );
    assert_close!(p.mean_abs_diff_pct, 5.0);
    let c = &s.token_disagreement.completion;
    // Chunks 3 vs 3 (0 %), 2 vs 4 (50 %).
    assert_eq!(
        (c.client_total, c.server_total, c.requests_compared),
        (5, 7, 2)
    );
    assert_close!(c.mean_abs_diff_pct, 25.0);
    assert!(s
        .warnings
        .iter()
        .any(|w| w.contains("completion token counts differ")));
    assert!(!s
        .warnings
        .iter()
        .any(|w| w.contains("prompt token counts differ")));
    assert_eq!(s.total_cached_tokens, None);
    assert_eq!(s.cache_hit_ratio, None);

    let s = summarize(&[b], &ctx(None));
    assert_eq!(s.token_source.prompt, Some(CountSource::Client));
    assert_eq!(s.token_disagreement.prompt.requests_compared, 0);
    assert_eq!(s.token_disagreement.prompt.mean_abs_diff_pct, None);
    assert!(s.warnings.iter().any(|w| w.contains("usage")));

    // Server count 0 with client 3: compared against 1 token, not divided by zero.
    let mut z = rec(4, 0.0, 0.0, &[0.1, 0.2, 0.3], 0.3, Some(10), Some(0));
    z.client_prompt_tokens = 10;
    let s = summarize(&[z], &ctx(None));
    assert_close!(s.token_disagreement.completion.mean_abs_diff_pct, 300.0);
}

fn evenly_spaced(n: u64, rate: f64, lag: impl Fn(f64) -> f64) -> Vec<RequestRecord> {
    (0..n)
        .map(|i| {
            let due = i as f64 / rate;
            let sent = lag(due);
            rec(i, due, sent, &[sent + 0.1], sent + 0.2, Some(10), Some(1))
        })
        .collect()
}

#[test]
fn a_capped_closed_loop_is_not_warned_about_its_own_waits() {
    // Each send 25 % later than due: 1.6 of 2 req/s, p99 send lag 1.25 s.
    let late = evenly_spaced(11, 2.0, |d| d * 1.25);
    let open = summarize(&late, &ctx(Some(2.0)));
    let warned = |s: &Summary, what: &str| s.warnings.iter().any(|w| w.contains(what));
    assert!(
        warned(&open, "p99 send lag") && warned(&open, "of the"),
        "{:?}",
        open.warnings
    );
    // The same records from a loop that filled its MAX_CONCURRENCY: the waits are the loop's.
    let capped = summarize(
        &late,
        &SummaryContext {
            capped: true,
            ..ctx(Some(2.0))
        },
    );
    assert!(capped.qps_shortfall, "the figure itself stays");
    assert!(
        !warned(&capped, "p99 send lag") && !warned(&capped, "the schedule intended"),
        "{:?}",
        capped.warnings
    );
}

#[test]
fn achieved_qps_and_shortfall() {
    // 11 sends 0.5 s apart: window 5 s · 11/10 = 5.5 s → exactly 2 req/s.
    let s = summarize(&evenly_spaced(11, 2.0, |d| d), &ctx(Some(2.0)));
    assert_close!(s.send_window_s, 5.5);
    assert_close!(s.achieved_qps, 2.0);
    assert_close!(s.scheduled_qps, 2.0);
    assert!(!s.qps_shortfall);
    assert_close!(s.send_lag_ms.max, 0.0);

    // The client falls behind: each send 25 % later than due → 1.6 req/s.
    let s = summarize(&evenly_spaced(11, 2.0, |d| d * 1.25), &ctx(Some(2.0)));
    assert_close!(s.achieved_qps, 1.6);
    assert_close!(s.scheduled_qps, 2.0);
    assert!(s.qps_shortfall);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("80.0% of the 2.000 req/s the schedule intended")),
        "{:?}",
        s.warnings
    );
    assert!(s.warnings.iter().any(|w| w.contains("send lag")));
    assert_eq!(s.results_json()["qps_shortfall"], true);

    // 96 % of the target is not a shortfall.
    let s = summarize(&evenly_spaced(11, 2.0, |d| d / 0.96), &ctx(Some(2.0)));
    assert!(!s.qps_shortfall);

    // No target (Agentic's case): the same rule, against the schedule.
    let s = summarize(&evenly_spaced(11, 2.0, |d| d * 3.0), &ctx(None));
    assert!(s.qps_shortfall);

    // A schedule that itself offers less than the target is sent on time: no shortfall.
    let s = summarize(&evenly_spaced(11, 1.5, |d| d), &ctx(Some(2.0)));
    assert_close!(s.scheduled_qps, 1.5);
    assert!(!s.qps_shortfall);

    // Turns held back by slow answers: due times slip with the answers, slots keep the rate.
    let mut held = evenly_spaced(11, 2.0, |d| d * 1.5);
    for r in &mut held {
        r.slot_s = Some(r.due_s);
        r.due_s = r.sent_s;
    }
    let s = summarize(&held, &ctx(None));
    assert_close!(s.scheduled_qps, 2.0);
    assert!(s.qps_shortfall, "held-back turns are a shortfall");

    // One request: no span; the configured duration is the window when given.
    let one = evenly_spaced(1, 2.0, |d| d);
    let s = summarize(&one, &ctx(Some(2.0)));
    assert_eq!(s.achieved_qps, None);
    assert!(!s.qps_shortfall);
    let s = summarize(
        &one,
        &SummaryContext {
            target_qps: Some(2.0),
            run_duration_s: Some(4.0),
            api: Default::default(),
            capped: false,
        },
    );
    assert_close!(s.achieved_qps, 0.25);
    assert_eq!(s.configured_duration_s, Some(4.0));
    // The schedule's rate falls back to the same window: nothing to compare.
    assert!(!s.qps_shortfall);
}

#[test]
fn empty_run_gives_lmbench_error_object() {
    let s = Aggregator::new().finish(&ctx(Some(1.0)));
    assert!(s.is_empty());
    let lm = s.lmbench_results_json();
    assert_eq!(lm["error"], "No successful requests completed");
    assert_eq!(lm["message"], "No requests were recorded");
    assert_eq!(lm.as_object().unwrap().len(), 2);
    let v = s.results_json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(&keys[..3], ["error", "message", "total_requests"]);
    assert!(v.get("ttft_ms").is_none());
    assert_eq!(v["e2e_latency_ms"]["mean"], Value::Null);
    assert_eq!(v["achieved_qps"], Value::Null);
    assert_no_bad_numbers(&v);
    assert!(!serde_json::to_string(&v).unwrap().contains("NaN"));

    let recs = vec![
        failed(1, 0.0, 0.0, 1.0, ErrorKind::Connect),
        failed(2, 1.0, 1.0, 1.5, ErrorKind::Connect),
        failed(3, 2.0, 2.0, 9.0, ErrorKind::Timeout),
    ];
    let s = summarize(&recs, &ctx(Some(1.0)));
    assert!(s.is_empty());
    let v = s.results_json();
    assert_eq!(v["error"], "No successful requests completed");
    assert_eq!(
        v["message"],
        "All 3 requests failed (connect: 2, timeout: 1)"
    );
    assert_eq!(v["failed_requests"], 3);
    assert_eq!(v["failures_by_cause"]["connect"], 2);
    assert_eq!(v["achieved_qps"], 1.0);
    assert_eq!(v["token_source"]["prompt"], Value::Null);
    assert_no_bad_numbers(&v);
}

#[test]
fn streaming_order_does_not_matter() {
    let mut recs = three();
    recs.push(failed(4, 3.0, 3.0, 3.5, ErrorKind::StreamBroken));
    let forward = summarize(&recs, &ctx(Some(1.0)));
    recs.reverse();
    let mut agg = Aggregator::new();
    for r in &recs {
        agg.add(r);
    }
    assert_eq!(agg.total_requests(), 4);
    assert_eq!(agg.successful_requests(), 3);
    assert_eq!(agg.finish(&ctx(Some(1.0))), forward);
}

/// Latency from the slot: a turn held back by a late answer is due when the answer arrived,
/// so `*_from_due_ms` leave the wait out and `*_from_slot_ms` include it; for a request that
/// waited for nothing the two are equal.
#[test]
fn latency_from_the_slot_includes_the_time_a_turn_was_held_back() {
    let on_time = rec(1, 1.0, 1.0, &[1.2, 1.3], 1.3, Some(10), Some(2));
    let mut held = rec(2, 3.0, 3.0, &[3.2, 3.3], 3.3, Some(10), Some(2));
    held.slot_s = Some(2.0);
    let s = summarize(&[on_time, held], &ctx(None));
    assert_close!(s.ttft_from_due_ms.max, 200.0);
    assert_close!(s.ttft_from_slot_ms.max, 1200.0);
    assert_close!(s.ttft_from_slot_ms.min, 200.0);
    assert_close!(s.e2e_from_slot_ms.max, 1300.0);
    assert_close!(s.e2e_from_due_ms.max, 300.0);
}

/// On the chat API the client counts message contents and the server adds its chat template:
/// the comparison is labelled and never warned about; on the completions API it is.
#[test]
fn prompt_counts_are_compared_only_where_they_cover_the_same_text() {
    let mut a = rec(1, 0.0, 0.0, &[0.1, 0.2], 0.2, Some(130), Some(2));
    a.client_prompt_tokens = 100;
    for (api, comparable) in [(ApiType::Chat, false), (ApiType::Completions, true)] {
        let s = summarize(
            std::slice::from_ref(&a),
            &SummaryContext { api, ..ctx(None) },
        );
        let p = &s.token_disagreement.prompt;
        assert_eq!(p.comparable, comparable);
        assert_close!(p.mean_abs_diff_pct, 100.0 * 30.0 / 130.0);
        let warned = s
            .warnings
            .iter()
            .any(|w| w.contains("prompt token counts differ"));
        assert_eq!(warned, comparable, "{api:?}: {:?}", s.warnings);
        let v = s.results_json();
        let label = v["token_disagreement"]["prompt"]["client_counts"]
            .as_str()
            .unwrap();
        assert_eq!(label.contains("chat template"), !comparable, "{label}");
    }
}

/// The earliest-sent successful request is kept, warmup included, whatever the order records
/// arrive in.
#[test]
fn the_first_request_sent_is_kept_for_the_cache_state() {
    let mut late = rec(1, 1.0, 1.0, &[1.1], 1.2, Some(100), Some(1));
    late.cached_tokens = Some(0);
    let mut warm = rec(2, 0.0, 0.05, &[0.1], 0.2, Some(80), Some(1));
    warm.warmup = true;
    warm.cached_tokens = Some(64);
    let mut agg = Aggregator::new();
    agg.add(&late);
    agg.add(&warm);
    let f = agg.first_sent().unwrap();
    assert_eq!((f.prompt_tokens, f.cached_tokens), (80, Some(64)));
}

/// Connection figures: the non-warmup requests that waited for a new connection, failed ones
/// included, and their connect times, with a warning when they are many; records without
/// connection information (written before lmbench recorded it) leave the figures out.
#[test]
fn connection_figures_count_the_requests_that_waited_for_a_connection() {
    let mut opened = rec(1, 0.0, 0.0, &[0.3, 0.31], 0.32, Some(10), Some(2));
    opened.new_connection = Some(true);
    opened.connect_ms = Some(200.0);
    let mut reused = rec(2, 1.0, 1.0, &[1.1, 1.11], 1.12, Some(10), Some(2));
    reused.new_connection = Some(false);
    let mut failed_after = failed(3, 2.0, 2.0, 3.0, ErrorKind::Timeout);
    failed_after.new_connection = Some(true);
    failed_after.connect_ms = Some(100.0);
    let refused = failed(4, 3.0, 3.0, 3.0, ErrorKind::Connect);
    let mut warm = rec(5, 0.0, 0.0, &[0.1], 0.1, Some(10), Some(1));
    warm.warmup = true;
    warm.new_connection = Some(true);
    warm.connect_ms = Some(999.0);
    let s = summarize(
        &[opened, reused, failed_after, refused, warm],
        &SummaryContext::default(),
    );
    assert_eq!(s.new_connections, Some(2));
    let connect = s.connect_ms.as_ref().unwrap();
    assert_eq!(connect.count, 2);
    assert_close!(connect.mean, 150.0);
    assert_close!(connect.max, 200.0);
    let j = s.results_json();
    assert_eq!(j["new_connections"], 2);
    assert_eq!(j["connect_ms"]["median"], 150.0);
    assert!(
        s.warnings.iter().any(|w| w.starts_with(
            "2 of 4 requests (50%) waited for a new connection (median set-up 150.0 ms)"
        )),
        "{:?}",
        s.warnings
    );

    // Records without connection information: no figures, no warning.
    let s = summarize(&three(), &SummaryContext::default());
    assert_eq!((s.new_connections, s.connect_ms.is_some()), (None, false));
    let j = s.results_json();
    assert!(j.get("new_connections").is_none() && j.get("connect_ms").is_none());
    assert!(!s.warnings.iter().any(|w| w.contains("connection")));
}

/// A healthy load generator's figures for [`verdict::judge`], on 2 cores.
fn healthy() -> verdict::Health {
    verdict::Health {
        send_lag_budget_ms: verdict::SEND_LAG_BUDGET_MS,
        process_cpu_s: Some(0.1),
        wall_s: 10.0,
        cores: 2,
        open_files_limit: Some(1024),
        cpu_wait_share: Some(0.003),
        not_sent: 0,
        max_in_flight: 4,
        concurrency_cap: None,
    }
}

fn failed_checks(m: &verdict::Measurement) -> Vec<&'static str> {
    m.reasons.iter().map(|r| r.check).collect()
}

#[test]
fn verdict_valid_when_every_check_holds() {
    let s = summarize(&evenly_spaced(11, 2.0, |d| d + 0.002), &ctx(Some(2.0)));
    let m = verdict::judge(&s, &healthy());
    assert!(m.valid, "{m:?}");
    assert_close!(m.checks.send_lag_p99_ms, 2.0);
    assert_close!(m.checks.cpu_use_share, 0.005);
    assert_eq!(m.summary_line(), None);
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["valid"], true);
    assert_eq!(json["reasons"], serde_json::json!([]));
}

#[test]
fn verdict_names_each_failed_check() {
    let on_time = summarize(&evenly_spaced(11, 2.0, |d| d), &ctx(Some(2.0)));
    let check = |s: &Summary, h: verdict::Health| failed_checks(&verdict::judge(s, &h));

    // 12 ms late each: over the 10 ms budget, and a budget of 20 ms lets it pass.
    let late = summarize(&evenly_spaced(11, 2.0, |d| d + 0.012), &ctx(Some(2.0)));
    assert_eq!(check(&late, healthy()), ["send_lag"]);
    let lax = verdict::Health {
        send_lag_budget_ms: 20.0,
        ..healthy()
    };
    assert_eq!(check(&late, lax), Vec::<&str>::new());

    let waiting = verdict::Health {
        cpu_wait_share: Some(0.06),
        ..healthy()
    };
    assert_eq!(check(&on_time, waiting), ["cpu_wait"]);
    // Unknown run delay is no reason.
    let unknown = verdict::Health {
        cpu_wait_share: None,
        ..healthy()
    };
    assert!(verdict::judge(&on_time, &unknown).valid);

    // 18.5 CPU seconds in 10 s on 2 cores: 92.5 %.
    let busy = verdict::Health {
        process_cpu_s: Some(18.5),
        ..healthy()
    };
    let m = verdict::judge(&on_time, &busy);
    assert_eq!(failed_checks(&m), ["cpu_use"]);
    assert!(m.reasons[0].detail.contains("1.85 of 2 cores"), "{m:?}");

    // Sent 25 % late by the end: the shortfall blamed on lmbench, beside the lag.
    let behind = summarize(&evenly_spaced(11, 2.0, |d| d * 1.25), &ctx(Some(2.0)));
    let m = verdict::judge(&behind, &healthy());
    assert_eq!(failed_checks(&m), ["send_lag", "shortfall"]);
    assert!(m.reasons[1].detail.contains("lmbench sent late"), "{m:?}");

    let cut = verdict::Health {
        not_sent: 3,
        ..healthy()
    };
    assert_eq!(check(&on_time, cut), ["unsent"]);

    let crowded = verdict::Health {
        max_in_flight: 1000,
        open_files_limit: Some(1024),
        ..healthy()
    };
    assert_eq!(check(&on_time, crowded), ["open_files"]);

    // A closed loop that filled its cap of 4: requests waited for a slot by design.
    let closed = verdict::Health {
        concurrency_cap: Some(4),
        ..healthy()
    };
    let m = verdict::judge(&behind, &closed);
    assert!(m.valid && m.checks.capped, "{m:?}");
    // A cap never reached changes nothing.
    let loose = verdict::Health {
        concurrency_cap: Some(8),
        ..healthy()
    };
    assert_eq!(check(&behind, loose), ["send_lag", "shortfall"]);

    let m = verdict::judge(&behind, &healthy());
    assert_eq!(
        m.summary_line().as_deref(),
        Some("INVALID measurement (send_lag, shortfall)")
    );
}

/// A record sent at `sent` whose 5 one-token chunks arrive evenly from `sent + ttft` to
/// `sent + e2e`.
fn lane_rec(id: u64, sent: f64, ttft: f64, e2e: f64) -> RequestRecord {
    let chunks: Vec<f64> = (0..5)
        .map(|k| sent + ttft + (e2e - ttft) * k as f64 / 4.0)
        .collect();
    rec(id, sent, sent, &chunks, sent + e2e, Some(10), Some(5))
}

#[test]
fn steady_state_of_a_closed_loop_by_hand() {
    use super::steady::{Steady, Window};
    // Two lanes, each request 1 s long and sent as the one before it ends: 2 in flight,
    // 2 req/s, 10 tok/s, TTFT 200 ms, TPOT (1.0 − 0.2) s / 4 = 200 ms.
    let recs: Vec<RequestRecord> = (0..20)
        .map(|i| lane_rec(i, (i / 2) as f64, 0.2, 1.0))
        .collect();
    // Window: one median E2E (1 s) after the first send (0) to the last send (9).
    let w = Window::of(0.0, 9.0, 1.0).unwrap();
    assert_eq!((w.start_s, w.end_s), (1.0, 9.0));
    let mut acc = Steady::new(w);
    for r in &recs {
        acc.add(r);
    }
    let s = acc.finish().unwrap();
    assert_eq!(s.window_s, [1.0, 9.0]);
    // Sent at 1..=9 s, two each.
    assert_eq!((s.requests, s.successful_requests), (18, 18));
    assert_close!(s.ttft_ms.median, 200.0);
    assert_close!(s.tpot_ms.median, 200.0);
    assert_close!(s.e2e_latency_ms.mean, 1000.0);
    assert_close!(Some(s.request_throughput_req_per_s), 2.0);
    assert_close!(Some(s.output_token_throughput_tok_per_s), 10.0);
    assert_close!(Some(s.mean_in_flight), 2.0);
    assert_eq!((s.in_flight_start, s.in_flight_end), (2, 2));
    assert!(!s.growing);

    // Too few requests in the window: no figures.
    let mut acc = Steady::new(Window::of(0.0, 9.0, 6.0).unwrap());
    for r in &recs {
        acc.add(r);
    }
    assert!(acc.finish().is_none());
    // No window left after the ramp-up.
    assert!(Window::of(0.0, 9.0, 9.5).is_none());
}

#[test]
fn steady_state_says_when_the_queue_keeps_growing() {
    use super::steady::{Steady, Window};
    // Sent every 0.5 s, each waiting 0.5 s longer than the one before: over capacity.
    let recs: Vec<RequestRecord> = (0..30)
        .map(|i| {
            let e2e = 1.0 + 0.5 * i as f64;
            lane_rec(i, 0.5 * i as f64, e2e - 0.4, e2e)
        })
        .collect();
    let mut acc = Steady::new(Window::of(0.0, 14.5, 8.0).unwrap());
    for r in &recs {
        acc.add(r);
    }
    let s = acc.finish().unwrap();
    assert!(s.in_flight_end > s.in_flight_start + 2, "{s:?}");
    assert!(s.growing, "{s:?}");
}
