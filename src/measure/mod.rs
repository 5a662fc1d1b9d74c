//! Request records → run summary.
//!
//! The runner feeds every [`RequestRecord`] to an [`Aggregator`] as it arrives; at the end
//! [`Aggregator::finish`] produces the [`Summary`] that `results` writes. The aggregator keeps
//! one `f64` per request per latency metric (exact percentiles), an HDR histogram for the
//! pooled per-chunk gaps, and counters, so a run of a million requests costs a few tens of
//! megabytes and never holds the records themselves.
//!
//! Warmup records are counted and otherwise ignored. Latency and token metrics use successful
//! requests only; failures are counted by cause; send lag and the achieved rate use every
//! non-warmup request, since a failed request was still sent.

pub mod repeats;
pub mod sla;
mod stats;
pub mod steady;
mod summary;
pub mod verdict;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use stats::{percentile, round_dp, ChunkItlStats, GapHistogram, Stats};
pub use summary::{
    CountSource, LmbenchMetrics, LmbenchResults, Summary, TokenComparison, TokenDisagreement,
    TokenSource, NO_SUCCESS_ERROR,
};

use crate::record::{ApiType, ErrorKind, RequestRecord};

/// What the summary needs to know about the run beyond its records.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SummaryContext {
    /// The configured request rate, if the workload has one (not a timed trace replay).
    pub target_qps: Option<f64>,
    /// The configured send window in seconds, if any.
    pub run_duration_s: Option<f64>,
    /// The endpoint the requests went to: on the chat API the client counts message contents
    /// only, which the server's count (chat template included) cannot be compared with.
    pub api: ApiType,
    /// A closed loop that filled its cap on requests in flight (`MAX_CONCURRENCY`): its
    /// requests waited for a free slot by design, so their send lag and a rate short of the
    /// schedule are the loop's, not lateness, and are not warned about (the measurement
    /// verdict skips them too).
    pub capped: bool,
}

/// Achieved rate below this fraction of the rate of the requests' slots (what the workload's
/// schedule intended) sets [`Summary::qps_shortfall`].
pub const QPS_SHORTFALL_RATIO: f64 = 0.95;

/// A p99 send lag above this many ms adds a warning: the client did not send on schedule.
const SEND_LAG_WARN_MS: f64 = 100.0;

/// What the client's prompt count covers on the completions API: the same text the server
/// tokenizes, so the two counts differ only by tokenizer.
const PROMPT_RENDERED: &str = "the rendered prompt (role labels included)";
/// On the chat API: the message contents only; the server's count adds its chat template.
const PROMPT_CONTENTS: &str = "message contents only; the server's count adds its chat template";
/// What the client's completion count is.
const COMPLETION_CLIENT: &str = "the generated text, tokenized by the client";

/// A mean client/server token-count difference above this percentage adds a warning (only
/// where the two counts cover the same text).
const TOKEN_DIFF_WARN_PCT: f64 = 5.0;

const MS: f64 = 1000.0;

#[derive(Debug, Clone, Copy, Default)]
struct Span {
    min: Option<f64>,
    max: Option<f64>,
}

impl Span {
    fn add(&mut self, x: f64) {
        if x.is_finite() {
            self.min = Some(self.min.map_or(x, |m| m.min(x)));
            self.max = Some(self.max.map_or(x, |m| m.max(x)));
        }
    }
}

#[derive(Debug, Clone, Default)]
struct TokenCmp {
    client_total: u64,
    server_total: u64,
    abs_pct_sum: f64,
    n: u64,
}

impl TokenCmp {
    fn add(&mut self, client: u64, server: u64) {
        self.client_total += client;
        self.server_total += server;
        self.abs_pct_sum += client.abs_diff(server) as f64 / server.max(1) as f64 * 100.0;
        self.n += 1;
    }

    fn finish(&self, (client_counts, comparable): (&'static str, bool)) -> TokenComparison {
        TokenComparison {
            client_counts,
            comparable,
            client_total: self.client_total,
            server_total: self.server_total,
            mean_abs_diff_pct: (self.n > 0).then(|| self.abs_pct_sum / self.n as f64),
            requests_compared: self.n,
        }
    }
}

/// The earliest-sent request of a run (warmup included): what the run found in the engine's
/// cache from before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirstSent {
    /// When it was sent (seconds since the run's start).
    pub sent_s: f64,
    /// Its prompt tokens (the server's count when reported).
    pub prompt_tokens: u64,
    /// The cached tokens the server reported for it, if it reported any.
    pub cached_tokens: Option<u64>,
}

/// Streaming accumulator of request records; see the module docs for what it keeps.
#[derive(Debug, Clone, Default)]
pub struct Aggregator {
    warmup: u64,
    total: u64,
    successful: u64,
    failures: BTreeMap<ErrorKind, u64>,

    ok_sent: Span,
    ok_end: Span,
    all_sent: Span,
    all_slot: Span,

    input_tokens: u64,
    generated_tokens: u64,
    server_prompt_counts: u64,
    server_completion_counts: u64,
    prompt_cmp: TokenCmp,
    completion_cmp: TokenCmp,
    cached_tokens: u64,
    cached_prompt_tokens: u64,
    cached_reports: u64,

    ttft: Vec<f64>,
    tpot: Vec<f64>,
    itl_lmbench: Vec<f64>,
    e2e: Vec<f64>,
    ttft_due: Vec<f64>,
    e2e_due: Vec<f64>,
    ttft_slot: Vec<f64>,
    e2e_slot: Vec<f64>,
    send_lag: Vec<f64>,
    gaps: GapHistogram,
    first_sent: Option<FirstSent>,
    conns: Connections,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one record (any order).
    pub fn add(&mut self, rec: &RequestRecord) {
        if rec.ok() && self.first_sent.is_none_or(|f| rec.sent_s < f.sent_s) {
            self.first_sent = Some(FirstSent {
                sent_s: rec.sent_s,
                prompt_tokens: rec.prompt_tokens_best(),
                cached_tokens: rec.cached_tokens,
            });
        }
        if rec.warmup {
            self.warmup += 1;
            return;
        }
        self.total += 1;
        self.all_sent.add(rec.sent_s);
        self.all_slot.add(rec.slot());
        self.send_lag.push((rec.sent_s - rec.due_s) * MS);

        self.conns.add(rec);
        if let Some(err) = &rec.error {
            *self.failures.entry(err.kind).or_default() += 1;
            return;
        }
        self.successful += 1;
        self.ok_sent.add(rec.sent_s);
        self.ok_end.add(rec.end_s);

        let prompt = rec.prompt_tokens_best();
        let completion = rec.completion_tokens_best();
        self.input_tokens += prompt;
        self.generated_tokens += completion;
        if let Some(server) = rec.prompt_tokens {
            self.server_prompt_counts += 1;
            self.prompt_cmp.add(rec.client_prompt_tokens, server);
        }
        if let Some(server) = rec.completion_tokens {
            self.server_completion_counts += 1;
            self.completion_cmp
                .add(rec.client_completion_tokens, server);
        }
        if let Some(cached) = rec.cached_tokens {
            self.cached_tokens += cached;
            self.cached_prompt_tokens += prompt;
            self.cached_reports += 1;
        }

        self.e2e.push((rec.end_s - rec.sent_s) * MS);
        self.e2e_due.push((rec.end_s - rec.due_s) * MS);
        self.e2e_slot.push((rec.end_s - rec.slot()) * MS);
        if let Some(first) = rec.first_token_s {
            self.ttft.push((first - rec.sent_s) * MS);
            self.ttft_due.push((first - rec.due_s) * MS);
            self.ttft_slot.push((first - rec.slot()) * MS);
            if completion >= 2 {
                let per_token = (rec.end_s - first) / (completion - 1) as f64;
                self.tpot.push(per_token.max(0.0) * MS);
            }
        }
        if completion >= 1 {
            self.itl_lmbench
                .push((rec.end_s - rec.sent_s) / completion as f64 * MS);
        }
        for pair in rec.chunk_times_s.windows(2) {
            self.gaps.record_ms((pair[1] - pair[0]) * MS);
        }
    }

    /// Non-warmup records added so far.
    pub fn total_requests(&self) -> u64 {
        self.total
    }

    /// The first and last send times of the non-warmup requests.
    pub fn sent_span(&self) -> Option<(f64, f64)> {
        self.all_sent.min.zip(self.all_sent.max)
    }

    /// The earliest-sent successful request so far, warmup included.
    pub fn first_sent(&self) -> Option<FirstSent> {
        self.first_sent
    }

    /// Successful non-warmup records added so far.
    pub fn successful_requests(&self) -> u64 {
        self.successful
    }

    /// The summary.
    pub fn finish(mut self, ctx: &SummaryContext) -> Summary {
        let failed = self.total - self.successful;
        let failures_by_cause: BTreeMap<String, u64> = self
            .failures
            .iter()
            .map(|(k, n)| (k.as_str().to_string(), *n))
            .collect();
        let configured = ctx.run_duration_s.filter(|d| d.is_finite() && *d > 0.0);
        let target = ctx.target_qps.filter(|q| q.is_finite() && *q > 0.0);

        let lmbench = if self.successful == 0 {
            LmbenchResults::Error {
                error: NO_SUCCESS_ERROR.to_string(),
                message: failure_message(self.total, &failures_by_cause),
            }
        } else {
            let duration = match (self.ok_sent.min, self.ok_end.max) {
                (Some(start), Some(end)) => (end - start).max(0.0),
                _ => 0.0,
            };
            let per_s = |x: f64| (duration > 0.0).then(|| x / duration);
            LmbenchResults::Metrics(Box::new(LmbenchMetrics {
                successful_requests: self.successful,
                benchmark_duration_s: duration,
                total_input_tokens: self.input_tokens,
                total_generated_tokens: self.generated_tokens,
                request_throughput_req_per_s: per_s(self.successful as f64),
                output_token_throughput_tok_per_s: per_s(self.generated_tokens as f64),
                input_token_throughput_tok_per_s: per_s(self.input_tokens as f64),
                total_token_throughput_tok_per_s: per_s(
                    (self.input_tokens + self.generated_tokens) as f64,
                ),
                ttft_ms: Stats::from_samples(&mut self.ttft),
                tpot_ms: Stats::from_samples(&mut self.tpot),
                itl_ms: Stats::from_samples(&mut self.itl_lmbench),
            }))
        };

        let send_window_s = window(self.total, self.all_sent).or(configured);
        let achieved_qps = send_window_s.map(|w| self.total as f64 / w);
        // What the workload's schedule intended: the rate of the requests' slots (their due
        // times, or for a turn held back by a late answer the time it would have been due).
        let scheduled_qps = window(self.total, self.all_slot)
            .or(configured)
            .map(|w| self.total as f64 / w);
        // One rule for every workload: the client sent slower than the schedule intended.
        // Comparing with the schedule, not the target, keeps a random schedule's own deviation
        // from its target (by chance) out of it, and catches held-back turns of multi-turn
        // workloads, which slow the sending down while their slots keep the intended rate.
        let qps_shortfall = matches!(
            (achieved_qps, scheduled_qps),
            (Some(a), Some(s)) if a / s < QPS_SHORTFALL_RATIO
        );

        let send_lag_ms = Stats::from_samples(&mut self.send_lag);
        let token_disagreement = TokenDisagreement {
            prompt: self.prompt_cmp.finish(match ctx.api {
                ApiType::Completions => (PROMPT_RENDERED, true),
                ApiType::Chat => (PROMPT_CONTENTS, false),
            }),
            completion: self.completion_cmp.finish((COMPLETION_CLIENT, true)),
        };
        let token_source = TokenSource {
            prompt: CountSource::classify(self.server_prompt_counts, self.successful),
            completion: CountSource::classify(self.server_completion_counts, self.successful),
        };

        let mut warnings = Vec::new();
        if self.total == 0 {
            warnings.push("no (non-warmup) requests were recorded".to_string());
        } else if self.successful == 0 {
            warnings.push(format!(
                "no request succeeded; LMBench's metrics are replaced by its error object ({})",
                failure_list(&failures_by_cause)
            ));
        } else if failed > 0 {
            warnings.push(format!(
                "{failed} of {} requests failed ({:.1}%): {}",
                self.total,
                failed as f64 / self.total as f64 * 100.0,
                failure_list(&failures_by_cause)
            ));
        }
        if qps_shortfall && !ctx.capped {
            if let (Some(a), Some(sched)) = (achieved_qps, scheduled_qps) {
                let target =
                    target.map_or(String::new(), |t| format!("; the target was {t} req/s"));
                warnings.push(format!(
                    "achieved {a:.3} req/s is {:.1}% of the {sched:.3} req/s the schedule intended \
                     (the rate of the requests' slots){target}",
                    a / sched * 100.0
                ));
            }
        }
        if let Some(p99) = send_lag_ms
            .p99
            .filter(|p| *p > SEND_LAG_WARN_MS && !ctx.capped)
        {
            warnings.push(format!(
                "p99 send lag is {p99:.1} ms: requests left later than scheduled; \
                 the *_from_due_ms and *_from_slot_ms figures include that delay"
            ));
        }
        for (what, source) in [
            ("prompt", token_source.prompt),
            ("completion", token_source.completion),
        ] {
            match source {
                Some(CountSource::Client) => warnings.push(format!(
                    "the server reported no usage: {what} token counts are the client's"
                )),
                Some(CountSource::Mixed) => warnings.push(format!(
                    "some responses lacked usage: {what} token counts mix server and client counts"
                )),
                _ => {}
            }
        }
        for (what, cmp) in [
            ("prompt", &token_disagreement.prompt),
            ("completion", &token_disagreement.completion),
        ] {
            if !cmp.comparable {
                continue;
            }
            if let Some(pct) = cmp.mean_abs_diff_pct.filter(|p| *p > TOKEN_DIFF_WARN_PCT) {
                warnings.push(format!(
                    "client and server {what} token counts differ by {pct:.1}% on average \
                     (client: {})",
                    cmp.client_counts
                ));
            }
        }
        warnings.extend(self.conns.warning(self.total));
        if self.gaps.clamped() > 0 {
            warnings.push(format!(
                "{} inter-chunk gaps exceeded 10 minutes; the histogram percentiles cap them",
                self.gaps.clamped()
            ));
        }

        Summary {
            lmbench,
            total_requests: self.total,
            failed_requests: failed,
            failures_by_cause,
            warmup_requests: self.warmup,
            e2e_latency_ms: Stats::from_samples(&mut self.e2e),
            inter_token_latency_ms: self.gaps.stats(),
            ttft_from_due_ms: Stats::from_samples(&mut self.ttft_due),
            e2e_from_due_ms: Stats::from_samples(&mut self.e2e_due),
            ttft_from_slot_ms: Stats::from_samples(&mut self.ttft_slot),
            e2e_from_slot_ms: Stats::from_samples(&mut self.e2e_slot),
            send_lag_ms,
            target_qps: target,
            achieved_qps,
            scheduled_qps,
            send_window_s,
            configured_duration_s: configured,
            qps_shortfall,
            token_source,
            token_disagreement,
            total_cached_tokens: (self.cached_reports > 0).then_some(self.cached_tokens),
            cache_hit_ratio: (self.cached_prompt_tokens > 0)
                .then(|| self.cached_tokens as f64 / self.cached_prompt_tokens as f64),
            new_connections: self.conns.new_connections(),
            connect_ms: self.conns.connect_ms(),
            warnings,
        }
    }
}

/// More than this share of requests waiting for a new connection adds a warning.
const NEW_CONNECTION_WARN_SHARE: f64 = 0.1;

/// Connection figures over the non-warmup requests, failed ones included (a request that waited
/// for a connection and then failed still waited). Records without connection information
/// (written before lmbench recorded it) leave the figures out of the summary altogether.
#[derive(Debug, Clone, Default)]
struct Connections {
    /// Requests whose record says whether they waited for a new connection.
    known: u64,
    /// Of those, the ones that did.
    new: u64,
    /// Their connect times, ms.
    connect: Vec<f64>,
}

impl Connections {
    fn add(&mut self, rec: &RequestRecord) {
        let Some(new) = rec.new_connection else {
            return;
        };
        self.known += 1;
        if new {
            self.new += 1;
            if let Some(ms) = rec.connect_ms.filter(|ms| ms.is_finite()) {
                self.connect.push(ms);
            }
        }
    }

    fn new_connections(&self) -> Option<u64> {
        (self.known > 0).then_some(self.new)
    }

    fn connect_ms(&mut self) -> Option<Stats> {
        (self.known > 0).then(|| Stats::from_samples(&mut self.connect))
    }

    /// Many requests paid a connection set-up inside their TTFT: the endpoint closed idle
    /// connections, or more requests were in flight than connections were warmed.
    fn warning(&self, total: u64) -> Option<String> {
        if total == 0 || (self.new as f64) <= total as f64 * NEW_CONNECTION_WARN_SHARE {
            return None;
        }
        let mut sorted = self.connect.clone();
        sorted.sort_by(f64::total_cmp);
        let p50 = (!sorted.is_empty()).then(|| percentile(&sorted, 0.5));
        Some(format!(
            "{} of {total} requests ({:.0}%) waited for a new connection{}; their TTFT includes it \
             (connect_ms): the endpoint closed idle connections, or more requests were in flight \
             than connections were open",
            self.new,
            self.new as f64 / total as f64 * 100.0,
            p50.map_or(String::new(), |p| format!(" (median set-up {p:.1} ms)"))
        ))
    }
}

/// Summarizes a complete set of records (convenience over [`Aggregator`]).
pub fn summarize<'a>(
    records: impl IntoIterator<Item = &'a RequestRecord>,
    ctx: &SummaryContext,
) -> Summary {
    let mut agg = Aggregator::new();
    for rec in records {
        agg.add(rec);
    }
    agg.finish(ctx)
}

/// The span n events occupy, as the span between the first and last scaled by n/(n−1).
///
/// Why scaled: n sends at a steady rate r are (n−1)/r apart from first to last, so dividing n
/// by the raw span overstates the rate (two requests 1 s apart would be "2 req/s"). Each send
/// stands for one inter-arrival interval, hence span·n/(n−1) = n/r and n/window = r exactly.
/// `None` for fewer than two events or a zero span.
fn window(n: u64, span: Span) -> Option<f64> {
    match (span.min, span.max) {
        (Some(first), Some(last)) if n >= 2 && last > first => {
            Some((last - first) * n as f64 / (n - 1) as f64)
        }
        _ => None,
    }
}

fn failure_list(by_cause: &BTreeMap<String, u64>) -> String {
    by_cause
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn failure_message(total: u64, by_cause: &BTreeMap<String, u64>) -> String {
    if total == 0 {
        "No requests were recorded".to_string()
    } else {
        format!("All {total} requests failed ({})", failure_list(by_cause))
    }
}
