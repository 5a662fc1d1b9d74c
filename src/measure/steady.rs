//! Steady state (`results.steady_state`): a point's figures over its plateau, beside the
//! whole-run figures, with the ramp-up and the drain left out and the window recorded.
//!
//! The window, one rule for every point: it opens one median E2E latency after the first send
//! and closes at the last send. By Little's law the requests in flight reach their level about
//! one latency after the load starts (in a closed loop, every slot of the concurrency has
//! turned over once by then); after the last send they only drain. Latencies are those of the
//! requests *sent* inside the window; throughput counts what *happened* inside it (requests
//! that ended in it, tokens whose chunk arrived in it, each chunk carrying its request's
//! tokens in equal shares), over the window's length. The requests in flight are integrated
//! over the window; `in_flight_start` and `in_flight_end` say whether they held a level or kept
//! growing (`growing`: more than 1.5 times as many at the end as at the start, and at least 2
//! more: a queue building up — the point is over capacity and has no plateau to speak of).
//!
//! Records come in two passes over the point's `.requests.jsonl` (the window is known only at
//! the end), so memory stays flat in the number of requests.

use serde::Serialize;

use super::Stats;
use crate::record::RequestRecord;

/// Fewest requests sent in the window for steady-state figures.
pub const MIN_REQUESTS: usize = 10;

/// The window of one point.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    pub start_s: f64,
    pub end_s: f64,
}

impl Window {
    /// The window for a point whose non-warmup requests were sent from `first_sent` to
    /// `last_sent` with median E2E latency `median_e2e_s`; `None` if nothing is left of it.
    pub fn of(first_sent: f64, last_sent: f64, median_e2e_s: f64) -> Option<Window> {
        let start_s = first_sent + median_e2e_s.max(0.0);
        (last_sent > start_s).then_some(Window {
            start_s,
            end_s: last_sent,
        })
    }

    /// A send in the window (the last send, at its end, counts).
    fn contains(&self, t: f64) -> bool {
        t >= self.start_s && t <= self.end_s
    }

    /// An event in the window, half-open, so that windows end to end count it once.
    fn holds(&self, t: f64) -> bool {
        t >= self.start_s && t < self.end_s
    }

    fn len(&self) -> f64 {
        self.end_s - self.start_s
    }
}

/// `results.steady_state`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SteadyState {
    /// How the window was chosen.
    pub rule: &'static str,
    /// `[start, end]`, seconds since the run's start (the records' clock).
    pub window_s: [f64; 2],
    /// Non-warmup requests sent in the window, and of those the successful ones.
    pub requests: u64,
    pub successful_requests: u64,
    pub ttft_ms: Stats,
    pub tpot_ms: Stats,
    pub e2e_latency_ms: Stats,
    /// Successful requests that ended in the window, per second.
    pub request_throughput_req_per_s: f64,
    /// Output tokens whose chunk arrived in the window, per second.
    pub output_token_throughput_tok_per_s: f64,
    /// Requests in flight, averaged over the window.
    pub mean_in_flight: f64,
    pub in_flight_start: u64,
    pub in_flight_end: u64,
    /// The requests in flight kept growing through the window (no plateau).
    pub growing: bool,
}

impl SteadyState {
    /// As written into `results`, rounded like the whole-run figures.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        super::summary::round_floats(&mut v, None);
        v
    }
}

/// Collects one point's records for [`SteadyState`].
#[derive(Debug, Default)]
pub struct Steady {
    w: Window,
    requests: u64,
    ttft: Vec<f64>,
    tpot: Vec<f64>,
    e2e: Vec<f64>,
    ok: u64,
    ended: u64,
    tokens: f64,
    busy_s: f64,
    at_start: u64,
    at_end: u64,
}

impl Steady {
    pub fn new(w: Window) -> Steady {
        Steady {
            w,
            ..Steady::default()
        }
    }

    pub fn add(&mut self, r: &RequestRecord) {
        if r.warmup {
            return;
        }
        let w = self.w;
        // In flight over [sent, end].
        let (a, b) = (r.sent_s.max(w.start_s), r.end_s.min(w.end_s));
        if b > a {
            self.busy_s += b - a;
        }
        self.at_start += u64::from(r.sent_s <= w.start_s && r.end_s > w.start_s);
        self.at_end += u64::from(r.sent_s <= w.end_s && r.end_s > w.end_s);
        if r.ok() {
            self.ended += u64::from(w.holds(r.end_s));
            let chunks = r.chunk_times_s.len();
            if chunks > 0 {
                let per_chunk = r.completion_tokens_best() as f64 / chunks as f64;
                let inside = r.chunk_times_s.iter().filter(|t| w.holds(**t)).count();
                self.tokens += per_chunk * inside as f64;
            }
        }
        if !w.contains(r.sent_s) {
            return;
        }
        self.requests += 1;
        if !r.ok() {
            return;
        }
        self.ok += 1;
        const MS: f64 = 1000.0;
        if let Some(first) = r.first_token_s {
            self.ttft.push((first - r.sent_s) * MS);
            let n = r.completion_tokens_best();
            if n >= 2 {
                self.tpot.push((r.end_s - first) * MS / (n - 1) as f64);
            }
        }
        self.e2e.push((r.end_s - r.sent_s) * MS);
    }

    /// The figures, if at least [`MIN_REQUESTS`] were sent in the window.
    pub fn finish(mut self) -> Option<SteadyState> {
        if (self.requests as usize) < MIN_REQUESTS {
            return None;
        }
        let len = self.w.len();
        let r4 = |x: f64| super::round_dp(x, 4);
        let (s, e) = (self.at_start, self.at_end);
        Some(SteadyState {
            rule: "from one median E2E latency after the first send to the last send",
            window_s: [r4(self.w.start_s), r4(self.w.end_s)],
            requests: self.requests,
            successful_requests: self.ok,
            ttft_ms: Stats::from_samples(&mut self.ttft),
            tpot_ms: Stats::from_samples(&mut self.tpot),
            e2e_latency_ms: Stats::from_samples(&mut self.e2e),
            request_throughput_req_per_s: r4(self.ended as f64 / len),
            output_token_throughput_tok_per_s: r4(self.tokens / len),
            mean_in_flight: r4(self.busy_s / len),
            in_flight_start: s,
            in_flight_end: e,
            growing: e >= s + 2 && e as f64 > 1.5 * s as f64,
        })
    }
}
