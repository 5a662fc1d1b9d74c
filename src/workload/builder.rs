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
//! taken in every finished request and has nothing more. With nothing else to do it lets the
//! workload prepare ([`Workload::prepare`]) what later turns will need, such as the next new
//! user's long first message.

use super::{TurnAhead, Workload};
use crate::client::{BodyWriter, HoleBody};
use crate::record::{Completed, RequestSpec};
use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
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

/// A dependent turn built ahead ([`Workload::turn_ahead`]) with its body written less the
/// answer: the request task whose answer it waits for fills it in and sends it.
pub struct Ahead {
    turn: TurnAhead,
    body: Option<AheadBody>,
}

/// The body of a turn built ahead: with a hole for the answer, or whole.
enum AheadBody {
    Hole(HoleBody),
    Whole(bytes::Bytes),
}

impl Ahead {
    /// The turn with `done`'s answer put in (prompt, client-side tokens, body), due at its slot.
    pub fn fill(self, done: &Completed) -> Ready {
        let spec = self.turn.fill(&done.text);
        let body = self.body.map(|b| match b {
            AheadBody::Hole(h) => h.fill(&done.text),
            AheadBody::Whole(b) => b,
        });
        Ready { body, spec }
    }
}

/// Turns built ahead, by the id of the request whose answer they wait for: put in by the
/// builder, taken out by that request's task when the answer arrives (or by the builder, unused,
/// when the answer failed or came before the turn was put in).
pub type TurnsAhead = Arc<Mutex<HashMap<u64, Ahead>>>;

/// Specs handed over whose next turn is still to be built ahead ([`register_ahead`]).
type Later = Vec<RequestSpec>;

/// `spec` ready to go: its body written; its next turn noted to be built ahead once it is
/// handed over (so building that turn never delays this one).
fn make_ready(
    bodies: &Option<BodyWriter>,
    ahead: &Option<TurnsAhead>,
    later: &mut Later,
    spec: RequestSpec,
) -> Ready {
    if ahead.is_some() && !spec.warmup {
        later.push(spec.without_prompt());
    }
    Ready {
        body: bodies.as_ref().map(|b| b.body(&spec)),
        spec,
    }
}

/// Builds the turns ahead of the specs in `later` and puts them where the request tasks find
/// them.
fn register_ahead(
    w: &mut Box<dyn Workload>,
    bodies: &Option<BodyWriter>,
    ahead: &Option<TurnsAhead>,
    later: &mut Later,
) {
    let Some(ahead) = ahead else { return };
    for after in later.drain(..) {
        if let Some(turn) = w.turn_ahead(&after) {
            let body = bodies.as_ref().and_then(|b| match &turn.answer {
                Some(a) => b.body_with_hole(&turn.spec, a.at).map(AheadBody::Hole),
                None => Some(AheadBody::Whole(b.body(&turn.spec))),
            });
            if let Ok(mut a) = ahead.lock() {
                a.insert(after.id, Ahead { turn, body });
            }
        }
    }
}

/// True when no message waits; a message that does is kept in `waiting`.
fn rx_is_empty(rx: &std_mpsc::Receiver<ToBuilder>, waiting: &mut Vec<ToBuilder>) -> bool {
    match rx.try_recv() {
        Ok(m) => {
            waiting.push(m);
            false
        }
        Err(_) => true,
    }
}

/// The builder's loop: runs until [`ToBuilder::Stop`] (or the runner is gone), then returns the
/// workload.
pub fn run(
    mut w: Box<dyn Workload>,
    bodies: Option<BodyWriter>,
    ahead: Option<TurnsAhead>,
    rx: std_mpsc::Receiver<ToBuilder>,
    tx: mpsc::UnboundedSender<Built>,
) -> Box<dyn Workload> {
    let mut later = Later::new();
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
                    if let (None, Some(a)) = (&done.follow_up, &ahead) {
                        // Not taken (a failed answer, or one that came before the turn was put
                        // in): the workload builds what follows as usual.
                        if let Ok(mut a) = a.lock() {
                            a.remove(&done.record.id);
                        }
                    }
                    for spec in w.on_complete(&done, now_s) {
                        let r = make_ready(&bodies, &ahead, &mut later, spec);
                        out.follow_ups.push(r);
                    }
                    if let Some(f) = done.follow_up {
                        later.push(f);
                    }
                    taken_in += 1;
                    // An answer may make the schedule go on (the end of a warmup).
                    dry = false;
                    // Each answer's turns go as soon as they are built: when many answers
                    // come in together, the first turn does not wait for the last one's build.
                    if !out.follow_ups.is_empty() {
                        out.taken_in = taken_in;
                        out.dry = dry;
                        told = Some((taken_in, dry));
                        if tx.send(std::mem::take(&mut out)).is_err() {
                            return w;
                        }
                    }
                    register_ahead(&mut w, &bodies, &ahead, &mut later);
                }
                ToBuilder::Sent(n) => queued = queued.saturating_sub(n),
                ToBuilder::Stop => return w,
            }
        }
        // Then the schedule, ahead of time.
        while !dry && queued + out.scheduled.len() < AHEAD {
            match w.next_scheduled() {
                Some(s) => out
                    .scheduled
                    .push(make_ready(&bodies, &ahead, &mut later, s)),
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
        register_ahead(&mut w, &bodies, &ahead, &mut later);
        // Idle: prepare ahead while no message waits (one that came in is kept in `waiting`
        // and handled first).
        if more_to_build || !rx_is_empty(&rx, &mut waiting) || w.prepare() {
            continue;
        }
        // Nothing to build until the runner sends something or an answer comes in.
        match rx.recv() {
            Ok(m) => waiting.push(m),
            Err(_) => return w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Prompt;
    use crate::workload::test_support::completed_for;

    /// Sends an answer to the builder while the builder asks it for its schedule (the moment
    /// between taking in messages and going idle), and turns that answer into one follow-up.
    struct AnswersWhileScheduling {
        to_builder: Option<std_mpsc::Sender<ToBuilder>>,
        first: Option<RequestSpec>,
    }

    fn spec(id: u64) -> RequestSpec {
        RequestSpec {
            id,
            user_id: Some(1),
            round: 1,
            due_s: 0.0,
            slot_s: None,
            prompt: Prompt::Text("q".into()),
            max_tokens: 1,
            client_prompt_tokens: 1,
            warmup: false,
            extra: Default::default(),
        }
    }

    impl Workload for AnswersWhileScheduling {
        fn next_scheduled(&mut self) -> Option<RequestSpec> {
            if let Some(s) = self.first.take() {
                return Some(s);
            }
            if let Some(tx) = self.to_builder.take() {
                let done = completed_for(&spec(0), 1.0);
                tx.send(ToBuilder::Done(Box::new(done), 1.0)).unwrap();
            }
            None
        }
        fn on_complete(&mut self, _: &Completed, now_s: f64) -> Vec<RequestSpec> {
            let mut s = spec(1);
            s.due_s = now_s;
            vec![s]
        }
        fn window(&self) -> Option<(f64, f64)> {
            None
        }
    }

    /// An answer that comes in just as the builder runs out of work is taken in, not left
    /// waiting while the builder sleeps until the next message (which may never come).
    #[test]
    fn an_answer_arriving_as_the_builder_goes_idle_is_taken_in() {
        let (to_builder, rx) = std_mpsc::channel();
        let (tx, mut built) = mpsc::unbounded_channel();
        let w = AnswersWhileScheduling {
            to_builder: Some(to_builder.clone()),
            first: Some(spec(0)),
        };
        let ahead: Option<TurnsAhead> = Some(Default::default());
        let t = std::thread::spawn(move || run(Box::new(w), None, ahead, rx, tx));
        let started = std::time::Instant::now();
        let follow_up = loop {
            match built.try_recv() {
                Ok(b) if !b.follow_ups.is_empty() => break b.follow_ups,
                Ok(_) => {}
                Err(_) if started.elapsed() > std::time::Duration::from_secs(10) => {
                    panic!("the answer was never taken in")
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        };
        assert_eq!(follow_up[0].spec.id, 1);
        to_builder.send(ToBuilder::Stop).unwrap();
        t.join().unwrap();
    }
}
