//! The one integration-test binary: runs the `lmbench` CLI and the library against real
//! servers on loopback (lmbench's simulated engine; llama.cpp's llama-server when installed).

mod config_rules;
mod e2e;
mod endpoint;
mod error_budget;
mod fake_kube;
mod infra;
mod k8s_assets;
mod k8s_e2e;
mod limits;
mod multiturn;
mod prefix_repetition;
mod repeats;
mod report;
mod sla;
mod trace;
mod upload;
mod util;
mod verdict;
mod vllm;
