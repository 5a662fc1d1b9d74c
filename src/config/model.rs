//! The serde model of `run-bench.yaml`, with LMBench's key names.
//!
//! Every key is optional at this level so that a missing required key becomes a validation
//! error that is reported together with all the others, rather than the first and only serde
//! error. Unknown keys are rejected here (`deny_unknown_fields`), with the line and column.
//! Values that validation checks carry their location (`Spanned`). (Spec files are modelled in
//! `suite`, each baseline and workload type in its own file, the same way.)

use super::check::{O, S};
use serde::{Deserialize, Serialize};

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
