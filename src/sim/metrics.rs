//! The simulator's counters and gauges and their Prometheus text rendering (`GET /metrics`).
//!
//! Names follow vLLM's (`vllm:prefix_cache_queries` …) under the `lmbench_sim:` prefix, so a
//! benchmark can scrape the sim the way it scrapes a real engine.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, updated lock-free by handlers and the engine loop.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Generation requests received (any outcome).
    pub requests: AtomicU64,
    /// Generation requests answered with an error status.
    pub request_errors: AtomicU64,
    /// Requests whose generation ran to the end.
    pub requests_finished: AtomicU64,
    /// Prompt tokens of requests accepted for generation.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated.
    pub generation_tokens: AtomicU64,
    /// Prompt tokens looked up in the prefix cache.
    pub prefix_cache_queries: AtomicU64,
    /// Prompt tokens found in the prefix cache.
    pub prefix_cache_hits: AtomicU64,
    /// Sequences admitted and not finished.
    pub running: AtomicU64,
    /// Sequences queued for admission.
    pub waiting: AtomicU64,
    /// Tokens held by the prefix cache.
    pub cache_tokens: AtomicU64,
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 10] = [
            (
                "requests_total",
                "counter",
                "Generation requests received.",
                get(&self.requests),
            ),
            (
                "request_errors_total",
                "counter",
                "Generation requests answered with an error status.",
                get(&self.request_errors),
            ),
            (
                "requests_finished_total",
                "counter",
                "Requests whose generation ran to the end.",
                get(&self.requests_finished),
            ),
            (
                "prompt_tokens_total",
                "counter",
                "Prompt tokens of accepted requests.",
                get(&self.prompt_tokens),
            ),
            (
                "generation_tokens_total",
                "counter",
                "Generated tokens.",
                get(&self.generation_tokens),
            ),
            (
                "prefix_cache_queries_total",
                "counter",
                "Prompt tokens looked up in the prefix cache.",
                get(&self.prefix_cache_queries),
            ),
            (
                "prefix_cache_hits_total",
                "counter",
                "Prompt tokens found in the prefix cache.",
                get(&self.prefix_cache_hits),
            ),
            (
                "num_requests_running",
                "gauge",
                "Requests admitted to the batch.",
                get(&self.running),
            ),
            (
                "num_requests_waiting",
                "gauge",
                "Requests queued for admission.",
                get(&self.waiting),
            ),
            (
                "prefix_cache_tokens",
                "gauge",
                "Tokens held by the prefix cache.",
                get(&self.cache_tokens),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP lmbench_sim:{name} {help}");
            let _ = writeln!(out, "# TYPE lmbench_sim:{name} {kind}");
            let _ = writeln!(out, "lmbench_sim:{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        add(&m.prefix_cache_hits, 32);
        let text = m.render();
        assert!(text.contains("# TYPE lmbench_sim:prefix_cache_hits_total counter\n"));
        assert!(text.contains("\nlmbench_sim:prefix_cache_hits_total 32\n"));
        assert!(text.contains("\nlmbench_sim:num_requests_waiting 0\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.split_once(' ').unwrap();
            assert!(name.starts_with("lmbench_sim:"));
            value.parse::<u64>().unwrap();
        }
    }
}
