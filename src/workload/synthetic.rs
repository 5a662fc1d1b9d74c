//! LMCacheSynthetic: LMBench's multi-round QA. Users share a long system prompt, each has its
//! own context, and asks `NUM_ROUNDS` questions; every answer is appended to that user's
//! history, so later turns re-send a growing prefix (what a KV cache should exploit).
//!
//! Arrivals. With `N` users at a target of `q` requests/s, each user asks every `g = N/q`
//! seconds. At the start the `N` users are staggered as if the benchmark had been running (user
//! `i` is due at `i·g/N` and has already asked `⌊i·R/N⌋` questions, with its history pre-filled
//! as LMBench does), so the rate is `q` from the first second. When a user has asked its last
//! question a new user takes its slot, so the population never decays. A turn needs the
//! previous answer: it is due `g` after the previous turn was due, or when the answer arrives if
//! that is later. Such held-back turns are counted, and the achieved rate is measured, so a
//! server that cannot keep up shows as a shortfall rather than silently lowering the load.
//!
//! Warmup. `NUM_USERS_WARMUP` users with their own ids (never reused by measured users) each
//! send one first turn, 0.5 s apart, before the measured users start: the shared system prompt
//! is cached, the measured users' contexts are not. Warmup records are excluded from metrics.

use super::prompt::{mix_seed, PromptBuilder};
use super::{Point, RawWorkload, RunContext, Workload, WorkloadError, WorkloadSpec};
use crate::config::{Checked, Item, Num, OneOrMany, O};
use crate::record::{ApiType, Completed, Message, Prompt, RequestSpec};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, VecDeque};

/// Default seconds of sending per point (LMBench's `--time 200`).
pub const SYNTHETIC_DEFAULT_DURATION_S: f64 = 200.0;

workload_keys! {
    /// `LMCacheSynthetic`'s keys.
    pub struct Raw {
        /// Warmup users sent before the measured ones (default 0).
        pub NUM_USERS_WARMUP: O<i64>,
        /// Concurrent users (required).
        pub NUM_USERS: O<i64>,
        /// Turns per user (required).
        pub NUM_ROUNDS: O<i64>,
        /// Tokens of the shared system prompt (required).
        pub SYSTEM_PROMPT: O<i64>,
        /// Tokens of each user's own context (required).
        pub CHAT_HISTORY: O<i64>,
        /// max_tokens of every answer (required).
        pub ANSWER_LEN: O<i64>,
        /// Target rates (required).
        pub QPS: O<OneOrMany<Num>>,
        /// Accepted for compatibility (LMBench never passes it to its generator).
        pub USE_SHAREGPT: O<bool>,
        /// Seconds of sending per QPS point (lmbench addition; LMBench's fixed 200).
        pub DURATION: O<Num>,
    }
}

impl RawWorkload for Raw {
    const NAME: &'static str = "LMCacheSynthetic";

    type Spec = Config;

    fn validate(&self, c: &mut Item<'_, '_>) -> Checked<Config> {
        let warmup = c.int(&self.NUM_USERS_WARMUP, "NUM_USERS_WARMUP", 0);
        let users = c.req_int(&self.NUM_USERS, "NUM_USERS", 1);
        let rounds = c.req_int(&self.NUM_ROUNDS, "NUM_ROUNDS", 1);
        let system = c.req_int(&self.SYSTEM_PROMPT, "SYSTEM_PROMPT", 0);
        let history = c.req_int(&self.CHAT_HISTORY, "CHAT_HISTORY", 0);
        let answer = c.req_int(&self.ANSWER_LEN, "ANSWER_LEN", 1);
        let qps = c.req_positive_list(&self.QPS, "QPS", false);
        let duration = c.positive(&self.DURATION, "DURATION");
        Ok(Config {
            warmup_users: warmup?.unwrap_or(0) as u64,
            users: users? as u64,
            rounds: rounds?.min(u32::MAX as i64) as u32,
            system_prompt: system? as usize,
            chat_history: history? as usize,
            answer_len: answer?.min(u32::MAX as i64) as u32,
            qps: qps?,
            use_sharegpt_written: self.USE_SHAREGPT.is_some(),
            duration_s: duration?.unwrap_or(SYNTHETIC_DEFAULT_DURATION_S),
        })
    }

    fn tokenizer(&self) -> &O<String> {
        &self.TOKENIZER
    }
}

/// A validated LMCacheSynthetic item.
#[derive(Debug, Clone)]
pub struct Config {
    /// `NUM_USERS_WARMUP`.
    pub warmup_users: u64,
    /// `NUM_USERS`.
    pub users: u64,
    /// `NUM_ROUNDS`.
    pub rounds: u32,
    /// `SYSTEM_PROMPT`, tokens.
    pub system_prompt: usize,
    /// `CHAT_HISTORY`, tokens.
    pub chat_history: usize,
    /// `ANSWER_LEN`.
    pub answer_len: u32,
    /// `QPS`: one point each.
    pub qps: Vec<Num>,
    /// Whether `USE_SHAREGPT` was written (LMBench writes `false` in results otherwise).
    pub use_sharegpt_written: bool,
    /// `DURATION`: seconds of sending per point.
    pub duration_s: f64,
}

impl WorkloadSpec for Config {
    fn workload_name(&self) -> String {
        "synthetic".into()
    }

    fn points(&self) -> Vec<Point> {
        let warm = self.warmup_users as f64;
        self.qps
            .iter()
            .map(|q| Point::qps(*q, self.duration_s + warm / q.value + 5.0))
            .collect()
    }

    fn build(&self, point: &Point, ctx: &RunContext) -> Result<Box<dyn Workload>, WorkloadError> {
        Ok(Box::new(Synthetic::new(self, point, ctx)?))
    }

    fn extra_params(&self, block: &mut Map<String, Value>, api: ApiType) {
        if !self.use_sharegpt_written {
            block.insert("USE_SHAREGPT".into(), json!(false));
        }
        block.insert("API_TYPE".into(), json!(api.as_str()));
    }
}

/// Seconds between warmup requests (LMBench's warmup runs at 2 QPS).
const WARMUP_GAP_S: f64 = 0.5;
/// Warmup user ids start this far above the run's base, far from measured ids.
const WARMUP_ID_OFFSET: u64 = 900_000;

struct User {
    id: u64,
    history: Vec<Message>,
    /// Questions asked so far (including pre-filled ones).
    asked: u32,
    /// Due time of this user's previous request.
    last_due: f64,
}

/// The LMCacheSynthetic workload for one QPS point.
pub struct Synthetic {
    prompt: std::sync::Arc<PromptBuilder>,
    num_users: u64,
    rounds: u32,
    answer_len: u32,
    gap: f64,
    duration: f64,
    system_text: String,
    history_len: usize,
    seed: u64,
    base: u64,
    next_id: u64,
    next_user: u64,
    warmup_left: u64,
    warmup_queue: VecDeque<RequestSpec>,
    initial: VecDeque<RequestSpec>,
    started: bool,
    t0: Option<f64>,
    /// Users with a request in flight, by user id.
    waiting: HashMap<u64, User>,
    /// Users whose initial request has not been sent yet.
    pending_users: HashMap<u64, User>,
    held_back: u64,
    held_back_s: f64,
    users_started: u64,
    num_warmup: u64,
    failed_turns: u64,
}

fn first_message(system: &str, uid: u64, history_filler: &str, question: &str) -> String {
    format!(
        "Hi, here's some system prompt:{system}.Here are some other context: user_{uid}{history_filler}.{question}"
    )
}

fn question(n: u32, uid: u64) -> String {
    format!("Here's question #{n} from user {uid}: can you tell me a new long story with a happy ending?")
}

impl Synthetic {
    /// Build the workload from its config at a QPS point.
    pub fn new(cfg: &Config, point: &Point, ctx: &RunContext) -> Result<Self, WorkloadError> {
        let qps = point
            .target_qps()
            .ok_or_else(|| WorkloadError::Other("LMCacheSynthetic needs a QPS".into()))?;
        let num_users = cfg.users;
        let rounds = cfg.rounds;
        let duration = ctx.duration_override_s.unwrap_or(cfg.duration_s);
        let b = ctx.prompt.clone();
        let sys_len = cfg.system_prompt;
        // The system prompt is the same for every run and baseline: it is what a prefix cache
        // shares across users.
        let system_text = b.filler_seeded(sys_len, mix_seed(&[0x5157, sys_len as u64]));
        let mut w = Synthetic {
            prompt: ctx.prompt.clone(),
            num_users,
            rounds,
            answer_len: cfg.answer_len,
            gap: num_users as f64 / qps,
            duration,
            system_text,
            history_len: cfg.chat_history,
            seed: ctx.seed,
            base: ctx.user_id_base,
            next_id: 0,
            next_user: 0,
            warmup_left: cfg.warmup_users,
            warmup_queue: VecDeque::new(),
            initial: VecDeque::new(),
            started: false,
            t0: None,
            waiting: HashMap::new(),
            pending_users: HashMap::new(),
            held_back: 0,
            held_back_s: 0.0,
            users_started: 0,
            num_warmup: cfg.warmup_users,
            failed_turns: 0,
        };
        for i in 0..w.num_warmup {
            let uid = w.base + WARMUP_ID_OFFSET + i;
            let text = w.first_turn_text(uid, 1);
            let spec = w.spec(
                uid,
                1,
                i as f64 * WARMUP_GAP_S,
                Prompt::Messages(vec![Message::new("user", text)]),
                true,
            );
            w.warmup_queue.push_back(spec);
        }
        if w.num_warmup == 0 {
            w.start_measured(0.0);
        }
        Ok(w)
    }

    fn first_turn_text(&self, uid: u64, n: u32) -> String {
        let filler = self
            .prompt
            .filler_seeded(self.history_len, mix_seed(&[self.seed, uid]));
        first_message(&self.system_text, uid, &filler, &question(n, uid))
    }

    fn spec(
        &mut self,
        uid: u64,
        round: u32,
        due: f64,
        prompt: Prompt,
        warmup: bool,
    ) -> RequestSpec {
        let b = &self.prompt;
        let client_prompt_tokens = match &prompt {
            Prompt::Text(t) => b.count(t),
            Prompt::Messages(ms) => ms.iter().map(|m| b.count(&m.content)).sum(),
        } as u64;
        let id = self.next_id;
        self.next_id += 1;
        RequestSpec {
            id,
            user_id: Some(uid),
            round,
            due_s: due,
            prompt,
            max_tokens: self.answer_len,
            client_prompt_tokens,
            warmup,
            extra: Default::default(),
        }
    }

    /// A new user: history holding its first message (with `asked` questions pre-filled).
    fn new_user(&mut self, asked_before: u32, due: f64) -> (User, RequestSpec) {
        let uid = self.base + self.next_user;
        self.next_user += 1;
        self.users_started += 1;
        let b = self.prompt.clone();
        let mut history = Vec::new();
        // Pre-filled turns, as LMBench does for users that are "already" mid-conversation at
        // the start: questions with placeholder answers of ANSWER_LEN tokens.
        for k in 1..=asked_before {
            let text = if k == 1 {
                self.first_turn_text(uid, 1)
            } else {
                question(k, uid)
            };
            history.push(Message::new("user", text));
            let answer_seed = mix_seed(&[self.seed, uid, k as u64]);
            let filler = b.filler_seeded((self.answer_len as usize).saturating_sub(5), answer_seed);
            history.push(Message::new(
                "assistant",
                format!("Here's story #{k}:{filler}"),
            ));
        }
        let n = asked_before + 1;
        let text = if n == 1 {
            self.first_turn_text(uid, 1)
        } else {
            question(n, uid)
        };
        history.push(Message::new("user", text));
        let spec = self.spec(uid, n, due, Prompt::Messages(history.clone()), false);
        let user = User {
            id: uid,
            history,
            asked: n,
            last_due: due,
        };
        (user, spec)
    }

    fn start_measured(&mut self, now: f64) {
        self.started = true;
        self.t0 = Some(now);
        let n = self.num_users;
        for i in 0..n {
            let due = now + i as f64 * self.gap / n as f64;
            let asked = ((i * self.rounds as u64) / n) as u32;
            let asked = asked.min(self.rounds - 1);
            let (user, spec) = self.new_user(asked, due);
            self.pending_users.insert(user.id, user);
            self.initial.push_back(spec);
        }
    }

    fn window_end(&self) -> f64 {
        self.t0.unwrap_or(0.0) + self.duration
    }

    /// The follow-up of a user whose previous request finished at `now`.
    fn next_turn(&mut self, mut user: User, done: &Completed, now: f64) -> Option<RequestSpec> {
        let slot_due = user.last_due + self.gap;
        if slot_due >= self.window_end() {
            return None;
        }
        let due = if now > slot_due {
            self.held_back += 1;
            self.held_back_s += now - slot_due;
            now
        } else {
            slot_due
        };
        if user.asked >= self.rounds || !done.record.ok() {
            if !done.record.ok() {
                // A failed turn ends that conversation (its answer is missing); the slot goes on
                // with a new user so the offered load is kept.
                self.failed_turns += 1;
            }
            let (mut nu, spec) = self.new_user(0, due);
            nu.last_due = due;
            self.waiting.insert(nu.id, nu);
            return Some(spec);
        }
        user.history
            .push(Message::new("assistant", done.text.clone()));
        user.asked += 1;
        let q = question(user.asked, user.id);
        user.history.push(Message::new("user", q));
        user.last_due = due;
        let spec = self.spec(
            user.id,
            user.asked,
            due,
            Prompt::Messages(user.history.clone()),
            false,
        );
        self.waiting.insert(user.id, user);
        Some(spec)
    }
}

impl Workload for Synthetic {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        if let Some(s) = self.warmup_queue.pop_front() {
            return Some(s);
        }
        let s = self.initial.pop_front()?;
        if let Some(uid) = s.user_id {
            if let Some(u) = self.pending_users.remove(&uid) {
                self.waiting.insert(uid, u);
            }
        }
        Some(s)
    }

    fn on_complete(&mut self, done: &Completed, now_s: f64) -> Vec<RequestSpec> {
        if done.record.warmup {
            self.warmup_left = self.warmup_left.saturating_sub(1);
            if self.warmup_left == 0 && !self.started {
                self.start_measured(now_s);
            }
            return Vec::new();
        }
        let Some(uid) = done.record.user_id else {
            return Vec::new();
        };
        let Some(user) = self.waiting.remove(&uid) else {
            return Vec::new();
        };
        self.next_turn(user, done, now_s).into_iter().collect()
    }

    fn window(&self) -> Option<(f64, f64)> {
        self.t0.map(|t| (t, t + self.duration))
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "per_user_gap_s": self.gap,
            "users_started": self.users_started,
            "warmup_users": self.num_warmup,
            "turns_held_back_by_answer": self.held_back,
            "turns_held_back_total_s": self.held_back_s,
            "conversations_ended_by_failure": self.failed_turns,
        })
    }
}
