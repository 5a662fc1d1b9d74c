//! VLLMBenchmark: vLLM's serving benchmark (`benchmark_serving.py`, which LMBench vendors and
//! runs once per request rate), re-implemented natively.
//!
//! A run sends `NUM_PROMPTS` independent single-turn requests sampled from a dataset, due at the
//! times of vLLM's schedule ([`vllm_schedule`]: gamma gaps of shape `BURSTINESS`, Poisson by
//! default, scaled as vLLM scales them so the last request is due at `NUM_PROMPTS / rate`; an
//! infinite rate sends everything at time 0), both seeded from `SEED` (default 0) as vLLM seeds
//! its samplers, so every baseline gets the same prompts. Each rate gets prompts of its own
//! (`SALT_PER_POINT`, default true: the random dataset's text is drawn with the point's seed
//! too, other datasets' prompts start with four words drawn from it), so a rate never finds
//! the previous rate's prompts in the prefix cache; `SALT_PER_POINT: false` sends vLLM's exact
//! prompts at every rate. `MAX_CONCURRENCY` caps
//! the requests in flight; a request held back by the cap is sent when a slot frees, and the
//! wait shows as send lag while vLLM's latencies (which lmbench also reports) start at the send.
//! The configured send window is `NUM_PROMPTS / rate` (what lmbench's send-window definition
//! expects of the schedule); `--duration` drops the requests due at or after it.
//!
//! Datasets (`DATASET_NAME`; every one except `random` reads the local file `DATASET_PATH`):
//!
//! - `random`: prompts of exactly `RANDOM_PREFIX_LEN` shared tokens plus an input length drawn
//!   uniformly from `[len·(1−r), len·(1+r)]` (`RANDOM_INPUT_LEN`, `RANDOM_RANGE_RATIO`), output
//!   lengths likewise from `RANDOM_OUTPUT_LEN`. The text is single-token filler words.
//! - `sonnet`: vLLM's SonnetDataset over the lines of a text file: the instruction `Pick as many
//!   lines as you can from these poem lines:`, the first lines of the file up to
//!   `SONNET_PREFIX_LEN` tokens (shared by every prompt), then lines drawn at random up to
//!   `SONNET_INPUT_LEN` tokens, line counts rounded from the mean tokens per line as vLLM does.
//! - `sharegpt`: a ShareGPT JSON list of `{"conversations": [{"from", "value"}, …]}`; the prompt
//!   is the first human turn that a gpt turn answers, the output length that answer's token
//!   count. vLLM's filter applies (prompt ≥ 4 tokens, answer ≥ 4 unless the output length is
//!   configured, prompt ≤ 1024, prompt + answer ≤ 2048).
//! - `custom`: JSONL, one `{"prompt": "…", "output_len": n}` per line (`output_len` optional).
//! - `hf`: a local JSONL copy of a Hugging Face dataset: each line has a `prompt` string, or a
//!   `turns` / `conversations` / `conversation` / `messages` list whose first user turn is the
//!   prompt (a turn is a string, as in MT-Bench, or a `{role|from, content|value}` message, or a
//!   list of messages); an optional `output_len`, else an assistant turn right after the prompt,
//!   gives the entry's output length.
//!
//! Datasets with a file are shuffled with the seed and the first `NUM_PROMPTS` usable entries
//! taken; a smaller dataset is oversampled with replacement, as vLLM does. The output length is
//! the dataset's own key, else `MAX_TOKENS` (LMBench's mapping), else the entry's length, else
//! vLLM's default. Sampling options (`TEMPERATURE`, `TOP_P`, `TOP_K`, `IGNORE_EOS`) are sent only
//! when set.

use super::arrivals::{schedule_rate, vllm_schedule};
use super::prompt::{mix_seed, PromptBuilder};
use super::search::Axis;
use super::{
    Point, PointResults, RawWorkload, RunContext, SweepPoint, Workload, WorkloadError, WorkloadSpec,
};
use crate::cache::PromptReuse;
use crate::config::{Checked, Invalid, Item, Num, OneOrMany, O};
use crate::record::{Completed, Prompt, RequestSpec};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// vLLM's sonnet instruction, followed by the poem lines.
pub const SONNET_INSTRUCTION: &str = "Pick as many lines as you can from these poem lines:\n";

const DEFAULT_NUM_PROMPTS: i64 = 1000;
const DEFAULT_RANDOM_INPUT_LEN: i64 = 1024;
const DEFAULT_RANDOM_OUTPUT_LEN: i64 = 128;
const DEFAULT_SONNET_INPUT_LEN: i64 = 550;
const DEFAULT_SONNET_OUTPUT_LEN: i64 = 150;
const DEFAULT_SONNET_PREFIX_LEN: i64 = 200;
const DEFAULT_CUSTOM_OUTPUT_LEN: u32 = 256;
/// MT-Bench's default in vLLM, the `hf` set LMBench names.
const DEFAULT_HF_OUTPUT_LEN: u32 = 256;

/// Independent random streams, each seeded from `SEED` and one of these tags, so that e.g. the
/// arrival gaps do not depend on how many draws the dataset sampling took.
const STREAM_ARRIVALS: u64 = 0xA1;
const STREAM_SAMPLE: u64 = 0x5A;
const STREAM_PREFIX: u64 = 0x9F;
const STREAM_PROMPT: u64 = 0x7E;
const STREAM_SALT: u64 = 0x5A17;

/// Words of the salt a non-random dataset's prompts start with (`SALT_PER_POINT`).
const SALT_WORDS: usize = 4;

mod datasets;
mod names;

use datasets::Entry;
pub use names::vllm_result_fields;

/// The datasets VLLMBenchmark reads.
const DATASETS: &[&str] = &["random", "sonnet", "sharegpt", "custom", "hf"];

workload_keys! {
    /// `VLLMBenchmark`'s keys.
    pub struct Raw {
        /// Backend name (default vllm).
        pub BACKEND: O<String>,
        /// random | sonnet | sharegpt | custom | hf (default sharegpt).
        pub DATASET_NAME: O<String>,
        /// Dataset file, relative to the folder of run-bench.yaml.
        pub DATASET_PATH: O<String>,
        /// Requests per rate (default 1000).
        pub NUM_PROMPTS: O<i64>,
        /// Request rates (default [1.0]).
        pub REQUEST_RATES: O<OneOrMany<Num>>,
        /// Sampling temperature.
        pub TEMPERATURE: O<Num>,
        /// Nucleus sampling.
        pub TOP_P: O<Num>,
        /// Top-k sampling.
        pub TOP_K: O<i64>,
        /// Gamma shape of the arrival gaps (1 = Poisson).
        pub BURSTINESS: O<Num>,
        /// Random seed.
        pub SEED: O<i64>,
        /// Give every point prompts of its own (default true): the random dataset's text is
        /// drawn with the point's seed too, other datasets' prompts start with a few words drawn
        /// from it; `false` sends the same prompts at every point, as vLLM's tool does
        /// (lmbench addition).
        pub SALT_PER_POINT: O<bool>,
        /// Accepted for compatibility (no effect).
        pub DISABLE_TQDM: O<bool>,
        /// Ask the engine to ignore EOS.
        pub IGNORE_EOS: O<bool>,
        /// Output length when the dataset-specific key is absent.
        pub MAX_TOKENS: O<i64>,
        /// sharegpt output length.
        pub SHAREGPT_OUTPUT_LEN: O<i64>,
        /// random input length (default 1024).
        pub RANDOM_INPUT_LEN: O<i64>,
        /// random output length (default 128).
        pub RANDOM_OUTPUT_LEN: O<i64>,
        /// random length range ratio, in [0, 1) (default 0.0).
        pub RANDOM_RANGE_RATIO: O<Num>,
        /// sonnet input length (default 550).
        pub SONNET_INPUT_LEN: O<i64>,
        /// sonnet output length (default 150).
        pub SONNET_OUTPUT_LEN: O<i64>,
        /// sonnet shared prefix length (default 200).
        pub SONNET_PREFIX_LEN: O<i64>,
        /// hf output length.
        pub HF_OUTPUT_LEN: O<i64>,
        /// custom output length (default 256).
        pub CUSTOM_OUTPUT_LEN: O<i64>,
        /// Cap on requests in flight (lmbench addition).
        pub MAX_CONCURRENCY: O<i64>,
        /// random: tokens of a random prefix shared by every prompt (default 0).
        pub RANDOM_PREFIX_LEN: O<i64>,
        /// Service-level objectives for goodput, in ms: any of `ttft_ms`, `tpot_ms`, `e2el_ms`.
        pub GOODPUT: O<serde_json::Map<String, serde_json::Value>>,
    }
}

impl RawWorkload for Raw {
    const NAME: &'static str = "VLLMBenchmark";
    type Spec = Config;

    fn validate(&self, c: &mut Item<'_, '_>) -> Checked<Config> {
        let ds = self
            .DATASET_NAME
            .as_ref()
            .map(|d| d.value.clone())
            .unwrap_or_else(|| "sharegpt".into());
        let dataset = if DATASETS.contains(&ds.as_str()) {
            Ok(ds.clone())
        } else {
            let loc = self.DATASET_NAME.as_ref().map(|d| d.referenced);
            c.push(
                loc.as_ref(),
                "DATASET_NAME",
                format!("expected one of random, sonnet, sharegpt, custom, hf; got `{ds}`"),
            );
            Err(Invalid)
        };
        let path = match &self.DATASET_PATH {
            Some(p) => c
                .root_file(&self.DATASET_PATH, "DATASET_PATH")
                .map(|_| Some(p.value.clone())),
            None if ds != "random" && DATASETS.contains(&ds.as_str()) => {
                c.push(None, "DATASET_PATH", format!("missing required key for DATASET_NAME {ds}: expected a local file (lmbench never downloads datasets)"));
                Err(Invalid)
            }
            None => Ok(None),
        };
        let num_prompts = c.int(&self.NUM_PROMPTS, "NUM_PROMPTS", 1);
        let rates = c.positive_list(&self.REQUEST_RATES, "REQUEST_RATES", true);
        let temperature = c.num_in(&self.TEMPERATURE, "TEMPERATURE", 0.0, f64::MAX, false);
        let top_p = c.num_in(&self.TOP_P, "TOP_P", 0.0, 1.0, false);
        let top_k = c.int(&self.TOP_K, "TOP_K", -1);
        let burstiness = c.positive(&self.BURSTINESS, "BURSTINESS");
        let max_tokens = c.int(&self.MAX_TOKENS, "MAX_TOKENS", 1);
        let sharegpt_out = c.int(&self.SHAREGPT_OUTPUT_LEN, "SHAREGPT_OUTPUT_LEN", 1);
        let random_in = c.int(&self.RANDOM_INPUT_LEN, "RANDOM_INPUT_LEN", 1);
        let random_out = c.int(&self.RANDOM_OUTPUT_LEN, "RANDOM_OUTPUT_LEN", 1);
        let sonnet_in = c.int(&self.SONNET_INPUT_LEN, "SONNET_INPUT_LEN", 1);
        let sonnet_out = c.int(&self.SONNET_OUTPUT_LEN, "SONNET_OUTPUT_LEN", 1);
        let hf_out = c.int(&self.HF_OUTPUT_LEN, "HF_OUTPUT_LEN", 1);
        let custom_out = c.int(&self.CUSTOM_OUTPUT_LEN, "CUSTOM_OUTPUT_LEN", 1);
        let max_concurrency = c.int(&self.MAX_CONCURRENCY, "MAX_CONCURRENCY", 1);
        let sonnet_prefix = c.int(&self.SONNET_PREFIX_LEN, "SONNET_PREFIX_LEN", 0);
        let random_prefix = c.int(&self.RANDOM_PREFIX_LEN, "RANDOM_PREFIX_LEN", 0);
        let mut slo_ok = true;
        let slo = self.GOODPUT.as_ref().map(|g| {
            for (name, v) in &g.value {
                let ok = matches!(name.as_str(), "ttft_ms" | "tpot_ms" | "e2el_ms")
                    && v.as_f64().is_some_and(|x| x.is_finite() && x > 0.0);
                if !ok {
                    slo_ok = false;
                    c.push(
                        Some(&g.referenced),
                        &format!("GOODPUT.{name}"),
                        format!("expected ttft_ms, tpot_ms or e2el_ms with a positive number of milliseconds, got {name}: {v}"),
                    );
                }
            }
            let get = |k: &str| g.value.get(k).and_then(Value::as_f64);
            Slo {
                ttft_ms: get("ttft_ms"),
                tpot_ms: get("tpot_ms"),
                e2el_ms: get("e2el_ms"),
            }
        });
        let ratio = c.num_in(
            &self.RANDOM_RANGE_RATIO,
            "RANDOM_RANGE_RATIO",
            0.0,
            1.0,
            true,
        );
        if !slo_ok {
            return Err(Invalid);
        }
        Ok(Config {
            backend: self
                .BACKEND
                .as_ref()
                .map_or_else(|| "vllm".to_string(), |b| b.value.clone()),
            dataset: dataset?,
            dataset_path: path?,
            num_prompts: num_prompts?.unwrap_or(DEFAULT_NUM_PROMPTS) as usize,
            rates_written: self.REQUEST_RATES.is_some(),
            rates: rates?.unwrap_or_else(|| vec![Num::float(1.0)]),
            temperature: temperature?.and(self.TEMPERATURE.as_ref().map(|t| t.value)),
            top_p: top_p?.and(self.TOP_P.as_ref().map(|t| t.value)),
            top_k: top_k?,
            burstiness: burstiness?.unwrap_or(1.0),
            seed: self.SEED.as_ref().map_or(0, |s| s.value) as u64,
            salt_per_point: self.SALT_PER_POINT.as_ref().is_none_or(|v| v.value),
            ignore_eos: self.IGNORE_EOS.as_ref().is_some_and(|v| v.value),
            max_tokens: max_tokens?,
            sharegpt_output_len: sharegpt_out?,
            random_input_len: random_in?.unwrap_or(DEFAULT_RANDOM_INPUT_LEN),
            random_output_len: random_out?,
            random_range_ratio: ratio?.unwrap_or(0.0),
            random_prefix_len: random_prefix?.unwrap_or(0) as usize,
            sonnet_input_len: sonnet_in?.unwrap_or(DEFAULT_SONNET_INPUT_LEN),
            sonnet_output_len: sonnet_out?,
            sonnet_prefix_len: sonnet_prefix?.unwrap_or(DEFAULT_SONNET_PREFIX_LEN),
            hf_output_len: hf_out?,
            custom_output_len: custom_out?,
            max_concurrency: max_concurrency?.map(|c| c as usize),
            slo,
        })
    }
}

/// A validated VLLMBenchmark item, LMBench's and vLLM's defaults filled in.
#[derive(Debug, Clone)]
pub struct Config {
    /// `BACKEND`.
    pub backend: String,
    /// `DATASET_NAME`.
    pub dataset: String,
    /// `DATASET_PATH` as written, relative to the folder of run-bench.yaml.
    pub dataset_path: Option<String>,
    /// `NUM_PROMPTS`: requests per rate.
    pub num_prompts: usize,
    /// `REQUEST_RATES`: one point each (`.inf` sends everything at once).
    pub rates: Vec<Num>,
    /// Whether `REQUEST_RATES` was given.
    rates_written: bool,
    /// `TEMPERATURE`, sent when set.
    pub temperature: Option<Num>,
    /// `TOP_P`, sent when set.
    pub top_p: Option<Num>,
    /// `TOP_K`, sent when set.
    pub top_k: Option<i64>,
    /// `BURSTINESS`: gamma shape of the gaps.
    pub burstiness: f64,
    /// `SEED`.
    pub seed: u64,
    /// `SALT_PER_POINT`.
    pub salt_per_point: bool,
    /// `IGNORE_EOS`.
    pub ignore_eos: bool,
    /// `MAX_TOKENS`: output length where the dataset's own key is absent.
    pub max_tokens: Option<i64>,
    /// `SHAREGPT_OUTPUT_LEN`.
    pub sharegpt_output_len: Option<i64>,
    /// `RANDOM_INPUT_LEN`.
    pub random_input_len: i64,
    /// `RANDOM_OUTPUT_LEN`.
    pub random_output_len: Option<i64>,
    /// `RANDOM_RANGE_RATIO`.
    pub random_range_ratio: f64,
    /// `RANDOM_PREFIX_LEN`.
    pub random_prefix_len: usize,
    /// `SONNET_INPUT_LEN`.
    pub sonnet_input_len: i64,
    /// `SONNET_OUTPUT_LEN`.
    pub sonnet_output_len: Option<i64>,
    /// `SONNET_PREFIX_LEN`.
    pub sonnet_prefix_len: i64,
    /// `HF_OUTPUT_LEN`.
    pub hf_output_len: Option<i64>,
    /// `CUSTOM_OUTPUT_LEN`.
    pub custom_output_len: Option<i64>,
    /// `MAX_CONCURRENCY`.
    pub max_concurrency: Option<usize>,
    /// `GOODPUT`.
    slo: Option<Slo>,
}

impl Config {
    /// The point at request rate `r`.
    fn rate_point(&self, r: Num) -> Point {
        let n = self.num_prompts as f64;
        let est = if r.value.is_finite() {
            n / r.value
        } else {
            n * 0.05
        };
        Point {
            sweep: SweepPoint {
                key: "REQUEST_RATE",
                value: Some(r),
            },
            qps: Some(r),
            qps_label: r.label(),
            estimated_s: est + 10.0,
        }
    }
}

impl WorkloadSpec for Config {
    fn prompt_reuse(&self) -> PromptReuse {
        if self.salt_per_point {
            PromptReuse::PerPoint
        } else {
            PromptReuse::Shared
        }
    }

    fn workload_name(&self) -> String {
        if self.dataset == "hf" {
            let path = self
                .dataset_path
                .as_ref()
                .map(|p| p.replace('/', "_"))
                .unwrap_or_default();
            format!("vllm_hf_{path}")
        } else {
            format!("vllm_{}", self.dataset)
        }
    }

    fn points(&self) -> Vec<Point> {
        self.rates.iter().map(|r| self.rate_point(*r)).collect()
    }

    fn search_point(&self, axis: Axis, value: Num) -> Result<Point, String> {
        match axis {
            Axis::Qps if self.rates_written => {
                Err("REQUEST_RATES is given: a QPS search sets the rate itself".into())
            }
            Axis::Qps => Ok(self.rate_point(value)),
            Axis::MaxConcurrency if self.max_concurrency.is_some() => {
                Err("MAX_CONCURRENCY is given: a MAX_CONCURRENCY search sets it itself".into())
            }
            Axis::MaxConcurrency if self.rates_written && self.rates.len() > 1 => Err(
                "a MAX_CONCURRENCY search runs at one REQUEST_RATES value (default .inf)".into(),
            ),
            Axis::MaxConcurrency => {
                // Without a rate, every request is due at once and the cap alone sets the load,
                // as in vLLM's concurrency runs.
                let rate = match self.rates_written {
                    true => self.rates[0],
                    false => Num::float(f64::INFINITY),
                };
                let c = Num {
                    value: value.value.round().max(1.0),
                    is_int: true,
                };
                Ok(Point {
                    sweep: SweepPoint {
                        key: axis.key(),
                        value: Some(c),
                    },
                    qps_label: format!("{}-c{}", rate.label(), c.label()),
                    ..self.rate_point(rate)
                })
            }
        }
    }

    fn build(&self, point: &Point, ctx: &RunContext) -> Result<Box<dyn Workload>, WorkloadError> {
        Ok(Box::new(VllmBench::new(self, point, ctx)?))
    }

    fn finish_result(&self, r: &mut PointResults<'_>) {
        // vLLM bench's names beside LMBench's, so users can compare with vLLM's own tool.
        let results = Value::Object(std::mem::take(r.results));
        let extra = vllm_result_fields(&results, r.stats);
        if let Value::Object(m) = results {
            *r.results = m;
        }
        r.results.extend(extra);
    }
}

/// Where prompts come from.
enum Source {
    /// Filler text of exact lengths after a shared prefix.
    Random {
        prefix: String,
        input_lens: Vec<usize>,
        output_lens: Vec<u32>,
    },
    /// The instruction and shared prefix lines, then `extra` random lines per prompt.
    Sonnet {
        head: String,
        lines: Vec<String>,
        extra: usize,
        output_len: u32,
    },
    /// Entries of a file, in sampled order (with repeats when oversampled).
    Pool {
        entries: Vec<Entry>,
        order: Vec<usize>,
        configured: Option<u32>,
        default_len: u32,
    },
}

/// Service-level objectives in ms; a request meeting all the given ones counts for goodput.
#[derive(Debug, Clone, Default)]
struct Slo {
    ttft_ms: Option<f64>,
    tpot_ms: Option<f64>,
    e2el_ms: Option<f64>,
}

#[derive(Debug, Clone, Default)]
struct GoodputCounters {
    checked: u64,
    good: u64,
    missed_ttft: u64,
    missed_tpot: u64,
    missed_e2el: u64,
}

/// The VLLMBenchmark workload for one request rate.
pub struct VllmBench {
    prompt: Arc<PromptBuilder>,
    source: Source,
    due: Vec<f64>,
    next: usize,
    seed: u64,
    /// The point's salt (`SALT_PER_POINT`): mixed into the random dataset's seeds, and for
    /// other datasets the words every prompt starts with.
    salt: Option<(u64, String)>,
    base: u64,
    extra: Map<String, Value>,
    max_concurrency: Option<usize>,
    window_end: f64,
    slo: Option<Slo>,
    goodput: GoodputCounters,
    /// Fixed facts for `stats()`.
    info: Map<String, Value>,
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

impl VllmBench {
    /// Build the workload from its config at a request rate.
    pub fn new(cfg: &Config, point: &Point, ctx: &RunContext) -> Result<Self, WorkloadError> {
        let rate = point.target_qps().unwrap_or(1.0);
        let burstiness = cfg.burstiness;
        let seed = cfg.seed;
        let n = cfg.num_prompts.max(1);
        let b = ctx.prompt.clone();
        let mut info = Map::new();
        let mut source = datasets::source(cfg, &ctx.root, &b, n, &mut info)?;
        let salt = cfg.salt_per_point.then(|| {
            // A few single-token words and a newline: the first tokens differ from every other
            // point's, so no cached prefix carries over, and every prompt of the point shares
            // them, so shared prefixes within the point stay shared.
            let tag = b.filler_seeded(SALT_WORDS, mix_seed(&[ctx.seed, STREAM_SALT]));
            (ctx.seed, format!("{}\n", tag.trim_start()))
        });
        if let (Some((s, _)), Source::Random { prefix, .. }) = (&salt, &mut source) {
            // The random dataset keeps its exact lengths: its text is drawn with the salt.
            *prefix = b.filler_seeded(cfg.random_prefix_len, mix_seed(&[seed, STREAM_PREFIX, *s]));
        }
        let dataset = &cfg.dataset;
        let arrivals = mix_seed(&[ctx.per_repeat(seed), STREAM_ARRIVALS]);
        let due = vllm_schedule(rate, burstiness, arrivals, n).map_err(WorkloadError::Other)?;
        // `--duration` (quick loops) cuts the schedule: nothing is due at or after it.
        let limit = ctx.duration_override_s;
        let scheduled = match limit {
            Some(l) => due.iter().take_while(|d| **d < l).count().max(1),
            None => n,
        };
        let due: Vec<f64> = due.into_iter().take(scheduled).collect();
        let nominal = if rate.is_finite() {
            n as f64 / rate
        } else {
            0.0
        };
        let window_end = limit.map_or(nominal, |l| nominal.min(l));
        let mut extra = Map::new();
        if let Some(t) = &cfg.temperature {
            extra.insert("temperature".into(), t.to_json());
        }
        if let Some(p) = &cfg.top_p {
            extra.insert("top_p".into(), p.to_json());
        }
        if let Some(k) = cfg.top_k {
            extra.insert("top_k".into(), json!(k));
        }
        if cfg.ignore_eos {
            extra.insert("ignore_eos".into(), json!(true));
        }
        let slo = cfg.slo.clone();
        // A MAX_CONCURRENCY search's probe sets the cap.
        let max_concurrency = match point.sweep {
            SweepPoint {
                key: "MAX_CONCURRENCY",
                value: Some(c),
            } => Some(c.value as usize),
            _ => cfg.max_concurrency,
        }
        .map(|c| c.max(1));
        let mut head = Map::new();
        head.insert("backend".into(), json!(cfg.backend));
        head.insert("dataset".into(), json!(dataset));
        head.insert("dataset_path".into(), json!(cfg.dataset_path));
        head.insert("num_prompts".into(), json!(n));
        head.insert("requests_scheduled".into(), json!(due.len()));
        head.insert("request_rate".into(), rate_json(rate));
        head.insert("burstiness".into(), json!(burstiness));
        head.insert("seed".into(), json!(seed));
        head.insert("max_concurrency".into(), json!(max_concurrency));
        head.insert(
            "schedule_rate".into(),
            json!(schedule_rate(&due).map(round4)),
        );
        head.insert(
            "schedule_span_s".into(),
            json!(round4(due.last().copied().unwrap_or(0.0))),
        );
        head.extend(info);
        Ok(VllmBench {
            prompt: b,
            source,
            due,
            next: 0,
            seed,
            salt,
            base: ctx.user_id_base,
            extra,
            max_concurrency,
            window_end,
            slo,
            goodput: GoodputCounters::default(),
            info: head,
        })
    }

    /// The prompt text and output length of request `i`.
    fn sample(&self, i: usize) -> (String, u32) {
        let stream = match &self.salt {
            None => mix_seed(&[self.seed, STREAM_PROMPT, i as u64]),
            Some((s, _)) => mix_seed(&[self.seed, STREAM_PROMPT, i as u64, *s]),
        };
        let tag = |text: String| match &self.salt {
            Some((_, t)) => format!("{t}{text}"),
            None => text,
        };
        match &self.source {
            Source::Random {
                prefix,
                input_lens,
                output_lens,
            } => {
                let body = self.prompt.filler_seeded(input_lens[i], stream);
                (format!("{prefix}{body}"), output_lens[i])
            }
            Source::Sonnet {
                head,
                lines,
                extra,
                output_len,
            } => {
                let mut rng = ChaCha8Rng::seed_from_u64(stream);
                let mut text = head.clone();
                for _ in 0..*extra {
                    text.push_str(&lines[rng.random_range(0..lines.len())]);
                }
                (tag(text), *output_len)
            }
            Source::Pool {
                entries,
                order,
                configured,
                default_len,
            } => {
                let e = &entries[order[i]];
                let len = configured.or(e.output_len).unwrap_or(*default_len).max(1);
                (tag(e.prompt.clone()), len)
            }
        }
    }

    fn check_goodput(&mut self, done: &Completed) {
        let Some(slo) = &self.slo else { return };
        let r = &done.record;
        if !r.ok() || r.warmup {
            return;
        }
        // vLLM's definitions: latencies from the actual send; TPOT 0 for a one-token answer.
        let e2el = (r.end_s - r.sent_s) * 1e3;
        let ttft = r.first_token_s.map_or(e2el, |f| (f - r.sent_s) * 1e3);
        let tokens = r.completion_tokens_best();
        let tpot = match r.first_token_s {
            Some(f) if tokens > 1 => (r.end_s - f) * 1e3 / (tokens - 1) as f64,
            _ => 0.0,
        };
        let g = &mut self.goodput;
        g.checked += 1;
        let mut good = true;
        for (limit, value, missed) in [
            (slo.ttft_ms, ttft, &mut g.missed_ttft),
            (slo.tpot_ms, tpot, &mut g.missed_tpot),
            (slo.e2el_ms, e2el, &mut g.missed_e2el),
        ] {
            if limit.is_some_and(|l| value > l) {
                *missed += 1;
                good = false;
            }
        }
        if good {
            g.good += 1;
        }
    }
}

fn rate_json(rate: f64) -> Value {
    if rate.is_finite() {
        json!(rate)
    } else {
        json!("inf")
    }
}

impl Workload for VllmBench {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        let i = self.next;
        let due = *self.due.get(i)?;
        self.next += 1;
        let (text, max_tokens) = self.sample(i);
        let client_prompt_tokens = self.prompt.count(&text) as u64;
        Some(RequestSpec {
            id: i as u64,
            user_id: Some(self.base + i as u64),
            round: 1,
            due_s: due,
            slot_s: None,
            prompt: Prompt::Text(text),
            max_tokens,
            client_prompt_tokens,
            warmup: false,
            extra: self.extra.clone(),
        })
    }

    fn on_complete(&mut self, done: &Completed, _now_s: f64) -> Vec<RequestSpec> {
        self.check_goodput(done);
        Vec::new()
    }

    fn window(&self) -> Option<(f64, f64)> {
        Some((0.0, self.window_end))
    }

    fn max_in_flight(&self) -> Option<usize> {
        self.max_concurrency
    }

    fn stats(&self) -> Value {
        let mut m = self.info.clone();
        let goodput = self.slo.as_ref().map(|s| {
            let g = &self.goodput;
            json!({
                "slo_ms": {"ttft_ms": s.ttft_ms, "tpot_ms": s.tpot_ms, "e2el_ms": s.e2el_ms},
                "requests_checked": g.checked,
                "good_requests": g.good,
                "missed": {"ttft_ms": g.missed_ttft, "tpot_ms": g.missed_tpot, "e2el_ms": g.missed_e2el},
            })
        });
        m.insert("goodput".into(), goodput.unwrap_or(Value::Null));
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests;
