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
//! marked warmup; the measured requests start when every warmup request has finished. LMBench's
//! warmup set was empty for `START_ROUND ≤ 2`; here it exists whenever `START_ROUND ≥ 2`.

use super::prompt::PromptBuilder;
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

    fn tokenizer(&self) -> &O<String> {
        &self.TOKENIZER
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
        let n = (self.limit as u64 * u64::from(self.min_rounds.max(1))) as f64;
        self.qps
            .iter()
            .map(|q| Point::qps(*q, n / q.value + 10.0))
            .collect()
    }

    fn build(&self, point: &Point, ctx: &RunContext) -> Result<Box<dyn Workload>, WorkloadError> {
        Ok(Box::new(ShareGpt::new(self, point, ctx)?))
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
        let client_prompt_tokens = messages
            .iter()
            .map(|m| self.prompt.count(&m.content) as u64)
            .sum();
        let id = self.next_id;
        self.next_id += 1;
        RequestSpec {
            id,
            user_id: Some(self.base + conv as u64),
            round,
            due_s: due,
            prompt: Prompt::Messages(messages),
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
                self.t0.get_or_insert(now_s);
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
mod tests {
    use super::*;
    use crate::workload::agentic::test_support::*;
    use std::collections::HashMap;

    const SAMPLE: &str = "3-workloads/sharegpt/sample.json";

    /// The item, validated against the context's root (where its dataset is).
    fn build_at(yaml: &str, c: &RunContext) -> Result<ShareGpt, WorkloadError> {
        let cfg = crate::workload::spec_from_yaml_in::<Raw>(yaml, &c.root);
        build_cfg(&cfg, c)
    }

    fn build_cfg(cfg: &Config, c: &RunContext) -> Result<ShareGpt, WorkloadError> {
        let run = run("ShareGPT", "QPS", 4.0, Some(4.0));
        ShareGpt::new(cfg, &run, c)
    }

    fn build(yaml: &str) -> ShareGpt {
        build_at(&format!("DATASET_PATH: {SAMPLE}\n{yaml}"), &ctx(1)).unwrap()
    }

    #[test]
    fn defaults_replay_rounds_three_to_five_after_a_warmup_of_round_two() {
        let mut w = build("QPS: [4]\n");
        let sent = drive(&mut w, |_| 0.5, |_| false);
        // The sample has 30 conversations; one has only 4 human turns.
        let convs = 29;
        let warm: Vec<&Sent> = sent.iter().filter(|s| s.spec.warmup).collect();
        let measured: Vec<&Sent> = sent.iter().filter(|s| !s.spec.warmup).collect();
        assert_eq!(warm.len(), convs);
        assert!(warm.iter().all(|s| s.spec.round == 2));
        assert_eq!(measured.len(), convs * 3);
        let warm_end = warm.iter().map(|s| s.end).fold(0.0, f64::max);
        for (k, s) in measured.iter().enumerate() {
            // Conversation order, rounds 3, 4, 5, one request every 1/QPS.
            assert_eq!(s.spec.round, 3 + (k % 3) as u32);
            assert_eq!(s.spec.user_id, Some(5_000_000 + (k / 3) as u64));
            assert!((s.spec.due_s - (warm_end + k as f64 / 4.0)).abs() < 1e-9);
        }
        for (k, s) in warm.iter().enumerate() {
            assert!((s.spec.due_s - k as f64 / 4.0).abs() < 1e-9);
        }
        let (a, b) = w.window().unwrap();
        assert!((a - warm_end).abs() < 1e-9);
        assert!((b - a - 87.0 / 4.0).abs() < 1e-9);
        assert_eq!(w.stats()["conversations_replayed"], convs);
    }

    #[test]
    fn warmup_exists_from_start_round_two_and_not_below() {
        let two = build("QPS: 4\nSTART_ROUND: 2\n");
        assert_eq!(two.warmup_plan.len(), 29);
        assert!(two.warmup_plan.iter().all(|&(_, r)| r == 1));
        assert_eq!(two.measured_plan.len(), 29 * 4);
        for s in [1, 0] {
            let w = build(&format!("QPS: 4\nSTART_ROUND: {s}\n"));
            assert!(w.warmup_plan.is_empty());
            assert_eq!(w.measured_plan.len(), 29 * 5);
            assert_eq!(w.t0, Some(0.0));
        }
        let mut one = build("QPS: 4\nSTART_ROUND: 1\n");
        assert!(!one.next_scheduled().unwrap().warmup);
    }

    #[test]
    fn each_round_extends_the_previous_prompt_with_the_recorded_answer() {
        let mut w = build("QPS: 4\nSTART_ROUND: 1\nMIN_ROUNDS: 6\n");
        let sent = drive(&mut w, |_| 0.1, |_| false);
        let data: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(SAMPLE).unwrap()).unwrap();
        let b = PromptBuilder::global();
        let mut by_user: HashMap<u64, Vec<&RequestSpec>> = HashMap::new();
        for s in &sent {
            by_user
                .entry(s.spec.user_id.unwrap())
                .or_default()
                .push(&s.spec);
        }
        assert!(!by_user.is_empty());
        for reqs in by_user.values() {
            assert_eq!(reqs.len(), 6);
            for (k, r) in reqs.iter().enumerate() {
                let ms = messages(r);
                assert_eq!(r.round, k as u32 + 1);
                assert_eq!(ms[0].role, "system");
                assert!(ms[0].content.starts_with("You are a helpful assistant."));
                // System, then k + 1 questions and k answers, alternating.
                assert_eq!(ms.len(), 2 * k + 2);
                for (i, m) in ms[1..].iter().enumerate() {
                    assert_eq!(m.role, if i % 2 == 0 { "user" } else { "assistant" });
                }
                let texts: std::collections::HashSet<&str> =
                    ms.iter().map(|m| m.content.as_str()).collect();
                assert_eq!(texts.len(), ms.len(), "no text is sent twice");
                if k > 0 {
                    assert_eq!(&ms[..ms.len() - 2], messages(reqs[k - 1]));
                }
            }
        }
        // The answers are the dataset's, and max_tokens is the next answer's length (≤ 256).
        let first = &sent[0].spec;
        let conv = &data[0]["conversations"];
        assert_eq!(
            messages(first)[1].content,
            conv[0]["value"].as_str().unwrap()
        );
        let answer = conv[1]["value"].as_str().unwrap();
        assert_eq!(first.max_tokens, b.count(answer).min(256) as u32);
        assert_eq!(
            first.client_prompt_tokens,
            messages(first)
                .iter()
                .map(|m| b.count(&m.content) as u64)
                .sum::<u64>()
        );
    }

    #[test]
    fn limit_and_min_rounds_select_conversations() {
        let w = build("QPS: 4\nLIMIT: 5\nMIN_ROUNDS: 6\n");
        // Of the first five conversations, those with at least six human turns: #0, #1, #3, #4.
        assert_eq!(w.conversations.len(), 4);
        assert_eq!(w.stats()["conversations_loaded"], 5);
        assert_eq!(w.stats()["conversations_in_file"], 30);
        let none = build_at(
            &format!("DATASET_PATH: {SAMPLE}\nQPS: 4\nMIN_ROUNDS: 9\n"),
            &ctx(1),
        );
        assert!(matches!(none, Err(WorkloadError::Other(m)) if m.contains("MIN_ROUNDS")));
    }

    #[test]
    fn bad_datasets_are_errors_naming_the_file_and_odd_conversations_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ctx(1);
        c.root = dir.path().to_path_buf();
        for (name, body) in [
            ("object.json", r#"{"not": "a list"}"#),
            (
                "novalue.json",
                r#"[{"id": "a", "conversations": [{"from": "human"}]}]"#,
            ),
            ("truncated.json", r#"[{"id": "a", "conversations": ["#),
        ] {
            std::fs::write(dir.path().join(name), body).unwrap();
            let err = build_at(&format!("DATASET_PATH: {name}\nQPS: 1\n"), &c)
                .err()
                .expect("a malformed dataset is an error");
            let msg = err.to_string();
            assert!(msg.contains(name) && msg.contains("malformed"), "{msg}");
        }
        // A dataset that is gone by the time the run starts.
        let mut gone =
            crate::workload::spec_from_yaml_in::<Raw>("DATASET_PATH: odd.json\nQPS: 1\n", &{
                std::fs::write(dir.path().join("odd.json"), "[]").unwrap();
                dir.path().to_path_buf()
            });
        gone.dataset_path = "missing.json".into();
        let err = build_cfg(&gone, &c).err().unwrap();
        assert!(err.to_string().contains("missing.json"));
        let turns = |n: usize, twice: bool| {
            let mut v: Vec<serde_json::Value> = (0..n)
                .flat_map(|i| {
                    [
                        serde_json::json!({"from": "human", "value": format!("q{i}")}),
                        serde_json::json!({"from": "gpt", "value": format!("a{i}")}),
                    ]
                })
                .collect();
            if twice {
                v.insert(1, serde_json::json!({"from": "human", "value": "again"}));
            }
            serde_json::json!({"id": "x", "conversations": v})
        };
        let data = serde_json::json!([turns(5, true), turns(5, false), turns(5, false)]);
        std::fs::write(dir.path().join("odd.json"), data.to_string()).unwrap();
        let w = build_at("DATASET_PATH: odd.json\nQPS: 1\n", &c).unwrap();
        assert_eq!(w.conversations.len(), 2);
        assert_eq!(w.stats()["conversations_skipped_malformed"], 1);
    }

    #[test]
    fn duration_caps_both_phases_and_the_stream_is_reproducible() {
        let mut c = ctx(1);
        c.duration_override_s = Some(2.0);
        let yaml = format!("DATASET_PATH: {SAMPLE}\nQPS: 4\n");
        let mut w = build_at(&yaml, &c).unwrap();
        let sent = drive(&mut w, |_| 0.2, |_| false);
        assert_eq!(sent.iter().filter(|s| s.spec.warmup).count(), 8);
        assert_eq!(sent.iter().filter(|s| !s.spec.warmup).count(), 8);
        let again = drive(&mut build_at(&yaml, &c).unwrap(), |_| 0.2, |_| false);
        assert_eq!(stream_json(&sent), stream_json(&again));
        // Another run (another seed) tags its conversations differently: no cache carry-over.
        let other = drive(&mut build_at(&yaml, &ctx(2)).unwrap(), |_| 0.2, |_| false);
        assert_ne!(messages(&sent[0].spec)[0], messages(&other[0].spec)[0]);
    }
}
