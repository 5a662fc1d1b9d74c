//! StrictSynthetic: every user sends every `T` seconds whatever the server does.
//!
//! With `N = NUM_CONCURRENT_USERS`, `R = NUM_ROUNDS_PER_USER` and `T` the swept
//! `TIME_BETWEEN_REQUESTS_PER_USER` (any positive number of seconds; LMBench took integers
//! only), user `i` (from 1) joins at `(i − 1)·R·T/N` and sends round `k` (from 1) at
//! `(i − 1)·R·T/N + (k − 1)·T`. A user still sending counts as active; at every join fewer
//! than `N` are (LMBench's rule), and from the `N`-th join on the offered load is `N/T`
//! requests/s. The conversation's answers are synthetic, so no request waits for another
//! (LMBench's "strictness"): a slow server shows as latency, never as a lower offered rate.
//!
//! Users `N+1 … 2N` are the recorded ones. Every other request (users `1 … N`, which build the
//! load up, and users after `2N`, which keep it level) is marked warmup, so the metrics cover
//! exactly the recorded users. Sending stops with the recorded users' last round; the runner
//! then waits for the requests in flight. A failed request is a counted failure and never holds
//! anything up (LMBench waited forever for a recorded user whose request had failed).
//!
//! Messages (LMBench's): user `System Prompt: ` + `SHARED_SYSTEM_PROMPT_LEN` tokens (the same
//! for every user); user `<uid>: ` + `FIRST_PROMPT_LEN` tokens + `, write a very long story
//! please.`; each later round appends the synthetic answer (assistant `System Answer: ` +
//! `ANSWER_LEN` tokens) and a follow-up of `FOLLOW_UP_PROMPTS_LEN` tokens in the same form.
//!
//! `KV_REUSE_RATIO r < 1` breaks the reuse LMBench's way: a budget of `⌊(1 − r)·L⌋` characters
//! (`L` the history's total length) is taken from the last message backwards, the tail of each
//! message it reaches is character-shuffled, and the last message gets `write a very long story
//! please.` appended. The shuffle draws from a ChaCha8 generator seeded from the run's seed, the
//! user and the round (LMBench: `random.Random(42)`), so the stream is reproducible.

use super::prompt::{mix_seed, PromptBuilder};
use super::{
    Point, PointResults, RawWorkload, RunContext, SweepPoint, Workload, WorkloadError, WorkloadSpec,
};
use crate::config::{Checked, Item, Num, OneOrMany, O};
use crate::record::{ApiType, Completed, Message, Prompt, RequestSpec};
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// LMBench's default time between a user's requests, in seconds.
pub const DEFAULT_TIME_BETWEEN_REQUESTS_S: f64 = 10.0;
/// What LMBench appends to the last message of a scrambled history.
const SCRAMBLE_SUFFIX: &str = "write a very long story please.";
/// Slack when comparing due times computed by different products of the same terms.
const EPS: f64 = 1e-9;

workload_keys! {
    /// `StrictSynthetic`'s keys.
    pub struct Raw {
        /// Users in the system (required).
        pub NUM_CONCURRENT_USERS: O<i64>,
        /// Requests per user (required).
        pub NUM_ROUNDS_PER_USER: O<i64>,
        /// Seconds between a user's requests (default [10]); QPS = users / this.
        pub TIME_BETWEEN_REQUESTS_PER_USER: O<OneOrMany<Num>>,
        /// Tokens of the shared system prompt.
        pub SHARED_SYSTEM_PROMPT_LEN: O<i64>,
        /// Tokens of the first prompt.
        pub FIRST_PROMPT_LEN: O<i64>,
        /// Tokens of each follow-up prompt.
        pub FOLLOW_UP_PROMPTS_LEN: O<i64>,
        /// max_tokens and synthetic answer length.
        pub ANSWER_LEN: O<i64>,
        /// Fraction of the history kept intact, in [0, 1] (default 1.0).
        pub KV_REUSE_RATIO: O<Num>,
    }
}

impl RawWorkload for Raw {
    const NAME: &'static str = "StrictSynthetic";
    type Spec = Config;

    fn validate(&self, c: &mut Item<'_, '_>) -> Checked<Config> {
        let users = c.req_int(&self.NUM_CONCURRENT_USERS, "NUM_CONCURRENT_USERS", 1);
        let rounds = c.req_int(&self.NUM_ROUNDS_PER_USER, "NUM_ROUNDS_PER_USER", 1);
        let t = c.positive_list(
            &self.TIME_BETWEEN_REQUESTS_PER_USER,
            "TIME_BETWEEN_REQUESTS_PER_USER",
            false,
        );
        let system = c.req_int(
            &self.SHARED_SYSTEM_PROMPT_LEN,
            "SHARED_SYSTEM_PROMPT_LEN",
            0,
        );
        let first = c.req_int(&self.FIRST_PROMPT_LEN, "FIRST_PROMPT_LEN", 0);
        let follow = c.req_int(&self.FOLLOW_UP_PROMPTS_LEN, "FOLLOW_UP_PROMPTS_LEN", 0);
        let answer = c.req_int(&self.ANSWER_LEN, "ANSWER_LEN", 1);
        let reuse = c.num_in(&self.KV_REUSE_RATIO, "KV_REUSE_RATIO", 0.0, 1.0, false);
        Ok(Config {
            users: users? as u64,
            rounds: rounds?.min(u32::MAX as i64) as u32,
            times: t?.unwrap_or_else(|| {
                vec![Num {
                    value: DEFAULT_TIME_BETWEEN_REQUESTS_S,
                    is_int: true,
                }]
            }),
            system_prompt: system? as usize,
            first_prompt: first? as usize,
            follow_up_prompt: follow? as usize,
            answer_len: answer?.min(u32::MAX as i64) as u32,
            kv_reuse_ratio: reuse?.unwrap_or(1.0),
        })
    }
}

/// A validated StrictSynthetic item.
#[derive(Debug, Clone)]
pub struct Config {
    /// `NUM_CONCURRENT_USERS`.
    pub users: u64,
    /// `NUM_ROUNDS_PER_USER`.
    pub rounds: u32,
    /// `TIME_BETWEEN_REQUESTS_PER_USER`: one point each.
    pub times: Vec<Num>,
    /// `SHARED_SYSTEM_PROMPT_LEN`, tokens.
    pub system_prompt: usize,
    /// `FIRST_PROMPT_LEN`, tokens.
    pub first_prompt: usize,
    /// `FOLLOW_UP_PROMPTS_LEN`, tokens.
    pub follow_up_prompt: usize,
    /// `ANSWER_LEN`.
    pub answer_len: u32,
    /// `KV_REUSE_RATIO`.
    pub kv_reuse_ratio: f64,
}

impl WorkloadSpec for Config {
    fn workload_name(&self) -> String {
        "strict_synthetic".into()
    }

    fn points(&self) -> Vec<Point> {
        let users = self.users as f64;
        let rounds = self.rounds as f64;
        self.times
            .iter()
            .map(|t| {
                let qps = users / t.value;
                Point {
                    sweep: SweepPoint {
                        key: "TIME_BETWEEN_REQUESTS_PER_USER",
                        value: Some(*t),
                    },
                    qps: Some(Num::float(qps)),
                    qps_label: format!("{qps:.2}"),
                    estimated_s: 2.0 * rounds * t.value + 10.0,
                }
            })
            .collect()
    }

    fn build(&self, point: &Point, ctx: &RunContext) -> Result<Box<dyn Workload>, WorkloadError> {
        Ok(Box::new(Strict::new(self, point, ctx)?))
    }

    fn extra_params(&self, block: &mut Map<String, Value>, api: ApiType) {
        block.insert("API_TYPE".into(), json!(api.as_str()));
    }

    /// Only the recorded users are measured, and they ramp in and out, so their own rate is
    /// below N/T even when the whole N/T is offered; the shortfall compares them with their
    /// own slots (the one rule), and the whole offered rate is written beside it.
    fn finish_result(&self, r: &mut PointResults<'_>) {
        let Some(total) = r.stats.get("measured_total_qps").and_then(Value::as_f64) else {
            return;
        };
        r.results.insert("achieved_total_qps".into(), json!(total));
    }
}

/// One user that has joined and still has rounds to send.
struct User {
    /// Join order, from 1.
    ordinal: u64,
    id: u64,
    history: Vec<Message>,
    /// Rounds sent so far.
    sent: u32,
}

/// The StrictSynthetic workload for one `TIME_BETWEEN_REQUESTS_PER_USER` point.
pub struct Strict {
    /// The endpoint: what the client-side prompt count covers.
    api: crate::record::ApiType,
    prompt: Arc<PromptBuilder>,
    n: u64,
    rounds: u32,
    t: f64,
    gap: f64,
    /// Due time of the recorded users' last round (capped by `--duration`).
    end: f64,
    cap: Option<f64>,
    system_text: String,
    first_len: usize,
    follow_len: usize,
    answer_len: u32,
    reuse: f64,
    seed: u64,
    base: u64,
    next_id: u64,
    /// Ordinal of the next user to join.
    next_join: u64,
    active: Vec<User>,
    /// Most users with rounds left at any join.
    max_active_at_join: usize,
    requests: u64,
    recorded_requests: u64,
    recorded_failed: u64,
    other_failed: u64,
    /// Requests of any user sent inside the recorded window.
    sent_in_window: u64,
}

/// The history as sent: LMBench's postfix scramble of `(1 − ratio)` of its characters.
pub fn scrambled(history: &[Message], ratio: f64, rng: &mut ChaCha8Rng) -> Vec<Message> {
    if ratio >= 1.0 {
        return history.to_vec();
    }
    let total: usize = history.iter().map(|m| m.content.chars().count()).sum();
    let mut budget = (total as f64 * (1.0 - ratio)) as usize;
    let mut out = history.to_vec();
    let last = history.len().saturating_sub(1);
    for i in (0..history.len()).rev() {
        let chars: Vec<char> = history[i].content.chars().collect();
        let take = budget.min(chars.len());
        budget -= take;
        let (keep, tail) = chars.split_at(chars.len() - take);
        let mut tail = tail.to_vec();
        tail.shuffle(rng);
        let mut s: String = keep.iter().chain(tail.iter()).collect();
        if i == last {
            s.push_str(SCRAMBLE_SUFFIX);
        }
        out[i].content = s;
        if budget == 0 {
            break;
        }
    }
    out
}

impl Strict {
    /// Build the workload from its config at a sweep point.
    pub fn new(cfg: &Config, point: &Point, ctx: &RunContext) -> Result<Self, WorkloadError> {
        let t = point
            .sweep
            .value
            .map_or(DEFAULT_TIME_BETWEEN_REQUESTS_S, |v| v.value);
        if !(t.is_finite() && t > 0.0) {
            return Err(WorkloadError::Other(format!(
                "StrictSynthetic: TIME_BETWEEN_REQUESTS_PER_USER must be a positive number of seconds, not {t}"
            )));
        }
        let n = cfg.users;
        let rounds = cfg.rounds;
        let gap = rounds as f64 * t / n as f64;
        let natural_end = (2 * n - 1) as f64 * gap + (rounds - 1) as f64 * t;
        let cap = ctx.duration_override_s;
        let sys_len = cfg.system_prompt;
        let b = ctx.prompt.clone();
        let sys_filler = b.filler_seeded(sys_len, mix_seed(&[0x5771C7, sys_len as u64]));
        Ok(Strict {
            prompt: b,
            api: ctx.api,
            n,
            rounds,
            t,
            gap,
            // The run ends when the measured users have sent every round: a shorter `--duration`
            // would only cut measured requests (they start after N·g seconds), so it is not
            // applied here (stats say so).
            end: natural_end,
            cap,
            system_text: format!("System Prompt:{sys_filler}"),
            first_len: cfg.first_prompt,
            follow_len: cfg.follow_up_prompt,
            answer_len: cfg.answer_len,
            reuse: cfg.kv_reuse_ratio,
            seed: ctx.seed,
            base: ctx.user_id_base,
            next_id: 0,
            next_join: 1,
            active: Vec::new(),
            max_active_at_join: 0,
            requests: 0,
            recorded_requests: 0,
            recorded_failed: 0,
            other_failed: 0,
            sent_in_window: 0,
        })
    }

    fn join_time(&self, ordinal: u64) -> f64 {
        (ordinal - 1) as f64 * self.gap
    }

    fn due(&self, ordinal: u64, round: u32) -> f64 {
        self.join_time(ordinal) + (round - 1) as f64 * self.t
    }

    fn sendable(&self, due: f64) -> bool {
        due <= self.end + EPS
    }

    fn recorded(&self, ordinal: u64) -> bool {
        ordinal > self.n && ordinal <= 2 * self.n
    }

    fn user_text(&self, uid: u64, len: usize, round: u32) -> String {
        let filler = self
            .prompt
            .filler_seeded(len, mix_seed(&[self.seed, uid, round as u64]));
        format!("{uid}:{filler}, write a very long story please.")
    }

    /// The next round of the user at `idx` in `active`; drops the user after its last round.
    fn send(&mut self, idx: usize) -> RequestSpec {
        let mut u = self.active.swap_remove(idx);
        let round = u.sent + 1;
        if round == 1 {
            u.history
                .push(Message::new("user", self.system_text.clone()));
            u.history.push(Message::new(
                "user",
                self.user_text(u.id, self.first_len, 1),
            ));
        } else {
            let answer = self.prompt.filler_seeded(
                self.answer_len as usize,
                mix_seed(&[self.seed, u.id, round as u64, 0xA5]),
            );
            u.history
                .push(Message::new("assistant", format!("System Answer:{answer}")));
            u.history.push(Message::new(
                "user",
                self.user_text(u.id, self.follow_len, round),
            ));
        }
        u.sent = round;
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[self.seed, u.id, round as u64, 0x5C]));
        let messages = scrambled(&u.history, self.reuse, &mut rng);
        let prompt = Prompt::Messages(messages);
        let client_prompt_tokens = self.prompt.prompt_tokens(self.api, &prompt) as u64;
        let due = self.due(u.ordinal, round);
        let recorded = self.recorded(u.ordinal);
        let id = self.next_id;
        self.next_id += 1;
        self.requests += 1;
        if recorded {
            self.recorded_requests += 1;
        }
        let spec = RequestSpec {
            id,
            user_id: Some(u.id),
            round,
            due_s: due,
            slot_s: None,
            prompt,
            max_tokens: self.answer_len,
            client_prompt_tokens,
            warmup: !recorded,
            extra: Default::default(),
        };
        if round < self.rounds {
            self.active.push(u);
        }
        spec
    }

    fn window_bounds(&self) -> (f64, f64) {
        let start = self.join_time(self.n + 1);
        (start, self.end.max(start))
    }
}

impl Workload for Strict {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        // The earliest next round among active users, ties to the earlier user.
        let mut best: Option<(f64, u64, usize)> = None;
        for (i, u) in self.active.iter().enumerate() {
            let d = self.due(u.ordinal, u.sent + 1);
            if best.is_none_or(|(bd, bo, _)| d < bd - EPS || (d <= bd + EPS && u.ordinal < bo)) {
                best = Some((d, u.ordinal, i));
            }
        }
        let join = self.join_time(self.next_join);
        if best.is_none_or(|(bd, _, _)| join < bd - EPS) && self.sendable(join) {
            let ordinal = self.next_join;
            self.next_join += 1;
            let still_sending = self
                .active
                .iter()
                .filter(|u| self.due(u.ordinal, self.rounds) >= join - EPS)
                .count();
            self.max_active_at_join = self.max_active_at_join.max(still_sending);
            self.active.push(User {
                ordinal,
                id: self.base + ordinal,
                history: Vec::new(),
                sent: 0,
            });
            let idx = self.active.len() - 1;
            return Some(self.send(idx));
        }
        let (d, _, idx) = best?;
        if !self.sendable(d) {
            self.active.clear();
            return None;
        }
        Some(self.send(idx))
    }

    fn on_complete(&mut self, done: &Completed, _now_s: f64) -> Vec<RequestSpec> {
        let r = &done.record;
        let (a, b) = self.window_bounds();
        if r.sent_s >= a - EPS && r.sent_s <= b + EPS {
            self.sent_in_window += 1;
        }
        if !r.ok() {
            if r.warmup {
                self.other_failed += 1;
            } else {
                self.recorded_failed += 1;
            }
        }
        Vec::new()
    }

    fn window(&self) -> Option<(f64, f64)> {
        Some(self.window_bounds())
    }

    fn stats(&self) -> serde_json::Value {
        let (a, b) = self.window_bounds();
        let w = b - a;
        serde_json::json!({
            "configured_qps": self.n as f64 / self.t,
            "duration_override_ignored_s": self.cap,
            "time_between_requests_s": self.t,
            "user_join_gap_s": self.gap,
            "num_concurrent_users": self.n,
            "rounds_per_user": self.rounds,
            "recorded_users": [self.base + self.n + 1, self.base + 2 * self.n],
            "users_started": self.next_join - 1,
            "max_users_sending_at_join": self.max_active_at_join,
            "kv_reuse_ratio": self.reuse,
            "requests": self.requests,
            "recorded_requests": self.recorded_requests,
            "recorded_failed": self.recorded_failed,
            "load_requests_failed": self.other_failed,
            "recorded_window_s": [a, b],
            "requests_sent_in_recorded_window": self.sent_in_window,
            "measured_total_qps": (w > 0.0).then(|| self.sent_in_window as f64 / w),
        })
    }
}

#[cfg(test)]
mod tests;
