//! lmbench: benchmark LLM serving systems.
//!
//! Crate map, in the order a benchmark flows:
//! - [`config`]: run-bench.yaml and spec files → typed, validated [`config::LoadedConfig`].
//! - [`plan`]: pure expansion into runs (baseline × workload item × QPS point).
//! - [`deploy`]: bring a baseline up (supervised local process group), wait for readiness,
//!   tear it down.
//! - [`workload`]: what to send and when ([`record::RequestSpec`]s), and the open-loop runner.
//! - [`client`]: OpenAI-compatible streaming client; one [`record::RequestRecord`] per request.
//! - [`measure`]: records → summary statistics.
//! - [`results`]: LMBench-compatible result files.
//! - [`sim`]: the built-in simulated OpenAI-compatible engine.
//! - [`orchestrate`]: drives all of the above for `lmbench run`.

pub mod cli;
pub mod client;
pub mod config;
pub mod deploy;
pub mod measure;
pub mod orchestrate;
pub mod plan;
pub mod record;
pub mod results;
pub mod sim;
pub mod workload;
