//! The plan: a validated configuration expanded into the ordered list of runs
//! (suite × baseline × workload item × sweep point). Pure: no I/O.
//!
//! Baseline keys follow LMBench's derivation exactly, so result files line up with users'
//! history; a duplicate key gets a `_2`, `_3`… suffix and a warning. Each run's seed depends on
//! the suite, the workload item and the sweep point but not on the baseline, so every baseline
//! of a suite receives the identical request stream.

use crate::config::{
    BaselineKind, LoadedConfig, Location, Num, TraceDuration, Workload, WorkloadItem,
};
use serde::Serialize;

/// The variable a workload sweeps, and its value at one point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// LMBench's name of the swept key for this run (`QPS`, `NEW_USER_INTERVAL`,
    /// `TIME_BETWEEN_REQUESTS_PER_USER`, `REQUEST_RATE`, or `MODE` for timed replay).
    pub key: &'static str,
    /// The value, as written.
    #[serde(serialize_with = "ser_num_opt")]
    pub value: Option<Num>,
}

fn ser_num_opt<S: serde::Serializer>(v: &Option<Num>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => n.serialize(s),
        None => s.serialize_none(),
    }
}

/// One run: a workload item at one sweep point against one baseline.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRun {
    /// Position in the plan, from 0.
    pub index: usize,
    /// Suite name.
    pub suite: String,
    /// Index into `LoadedConfig::suites`.
    #[serde(skip)]
    pub suite_idx: usize,
    /// LMBench baseline key (file-name prefix).
    pub baseline_key: String,
    /// Baseline type as written in specs.
    pub baseline_type: &'static str,
    /// Index into the suite's baselines.
    #[serde(skip)]
    pub baseline_idx: usize,
    /// Workload type as written in specs.
    pub workload: &'static str,
    /// LMBench's WORKLOAD name (`synthetic`, `random`, `vllm_random`, …).
    pub workload_name: String,
    /// Index into the suite's workload items.
    #[serde(skip)]
    pub workload_idx: usize,
    /// Target QPS; `null` where a run has none (timed trace replay, agentic).
    #[serde(serialize_with = "ser_num_opt")]
    pub qps: Option<Num>,
    /// The swept key and value.
    pub sweep: SweepPoint,
    /// The QPS part of the result file name (`0.5`, `2`, `unknown`).
    pub qps_label: String,
    /// Seed of this run's request stream.
    pub seed: u64,
    /// Rough expected duration in seconds (sending + drain), for the plan's estimate.
    pub estimated_s: f64,
}

/// A baseline as planned.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedBaseline {
    /// Suite name.
    pub suite: String,
    /// Index into `LoadedConfig::suites`.
    #[serde(skip)]
    pub suite_idx: usize,
    /// Index into the suite's baselines.
    #[serde(skip)]
    pub baseline_idx: usize,
    /// Its key.
    pub baseline_key: String,
    /// Its type.
    pub baseline_type: &'static str,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct RunPlan {
    /// `lmbench-<unix seconds>-<8 hex>`.
    pub session_id: String,
    /// Where baselines run.
    pub location: &'static str,
    /// Baselines in deployment order.
    pub baselines: Vec<PlannedBaseline>,
    /// Runs in execution order.
    pub runs: Vec<PlannedRun>,
    /// Estimated total seconds, deployments included.
    pub estimated_total_s: f64,
    /// Observations such as renamed duplicate keys.
    pub warnings: Vec<String>,
}

/// A new session id: `lmbench-<unix seconds>-<8 hex>`.
pub fn new_session_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut x: u64 = now.as_nanos() as u64 ^ ((std::process::id() as u64) << 32);
    // splitmix64 finaliser: spreads the clock/pid bits over the 8 hex digits.
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    format!("lmbench-{}-{:08x}", now.as_secs(), x as u32)
}

/// True if `s` has the shape of a session id (`lmbench-<digits>-<8 hex>`).
pub fn is_session_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 3
        && parts[0] == "lmbench"
        && !parts[1].is_empty()
        && parts[1].chars().all(|c| c.is_ascii_digit())
        && parts[2].len() == 8
        && parts[2].chars().all(|c| c.is_ascii_hexdigit())
}

/// LMBench's baseline key for a baseline.
pub fn baseline_key(kind: &BaselineKind, model_url: &str) -> String {
    let strip = |s: &str, ext: &str| s.replace(ext, "");
    match kind {
        BaselineKind::SGLang { script, .. } => {
            format!("sglang_{}", strip(script, ".sh").replace('-', "_"))
        }
        BaselineKind::RayServe {
            script,
            accelerator,
            ..
        } => format!(
            "rayserve_{}_{}",
            strip(script, ".py").replace('-', "_"),
            accelerator.to_lowercase()
        ),
        BaselineKind::HelmProductionStack { selection, .. } => {
            format!("helm_{}", strip(selection, ".yaml").replace('/', "_"))
        }
        BaselineKind::DirectProductionStack { selection, .. } => {
            strip(selection, ".yaml").replace('/', "_")
        }
        BaselineKind::LlmD { selection, .. } => {
            format!("llmd_{}", strip(selection, ".yaml").replace('/', "_"))
        }
        BaselineKind::Dynamo { selection, .. } => {
            format!("dynamo_{}", strip(selection, ".yaml").replace('/', "_"))
        }
        BaselineKind::Flat { selection, .. } => {
            format!("flat_{}", strip(selection, ".sh").replace(['/', '-'], "_"))
        }
        BaselineKind::Simulated { name, .. } => {
            let name = name.clone().unwrap_or_else(|| model_url.to_string());
            let clean: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("sim_{clean}")
        }
    }
}

/// LMBench's WORKLOAD name of a workload item.
pub fn workload_name(w: &Workload) -> String {
    match w {
        Workload::ShareGpt(_) => "sharegpt".into(),
        Workload::Synthetic(_) => "synthetic".into(),
        Workload::Agentic(_) => "agentic".into(),
        Workload::Random(_) => "random".into(),
        Workload::Strict(_) => "strict_synthetic".into(),
        Workload::Trace(_) => "trace_replayer".into(),
        Workload::Vllm(v) => {
            let ds = v
                .DATASET_NAME
                .as_ref()
                .map(|d| d.value.clone())
                .unwrap_or_else(|| "sharegpt".into());
            if ds == "hf" {
                let path = v
                    .DATASET_PATH
                    .as_ref()
                    .map(|p| p.value.replace('/', "_"))
                    .unwrap_or_default();
                format!("vllm_hf_{path}")
            } else {
                format!("vllm_{ds}")
            }
        }
    }
}

fn nums(v: &Option<serde_saphyr::Spanned<crate::config::OneOrMany<Num>>>) -> Option<Vec<Num>> {
    v.as_ref().map(|s| s.value.0.clone())
}

fn get_i(v: &Option<serde_saphyr::Spanned<i64>>, default: i64) -> i64 {
    v.as_ref().map(|s| s.value).unwrap_or(default)
}

fn get_f(v: &Option<serde_saphyr::Spanned<Num>>, default: f64) -> f64 {
    v.as_ref().map(|s| s.value.value).unwrap_or(default)
}

/// Default seconds of sending per point for LMCacheSynthetic (LMBench's `--time 200`).
pub const SYNTHETIC_DEFAULT_DURATION_S: f64 = 200.0;
/// Default seconds of sending per point for Random and Agentic (LMBench's `--time 100`).
pub const RANDOM_DEFAULT_DURATION_S: f64 = 100.0;

/// The sweep points of a workload item, with a rough duration estimate for each.
pub fn sweep_points(item: &WorkloadItem) -> Vec<(SweepPoint, Option<Num>, String, f64)> {
    let qps_point = |n: Num, est: f64| {
        (
            SweepPoint {
                key: "QPS",
                value: Some(n),
            },
            Some(n),
            n.label(),
            est,
        )
    };
    match &item.workload {
        Workload::Synthetic(x) => {
            let d = get_f(&x.DURATION, SYNTHETIC_DEFAULT_DURATION_S);
            let warm = get_i(&x.NUM_USERS_WARMUP, 0) as f64;
            nums(&x.QPS)
                .unwrap_or_default()
                .into_iter()
                .map(|q| qps_point(q, d + warm / q.value + 5.0))
                .collect()
        }
        Workload::Random(x) => {
            let d = get_f(&x.DURATION, RANDOM_DEFAULT_DURATION_S);
            nums(&x.QPS)
                .unwrap_or_default()
                .into_iter()
                .map(|q| qps_point(q, d + 5.0))
                .collect()
        }
        Workload::ShareGpt(x) => {
            let n = (get_i(&x.LIMIT, 1000) * get_i(&x.MIN_ROUNDS, 5).max(1)) as f64;
            nums(&x.QPS)
                .unwrap_or_default()
                .into_iter()
                .map(|q| qps_point(q, n / q.value + 10.0))
                .collect()
        }
        Workload::Agentic(x) => {
            let d = get_f(&x.DURATION, RANDOM_DEFAULT_DURATION_S);
            nums(&x.NEW_USER_INTERVALS)
                .unwrap_or_else(|| {
                    vec![Num {
                        value: 2.0,
                        is_int: true,
                    }]
                })
                .into_iter()
                .map(|iv| {
                    (
                        SweepPoint {
                            key: "NEW_USER_INTERVAL",
                            value: Some(iv),
                        },
                        None,
                        iv.label(),
                        d + 10.0,
                    )
                })
                .collect()
        }
        Workload::Strict(x) => {
            let users = get_i(&x.NUM_CONCURRENT_USERS, 1) as f64;
            let rounds = get_i(&x.NUM_ROUNDS_PER_USER, 1) as f64;
            nums(&x.TIME_BETWEEN_REQUESTS_PER_USER)
                .unwrap_or_else(|| {
                    vec![Num {
                        value: 10.0,
                        is_int: true,
                    }]
                })
                .into_iter()
                .map(|t| {
                    let qps = users / t.value;
                    (
                        SweepPoint {
                            key: "TIME_BETWEEN_REQUESTS_PER_USER",
                            value: Some(t),
                        },
                        Some(Num::float(qps)),
                        format!("{qps:.2}"),
                        2.0 * rounds * t.value + 10.0,
                    )
                })
                .collect()
        }
        Workload::Trace(x) => {
            let timed = x
                .PRESERVE_TIMING
                .as_ref()
                .map(|b| b.value.0)
                .unwrap_or(false);
            if timed {
                let speed = x
                    .SPEED_UP
                    .as_ref()
                    .map(|s| s.value.value)
                    .or_else(|| x.TIME_SCALE.as_ref().map(|t| 1.0 / t.value.value))
                    .unwrap_or(1.0);
                let dur = match x.DURATION.as_ref().map(|d| &d.value) {
                    Some(TraceDuration::Seconds(s)) => *s,
                    _ => 3600.0,
                };
                vec![(
                    SweepPoint {
                        key: "MODE",
                        value: None,
                    },
                    None,
                    "unknown".to_string(),
                    dur / speed + 10.0,
                )]
            } else {
                let dur = match x.DURATION.as_ref().map(|d| &d.value) {
                    Some(TraceDuration::Seconds(s)) => *s,
                    _ => 600.0,
                };
                nums(&x.QPS)
                    .unwrap_or_else(|| vec![Num::float(1.0)])
                    .into_iter()
                    .map(|q| qps_point(q, dur + 10.0))
                    .collect()
            }
        }
        Workload::Vllm(x) => {
            let n = get_i(&x.NUM_PROMPTS, 1000) as f64;
            nums(&x.REQUEST_RATES)
                .unwrap_or_else(|| vec![Num::float(1.0)])
                .into_iter()
                .map(|r| {
                    let est = if r.value.is_finite() {
                        n / r.value
                    } else {
                        n * 0.05
                    };
                    (
                        SweepPoint {
                            key: "REQUEST_RATE",
                            value: Some(r),
                        },
                        Some(r),
                        r.label(),
                        est + 10.0,
                    )
                })
                .collect()
        }
    }
}

fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Rough seconds to deploy and tear down a baseline, for the plan's estimate.
fn deploy_estimate_s(kind: &BaselineKind) -> f64 {
    match kind {
        BaselineKind::Simulated { .. } => 2.0,
        BaselineKind::Flat { .. } => 60.0,
        BaselineKind::SGLang { .. }
        | BaselineKind::RayServe { .. }
        | BaselineKind::Dynamo { .. } => 300.0,
        _ => 600.0,
    }
}

/// Expand a validated configuration into the plan.
pub fn build(cfg: &LoadedConfig, session_id: String) -> RunPlan {
    let mut runs = Vec::new();
    let mut baselines = Vec::new();
    let mut warnings = Vec::new();
    let mut total = 0.0;
    for (si, suite) in cfg.suites.iter().enumerate() {
        let mut seen: Vec<String> = Vec::new();
        for (bi, b) in suite.baselines.iter().enumerate() {
            let base = baseline_key(&b.kind, &b.model_url);
            let mut key = base.clone();
            let mut n = 1;
            while seen.contains(&key) {
                n += 1;
                key = format!("{base}_{n}");
            }
            if n > 1 {
                warnings.push(format!(
                    "suite {}: two baselines have the key `{base}`; the one at {}:{} is named `{key}`",
                    suite.name,
                    suite.file.display(),
                    b.line.unwrap_or(0)
                ));
            }
            seen.push(key.clone());
            baselines.push(PlannedBaseline {
                suite: suite.name.clone(),
                suite_idx: si,
                baseline_idx: bi,
                baseline_key: key.clone(),
                baseline_type: b.kind.type_name(),
            });
            total += deploy_estimate_s(&b.kind);
            for (wi, item) in suite.workloads.iter().enumerate() {
                let wname = workload_name(&item.workload);
                for (sweep, qps, label, est) in sweep_points(item) {
                    let value_label = sweep.value.map(|v| v.label()).unwrap_or_default();
                    let seed = fnv1a(&[
                        &suite.name,
                        item.workload.type_name(),
                        &item.index.to_string(),
                        sweep.key,
                        &value_label,
                    ]);
                    total += est;
                    runs.push(PlannedRun {
                        index: runs.len(),
                        suite: suite.name.clone(),
                        suite_idx: si,
                        baseline_key: key.clone(),
                        baseline_type: b.kind.type_name(),
                        baseline_idx: bi,
                        workload: item.workload.type_name(),
                        workload_name: wname.clone(),
                        workload_idx: wi,
                        qps,
                        sweep,
                        qps_label: label,
                        seed,
                        estimated_s: est,
                    });
                }
            }
        }
    }
    if cfg.infra.location == Location::NoBench {
        total = 0.0;
    }
    RunPlan {
        session_id,
        location: cfg.infra.location.as_str(),
        baselines,
        runs,
        estimated_total_s: total,
        warnings,
    }
}

/// A human-readable duration (`1h 02m`, `3m 20s`, `45s`).
pub fn fmt_duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// The plan as a readable table.
pub fn render_table(plan: &RunPlan) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "session {}  location {}  {} baseline(s), {} run(s), estimated {}",
        plan.session_id,
        plan.location,
        plan.baselines.len(),
        plan.runs.len(),
        fmt_duration(plan.estimated_total_s)
    );
    let headers = [
        "#", "suite", "baseline", "type", "workload", "sweep", "est.",
    ];
    let rows: Vec<[String; 7]> = plan
        .runs
        .iter()
        .map(|r| {
            let sweep = match r.sweep.value {
                Some(v) => format!("{}={}", r.sweep.key, v.label()),
                None => "timed".to_string(),
            };
            [
                (r.index + 1).to_string(),
                r.suite.clone(),
                r.baseline_key.clone(),
                r.baseline_type.to_string(),
                r.workload_name.clone(),
                sweep,
                fmt_duration(r.estimated_s),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{:<w$}", c, w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let _ = writeln!(out, "{}", line(headers.to_vec()));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r.iter().map(|s| s.as_str()).collect()));
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn kind_flat(sel: &str) -> BaselineKind {
        BaselineKind::Flat {
            selection: sel.into(),
            path: PathBuf::new(),
        }
    }

    #[test]
    fn baseline_keys_match_lmbench() {
        let p = PathBuf::new();
        let cases = [
            (
                BaselineKind::SGLang {
                    script: "comparison-baseline.sh".into(),
                    path: p.clone(),
                },
                "sglang_comparison_baseline",
            ),
            (
                BaselineKind::RayServe {
                    script: "comparison-baseline.py".into(),
                    accelerator: "H100".into(),
                    path: p.clone(),
                },
                "rayserve_comparison_baseline_h100",
            ),
            (
                BaselineKind::HelmProductionStack {
                    selection: "routing/4-roundrobin.yaml".into(),
                    path: p.clone(),
                },
                "helm_routing_4-roundrobin",
            ),
            (
                BaselineKind::HelmProductionStack {
                    selection: "basic/llama-3.1-8b-basic.yaml".into(),
                    path: p.clone(),
                },
                "helm_basic_llama-3.1-8b-basic",
            ),
            (
                BaselineKind::DirectProductionStack {
                    selection: "routing/lmcache_roundrobin.yaml".into(),
                    path: p.clone(),
                },
                "routing_lmcache_roundrobin",
            ),
            (
                BaselineKind::LlmD {
                    selection: "debug-deployment.yaml".into(),
                    path: p.clone(),
                },
                "llmd_debug-deployment",
            ),
            (
                BaselineKind::Dynamo {
                    selection: "comparison-baseline.yaml".into(),
                    path: p.clone(),
                },
                "dynamo_comparison-baseline",
            ),
            (
                kind_flat("basic-vllm/run-llama8B.sh"),
                "flat_basic_vllm_run_llama8B",
            ),
        ];
        for (k, want) in cases {
            assert_eq!(baseline_key(&k, "m"), want);
        }
    }

    #[test]
    fn session_id_shape() {
        let id = new_session_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 3, "{id}");
        assert_eq!(parts[0], "lmbench");
        assert!(parts[1].parse::<u64>().is_ok());
        assert_eq!(parts[2].len(), 8);
        assert!(parts[2].chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn durations_format() {
        assert_eq!(fmt_duration(45.2), "45s");
        assert_eq!(fmt_duration(200.0), "3m 20s");
        assert_eq!(fmt_duration(3720.0), "1h 02m");
    }
}
