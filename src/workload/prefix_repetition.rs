//! PrefixRepetition: vLLM bench's `prefix_repetition` dataset, the standard way to measure a
//! prefix cache. `NUM_PREFIXES` distinct prefixes of exactly `PREFIX_LEN` tokens; each prompt
//! is one of them followed by a suffix of exactly `SUFFIX_LEN` tokens that no other prompt has.
//!
//! A point sends `NUM_PROMPTS` requests: `⌊NUM_PROMPTS / NUM_PREFIXES⌋` per prefix (vLLM's
//! rule; NUM_PROMPTS must be at least NUM_PREFIXES), in an order shuffled with `SEED`, each
//! asking for `OUTPUT_LEN` tokens. Arrivals are VLLMBenchmark's scaled schedule: gamma
//! gaps of shape `BURSTINESS` (1 = Poisson) at the point's `QPS`, seeded by `SEED`. A request's `x-user-id`
//! is its prefix's, so a session router keeps the requests of one prefix together.
//!
//! The text is single-token filler words, so lengths are exact in the counting tokenizer and a
//! prefix is the same token sequence in every prompt that has it. Prefixes and suffixes are
//! drawn from `SEED` and the run's seed (which depends on the point, never on the baseline):
//! every baseline gets the same prompts, and one QPS point never finds the previous point's
//! prefixes in the cache, so each point measures reuse within itself. The first request of each
//! prefix can hit nothing; every later one can reuse `PREFIX_LEN` tokens.

use super::arrivals::{schedule_rate, vllm_schedule};
use super::prompt::{mix_seed, PromptBuilder};
use super::search::Axis;
use super::{Point, RawWorkload, RunContext, Workload, WorkloadError, WorkloadSpec};
use crate::config::{Checked, Invalid, Item, Num, OneOrMany, O};
use crate::record::{Completed, Prompt, RequestSpec};
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::sync::Arc;

/// vLLM's defaults.
const DEFAULT_NUM_PREFIXES: i64 = 10;
const DEFAULT_PREFIX_LEN: i64 = 256;
const DEFAULT_SUFFIX_LEN: i64 = 256;
const DEFAULT_OUTPUT_LEN: i64 = 128;
/// VLLMBenchmark's default number of requests per point.
const DEFAULT_NUM_PROMPTS: i64 = 1000;

/// Independent random streams drawn from the seeds.
const STREAM_ARRIVALS: u64 = 0xA1;
const STREAM_ORDER: u64 = 0x0D;
const STREAM_PREFIX: u64 = 0x9F;
const STREAM_SUFFIX: u64 = 0x5F;

workload_keys! {
    /// `PrefixRepetition`'s keys.
    pub struct Raw {
        /// Distinct prefixes (default 10).
        pub NUM_PREFIXES: O<i64>,
        /// Tokens of each prefix (default 256).
        pub PREFIX_LEN: O<i64>,
        /// Tokens of each prompt's own suffix (default 256).
        pub SUFFIX_LEN: O<i64>,
        /// max_tokens of every request (default 128).
        pub OUTPUT_LEN: O<i64>,
        /// Requests per point (default 1000); at least NUM_PREFIXES.
        pub NUM_PROMPTS: O<i64>,
        /// Request rates, one point each (required).
        pub QPS: O<OneOrMany<Num>>,
        /// Gamma shape of the arrival gaps (default 1 = Poisson).
        pub BURSTINESS: O<Num>,
        /// Seed of the prompts, their order and the arrivals (default 0).
        pub SEED: O<i64>,
    }
}

impl RawWorkload for Raw {
    const NAME: &'static str = "PrefixRepetition";
    type Spec = Config;

    fn validate(&self, c: &mut Item<'_, '_>) -> Checked<Config> {
        let prefixes = c.int(&self.NUM_PREFIXES, "NUM_PREFIXES", 1);
        let prefix_len = c.int(&self.PREFIX_LEN, "PREFIX_LEN", 0);
        let suffix_len = c.int(&self.SUFFIX_LEN, "SUFFIX_LEN", 0);
        let output_len = c.int(&self.OUTPUT_LEN, "OUTPUT_LEN", 1);
        let prompts = c.int(&self.NUM_PROMPTS, "NUM_PROMPTS", 1);
        let qps = c.req_positive_list(&self.QPS, "QPS", false);
        let burstiness = c.positive(&self.BURSTINESS, "BURSTINESS");
        let num_prefixes = prefixes?.unwrap_or(DEFAULT_NUM_PREFIXES);
        let num_prompts = prompts?.unwrap_or(DEFAULT_NUM_PROMPTS);
        if num_prompts < num_prefixes {
            let at = self.NUM_PROMPTS.as_ref().map(|n| n.referenced);
            c.push(
                at.as_ref(),
                "NUM_PROMPTS",
                format!(
                    "expected at least NUM_PREFIXES ({num_prefixes}) prompts, got {num_prompts}: \
                     every prefix needs a prompt"
                ),
            );
            return Err(Invalid);
        }
        Ok(Config {
            num_prefixes: num_prefixes as usize,
            prefix_len: prefix_len?.unwrap_or(DEFAULT_PREFIX_LEN) as usize,
            suffix_len: suffix_len?.unwrap_or(DEFAULT_SUFFIX_LEN) as usize,
            output_len: output_len?
                .unwrap_or(DEFAULT_OUTPUT_LEN)
                .min(u32::MAX as i64) as u32,
            num_prompts: num_prompts as usize,
            qps: qps?,
            burstiness: burstiness?.unwrap_or(1.0),
            seed: self.SEED.as_ref().map_or(0, |s| s.value) as u64,
        })
    }
}

/// A validated PrefixRepetition item.
#[derive(Debug, Clone)]
pub struct Config {
    /// `NUM_PREFIXES`.
    pub num_prefixes: usize,
    /// `PREFIX_LEN`, tokens.
    pub prefix_len: usize,
    /// `SUFFIX_LEN`, tokens.
    pub suffix_len: usize,
    /// `OUTPUT_LEN`.
    pub output_len: u32,
    /// `NUM_PROMPTS`: requests per point (rounded down to a multiple of `num_prefixes`).
    pub num_prompts: usize,
    /// `QPS`: one point each.
    pub qps: Vec<Num>,
    /// `BURSTINESS`.
    pub burstiness: f64,
    /// `SEED`.
    pub seed: u64,
}

impl Config {
    /// Prompts per prefix, vLLM's `NUM_PROMPTS // NUM_PREFIXES`.
    pub fn per_prefix(&self) -> usize {
        self.num_prompts / self.num_prefixes
    }
}

impl WorkloadSpec for Config {
    fn workload_name(&self) -> String {
        "prefix_repetition".into()
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
        Ok(Box::new(PrefixRepetition::new(self, point, ctx)?))
    }
}

impl Config {
    /// The point at rate `q`.
    fn qps_point(&self, q: Num) -> Point {
        let n = (self.per_prefix() * self.num_prefixes) as f64;
        Point::qps(q, n / q.value + 10.0)
    }
}

/// The PrefixRepetition workload for one QPS point.
pub struct PrefixRepetition {
    prompt: Arc<PromptBuilder>,
    prefixes: Vec<String>,
    /// The prefix of each request, in send order.
    order: Vec<usize>,
    due: Vec<f64>,
    suffix_len: usize,
    prompt_tokens: u64,
    output_len: u32,
    suffix_seed: u64,
    base: u64,
    next: usize,
    window_end: f64,
    stats: Value,
}

impl PrefixRepetition {
    /// The prompts and schedule of one point.
    pub fn new(cfg: &Config, point: &Point, ctx: &RunContext) -> Result<Self, WorkloadError> {
        let rate = point
            .target_qps()
            .ok_or_else(|| WorkloadError::Other("PrefixRepetition needs a QPS".into()))?;
        let b = ctx.prompt.clone();
        // Per point (the run's seed), never per baseline: see the module docs.
        let salt = mix_seed(&[cfg.seed, ctx.seed]);
        let prefixes: Vec<String> = (0..cfg.num_prefixes)
            .map(|p| b.filler_seeded(cfg.prefix_len, mix_seed(&[salt, STREAM_PREFIX, p as u64])))
            .collect();
        let mut order: Vec<usize> = (0..cfg.num_prefixes)
            .flat_map(|p| std::iter::repeat_n(p, cfg.per_prefix()))
            .collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(&[
            cfg.seed,
            STREAM_ORDER,
        ])));
        let n = order.len();
        let due = vllm_schedule(
            rate,
            cfg.burstiness,
            mix_seed(&[ctx.per_repeat(cfg.seed), STREAM_ARRIVALS]),
            n,
        )
        .map_err(WorkloadError::Other)?;
        // `--duration` (quick loops) cuts the schedule: nothing is due at or after it.
        let limit = ctx.duration_override_s;
        let scheduled = match limit {
            Some(l) => due.iter().take_while(|d| **d < l).count().max(1),
            None => n,
        };
        let due: Vec<f64> = due.into_iter().take(scheduled).collect();
        order.truncate(scheduled);
        let nominal = n as f64 / rate;
        let stats = json!({
            "num_prefixes": cfg.num_prefixes,
            "prompts_per_prefix": cfg.per_prefix(),
            "prefix_len": cfg.prefix_len,
            "suffix_len": cfg.suffix_len,
            "num_prompts": n,
            "requests_scheduled": due.len(),
            "request_rate": rate,
            "burstiness": cfg.burstiness,
            "seed": cfg.seed,
            "schedule_rate": schedule_rate(&due).map(|r| (r * 1e4).round() / 1e4),
        });
        Ok(PrefixRepetition {
            prompt: b,
            prefixes,
            order,
            due,
            suffix_len: cfg.suffix_len,
            prompt_tokens: (cfg.prefix_len + cfg.suffix_len) as u64,
            output_len: cfg.output_len,
            suffix_seed: mix_seed(&[salt, STREAM_SUFFIX]),
            base: ctx.user_id_base,
            next: 0,
            window_end: limit.map_or(nominal, |l| nominal.min(l)),
            stats,
        })
    }
}

impl Workload for PrefixRepetition {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        let i = self.next;
        let due = *self.due.get(i)?;
        self.next += 1;
        let prefix = self.order[i];
        let suffix = self
            .prompt
            .filler_seeded(self.suffix_len, mix_seed(&[self.suffix_seed, i as u64]));
        Some(RequestSpec {
            id: i as u64,
            user_id: Some(self.base + prefix as u64),
            round: 1,
            due_s: due,
            slot_s: None,
            prompt: Prompt::Text(format!("{}{suffix}", self.prefixes[prefix])),
            max_tokens: self.output_len,
            // Every filler word is one token whatever precedes it: exact by construction.
            client_prompt_tokens: self.prompt_tokens,
            warmup: false,
            extra: Default::default(),
        })
    }

    fn on_complete(&mut self, _done: &Completed, _now_s: f64) -> Vec<RequestSpec> {
        Vec::new()
    }

    fn window(&self) -> Option<(f64, f64)> {
        Some((0.0, self.window_end))
    }

    fn stats(&self) -> Value {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::test_support::ctx;
    use crate::workload::{spec_from_yaml, SweepPoint};
    use std::collections::HashMap;

    fn point(rate: f64) -> Point {
        Point {
            sweep: SweepPoint {
                key: "QPS",
                value: Some(Num::float(rate)),
            },
            qps: Some(Num::float(rate)),
            qps_label: String::new(),
            estimated_s: 0.0,
        }
    }

    fn specs(yaml: &str, rate: f64, seed: u64) -> Vec<RequestSpec> {
        let cfg = spec_from_yaml::<Raw>(yaml);
        let mut w = PrefixRepetition::new(&cfg, &point(rate), &ctx(seed)).unwrap();
        std::iter::from_fn(|| w.next_scheduled()).collect()
    }

    fn text(s: &RequestSpec) -> &str {
        match &s.prompt {
            Prompt::Text(t) => t,
            Prompt::Messages(_) => panic!("expected a text prompt"),
        }
    }

    const ITEM: &str =
        "NUM_PREFIXES: 3\nPREFIX_LEN: 40\nSUFFIX_LEN: 12\nOUTPUT_LEN: 7\nNUM_PROMPTS: 10\nQPS: [5]\n";

    #[test]
    fn each_prompt_is_one_shared_prefix_and_its_own_suffix_of_exact_lengths() {
        let s = specs(ITEM, 5.0, 1);
        // ⌊10 / 3⌋ = 3 prompts per prefix, as vLLM.
        assert_eq!(s.len(), 9);
        let b = PromptBuilder::global();
        let mut by_prefix: HashMap<u64, Vec<&str>> = HashMap::new();
        for r in &s {
            assert_eq!(b.count(text(r)), 52, "{}", text(r));
            assert_eq!(r.client_prompt_tokens, 52);
            assert_eq!(r.max_tokens, 7);
            by_prefix
                .entry(r.user_id.unwrap())
                .or_default()
                .push(text(r));
        }
        assert_eq!(by_prefix.len(), 3);
        let prefix_of = |t: &str| t.split(' ').take(41).collect::<Vec<_>>().join(" ");
        let suffix_of = |t: &str| t.split(' ').skip(41).collect::<Vec<_>>().join(" ");
        let mut suffixes: Vec<String> = Vec::new();
        let mut prefixes: Vec<String> = Vec::new();
        for (_, texts) in by_prefix {
            assert_eq!(texts.len(), 3);
            // Same 40-token prefix within a group (and its token count is exact on its own).
            assert!(texts.iter().all(|t| prefix_of(t) == prefix_of(texts[0])));
            assert_eq!(b.count(&prefix_of(texts[0])), 40);
            prefixes.push(prefix_of(texts[0]));
            suffixes.extend(texts.iter().map(|t| suffix_of(t)));
        }
        prefixes.sort();
        prefixes.dedup();
        assert_eq!(prefixes.len(), 3, "three distinct prefixes");
        suffixes.sort();
        suffixes.dedup();
        assert_eq!(suffixes.len(), 9, "every suffix is unique");
        // The order is shuffled: not all of one prefix first.
        let ids: Vec<u64> = s.iter().map(|r| r.user_id.unwrap()).collect();
        assert!(ids.windows(3).any(|w| w[0] != w[1] || w[1] != w[2]));
        assert!(s.windows(2).all(|p| p[0].due_s <= p[1].due_s));
    }

    #[test]
    fn the_same_seeds_give_the_same_stream_and_another_point_other_prefixes() {
        let a = specs(ITEM, 5.0, 1);
        let b = specs(ITEM, 5.0, 1);
        assert_eq!(a, b);
        // Another point (another run seed): other prefixes, so no cache carries over.
        let c = specs(ITEM, 5.0, 2);
        let first_words = |s: &RequestSpec| text(s).split(' ').nth(1).unwrap().to_string();
        let pa: Vec<String> = a.iter().map(first_words).collect();
        let pc: Vec<String> = c.iter().map(first_words).collect();
        assert_ne!(pa, pc);
    }

    #[test]
    fn defaults_and_the_rule_on_num_prompts() {
        let cfg = spec_from_yaml::<Raw>("QPS: 1\n");
        assert_eq!(
            (
                cfg.num_prefixes,
                cfg.prefix_len,
                cfg.suffix_len,
                cfg.output_len,
                cfg.num_prompts
            ),
            (10, 256, 256, 128, 1000)
        );
        assert_eq!(cfg.points().len(), 1);
        let raw: Raw = serde_saphyr::from_str("QPS: 1\nNUM_PREFIXES: 4\nNUM_PROMPTS: 3\n").unwrap();
        let mut issues = Vec::new();
        let mut c = crate::config::Checker::new(std::path::Path::new("a.yaml"), &mut issues);
        let root = std::path::Path::new(".");
        let at = serde_saphyr::Location::UNKNOWN;
        assert!(raw
            .validate(&mut c.item("Workload.PrefixRepetition[0]".into(), at, root))
            .is_err());
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].key, "Workload.PrefixRepetition[0].NUM_PROMPTS");
        assert!(issues[0].message.contains("at least NUM_PREFIXES (4)"));
    }
}
