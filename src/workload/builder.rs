//! The request builder: a thread of its own that owns the workload, so that building requests
//! (exact-length prompts through the tokenizer, multi-turn histories) never happens on the
//! path that sends due requests.
//!
//! It keeps up to [`AHEAD`] requests of the open-loop schedule built before they are due, and
//! turns each finished request into the turns that were waiting for it (`on_complete`) as soon
//! as the runner hands it over. Built means ready to go: with the client's [`BodyWriter`] the
//! request's JSON body is written here too (a 20,000-token history is 130 kB of JSON, 0.1–0.4 ms
//! to render and escape), so the send thread only sends it. Everything it builds goes to the runner in [`Built`] batches,
//! each saying how many finished requests it has taken in so far and whether the schedule has
//! run dry for now: the runner is done when nothing is queued or in flight and the builder has
//! taken in every finished request and has nothing more.

use super::Workload;
use crate::client::BodyWriter;
use crate::record::{Completed, RequestSpec};
use std::sync::mpsc as std_mpsc;
use tokio::sync::mpsc;

/// Requests of the open-loop schedule kept built ahead of time. Enough for bursts (a gamma
/// schedule, many users starting together), small enough that a few hundred long prompts stay
/// a few megabytes.
pub const AHEAD: usize = 64;

/// Requests built in one go before they are handed over, so the first of a long list is not
/// held back by building the rest.
const BATCH: usize = 8;

/// What the runner tells the builder.
pub enum ToBuilder {
    /// A request finished at `now_s` (seconds since the run's start).
    Done(Box<Completed>, f64),
    /// The runner has sent this many more requests of the schedule: build more.
    Sent(usize),
    /// The run is over: hand the workload back.
    Stop,
}

/// A request ready to be sent: its spec and, when the builder has the client's body writer, its
/// JSON body.
#[derive(Debug)]
pub struct Ready {
    /// What to send.
    pub spec: RequestSpec,
    /// The request body, written ahead.
    pub body: Option<bytes::Bytes>,
}

/// What the builder hands the runner.
#[derive(Debug, Default)]
pub struct Built {
    /// Requests of the open-loop schedule, in due order.
    pub scheduled: Vec<Ready>,
    /// Turns that were waiting for an answer.
    pub follow_ups: Vec<Ready>,
    /// Finished requests taken in so far.
    pub taken_in: u64,
    /// The schedule has nothing more for now (more may come once answers arrive).
    pub dry: bool,
}

/// The builder's loop: runs until [`ToBuilder::Stop`] (or the runner is gone), then returns the
/// workload.
pub fn run(
    mut w: Box<dyn Workload>,
    bodies: Option<BodyWriter>,
    rx: std_mpsc::Receiver<ToBuilder>,
    tx: mpsc::UnboundedSender<Built>,
) -> Box<dyn Workload> {
    let ready = |spec: RequestSpec| Ready {
        body: bodies.as_ref().map(|b| b.body(&spec)),
        spec,
    };
    // Scheduled requests handed over and not yet sent.
    let mut queued = 0usize;
    let mut taken_in = 0u64;
    let mut dry = false;
    // The (taken_in, dry) the runner last heard: it must hear every change, also when nothing
    // was built, to know when the builder has caught up.
    let mut told: Option<(u64, bool)> = None;
    let mut waiting: Vec<ToBuilder> = Vec::new();
    loop {
        let mut out = Built::default();
        // Everything waiting: completions first, their turns are due now.
        loop {
            let msg = match waiting.pop() {
                Some(m) => m,
                None => match rx.try_recv() {
                    Ok(m) => m,
                    Err(std_mpsc::TryRecvError::Empty) => break,
                    Err(std_mpsc::TryRecvError::Disconnected) => return w,
                },
            };
            match msg {
                ToBuilder::Done(done, now_s) => {
                    out.follow_ups
                        .extend(w.on_complete(&done, now_s).into_iter().map(ready));
                    taken_in += 1;
                    // An answer may make the schedule go on (the end of a warmup).
                    dry = false;
                }
                ToBuilder::Sent(n) => queued = queued.saturating_sub(n),
                ToBuilder::Stop => return w,
            }
        }
        // Then the schedule, ahead of time.
        while !dry && queued + out.scheduled.len() < AHEAD {
            match w.next_scheduled() {
                Some(s) => out.scheduled.push(ready(s)),
                None => dry = true,
            }
            if out.scheduled.len() >= BATCH {
                break;
            }
        }
        let more_to_build = !dry && queued + out.scheduled.len() < AHEAD;
        if !out.scheduled.is_empty() || !out.follow_ups.is_empty() || told != Some((taken_in, dry))
        {
            queued += out.scheduled.len();
            out.taken_in = taken_in;
            out.dry = dry;
            told = Some((taken_in, dry));
            if tx.send(out).is_err() {
                return w;
            }
        }
        if more_to_build {
            continue;
        }
        // Nothing to build until the runner sends something or an answer comes in.
        match rx.recv() {
            Ok(m) => waiting.push(m),
            Err(_) => return w,
        }
    }
}
