//! Agentic: users that hand a task from agent to agent. A new user joins every
//! `NEW_USER_INTERVAL` seconds (the swept value) while the send window (`DURATION`, default
//! 100 s) is open; each makes `NUM_ROUNDS` requests, request `k` (from 0) addressed to agent
//! `k mod NUM_AGENTS`. One model serves every agent, so the agent is named in the prompt
//! (`Agent 2: …`), where LMBench sent each agent's requests to its own model name.
//!
//! Prompts keep LMBench's structure. A user's first request carries the shared system prompt
//! (exactly `SYSTEM_PROMPT` tokens, the same for every user: what a prefix cache shares), the
//! user's own context (`CHAT_HISTORY` tokens) and the first question. Every later request
//! carries only the previous agent's answer and the new question (LMBench's default: the history
//! is reset to the last answer at each hand-off).
//!
//! Timing. A user's requests are at least 1 s apart and each waits for the previous answer (the
//! next agent needs it): it is due 1 s after the previous one was due, or when the answer
//! arrives if that is later; such held-back requests are counted. No request is due after the
//! window closes. The rate is an outcome, not a setting: it is measured and becomes the result
//! file's QPS, as in LMBench.
//!
//! Failures. A failed request is recorded and counted, and the session goes on: the next agent
//! gets the next question without an answer to build on. (LMBench ended the session and threw
//! away all of its records, hiding the failure.)
//!
//! Warmup. `NUM_USERS_WARMUP` users with their own ids (never reused by measured users) each
//! send their first request, 0.5 s apart; the measured users start when these have finished.

use super::prompt::{mix_seed, PromptBuilder};
use super::random::RANDOM_DEFAULT_DURATION_S;
use super::{
    Point, PointResults, RawWorkload, RunContext, SweepPoint, Workload, WorkloadError, WorkloadSpec,
};
use crate::config::{Checked, Item, Num, OneOrMany, O};
use crate::record::{Completed, Message, Prompt, RequestSpec};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

workload_keys! {
    /// `Agentic`'s keys.
    pub struct Raw {
        /// Warmup users.
        pub NUM_USERS_WARMUP: O<i64>,
        /// Agents per user.
        pub NUM_AGENTS: O<i64>,
        /// Requests per user.
        pub NUM_ROUNDS: O<i64>,
        /// Tokens of the shared system prompt.
        pub SYSTEM_PROMPT: O<i64>,
        /// Tokens of each user's context.
        pub CHAT_HISTORY: O<i64>,
        /// max_tokens of every answer.
        pub ANSWER_LEN: O<i64>,
        /// Seconds between new users (the sweep; default [2]).
        pub NEW_USER_INTERVALS: O<OneOrMany<Num>>,
        /// Seconds of sending per point (lmbench addition; LMBench's fixed 100).
        pub DURATION: O<Num>,
    }
}

impl RawWorkload for Raw {
    const NAME: &'static str = "Agentic";
    type Spec = Config;

    fn validate(&self, c: &mut Item<'_, '_>) -> Checked<Config> {
        let warmup = c.int(&self.NUM_USERS_WARMUP, "NUM_USERS_WARMUP", 0);
        let agents = c.req_int(&self.NUM_AGENTS, "NUM_AGENTS", 1);
        let rounds = c.req_int(&self.NUM_ROUNDS, "NUM_ROUNDS", 1);
        let system = c.req_int(&self.SYSTEM_PROMPT, "SYSTEM_PROMPT", 0);
        let history = c.req_int(&self.CHAT_HISTORY, "CHAT_HISTORY", 0);
        let answer = c.req_int(&self.ANSWER_LEN, "ANSWER_LEN", 1);
        let intervals = c.positive_list(&self.NEW_USER_INTERVALS, "NEW_USER_INTERVALS", false);
        let duration = c.positive(&self.DURATION, "DURATION");
        Ok(Config {
            warmup_users: warmup?.unwrap_or(0) as u64,
            agents: agents?.min(u32::MAX as i64) as u32,
            rounds: rounds?.min(u32::MAX as i64) as u32,
            system_prompt: system? as usize,
            chat_history: history? as usize,
            answer_len: answer?.min(u32::MAX as i64) as u32,
            intervals: intervals?.unwrap_or_else(|| {
                vec![Num {
                    value: DEFAULT_NEW_USER_INTERVAL_S,
                    is_int: true,
                }]
            }),
            duration_s: duration?.unwrap_or(RANDOM_DEFAULT_DURATION_S),
        })
    }

    fn tokenizer(&self) -> &O<String> {
        &self.TOKENIZER
    }
}

/// A validated Agentic item.
#[derive(Debug, Clone)]
pub struct Config {
    /// `NUM_USERS_WARMUP`.
    pub warmup_users: u64,
    /// `NUM_AGENTS`.
    pub agents: u32,
    /// `NUM_ROUNDS`: requests per user.
    pub rounds: u32,
    /// `SYSTEM_PROMPT`, tokens.
    pub system_prompt: usize,
    /// `CHAT_HISTORY`, tokens.
    pub chat_history: usize,
    /// `ANSWER_LEN`.
    pub answer_len: u32,
    /// `NEW_USER_INTERVALS`: one point each.
    pub intervals: Vec<Num>,
    /// `DURATION`: seconds of sending per point.
    pub duration_s: f64,
}

impl WorkloadSpec for Config {
    fn workload_name(&self) -> String {
        "agentic".into()
    }

    fn points(&self) -> Vec<Point> {
        self.intervals
            .iter()
            .map(|iv| Point {
                sweep: SweepPoint {
                    key: "NEW_USER_INTERVAL",
                    value: Some(*iv),
                },
                qps: None,
                qps_label: iv.label(),
                estimated_s: self.duration_s + 10.0,
            })
            .collect()
    }

    fn build(&self, point: &Point, ctx: &RunContext) -> Result<Box<dyn Workload>, WorkloadError> {
        Ok(Box::new(Agentic::new(self, point, ctx)?))
    }

    /// Agentic sweeps the new-user interval; its QPS is the measured rate (as in LMBench; the
    /// file name keeps the interval, which is known when the file is created).
    fn finish_result(&self, r: &mut PointResults<'_>) {
        if let Some(q) = r.results.get("achieved_qps") {
            r.workload.insert("QPS".into(), q.clone());
        }
    }
}

/// LMBench's default new-user interval, in seconds.
pub const DEFAULT_NEW_USER_INTERVAL_S: f64 = 2.0;
/// Least time between two requests of one user (LMBench's `--user-request-interval 1`).
pub const USER_REQUEST_INTERVAL_S: f64 = 1.0;
/// Seconds between warmup requests.
const WARMUP_GAP_S: f64 = 0.5;
/// Warmup user ids start this far above the run's base, far from measured ids.
const WARMUP_ID_OFFSET: u64 = 900_000;
/// Slack for due times that land on the window's end through different sums.
const EPS: f64 = 1e-9;

/// One user's conversation state between requests.
struct Session {
    id: u64,
    /// Requests sent so far.
    sent: u32,
    /// Due time of the previous request.
    last_due: f64,
    /// Agent of the previous request.
    last_agent: u32,
}

/// The Agentic workload for one new-user interval.
pub struct Agentic {
    prompt: Arc<PromptBuilder>,
    interval: f64,
    duration: f64,
    rounds: u32,
    agents: u32,
    answer_len: u32,
    system_text: String,
    history_len: usize,
    seed: u64,
    base: u64,
    next_id: u64,
    num_warmup: u64,
    warmup_queue: VecDeque<RequestSpec>,
    warmup_left: u64,
    t0: Option<f64>,
    /// Measured users joined so far (the next one's index).
    joined: u64,
    /// Users with a request in flight, by user id.
    waiting: HashMap<u64, Session>,
    requests: u64,
    finished: u64,
    failed: u64,
    held_back: u64,
    held_back_s: f64,
    sessions_done: u64,
}

fn question(agent: u32, n: u32, uid: u64) -> String {
    format!(
        "Agent {agent}: Here's question #{n} from user {uid}: can you tell me a new long story with a happy ending?"
    )
}

impl Agentic {
    /// Build the workload from its config at a new-user interval.
    pub fn new(cfg: &Config, point: &Point, ctx: &RunContext) -> Result<Self, WorkloadError> {
        let interval = point
            .sweep
            .value
            .map_or(DEFAULT_NEW_USER_INTERVAL_S, |v| v.value);
        if !(interval.is_finite() && interval > 0.0) {
            return Err(WorkloadError::Other(format!(
                "Agentic: NEW_USER_INTERVAL must be a positive number of seconds, not {interval}"
            )));
        }
        let duration = ctx.duration_override_s.unwrap_or(cfg.duration_s);
        let sys_len = cfg.system_prompt;
        let b = ctx.prompt.clone();
        // The same for every user, run and baseline: the prefix agents share.
        let sys_filler = b.filler_seeded(sys_len, mix_seed(&[0xA6E7, sys_len as u64]));
        let num_warmup = cfg.warmup_users;
        let mut w = Agentic {
            prompt: b,
            interval,
            duration,
            rounds: cfg.rounds,
            agents: cfg.agents,
            answer_len: cfg.answer_len,
            system_text: format!("Hi, here's some system prompt:{sys_filler}."),
            history_len: cfg.chat_history,
            seed: ctx.seed,
            base: ctx.user_id_base,
            next_id: 0,
            num_warmup,
            warmup_queue: VecDeque::new(),
            warmup_left: num_warmup,
            t0: None,
            joined: 0,
            waiting: HashMap::new(),
            requests: 0,
            finished: 0,
            failed: 0,
            held_back: 0,
            held_back_s: 0.0,
            sessions_done: 0,
        };
        for i in 0..num_warmup {
            let uid = w.base + WARMUP_ID_OFFSET + i;
            let spec = w.first_request(uid, i as f64 * WARMUP_GAP_S, true);
            w.warmup_queue.push_back(spec);
        }
        if num_warmup == 0 {
            w.t0 = Some(0.0);
        }
        Ok(w)
    }

    fn spec(
        &mut self,
        uid: u64,
        round: u32,
        due: f64,
        messages: Vec<Message>,
        warmup: bool,
    ) -> RequestSpec {
        let client_prompt_tokens = messages
            .iter()
            .map(|m| self.prompt.count(&m.content) as u64)
            .sum();
        let id = self.next_id;
        self.next_id += 1;
        if !warmup {
            self.requests += 1;
        }
        RequestSpec {
            id,
            user_id: Some(uid),
            round,
            due_s: due,
            prompt: Prompt::Messages(messages),
            max_tokens: self.answer_len,
            client_prompt_tokens,
            warmup,
            extra: Default::default(),
        }
    }

    /// A user's first request: system prompt, the user's context, question #1 to agent 0.
    fn first_request(&mut self, uid: u64, due: f64, warmup: bool) -> RequestSpec {
        let context = self
            .prompt
            .filler_seeded(self.history_len, mix_seed(&[self.seed, uid]));
        let text = format!(
            "{}For user {uid}, here are some other context: user_{uid}{context}.{}",
            self.system_text,
            question(0, 1, uid)
        );
        self.spec(uid, 1, due, vec![Message::new("user", text)], warmup)
    }

    fn window_end(&self) -> f64 {
        self.t0.unwrap_or(0.0) + self.duration
    }
}

impl Workload for Agentic {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        if let Some(s) = self.warmup_queue.pop_front() {
            return Some(s);
        }
        let t0 = self.t0?;
        let offset = self.joined as f64 * self.interval;
        if offset >= self.duration - EPS {
            return None;
        }
        let uid = self.base + self.joined;
        self.joined += 1;
        let due = t0 + offset;
        let spec = self.first_request(uid, due, false);
        self.waiting.insert(
            uid,
            Session {
                id: uid,
                sent: 1,
                last_due: due,
                last_agent: 0,
            },
        );
        Some(spec)
    }

    fn on_complete(&mut self, done: &Completed, now_s: f64) -> Vec<RequestSpec> {
        if done.record.warmup {
            self.warmup_left = self.warmup_left.saturating_sub(1);
            if self.warmup_left == 0 && self.t0.is_none() {
                self.t0 = Some(now_s);
            }
            return Vec::new();
        }
        self.finished += 1;
        let ok = done.record.ok();
        if !ok {
            self.failed += 1;
        }
        let Some(mut s) = done.record.user_id.and_then(|u| self.waiting.remove(&u)) else {
            return Vec::new();
        };
        let slot = s.last_due + USER_REQUEST_INTERVAL_S;
        let due = slot.max(now_s);
        if s.sent >= self.rounds || due >= self.window_end() - EPS {
            self.sessions_done += 1;
            return Vec::new();
        }
        if now_s > slot {
            self.held_back += 1;
            self.held_back_s += now_s - slot;
        }
        let agent = s.sent % self.agents;
        let n = s.sent + 1;
        let mut messages = Vec::with_capacity(2);
        if ok {
            messages.push(Message::new(
                "assistant",
                format!("Agent {}: {}", s.last_agent, done.text.trim_start()),
            ));
        }
        messages.push(Message::new("user", question(agent, n, s.id)));
        let spec = self.spec(s.id, n, due, messages, false);
        s.sent = n;
        s.last_due = due;
        s.last_agent = agent;
        self.waiting.insert(s.id, s);
        vec![spec]
    }

    fn window(&self) -> Option<(f64, f64)> {
        self.t0.map(|t| (t, t + self.duration))
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "new_user_interval_s": self.interval,
            "user_request_interval_s": USER_REQUEST_INTERVAL_S,
            "window_s": self.duration,
            "users_started": self.joined,
            "warmup_users": self.num_warmup,
            "requests": self.requests,
            "requests_failed": self.failed,
            "requests_held_back_by_answer": self.held_back,
            "requests_held_back_total_s": self.held_back_s,
            "sessions_ended": self.sessions_done,
            "measured_qps": self.finished as f64 / self.duration,
        })
    }
}

/// A deterministic stand-in for the runner and a server, shared by the multi-round workloads'
/// unit tests.
#[cfg(test)]
pub(crate) mod test_support {
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
    }

    /// Run `w` to completion: each request is sent exactly at its due time and finishes
    /// `latency(spec)` later, failing where `fail(spec)` says so; answers are `answer k` words.
    pub fn drive(
        w: &mut dyn Workload,
        latency: impl Fn(&RequestSpec) -> f64,
        fail: impl Fn(&RequestSpec) -> bool,
    ) -> Vec<Sent> {
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
                let done = completed(&s.spec, end, s.ok);
                pending.extend(w.on_complete(&done, end));
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
            let end = spec.due_s + latency(&spec);
            let ok = !fail(&spec);
            in_flight.push((end, out.len()));
            out.push(Sent { spec, end, ok });
        }
        panic!("the workload never ended");
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
                sent_s: spec.due_s,
                first_token_s: ok.then_some(end),
                end_s: end,
                chunk_times_s: Vec::new(),
                prompt_tokens: None,
                completion_tokens: None,
                cached_tokens: None,
                client_prompt_tokens: spec.client_prompt_tokens,
                client_completion_tokens: 0,
                max_tokens: spec.max_tokens,
                status: Some(if ok { 200 } else { 500 }),
                error: (!ok).then(|| RequestError {
                    kind: ErrorKind::HttpStatus,
                    message: "injected".into(),
                }),
            },
            text,
        }
    }

    /// The request stream as JSON, for byte-for-byte comparisons.
    pub fn stream_json(sent: &[Sent]) -> String {
        let specs: Vec<&RequestSpec> = sent.iter().map(|s| &s.spec).collect();
        serde_json::to_string(&specs).expect("specs serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn cfg(yaml: &str) -> Config {
        crate::workload::spec_from_yaml::<Raw>(yaml)
    }

    const BASE: &str = "NUM_AGENTS: 3\nNUM_ROUNDS: 4\nSYSTEM_PROMPT: 200\nCHAT_HISTORY: 100\nANSWER_LEN: 8\nDURATION: 10\n";

    fn build(yaml: &str, interval: f64, seed: u64) -> Agentic {
        let run = run("Agentic", "NEW_USER_INTERVAL", interval, None);
        Agentic::new(&cfg(yaml), &run, &ctx(seed)).unwrap()
    }

    #[test]
    fn users_join_at_multiples_of_the_interval_and_send_all_rounds() {
        let mut w = build(BASE, 1.5, 1);
        let sent = drive(&mut w, |_| 0.2, |_| false);
        let firsts: Vec<f64> = sent
            .iter()
            .filter(|s| s.spec.round == 1)
            .map(|s| s.spec.due_s)
            .collect();
        // 10 s window, one user every 1.5 s: joins at 0, 1.5, … 9.
        assert_eq!(firsts.len(), 7);
        for (j, d) in firsts.iter().enumerate() {
            assert!((d - j as f64 * 1.5).abs() < 1e-9, "{firsts:?}");
        }
        let mut by_user: HashMap<u64, Vec<&RequestSpec>> = HashMap::new();
        for s in &sent {
            by_user
                .entry(s.spec.user_id.unwrap())
                .or_default()
                .push(&s.spec);
        }
        for reqs in by_user.values() {
            assert!(reqs.len() <= 4);
            for (k, r) in reqs.iter().enumerate() {
                assert_eq!(r.round, k as u32 + 1);
                assert!(r.due_s < 10.0);
                let last = messages(r).last().unwrap();
                assert!(
                    last.content
                        .contains(&format!("Agent {}: Here's question #{}", k % 3, k + 1)),
                    "{}",
                    last.content
                );
            }
            // A fast server: exactly 1 s apart.
            for p in reqs.windows(2) {
                assert!((p[1].due_s - p[0].due_s - 1.0).abs() < 1e-9);
            }
        }
        // Users that joined early enough made all four requests.
        assert_eq!(by_user.values().filter(|r| r.len() == 4).count(), 5);
        assert_eq!(w.stats()["requests_held_back_by_answer"], 0);
        assert_eq!(w.stats()["requests"], sent.len() as u64);
    }

    #[test]
    fn a_slow_answer_holds_the_next_request_back() {
        let mut w = build(BASE, 2.0, 1);
        let sent = drive(&mut w, |_| 1.7, |_| false);
        let mut by_user: HashMap<u64, Vec<&Sent>> = HashMap::new();
        for s in &sent {
            by_user.entry(s.spec.user_id.unwrap()).or_default().push(s);
        }
        for reqs in by_user.values() {
            for p in reqs.windows(2) {
                assert!(p[1].spec.due_s >= p[0].spec.due_s + 1.0 - 1e-9);
                assert!(p[1].spec.due_s >= p[0].end - 1e-9, "sent before the answer");
                assert!((p[1].spec.due_s - p[0].end).abs() < 1e-9);
            }
        }
        let held = w.stats()["requests_held_back_by_answer"].as_u64().unwrap();
        assert!(held > 0);
        assert_eq!(
            held,
            sent.iter().filter(|s| s.spec.round > 1).count() as u64
        );
    }

    #[test]
    fn first_request_has_exact_lengths_and_later_ones_carry_the_previous_answer() {
        let mut w = build(BASE, 5.0, 1);
        let sent = drive(&mut w, |_| 0.1, |_| false);
        let b = PromptBuilder::global();
        let first = &sent[0].spec;
        let text = &messages(first)[0].content;
        let uid = first.user_id.unwrap();
        let sys = text.split("For user").next().unwrap();
        let sys_filler = sys.strip_suffix('.').unwrap();
        assert_eq!(
            b.count(sys_filler),
            b.count("Hi, here's some system prompt:") + 200
        );
        // Every user's first request starts with the same system prompt.
        let other = sent
            .iter()
            .find(|s| s.spec.round == 1 && s.spec.user_id != Some(uid))
            .unwrap();
        assert!(messages(&other.spec)[0].content.starts_with(sys));
        let second = sent
            .iter()
            .find(|s| s.spec.user_id == Some(uid) && s.spec.round == 2)
            .unwrap();
        let ms = messages(&second.spec);
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].role, "assistant");
        assert!(ms[0].content.starts_with("Agent 0: answer0"));
        assert!(ms[1].content.starts_with("Agent 1: Here's question #2"));
        assert_eq!(first.max_tokens, 8);
    }

    #[test]
    fn a_failed_request_keeps_the_session_going() {
        let mut w = build(BASE, 5.0, 1);
        let sent = drive(&mut w, |_| 0.1, |s| s.round == 2);
        let uid = sent[0].spec.user_id.unwrap();
        let third = sent
            .iter()
            .find(|s| s.spec.user_id == Some(uid) && s.spec.round == 3)
            .expect("the session went on after its failed request");
        let ms = messages(&third.spec);
        assert_eq!(ms.len(), 1, "no answer to carry after a failure");
        assert!(ms[0].content.starts_with("Agent 2: Here's question #3"));
        assert!(sent
            .iter()
            .any(|s| s.spec.user_id == Some(uid) && s.spec.round == 4));
        assert_eq!(
            w.stats()["requests_failed"].as_u64().unwrap(),
            sent.iter().filter(|s| !s.ok).count() as u64
        );
    }

    #[test]
    fn warmup_users_have_their_own_ids_and_come_first() {
        let yaml = format!("{BASE}NUM_USERS_WARMUP: 2\n");
        let mut w = build(&yaml, 2.0, 1);
        let sent = drive(&mut w, |_| 0.3, |_| false);
        let warm: Vec<&Sent> = sent.iter().filter(|s| s.spec.warmup).collect();
        assert_eq!(warm.len(), 2);
        let warm_end = warm.iter().map(|s| s.end).fold(0.0, f64::max);
        for s in &sent {
            let uid = s.spec.user_id.unwrap();
            if s.spec.warmup {
                assert!(uid >= 5_000_000 + WARMUP_ID_OFFSET);
            } else {
                assert!(uid < 5_000_000 + WARMUP_ID_OFFSET);
                assert!(s.spec.due_s >= warm_end - 1e-9);
            }
        }
        let (a, b) = w.window().unwrap();
        assert!((a - warm_end).abs() < 1e-9 && (b - a - 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let one = stream_json(&drive(&mut build(BASE, 1.0, 3), |_| 0.4, |s| s.id % 5 == 0));
        let two = stream_json(&drive(&mut build(BASE, 1.0, 3), |_| 0.4, |s| s.id % 5 == 0));
        assert_eq!(one, two);
        let other = stream_json(&drive(&mut build(BASE, 1.0, 4), |_| 0.4, |s| s.id % 5 == 0));
        assert_ne!(one, other);
    }
}
