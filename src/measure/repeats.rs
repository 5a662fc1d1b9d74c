//! Repeats of a point: the spread of its headline metrics over independent runs.
//!
//! A point with `REPEATS: N` runs N times, each repeat with a request stream of its own (its
//! own seed: fresh prompts, so no repeat finds another's prefixes in the cache, and its own
//! draw of the arrival times), so the repeats are independent replications of the point. For
//! each headline metric ([`HEADLINE`]) over the repeats that have it: the mean, the sample
//! standard deviation (n − 1), the coefficient of variation (standard deviation ÷ mean) and a
//! 95 % confidence interval for the mean, `mean ± t(0.975, n − 1) · sd / √n` with Student's t
//! quantile (the `distrs` crate).

use serde::Serialize;
use serde_json::{json, Map, Value};

/// The metrics repeats are summarized over: `<results block>.<stat>` or a top-level field of
/// `results`.
pub const HEADLINE: &[&str] = &[
    "ttft_ms.mean",
    "ttft_ms.median",
    "ttft_ms.p90",
    "ttft_ms.p99",
    "tpot_ms.mean",
    "tpot_ms.median",
    "tpot_ms.p90",
    "tpot_ms.p99",
    "itl_ms.mean",
    "inter_token_latency_ms.mean",
    "inter_token_latency_ms.median",
    "inter_token_latency_ms.p90",
    "inter_token_latency_ms.p99",
    "e2e_latency_ms.mean",
    "e2e_latency_ms.median",
    "e2e_latency_ms.p90",
    "e2e_latency_ms.p99",
    "request_throughput_req_per_s",
    "output_token_throughput_tok_per_s",
    "achieved_qps",
];

/// A metric's value in a result's `results` object (`ttft_ms.mean`, `achieved_qps`).
pub fn value(results: &Map<String, Value>, metric: &str) -> Option<f64> {
    let v = match metric.split_once('.') {
        Some((block, stat)) => results.get(block)?.get(stat)?,
        None => results.get(metric)?,
    };
    v.as_f64().filter(|x| x.is_finite())
}

/// One metric over the repeats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    /// Repeats that had the metric.
    pub n: usize,
    /// Their mean.
    pub mean: f64,
    /// Sample standard deviation; `null` for one repeat.
    pub std: Option<f64>,
    /// `std / mean`; `null` for one repeat or a zero mean.
    pub cv: Option<f64>,
    /// The 95 % confidence interval of the mean, `[low, high]`; `null` for one repeat.
    pub ci95: Option<[f64; 2]>,
}

impl Spread {
    /// The spread of `xs` (at least one value).
    pub fn of(xs: &[f64]) -> Option<Spread> {
        let n = xs.len();
        if n == 0 {
            return None;
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        if n < 2 {
            return Some(Spread {
                n,
                mean,
                std: None,
                cv: None,
                ci95: None,
            });
        }
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let std = var.sqrt();
        let half = t_975(n - 1) * std / (n as f64).sqrt();
        Some(Spread {
            n,
            mean,
            std: Some(std),
            cv: (mean != 0.0).then(|| std / mean.abs()),
            ci95: Some([mean - half, mean + half]),
        })
    }
}

/// Student's t quantile at 0.975 for `df` degrees of freedom.
pub fn t_975(df: usize) -> f64 {
    distrs::StudentsT::ppf(0.975, df as f64)
}

/// The spread of every headline metric over the repeats' `results` objects, rounded as
/// results are (2 decimals, 4 for rates): `{metric: Spread}`, metrics no repeat had left out.
pub fn spreads(repeats: &[&Map<String, Value>]) -> Value {
    let mut out = Map::new();
    for m in HEADLINE {
        let xs: Vec<f64> = repeats.iter().filter_map(|r| value(r, m)).collect();
        if let Some(s) = Spread::of(&xs) {
            let mut v = json!(s);
            super::summary::round_floats(&mut v, Some(m));
            out.insert((*m).to_string(), v);
        }
    }
    Value::Object(out)
}

/// `results.repeats`: `n` (repeats with a result), `of` (planned), `runs` (each repeat's `n`,
/// result `file` and headline figures) and `stats` ([`spreads`]). `runs` holds `(n, file,
/// results)` per repeat.
pub fn summary(of: u32, runs: &[(u32, Option<&str>, &Map<String, Value>)]) -> Value {
    let listed: Vec<Value> = runs
        .iter()
        .map(|(n, file, r)| {
            let mut m = Map::new();
            m.insert("n".into(), (*n).into());
            m.insert("file".into(), file.map_or(Value::Null, Value::from));
            for k in HEADLINE {
                m.insert((*k).into(), value(r, k).map_or(Value::Null, Value::from));
            }
            Value::Object(m)
        })
        .collect();
    let mut listed = Value::Array(listed);
    super::summary::round_floats(&mut listed, None);
    let results: Vec<&Map<String, Value>> = runs.iter().map(|(_, _, r)| *r).collect();
    json!({
        "n": runs.len(),
        "of": of,
        "runs": listed,
        "stats": spreads(&results),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn student_t_quantiles_are_the_tabulated_ones() {
        // Two-sided 95 % critical values.
        for (df, t) in [
            (1, 12.706_204_736_174_7),
            (2, 4.302_652_729_749_464),
            (4, 2.776_445_105_197_793),
            (9, 2.262_157_162_798_205),
            (30, 2.042_272_456_301_238),
        ] {
            assert!(
                (t_975(df) - t).abs() < 1e-6,
                "df {df}: {} vs {t}",
                t_975(df)
            );
        }
    }

    #[test]
    fn spread_of_known_samples() {
        // 10, 12, 14: mean 12, sd 2, cv 1/6, half-width 4.3027 · 2 / √3 = 4.9683.
        let s = Spread::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!(s.n, 3);
        assert!(close(s.mean, 12.0));
        assert!(close(s.std.unwrap(), 2.0));
        assert!(close(s.cv.unwrap(), 1.0 / 6.0));
        let [lo, hi] = s.ci95.unwrap();
        let half = 4.302_652_729_749_464 * 2.0 / 3f64.sqrt();
        assert!((lo - (12.0 - half)).abs() < 1e-6 && (hi - (12.0 + half)).abs() < 1e-6);
        assert!((half - 4.968_275).abs() < 1e-5, "{half}");
        // One repeat: a mean, nothing about its spread.
        let one = Spread::of(&[7.0]).unwrap();
        assert_eq!((one.mean, one.std, one.ci95), (7.0, None, None));
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn spreads_of_results_objects() {
        let a = json!({"ttft_ms": {"mean": 100.0, "p99": 150.0}, "achieved_qps": 1.9999});
        let b = json!({"ttft_ms": {"mean": 110.0, "p99": 170.0}, "achieved_qps": 2.0001});
        let c = json!({"ttft_ms": {"mean": 120.0, "p99": null}});
        let rs: Vec<&Map<String, Value>> = [&a, &b, &c]
            .iter()
            .map(|v| v.as_object().unwrap())
            .collect();
        let s = spreads(&rs);
        assert_eq!(s["ttft_ms.mean"]["n"], 3);
        assert_eq!(s["ttft_ms.mean"]["mean"], 110.0);
        assert_eq!(s["ttft_ms.mean"]["std"], 10.0);
        assert_eq!(s["ttft_ms.mean"]["cv"], 0.0909);
        assert_eq!(s["ttft_ms.mean"]["ci95"], json!([85.16, 134.84]));
        assert_eq!(s["ttft_ms.p99"]["n"], 2);
        assert_eq!(s["achieved_qps"]["mean"], 2.0);
        assert!(s.get("tpot_ms.mean").is_none());
    }
}
