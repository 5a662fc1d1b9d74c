//! Service-level agreements: the limits a workload item's `SLA` key sets, the verdict of a
//! point against them, and the watch that stops a point early once it clearly cannot meet them.
//!
//! An SLA is a set of limits on the latency statistics a result already reports (TTFT, TPOT,
//! per-chunk ITL, E2E latency; mean, p50, p90 or p99, in ms) and on the share of requests that
//! failed. A point meets it when every limit holds over its measured requests (warmup
//! excluded), with latencies counted from the send time as in the result's `ttft_ms` etc.
//! [`Sla::judge`] reads the result's `results` object, so a verdict can be made again from
//! any result file.
//!
//! [`Watch`] sees each record as it is collected. A probe of an SLA search that is clearly over
//! capacity need not run to its end: once most of the latest [`WATCH_WINDOW`] measured requests
//! miss a percentile limit (a queue that has built up shows as every new request missing the
//! TTFT limit), or fail, the point is stopped and says why. A server so far behind that few
//! requests finish at all is caught by [`Watch::tick`], from the counts of requests sent and
//! finished each second: over [`BACKLOG_WINDOW_S`] it finished at most half of what was sent
//! and what is in flight grew by at least a quarter of it (a backlog that only grows breaks
//! any latency limit).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::config::{Checked, Invalid, Item, O};
use crate::record::{ErrorKind, RequestRecord};

/// The latest measured requests [`Watch`] looks at.
pub const WATCH_WINDOW: usize = 20;

/// Seconds of sent/finished counts [`Watch::tick`] looks at.
pub const BACKLOG_WINDOW_S: f64 = 5.0;

/// Fewest requests sent over the backlog window for it to judge.
const BACKLOG_MIN_SENT: u64 = 10;

/// A latency metric of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `ttft_ms`: first content chunk − sent.
    Ttft,
    /// `tpot_ms`: (end − first token) / (tokens − 1).
    Tpot,
    /// `inter_token_latency_ms`: gaps between content chunks (not watched per request).
    Itl,
    /// `e2e_latency_ms`: end − sent.
    E2el,
}

impl Metric {
    const ALL: [(Metric, &'static str, &'static str); 4] = [
        (Metric::Ttft, "ttft", "ttft_ms"),
        (Metric::Tpot, "tpot", "tpot_ms"),
        (Metric::Itl, "itl", "inter_token_latency_ms"),
        (Metric::E2el, "e2el", "e2e_latency_ms"),
    ];

    fn name(self) -> &'static str {
        Metric::ALL.iter().find(|m| m.0 == self).map_or("", |m| m.1)
    }

    /// The key of its statistics in a result's `results`.
    fn result_key(self) -> &'static str {
        Metric::ALL.iter().find(|m| m.0 == self).map_or("", |m| m.2)
    }

    /// This request's value in ms, where it has one (successful requests only).
    fn of(self, r: &RequestRecord) -> Option<f64> {
        let first = r.first_token_s?;
        match self {
            Metric::Ttft => Some((first - r.sent_s) * 1000.0),
            Metric::E2el => Some((r.end_s - r.sent_s) * 1000.0),
            Metric::Tpot => {
                let n = r.completion_tokens.unwrap_or(r.client_completion_tokens);
                (n >= 2).then(|| (r.end_s - first) * 1000.0 / (n - 1) as f64)
            }
            Metric::Itl => None,
        }
    }
}

/// A statistic of a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// The mean.
    Mean,
    /// A percentile (50, 90 or 99).
    Percentile(f64),
}

impl Stat {
    const ALL: [(&'static str, &'static str, Stat); 4] = [
        ("mean", "mean", Stat::Mean),
        ("p50", "median", Stat::Percentile(50.0)),
        ("p90", "p90", Stat::Percentile(90.0)),
        ("p99", "p99", Stat::Percentile(99.0)),
    ];

    fn name(self) -> &'static str {
        Stat::ALL.iter().find(|s| s.2 == self).map_or("", |s| s.0)
    }

    fn result_key(self) -> &'static str {
        Stat::ALL.iter().find(|s| s.2 == self).map_or("", |s| s.1)
    }
}

/// One latency limit: `<metric>_<stat>_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// The metric.
    pub metric: Metric,
    /// Its statistic.
    pub stat: Stat,
    /// The largest value that meets the SLA, ms.
    pub ms: f64,
}

impl Limit {
    /// Its key in `SLA` (`ttft_p99_ms`).
    pub fn name(&self) -> String {
        format!("{}_{}_ms", self.metric.name(), self.stat.name())
    }
}

/// The key of the error-rate limit.
const MAX_ERROR_RATE: &str = "max_error_rate";

/// A workload item's `SLA`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sla {
    /// Latency limits, in the order written.
    pub limits: Vec<Limit>,
    /// Largest share of failed measured requests (0–1).
    pub max_error_rate: Option<f64>,
}

/// One limit, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The `SLA` key.
    pub name: String,
    /// The limit.
    pub limit: f64,
    /// The point's value; `null` when it has none (no successful request, or no request long
    /// enough to have a TPOT), which does not meet the limit.
    pub value: Option<f64>,
    /// Whether the value meets the limit.
    pub pass: bool,
}

impl Check {
    /// How close the value is to its limit (1 = at the limit); a missing value counts as far
    /// over.
    fn load(&self) -> f64 {
        match self.value {
            None => f64::INFINITY,
            Some(v) if self.limit > 0.0 => v / self.limit,
            Some(v) if v > 0.0 => f64::INFINITY,
            Some(_) => 0.0,
        }
    }
}

/// A point judged against an SLA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Every limit holds (and the point was not stopped early).
    pub pass: bool,
    /// Each limit, in the order written (`max_error_rate` last).
    pub checks: Vec<Check>,
    /// The limit closest to (or furthest over) its bound: the one that decides.
    pub binding: Option<String>,
    /// Why the point was stopped before its end, if it was: it does not meet the SLA.
    pub stopped_early: Option<String>,
}

impl Sla {
    /// Checks an `SLA` map: keys `<metric>_<stat>_ms` (metric `ttft`, `tpot`, `itl`, `e2el`;
    /// stat `mean`, `p50`, `p90`, `p99`) with a positive number of ms, and `max_error_rate` in
    /// [0, 1]; at least one. Every problem is reported into `c`.
    pub fn check(
        v: &O<Map<String, Value>>,
        key: &str,
        c: &mut Item<'_, '_>,
    ) -> Checked<Option<Sla>> {
        let Some(s) = v.as_ref() else { return Ok(None) };
        let mut sla = Sla::default();
        let mut ok = true;
        for (name, value) in &s.value {
            let x = value.as_f64().filter(|x| x.is_finite());
            if name == MAX_ERROR_RATE {
                match x.filter(|x| (0.0..=1.0).contains(x)) {
                    Some(x) => sla.max_error_rate = Some(x),
                    None => {
                        c.push(
                            Some(&s.referenced),
                            &format!("{key}.{name}"),
                            format!("expected a share of failed requests from 0 to 1, got {value}"),
                        );
                        ok = false;
                    }
                }
                continue;
            }
            let Some(limit) = parse_limit(name) else {
                c.push(
                    Some(&s.referenced),
                    &format!("{key}.{name}"),
                    format!(
                        "unknown limit; expected <metric>_<stat>_ms with metric ttft, tpot, itl \
                         or e2el and stat mean, p50, p90 or p99 (e.g. ttft_p99_ms), or {MAX_ERROR_RATE}"
                    ),
                );
                ok = false;
                continue;
            };
            match x.filter(|x| *x > 0.0) {
                Some(ms) => sla.limits.push(Limit { ms, ..limit }),
                None => {
                    c.push(
                        Some(&s.referenced),
                        &format!("{key}.{name}"),
                        format!("expected a positive number of milliseconds, got {value}"),
                    );
                    ok = false;
                }
            }
        }
        if ok && sla.limits.is_empty() && sla.max_error_rate.is_none() {
            c.push(
                Some(&s.referenced),
                key,
                "expected at least one limit (e.g. ttft_p99_ms: 500)",
            );
            ok = false;
        }
        if ok {
            Ok(Some(sla))
        } else {
            Err(Invalid)
        }
    }

    /// The SLA as written.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for l in &self.limits {
            m.insert(l.name(), json!(l.ms));
        }
        if let Some(e) = self.max_error_rate {
            m.insert(MAX_ERROR_RATE.into(), json!(e));
        }
        Value::Object(m)
    }

    /// Judges a point from its result's `results` object; `stopped`: why it was stopped before
    /// its end, if it was (it then does not meet the SLA, whatever its figures say, and the
    /// limit that stopped it is the binding one).
    pub fn judge(&self, results: &Map<String, Value>, stopped: Option<&Stop>) -> Verdict {
        let mut checks: Vec<Check> = self
            .limits
            .iter()
            .map(|l| {
                let value = results
                    .get(l.metric.result_key())
                    .and_then(|s| s.get(l.stat.result_key()))
                    .and_then(Value::as_f64);
                Check {
                    name: l.name(),
                    limit: l.ms,
                    value,
                    pass: value.is_some_and(|v| v <= l.ms),
                }
            })
            .collect();
        if let Some(max) = self.max_error_rate {
            let n = |k: &str| results.get(k).and_then(Value::as_u64);
            // Requests lmbench itself cancelled (a stopped probe's in-flight requests) are not
            // the server's failures.
            let cancelled = results
                .get("failures_by_cause")
                .and_then(|c| c.get(ErrorKind::Cancelled.as_str()))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let value = match (n("failed_requests"), n("total_requests")) {
                (Some(f), Some(t)) if t > cancelled => {
                    Some(f.saturating_sub(cancelled) as f64 / (t - cancelled) as f64)
                }
                _ => None,
            };
            checks.push(Check {
                name: MAX_ERROR_RATE.into(),
                limit: max,
                value,
                pass: value.is_some_and(|v| v <= max),
            });
        }
        let binding = match stopped {
            Some(s) => Some(s.limit.clone()),
            None => checks
                .iter()
                .max_by(|a, b| a.load().total_cmp(&b.load()))
                .map(|c| c.name.clone()),
        };
        Verdict {
            pass: stopped.is_none() && checks.iter().all(|c| c.pass),
            checks,
            binding,
            stopped_early: stopped.map(|s| s.why.clone()),
        }
    }
}

/// Parses `<metric>_<stat>_ms`.
fn parse_limit(name: &str) -> Option<Limit> {
    let rest = name.strip_suffix("_ms")?;
    let (metric, stat) = rest.split_once('_')?;
    let metric = Metric::ALL.iter().find(|m| m.1 == metric)?.0;
    let stat = Stat::ALL.iter().find(|s| s.0 == stat)?.2;
    Some(Limit {
        metric,
        stat,
        ms: 0.0,
    })
}

/// Why a [`Watch`] stopped a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// The `SLA` key it clearly cannot meet.
    pub limit: String,
    /// What was seen.
    pub why: String,
}

/// Stops a point early once it clearly cannot meet an SLA (see the module's header).
#[derive(Debug)]
pub struct Watch {
    sla: Sla,
    /// Per latest measured request: whether it failed, and its value of each limit's metric.
    recent: VecDeque<(bool, Vec<Option<f64>>)>,
    /// `(seconds, sent, finished)` samples of the last [`BACKLOG_WINDOW_S`] and a bit.
    counts: VecDeque<(f64, u64, u64)>,
}

impl Watch {
    /// A watch for `sla`.
    pub fn new(sla: Sla) -> Watch {
        Watch {
            sla,
            recent: VecDeque::with_capacity(WATCH_WINDOW + 1),
            counts: VecDeque::new(),
        }
    }

    /// Takes in the counts of requests sent and finished so far, `now_s` seconds into the
    /// point (about once a second); `Some` once a backlog has clearly built up. Only an SLA with
    /// a latency limit is judged this way (a backlog breaks latencies, not the error rate).
    pub fn tick(&mut self, now_s: f64, sent: u64, finished: u64) -> Option<Stop> {
        let limit = self
            .sla
            .limits
            .iter()
            .find(|l| l.metric == Metric::Ttft)
            .or(self.sla.limits.first())?
            .name();
        self.counts.push_back((now_s, sent, finished));
        while self
            .counts
            .get(1)
            .is_some_and(|(t, _, _)| now_s - t >= BACKLOG_WINDOW_S)
        {
            self.counts.pop_front();
        }
        let &(t0, sent0, finished0) = self.counts.front()?;
        if now_s - t0 < BACKLOG_WINDOW_S {
            return None;
        }
        let sent_in = sent.saturating_sub(sent0);
        let finished_in = finished.saturating_sub(finished0);
        let (before, now) = (
            sent0.saturating_sub(finished0),
            sent.saturating_sub(finished),
        );
        let over = sent_in >= BACKLOG_MIN_SENT
            && 2 * finished_in <= sent_in
            && 4 * now.saturating_sub(before) >= sent_in;
        over.then(|| Stop {
            limit,
            why: format!(
                "in the last {:.0} s the server finished {finished_in} requests while \
                 {sent_in} were sent; {now} in flight, up from {before}: over capacity",
                now_s - t0
            ),
        })
    }

    /// Takes in a finished request; `Some` once the point clearly cannot meet the SLA.
    pub fn add(&mut self, r: &RequestRecord) -> Option<Stop> {
        if r.warmup {
            return None;
        }
        let ok = r.ok();
        let values = self
            .sla
            .limits
            .iter()
            .map(|l| ok.then(|| l.metric.of(r)).flatten())
            .collect();
        self.recent.push_back((!ok, values));
        if self.recent.len() > WATCH_WINDOW {
            self.recent.pop_front();
        }
        if self.recent.len() < WATCH_WINDOW {
            return None;
        }
        let n = self.recent.len();
        for (i, l) in self.sla.limits.iter().enumerate() {
            let values: Vec<f64> = self.recent.iter().filter_map(|(_, v)| v[i]).collect();
            match l.stat {
                Stat::Percentile(p) => {
                    let over = values.iter().filter(|v| **v > l.ms).count();
                    // Midway between what the limit allows and every request.
                    let stop_at = (n as f64 * ((1.0 - p / 100.0) + 1.0) / 2.0).ceil() as usize;
                    if over >= stop_at {
                        return Some(Stop {
                            limit: l.name(),
                            why: format!(
                                "{over} of the latest {n} requests had {} over {} ms: over \
                                 capacity for this SLA",
                                l.metric.name().to_uppercase(),
                                l.ms
                            ),
                        });
                    }
                }
                Stat::Mean if !values.is_empty() => {
                    let mean = values.iter().sum::<f64>() / values.len() as f64;
                    if mean > 2.0 * l.ms {
                        return Some(Stop {
                            limit: l.name(),
                            why: format!(
                                "the latest {n} requests had a mean {} of {mean:.1} ms, over \
                                 twice the limit of {} ms",
                                l.metric.name().to_uppercase(),
                                l.ms
                            ),
                        });
                    }
                }
                Stat::Mean => {}
            }
        }
        if let Some(max) = self.sla.max_error_rate {
            let failed = self.recent.iter().filter(|(f, _)| *f).count();
            let stop_at = (n as f64 * (max + 1.0) / 2.0).ceil().max(1.0) as usize;
            if failed >= stop_at {
                return Some(Stop {
                    limit: MAX_ERROR_RATE.into(),
                    why: format!(
                        "{failed} of the latest {n} requests failed (the SLA allows a share of \
                         {max})"
                    ),
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests;
