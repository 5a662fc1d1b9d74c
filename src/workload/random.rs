//! Random: independent requests with random prompts (no history), the load a server sees from
//! many users asking one-off questions.
//!
//! Open loop at the target rate: request `k` is due at `k/q`. `NUM_USERS` slots share the load;
//! slot `s` sends requests `s, s+N, s+2N, …`, and after `NUM_ROUNDS` questions its user is
//! replaced by a new one (LMBench never adds users, so its rate decays to zero). The prompt is
//! `Question <round> for user <id>:` followed by exactly `PROMPT_LEN` tokens of random words
//! (LMBench: words of random letters, about three tokens each) and a fixed closing sentence.

use super::prompt::{mix_seed, PromptBuilder};
use super::search::Axis;
use super::{Point, RawWorkload, RunContext, Workload, WorkloadError, WorkloadSpec};
use crate::config::{Checked, Item, Num, OneOrMany, O};
use crate::record::{Completed, Prompt, RequestSpec};

/// Default seconds of sending per point for Random and Agentic (LMBench's `--time 100`).
pub const RANDOM_DEFAULT_DURATION_S: f64 = 100.0;

workload_keys! {
    /// `Random`'s keys.
    pub struct Raw {
        /// Users sending in parallel (required).
        pub NUM_USERS: O<i64>,
        /// Questions per user before it is replaced by a new user (required).
        pub NUM_ROUNDS: O<i64>,
        /// Prompt length in tokens (required; LMBench: words).
        pub PROMPT_LEN: O<i64>,
        /// max_tokens (required).
        pub ANSWER_LEN: O<i64>,
        /// Target rates (required).
        pub QPS: O<OneOrMany<Num>>,
        /// Seconds of sending per QPS point (lmbench addition; LMBench's fixed 100).
        pub DURATION: O<Num>,
    }
}

impl RawWorkload for Raw {
    const NAME: &'static str = "Random";

    type Spec = Config;

    fn validate(&self, c: &mut Item<'_, '_>) -> Checked<Config> {
        let users = c.req_int(&self.NUM_USERS, "NUM_USERS", 1);
        let rounds = c.req_int(&self.NUM_ROUNDS, "NUM_ROUNDS", 1);
        let prompt_len = c.req_int(&self.PROMPT_LEN, "PROMPT_LEN", 1);
        let answer_len = c.req_int(&self.ANSWER_LEN, "ANSWER_LEN", 1);
        let qps = c.req_positive_list(&self.QPS, "QPS", false);
        let duration = c.positive(&self.DURATION, "DURATION");
        Ok(Config {
            users: users? as u64,
            rounds: rounds? as u64,
            prompt_len: prompt_len? as usize,
            answer_len: answer_len?.min(u32::MAX as i64) as u32,
            qps: qps?,
            duration_s: duration?.unwrap_or(RANDOM_DEFAULT_DURATION_S),
        })
    }
}

/// A validated Random item.
#[derive(Debug, Clone)]
pub struct Config {
    /// `NUM_USERS`.
    pub users: u64,
    /// `NUM_ROUNDS`.
    pub rounds: u64,
    /// `PROMPT_LEN`, in tokens.
    pub prompt_len: usize,
    /// `ANSWER_LEN`.
    pub answer_len: u32,
    /// `QPS`: one point each.
    pub qps: Vec<Num>,
    /// `DURATION`: seconds of sending per point.
    pub duration_s: f64,
}

impl WorkloadSpec for Config {
    fn workload_name(&self) -> String {
        "random".into()
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
        Ok(Box::new(RandomQa::new(self, point, ctx)?))
    }
}

impl Config {
    /// The point at rate `q`.
    fn qps_point(&self, q: Num) -> Point {
        Point::qps(q, self.duration_s + 5.0)
    }
}

/// The Random workload for one QPS point.
pub struct RandomQa {
    prompt: std::sync::Arc<PromptBuilder>,
    users: u64,
    rounds: u64,
    prompt_len: usize,
    answer_len: u32,
    qps: f64,
    duration: f64,
    seed: u64,
    base: u64,
    next: u64,
}

impl RandomQa {
    /// Build the workload from its config at a QPS point.
    pub fn new(cfg: &Config, point: &Point, ctx: &RunContext) -> Result<Self, WorkloadError> {
        let qps = point
            .target_qps()
            .ok_or_else(|| WorkloadError::Other("Random needs a QPS".into()))?;
        Ok(RandomQa {
            prompt: ctx.prompt.clone(),
            users: cfg.users,
            rounds: cfg.rounds,
            prompt_len: cfg.prompt_len,
            answer_len: cfg.answer_len,
            qps,
            duration: ctx.duration_override_s.unwrap_or(cfg.duration_s),
            seed: ctx.seed,
            base: ctx.user_id_base,
            next: 0,
        })
    }
}

impl Workload for RandomQa {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        let k = self.next;
        let due = k as f64 / self.qps;
        if due >= self.duration {
            return None;
        }
        self.next += 1;
        let slot = k % self.users;
        let count = k / self.users;
        let generation = count / self.rounds;
        let round = (count % self.rounds + 1) as u32;
        let uid = self.base + generation * self.users + slot;
        let b = &self.prompt;
        let filler = b.filler_seeded(self.prompt_len, mix_seed(&[self.seed, k]));
        let text = format!(
            "Question {round} for user {uid}:{filler}. Please provide a detailed response."
        );
        let tokens = b.count(&text) as u64;
        Some(RequestSpec {
            id: k,
            user_id: Some(uid),
            round,
            due_s: due,
            slot_s: None,
            prompt: Prompt::Text(text),
            max_tokens: self.answer_len,
            client_prompt_tokens: tokens,
            warmup: false,
            extra: Default::default(),
        })
    }

    fn on_complete(&mut self, _done: &Completed, _now_s: f64) -> Vec<RequestSpec> {
        Vec::new()
    }

    fn window(&self) -> Option<(f64, f64)> {
        Some((0.0, self.duration))
    }
}
