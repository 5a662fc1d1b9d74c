//! lmbench: benchmark LLM serving systems.
//!
//! Crate map, in the order a benchmark flows (each arrow a plain type):
//! - [`config`]: the checking machinery and run-bench.yaml; [`suite`]: spec files → validated
//!   [`suite::LoadedConfig`] (baselines and workload items, each checked by its own type).
//! - [`plan`]: pure expansion into runs (baseline × workload item × sweep point), grouped per
//!   baseline.
//! - [`infra`]: the Location's set-up and teardown; [`baseline`]: the baseline types (one file
//!   each) and what each brings up; [`deploy`]: one handle that deploys, checks and tears down
//!   any of them.
//! - [`workload`]: the workload types (one file each): what to send and when
//!   ([`record::RequestSpec`]s), and the open-loop [`workload::runner`].
//! - [`client`]: OpenAI-compatible streaming client; one [`record::RequestRecord`] per request.
//! - [`point`]: one planned run carried out, from request stream to result file.
//! - [`measure`]: records → summary statistics; [`cache`]: the engine's cache state at each
//!   point (reset between points, recorded); [`results`]: the typed result file.
//! - [`report`]: comparison JSON/PNG per suite and `report.html`; [`upload`]: to a dashboard.
//! - [`orchestrate`]: the suite loop of `lmbench run`; [`commands`]: every subcommand;
//!   [`cli`]: the command line; [`exit`], [`signals`], [`files`], [`progress`], [`limits`]
//!   (the open-file limit): shared leaves.
//! - [`sim`]: the built-in simulated OpenAI-compatible engine.

pub mod baseline;
pub mod cache;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod cpu;
pub mod deploy;
pub mod engine_metrics;
pub mod exit;
pub mod files;
pub mod infra;
pub mod limits;
pub mod measure;
pub mod orchestrate;
pub mod plan;
pub mod point;
pub mod progress;
pub mod record;
pub mod repeats;
pub mod report;
pub mod results;
pub mod search;
pub mod signals;
pub mod sim;
pub mod suite;
pub mod upload;
pub mod workload;

pub use exit::ExitCode;

/// Run a parsed command line; the process's exit code.
pub async fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    commands::execute(cli.into_request()).await
}
