//! The one-line figures of a point's result: what the log and the end-of-suite summary say
//! about it (its SLA verdict and an invalid measurement included).

use serde_json::{Map, Value};

/// The one-line figures of a result for logs and the end-of-suite summary.
pub(super) fn line(results: &Map<String, Value>, finished: u64) -> String {
    let ok_count = results
        .get("successful_requests")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let total = results
        .get("total_requests")
        .and_then(Value::as_u64)
        .unwrap_or(finished);
    let pick = |k: &str, s: &str| {
        results
            .get(k)
            .and_then(|v| v.get(s))
            .and_then(Value::as_f64)
    };
    let num = |k: &str| results.get(k).and_then(Value::as_f64);
    let mut line = format!(
        "{ok_count}/{total} ok, TTFT p50 {} ms, ITL p50 {} ms, achieved {} of target {} QPS, send lag p99 {} ms",
        fmt_opt(pick("ttft_ms", "median")),
        fmt_opt(pick("inter_token_latency_ms", "median")),
        fmt_opt(num("achieved_qps")),
        fmt_opt(num("target_qps")),
        fmt_opt(pick("send_lag_ms", "p99")),
    );
    if let Some(sla) = results.get("sla") {
        let binding = sla["binding"].as_str().unwrap_or("");
        let check = sla["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == binding));
        let value = check.map_or("-".into(), |c| fmt_opt(c["value"].as_f64()));
        let limit = check.map_or("-".into(), |c| fmt_opt(c["limit"].as_f64()));
        line.push_str(
            &match (sla["pass"].as_bool(), sla["stopped_early"].as_str()) {
                (_, Some(why)) => format!("; SLA missed, stopped early: {why}"),
                (Some(true), _) => format!("; SLA met ({binding} {value} of {limit})"),
                _ => format!("; SLA missed ({binding} {value} over {limit})"),
            },
        );
    }
    // An invalid measurement says so, with its first reason and what to change.
    if let Some(m) = results.get("measurement").filter(|m| m["valid"] == false) {
        let r = &m["reasons"][0];
        line.push_str(&format!(
            "; INVALID measurement: {} (change: {})",
            r["detail"].as_str().unwrap_or("?"),
            r["advice"].as_str().unwrap_or("?")
        ));
        if let Some(n) = m["reasons"].as_array().map(Vec::len).filter(|n| *n > 1) {
            line.push_str(&format!(
                " and {} more reason(s) in results.measurement",
                n - 1
            ));
        }
    }
    line
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}
