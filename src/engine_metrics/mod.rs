//! Engine metrics joined to a run: the serving engine's own Prometheus metrics, scraped once a
//! second during every point ([`scrape`]), kept as a series beside the result
//! (`<result>.metrics.jsonl`) and summarized in it (`results.engine_metrics`).
//!
//! Engines name the same things differently; [`COMMON`] maps vLLM's, SGLang's, llama.cpp's
//! (`--metrics`) and the simulated engine's names to common ones (`requests_running`,
//! `kv_cache_usage`, `prefix_cache_hits_total`, …), and the summary says which raw name each
//! came from. The exposition text is parsed with the `nom-openmetrics` crate; every scalar
//! sample (counter, gauge, untyped; histograms and summaries left out) is summed over its
//! label sets (vLLM labels by engine and model, SGLang by model).

pub mod scrape;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Whether a common metric is a level or a running total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A level at each scrape: peak and mean over the point.
    Gauge,
    /// A running total: its increase over the point.
    Counter,
}

/// A common metric and the raw names it is read from: the first source whose every name is in
/// a scrape gives its value (the sum of those names).
pub struct Common {
    /// The common name.
    pub name: &'static str,
    /// Level or total.
    pub kind: Kind,
    /// Sources, in order of preference; each a list of raw names that are added up.
    pub sources: &'static [&'static [&'static str]],
}

/// Every common metric (see the module's header). Token totals count prompt tokens the engine
/// was given, cached ones included (llama.cpp reports the two apart).
pub const COMMON: &[Common] = &[
    Common {
        name: "requests_running",
        kind: Kind::Gauge,
        sources: &[
            &["vllm:num_requests_running"],
            &["sglang:num_running_reqs"],
            &["llamacpp:requests_processing"],
            &["lmbench_sim:num_requests_running"],
        ],
    },
    Common {
        name: "requests_waiting",
        kind: Kind::Gauge,
        sources: &[
            &["vllm:num_requests_waiting"],
            &["sglang:num_queue_reqs"],
            &["llamacpp:requests_deferred"],
            &["lmbench_sim:num_requests_waiting"],
        ],
    },
    Common {
        name: "kv_cache_usage",
        kind: Kind::Gauge,
        sources: &[
            &["vllm:kv_cache_usage_perc"],
            &["vllm:gpu_cache_usage_perc"],
            &["sglang:token_usage"],
            &["llamacpp:kv_cache_usage_ratio"],
        ],
    },
    Common {
        name: "prompt_tokens_total",
        kind: Kind::Counter,
        sources: &[
            &["vllm:prompt_tokens_total"],
            &["sglang:prompt_tokens_total"],
            &[
                "llamacpp:prompt_tokens_total",
                "llamacpp:prompt_tokens_cached_total",
            ],
            &["lmbench_sim:prompt_tokens_total"],
        ],
    },
    Common {
        name: "generation_tokens_total",
        kind: Kind::Counter,
        sources: &[
            &["vllm:generation_tokens_total"],
            &["sglang:generation_tokens_total"],
            &["llamacpp:tokens_predicted_total"],
            &["lmbench_sim:generation_tokens_total"],
        ],
    },
    Common {
        name: "prefix_cache_queries_total",
        kind: Kind::Counter,
        sources: &[
            &["vllm:prefix_cache_queries_total"],
            &["vllm:gpu_prefix_cache_queries_total"],
            &[
                "llamacpp:prompt_tokens_total",
                "llamacpp:prompt_tokens_cached_total",
            ],
            &["lmbench_sim:prefix_cache_queries_total"],
        ],
    },
    Common {
        name: "prefix_cache_hits_total",
        kind: Kind::Counter,
        sources: &[
            &["vllm:prefix_cache_hits_total"],
            &["vllm:gpu_prefix_cache_hits_total"],
            &["sglang:cached_tokens_total"],
            &["llamacpp:prompt_tokens_cached_total"],
            &["lmbench_sim:prefix_cache_hits_total"],
        ],
    },
    Common {
        name: "prefix_cache_hit_rate",
        kind: Kind::Gauge,
        sources: &[&["sglang:cache_hit_rate"]],
    },
    Common {
        name: "preemptions_total",
        kind: Kind::Counter,
        sources: &[
            &["vllm:num_preemptions_total"],
            &["sglang:num_retracted_reqs"],
        ],
    },
    Common {
        name: "requests_finished_total",
        kind: Kind::Counter,
        sources: &[
            &["vllm:request_success_total"],
            &["sglang:num_requests_total"],
            &["lmbench_sim:requests_finished_total"],
        ],
    },
];

/// One scrape: seconds since the point's start and every scalar sample, summed over its label
/// sets, by raw name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scrape {
    /// Seconds since the point's start.
    pub t: f64,
    /// Raw name → value.
    pub raw: BTreeMap<String, f64>,
}

/// Parses Prometheus exposition text into a [`Scrape`] taken `t` seconds into the point.
pub fn parse(text: &str, t: f64) -> Result<Scrape, String> {
    use nom_openmetrics::{MetricDescriptor, MetricType};
    // The parser reads HELP, TYPE and UNIT lines and samples: other comments and blank lines,
    // which the format allows, are left out first; the last line must end.
    let mut input: String = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.is_empty()
                && (!l.starts_with('#')
                    || l.starts_with("# HELP ")
                    || l.starts_with("# TYPE ")
                    || l.starts_with("# UNIT "))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if input.is_empty() {
        input.push('\n');
    }
    let (_, families) = nom_openmetrics::parser::prometheus(&input)
        .map_err(|e| format!("not Prometheus exposition text: {e}"))?;
    // Histogram and summary series (buckets, quantiles, sums, counts) are not scalars.
    let mut spread: Vec<&str> = Vec::new();
    for f in &families {
        for d in &f.descriptors {
            if let MetricDescriptor::Type { metric, r#type } = d {
                // (The parser reads `histogram` as an unknown type.)
                let spread_type = match r#type {
                    MetricType::Histogram | MetricType::Summary | MetricType::Gaugehistogram => {
                        true
                    }
                    MetricType::Unknown(t) => t.trim() == "histogram",
                    _ => false,
                };
                if spread_type {
                    spread.push(metric);
                }
            }
        }
    }
    let mut raw = BTreeMap::new();
    for s in families.iter().flat_map(|f| &f.samples) {
        let name = s.name();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        // prometheus_client's creation timestamps are not measurements either.
        if spread.contains(&base) || spread.contains(&name) || name.ends_with("_created") {
            continue;
        }
        let v = s.number();
        if v.is_finite() {
            *raw.entry(name.to_string()).or_insert(0.0) += v;
        }
    }
    Ok(Scrape { t, raw })
}

impl Scrape {
    /// A common metric's value, and the raw name(s) it came from.
    pub fn common(&self, c: &Common) -> Option<(f64, String)> {
        c.sources.iter().find_map(|names| {
            let vals: Option<Vec<f64>> = names.iter().map(|n| self.raw.get(*n).copied()).collect();
            vals.map(|v| (v.iter().sum(), names.join(" + ")))
        })
    }

    /// The engine family the names say: `vllm`, `sglang`, `llamacpp`, `lmbench_sim`, or
    /// `unknown`.
    pub fn engine(&self) -> &'static str {
        for family in ["vllm", "sglang", "llamacpp", "lmbench_sim"] {
            let prefix = format!("{family}:");
            if self.raw.keys().any(|k| k.starts_with(&prefix)) {
                return family;
            }
        }
        "unknown"
    }
}

/// The client's totals over the same point, to set beside the server's.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTotals {
    /// Prompt tokens of every request sent (warmup included: the engine counts those too).
    pub prompt_tokens: Option<u64>,
    /// Generated tokens of every request.
    pub generation_tokens: Option<u64>,
    /// Cached prompt tokens the server reported in `usage`.
    pub cached_tokens: Option<u64>,
}

impl ClientTotals {
    /// Counts what a finished request (warmup and failures included: the engine counted them
    /// too) says it used.
    pub fn add(&mut self, r: &crate::record::RequestRecord) {
        let add = |sum: &mut Option<u64>, v: Option<u64>| {
            if let Some(v) = v {
                *sum = Some(sum.unwrap_or(0) + v);
            }
        };
        add(&mut self.prompt_tokens, r.prompt_tokens);
        add(&mut self.generation_tokens, r.completion_tokens);
        add(&mut self.cached_tokens, r.cached_tokens);
    }
}

/// The scrapes of several engine pods as one engine: each scrape's samples added up across
/// the pods that answered (scrapes taken together, a second apart, matched by their order).
pub fn combine(parts: &[&scrape::Collected]) -> scrape::Collected {
    let answered: Vec<&&scrape::Collected> =
        parts.iter().filter(|p| !p.scrapes.is_empty()).collect();
    let n = answered.iter().map(|p| p.scrapes.len()).min().unwrap_or(0);
    let scrapes = (0..n)
        .map(|i| {
            let mut raw = BTreeMap::new();
            for p in &answered {
                for (k, v) in &p.scrapes[i].raw {
                    *raw.entry(k.clone()).or_insert(0.0) += v;
                }
            }
            Scrape {
                t: answered[0].scrapes[i].t,
                raw,
            }
        })
        .collect();
    scrape::Collected {
        url: parts
            .iter()
            .map(|p| p.url.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        scrapes,
        failed: parts.iter().map(|p| p.failed).sum(),
        error: parts.iter().find_map(|p| p.error.clone()),
    }
}

/// Writes a point's scrapes to `series` (one a line; nothing when there is none) and returns
/// their summary (`results.engine_metrics`), naming the file where it was written. Several
/// parts (engine pods, each named) are summarized as one engine, their sum, and each on its
/// own under `pods`.
pub fn keep(
    series: &std::path::Path,
    parts: &[(Option<String>, scrape::Collected)],
    totals: ClientTotals,
) -> Value {
    let combined;
    let scraped = match parts {
        [(_, one)] => one,
        _ => {
            combined = combine(&parts.iter().map(|(_, c)| c).collect::<Vec<_>>());
            &combined
        }
    };
    let mut file = None;
    if !scraped.scrapes.is_empty() {
        let mut text = String::new();
        for s in &scraped.scrapes {
            if let Ok(line) = serde_json::to_string(s) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        match std::fs::write(series, text) {
            Ok(()) => file = series.file_name().map(|f| f.to_string_lossy().into_owned()),
            Err(e) => tracing::warn!("cannot write {}: {e}", series.display()),
        }
    }
    let mut v = summarize(
        &scraped.url,
        &scraped.scrapes,
        scraped.failed,
        scraped.error.as_deref(),
        totals,
    );
    if let Value::Object(m) = &mut v {
        if let Some(f) = file {
            m.insert("file".into(), Value::String(f));
        }
        let pods: Vec<Value> = parts
            .iter()
            .filter_map(|(pod, c)| {
                let mut s = summarize(
                    &c.url,
                    &c.scrapes,
                    c.failed,
                    c.error.as_deref(),
                    ClientTotals::default(),
                );
                if let Value::Object(o) = &mut s {
                    o.remove("server_vs_client");
                    o.insert("pod".into(), json!(pod.as_ref()?));
                }
                Some(s)
            })
            .collect();
        if !pods.is_empty() {
            m.insert("pods".into(), Value::Array(pods));
        }
    }
    v
}

/// `results.engine_metrics`: what the scrapes of a point say (see the README's table).
pub fn summarize(
    url: &str,
    scrapes: &[Scrape],
    failed: u64,
    error: Option<&str>,
    client: ClientTotals,
) -> Value {
    let mut out = Map::new();
    out.insert("url".into(), json!(url));
    out.insert("scrapes".into(), json!(scrapes.len()));
    out.insert("failed_scrapes".into(), json!(failed));
    if let Some(e) = error {
        out.insert("error".into(), json!(e));
    }
    let (Some(first), Some(last)) = (scrapes.first(), scrapes.last()) else {
        return Value::Object(out);
    };
    out.insert("engine".into(), json!(last.engine()));
    out.insert("window_s".into(), json!([first.t, last.t]));
    let mut raw_names = Map::new();
    let mut metrics = Map::new();
    for c in COMMON {
        let values: Vec<(f64, String)> = scrapes.iter().filter_map(|s| s.common(c)).collect();
        let Some((_, name)) = values.last() else {
            continue;
        };
        raw_names.insert(c.name.into(), json!(name));
        let v = match c.kind {
            Kind::Gauge => {
                let xs: Vec<f64> = values.iter().map(|(v, _)| *v).collect();
                json!({
                    "peak": xs.iter().copied().fold(f64::MIN, f64::max),
                    "mean": xs.iter().sum::<f64>() / xs.len() as f64,
                })
            }
            Kind::Counter => {
                // The increase from the first scrape to the last (a restart resets a counter:
                // never below zero).
                let a = first.common(c).map_or(0.0, |(v, _)| v);
                let b = last.common(c).map_or(0.0, |(v, _)| v);
                json!((b - a).max(0.0))
            }
        };
        metrics.insert(c.name.into(), v);
    }
    let delta = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_f64);
    let hits = delta(&metrics, "prefix_cache_hits_total");
    if let (Some(h), Some(q)) = (hits, delta(&metrics, "prefix_cache_queries_total")) {
        if q > 0.0 {
            metrics.insert("prefix_cache_hit_rate_over_point".into(), json!(h / q));
        }
    }
    let delta = |k: &str| delta(&metrics, k);
    let mut compare = Map::new();
    for (name, server, client) in [
        (
            "prompt_tokens",
            delta("prompt_tokens_total"),
            client.prompt_tokens,
        ),
        (
            "generation_tokens",
            delta("generation_tokens_total"),
            client.generation_tokens,
        ),
        (
            "cached_tokens",
            delta("prefix_cache_hits_total"),
            client.cached_tokens,
        ),
    ] {
        let (Some(s), Some(c)) = (server, client) else {
            continue;
        };
        let diff = (c > 0).then(|| (s - c as f64) / c as f64 * 100.0);
        compare.insert(
            name.into(),
            json!({"server": s, "client": c, "server_minus_client_pct": diff}),
        );
    }
    out.insert("metrics".into(), Value::Object(metrics));
    out.insert("server_vs_client".into(), Value::Object(compare));
    out.insert("raw_names".into(), Value::Object(raw_names));
    let mut v = Value::Object(out);
    round4(&mut v);
    v
}

/// Rounds every float in `v` to 4 decimals (shares and gauges below 1 keep their figures).
fn round4(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = crate::measure::round_dp(n.as_f64().unwrap_or(f64::NAN), 4);
            *v = serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
        }
        Value::Object(m) => m.values_mut().for_each(round4),
        Value::Array(a) => a.iter_mut().for_each(round4),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
