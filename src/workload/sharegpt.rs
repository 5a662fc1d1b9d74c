//! ShareGPT: replays real multi-turn conversations from a ShareGPT-format dataset.
//!
//! Data. `DATASET_PATH` (relative to the folder of run-bench.yaml) is a JSON list of
//! `{"id", "conversations": [{"from": "human"|"gpt", "value"}]}`. Conversations whose speakers do
//! not alternate (or that have an unknown speaker) are skipped, as LMBench's preprocessing does;
//! of the first `LIMIT` remaining ones, those with at least `MIN_ROUNDS` human turns are kept.
//!
//! Requests. Round `k` of a conversation is its `k`-th human turn. Its prompt is the system
//! message `You are a helpful assistant.` followed by the conversation so far as messages (human
//! → user, gpt → assistant, with the dataset's recorded answers) and the `k`-th human turn: the
//! replay is deterministic and independent of the model, and no history is sent twice (LMBench
//! sent the concatenated history as one user message and never the answers as answers). Rounds
//! `max(1, START_ROUND) ..= MIN_ROUNDS` are replayed; `max_tokens` is the token count of the
//! recorded answer to that turn capped at 256 (LMBench's cap; 20 where the turn has no answer).
//! The system message carries this run's session tag, as LMBench prefixed the QPS to each
//! prompt, so one QPS point never finds the previous point's conversations in the cache.
//!
//! Arrivals. Open loop at the target rate: the `k`-th request is due at `k/QPS`, grouped by
//! conversation in round order (LMBench's `run.json` order). The `x-user-id` is the
//! conversation's index (offset by the run's user-id base).
//!
//! Warmup. Round `START_ROUND − 1` of every kept conversation is sent first at the same rate,
//! marked warmup; the measured requests start 50 ms after every warmup request has finished. LMBench's
//! warmup set was empty for `START_ROUND ≤ 2`; here it exists whenever `START_ROUND ≥ 2`.

use super::prompt::PromptBuilder;
use super::search::Axis;
use super::{Point, RawWorkload, RunContext, Workload, WorkloadError, WorkloadSpec};
use crate::config::{Checked, Invalid, Item, Num, OneOrMany, O};
use crate::record::{Completed, Message, Prompt, RequestSpec};
use serde::de::{DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The dataset when `DATASET_PATH` is not set (the file LMBench downloads; lmbench never
/// downloads it).
pub const SHAREGPT_DEFAULT_PATH: &str =
    "3-workloads/sharegpt/ShareGPT_V3_unfiltered_cleaned_split.json";

workload_keys! {
    /// `ShareGPT`'s keys.
    pub struct Raw {
        /// Conversations used (default 1000).
        pub LIMIT: O<i64>,
        /// Minimum human turns per conversation (default 5).
        pub MIN_ROUNDS: O<i64>,
        /// First round replayed (default 3).
        pub START_ROUND: O<i64>,
        /// Target rates (required).
        pub QPS: O<OneOrMany<Num>>,
        /// Local ShareGPT-format JSON, relative to the folder of run-bench.yaml (lmbench addition).
        pub DATASET_PATH: O<String>,
    }
}

impl RawWorkload for Raw {
    const NAME: &'static str = "ShareGPT";
    type Spec = Config;

    fn validate(&self, c: &mut Item<'_, '_>) -> Checked<Config> {
        let limit = c.int(&self.LIMIT, "LIMIT", 1);
        let min_rounds = c.int(&self.MIN_ROUNDS, "MIN_ROUNDS", 1);
        let start_round = c.int(&self.START_ROUND, "START_ROUND", 0);
        let qps = c.req_positive_list(&self.QPS, "QPS", false);
        let dataset = match &self.DATASET_PATH {
            Some(p) => c
                .root_file(&self.DATASET_PATH, "DATASET_PATH")
                .map(|_| p.value.clone()),
            None => {
                let p = c.root().join(SHAREGPT_DEFAULT_PATH);
                if p.is_file() {
                    Ok(SHAREGPT_DEFAULT_PATH.to_string())
                } else {
                    c.push(None, "DATASET_PATH", format!("not set, and the default dataset does not exist: {} (lmbench never downloads datasets; 3-workloads/sharegpt/sample.json is a small one)", p.display()));
                    Err(Invalid)
                }
            }
        };
        Ok(Config {
            limit: limit?.unwrap_or(DEFAULT_LIMIT) as usize,
            min_rounds: min_rounds?
                .unwrap_or(DEFAULT_MIN_ROUNDS)
                .min(u32::MAX as i64) as u32,
            start_round: start_round?
                .unwrap_or(DEFAULT_START_ROUND)
                .min(u32::MAX as i64) as u32,
            qps: qps?,
            dataset_path: dataset?,
        })
    }
}

/// A validated ShareGPT item.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LIMIT`: conversations read.
    pub limit: usize,
    /// `MIN_ROUNDS`.
    pub min_rounds: u32,
    /// `START_ROUND`.
    pub start_round: u32,
    /// `QPS`: one point each.
    pub qps: Vec<Num>,
    /// `DATASET_PATH` as written (or the default), relative to the folder of run-bench.yaml.
    pub dataset_path: String,
}

impl WorkloadSpec for Config {
    fn workload_name(&self) -> String {
        "sharegpt".into()
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
        Ok(Box::new(ShareGpt::new(self, point, ctx)?))
    }
}

impl Config {
    /// The point at rate `q`.
    fn qps_point(&self, q: Num) -> Point {
        let n = (self.limit as u64 * u64::from(self.min_rounds.max(1))) as f64;
        Point::qps(q, n / q.value + 10.0)
    }
}

/// LMBench's default `LIMIT`.
pub const DEFAULT_LIMIT: i64 = 1000;
/// LMBench's default `MIN_ROUNDS`.
pub const DEFAULT_MIN_ROUNDS: i64 = 5;
/// LMBench's default `START_ROUND`.
pub const DEFAULT_START_ROUND: i64 = 3;
/// LMBench caps every request's `max_tokens` at this.
pub const MAX_TOKENS_CAP: u32 = 256;
/// `max_tokens` of a human turn that has no recorded answer (LMBench's default output length).
const NO_ANSWER_MAX_TOKENS: u32 = 20;
/// The system message LMBench's replay starts every conversation with.
const SYSTEM_PROMPT: &str = "You are a helpful assistant.";

#[derive(Deserialize)]
struct RawTurn {
    from: String,
    value: String,
}

#[derive(Deserialize)]
struct RawConversation {
    conversations: Vec<RawTurn>,
}

/// A conversation ready to replay.
struct Conversation {
    /// Every turn, in order, with chat roles.
    messages: Vec<Message>,
    /// Index into `messages` of each human turn.
    human_at: Vec<usize>,
    /// `max_tokens` of each human turn (the recorded answer's tokens, capped).
    max_tokens: Vec<u32>,
}

fn role_of(from: &str) -> Option<&'static str> {
    match from.to_ascii_lowercase().as_str() {
        "human" | "user" => Some("user"),
        "gpt" | "chatgpt" | "assistant" | "bard" | "bing" | "model" => Some("assistant"),
        _ => None,
    }
}

/// A conversation's turns as messages, or `None` if a speaker is unknown or two consecutive
/// turns have the same speaker.
fn to_messages(raw: &RawConversation) -> Option<Vec<Message>> {
    let mut out: Vec<Message> = Vec::with_capacity(raw.conversations.len());
    for t in &raw.conversations {
        let role = role_of(&t.from)?;
        if out.last().is_some_and(|m| m.role == role) {
            return None;
        }
        out.push(Message::new(role, t.value.clone()));
    }
    Some(out)
}

/// What was read from the dataset.
struct Loaded {
    /// The first `LIMIT` well-formed conversations.
    conversations: Vec<Vec<Message>>,
    /// Conversations in the file.
    in_file: u64,
    /// Conversations skipped because their speakers do not alternate or are unknown.
    skipped: u64,
}

/// Reads the dataset's top-level list, keeping the first `limit` well-formed conversations and
/// skipping over the rest without building them (the full ShareGPT file is ~650 MB).
struct FirstWellFormed(usize);

impl<'de> DeserializeSeed<'de> for FirstWellFormed {
    type Value = Loaded;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Loaded, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FirstWellFormed {
    type Value = Loaded;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of {\"id\", \"conversations\": [{\"from\", \"value\"}]} objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loaded, A::Error> {
        let mut loaded = Loaded {
            conversations: Vec::new(),
            in_file: 0,
            skipped: 0,
        };
        while loaded.conversations.len() < self.0 {
            let Some(raw) = seq.next_element::<RawConversation>()? else {
                return Ok(loaded);
            };
            loaded.in_file += 1;
            match to_messages(&raw) {
                Some(ms) => loaded.conversations.push(ms),
                None => loaded.skipped += 1,
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            loaded.in_file += 1;
        }
        Ok(loaded)
    }
}

fn load(path: &Path, limit: usize) -> Result<Loaded, WorkloadError> {
    let bytes = std::fs::read(path).map_err(|e| {
        WorkloadError::Other(format!(
            "cannot read the ShareGPT dataset {}: {e}",
            path.display()
        ))
    })?;
    let malformed = |e: serde_json::Error| {
        WorkloadError::Other(format!(
            "the ShareGPT dataset {} is malformed: {e}",
            path.display()
        ))
    };
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let loaded = FirstWellFormed(limit)
        .deserialize(&mut de)
        .map_err(malformed)?;
    de.end().map_err(malformed)?;
    Ok(loaded)
}

/// The ShareGPT workload for one QPS point.
pub struct ShareGpt {
    /// The endpoint: what the client-side prompt count covers.
    api: crate::record::ApiType,
    qps: f64,
    /// Upper bound on the measured send window (`--duration`).
    cap_s: Option<f64>,
    system_text: String,
    prompt: Arc<PromptBuilder>,
    conversations: Vec<Conversation>,
    base: u64,
    /// Rounds replayed, from 1.
    first_round: u32,
    last_round: u32,
    /// Warmup requests as (conversation, round), in send order.
    warmup_plan: Vec<(usize, u32)>,
    /// Measured requests as (conversation, round), in send order.
    measured_plan: Vec<(usize, u32)>,
    next_warmup: usize,
    next_measured: usize,
    warmup_left: usize,
    t0: Option<f64>,
    next_id: u64,
    path: PathBuf,
    in_file: u64,
    skipped: u64,
    loaded: usize,
    measured_failed: u64,
}

impl ShareGpt {
    /// Load the dataset and plan the replay at a QPS point.
    pub fn new(cfg: &Config, point: &Point, ctx: &RunContext) -> Result<Self, WorkloadError> {
        let qps = point
            .target_qps()
            .filter(|q| *q > 0.0)
            .ok_or_else(|| WorkloadError::Other("ShareGPT needs a positive QPS".into()))?;
        let limit = cfg.limit;
        let min_rounds = cfg.min_rounds;
        let start_round = cfg.start_round;
        let rel = cfg.dataset_path.as_str();
        let path = ctx.root.join(rel);
        let loaded = load(&path, limit)?;
        let first_round = start_round.max(1);
        if first_round > min_rounds {
            return Err(WorkloadError::Other(format!(
                "ShareGPT: START_ROUND {start_round} is beyond MIN_ROUNDS {min_rounds}: no round to replay"
            )));
        }
        let b = ctx.prompt.clone();
        let num_loaded = loaded.conversations.len();
        let conversations: Vec<Conversation> = loaded
            .conversations
            .into_iter()
            .filter_map(|ms| {
                let human_at: Vec<usize> = ms
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.role == "user")
                    .map(|(i, _)| i)
                    .collect();
                if human_at.len() < min_rounds as usize {
                    return None;
                }
                // Only the replayed rounds (and the warmup round) need their answer counted.
                let max_tokens = human_at
                    .iter()
                    .enumerate()
                    .map(|(k, &i)| {
                        let round = k as u32 + 1;
                        if round + 1 < first_round || round > min_rounds {
                            return 0;
                        }
                        match ms.get(i + 1) {
                            Some(a) => (b.count(&a.content) as u32).clamp(1, MAX_TOKENS_CAP),
                            None => NO_ANSWER_MAX_TOKENS,
                        }
                    })
                    .collect();
                Some(Conversation {
                    messages: ms,
                    human_at,
                    max_tokens,
                })
            })
            .collect();
        if conversations.is_empty() {
            return Err(WorkloadError::Other(format!(
                "ShareGPT: none of the first {} well-formed conversations of {} has {min_rounds} human turns (MIN_ROUNDS)",
                num_loaded,
                path.display()
            )));
        }
        let mut warmup_plan: Vec<(usize, u32)> = if start_round >= 2 {
            (0..conversations.len())
                .map(|c| (c, start_round - 1))
                .collect()
        } else {
            Vec::new()
        };
        if let Some(cap) = ctx.duration_override_s {
            // `--duration` bounds the warmup's sending as it bounds the measured phase's.
            warmup_plan.truncate((cap * qps).ceil().max(1.0) as usize);
        }
        let measured_plan = (0..conversations.len())
            .flat_map(|c| (first_round..=min_rounds).map(move |r| (c, r)))
            .collect();
        let warmup_left = warmup_plan.len();
        Ok(ShareGpt {
            qps,
            cap_s: ctx.duration_override_s,
            system_text: format!("{SYSTEM_PROMPT} Session {:016x}.", ctx.seed),
            prompt: ctx.prompt.clone(),
            api: ctx.api,
            conversations,
            base: ctx.user_id_base,
            first_round,
            last_round: min_rounds,
            t0: (warmup_left == 0).then_some(0.0),
            warmup_plan,
            measured_plan,
            next_warmup: 0,
            next_measured: 0,
            warmup_left,
            next_id: 0,
            path,
            in_file: loaded.in_file,
            skipped: loaded.skipped,
            loaded: num_loaded,
            measured_failed: 0,
        })
    }

    fn spec(&mut self, conv: usize, round: u32, due: f64, warmup: bool) -> RequestSpec {
        let c = &self.conversations[conv];
        let upto = c.human_at[round as usize - 1];
        let mut messages = Vec::with_capacity(upto + 2);
        messages.push(Message::new("system", self.system_text.clone()));
        messages.extend_from_slice(&c.messages[..=upto]);
        let prompt = Prompt::Messages(messages);
        let client_prompt_tokens = self.prompt.prompt_tokens(self.api, &prompt) as u64;
        let id = self.next_id;
        self.next_id += 1;
        RequestSpec {
            id,
            user_id: Some(self.base + conv as u64),
            round,
            due_s: due,
            slot_s: None,
            prompt,
            max_tokens: c.max_tokens[round as usize - 1],
            client_prompt_tokens,
            warmup,
            extra: Default::default(),
        }
    }

    /// Requests in the measured phase that fit the send window.
    fn measured_len(&self) -> usize {
        match self.cap_s {
            None => self.measured_plan.len(),
            Some(c) => self
                .measured_plan
                .len()
                .min((c * self.qps).ceil().max(0.0) as usize),
        }
    }
}

impl Workload for ShareGpt {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        if self.next_warmup < self.warmup_plan.len() {
            let k = self.next_warmup;
            self.next_warmup += 1;
            let (c, r) = self.warmup_plan[k];
            return Some(self.spec(c, r, k as f64 / self.qps, true));
        }
        let t0 = self.t0?;
        let k = self.next_measured;
        if k >= self.measured_len() {
            return None;
        }
        self.next_measured += 1;
        let (c, r) = self.measured_plan[k];
        Some(self.spec(c, r, t0 + k as f64 / self.qps, false))
    }

    fn on_complete(&mut self, done: &Completed, now_s: f64) -> Vec<RequestSpec> {
        if done.record.warmup {
            self.warmup_left = self.warmup_left.saturating_sub(1);
            if self.warmup_left == 0 {
                self.t0.get_or_insert(now_s + super::MEASURED_START_LEAD_S);
            }
        } else if !done.record.ok() {
            self.measured_failed += 1;
        }
        Vec::new()
    }

    fn window(&self) -> Option<(f64, f64)> {
        self.t0
            .map(|t| (t, t + self.measured_len() as f64 / self.qps))
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "dataset": self.path.display().to_string(),
            "conversations_in_file": self.in_file,
            "conversations_skipped_malformed": self.skipped,
            "conversations_loaded": self.loaded,
            "conversations_replayed": self.conversations.len(),
            "rounds": [self.first_round, self.last_round],
            "warmup_requests": self.warmup_plan.len(),
            "measured_requests": self.measured_len(),
            "measured_failed": self.measured_failed,
        })
    }
}

#[cfg(test)]
mod tests;
