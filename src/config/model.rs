//! The serde model of `run-bench.yaml` and spec files, with LMBench's key names.
//!
//! Every key is optional at this level so that a missing required key becomes a validation
//! error that is reported together with all the others (see `validate`), rather than the first
//! and only serde error. Unknown keys are rejected here (`deny_unknown_fields`), with the line
//! and column. Values that validation checks carry their location (`Spanned`).
//!
//! The same structs serialize back (skipping absent keys, `hf_token` never) to give the
//! `serving.config` object of a result file: the baseline as the user wrote it.

#![allow(non_snake_case)]

use super::values::{Items, LooseBool, Num, OneOrMany, TraceDuration};
use crate::record::ApiType;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// A located value.
pub type S<T> = Spanned<T>;
/// An optional located value.
pub type O<T> = Option<Spanned<T>>;

/// `run-bench.yaml`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunBenchFile {
    /// Spec files or folders, relative to `0-bench-specs/`.
    #[serde(rename = "0-bench-specs", default)]
    pub specs: Option<S<Option<Vec<S<String>>>>>,
    /// Where the baselines run.
    #[serde(rename = "1-infrastructure", default)]
    pub infrastructure: O<InfraFile>,
}

/// `1-infrastructure`.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct InfraFile {
    /// NoBench | LocalMinikube | LMCacheGKE | Local-Flat.
    #[serde(rename = "Location", default, skip_serializing_if = "Option::is_none")]
    pub location: O<String>,
    /// Number of GPUs of the GKE cluster (LMCacheGKE only): 1, 2, 4 or 8.
    #[serde(
        rename = "numClusterGPUs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub num_cluster_gpus: O<i64>,
    /// GPU memory of the A100s (LMCacheGKE only): 40 (default) or 80 (spot).
    #[serde(rename = "A100_VRAM", default, skip_serializing_if = "Option::is_none")]
    pub a100_vram: O<i64>,
}

/// A spec file (a suite).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// Suite name: the results folder `4-latest-results/<Name>/`.
    #[serde(rename = "Name", default)]
    pub name: O<String>,
    /// Serving baselines, each a one-key map `{<Type>: {...}}`.
    #[serde(rename = "Serving", default)]
    pub serving: Option<S<Option<Vec<S<BaselineEntry>>>>>,
    /// Workloads keyed by type.
    #[serde(rename = "Workload", default)]
    pub workload: Option<S<Option<WorkloadsFile>>>,
    /// Older LMBench specs carried the infrastructure here; it now comes from run-bench.yaml.
    #[serde(rename = "Infrastructure", default)]
    pub legacy_infrastructure: Option<S<serde::de::IgnoredAny>>,
}

/// One serving baseline.
#[derive(Debug, Deserialize, Serialize)]
pub enum BaselineEntry {
    /// vLLM production-stack through its Helm chart.
    #[serde(rename = "Helm-ProductionStack")]
    HelmProductionStack(HelmPs),
    /// vLLM production-stack from rendered Kubernetes manifests.
    #[serde(rename = "Direct-ProductionStack")]
    DirectProductionStack(DirectPs),
    /// SGLang from a launch script.
    #[serde(rename = "SGLang")]
    SGLang(ScriptBaseline),
    /// Ray Serve LLM from a Python script.
    #[serde(rename = "RayServe")]
    RayServe(RayServe),
    /// NVIDIA Dynamo from a config.
    #[serde(rename = "Dynamo")]
    Dynamo(ConfigBaseline),
    /// llm-d on minikube.
    #[serde(rename = "LLM-D")]
    LlmD(LlmD),
    /// A local engine started by a script under `2-serving-engines/flat/`.
    #[serde(rename = "Flat")]
    Flat(ConfigBaseline),
    /// lmbench's own simulated engine (no GPU).
    #[serde(rename = "Simulated")]
    Simulated(serde_json::Map<String, serde_json::Value>),
}

macro_rules! common_fields {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fm])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $f: $t,)*
            /// The model name sent in every request.
            #[serde(rename = "modelURL", default, skip_serializing_if = "Option::is_none")]
            pub model_url: O<String>,
            /// `completions` (default) or `chat`.
            #[serde(rename = "apiType", default, skip_serializing_if = "Option::is_none")]
            pub api_type: O<ApiType>,
            /// Fields merged into every request body (lmbench addition), e.g. `{ignore_eos: true}`.
            #[serde(rename = "extraBody", default, skip_serializing_if = "Option::is_none")]
            pub extra_body: O<serde_json::Map<String, serde_json::Value>>,
            /// Hugging Face token, normally the placeholder `<YOUR_HF_TOKEN>`. Never serialized.
            #[serde(rename = "hf_token", default, skip_serializing)]
            pub hf_token: O<String>,
        }
    };
}

common_fields! {
    /// `Helm-ProductionStack`.
    pub struct HelmPs {
        /// Values file under `2-serving-engines/helm-production-stack/helm_configurations/`.
        #[serde(rename = "helmConfigSelection")]
        pub helm_config_selection: O<String>,
    }
}

common_fields! {
    /// `Direct-ProductionStack`.
    pub struct DirectPs {
        /// Manifest under `2-serving-engines/direct-production-stack/kubernetes_configurations/`.
        #[serde(rename = "kubernetesConfigSelection")]
        pub kubernetes_config_selection: O<String>,
    }
}

common_fields! {
    /// `SGLang`.
    pub struct ScriptBaseline {
        /// Script under `2-serving-engines/sglang/`.
        #[serde(rename = "scriptName")]
        pub script_name: O<String>,
    }
}

common_fields! {
    /// `RayServe`.
    pub struct RayServe {
        /// Script under `2-serving-engines/rayserve/`.
        #[serde(rename = "scriptName")]
        pub script_name: O<String>,
        /// H100, A100, V100 or T4.
        #[serde(rename = "acceleratorType")]
        pub accelerator_type: O<String>,
    }
}

common_fields! {
    /// `Dynamo` and `Flat`.
    pub struct ConfigBaseline {
        /// Config or script under the baseline's folder.
        #[serde(rename = "configSelection")]
        pub config_selection: O<String>,
    }
}

common_fields! {
    /// `LLM-D`.
    pub struct LlmD {
        /// Values file under `2-serving-engines/llm-d/llmd_configurations/`.
        #[serde(rename = "configSelection")]
        pub config_selection: O<String>,
    }
}

/// The `Workload` map. Each key holds one item or a list of items.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WorkloadsFile {
    /// ShareGPT conversation replay.
    #[serde(rename = "ShareGPT", default)]
    pub share_gpt: Option<S<Items<ShareGpt>>>,
    /// LMCache multi-round QA.
    #[serde(rename = "LMCacheSynthetic", default)]
    pub lmcache_synthetic: Option<S<Items<Synthetic>>>,
    /// Agentic multi-agent sessions.
    #[serde(rename = "Agentic", default)]
    pub agentic: Option<S<Items<Agentic>>>,
    /// Independent random prompts.
    #[serde(rename = "Random", default)]
    pub random: Option<S<Items<RandomW>>>,
    /// Strict per-user periodic multi-round QA.
    #[serde(rename = "StrictSynthetic", default)]
    pub strict_synthetic: Option<S<Items<Strict>>>,
    /// Trace replay (mooncake / gmi formats).
    #[serde(rename = "TraceReplayer", default)]
    pub trace_replayer: Option<S<Items<Trace>>>,
    /// vLLM's serving benchmark, natively.
    #[serde(rename = "VLLMBenchmark", default)]
    pub vllm_benchmark: Option<S<Items<Vllm>>>,
}

macro_rules! workload_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize, Serialize, Clone)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fm])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $f: $t,)*
            /// A local `tokenizer.json` to count and build prompts with, relative to the folder
            /// of run-bench.yaml (lmbench addition; default tiktoken cl100k_base).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub TOKENIZER: O<String>,
        }
    };
}

workload_struct! {
    /// `ShareGPT`.
    pub struct ShareGpt {
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

workload_struct! {
    /// `LMCacheSynthetic`.
    pub struct Synthetic {
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

workload_struct! {
    /// `Agentic`.
    pub struct Agentic {
        /// Warmup users.
        pub NUM_USERS_WARMUP: O<i64>,
        /// Agents per user.
        pub NUM_AGENTS: O<i64>,
        /// Requests per user.
        pub NUM_ROUNDS: O<i64>,
        /// Tokens of the shared system prompt.
        pub SYSTEM_PROMPT: O<i64>,
        /// Tokens of each user's context.
        pub CHAT_HISTORY: O<i64>,
        /// max_tokens of every answer.
        pub ANSWER_LEN: O<i64>,
        /// Seconds between new users (the sweep; default [2]).
        pub NEW_USER_INTERVALS: O<OneOrMany<Num>>,
        /// Seconds of sending per point (lmbench addition; LMBench's fixed 100).
        pub DURATION: O<Num>,
    }
}

workload_struct! {
    /// `Random`.
    pub struct RandomW {
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

workload_struct! {
    /// `StrictSynthetic`.
    pub struct Strict {
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

workload_struct! {
    /// `TraceReplayer`.
    pub struct Trace {
        /// Trace file relative to `3-workloads/trace-replayer/` (default traces/gmi_trace.jsonl).
        pub TRACE_FILE: O<String>,
        /// Seconds from the trace start (default 0).
        pub START_TIME: O<Num>,
        /// Seconds to replay, or full / null (default: the whole trace).
        pub DURATION: O<TraceDuration>,
        /// true: replay the trace's timing; false: QPS mode (default false).
        pub PRESERVE_TIMING: O<LooseBool>,
        /// Replay speed factor (default 1.0).
        pub SPEED_UP: O<Num>,
        /// Legacy time scale (used when SPEED_UP is absent).
        pub TIME_SCALE: O<Num>,
        /// Cap on each inter-arrival gap, in seconds.
        pub MAX_DELAY: O<Num>,
        /// Rates for QPS mode (default [1.0]).
        pub QPS: O<OneOrMany<Num>>,
        /// Tokens per `hash_ids` block (lmbench addition; default 512, as in mooncake traces).
        pub BLOCK_SIZE: O<i64>,
        /// Longest prompt sent, in tokens (lmbench addition; default: no limit).
        pub MAX_INPUT_TOKENS: O<i64>,
        /// Largest max_tokens sent (lmbench addition; default: no limit).
        pub MAX_OUTPUT_TOKENS: O<i64>,
        /// What to do with a longer request: `clip` (default) or `skip` (lmbench addition).
        pub OVERLONG: O<String>,
    }
}

workload_struct! {
    /// `VLLMBenchmark`.
    pub struct Vllm {
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
