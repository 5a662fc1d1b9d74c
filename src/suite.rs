//! Suites: run-bench.yaml and the spec files it lists, parsed once and validated as a whole
//! before anything is deployed.
//!
//! [`load`] returns a [`LoadedConfig`] or a [`ConfigErrors`] holding every problem found in
//! every file, each naming the file, the line where known, the key and what was expected. A spec
//! file is a [`Suite`]: its `Name`, its `Serving` baselines (each checked by its type in
//! `baseline`) and its `Workload` items (each checked by its type in `workload`, and put in
//! LMBench's run order).

use crate::baseline::{self, Baseline, BaselineEntry, CheckEnv};
use crate::config::check::{parse, Checker};
use crate::config::{ConfigErrors, ConfigIssue, Infra, O, S};
use crate::workload::{WorkloadItem, WorkloadsFile};
use serde::Deserialize;
use serde_saphyr::Location as YLoc;
use std::path::{Path, PathBuf};

/// A spec file as written.
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

/// Load and validate run-bench.yaml and every spec it lists. `hf_token` is the value of the
/// `HF_TOKEN` environment variable, if set (passed in so tests need not touch the environment).
pub fn load(path: &Path, hf_token: Option<&str>) -> Result<LoadedConfig, ConfigErrors> {
    load_specs(path, hf_token, None)
}

/// [`load`], with the spec list of run-bench.yaml replaced by `specs` (paths relative to
/// `0-bench-specs/`, or absolute): `lmbench run --spec …`.
pub fn load_with_specs(
    path: &Path,
    hf_token: Option<&str>,
    specs: &[String],
) -> Result<LoadedConfig, ConfigErrors> {
    load_specs(path, hf_token, Some(specs))
}

fn load_specs(
    path: &Path,
    hf_token: Option<&str>,
    spec_override: Option<&[String]>,
) -> Result<LoadedConfig, ConfigErrors> {
    let mut issues = Vec::new();
    let Some(rb) = crate::config::read_run_bench(path, hf_token, spec_override, &mut issues) else {
        return Err(ConfigErrors { issues });
    };
    let mut warnings = Vec::new();
    let mut suites = Vec::new();
    for f in &rb.specs {
        let env = CheckEnv {
            infra: rb.infra.as_ref(),
            hf_token,
        };
        if let Some(s) = load_spec(f, &rb.root, &env, &mut issues, &mut warnings) {
            suites.push(s);
        }
    }
    match rb.infra {
        Some(infra) if issues.is_empty() => Ok(LoadedConfig {
            path: rb.path,
            root: rb.root,
            infra,
            suites,
            warnings,
        }),
        _ => Err(ConfigErrors { issues }),
    }
}

fn load_spec(
    file: &Path,
    root: &Path,
    env: &CheckEnv<'_>,
    issues: &mut Vec<ConfigIssue>,
    warnings: &mut Vec<String>,
) -> Option<Suite> {
    let mut ctx = Checker::new(file, issues);
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            ctx.push(None, "", format!("cannot read the file: {e}"));
            return None;
        }
    };
    let spec: SpecFile = match parse(&text) {
        Ok(s) => s,
        Err(e) => {
            ctx.serde_error(&e, env.hf_token, &text);
            return None;
        }
    };
    let top = YLoc::UNKNOWN;
    if spec.legacy_infrastructure.is_some() {
        warnings.push(format!(
            "{}: `Infrastructure` in a spec is ignored; run-bench.yaml's 1-infrastructure is used",
            file.display()
        ));
    }
    let name = ctx.req(&spec.name, "Name", &top).and_then(|n| {
        let v = n.value.trim();
        if v.is_empty() || v.contains('/') || v.contains('\\') || v == "." || v == ".." {
            ctx.push(
                Some(&n.referenced),
                "Name",
                format!(
                    "expected a suite name usable as a folder name (no slashes), got `{}`",
                    n.value
                ),
            );
            None
        } else {
            Some(v.to_string())
        }
    });
    let mut baselines = Vec::new();
    match &spec.serving {
        None => ctx.push(
            Some(&top),
            "Serving",
            "missing or empty: expected a non-empty list of serving baselines",
        ),
        Some(s) => match &s.value {
            Some(list) if !list.is_empty() => {
                for (i, b) in list.iter().enumerate() {
                    if let Ok(b) = baseline::check_entry(b, i, &mut ctx, root, env) {
                        baselines.push(b);
                    }
                }
            }
            _ => ctx.push(
                Some(&s.referenced),
                "Serving",
                "expected a non-empty list of serving baselines",
            ),
        },
    }
    let mut workloads = Vec::new();
    match &spec.workload {
        None => ctx.push(
            Some(&top),
            "Workload",
            "missing or empty: expected a map of workload types",
        ),
        Some(w) => match &w.value {
            Some(wf) if !wf.is_empty() => workloads = wf.validate(&mut ctx, root),
            _ => ctx.push(
                Some(&w.referenced),
                "Workload",
                "expected at least one workload",
            ),
        },
    }
    Some(Suite {
        name: name?,
        file: file.to_path_buf(),
        baselines,
        workloads,
    })
}

/// Every key a configuration can hold: run-bench.yaml's, a spec file's, every workload and
/// baseline type's name and keys (for the check that templates and fixtures document them
/// all). Simulated's engine settings are `sim::SimConfig`'s.
pub fn every_key() -> Vec<&'static str> {
    use crate::config::model::{InfraFile, RunBenchFile};
    use crate::config::values::field_names;
    let mut keys = field_names::<RunBenchFile>();
    keys.extend(field_names::<InfraFile>());
    keys.extend(field_names::<SpecFile>());
    for (name, fields) in crate::workload::type_keys() {
        keys.push(name);
        keys.extend(fields);
    }
    for (name, fields) in crate::baseline::type_keys() {
        keys.push(name);
        keys.extend(fields);
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}
