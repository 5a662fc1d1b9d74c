//! The run [`Summary`] and its JSON form: the object written under a result file's `"results"`
//! key. LMBench's own keys come first, under LMBench's names and in LMBench's order, so its
//! dashboard and visualizer read the file unchanged; lmbench's additions follow.
//!
//! [`super::Aggregator`] builds a `Summary`; `results` places [`Summary::results_json`] in the
//! result file.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::stats::{round_dp, ChunkItlStats, Stats};

/// LMBench's `error` string for a run without a successful request.
pub const NO_SUCCESS_ERROR: &str = "No successful requests completed";

/// LMBench's metrics, over successful non-warmup requests (LMBench itself counted failed rows
/// as successes and added their zero TTFTs; lmbench does not).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LmbenchMetrics {
    /// Requests that completed without error.
    pub successful_requests: u64,
    /// Last end minus first send over the successful requests, in seconds.
    pub benchmark_duration_s: f64,
    /// Σ prompt tokens (server count where reported, else the client's).
    pub total_input_tokens: u64,
    /// Σ generated tokens (server count where reported, else the client's count of the text).
    pub total_generated_tokens: u64,
    /// `successful_requests / benchmark_duration_s`; `null` for a zero-length window.
    pub request_throughput_req_per_s: Option<f64>,
    /// `total_generated_tokens / benchmark_duration_s`.
    pub output_token_throughput_tok_per_s: Option<f64>,
    /// `total_input_tokens / benchmark_duration_s`.
    pub input_token_throughput_tok_per_s: Option<f64>,
    /// `(total_input_tokens + total_generated_tokens) / benchmark_duration_s`.
    pub total_token_throughput_tok_per_s: Option<f64>,
    /// Time to first token, `first_token − sent`, ms; requests without a content chunk excluded.
    pub ttft_ms: Stats,
    /// `(end − first_token) / (completion_tokens − 1)`, ms; only requests with ≥ 2 tokens.
    pub tpot_ms: Stats,
    /// LMBench's ITL, kept for comparability: `(end − sent) / completion_tokens`, ms, for
    /// requests with ≥ 1 token. The vLLM-style per-chunk gap is `inter_token_latency_ms`.
    pub itl_ms: Stats,
}

/// LMBench's `results` object: the metrics, or its error object when nothing succeeded.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LmbenchResults {
    /// At least one request succeeded.
    Metrics(Box<LmbenchMetrics>),
    /// No request succeeded; written as `{"error": …, "message": …}` like LMBench.
    Error {
        /// Always [`NO_SUCCESS_ERROR`].
        error: String,
        /// What happened (how many requests failed, and why).
        message: String,
    },
}

/// Where a token count came from, over the successful non-warmup requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CountSource {
    /// Every request had the server's `usage` count.
    Server,
    /// No request had it: all counts are the client's.
    Client,
    /// Some had it.
    Mixed,
}

impl CountSource {
    /// Classifies `with_server` server-reported counts out of `total` requests; `None` when
    /// `total` is zero.
    pub fn classify(with_server: u64, total: u64) -> Option<CountSource> {
        match (with_server, total) {
            (_, 0) => None,
            (0, _) => Some(CountSource::Client),
            (s, t) if s >= t => Some(CountSource::Server),
            _ => Some(CountSource::Mixed),
        }
    }
}

/// Token-count provenance for prompts and completions (`null` when nothing succeeded).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TokenSource {
    /// Source of the prompt counts.
    pub prompt: Option<CountSource>,
    /// Source of the completion counts.
    pub completion: Option<CountSource>,
}

/// Client versus server token counts over the requests that have both.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TokenComparison {
    /// What the client's count covers.
    pub client_counts: &'static str,
    /// Whether the two counts cover the same text (a disagreement warning is given only then).
    pub comparable: bool,
    /// Σ client counts over the compared requests.
    pub client_total: u64,
    /// Σ server counts over the compared requests.
    pub server_total: u64,
    /// Mean over compared requests of `|client − server| / max(server, 1) × 100`.
    pub mean_abs_diff_pct: Option<f64>,
    /// Requests with both counts.
    pub requests_compared: u64,
}

/// [`TokenComparison`] for prompts and completions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TokenDisagreement {
    /// Prompt tokens: the client's count of the prompt as sent versus `usage.prompt_tokens`.
    pub prompt: TokenComparison,
    /// Completion tokens: the client's count (`client_completion_tokens`) versus
    /// `usage.completion_tokens`.
    pub completion: TokenComparison,
}

/// Everything lmbench reports about one run. Latencies in ms, durations in s, rates per s.
///
/// Serializing it gives the unrounded form of [`Summary::results_json`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// LMBench's keys (flattened into the same object).
    #[serde(flatten)]
    pub lmbench: LmbenchResults,
    /// Non-warmup requests recorded (successful + failed).
    pub total_requests: u64,
    /// Non-warmup requests that ended in an error.
    pub failed_requests: u64,
    /// Failed requests by [`crate::record::ErrorKind::as_str`].
    pub failures_by_cause: BTreeMap<String, u64>,
    /// Warmup requests recorded (excluded from every other field).
    pub warmup_requests: u64,
    /// End-to-end latency `end − sent` of successful requests.
    pub e2e_latency_ms: Stats,
    /// Gaps between consecutive content chunks, pooled over successful requests (vLLM's ITL).
    pub inter_token_latency_ms: ChunkItlStats,
    /// `first_token − due`: TTFT including any delay in sending (send lag). For a turn held
    /// back by a late answer, `due` is when the answer arrived: see `ttft_from_slot_ms`.
    pub ttft_from_due_ms: Stats,
    /// `end − due`: E2E latency including any delay in sending.
    pub e2e_from_due_ms: Stats,
    /// `first_token − slot`: TTFT from when the request would have been due had every earlier
    /// answer of its conversation come in time. Includes the time a turn was held back by a
    /// late answer and any send lag: the latency a user on the intended schedule would have
    /// seen (free of coordinated omission). Equal to `ttft_from_due_ms` for requests that wait
    /// for nothing.
    pub ttft_from_slot_ms: Stats,
    /// `end − slot`: E2E latency from the slot (see `ttft_from_slot_ms`).
    pub e2e_from_slot_ms: Stats,
    /// `sent − due` over all non-warmup requests: how late the client sent.
    pub send_lag_ms: Stats,
    /// The configured request rate, if the workload has one.
    pub target_qps: Option<f64>,
    /// Non-warmup requests sent ÷ `send_window_s`.
    pub achieved_qps: Option<f64>,
    /// The same rate computed from the requests' slots (their due times, or for a turn held
    /// back by a late answer when it would have been due): what the schedule intended.
    pub scheduled_qps: Option<f64>,
    /// `(last sent − first sent) · n/(n−1)` over the n non-warmup requests; the configured
    /// duration when fewer than two were sent.
    pub send_window_s: Option<f64>,
    /// The configured send window, if any.
    pub configured_duration_s: Option<f64>,
    /// `achieved_qps / scheduled_qps < 0.95`: the client sent slower than the schedule
    /// intended (a server too slow for a multi-turn schedule shows here).
    pub qps_shortfall: bool,
    /// Whether token counts came from the server or the client.
    pub token_source: TokenSource,
    /// Client versus server token counts.
    pub token_disagreement: TokenDisagreement,
    /// Σ `usage.prompt_tokens_details.cached_tokens`; `null` when no response reported it.
    pub total_cached_tokens: Option<u64>,
    /// Cached ÷ prompt tokens over the responses that reported cached tokens.
    pub cache_hit_ratio: Option<f64>,
    /// Non-warmup requests (failed ones included) that waited for a new connection
    /// (`new_connection` in their records). Left out when no record says (records written
    /// before lmbench recorded connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_connections: Option<u64>,
    /// Their connection set-up time (`connect_ms`), part of their TTFT; left out like
    /// `new_connections`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<Stats>,
    /// Human-readable problems with the run (load shortfall, failures, fallbacks).
    pub warnings: Vec<String>,
}

/// Keys whose values keep 4 decimals instead of LMBench's 2: small rates and ratios (0.125 QPS
/// must not become 0.12).
const FOUR_DP_KEYS: &[&str] = &[
    "target_qps",
    "achieved_qps",
    "scheduled_qps",
    "cache_hit_ratio",
    // Steady state (`measure::steady`).
    "window_s",
    "mean_in_flight",
    // Repeats (`measure::repeats`).
    "cv",
];

impl Summary {
    /// True when no non-warmup request succeeded (LMBench's error case).
    pub fn is_empty(&self) -> bool {
        matches!(self.lmbench, LmbenchResults::Error { .. })
    }

    /// The LMBench metrics, if any request succeeded.
    pub fn metrics(&self) -> Option<&LmbenchMetrics> {
        match &self.lmbench {
            LmbenchResults::Metrics(m) => Some(m),
            LmbenchResults::Error { .. } => None,
        }
    }

    /// LMBench's part alone, rounded like LMBench: the metrics object, or
    /// `{"error": "No successful requests completed", "message": …}`.
    /// [`Self::results_json`] is this followed by the additions.
    pub fn lmbench_results_json(&self) -> Value {
        let mut v = serde_json::to_value(&self.lmbench).unwrap_or(Value::Null);
        round_floats(&mut v, None);
        v
    }

    /// The object written under the result file's `"results"` key: LMBench's keys first, in
    /// LMBench's order (or its error object), then lmbench's additions. Floats are rounded to
    /// 2 decimals like LMBench (4 for rates and ratios); undefined values are `null`, never
    /// NaN or infinity.
    pub fn results_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        round_floats(&mut v, None);
        v
    }
}

/// Rounds every float in `v` as the results are written: 2 decimals, 4 for small rates and
/// ratios.
pub(crate) fn round_floats(v: &mut Value, key: Option<&str>) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            let dp = if key.is_some_and(|k| FOUR_DP_KEYS.contains(&k)) {
                4
            } else {
                2
            };
            *v = serde_json::Number::from_f64(round_dp(x, dp)).map_or(Value::Null, Value::Number);
        }
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                round_floats(child, Some(k));
            }
        }
        Value::Array(items) => {
            for child in items {
                round_floats(child, key);
            }
        }
        _ => {}
    }
}
