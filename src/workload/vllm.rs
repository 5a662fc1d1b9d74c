//! VLLMBenchmark: vLLM's serving benchmark (`benchmark_serving.py`, which LMBench vendors and
//! runs once per request rate), re-implemented natively.
//!
//! A run sends `NUM_PROMPTS` independent single-turn requests sampled from a dataset, due at the
//! times of an [`Arrivals`] schedule (gamma gaps of shape `BURSTINESS`, Poisson by default; an
//! infinite rate sends everything at time 0), both seeded from `SEED` (default 0) as vLLM seeds
//! its samplers, so every rate and every baseline gets the same prompts. `MAX_CONCURRENCY` caps
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

use super::arrivals::{schedule_rate, Arrivals};
use super::prompt::{mix_seed, PromptBuilder};
use super::{
    Point, PointResults, RawWorkload, RunContext, SweepPoint, Workload, WorkloadError, WorkloadSpec,
};
use crate::config::{Checked, Invalid, Item, Num, OneOrMany, O};
use crate::record::{Completed, Prompt, RequestSpec};
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Map, Value};
use std::path::Path;
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
            rates: rates?.unwrap_or_else(|| vec![Num::float(1.0)]),
            temperature: temperature?.and(self.TEMPERATURE.as_ref().map(|t| t.value)),
            top_p: top_p?.and(self.TOP_P.as_ref().map(|t| t.value)),
            top_k: top_k?,
            burstiness: burstiness?.unwrap_or(1.0),
            seed: self.SEED.as_ref().map_or(0, |s| s.value) as u64,
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

    fn tokenizer(&self) -> &O<String> {
        &self.TOKENIZER
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

impl WorkloadSpec for Config {
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
        let n = self.num_prompts as f64;
        self.rates
            .iter()
            .map(|r| {
                let est = if r.value.is_finite() {
                    n / r.value
                } else {
                    n * 0.05
                };
                Point {
                    sweep: SweepPoint {
                        key: "REQUEST_RATE",
                        value: Some(*r),
                    },
                    qps: Some(*r),
                    qps_label: r.label(),
                    estimated_s: est + 10.0,
                }
            })
            .collect()
    }

    fn build(&self, point: &Point, ctx: &RunContext) -> Result<Box<dyn Workload>, WorkloadError> {
        Ok(Box::new(VllmBench::new(self, point, ctx)?))
    }

    fn finish_result(&self, r: &mut PointResults<'_>) {
        // A Poisson or gamma schedule's own rate differs from the target by chance; the client
        // under-delivers only if it sent slower than its schedule.
        let rate = |k: &str| r.results.get(k).and_then(Value::as_f64);
        if let (Some(achieved), Some(sched)) = (rate("achieved_qps"), rate("scheduled_qps")) {
            crate::measure::rejudge_shortfall(
                r.results,
                achieved,
                sched,
                "sent vs the random schedule's own rate",
            );
        }
        // vLLM bench's names beside LMBench's, so users can compare with vLLM's own tool.
        let results = Value::Object(std::mem::take(r.results));
        let extra = vllm_result_fields(&results, r.stats);
        if let Value::Object(m) = results {
            *r.results = m;
        }
        r.results.extend(extra);
    }
}

/// One usable dataset entry.
#[derive(Debug, Clone)]
struct Entry {
    prompt: String,
    /// The entry's own output length: its `output_len` field, else its answer's token count.
    output_len: Option<u32>,
    /// The answer, until it is counted (only sampled entries are: a full ShareGPT file holds
    /// about 90 000 conversations).
    answer: Option<String>,
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
    base: u64,
    extra: Map<String, Value>,
    max_concurrency: Option<usize>,
    window_end: f64,
    slo: Option<Slo>,
    goodput: GoodputCounters,
    /// Fixed facts for `stats()`.
    info: Map<String, Value>,
}

fn positive_u32(v: i64) -> u32 {
    v.clamp(1, u32::MAX as i64) as u32
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn err_at(path: &Path, line: usize, msg: impl std::fmt::Display) -> WorkloadError {
    WorkloadError::Other(format!("{}: line {line}: {msg}", path.display()))
}

fn read_text(path: &Path) -> Result<String, WorkloadError> {
    std::fs::read_to_string(path)
        .map_err(|e| WorkloadError::Other(format!("cannot read {}: {e}", path.display())))
}

impl VllmBench {
    /// Build the workload from its config at a request rate.
    pub fn new(cfg: &Config, point: &Point, ctx: &RunContext) -> Result<Self, WorkloadError> {
        let rate = point.target_qps().unwrap_or(1.0);
        let burstiness = cfg.burstiness;
        let seed = cfg.seed;
        let n = cfg.num_prompts.max(1);
        let dataset = cfg.dataset.clone();
        let path = cfg.dataset_path.as_ref().map(|p| ctx.root.join(p));
        let max_tokens = cfg.max_tokens;
        let b = ctx.prompt.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[seed, STREAM_SAMPLE]));
        let need_path = || {
            path.clone().ok_or_else(|| {
                WorkloadError::Other(format!("DATASET_NAME {dataset} needs DATASET_PATH"))
            })
        };
        let mut info = Map::new();
        let source = match dataset.as_str() {
            "random" => {
                let input = cfg.random_input_len;
                let output = cfg
                    .random_output_len
                    .or(max_tokens)
                    .unwrap_or(DEFAULT_RANDOM_OUTPUT_LEN);
                let ratio = cfg.random_range_ratio;
                let prefix_len = cfg.random_prefix_len;
                let range = |len: i64| {
                    // vLLM truncates both bounds to integers.
                    let lo = ((len as f64 * (1.0 - ratio)) as i64).max(1);
                    let hi = ((len as f64 * (1.0 + ratio)) as i64).max(lo);
                    (lo, hi)
                };
                let (ilo, ihi) = range(input);
                let (olo, ohi) = range(output);
                let input_lens = (0..n)
                    .map(|_| rng.random_range(ilo..=ihi) as usize)
                    .collect();
                let output_lens = (0..n)
                    .map(|_| positive_u32(rng.random_range(olo..=ohi)))
                    .collect();
                info.insert("input_len_range".into(), json!([ilo, ihi]));
                info.insert("output_len_range".into(), json!([olo, ohi]));
                info.insert("prefix_len".into(), json!(prefix_len));
                Source::Random {
                    prefix: b.filler_seeded(prefix_len, mix_seed(&[seed, STREAM_PREFIX])),
                    input_lens,
                    output_lens,
                }
            }
            "sonnet" => {
                let path = need_path()?;
                let input = cfg.sonnet_input_len;
                let prefix = cfg.sonnet_prefix_len;
                let output = cfg
                    .sonnet_output_len
                    .or(max_tokens)
                    .unwrap_or(DEFAULT_SONNET_OUTPUT_LEN);
                let (head, lines, extra, prefix_lines) =
                    sonnet_plan(&read_text(&path)?, &path, &b, input, prefix)?;
                info.insert("dataset_entries".into(), json!(lines.len()));
                info.insert("prefix_lines".into(), json!(prefix_lines));
                info.insert("random_lines".into(), json!(extra));
                Source::Sonnet {
                    head,
                    lines,
                    extra,
                    output_len: positive_u32(output),
                }
            }
            "sharegpt" | "custom" | "hf" => {
                let path = need_path()?;
                let (configured, default_len) = match dataset.as_str() {
                    "sharegpt" => (cfg.sharegpt_output_len.or(max_tokens), 0),
                    "custom" => (
                        cfg.custom_output_len.or(max_tokens),
                        DEFAULT_CUSTOM_OUTPUT_LEN,
                    ),
                    _ => (cfg.hf_output_len.or(max_tokens), DEFAULT_HF_OUTPUT_LEN),
                };
                let configured = configured.map(positive_u32);
                let text = read_text(&path)?;
                let mut entries = match dataset.as_str() {
                    "sharegpt" => load_sharegpt(&text, &path)?,
                    "custom" => load_jsonl(&text, &path, custom_entry)?,
                    _ => load_jsonl(&text, &path, hf_entry)?,
                };
                let loaded = entries.len();
                let mut shuffled: Vec<usize> = (0..loaded).collect();
                shuffled.shuffle(&mut rng);
                let mut order = Vec::with_capacity(n);
                let mut filtered_out = 0u64;
                for i in shuffled {
                    if order.len() >= n {
                        break;
                    }
                    let e = &mut entries[i];
                    if let Some(a) = e.answer.take() {
                        e.output_len = e
                            .output_len
                            .or_else(|| Some(b.count(&a) as u32).filter(|n| *n > 0));
                    }
                    if dataset == "sharegpt" && !sharegpt_valid(e, &b, configured) {
                        filtered_out += 1;
                        continue;
                    }
                    order.push(i);
                }
                if order.is_empty() {
                    let why = if dataset == "sharegpt" {
                        " (vLLM's filter: prompt of 4 to 1024 tokens, answer of at least 4, \
                         prompt + answer at most 2048)"
                    } else {
                        ""
                    };
                    return Err(WorkloadError::Other(format!(
                        "{}: no usable entry in {loaded}{why}",
                        path.display()
                    )));
                }
                let used = order.len();
                while order.len() < n {
                    order.push(order[rng.random_range(0..used)]);
                }
                info.insert("dataset_entries".into(), json!(loaded));
                info.insert("entries_used".into(), json!(used));
                info.insert("oversampled".into(), json!(n - used));
                if dataset == "sharegpt" {
                    info.insert("filtered_out".into(), json!(filtered_out));
                }
                Source::Pool {
                    entries,
                    order,
                    configured,
                    default_len,
                }
            }
            other => {
                return Err(WorkloadError::Other(format!(
                    "unknown DATASET_NAME {other}: expected random, sonnet, sharegpt, custom or hf"
                )))
            }
        };
        let due = Arrivals::due_times(rate, burstiness, mix_seed(&[seed, STREAM_ARRIVALS]), n)
            .map_err(WorkloadError::Other)?;
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
        let max_concurrency = cfg.max_concurrency.map(|c| c.max(1));
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
        let stream = mix_seed(&[self.seed, STREAM_PROMPT, i as u64]);
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
                (text, *output_len)
            }
            Source::Pool {
                entries,
                order,
                configured,
                default_len,
            } => {
                let e = &entries[order[i]];
                let len = configured.or(e.output_len).unwrap_or(*default_len).max(1);
                (e.prompt.clone(), len)
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

/// The sonnet prompt head (instruction + shared prefix lines), the file's lines (each ending in
/// a newline), how many random lines follow the head, and how many prefix lines it has.
fn sonnet_plan(
    text: &str,
    path: &Path,
    b: &PromptBuilder,
    input_len: i64,
    prefix_len: i64,
) -> Result<(String, Vec<String>, usize, usize), WorkloadError> {
    let lines: Vec<String> = text
        .split_inclusive('\n')
        .map(|l| {
            if l.ends_with('\n') {
                l.to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    if lines.is_empty() {
        return Err(err_at(path, 1, "no lines to sample (the file is empty)"));
    }
    let avg = lines.iter().map(|l| b.count(l)).sum::<usize>() as f64 / lines.len() as f64;
    let base = b.count(SONNET_INSTRUCTION) as i64;
    if input_len <= base {
        return Err(WorkloadError::Other(format!(
            "SONNET_INPUT_LEN {input_len} must exceed the instruction's {base} tokens"
        )));
    }
    // Python's round() rounds half to even.
    let lines_for = |len: i64| ((len - base) as f64 / avg.max(1e-9)).round_ties_even();
    let input_lines = lines_for(input_len).max(0.0) as usize;
    // vLLM slices with a possibly negative count; a prefix never exceeds the file or the input.
    let prefix_lines = (lines_for(prefix_len).max(0.0) as usize)
        .min(lines.len())
        .min(input_lines);
    let head = format!("{SONNET_INSTRUCTION}{}", lines[..prefix_lines].concat());
    Ok((head, lines, input_lines - prefix_lines, prefix_lines))
}

#[derive(serde::Deserialize)]
struct ShareGptEntry {
    #[serde(default)]
    conversations: Vec<ShareGptTurn>,
}

#[derive(serde::Deserialize)]
struct ShareGptTurn {
    from: String,
    value: String,
}

fn is_user(role: &str) -> bool {
    matches!(role, "human" | "user")
}

fn is_assistant(role: &str) -> bool {
    matches!(
        role,
        "gpt" | "assistant" | "chatgpt" | "bard" | "bing" | "model"
    )
}

/// Entries of a ShareGPT file: the first human turn answered by a gpt turn; conversations
/// without one are skipped (vLLM skips those with fewer than two turns).
fn load_sharegpt(text: &str, path: &Path) -> Result<Vec<Entry>, WorkloadError> {
    let data: Vec<ShareGptEntry> = serde_json::from_str(text).map_err(|e| {
        err_at(
            path,
            e.line(),
            format!(
                "column {}: not a ShareGPT list of {{\"conversations\": [{{\"from\", \"value\"}}, …]}}: {e}",
                e.column()
            ),
        )
    })?;
    Ok(data
        .into_iter()
        .filter_map(|c| {
            c.conversations
                .windows(2)
                .find(|w| is_user(&w[0].from) && is_assistant(&w[1].from))
                .map(|w| Entry {
                    prompt: w[0].value.clone(),
                    output_len: None,
                    answer: Some(w[1].value.clone()),
                })
        })
        .collect())
}

/// vLLM's `is_valid_sequence` with its ShareGPT defaults.
fn sharegpt_valid(e: &Entry, b: &PromptBuilder, configured: Option<u32>) -> bool {
    let prompt = b.count(&e.prompt);
    let output = configured.or(e.output_len).unwrap_or(0) as usize;
    !(prompt < 4 || (configured.is_none() && output < 4) || prompt > 1024 || prompt + output > 2048)
}

/// Parse a JSONL file line by line (blank lines skipped) with `entry`, naming the line of any
/// error.
fn load_jsonl(
    text: &str,
    path: &Path,
    entry: fn(&Value) -> Result<Entry, String>,
) -> Result<Vec<Entry>, WorkloadError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| err_at(path, i + 1, format!("{e}")))?;
        out.push(entry(&v).map_err(|e| err_at(path, i + 1, e))?);
    }
    Ok(out)
}

fn output_len_field(v: &Value) -> Result<Option<u32>, String> {
    match v.get("output_len") {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_u64() {
            Some(n) if n >= 1 && n <= u32::MAX as u64 => Ok(Some(n as u32)),
            _ => Err(format!("`output_len` must be a positive integer, got {x}")),
        },
    }
}

/// A `custom` line: `{"prompt": "…", "output_len": n}`.
fn custom_entry(v: &Value) -> Result<Entry, String> {
    let prompt = v
        .get("prompt")
        .and_then(Value::as_str)
        .ok_or("expected an object with a string `prompt`")?;
    Ok(Entry {
        prompt: prompt.to_string(),
        output_len: output_len_field(v)?,
        answer: None,
    })
}

/// A message's role and text: `{role|from, content|value}`, content a string or a list of
/// `{"text": …}` parts.
fn message(v: &Value) -> Option<(String, String)> {
    let role = v
        .get("role")
        .or_else(|| v.get("from"))?
        .as_str()?
        .to_string();
    let content = v.get("content").or_else(|| v.get("value"))?;
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    };
    Some((role, text))
}

/// An `hf` line: a `prompt`, or the first user turn of a turn list (and the answer after it).
fn hf_entry(v: &Value) -> Result<Entry, String> {
    let output_len = output_len_field(v)?;
    if let Some(p) = v.get("prompt").and_then(Value::as_str) {
        return Ok(Entry {
            prompt: p.to_string(),
            output_len,
            answer: None,
        });
    }
    let Some(list) = ["turns", "conversations", "conversation", "messages"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_array))
    else {
        return Err(
            "expected a string `prompt` or a `turns`/`conversations`/`messages` list".into(),
        );
    };
    // A plain string turn is a user turn (MT-Bench); a list of messages is flattened.
    let mut turns: Vec<(String, String)> = Vec::new();
    for t in list {
        match t {
            Value::String(s) => turns.push(("user".into(), s.clone())),
            Value::Array(ms) => turns.extend(ms.iter().filter_map(message)),
            other => turns.extend(message(other)),
        }
    }
    let Some(i) = turns.iter().position(|(r, _)| is_user(r)) else {
        return Err("no user turn in the turn list".into());
    };
    let answer = turns
        .get(i + 1)
        .filter(|(r, _)| is_assistant(r))
        .map(|(_, t)| t.clone());
    Ok(Entry {
        prompt: turns[i].1.clone(),
        output_len,
        answer,
    })
}

/// vLLM bench's result names, added beside LMBench's in a VLLMBenchmark result: computed from
/// the `results` object and the workload's `stats()`.
///
/// | vLLM name | from |
/// |---|---|
/// | `backend`, `num_prompts`, `request_rate`, `burstiness`, `max_concurrency` | `stats()` |
/// | `duration` | `benchmark_duration_s` |
/// | `completed`, `failed` | `successful_requests`, `failed_requests` |
/// | `total_input_tokens`, `total_output_tokens` | `total_input_tokens`, `total_generated_tokens` |
/// | `request_throughput`, `output_throughput`, `total_token_throughput` | `request_throughput_req_per_s`, `output_token_throughput_tok_per_s`, `total_token_throughput_tok_per_s` |
/// | `request_goodput` (only with GOODPUT) | `stats().goodput.good_requests ÷ benchmark_duration_s` |
/// | `{mean,median,std,p99}_ttft_ms` | `ttft_ms` |
/// | `{mean,median,std,p99}_tpot_ms` | `tpot_ms` |
/// | `{mean,median,p99}_itl_ms` | `inter_token_latency_ms` (per-chunk gaps; no std) |
/// | `{mean,median,std,p99}_e2el_ms` | `e2e_latency_ms` |
pub fn vllm_result_fields(results: &Value, stats: &Value) -> Map<String, Value> {
    let mut m = Map::new();
    for k in [
        "backend",
        "num_prompts",
        "request_rate",
        "burstiness",
        "max_concurrency",
    ] {
        m.insert(k.into(), stats.get(k).cloned().unwrap_or(Value::Null));
    }
    let pick = |k: &str| results.get(k).cloned().unwrap_or(Value::Null);
    m.insert("duration".into(), pick("benchmark_duration_s"));
    m.insert(
        "completed".into(),
        results
            .get("successful_requests")
            .cloned()
            .unwrap_or(json!(0)),
    );
    m.insert("failed".into(), pick("failed_requests"));
    m.insert("total_input_tokens".into(), pick("total_input_tokens"));
    m.insert("total_output_tokens".into(), pick("total_generated_tokens"));
    m.insert(
        "request_throughput".into(),
        pick("request_throughput_req_per_s"),
    );
    if let Some(g) = stats.get("goodput").filter(|g| !g.is_null()) {
        let good = g
            .get("good_requests")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let num = |k: &str| results.get(k).and_then(Value::as_f64);
        // good ÷ duration, through the throughput (completed ÷ duration) where possible: the
        // duration is rounded to 10 ms, the throughput far more finely.
        let goodput = match (
            num("request_throughput_req_per_s"),
            num("successful_requests"),
        ) {
            (Some(t), Some(c)) if c > 0.0 => Some(round4(t * good / c)),
            _ => num("benchmark_duration_s")
                .filter(|d| *d > 0.0)
                .map(|d| round4(good / d)),
        };
        m.insert("request_goodput".into(), json!(goodput));
    }
    m.insert(
        "output_throughput".into(),
        pick("output_token_throughput_tok_per_s"),
    );
    m.insert(
        "total_token_throughput".into(),
        pick("total_token_throughput_tok_per_s"),
    );
    for (name, block, has_std) in [
        ("ttft", "ttft_ms", true),
        ("tpot", "tpot_ms", true),
        ("itl", "inter_token_latency_ms", false),
        ("e2el", "e2e_latency_ms", true),
    ] {
        let b = results.get(block);
        let stat = |s: &str| b.and_then(|b| b.get(s)).cloned().unwrap_or(Value::Null);
        m.insert(format!("mean_{name}_ms"), stat("mean"));
        m.insert(format!("median_{name}_ms"), stat("median"));
        if has_std {
            m.insert(format!("std_{name}_ms"), stat("std"));
        }
        m.insert(format!("p99_{name}_ms"), stat("p99"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RequestRecord;
    use std::path::PathBuf;

    /// The item, validated with paths resolving against the repository.
    fn cfg(yaml: &str) -> Config {
        crate::workload::spec_from_yaml::<Raw>(yaml)
    }

    fn run(rate: f64) -> Point {
        Point {
            sweep: SweepPoint {
                key: "REQUEST_RATE",
                value: Some(Num::float(rate)),
            },
            qps: Some(Num::float(rate)),
            qps_label: format!("{rate}"),
            estimated_s: 1.0,
        }
    }

    fn ctx(_rate: f64, root: &Path) -> RunContext {
        RunContext {
            prompt: PromptBuilder::global(),
            root: root.to_path_buf(),
            api: crate::record::ApiType::Completions,
            seed: 7,
            user_id_base: 3_000_000,
            duration_override_s: None,
        }
    }

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// The item validated against `root` (where its dataset is), built at `rate`.
    fn build_in(yaml: &str, rate: f64, root: &Path) -> Result<VllmBench, WorkloadError> {
        let cfg = crate::workload::spec_from_yaml_in::<Raw>(yaml, root);
        VllmBench::new(&cfg, &run(rate), &ctx(rate, root))
    }

    fn all_specs(w: &mut VllmBench) -> Vec<RequestSpec> {
        std::iter::from_fn(|| w.next_scheduled()).collect()
    }

    fn text(s: &RequestSpec) -> &str {
        match &s.prompt {
            Prompt::Text(t) => t,
            Prompt::Messages(_) => panic!("expected a text prompt"),
        }
    }

    const RANDOM: &str = "DATASET_NAME: random\nNUM_PROMPTS: 200\nRANDOM_INPUT_LEN: 100\n\
        RANDOM_OUTPUT_LEN: 20\nRANDOM_RANGE_RATIO: 0.25\nRANDOM_PREFIX_LEN: 16\nSEED: 5\n";

    #[test]
    fn random_lengths_are_exact_and_within_the_range() {
        let mut w = build_in(RANDOM, 4.0, &repo()).unwrap();
        let specs = all_specs(&mut w);
        assert_eq!(specs.len(), 200);
        let b = PromptBuilder::global();
        let prefix = b.filler_seeded(16, mix_seed(&[5, STREAM_PREFIX]));
        let (mut ins, mut outs) = (Vec::new(), Vec::new());
        for (i, s) in specs.iter().enumerate() {
            let n = b.count(text(s));
            assert_eq!(n as u64, s.client_prompt_tokens);
            assert!((16 + 75..=16 + 125).contains(&n), "prompt {i}: {n} tokens");
            assert!(text(s).starts_with(&prefix));
            assert!((15..=25).contains(&s.max_tokens), "{}", s.max_tokens);
            assert_eq!(s.user_id, Some(3_000_000 + i as u64));
            assert_eq!(s.id, i as u64);
            ins.push(n);
            outs.push(s.max_tokens);
        }
        // The lengths really vary over the range.
        assert_eq!(*ins.iter().min().unwrap(), 16 + 75);
        assert_eq!(*ins.iter().max().unwrap(), 16 + 125);
        assert!(outs.contains(&15) && outs.contains(&25));
        // Without a range ratio every length is the configured one; MAX_TOKENS fills in.
        let mut w = build_in(
            "DATASET_NAME: random\nNUM_PROMPTS: 5\nRANDOM_INPUT_LEN: 40\nMAX_TOKENS: 9\n",
            1.0,
            &repo(),
        )
        .unwrap();
        for s in all_specs(&mut w) {
            assert_eq!(s.client_prompt_tokens, 40);
            assert_eq!(s.max_tokens, 9);
        }
    }

    #[test]
    fn same_seed_gives_a_byte_identical_stream_and_other_seeds_differ() {
        let stream = |yaml: &str| {
            let mut w = build_in(yaml, 3.0, &repo()).unwrap();
            serde_json::to_string(&all_specs(&mut w)).unwrap()
        };
        let a = stream(RANDOM);
        assert_eq!(a, stream(RANDOM));
        let other = RANDOM.replace("SEED: 5", "SEED: 6");
        let b = stream(&other);
        assert_ne!(a, b);
        // Due times and prompts both change.
        let due = |s: &str| -> Vec<f64> {
            let v: Vec<RequestSpec> = serde_json::from_str(s).unwrap();
            v.iter().map(|x| x.due_s).collect()
        };
        assert_ne!(due(&a), due(&b));
    }

    #[test]
    fn infinite_rate_puts_every_request_at_zero() {
        let mut w = build_in(RANDOM, f64::INFINITY, &repo()).unwrap();
        let specs = all_specs(&mut w);
        assert!(specs.iter().all(|s| s.due_s == 0.0));
        let st = w.stats();
        assert_eq!(st["request_rate"], "inf");
        assert!(st["schedule_rate"].is_null());
    }

    #[test]
    fn schedule_follows_the_rate_and_stats_say_so() {
        let y = "DATASET_NAME: random\nNUM_PROMPTS: 2000\nRANDOM_INPUT_LEN: 4\nBURSTINESS: 2.0\n\
                 MAX_CONCURRENCY: 3\nSEED: 1\n";
        let mut w = build_in(y, 20.0, &repo()).unwrap();
        assert_eq!(w.max_in_flight(), Some(3));
        let specs = all_specs(&mut w);
        let last = specs.last().unwrap().due_s;
        // Mean gap 1/20 s; the sum of 1999 gaps has a relative sd of 1/sqrt(1999·2) ≈ 1.6 %.
        assert!((last / (1999.0 / 20.0) - 1.0).abs() < 0.08, "{last}");
        let st = w.stats();
        assert_eq!(st["dataset"], "random");
        assert_eq!(st["num_prompts"], 2000);
        assert_eq!(st["requests_scheduled"], 2000);
        assert_eq!(st["burstiness"], 2.0);
        assert_eq!(st["seed"], 1);
        assert_eq!(st["max_concurrency"], 3);
        let sr = st["schedule_rate"].as_f64().unwrap();
        assert!((sr / 20.0 - 1.0).abs() < 0.08, "{sr}");
        assert_eq!(w.window(), Some((0.0, 100.0)));
    }

    #[test]
    fn sampling_options_go_into_the_body_only_when_set() {
        let mut w = build_in(RANDOM, 1.0, &repo()).unwrap();
        assert!(w.next_scheduled().unwrap().extra.is_empty());
        let y = format!("{RANDOM}TEMPERATURE: 0.7\nTOP_P: 0.9\nTOP_K: 20\nIGNORE_EOS: true\n");
        let mut w = build_in(&y, 1.0, &repo()).unwrap();
        let e = w.next_scheduled().unwrap().extra;
        assert_eq!(
            Value::Object(e),
            json!({"temperature": 0.7, "top_p": 0.9, "top_k": 20, "ignore_eos": true})
        );
    }

    fn write(dir: &Path, name: &str, body: &str) -> String {
        std::fs::write(dir.join(name), body).unwrap();
        name.to_string()
    }

    #[test]
    fn sonnet_shares_its_prefix_and_reaches_the_input_length() {
        let y =
            "DATASET_NAME: sonnet\nDATASET_PATH: 3-workloads/vllm-benchmark-serving/verses.txt\n\
                 NUM_PROMPTS: 30\nSONNET_INPUT_LEN: 300\nSONNET_PREFIX_LEN: 100\n";
        let mut w = build_in(y, 2.0, &repo()).unwrap();
        let specs = all_specs(&mut w);
        let st = w.stats();
        let prefix_lines = st["prefix_lines"].as_u64().unwrap() as usize;
        assert!(prefix_lines >= 2, "{st}");
        let lines: Vec<String> =
            std::fs::read_to_string(repo().join("3-workloads/vllm-benchmark-serving/verses.txt"))
                .unwrap()
                .lines()
                .map(|l| format!("{l}\n"))
                .collect();
        let head = format!("{SONNET_INSTRUCTION}{}", lines[..prefix_lines].concat());
        let mut distinct = std::collections::HashSet::new();
        for s in &specs {
            let t = text(s);
            assert!(t.starts_with(&head), "shared prefix");
            assert_eq!(s.max_tokens, 150, "SONNET_OUTPUT_LEN default");
            let n = s.client_prompt_tokens as f64;
            assert!((n / 300.0 - 1.0).abs() < 0.25, "{n} tokens");
            distinct.insert(t.to_string());
        }
        assert!(distinct.len() > 25, "prompts differ after the prefix");
    }

    #[test]
    fn sonnet_with_the_reference_file_matches_the_default_lengths() {
        let p = repo().join("../shared/data/sonnet.txt");
        if !p.is_file() {
            return;
        }
        let y = format!(
            "DATASET_NAME: sonnet\nDATASET_PATH: {}\nNUM_PROMPTS: 50\nMAX_TOKENS: 33\n",
            p.display()
        );
        let mut w = build_in(&y, 2.0, Path::new("/")).unwrap();
        let specs = all_specs(&mut w);
        let mean =
            specs.iter().map(|s| s.client_prompt_tokens).sum::<u64>() as f64 / specs.len() as f64;
        eprintln!("sonnet.txt: mean prompt {mean:.1} tokens, {}", w.stats());
        assert!((mean / 550.0 - 1.0).abs() < 0.1, "{mean}");
        assert!(specs.iter().all(|s| s.max_tokens == 33), "MAX_TOKENS maps");
        assert!(specs.iter().all(|s| text(s).starts_with(
            "Pick as many lines as you can from these poem lines:\nShall I compare thee"
        )));
    }

    #[test]
    fn sharegpt_takes_the_first_answered_human_turn_and_its_answer_length() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(
            dir.path(),
            "s.json",
            r#"[
  {"id": "a", "conversations": [
    {"from": "system", "value": "be brief"},
    {"from": "human", "value": "one two three four five"},
    {"from": "gpt", "value": "six seven eight nine ten eleven"}]},
  {"id": "b", "conversations": [{"from": "human", "value": "lonely question without answer"}]},
  {"id": "c", "conversations": [
    {"from": "human", "value": "hi"}, {"from": "gpt", "value": "too short a prompt to pass"}]}
]"#,
        );
        let y = format!("DATASET_NAME: sharegpt\nDATASET_PATH: {f}\nNUM_PROMPTS: 6\n");
        let mut w = build_in(&y, 1.0, dir.path()).unwrap();
        let specs = all_specs(&mut w);
        assert_eq!(specs.len(), 6, "oversampled to NUM_PROMPTS");
        for s in &specs {
            assert_eq!(text(s), "one two three four five");
            assert_eq!(s.max_tokens, 6, "the answer's token count");
        }
        let st = w.stats();
        assert_eq!(st["dataset_entries"], 2);
        assert_eq!(st["filtered_out"], 1);
        assert_eq!(st["entries_used"], 1);
        assert_eq!(st["oversampled"], 5);
        // A configured length replaces the answer's, and lets short answers through.
        let y = format!("{y}SHAREGPT_OUTPUT_LEN: 3\n");
        let mut w = build_in(&y, 1.0, dir.path()).unwrap();
        assert!(all_specs(&mut w).iter().all(|s| s.max_tokens == 3));
    }

    #[test]
    fn custom_and_hf_lengths_follow_keys_then_lines_then_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let c = write(
            dir.path(),
            "c.jsonl",
            "{\"prompt\": \"alpha\", \"output_len\": 7}\n\n{\"prompt\": \"beta\"}\n",
        );
        let lens = |yaml: String| {
            let mut w = build_in(&yaml, 1.0, dir.path()).unwrap();
            let mut v: Vec<(String, u32)> = all_specs(&mut w)
                .iter()
                .map(|s| (text(s).to_string(), s.max_tokens))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let base = format!("DATASET_NAME: custom\nDATASET_PATH: {c}\nNUM_PROMPTS: 10\n");
        assert_eq!(
            lens(base.clone()),
            vec![("alpha".into(), 7), ("beta".into(), 256)]
        );
        assert_eq!(
            lens(format!("{base}MAX_TOKENS: 11\n")),
            vec![("alpha".into(), 11), ("beta".into(), 11)]
        );
        assert_eq!(
            lens(format!("{base}MAX_TOKENS: 11\nCUSTOM_OUTPUT_LEN: 4\n")),
            vec![("alpha".into(), 4), ("beta".into(), 4)]
        );
        let h = write(
            dir.path(),
            "h.jsonl",
            concat!(
                "{\"turns\": [\"mt bench question\", \"follow up\"]}\n",
                "{\"conversations\": [{\"from\": \"human\", \"value\": \"conv q\"}, {\"from\": \"gpt\", \"value\": \"a b c\"}]}\n",
                "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"parts q\"}]}]}\n",
                "{\"prompt\": \"plain\", \"output_len\": 5}\n",
            ),
        );
        let base = format!("DATASET_NAME: hf\nDATASET_PATH: {h}\nNUM_PROMPTS: 12\n");
        assert_eq!(
            lens(base.clone()),
            vec![
                ("conv q".into(), 3),
                ("mt bench question".into(), 256),
                ("parts q".into(), 256),
                ("plain".into(), 5)
            ]
        );
        assert!(lens(format!("{base}HF_OUTPUT_LEN: 2\n"))
            .iter()
            .all(|(_, n)| *n == 2));
    }

    #[test]
    fn a_bad_dataset_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "custom",
                "c.jsonl",
                "{\"prompt\": \"ok\"}\n{\"prompt\": 3}\n",
                "line 2",
            ),
            (
                "custom",
                "d.jsonl",
                "{\"prompt\": \"ok\"}\n\nnot json\n",
                "line 3",
            ),
            (
                "custom",
                "e.jsonl",
                "{\"prompt\": \"ok\", \"output_len\": 0}\n",
                "line 1",
            ),
            (
                "hf",
                "h.jsonl",
                "{\"prompt\": \"ok\"}\n{\"turns\": 5}\n",
                "line 2",
            ),
            (
                "sharegpt",
                "s.json",
                "[\n  {\"conversations\": [\n    {\"from\": \"human\"}\n  ]}\n]\n",
                "line 3",
            ),
        ];
        for (ds, name, body, want) in cases {
            let f = write(dir.path(), name, body);
            let y = format!("DATASET_NAME: {ds}\nDATASET_PATH: {f}\nNUM_PROMPTS: 2\n");
            let e = build_in(&y, 1.0, dir.path()).err().unwrap().to_string();
            assert!(e.contains(name) && e.contains(want), "{ds}: {e}");
        }
        // A dataset that is gone by the time the run starts.
        write(dir.path(), "missing.jsonl", "{\"prompt\": \"ok\"}\n");
        let gone = crate::workload::spec_from_yaml_in::<Raw>(
            "DATASET_NAME: custom\nDATASET_PATH: missing.jsonl\n",
            dir.path(),
        );
        std::fs::remove_file(dir.path().join("missing.jsonl")).unwrap();
        let e = VllmBench::new(&gone, &run(1.0), &ctx(1.0, dir.path()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("cannot read") && e.contains("missing.jsonl"),
            "{e}"
        );
    }

    fn completed(sent: f64, first: f64, end: f64, tokens: u64, ok: bool) -> Completed {
        Completed {
            record: RequestRecord {
                id: 0,
                user_id: None,
                round: 1,
                warmup: false,
                due_s: 0.0,
                sent_s: sent,
                first_token_s: Some(first),
                end_s: end,
                chunk_times_s: Vec::new(),
                prompt_tokens: Some(10),
                completion_tokens: Some(tokens),
                cached_tokens: None,
                client_prompt_tokens: 10,
                client_completion_tokens: tokens,
                max_tokens: tokens as u32,
                status: Some(200),
                error: (!ok).then(|| crate::record::RequestError {
                    kind: crate::record::ErrorKind::HttpStatus,
                    message: "500".into(),
                }),
            },
            text: String::new(),
        }
    }

    #[test]
    fn goodput_counts_requests_meeting_every_slo() {
        let y = format!("{RANDOM}GOODPUT: {{ttft_ms: 100, tpot_ms: 10, e2el_ms: 1000}}\n");
        let mut w = build_in(&y, 1.0, &repo()).unwrap();
        // good: ttft 50 ms, tpot 450 ms / 50 = 9 ms, e2el 500 ms
        w.on_complete(&completed(1.0, 1.05, 1.5, 51, true), 2.0);
        // ttft 200 ms misses
        w.on_complete(&completed(1.0, 1.2, 1.25, 11, true), 2.0);
        // tpot 20 ms and e2el 1.05 s miss
        w.on_complete(&completed(0.0, 0.05, 1.05, 51, true), 2.0);
        // one token: tpot counts as 0 (vLLM), good
        w.on_complete(&completed(0.0, 0.05, 0.05, 1, true), 2.0);
        // failed: not counted at all
        w.on_complete(&completed(0.0, 0.01, 0.02, 2, false), 2.0);
        let g = &w.stats()["goodput"];
        assert_eq!(g["requests_checked"], 4);
        assert_eq!(g["good_requests"], 2);
        assert_eq!(
            g["missed"],
            json!({"ttft_ms": 1, "tpot_ms": 1, "e2el_ms": 1})
        );
        assert_eq!(g["slo_ms"]["tpot_ms"], 10.0);
        // Without GOODPUT there are no counters and no request_goodput.
        let w = build_in(RANDOM, 1.0, &repo()).unwrap();
        assert!(w.stats()["goodput"].is_null());
        let f = vllm_result_fields(&json!({"benchmark_duration_s": 2.0}), &w.stats());
        assert!(!f.contains_key("request_goodput"));
    }

    #[test]
    fn vllm_names_come_from_the_results_object() {
        let results = json!({
            "successful_requests": 40, "benchmark_duration_s": 8.0,
            "total_input_tokens": 4000, "total_generated_tokens": 640,
            "request_throughput_req_per_s": 5.0, "output_token_throughput_tok_per_s": 80.0,
            "input_token_throughput_tok_per_s": 500.0, "total_token_throughput_tok_per_s": 580.0,
            "ttft_ms": {"mean": 50.0, "median": 49.0, "p99": 70.0, "std": 3.0},
            "tpot_ms": {"mean": 5.0, "median": 5.0, "p99": 6.0, "std": 0.1},
            "itl_ms": {"mean": 9.0, "median": 9.0, "p99": 9.5, "std": 0.2},
            "failed_requests": 1,
            "e2e_latency_ms": {"mean": 130.0, "median": 128.0, "p99": 160.0, "std": 4.0},
            "inter_token_latency_ms": {"mean": 5.1, "median": 5.0, "p99": 7.0, "max": 9.0},
        });
        let stats = json!({"backend": "vllm", "num_prompts": 41, "request_rate": 5.0,
            "burstiness": 1.0, "max_concurrency": null,
            "goodput": {"good_requests": 30}});
        let f = Value::Object(vllm_result_fields(&results, &stats));
        let want = json!({
            "backend": "vllm", "num_prompts": 41, "request_rate": 5.0, "burstiness": 1.0,
            "max_concurrency": null, "duration": 8.0, "completed": 40, "failed": 1,
            "total_input_tokens": 4000, "total_output_tokens": 640,
            "request_throughput": 5.0, "request_goodput": 3.75,
            "output_throughput": 80.0, "total_token_throughput": 580.0,
            "mean_ttft_ms": 50.0, "median_ttft_ms": 49.0, "std_ttft_ms": 3.0, "p99_ttft_ms": 70.0,
            "mean_tpot_ms": 5.0, "median_tpot_ms": 5.0, "std_tpot_ms": 0.1, "p99_tpot_ms": 6.0,
            "mean_itl_ms": 5.1, "median_itl_ms": 5.0, "p99_itl_ms": 7.0,
            "mean_e2el_ms": 130.0, "median_e2el_ms": 128.0, "std_e2el_ms": 4.0,
            "p99_e2el_ms": 160.0,
        });
        assert_eq!(f, want);
        // LMBench's error object (nothing succeeded): completed 0, the rest null.
        let f = vllm_result_fields(
            &json!({"error": "No successful requests completed", "failed_requests": 3}),
            &stats,
        );
        assert_eq!(f["completed"], 0);
        assert_eq!(f["failed"], 3);
        assert!(f["mean_ttft_ms"].is_null() && f["request_goodput"].is_null());
    }

    #[test]
    fn duration_override_cuts_the_schedule() {
        let mut c = ctx(10.0, &repo());
        c.duration_override_s = Some(2.0);
        let mut w = VllmBench::new(&cfg(RANDOM), &run(10.0), &c).unwrap();
        let specs = all_specs(&mut w);
        assert!(specs.len() < 200 && specs.len() > 5, "{}", specs.len());
        assert!(specs.iter().all(|s| s.due_s < 2.0));
        assert_eq!(w.window(), Some((0.0, 2.0)));
    }
}
