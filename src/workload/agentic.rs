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
//! Timing. A user's requests have slots 1 s apart and each waits for the previous answer (the
//! next agent needs it): it is due at its slot, or when the answer arrives if that is later;
//! such held-back requests are counted, and each request records its slot, so latency from the
//! slot includes the time it was held back. Slots advance by 1 s whatever the answers do. No
//! request has its slot after the window closes. The rate is an outcome, not a setting: it is measured and becomes the result
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
use super::MEASURED_START_LEAD_S;
use super::{
    Point, PointResults, RawWorkload, RunContext, SweepPoint, Workload, WorkloadError, WorkloadSpec,
};
use crate::config::{Checked, Item, Num, OneOrMany, O};
use crate::record::{ApiType, Completed, Message, Prompt, RequestSpec};
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
    /// The previous request's slot: when it was due had every answer come in time.
    last_slot: f64,
    /// Agent of the previous request.
    last_agent: u32,
}

/// The Agentic workload for one new-user interval.
pub struct Agentic {
    prompt: Arc<PromptBuilder>,
    api: ApiType,
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
            api: ctx.api,
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

    #[allow(clippy::too_many_arguments)]
    fn spec(
        &mut self,
        uid: u64,
        round: u32,
        due: f64,
        slot: Option<f64>,
        messages: Vec<Message>,
        warmup: bool,
    ) -> RequestSpec {
        // Every request carries at most the last answer and a question (the history is reset
        // at each hand-off), so counting the whole prompt is cheap.
        let prompt = Prompt::Messages(messages);
        let client_prompt_tokens = self.prompt.prompt_tokens(self.api, &prompt) as u64;
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
            slot_s: slot,
            prompt,
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
        self.spec(uid, 1, due, None, vec![Message::new("user", text)], warmup)
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
                last_slot: due,
                last_agent: 0,
            },
        );
        Some(spec)
    }

    fn on_complete(&mut self, done: &Completed, now_s: f64) -> Vec<RequestSpec> {
        if done.record.warmup {
            self.warmup_left = self.warmup_left.saturating_sub(1);
            if self.warmup_left == 0 && self.t0.is_none() {
                self.t0 = Some(now_s + MEASURED_START_LEAD_S);
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
        // The slot chain is kept whatever the answers do: a late answer delays its turn (the
        // turn is due when the answer arrives) but not the slots of the turns after it.
        let slot = s.last_slot + USER_REQUEST_INTERVAL_S;
        if s.sent >= self.rounds || slot >= self.window_end() - EPS {
            self.sessions_done += 1;
            return Vec::new();
        }
        let due = slot.max(now_s);
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
        let spec = self.spec(s.id, n, due, Some(slot), messages, false);
        s.sent = n;
        s.last_slot = slot;
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

#[cfg(test)]
mod tests;
