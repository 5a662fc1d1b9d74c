//! SLA limits, verdicts and the early-stop watch, against hand-made results and records.

use super::*;
use crate::config::Checker;
use crate::measure::tests::{failed, rec};
use crate::record::ErrorKind;
use std::path::Path;

fn sla(yaml: &str) -> Result<Sla, Vec<String>> {
    let v: O<Map<String, Value>> = Some(serde_saphyr::from_str(yaml).unwrap());
    let mut issues = Vec::new();
    let mut c = Checker::new(Path::new("unit.yaml"), &mut issues);
    let at = serde_saphyr::Location::UNKNOWN;
    let got = Sla::check(&v, "SLA", &mut c.item("W[0]".into(), at, Path::new(".")));
    match got {
        Ok(Some(s)) => Ok(s),
        _ => Err(issues
            .iter()
            .map(|i| format!("{}: {}", i.key, i.message))
            .collect()),
    }
}

fn results(json: Value) -> Map<String, Value> {
    json.as_object().unwrap().clone()
}

#[test]
fn limits_are_checked_and_every_problem_named() {
    let s = sla("{ttft_p99_ms: 500, tpot_mean_ms: 40, e2el_p50_ms: 2000, itl_p90_ms: 30, max_error_rate: 0.01}")
        .unwrap();
    let names: Vec<String> = s.limits.iter().map(Limit::name).collect();
    assert_eq!(
        names,
        ["ttft_p99_ms", "tpot_mean_ms", "e2el_p50_ms", "itl_p90_ms"]
    );
    assert_eq!(s.max_error_rate, Some(0.01));
    let errs =
        sla("{ttft_p95_ms: 500, ttft_p99_ms: -1, max_error_rate: 2, latency: 3}").unwrap_err();
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(
        errs[0].starts_with("W[0].SLA.ttft_p95_ms: unknown limit"),
        "{errs:?}"
    );
    assert!(
        errs[1].contains("positive number of milliseconds"),
        "{errs:?}"
    );
    assert!(errs[2].contains("from 0 to 1"), "{errs:?}");
    assert!(
        errs[3].starts_with("W[0].SLA.latency: unknown limit"),
        "{errs:?}"
    );
    assert!(sla("{}").unwrap_err()[0].contains("at least one limit"));
}

#[test]
fn a_point_is_judged_from_its_result() {
    let s = sla("{ttft_p99_ms: 500, tpot_p50_ms: 40, max_error_rate: 0.05}").unwrap();
    let r = results(json!({
        "ttft_ms": {"p99": 480.0, "median": 100.0},
        "tpot_ms": {"median": 44.0},
        "total_requests": 100, "failed_requests": 3,
        "failures_by_cause": {"http_status": 3},
    }));
    let v = s.judge(&r, None);
    assert!(!v.pass);
    let got: Vec<(&str, Option<f64>, bool)> = v
        .checks
        .iter()
        .map(|c| (c.name.as_str(), c.value, c.pass))
        .collect();
    assert_eq!(
        got,
        [
            ("ttft_p99_ms", Some(480.0), true),
            ("tpot_p50_ms", Some(44.0), false),
            ("max_error_rate", Some(0.03), true),
        ]
    );
    // 44/40 = 1.1 is furthest over its bound.
    assert_eq!(v.binding.as_deref(), Some("tpot_p50_ms"));

    // Requests lmbench cancelled are not the server's failures; a missing value fails.
    let r = results(json!({
        "ttft_ms": {"p99": 120.0}, "tpot_ms": {"median": null},
        "total_requests": 50, "failed_requests": 10,
        "failures_by_cause": {"cancelled": 10},
    }));
    let v = s.judge(&r, None);
    assert_eq!(v.checks[2].value, Some(0.0));
    assert_eq!((v.checks[1].value, v.checks[1].pass), (None, false));
    assert_eq!(v.binding.as_deref(), Some("tpot_p50_ms"));

    // A stopped point fails, bound by the limit that stopped it.
    let ok = results(json!({
        "ttft_ms": {"p99": 100.0}, "tpot_ms": {"median": 10.0},
        "total_requests": 10, "failed_requests": 0,
    }));
    assert!(s.judge(&ok, None).pass);
    let stop = Stop {
        limit: "ttft_p99_ms".into(),
        why: "queue".into(),
    };
    let v = s.judge(&ok, Some(&stop));
    assert!(!v.pass);
    assert_eq!(v.binding.as_deref(), Some("ttft_p99_ms"));
    assert_eq!(v.stopped_early.as_deref(), Some("queue"));
}

/// A request sent at `t` with the given TTFT and 10 tokens 10 ms apart.
fn req(id: u64, t: f64, ttft_s: f64) -> RequestRecord {
    let chunks: Vec<f64> = (0..10).map(|i| t + ttft_s + i as f64 * 0.01).collect();
    let end = *chunks.last().unwrap();
    rec(id, t, t, &chunks, end, Some(10), Some(10))
}

#[test]
fn the_watch_stops_a_growing_queue_but_not_an_outlier() {
    let s = sla("{ttft_p99_ms: 200}").unwrap();
    // Steady under the limit with a few far outliers: never stopped.
    let mut w = Watch::new(s.clone());
    for i in 0..500 {
        let ttft = if i % 40 == 0 { 2.0 } else { 0.05 };
        assert_eq!(w.add(&req(i, i as f64 * 0.1, ttft)), None, "request {i}");
    }
    // A queue that grows by 20 ms a request: stopped once 11 of the latest 20 are over
    // 200 ms (the request with TTFT 0.22 s is the first over; the 21st after it stops).
    let mut w = Watch::new(s.clone());
    let mut stopped_at = None;
    for i in 0..100u64 {
        if let Some(stop) = w.add(&req(i, i as f64 * 0.1, 0.02 * i as f64)) {
            assert_eq!(stop.limit, "ttft_p99_ms");
            assert!(
                stop.why
                    .starts_with("11 of the latest 20 requests had TTFT over 200 ms"),
                "{}",
                stop.why
            );
            stopped_at = Some(i);
            break;
        }
    }
    assert_eq!(stopped_at, Some(21));
    // Warmup requests are not watched.
    let mut w = Watch::new(s);
    for i in 0..100 {
        let r = RequestRecord {
            warmup: true,
            ..req(i, 0.0, 9.0)
        };
        assert_eq!(w.add(&r), None);
    }
}

#[test]
fn the_watch_stops_a_backlog_that_only_grows() {
    let s = sla("{ttft_p99_ms: 500}").unwrap();
    // 8 sent a second; the server finishes 5 a second: keeps up with most of it.
    let mut w = Watch::new(s.clone());
    for t in 0..30u64 {
        assert_eq!(w.tick(t as f64, 8 * t, 5 * t), None, "{t} s");
    }
    // It finishes 1 a second: stopped once 5 s of counts are in (sent 40, finished 5,
    // in flight 7 → 42).
    let mut w = Watch::new(s.clone());
    let stop = (0..30u64)
        .find_map(|t| w.tick(t as f64, 8 * t, t).map(|s| (t, s)))
        .expect("stopped");
    assert_eq!(stop.0, 5);
    assert_eq!(stop.1.limit, "ttft_p99_ms");
    assert!(
        stop.1.why.starts_with("in the last 5 s the server finished 5 requests while 40 were sent; 35 in flight, up from 0"),
        "{}",
        stop.1.why
    );
    // A closed loop (sends follow finishes) is never a backlog; nor is an error-rate SLA.
    let mut w = Watch::new(s);
    assert!((0..30u64).all(|t| w.tick(t as f64, 4 + 3 * t, 3 * t).is_none()));
    let mut w = Watch::new(sla("{max_error_rate: 0.1}").unwrap());
    assert!((0..30u64).all(|t| w.tick(t as f64, 8 * t, 0).is_none()));
}

#[test]
fn the_watch_stops_on_failures_and_on_a_mean_twice_over() {
    let s = sla("{max_error_rate: 0.1}").unwrap();
    let mut w = Watch::new(s);
    let mut n = 0;
    let stop = loop {
        let r = if n % 3 == 0 {
            req(n, 0.0, 0.05)
        } else {
            failed(n, 0.0, 0.0, 0.1, ErrorKind::HttpStatus)
        };
        n += 1;
        if let Some(s) = w.add(&r) {
            break s;
        }
    };
    // ceil(20 × (0.1 + 1) / 2) = 11 failures among the latest 20.
    assert_eq!((stop.limit.as_str(), n), ("max_error_rate", 20));
    let s = sla("{tpot_mean_ms: 4}").unwrap();
    let mut w = Watch::new(s);
    let stops: Vec<Option<Stop>> = (0..20).map(|i| w.add(&req(i, 0.0, 0.05))).collect();
    // TPOT 10 ms > 2 × 4 ms.
    assert!(stops[..19].iter().all(Option::is_none));
    assert_eq!(
        stops[19].as_ref().map(|s| s.limit.as_str()),
        Some("tpot_mean_ms")
    );
}
