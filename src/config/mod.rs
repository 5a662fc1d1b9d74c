//! Configuration: `run-bench.yaml` and the spec files it lists, parsed once into typed values
//! and validated as a whole before anything is deployed.
//!
//! [`load`] returns a [`LoadedConfig`] or a [`ConfigErrors`] holding every problem found in
//! every file, each naming the file, the line where known, the key and what was expected.
//! Paths resolve relative to the folder that holds run-bench.yaml, and a file that a baseline or
//! workload selects is looked up where LMBench looks for it.

pub mod model;
mod validate;
pub mod values;

use crate::record::ApiType;
use std::fmt;
use std::path::{Path, PathBuf};
pub use values::{LooseBool, Num, OneOrMany, Secret, TraceDuration};

/// The placeholder replaced by the `HF_TOKEN` environment variable.
pub const HF_TOKEN_PLACEHOLDER: &str = "<YOUR_HF_TOKEN>";

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The file it is in.
    pub file: PathBuf,
    /// 1-based line, where known.
    pub line: Option<u64>,
    /// 1-based column, where known.
    pub column: Option<u64>,
    /// The key (a path such as `Workload.LMCacheSynthetic[0].QPS`), or empty for syntax errors.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if self.key.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

/// Every problem found; `lmbench` exits with code 2 when it gets one.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    /// The problems, in file order.
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        writeln!(
            f,
            "invalid configuration: {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for i in &self.issues {
            for (k, line) in i.to_string().lines().enumerate() {
                if k == 0 {
                    writeln!(f, "  - {line}")?;
                } else {
                    writeln!(f, "      {line}")?;
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where baselines run (`1-infrastructure.Location`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Plan only; run nothing.
    NoBench,
    /// A local minikube cluster.
    LocalMinikube,
    /// A GKE cluster lmbench creates.
    LmcacheGke,
    /// Local processes on this host.
    LocalFlat,
}

impl Location {
    /// The spelling in run-bench.yaml.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::NoBench => "NoBench",
            Location::LocalMinikube => "LocalMinikube",
            Location::LmcacheGke => "LMCacheGKE",
            Location::LocalFlat => "Local-Flat",
        }
    }

    /// Parse the spelling in run-bench.yaml.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Location::NoBench,
            Location::LocalMinikube,
            Location::LmcacheGke,
            Location::LocalFlat,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// The validated infrastructure.
#[derive(Debug, Clone, PartialEq)]
pub struct Infra {
    /// Where baselines run.
    pub location: Location,
    /// GKE cluster GPUs.
    pub num_cluster_gpus: Option<u32>,
    /// GKE A100 memory (40 or 80).
    pub a100_vram: u32,
    /// `1-infrastructure` as written (the result files' `infra`).
    pub json: serde_json::Value,
}

/// What a baseline deploys, with its selected file resolved.
#[derive(Debug, Clone)]
pub enum BaselineKind {
    /// Helm values file.
    HelmProductionStack { selection: String, path: PathBuf },
    /// Kubernetes manifests.
    DirectProductionStack { selection: String, path: PathBuf },
    /// SGLang launch script.
    SGLang { script: String, path: PathBuf },
    /// Ray Serve script and accelerator.
    RayServe {
        script: String,
        accelerator: String,
        path: PathBuf,
    },
    /// Dynamo config.
    Dynamo { selection: String, path: PathBuf },
    /// llm-d values.
    LlmD { selection: String, path: PathBuf },
    /// Local launch script.
    Flat { selection: String, path: PathBuf },
    /// lmbench's simulated engine with these settings (keys of `sim::SimConfig`).
    Simulated {
        /// Optional `name`, used in the baseline key (`sim_<name>`).
        name: Option<String>,
        /// The engine settings (`model` filled in from `modelURL`).
        params: serde_json::Map<String, serde_json::Value>,
    },
}

impl BaselineKind {
    /// The type name as written in spec files.
    pub fn type_name(&self) -> &'static str {
        match self {
            BaselineKind::HelmProductionStack { .. } => "Helm-ProductionStack",
            BaselineKind::DirectProductionStack { .. } => "Direct-ProductionStack",
            BaselineKind::SGLang { .. } => "SGLang",
            BaselineKind::RayServe { .. } => "RayServe",
            BaselineKind::Dynamo { .. } => "Dynamo",
            BaselineKind::LlmD { .. } => "LLM-D",
            BaselineKind::Flat { .. } => "Flat",
            BaselineKind::Simulated { .. } => "Simulated",
        }
    }
}

/// A validated serving baseline.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// What it deploys.
    pub kind: BaselineKind,
    /// Model name sent in requests.
    pub model_url: String,
    /// Endpoint used for requests.
    pub api_type: ApiType,
    /// The token, with the placeholder already replaced. Never printed.
    pub hf_token: Option<Secret>,
    /// `extraBody`: fields merged into every request body.
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// The baseline as written, without `hf_token` (the result files' `serving.config`).
    pub config_json: serde_json::Value,
    /// The spec line where the baseline starts.
    pub line: Option<u64>,
}

/// A validated workload item, with its LMBench parameters.
#[derive(Debug, Clone)]
// The variants are the spec structs themselves; they live once per workload item, so boxing
// the large one would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Workload {
    /// ShareGPT.
    ShareGpt(model::ShareGpt),
    /// LMCacheSynthetic.
    Synthetic(model::Synthetic),
    /// Agentic.
    Agentic(model::Agentic),
    /// Random.
    Random(model::RandomW),
    /// StrictSynthetic.
    Strict(model::Strict),
    /// TraceReplayer.
    Trace(model::Trace),
    /// VLLMBenchmark.
    Vllm(model::Vllm),
}

impl Workload {
    /// The workload type as written in spec files.
    pub fn type_name(&self) -> &'static str {
        match self {
            Workload::ShareGpt(_) => "ShareGPT",
            Workload::Synthetic(_) => "LMCacheSynthetic",
            Workload::Agentic(_) => "Agentic",
            Workload::Random(_) => "Random",
            Workload::Strict(_) => "StrictSynthetic",
            Workload::Trace(_) => "TraceReplayer",
            Workload::Vllm(_) => "VLLMBenchmark",
        }
    }
}

/// One workload item of a suite.
#[derive(Debug, Clone)]
pub struct WorkloadItem {
    /// The item.
    pub workload: Workload,
    /// Index of the item within its type's list.
    pub index: usize,
    /// Spec line where the item starts.
    pub line: Option<u64>,
}

/// A validated suite (spec file).
#[derive(Debug, Clone)]
pub struct Suite {
    /// `Name`.
    pub name: String,
    /// The spec file.
    pub file: PathBuf,
    /// Baselines in spec order.
    pub baselines: Vec<Baseline>,
    /// Workload items in LMBench's fixed order (ShareGPT, LMCacheSynthetic, TraceReplayer,
    /// Agentic, Random, VLLMBenchmark, StrictSynthetic), each type's list in spec order.
    pub workloads: Vec<WorkloadItem>,
}

/// A whole validated configuration.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// run-bench.yaml.
    pub path: PathBuf,
    /// The folder paths resolve against.
    pub root: PathBuf,
    /// The infrastructure.
    pub infra: Infra,
    /// The suites, in run-bench.yaml order.
    pub suites: Vec<Suite>,
    /// Non-fatal observations (e.g. a legacy key that is ignored).
    pub warnings: Vec<String>,
}

/// Where LMBench looks for a baseline's selected file, relative to the root.
pub fn selection_dir(type_name: &str) -> &'static str {
    match type_name {
        "Helm-ProductionStack" => "2-serving-engines/helm-production-stack/helm_configurations",
        "Direct-ProductionStack" => {
            "2-serving-engines/direct-production-stack/kubernetes_configurations"
        }
        "SGLang" => "2-serving-engines/sglang",
        "RayServe" => "2-serving-engines/rayserve",
        "Dynamo" => "2-serving-engines/dynamo/dynamo_configurations",
        "LLM-D" => "2-serving-engines/llm-d/llmd_configurations",
        _ => "2-serving-engines/flat",
    }
}

/// ShareGPT's dataset when `DATASET_PATH` is not set (the file LMBench downloads).
pub const SHAREGPT_DEFAULT_PATH: &str =
    "3-workloads/sharegpt/ShareGPT_V3_unfiltered_cleaned_split.json";

/// Folder of trace files (TraceReplayer's TRACE_FILE is relative to it).
pub const TRACE_DIR: &str = "3-workloads/trace-replayer";

/// Load and validate run-bench.yaml and every spec it lists. `hf_token` is the value of the
/// `HF_TOKEN` environment variable, if set (passed in so tests need not touch the environment).
pub fn load(path: &Path, hf_token: Option<&str>) -> Result<LoadedConfig, ConfigErrors> {
    validate::load(path, hf_token, None)
}

/// [`load`], with the spec list of run-bench.yaml replaced by `specs` (paths relative to
/// `0-bench-specs/`, or absolute): `lmbench run --spec …`.
pub fn load_with_specs(
    path: &Path,
    hf_token: Option<&str>,
    specs: &[String],
) -> Result<LoadedConfig, ConfigErrors> {
    validate::load(path, hf_token, Some(specs))
}
