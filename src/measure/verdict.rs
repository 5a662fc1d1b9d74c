//! The measurement verdict of a point (`results.measurement`): whether the load generator
//! itself was healthy enough for the point's figures to mean what their names say, and if
//! not, why and what to change. It judges lmbench, not the server: a slow server gives slow
//! but valid figures; a load generator that sent late, could not get a CPU, ran out of CPU or
//! descriptors, or did not offer the schedule's load gives figures of some other load.
//!
//! Each check is one rule with its numbers recorded, so that a reader (or the report) can see
//! how close a valid point came to a limit:
//! - **send lag**: p99 of `sent − due` within the budget (`--send-lag-budget-ms`, default
//!   [`SEND_LAG_BUDGET_MS`]);
//! - **CPU wait**: the runner's threads waited for a CPU (ready to run, not running) less than
//!   [`CPU_WAIT_LIMIT`] of their time — the cause of send lag on a crowded machine, reported
//!   even when the lag itself stayed small;
//! - **CPU use**: lmbench's process used less than [`CPU_USE_LIMIT`] of the machine's cores
//!   (above it the load generator is the bottleneck, whatever the server does);
//! - **shortfall**: the achieved rate is at least 95 % of the rate the schedule intended;
//!   neither this nor the send lag applies to a run that filled its concurrency cap, where
//!   requests wait for a free slot by design (a closed loop);
//! - **unsent**: every scheduled request was sent (an interrupted point is partial);
//! - **open files**: the most requests in flight fit the open-file limit with lmbench's own
//!   reserve.

use serde::Serialize;

use super::{round_dp, Summary};

/// Default budget for the p99 send lag, in ms.
pub const SEND_LAG_BUDGET_MS: f64 = 10.0;

/// Largest share of their time the runner's threads may wait for a CPU.
pub const CPU_WAIT_LIMIT: f64 = 0.05;

/// Largest share of the machine's cores lmbench's process may use.
pub const CPU_USE_LIMIT: f64 = 0.9;

/// What the load generator observed about itself during the point, beside its records.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// The p99 send-lag budget in ms.
    pub send_lag_budget_ms: f64,
    /// CPU time lmbench's process used during the point, in seconds.
    pub process_cpu_s: Option<f64>,
    /// The point's wall time, in seconds.
    pub wall_s: f64,
    /// CPUs this process may use.
    pub cores: usize,
    /// The soft open-file limit.
    pub open_files_limit: Option<u64>,
    /// Share of their time the runner's threads waited for a CPU, where known.
    pub cpu_wait_share: Option<f64>,
    /// Scheduled requests never sent (the run was cancelled).
    pub not_sent: u64,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// The workload's cap on requests in flight (MAX_CONCURRENCY), if any.
    pub concurrency_cap: Option<usize>,
}

/// `results.measurement`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Measurement {
    /// No reason below.
    pub valid: bool,
    /// Why the point's figures are not what their names say, each with what to change.
    pub reasons: Vec<Reason>,
    /// The numbers each rule looked at.
    pub checks: Checks,
}

/// One failed check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Reason {
    /// `send_lag`, `cpu_wait`, `cpu_use`, `shortfall`, `unsent` or `open_files`.
    pub check: &'static str,
    /// What was measured against what limit.
    pub detail: String,
    /// What to change.
    pub advice: String,
}

/// The figures behind the verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Checks {
    pub send_lag_p99_ms: Option<f64>,
    pub send_lag_max_ms: Option<f64>,
    pub send_lag_budget_ms: f64,
    /// Share of their time the runner's threads waited for a CPU; `null` where the kernel
    /// does not say.
    pub cpu_wait_share: Option<f64>,
    pub cpu_wait_limit: f64,
    /// lmbench's process CPU time over wall time and cores.
    pub cpu_use_share: Option<f64>,
    pub cpu_use_limit: f64,
    pub process_cpu_s: Option<f64>,
    pub cores: usize,
    /// Achieved over scheduled rate.
    pub achieved_over_scheduled: Option<f64>,
    pub not_sent: u64,
    pub max_in_flight: usize,
    pub open_files_limit: Option<u64>,
    /// The workload's cap on requests in flight, and whether the run reached it: a request
    /// due while the cap is full waits for a slot by design, so its send lag and the rate it
    /// leaves short of the schedule are the closed loop's, not lateness of lmbench's, and the
    /// `send_lag` and `shortfall` checks are not applied.
    pub concurrency_cap: Option<usize>,
    pub capped: bool,
}

/// The verdict on one point.
pub fn judge(summary: &Summary, health: &Health) -> Measurement {
    let budget = health.send_lag_budget_ms;
    let cpu_wait_share = health.cpu_wait_share;
    let cpu_use_share = health
        .process_cpu_s
        .filter(|_| health.wall_s > 0.0 && health.cores > 0)
        .map(|cpu| cpu / (health.wall_s * health.cores as f64));
    let capped = health
        .concurrency_cap
        .is_some_and(|c| health.max_in_flight >= c);
    let ratio = match (summary.achieved_qps, summary.scheduled_qps) {
        (Some(a), Some(s)) if s > 0.0 => Some(a / s),
        _ => None,
    };
    let checks = Checks {
        send_lag_p99_ms: summary.send_lag_ms.p99.map(|x| round_dp(x, 3)),
        send_lag_max_ms: summary.send_lag_ms.max.map(|x| round_dp(x, 3)),
        send_lag_budget_ms: budget,
        cpu_wait_share: cpu_wait_share.map(|x| round_dp(x, 4)),
        cpu_wait_limit: CPU_WAIT_LIMIT,
        cpu_use_share: cpu_use_share.map(|x| round_dp(x, 4)),
        cpu_use_limit: CPU_USE_LIMIT,
        process_cpu_s: health.process_cpu_s.map(|x| round_dp(x, 3)),
        cores: health.cores,
        achieved_over_scheduled: ratio.map(|x| round_dp(x, 4)),
        not_sent: health.not_sent,
        max_in_flight: health.max_in_flight,
        open_files_limit: health.open_files_limit,
        concurrency_cap: health.concurrency_cap,
        capped,
    };
    let mut reasons = Vec::new();
    let mut fail = |check, detail: String, advice: &str| {
        reasons.push(Reason {
            check,
            detail,
            advice: advice.to_string(),
        });
    };
    const MORE_CPU: &str = "give lmbench CPUs of its own (run the engine on other cores or \
                            another machine), or lower the rate";
    if let Some(p99) = summary.send_lag_ms.p99.filter(|p| *p > budget && !capped) {
        fail(
            "send_lag",
            format!(
                "p99 send lag {p99:.2} ms (max {:.2} ms) is over the {budget} ms budget: \
                 requests left later than the schedule said",
                summary.send_lag_ms.max.unwrap_or(p99)
            ),
            &format!("{MORE_CPU}; or raise --send-lag-budget-ms if such a lag does not matter at these latencies"),
        );
    }
    if let Some(w) = cpu_wait_share.filter(|w| *w > CPU_WAIT_LIMIT) {
        fail(
            "cpu_wait",
            format!(
                "lmbench's runner threads waited for a CPU {:.1}% of their time (limit {:.0}%): \
                 the machine was short of CPU",
                w * 100.0,
                CPU_WAIT_LIMIT * 100.0
            ),
            MORE_CPU,
        );
    }
    if let Some(u) = cpu_use_share.filter(|u| *u > CPU_USE_LIMIT) {
        fail(
            "cpu_use",
            format!(
                "lmbench used {:.2} of {} cores ({:.0}%, limit {:.0}%): the load generator was \
                 the bottleneck",
                u * health.cores as f64,
                health.cores,
                u * 100.0,
                CPU_USE_LIMIT * 100.0
            ),
            "lower the rate or the streams, or run lmbench on a machine with more cores",
        );
    }
    if summary.qps_shortfall && !capped {
        if let (Some(r), Some(a), Some(s)) = (ratio, summary.achieved_qps, summary.scheduled_qps) {
            let cause = if summary.send_lag_ms.p99.is_some_and(|p| p > budget) {
                "lmbench sent late"
            } else {
                "answers came after the slots of the turns that waited for them"
            };
            fail(
                "shortfall",
                format!(
                    "achieved {a:.3} req/s, {:.1}% of the {s:.3} req/s the schedule intended \
                     ({cause}): the point did not offer its nominal load",
                    r * 100.0
                ),
                "compare it as the achieved rate, not the nominal one; a server past its \
                 capacity at this rate shows here",
            );
        }
    }
    if health.not_sent > 0 {
        fail(
            "unsent",
            format!(
                "{} scheduled request(s) were never sent (the run was interrupted)",
                health.not_sent
            ),
            "run the point again (lmbench run --resume runs only what is missing)",
        );
    }
    if let Some(limit) = health.open_files_limit {
        let need = health.max_in_flight as u64 + crate::limits::RESERVED_FILES;
        if need > limit {
            fail(
                "open_files",
                format!(
                    "{} requests were in flight at once; with {} descriptors kept for \
                     lmbench itself that is over the open-file limit of {limit}",
                    health.max_in_flight,
                    crate::limits::RESERVED_FILES
                ),
                "raise the open-file limit (ulimit -n) or lower the concurrency",
            );
        }
    }
    Measurement {
        valid: reasons.is_empty(),
        reasons,
        checks,
    }
}

impl Measurement {
    /// One line for the end-of-suite summary: the checks that failed.
    pub fn summary_line(&self) -> Option<String> {
        (!self.valid).then(|| {
            let which: Vec<&str> = self.reasons.iter().map(|r| r.check).collect();
            format!("INVALID measurement ({})", which.join(", "))
        })
    }
}
