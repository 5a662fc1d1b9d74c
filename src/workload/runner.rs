//! The open-loop runner: sends every request at its due time, whatever earlier requests are
//! doing, and hands each finished request back to its workload (for follow-up turns) and to the
//! collector (for results).
//!
//! The workload lives on the request builder's thread ([`super::builder`]), which keeps the
//! schedule's next requests built before they are due and builds the turns that wait for an
//! answer as soon as it arrives, so building a prompt never delays sending one. One scheduler
//! owns a min-heap of built requests. It sleeps until the earliest absolute due time (so
//! lateness never accumulates), then spawns one task per due request. The request task stamps
//! its own send time, so the recorded send lag (send − due) includes everything between the due
//! time and the request leaving: timer wake-up and scheduling (the builder wrote the request's
//! body ahead; a request without one has it written before the stamp). Finished
//! requests come back over a channel and go on to the builder (for follow-up turns) and to the
//! collector (for results), so writing results never blocks sending. The run's clock starts
//! once the first requests are built.
//!
//! Turns built ahead: where the workload builds a dependent turn before the answer it waits
//! for ([`super::Workload::turn_ahead`]), the builder puts it, with its body written around a
//! hole for the answer, where the request task of that answer finds it ([`TurnsAhead`]). The
//! task fills the answer in and, if the turn is already due, sends it itself at once; else it
//! hands it back with the answer and the scheduler sends it at its slot. Either way the answer
//! goes on to the builder saying so ([`Completed::follow_up`]), and the workload records the
//! turn instead of building it. A turn due from an answer is due from the instant the request
//! task stamped that answer's end (its `[DONE]`), and in open loop nothing due waits for the
//! server to end the answer's body: the task reads that end after it has sent the turn (or
//! handed the answer on), so the connection goes back to the pool a moment later and the turn
//! takes another open one.
//!
//! Request tasks run on send threads: threads of their own, each with a one-thread tokio
//! runtime that owns its requests' connections and timers (one send thread per 4 CPUs, at least
//! one; requests are dealt to them in turn). Each request is one short burst of work (write the
//! request, read the answer, parse a few chunks); on a multi-thread runtime every such burst
//! woke an idle worker thread, which in turn woke a second one to look for more work, and these
//! wake-ups cost more CPU than the requests themselves (about 60 % more per request on 2
//! cores). Records are handed to the collector (on the caller's runtime) in batches, at most
//! [`RECORD_BATCH_WAIT`] after they finish, for the same reason. If no send thread can be
//! started, request tasks are spawned on the caller's runtime.
//!
//! Connections: before the run's clock starts, each send thread opens [`WARM_CONNECTIONS`]
//! connections on its own pool (one `GET /v1/models` each, [`Client::warm_up`]), while the
//! builder builds the first requests, and the pool keeps idle connections for 90 s. So the
//! first requests, and requests seconds apart, go out on open connections instead of paying
//! a connect (on Kubernetes baselines, a new port-forward stream) inside their TTFT; a request
//! that still waits for a new connection says so in its record.
//!
//! Waiting: tokio's timer rounds every deadline up to its 1 ms tick and fires it from a worker
//! thread, which alone put 1–2 ms of send lag on every request. When the scheduler runs on a
//! thread of its own — `block_on` of a multi-thread runtime, as in `lmbench run` — it sleeps
//! the last [`PRECISE_WINDOW`] before a due time on that thread (`std::thread::sleep`,
//! microsecond precision), in slices of at most [`PRECISE_SLICE`] so that finished requests
//! are still taken in promptly. Anywhere else (inside a task, or on a current-thread runtime,
//! where blocking would stall other tasks) it waits on tokio's timer. A request that is already
//! due is sent at once, without a timer.

mod send;

pub use send::WARM_CONNECTIONS;
use send::{default_send_threads, warm_up, SendThread};

use super::builder::{self, Built, Ready, ToBuilder, TurnsAhead, AHEAD};
use super::Workload;
use crate::client::{Client, Tail};
use crate::cpu::{CpuWait, WaitMeter};
use crate::record::{Completed, RequestRecord};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::mpsc as std_mpsc;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What a request task hands back to the scheduler: the finished request and, if the turn built
/// ahead for its answer is not due yet, that turn (to wait for its slot in the heap).
struct Back {
    done: Completed,
    queued: Option<Ready>,
}

/// What a request task needs besides its request.
#[derive(Clone)]
struct TaskCtx {
    client: Client,
    back: mpsc::UnboundedSender<Back>,
    cancel: CancellationToken,
    epoch: Instant,
    ahead: Option<TurnsAhead>,
}

/// One request, sent and read to its end on the runtime it is spawned on. If the workload built
/// the turn that waits for this answer ahead ([`super::Workload::turn_ahead`]), the task fills
/// the answer in and, when the turn is already due (held back by this answer), goes on to send
/// it at once, on the same connection pool: a held-back turn leaves microseconds after its
/// answer, before the task even yields, instead of after a round trip through the scheduler
/// and the builder, each a thread to wake on a machine that may be busy. A turn not due yet
/// goes back to the scheduler, which sends it at its slot.
async fn request_task(cx: TaskCtx, mut ready: Ready) {
    loop {
        let Ready { spec, body } = ready;
        let (mut done, tail) = cx
            .client
            .send_built_open(&spec, body, cx.epoch, &cx.cancel)
            .await;
        let next = match &cx.ahead {
            Some(a) if done.record.ok() && !cx.cancel.is_cancelled() => {
                a.lock().ok().and_then(|mut a| a.remove(&spec.id))
            }
            _ => None,
        };
        let Some(next) = next else {
            hand_back(&cx, Back { done, queued: None }, tail).await;
            return;
        };
        ready = next.fill(&done);
        let arrived = done.record.end_s;
        let due = ready.spec.due_s <= arrived;
        if due {
            // Due when the answer arrived; its slot was its due time.
            ready.spec.slot_s.get_or_insert(ready.spec.due_s);
            ready.spec.due_s = arrived;
        }
        done.follow_up = Some(ready.spec.without_prompt());
        if !due {
            let queued = Some(ready);
            hand_back(&cx, Back { done, queued }, tail).await;
            return;
        }
        // The end of the answer's body may take the server (and this thread) another turn or
        // two: the due turn does not wait for it. It leaves on another open connection (or a
        // new one, whose set-up its record shows) while this one is read to its end.
        if let Some(tail) = tail {
            tokio::spawn(tail.drain());
        }
        // The scheduler counts the turn in flight when it takes in this answer, which it does
        // before the turn's own answer (one channel, in order).
        let _ = cx.back.send(Back { done, queued: None });
    }
}

/// Hands `back` to the scheduler and reads the answer's body to its end (`tail`). In open loop
/// the answer goes first: a turn built from it, or sent at its slot, need not wait for the
/// server to end the body. With requests capped in flight it goes after: the next request is
/// sent when this answer is taken in, and should find this connection back in the pool.
async fn hand_back(cx: &TaskCtx, back: Back, tail: Option<Tail>) {
    let mut back = Some(back);
    if cx.ahead.is_some() {
        let _ = cx.back.send(back.take().expect("not sent yet"));
    }
    if let Some(tail) = tail {
        tail.drain().await;
    }
    if let Some(back) = back {
        let _ = cx.back.send(back);
    }
}

/// What the runner observed, beside the records themselves.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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
    /// How long the runner's own threads (scheduler, request builder, send threads) waited
    /// for a CPU during the run; `None` where the kernel does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_wait: Option<CpuWait>,
}

/// A built request waiting for its due time; `scheduled`: from the open-loop schedule (the
/// builder keeps a number of those ahead), else a turn that waited for an answer.
struct Pending(Ready, bool);

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
            .spec
            .due_s
            .total_cmp(&self.0.spec.due_s)
            .then_with(|| other.0.spec.id.cmp(&self.0.spec.id))
    }
}

/// How often the runner logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How long before a due time the scheduler stops waiting on tokio's timer (1 ms ticks, rounded
/// up) and sleeps on its own thread instead, when it has one.
const PRECISE_WINDOW: Duration = Duration::from_millis(2);

/// Longest single sleep on the scheduler's thread: finished requests wait at most this long to
/// be taken in (their times are stamped by the request tasks, not here).
const PRECISE_SLICE: Duration = Duration::from_micros(250);

/// Finished requests taken in before the scheduler looks at the clock again.
const COMPLETIONS_PER_PASS: usize = 64;

/// Most finished records held back from the collector (see [`Scheduler::flush_records`]).
const MAX_UNSENT_RECORDS: usize = 256;

/// Longest a finished record is held back from the collector while the scheduler is busy.
const RECORD_BATCH_WAIT: Duration = Duration::from_millis(10);

/// True when the caller is `block_on` of a multi-thread runtime: a thread that runs nothing but
/// this future, so sleeping on it for a fraction of a millisecond stalls no other task.
fn own_thread() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| {
        h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
            && tokio::task::try_id().is_none()
    })
}

/// The scheduler's state for one run.
struct Scheduler<'a> {
    client: &'a Client,
    epoch: Instant,
    cancel: &'a CancellationToken,
    records: mpsc::UnboundedSender<RequestRecord>,
    /// Finished records not yet handed to the collector (see [`Scheduler::flush_records`]),
    /// and when the first of them came in.
    unsent_records: Vec<RequestRecord>,
    unsent_since: Option<std::time::Instant>,
    /// Where request tasks run, in turn; none: on the caller's runtime.
    send_threads: Vec<SendThread>,
    next_send_thread: usize,
    done_tx: mpsc::UnboundedSender<Back>,
    /// Turns built ahead for answers in flight (none where the workload caps its requests in
    /// flight: a turn sent from a request task would bypass the cap).
    ahead: Option<TurnsAhead>,
    /// To the request builder, and what it said last.
    to_builder: std_mpsc::Sender<ToBuilder>,
    handed_to_builder: u64,
    builder_taken_in: u64,
    builder_dry: bool,
    /// Scheduled requests sent since the builder last heard, and how many are in the heap.
    sent_unreported: usize,
    scheduled_waiting: usize,
    max_in_flight: Option<usize>,
    heap: BinaryHeap<Pending>,
    in_flight: usize,
    failed: u64,
    stats: RunStats,
}

impl Scheduler<'_> {
    /// The earliest due time (seconds since the epoch) of anything waiting to be sent.
    fn next_due(&self) -> Option<f64> {
        self.heap.peek().map(|p| p.0.spec.due_s)
    }

    /// Below the workload's in-flight cap, if it has one.
    fn can_send(&self) -> bool {
        self.max_in_flight.is_none_or(|cap| self.in_flight < cap)
    }

    /// Nothing waits, nothing is in flight, and the builder has taken in every answer and has
    /// nothing more (or the run was cancelled).
    fn finished(&self) -> bool {
        self.heap.is_empty()
            && self.in_flight == 0
            && (self.stats.cancelled
                || (self.builder_dry && self.builder_taken_in == self.handed_to_builder))
    }

    /// What the builder built: into the heap.
    fn absorb(&mut self, b: Built) {
        self.builder_taken_in = b.taken_in;
        self.builder_dry = b.dry;
        if self.stats.cancelled {
            self.stats.not_sent += (b.scheduled.len() + b.follow_ups.len()) as u64;
            return;
        }
        self.scheduled_waiting += b.scheduled.len();
        for s in b.scheduled {
            self.heap.push(Pending(s, true));
        }
        for s in b.follow_ups {
            self.heap.push(Pending(s, false));
        }
    }

    fn stop_on_cancel(&mut self) {
        self.stats.cancelled = true;
        self.stats.not_sent += self.heap.len() as u64;
        self.heap.clear();
    }

    /// Hands the finished records to the collector. Records are held back for up to
    /// [`RECORD_BATCH_WAIT`] (or [`MAX_UNSENT_RECORDS`] records, or until the scheduler waits
    /// on a timer) so that the collector is woken once per batch instead of once per record:
    /// each wake-up of an idle worker thread cost more CPU than the record itself. Their times
    /// were stamped by the request tasks, so nothing measured changes.
    fn flush_records(&mut self) {
        self.unsent_since = None;
        for r in self.unsent_records.drain(..) {
            let _ = self.records.send(r);
        }
    }

    /// Flushes the records if the oldest has waited long enough.
    fn flush_records_if_due(&mut self) {
        if self
            .unsent_since
            .is_some_and(|t| t.elapsed() >= RECORD_BATCH_WAIT)
        {
            self.flush_records();
        }
    }

    /// Tells the builder how many scheduled requests went out, in batches (a message per
    /// request would wake its thread once per request), and at once when the heap runs low.
    fn report_sent(&mut self) {
        let low = self.scheduled_waiting < AHEAD / 2;
        if self.sent_unreported >= AHEAD / 8 || (low && self.sent_unreported > 0) {
            let _ = self.to_builder.send(ToBuilder::Sent(self.sent_unreported));
            self.sent_unreported = 0;
        }
    }

    /// Spawns every request due by `now_s`, earliest first, until the in-flight cap.
    fn send_due(&mut self, now_s: f64) {
        while self.next_due().is_some_and(|d| d <= now_s) && self.can_send() {
            let Some(Pending(Ready { spec, body }, scheduled)) = self.heap.pop() else {
                break;
            };
            if scheduled {
                self.scheduled_waiting -= 1;
                self.sent_unreported += 1;
            }
            let thread = (!self.send_threads.is_empty()).then(|| {
                self.next_send_thread = (self.next_send_thread + 1) % self.send_threads.len();
                &self.send_threads[self.next_send_thread]
            });
            let cx = TaskCtx {
                client: thread.map_or(self.client, |t| &t.client).clone(),
                back: self.done_tx.clone(),
                cancel: self.cancel.clone(),
                epoch: self.epoch,
                ahead: self.ahead.clone(),
            };
            let task = request_task(cx, Ready { spec, body });
            match thread {
                Some(t) => drop(t.handle.spawn(task)),
                None => drop(tokio::spawn(task)),
            }
            self.in_flight += 1;
            self.stats.sent += 1;
            self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight);
        }
        self.report_sent();
    }

    /// A request came back: hand it to the builder (follow-up turns) and to the collector; the
    /// turn built ahead for it, if its task took one, is in flight (sent by the task) or waits
    /// for its slot.
    fn complete(&mut self, back: Back) {
        let Back { done, queued } = back;
        self.in_flight -= 1;
        self.stats.finished += 1;
        if done.follow_up.is_some() {
            match queued {
                Some(r) if self.stats.cancelled => {
                    drop(r);
                    self.stats.not_sent += 1;
                }
                Some(r) => self.heap.push(Pending(r, false)),
                None => {
                    self.in_flight += 1;
                    self.stats.sent += 1;
                    self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight);
                }
            }
        }
        if !done.record.ok() {
            self.failed += 1;
        }
        let record = done.record.clone();
        if !self.stats.cancelled {
            // The answer arrived when its request task stamped the end, not when the scheduler
            // took it in: a turn that waited for it is due from then, so the send lag of such a
            // turn covers the whole way back through the scheduler and the builder.
            let arrived_s = done.record.end_s;
            if self
                .to_builder
                .send(ToBuilder::Done(Box::new(done), arrived_s))
                .is_ok()
            {
                self.handed_to_builder += 1;
            }
        }
        self.unsent_records.push(record);
        self.unsent_since
            .get_or_insert_with(std::time::Instant::now);
        if self.unsent_records.len() >= MAX_UNSENT_RECORDS {
            self.flush_records();
        }
    }
}

/// What [`run`] hands back: what the runner observed, and the workload (for its window and
/// its counters).
pub struct Finished {
    /// What the runner observed.
    pub stats: RunStats,
    /// The workload, as the run left it.
    pub workload: Box<dyn Workload>,
}

/// Run a workload to completion (or cancellation). Every finished request's record is sent on
/// `records`, its times in seconds since the run's start: when the first requests are built.
pub async fn run(
    workload: Box<dyn Workload>,
    client: &Client,
    cancel: &CancellationToken,
    records: mpsc::UnboundedSender<RequestRecord>,
) -> Finished {
    run_with(workload, client, cancel, records, default_send_threads()).await
}

/// [`run`] with `send_threads` send threads.
async fn run_with(
    workload: Box<dyn Workload>,
    client: &Client,
    cancel: &CancellationToken,
    records: mpsc::UnboundedSender<RequestRecord>,
    send_threads: usize,
) -> Finished {
    let max_in_flight = workload.max_in_flight();
    let (to_builder, builder_rx) = std_mpsc::channel::<ToBuilder>();
    let bodies = client.body_writer();
    let ahead: Option<TurnsAhead> = max_in_flight.is_none().then(Default::default);
    let builder_ahead = ahead.clone();
    let (built_tx, mut built_rx) = mpsc::unbounded_channel::<Built>();
    let waits = WaitMeter::default();
    let builder_waits = waits.clone();
    let builder = std::thread::Builder::new()
        .name("lmbench-build".into())
        .spawn(move || {
            let _waits = builder_waits.track();
            builder::run(workload, Some(bodies), builder_ahead, builder_rx, built_tx)
        })
        .expect("the request builder thread starts");
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Back>();
    let send_threads = SendThread::start_many(client, send_threads, &waits);
    let per_thread = max_in_flight.map_or(WARM_CONNECTIONS, |cap| {
        cap.div_ceil(send_threads.len().max(1))
            .clamp(1, WARM_CONNECTIONS)
    });
    let mut s = Scheduler {
        client,
        epoch: Instant::now(),
        cancel,
        records,
        unsent_records: Vec::new(),
        unsent_since: None,
        send_threads,
        next_send_thread: 0,
        done_tx,
        ahead,
        to_builder,
        handed_to_builder: 0,
        builder_taken_in: 0,
        builder_dry: false,
        sent_unreported: 0,
        scheduled_waiting: 0,
        max_in_flight,
        heap: BinaryHeap::new(),
        in_flight: 0,
        failed: 0,
        stats: RunStats::default(),
    };
    // The clock starts once the first requests are built and the connections are open: the
    // ones due at 0 leave at 0, on open connections.
    let warming = async {
        let started = Instant::now();
        tokio::select! {
            opened = warm_up(&s.send_threads, client, per_thread) => tracing::debug!(
                "{opened} connection(s) to {} open after {:.0} ms",
                client.url(),
                started.elapsed().as_secs_f64() * 1000.0
            ),
            _ = cancel.cancelled() => {}
        }
    };
    let (first, ()) = tokio::join!(built_rx.recv(), warming);
    if let Some(first) = first {
        s.absorb(first);
    }
    s.epoch = Instant::now();
    let epoch = s.epoch;
    let precise = own_thread();
    // The scheduler's own waits for a CPU count where it has a thread of its own.
    let scheduler_waits = precise.then(|| waits.track());
    let mut builder_gone = false;
    let mut next_progress = Instant::now() + PROGRESS_EVERY;
    loop {
        if cancel.is_cancelled() && !s.stats.cancelled {
            s.stop_on_cancel();
        }
        for _ in 0..COMPLETIONS_PER_PASS {
            match done_rx.try_recv() {
                Ok(done) => s.complete(done),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        while let Ok(b) = built_rx.try_recv() {
            s.absorb(b);
        }
        s.flush_records_if_due();
        if Instant::now() >= next_progress {
            next_progress += PROGRESS_EVERY;
            tracing::info!(
                "t={:.0}s sent={} finished={} in_flight={} failed={}",
                epoch.elapsed().as_secs_f64(),
                s.stats.sent,
                s.stats.finished,
                s.in_flight,
                s.failed
            );
        }
        if s.finished() {
            s.flush_records();
            break;
        }
        let next_due = s.next_due();
        // At the in-flight cap only a completion can make progress.
        let can_send = s.can_send();
        let now_s = epoch.elapsed().as_secs_f64();
        if can_send && next_due.is_some_and(|d| d <= now_s) {
            s.send_due(now_s);
            continue;
        }

        let until_due = next_due
            .filter(|_| can_send)
            .map(|d| Duration::from_secs_f64((d - now_s).max(0.0)));
        if precise && done_rx.is_empty() && built_rx.is_empty() && !cancel.is_cancelled() {
            if let Some(wait) = until_due.filter(|w| *w <= PRECISE_WINDOW) {
                std::thread::sleep(wait.min(PRECISE_SLICE));
                continue;
            }
        }
        // Far from the next due time (or no precise sleep here): wait on tokio's timer, which
        // with a precise sleep ends a window before the due time. Records go to the collector
        // first: nothing else may come along to take them for a while.
        s.flush_records();
        let lead = if precise {
            PRECISE_WINDOW
        } else {
            Duration::ZERO
        };
        let wake = next_due.filter(|_| can_send).map(|d| {
            let due = epoch + Duration::from_secs_f64(d.max(0.0));
            due.checked_sub(lead).unwrap_or(due)
        });
        tokio::select! {
            biased;
            _ = cancel.cancelled(), if !s.stats.cancelled => s.stop_on_cancel(),
            Some(done) = done_rx.recv() => s.complete(done),
            b = built_rx.recv(), if !builder_gone => match b {
                Some(b) => s.absorb(b),
                // The builder stopped (it panicked): nothing more will be built.
                None => {
                    builder_gone = true;
                    s.builder_dry = true;
                    s.builder_taken_in = s.handed_to_builder;
                }
            },
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
        }
    }
    s.stats.elapsed_s = epoch.elapsed().as_secs_f64();
    drop(scheduler_waits);
    let _ = s.to_builder.send(ToBuilder::Stop);
    let threads = std::mem::take(&mut s.send_threads);
    let workload = tokio::task::spawn_blocking(move || {
        threads.into_iter().for_each(SendThread::join);
        builder.join()
    })
    .await
    .expect("joining the request builder")
    .expect("the request builder does not panic");
    s.stats.cpu_wait = waits.over(s.stats.elapsed_s);
    Finished {
        stats: s.stats,
        workload,
    }
}

#[cfg(test)]
mod tests;
