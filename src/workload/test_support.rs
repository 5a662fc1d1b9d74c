//! A deterministic stand-in for the runner and a server, shared by the workloads' unit
//! tests: a point, a context, and a driver that answers every request on a fixed latency.

use crate::config::Num;
use crate::record::{Completed, ErrorKind, RequestError, RequestRecord, RequestSpec};
use crate::workload::prompt::PromptBuilder;
use crate::workload::{Point, RunContext, SweepPoint, Workload};

/// The point of a workload at sweep `key = value` (and target `qps`, if any).
pub fn run(_workload: &'static str, key: &'static str, value: f64, qps: Option<f64>) -> Point {
    Point {
        sweep: SweepPoint {
            key,
            value: Some(Num::float(value)),
        },
        qps: qps.map(Num::float),
        qps_label: String::new(),
        estimated_s: 0.0,
    }
}

/// A context rooted at the repository, with the given seed.
pub fn ctx(seed: u64) -> RunContext {
    RunContext {
        prompt: PromptBuilder::global(),
        root: env!("CARGO_MANIFEST_DIR").into(),
        api: Default::default(),
        seed,
        user_id_base: 5_000_000,
        duration_override_s: None,
        repeat: 1,
    }
}

/// The chat messages of a request (these workloads always send messages).
pub fn messages(s: &RequestSpec) -> &[crate::record::Message] {
    match &s.prompt {
        crate::record::Prompt::Messages(m) => m,
        crate::record::Prompt::Text(_) => panic!("expected a chat request"),
    }
}

/// One request as the driver saw it.
pub struct Sent {
    pub spec: RequestSpec,
    pub end: f64,
    pub ok: bool,
    /// Built ahead of the answer it followed ([`drive_ahead`]), not by `on_complete`.
    pub ahead: bool,
}

/// Run `w` to completion: each request is sent exactly at its due time and finishes
/// `latency(spec)` later, failing where `fail(spec)` says so; answers are `answer k` words.
pub fn drive(
    w: &mut dyn Workload,
    latency: impl Fn(&RequestSpec) -> f64,
    fail: impl Fn(&RequestSpec) -> bool,
) -> Vec<Sent> {
    drive_with(w, latency, fail, false)
}

/// [`drive`] as the runner does with turns built ahead: each request's next turn is asked for
/// when it is sent ([`Workload::turn_ahead`]), filled in with the answer and sent (at once if
/// due, else at its slot) without the workload building it, which learns of it through
/// `follow_up`; between events the workload may prepare ([`Workload::prepare`]).
pub fn drive_ahead(
    w: &mut dyn Workload,
    latency: impl Fn(&RequestSpec) -> f64,
    fail: impl Fn(&RequestSpec) -> bool,
) -> Vec<Sent> {
    drive_with(w, latency, fail, true)
}

fn drive_with(
    w: &mut dyn Workload,
    latency: impl Fn(&RequestSpec) -> f64,
    fail: impl Fn(&RequestSpec) -> bool,
    ahead: bool,
) -> Vec<Sent> {
    let mut aheads: std::collections::HashMap<u64, crate::workload::TurnAhead> = Default::default();
    let mut from_ahead = std::collections::HashSet::new();
    let mut out: Vec<Sent> = Vec::new();
    let mut pending: Vec<RequestSpec> = Vec::new();
    // (end, index into out)
    let mut in_flight: Vec<(f64, usize)> = Vec::new();
    let mut lookahead = w.next_scheduled();
    for _ in 0..1_000_000 {
        let next_send = lookahead
            .iter()
            .chain(pending.iter())
            .map(|s| s.due_s)
            .fold(f64::INFINITY, f64::min);
        let next_end = in_flight.iter().map(|e| e.0).fold(f64::INFINITY, f64::min);
        if next_send.is_infinite() && next_end.is_infinite() {
            return out;
        }
        if next_end <= next_send {
            let i = in_flight
                .iter()
                .position(|e| e.0 == next_end)
                .expect("an in-flight request");
            let (end, idx) = in_flight.swap_remove(i);
            let s = &out[idx];
            let mut done = completed(&s.spec, end, s.ok);
            if let Some(t) = aheads.remove(&s.spec.id).filter(|_| s.ok) {
                let mut spec = t.fill(&done.text);
                if spec.due_s <= end {
                    spec.slot_s.get_or_insert(spec.due_s);
                    spec.due_s = end;
                }
                done.follow_up = Some(spec.without_prompt());
                from_ahead.insert(spec.id);
                pending.push(spec);
            }
            let built = w.on_complete(&done, end);
            assert!(
                done.follow_up.is_none() || built.is_empty(),
                "a turn sent ahead was built again"
            );
            pending.extend(built);
            if ahead {
                while w.prepare() {}
            }
            if lookahead.is_none() {
                lookahead = w.next_scheduled();
            }
            continue;
        }
        let spec = if lookahead.as_ref().is_some_and(|l| l.due_s == next_send) {
            let s = lookahead.take();
            lookahead = w.next_scheduled();
            s.expect("lookahead")
        } else {
            let i = pending
                .iter()
                .position(|s| s.due_s == next_send)
                .expect("a pending request");
            pending.remove(i)
        };
        if ahead {
            if let Some(t) = w.turn_ahead(&spec.without_prompt()) {
                aheads.insert(spec.id, t);
            }
        }
        let end = spec.due_s + latency(&spec);
        let ok = !fail(&spec);
        in_flight.push((end, out.len()));
        let ahead = from_ahead.contains(&spec.id);
        out.push(Sent {
            spec,
            end,
            ok,
            ahead,
        });
    }
    panic!("the workload never ended");
}

/// The requests sent, by user, in the order they were sent.
pub fn by_user(sent: &[Sent]) -> std::collections::HashMap<u64, Vec<&RequestSpec>> {
    let mut out: std::collections::HashMap<u64, Vec<&RequestSpec>> = Default::default();
    for s in sent {
        out.entry(s.spec.user_id.expect("a user id"))
            .or_default()
            .push(&s.spec);
    }
    out
}

/// A successful answer to `spec` that ended at `end`.
pub fn completed_for(spec: &RequestSpec, end: f64) -> Completed {
    completed(spec, end, true)
}

fn completed(spec: &RequestSpec, end: f64, ok: bool) -> Completed {
    let text = if ok {
        (0..spec.max_tokens)
            .map(|k| format!(" answer{k}"))
            .collect::<String>()
    } else {
        String::new()
    };
    Completed {
        record: RequestRecord {
            id: spec.id,
            user_id: spec.user_id,
            round: spec.round,
            warmup: spec.warmup,
            due_s: spec.due_s,
            slot_s: spec.slot_s,
            sent_s: spec.due_s,
            new_connection: None,
            connect_ms: None,
            first_token_s: ok.then_some(end),
            end_s: end,
            chunk_times_s: Vec::new(),
            prompt_tokens: None,
            completion_tokens: None,
            cached_tokens: None,
            client_prompt_tokens: spec.client_prompt_tokens,
            client_completion_tokens: 0,
            content_chunks: 0,
            max_tokens: spec.max_tokens,
            status: Some(if ok { 200 } else { 500 }),
            error: (!ok).then(|| RequestError {
                kind: ErrorKind::HttpStatus,
                message: "injected".into(),
            }),
        },
        text,
        follow_up: None,
    }
}

/// The request stream as JSON, for byte-for-byte comparisons.
pub fn stream_json(sent: &[Sent]) -> String {
    let specs: Vec<&RequestSpec> = sent.iter().map(|s| &s.spec).collect();
    serde_json::to_string(&specs).expect("specs serialize")
}
