//! Random: independent requests with random prompts (no history), the load a server sees from
//! many users asking one-off questions.
//!
//! Open loop at the target rate: request `k` is due at `k/q`. `NUM_USERS` slots share the load;
//! slot `s` sends requests `s, s+N, s+2N, …`, and after `NUM_ROUNDS` questions its user is
//! replaced by a new one (LMBench never adds users, so its rate decays to zero). The prompt is
//! `Question <round> for user <id>:` followed by exactly `PROMPT_LEN` tokens of random words
//! (LMBench: words of random letters, about three tokens each) and a fixed closing sentence.

use super::prompt::{mix_seed, PromptBuilder};
use super::{RunContext, Workload, WorkloadError};
use crate::config::model::RandomW as Cfg;
use crate::plan::{PlannedRun, RANDOM_DEFAULT_DURATION_S};
use crate::record::{Completed, Prompt, RequestSpec};

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
    /// Build the workload from its config at the run's QPS point.
    pub fn new(cfg: &Cfg, run: &PlannedRun, ctx: &RunContext) -> Result<Self, WorkloadError> {
        let get = |v: &Option<serde_saphyr::Spanned<i64>>| v.as_ref().map(|s| s.value).unwrap_or(0);
        let qps = ctx
            .qps
            .or(run.qps.map(|q| q.value))
            .ok_or_else(|| WorkloadError::Other("Random needs a QPS".into()))?;
        Ok(RandomQa {
            prompt: ctx.prompt.clone(),
            users: get(&cfg.NUM_USERS).max(1) as u64,
            rounds: get(&cfg.NUM_ROUNDS).max(1) as u64,
            prompt_len: get(&cfg.PROMPT_LEN).max(1) as usize,
            answer_len: get(&cfg.ANSWER_LEN).max(1) as u32,
            qps,
            duration: ctx.duration_override_s.unwrap_or_else(|| {
                cfg.DURATION
                    .as_ref()
                    .map(|d| d.value.value)
                    .unwrap_or(RANDOM_DEFAULT_DURATION_S)
            }),
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
