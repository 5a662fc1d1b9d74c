//! LMCacheSynthetic: LMBench's multi-round QA. Users share a long system prompt, each has its
//! own context, and asks `NUM_ROUNDS` questions; every answer is appended to that user's
//! history, so later turns re-send a growing prefix (what a KV cache should exploit).
//!
//! Arrivals. With `N` users at a target of `q` requests/s, each user asks every `g = N/q`
//! seconds. At the start the `N` users are staggered as if the benchmark had been running (user
//! `i` is due at `i·g/N` and has already asked `⌊i·R/N⌋` questions, with its history pre-filled
//! as LMBench does), so the rate is `q` from the first second. When a user has asked its last
//! question a new user takes its slot, so the population never decays. A turn needs the
//! previous answer: its slot is `g` after the previous turn's slot, and it is due at its slot or
//! when the answer arrives if that is later. Slots advance by `g` whatever the answers do, and
//! every turn records its slot, so latency measured from the slot includes the time a turn was
//! held back (no coordinated omission); held-back turns are also counted, and a server that
//! cannot keep up shows as a shortfall against the slots' rate rather than silently lowering
//! the load.
//!
//! Building. Each user's history keeps its client-side token count as messages are appended, so
//! a turn counts only its new messages; the first message (system prompt + context) is counted
//! in pieces. The first measured users are built one by one as the schedule reaches them.
//!
//! Warmup. `NUM_USERS_WARMUP` users with their own ids (never reused by measured users) each
//! send one first turn, 0.5 s apart, before the measured users start (50 ms after the last
//! warmup answer): the shared system prompt is cached, the measured users' contexts are not. Warmup records are excluded from metrics.

use super::prompt::{mix_seed, PromptBuilder};
use super::search::Axis;
use super::MEASURED_START_LEAD_S;
use super::{
    AnswerSlot, Point, RawWorkload, RunContext, TurnAhead, Workload, WorkloadError, WorkloadSpec,
};
use crate::client::render_completions_prompt;
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
        self.qps.iter().map(|q| self.qps_point(*q)).collect()
    }

    fn search_point(&self, axis: Axis, value: Num) -> Result<Point, String> {
        match axis {
            Axis::Qps => Ok(self.qps_point(value)),
            _ => Err(format!("searches QPS only, not {}", axis.key())),
        }
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

impl Config {
    /// The point at rate `q`.
    fn qps_point(&self, q: Num) -> Point {
        let warm = self.warmup_users as f64;
        Point::qps(q, self.duration_s + warm / q.value + 5.0)
    }
}

/// Seconds between warmup requests (LMBench's warmup runs at 2 QPS).
const WARMUP_GAP_S: f64 = 0.5;
/// Warmup user ids start this far above the run's base, far from measured ids.
const WARMUP_ID_OFFSET: u64 = 900_000;

struct User {
    id: u64,
    history: Vec<Message>,
    /// The client-side tokens of `history` (the sum of [`PromptBuilder::message_tokens`]),
    /// kept as messages are appended so that no turn re-tokenizes the whole history.
    tokens: usize,
    /// Questions asked so far (including pre-filled ones).
    asked: u32,
    /// The slot of this user's previous request: when it was due had every answer come in
    /// time. Slots advance by the per-user gap whatever the answers do.
    slot: f64,
}

/// The LMCacheSynthetic workload for one QPS point.
pub struct Synthetic {
    prompt: std::sync::Arc<PromptBuilder>,
    api: ApiType,
    num_users: u64,
    rounds: u32,
    answer_len: u32,
    gap: f64,
    duration: f64,
    system_text: String,
    /// Tokens of the first message's head up to the user id (label, system prompt, context
    /// label), counted once.
    head_tokens: usize,
    /// Whether a first message's count is the sum of its pieces' counts (checked against a
    /// whole count on the first one built; true for the built-in tokenizer).
    pieces_add_up: Option<bool>,
    history_len: usize,
    seed: u64,
    base: u64,
    next_id: u64,
    next_user: u64,
    warmup_left: u64,
    warmup_queue: VecDeque<RequestSpec>,
    /// The first measured users not built yet: (questions already asked, slot), built one by
    /// one as the schedule asks for them.
    initial: VecDeque<(u32, f64)>,
    started: bool,
    t0: Option<f64>,
    /// Users with a request in flight, by user id.
    waiting: HashMap<u64, User>,
    held_back: u64,
    held_back_s: f64,
    users_started: u64,
    num_warmup: u64,
    failed_turns: u64,
    /// The next new user's first message (user id, message, tokens), built ahead while the
    /// builder is idle ([`Workload::prepare`]): with long contexts it is the costliest part of
    /// a turn (a 20,000-token filler takes about 0.4 ms), and a new user's turn is often due the
    /// moment an answer ends another user's conversation.
    spare: Option<(u64, Message, usize)>,
    /// New users built ahead to take over the slot of a conversation that ends with the answer
    /// to the request with this id ([`Workload::turn_ahead`]); used whether or not the turn
    /// built ahead was sent, so that user ids do not depend on it.
    reserved: HashMap<u64, User>,
}

/// `text` as the start of a user message as sent: on the completions API after the rendered
/// role label, on the chat API as it is.
fn line_start(api: ApiType, text: &str) -> String {
    match api {
        ApiType::Chat => text.to_string(),
        ApiType::Completions => {
            let line = render_completions_prompt(&[Message::new("user", text)]);
            let tail = render_completions_prompt(&[]);
            // The line is `User: {text}\n` followed by the tail.
            line[..line.len() - tail.len() - 1].to_string()
        }
    }
}

/// The first message's text up to the user id.
fn first_head(system: &str) -> String {
    format!("Hi, here's some system prompt:{system}.Here are some other context: user_")
}

fn first_message(system: &str, uid: u64, history_filler: &str, question: &str) -> String {
    format!("{}{uid}{history_filler}.{question}", first_head(system))
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
        let head_tokens = b.count(&line_start(ctx.api, &first_head(&system_text)));
        let mut w = Synthetic {
            prompt: ctx.prompt.clone(),
            api: ctx.api,
            num_users,
            rounds,
            answer_len: cfg.answer_len,
            gap: num_users as f64 / qps,
            duration,
            system_text,
            head_tokens,
            pieces_add_up: None,
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
            held_back: 0,
            held_back_s: 0.0,
            users_started: 0,
            num_warmup: cfg.warmup_users,
            failed_turns: 0,
            spare: None,
            reserved: HashMap::new(),
        };
        for i in 0..w.num_warmup {
            let uid = w.base + WARMUP_ID_OFFSET + i;
            let first = w.first_turn(uid, 1);
            let due = i as f64 * WARMUP_GAP_S;
            let spec = w.spec(uid, 1, due, None, vec![first.0], first.1, true);
            w.warmup_queue.push_back(spec);
        }
        if w.num_warmup == 0 {
            w.start_measured(0.0);
        }
        Ok(w)
    }

    /// A user's first message and its client-side tokens. The message is the head (system
    /// prompt included), the user id, `CHAT_HISTORY` tokens of filler and the question; it is
    /// counted piece by piece (the head once per run, the filler by its length), which is exact
    /// because each piece starts where the pre-tokenizer splits anyway — checked on the first
    /// message against a whole count, which is used from then on if the two differ (a
    /// `TOKENIZER` may split differently). A 20,000-token context costs a whole count about
    /// 3.5 ms, the pieces a few microseconds.
    fn first_turn(&mut self, uid: u64, n: u32) -> (Message, usize) {
        if n == 1 && self.spare.as_ref().is_some_and(|s| s.0 == uid) {
            if let Some((_, msg, tokens)) = self.spare.take() {
                return (msg, tokens);
            }
        }
        let filler = self
            .prompt
            .filler_seeded(self.history_len, mix_seed(&[self.seed, uid]));
        let q = question(n, uid);
        let msg = Message::new("user", first_message(&self.system_text, uid, &filler, &q));
        let b = &self.prompt;
        let pieces = || {
            let end = format!(".{q}");
            let end = match self.api {
                ApiType::Completions => end + "\n",
                ApiType::Chat => end,
            };
            self.head_tokens + b.count(&uid.to_string()) + self.history_len + b.count(&end)
        };
        let tokens = match self.pieces_add_up {
            Some(true) => pieces(),
            Some(false) => b.message_tokens(self.api, &msg),
            None => {
                let whole = b.message_tokens(self.api, &msg);
                self.pieces_add_up = Some(whole == pieces());
                whole
            }
        };
        (msg, tokens)
    }

    #[allow(clippy::too_many_arguments)]
    fn spec(
        &mut self,
        uid: u64,
        round: u32,
        due: f64,
        slot: Option<f64>,
        messages: Vec<Message>,
        tokens: usize,
        warmup: bool,
    ) -> RequestSpec {
        let id = self.next_id;
        self.next_id += 1;
        RequestSpec {
            id,
            user_id: Some(uid),
            round,
            due_s: due,
            slot_s: slot,
            prompt: Prompt::Messages(messages),
            max_tokens: self.answer_len,
            client_prompt_tokens: (tokens + self.prompt.tail_tokens(self.api)) as u64,
            warmup,
            extra: Default::default(),
        }
    }

    /// A new user whose first request has slot `slot` and is due at `due`: history holding its
    /// first message (with `asked_before` questions pre-filled).
    fn new_user(&mut self, asked_before: u32, slot: f64, due: f64) -> (User, RequestSpec) {
        let uid = self.base + self.next_user;
        self.next_user += 1;
        self.users_started += 1;
        let b = self.prompt.clone();
        let mut history = Vec::new();
        let mut tokens = 0;
        let mut push = |history: &mut Vec<Message>, m: Message, t: usize| {
            tokens += t;
            history.push(m);
        };
        // Pre-filled turns, as LMBench does for users that are "already" mid-conversation at
        // the start: questions with placeholder answers of ANSWER_LEN tokens.
        for k in 1..=asked_before {
            let (m, t) = if k == 1 {
                self.first_turn(uid, 1)
            } else {
                let m = Message::new("user", question(k, uid));
                let t = b.message_tokens(self.api, &m);
                (m, t)
            };
            push(&mut history, m, t);
            let answer_seed = mix_seed(&[self.seed, uid, k as u64]);
            let filler = b.filler_seeded((self.answer_len as usize).saturating_sub(5), answer_seed);
            let m = Message::new("assistant", format!("Here's story #{k}:{filler}"));
            let t = b.message_tokens(self.api, &m);
            push(&mut history, m, t);
        }
        let n = asked_before + 1;
        let (m, t) = if n == 1 {
            self.first_turn(uid, 1)
        } else {
            let m = Message::new("user", question(n, uid));
            let t = b.message_tokens(self.api, &m);
            (m, t)
        };
        push(&mut history, m, t);
        let slot_s = (due != slot).then_some(slot);
        let spec = self.spec(uid, n, due, slot_s, history.clone(), tokens, false);
        let user = User {
            id: uid,
            history,
            tokens,
            asked: n,
            slot,
        };
        (user, spec)
    }

    /// The measured users start: staggered over one per-user gap from `now` plus a lead, so
    /// that the first of them is built before it is due (they are built one by one as the
    /// schedule asks for them, not all at once here).
    fn start_measured(&mut self, now: f64) {
        let t0 = if now > 0.0 {
            now + MEASURED_START_LEAD_S
        } else {
            now
        };
        self.started = true;
        self.t0 = Some(t0);
        let n = self.num_users;
        for i in 0..n {
            let due = t0 + i as f64 * self.gap / n as f64;
            let asked = ((i * self.rounds as u64) / n) as u32;
            self.initial.push_back((asked.min(self.rounds - 1), due));
        }
    }

    fn window_end(&self) -> f64 {
        self.t0.unwrap_or(0.0) + self.duration
    }

    /// Appends an answer and the user's next question to the user's history; the next turn's
    /// slot is `slot`.
    fn append_turn(&self, user: &mut User, answer: &str, slot: f64) {
        let b = &self.prompt;
        let answer = Message::new("assistant", answer);
        user.tokens += b.message_tokens(self.api, &answer);
        user.history.push(answer);
        user.asked += 1;
        let q = Message::new("user", question(user.asked, user.id));
        user.tokens += b.message_tokens(self.api, &q);
        user.history.push(q);
        user.slot = slot;
    }

    /// The follow-up of a user whose previous request finished at `now`: due at the user's
    /// next slot, or at `now` if the answer came after that slot (a held-back turn).
    fn next_turn(&mut self, mut user: User, done: &Completed, now: f64) -> Option<RequestSpec> {
        let slot = user.slot + self.gap;
        if slot >= self.window_end() {
            return None;
        }
        let due = if now > slot {
            self.held_back += 1;
            self.held_back_s += now - slot;
            now
        } else {
            slot
        };
        // The turn built ahead for this answer (`turn_ahead`) went out with it: it is recorded
        // here instead of built.
        let sent_ahead = done.follow_up.is_some();
        // The new user built ahead to take over this slot, sent or not.
        let reserved = self.reserved.remove(&done.record.id);
        if user.asked >= self.rounds || !done.record.ok() {
            if !done.record.ok() {
                // A failed turn ends that conversation (its answer is missing); the slot goes on
                // with a new user so the offered load is kept.
                self.failed_turns += 1;
            }
            let Some(nu) = reserved else {
                let (nu, spec) = self.new_user(0, slot, due);
                self.waiting.insert(nu.id, nu);
                return Some(spec);
            };
            let spec = (!sent_ahead).then(|| {
                let slot_s = (due != slot).then_some(slot);
                let h = nu.history.clone();
                self.spec(nu.id, nu.asked, due, slot_s, h, nu.tokens, false)
            });
            self.waiting.insert(nu.id, nu);
            return spec;
        }
        self.append_turn(&mut user, &done.text, slot);
        if sent_ahead {
            self.waiting.insert(user.id, user);
            return None;
        }
        let spec = self.spec(
            user.id,
            user.asked,
            due,
            Some(slot),
            user.history.clone(),
            user.tokens,
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
        let (asked, due) = self.initial.pop_front()?;
        let (user, spec) = self.new_user(asked, due, due);
        self.waiting.insert(user.id, user);
        Some(spec)
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

    /// The user's next turn, if the conversation goes on after `after`: its history, an empty
    /// answer, its next question, due at its slot. What `on_complete` would build from a
    /// successful answer, less that answer.
    fn turn_ahead(&mut self, after: &RequestSpec) -> Option<TurnAhead> {
        let user = self.waiting.get(&after.user_id?)?;
        let slot = user.slot + self.gap;
        if after.warmup || slot >= self.window_end() {
            return None;
        }
        if user.asked >= self.rounds {
            // The conversation ends with this answer: a new user takes over the slot.
            let (nu, spec) = self.new_user(0, slot, slot);
            self.reserved.insert(after.id, nu);
            return Some(TurnAhead { spec, answer: None });
        }
        let (uid, round) = (user.id, user.asked + 1);
        let mut history = user.history.clone();
        let at = history.len();
        history.push(Message::new("assistant", ""));
        let q = Message::new("user", question(round, uid));
        let tokens = user.tokens + self.prompt.message_tokens(self.api, &q);
        history.push(q);
        let spec = self.spec(uid, round, slot, Some(slot), history, tokens, false);
        let (b, api) = (self.prompt.clone(), self.api);
        let tokens = Box::new(move |text: &str| {
            b.message_tokens(api, &Message::new("assistant", text)) as u64
        });
        Some(TurnAhead {
            spec,
            answer: Some(AnswerSlot { at, tokens }),
        })
    }

    fn prepare(&mut self) -> bool {
        let uid = self.base + self.next_user;
        if self.spare.as_ref().is_some_and(|s| s.0 == uid) {
            return false;
        }
        let (msg, tokens) = self.first_turn(uid, 1);
        self.spare = Some((uid, msg, tokens));
        true
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "per_user_gap_s": self.gap,
            // Users built ahead whose slot never came are not started.
            "users_started": self.users_started - self.reserved.len() as u64,
            "warmup_users": self.num_warmup,
            "turns_held_back_by_answer": self.held_back,
            "turns_held_back_total_s": self.held_back_s,
            "conversations_ended_by_failure": self.failed_turns,
        })
    }
}

#[cfg(test)]
mod tests;
