//! The open-loop runner: sends every request at its due time, whatever earlier requests are
//! doing, and hands each finished request back to its workload (for follow-up turns) and to the
//! collector (for results).
//!
//! One scheduler task owns the workload and a min-heap of pending requests. It sleeps until the
//! earliest absolute due time (`sleep_until`, so lateness never accumulates), then spawns one
//! task per due request. The request task stamps its own send time, so the recorded send lag
//! (send − due) includes everything between the due time and the request leaving: timer
//! wake-up, scheduling and body serialisation. Finished requests come back over a channel;
//! records go on to the collector over another, so writing results never blocks sending.

use super::Workload;
use crate::client::Client;
use crate::record::{Completed, RequestRecord, RequestSpec};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the runner observed, beside the records themselves.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RunStats {
    /// Requests sent.
    pub sent: u64,
    /// Requests that came back (successfully or not).
    pub finished: u64,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
    /// Seconds from the run's start until the last request finished.
    pub elapsed_s: f64,
    /// True if the run was cancelled (Ctrl-C) before it finished.
    pub cancelled: bool,
    /// Requests that were scheduled but never sent because the run was cancelled.
    pub not_sent: u64,
}

struct Pending(RequestSpec);

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    // Reversed so that `BinaryHeap` (a max-heap) pops the earliest due time first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .due_s
            .total_cmp(&self.0.due_s)
            .then_with(|| other.0.id.cmp(&self.0.id))
    }
}

/// How often the runner logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Run a workload to completion (or cancellation). Every finished request's record is sent on
/// `records`; the returned stats summarise the schedule. `epoch` is the run's time zero.
pub async fn run(
    workload: &mut dyn Workload,
    client: &Client,
    epoch: Instant,
    cancel: &CancellationToken,
    records: mpsc::UnboundedSender<RequestRecord>,
) -> RunStats {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Completed>();
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let mut lookahead: Option<RequestSpec> = workload.next_scheduled();
    let mut in_flight = 0usize;
    let mut stats = RunStats::default();
    let mut next_progress = Instant::now() + PROGRESS_EVERY;
    let mut failed = 0u64;
    loop {
        let next_due = match (&lookahead, heap.peek()) {
            (Some(a), Some(b)) => Some(a.due_s.min(b.0.due_s)),
            (Some(a), None) => Some(a.due_s),
            (None, Some(b)) => Some(b.0.due_s),
            (None, None) => None,
        };
        if next_due.is_none() && in_flight == 0 {
            break;
        }
        // At the in-flight cap only a completion can make progress.
        let can_send = workload.max_in_flight().is_none_or(|cap| in_flight < cap);
        let wake = next_due
            .map(|d| epoch + Duration::from_secs_f64(d.max(0.0)))
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            biased;
            _ = cancel.cancelled(), if !stats.cancelled => {
                stats.cancelled = true;
                stats.not_sent += heap.len() as u64 + u64::from(lookahead.is_some());
                heap.clear();
                lookahead = None;
            }
            _ = tokio::time::sleep_until(wake), if next_due.is_some() && can_send => {
                let now_s = epoch.elapsed().as_secs_f64();
                loop {
                    let take_lookahead = match (&lookahead, heap.peek()) {
                        (Some(a), Some(b)) => a.due_s <= b.0.due_s,
                        (Some(_), None) => true,
                        (None, Some(_)) => false,
                        (None, None) => break,
                    };
                    let due = if take_lookahead {
                        lookahead.as_ref().map(|s| s.due_s)
                    } else {
                        heap.peek().map(|p| p.0.due_s)
                    };
                    if due.is_some_and(|d| d > now_s) {
                        break;
                    }
                    if workload.max_in_flight().is_some_and(|cap| in_flight >= cap) {
                        break;
                    }
                    let spec = if take_lookahead {
                        let s = lookahead.take();
                        lookahead = workload.next_scheduled();
                        s
                    } else {
                        heap.pop().map(|p| p.0)
                    };
                    let Some(spec) = spec else { break };
                    let client = client.clone();
                    let tx = done_tx.clone();
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        let done = client.send(&spec, epoch, &cancel).await;
                        let _ = tx.send(done);
                    });
                    in_flight += 1;
                    stats.sent += 1;
                    stats.max_in_flight = stats.max_in_flight.max(in_flight);
                }
            }
            Some(done) = done_rx.recv() => {
                in_flight -= 1;
                stats.finished += 1;
                if !done.record.ok() {
                    failed += 1;
                }
                if !stats.cancelled {
                    let now_s = epoch.elapsed().as_secs_f64();
                    for s in workload.on_complete(&done, now_s) {
                        heap.push(Pending(s));
                    }
                    if lookahead.is_none() {
                        lookahead = workload.next_scheduled();
                    }
                }
                let _ = records.send(done.record);
            }
        }
        if Instant::now() >= next_progress {
            next_progress += PROGRESS_EVERY;
            tracing::info!(
                "t={:.0}s sent={} finished={} in_flight={} failed={}",
                epoch.elapsed().as_secs_f64(),
                stats.sent,
                stats.finished,
                in_flight,
                failed
            );
        }
    }
    stats.elapsed_s = epoch.elapsed().as_secs_f64();
    stats
}
