//! Configuration: the machinery every configuration file is read and checked with, and
//! `run-bench.yaml` itself.
//!
//! Problems are [`ConfigIssue`]s, each naming the file, the line where known, the key and what
//! was expected; they are collected, never returned one at a time, and reported together as
//! [`ConfigErrors`]. [`read_run_bench`] reads run-bench.yaml: the infrastructure and the list of
//! spec files (which `suite` loads, with the baseline and workload types checking their own
//! keys through [`check`]). Paths resolve relative to the folder that holds run-bench.yaml.

pub mod check;
pub mod model;
pub mod values;

pub use check::{Checked, Checker, Invalid, Item, O, S};
use model::{InfraFile, RunBenchFile};
use serde_saphyr::Location as YLoc;
use std::fmt;
use std::path::{Path, PathBuf};
pub use values::{Items, LooseBool, Num, OneOrMany, Secret, TraceDuration};

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

/// run-bench.yaml, read and checked: where baselines run and which spec files to load.
#[derive(Debug, Clone)]
pub struct RunBench {
    /// run-bench.yaml.
    pub path: PathBuf,
    /// The folder paths resolve against.
    pub root: PathBuf,
    /// The infrastructure; `None` when it has a problem (already reported).
    pub infra: Option<Infra>,
    /// The spec files to load, in order (folders expanded).
    pub specs: Vec<PathBuf>,
}

/// Read run-bench.yaml, reporting its problems into `issues`. `spec_override` replaces its
/// spec list (`lmbench run --spec …`, paths relative to `0-bench-specs/` or absolute). `None`
/// when the file cannot be read or parsed at all.
pub fn read_run_bench(
    path: &Path,
    hf_token: Option<&str>,
    spec_override: Option<&[String]>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<RunBench> {
    let mut ctx = Checker::new(path, issues);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            ctx.push(None, "", format!("cannot read the file: {e}"));
            return None;
        }
    };
    let root = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let rb: RunBenchFile = match check::parse(&text) {
        Ok(rb) => rb,
        Err(e) => {
            ctx.serde_error(&e, hf_token, &text);
            return None;
        }
    };
    let top = YLoc::UNKNOWN;
    let infra = check_infra(&mut ctx, &rb.infrastructure, &top);
    let specs = match spec_override {
        Some(list) => override_paths(&mut ctx, list, &root),
        None => spec_paths(&mut ctx, &rb, &root),
    };
    Some(RunBench {
        path: path.to_path_buf(),
        root,
        infra,
        specs,
    })
}

fn check_infra(ctx: &mut Checker, v: &O<InfraFile>, top: &YLoc) -> Option<Infra> {
    let s = ctx.req(v, "1-infrastructure", top)?;
    let f = &s.value;
    let at = s.referenced;
    let loc_s = ctx.req(&f.location, "1-infrastructure.Location", &at)?;
    let Some(location) = Location::parse(loc_s.value.trim()) else {
        ctx.push(
            Some(&loc_s.referenced),
            "1-infrastructure.Location",
            format!(
                "unknown Location `{}`: expected one of NoBench, LocalMinikube, LMCacheGKE, Local-Flat",
                loc_s.value
            ),
        );
        return None;
    };
    let mut num_cluster_gpus = None;
    let mut a100_vram = 40;
    if location == Location::LmcacheGke {
        match &f.num_cluster_gpus {
            None => ctx.push(
                Some(&at),
                "1-infrastructure.numClusterGPUs",
                "missing required key for LMCacheGKE: expected 1, 2, 4 or 8",
            ),
            Some(n) if ![1, 2, 4, 8].contains(&n.value) => ctx.push(
                Some(&n.referenced),
                "1-infrastructure.numClusterGPUs",
                format!("expected 1, 2, 4 or 8, got {}", n.value),
            ),
            Some(n) => num_cluster_gpus = Some(n.value as u32),
        }
        if let Some(v) = &f.a100_vram {
            if v.value != 40 && v.value != 80 {
                ctx.push(
                    Some(&v.referenced),
                    "1-infrastructure.A100_VRAM",
                    format!("expected 40 or 80, got {}", v.value),
                );
            } else {
                a100_vram = v.value as u32;
            }
        }
    }
    let json = serde_json::to_value(f).unwrap_or(serde_json::Value::Null);
    Some(Infra {
        location,
        num_cluster_gpus,
        a100_vram,
        json,
    })
}

fn spec_paths(ctx: &mut Checker, rb: &RunBenchFile, root: &Path) -> Vec<PathBuf> {
    let top = YLoc::UNKNOWN;
    let Some(list) = &rb.specs else {
        ctx.push(
            Some(&top),
            "0-bench-specs",
            "missing or empty: expected a non-empty list of spec files or folders under 0-bench-specs/",
        );
        return Vec::new();
    };
    let Some(entries) = &list.value else {
        ctx.push(
            Some(&list.referenced),
            "0-bench-specs",
            "expected a non-empty list of spec files or folders, got nothing",
        );
        return Vec::new();
    };
    if entries.is_empty() {
        ctx.push(
            Some(&list.referenced),
            "0-bench-specs",
            "expected a non-empty list of spec files or folders",
        );
    }
    let base = root.join("0-bench-specs");
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let key = format!("0-bench-specs[{i}]");
        let p = base.join(e.value.trim());
        match spec_files(&p) {
            Some(found) if found.is_empty() => ctx.push(
                Some(&e.referenced),
                &key,
                format!("folder holds no .yaml spec files: {}", p.display()),
            ),
            Some(found) => out.extend(found),
            None => ctx.push(
                Some(&e.referenced),
                &key,
                format!("no such spec file or folder: {}", p.display()),
            ),
        }
    }
    out
}

fn override_paths(ctx: &mut Checker, list: &[String], root: &Path) -> Vec<PathBuf> {
    let base = root.join("0-bench-specs");
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let p = base.join(e);
        match spec_files(&p) {
            Some(found) => out.extend(found),
            None => ctx.push(
                None,
                &format!("--spec[{i}]"),
                format!("no such spec file or folder: {}", p.display()),
            ),
        }
    }
    out
}

/// The spec files `p` names: itself, or every `.yaml` in the folder (recursively, sorted,
/// `TEMPLATE*` left out); `None` when it does not exist.
fn spec_files(p: &Path) -> Option<Vec<PathBuf>> {
    if p.is_file() {
        Some(vec![p.to_path_buf()])
    } else if p.is_dir() {
        let mut found = Vec::new();
        collect_yaml(p, &mut found);
        found.sort();
        Some(found)
    } else {
        None
    }
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_yaml(&p, out);
        } else {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            if yaml && !name.starts_with("TEMPLATE") {
                out.push(p);
            }
        }
    }
}
