//! The plan: a validated configuration expanded into the ordered list of runs
//! (suite × baseline × workload item × sweep point), grouped per baseline. Pure: no I/O.
//! An item that searches for its load (`SEARCH`) is one run of the plan: its probes are
//! decided while it runs (`crate::search`); the plan shows their budget, and its estimate is
//! that many probes at `low`.
//!
//! Baseline keys follow LMBench's derivation exactly, so result files line up with users'
//! history; a duplicate key gets a `_2`, `_3`… suffix and a warning. Each run's seed depends on
//! the suite, the workload item and the sweep point but not on the baseline, so every baseline
//! of a suite receives the identical request stream.

use crate::baseline::Baseline;
use crate::config::{Location, Num};
use crate::suite::LoadedConfig;
use crate::workload::{Point, SweepPoint, WorkloadItem};
use serde::Serialize;
use std::sync::Arc;

/// One run: a workload item at one sweep point against one baseline. Self-contained: it holds
/// (shared) the baseline and the workload item it runs.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Position in the plan, from 0.
    pub index: usize,
    /// Suite name.
    pub suite: String,
    /// LMBench baseline key (file-name prefix).
    pub baseline_key: String,
    /// Baseline type as written in specs.
    pub baseline_type: &'static str,
    /// The baseline.
    pub baseline: Arc<Baseline>,
    /// The workload item.
    pub item: Arc<WorkloadItem>,
    /// The sweep point: swept key and value, target QPS, file-name label, estimate.
    pub point: Point,
    /// Seed of this run's request stream.
    pub seed: u64,
}

impl PlannedRun {
    /// Workload type as written in specs.
    pub fn workload(&self) -> &'static str {
        self.item.type_name
    }

    /// LMBench's WORKLOAD name (`synthetic`, `random`, `vllm_random`, …).
    pub fn workload_name(&self) -> String {
        self.item.workload_name()
    }

    /// The QPS part of the result file name (`0.5`, `2`, `unknown`).
    pub fn qps_label(&self) -> &str {
        &self.point.qps_label
    }

    /// Rough expected seconds (sending + drain), every repeat included.
    pub fn estimated_s(&self) -> f64 {
        self.point.estimated_s * f64::from(self.item.repeats.max(1))
    }

    /// What the run sweeps: `KEY=value`, or for a search its range and probe budget.
    pub fn sweep_label(&self) -> String {
        match &self.item.search {
            Some(s) => format!(
                "SLA search {} {}..{} (<= {} probes)",
                s.axis.key(),
                Num::float(s.low).label(),
                Num::float(s.high).label(),
                s.max_probes
            ),
            None if self.item.repeats > 1 => {
                format!("{} x{}", self.point.label(), self.item.repeats)
            }
            None => self.point.label(),
        }
    }
}

/// The seed of a point's request stream: the suite, the workload item and the point, not the
/// baseline (every baseline receives the same stream; a probe of a search at a load gets the
/// stream a listed point at that load would).
pub fn point_seed(suite: &str, item: &WorkloadItem, point: &Point) -> u64 {
    let value_label = point.sweep.value.map(|v| v.label()).unwrap_or_default();
    fnv1a(&[
        suite,
        item.type_name,
        &item.index.to_string(),
        point.sweep.key,
        &value_label,
    ])
}

/// The points of an item as planned: its list, or for a search one run standing for its
/// probes (at `low`, its estimate the whole budget's).
fn planned_points(item: &WorkloadItem) -> Vec<Point> {
    let Some(s) = &item.search else {
        return item.spec.points();
    };
    let low = if s.axis.integer() {
        Num {
            value: s.low,
            is_int: true,
        }
    } else {
        Num::float(s.low)
    };
    match item.spec.search_point(s.axis, low) {
        Ok(mut p) => {
            p.estimated_s *= s.max_probes as f64;
            vec![p]
        }
        // Checked when the item was validated.
        Err(_) => Vec::new(),
    }
}

/// A baseline as planned: deployed once, then its runs one after another (DESIGN.md's
/// session).
#[derive(Debug, Clone)]
pub struct BaselineRuns {
    /// Suite name.
    pub suite: String,
    /// Its key.
    pub baseline_key: String,
    /// The baseline.
    pub baseline: Arc<Baseline>,
    /// Its runs, in order.
    pub runs: Vec<PlannedRun>,
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// `lmbench-<unix seconds>-<8 hex>`.
    pub session_id: String,
    /// Where baselines run.
    pub location: &'static str,
    /// Baselines in deployment order, each with its runs.
    pub baselines: Vec<BaselineRuns>,
    /// Estimated total seconds, deployments included.
    pub estimated_total_s: f64,
    /// Observations such as renamed duplicate keys.
    pub warnings: Vec<String>,
}

impl RunPlan {
    /// Every run, in execution order.
    pub fn runs(&self) -> impl Iterator<Item = &PlannedRun> {
        self.baselines.iter().flat_map(|b| b.runs.iter())
    }

    /// How many runs the plan has.
    pub fn run_count(&self) -> usize {
        self.baselines.iter().map(|b| b.runs.len()).sum()
    }

    /// The suite names, in plan order, each once.
    pub fn suites(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for b in &self.baselines {
            if !out.contains(&b.suite.as_str()) {
                out.push(&b.suite);
            }
        }
        out
    }

    /// The plan as `lmbench plan --json` prints it.
    pub fn to_json(&self) -> serde_json::Value {
        #[derive(Serialize)]
        struct BaselineJson<'a> {
            suite: &'a str,
            baseline_key: &'a str,
            baseline_type: &'a str,
        }
        #[derive(Serialize)]
        struct RunJson<'a> {
            index: usize,
            suite: &'a str,
            baseline_key: &'a str,
            baseline_type: &'a str,
            workload: &'a str,
            workload_name: String,
            #[serde(serialize_with = "ser_num_opt")]
            qps: Option<Num>,
            sweep: &'a SweepPoint,
            qps_label: &'a str,
            seed: u64,
            estimated_s: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            search: Option<serde_json::Value>,
            #[serde(skip_serializing_if = "Option::is_none")]
            repeats: Option<u32>,
        }
        #[derive(Serialize)]
        struct PlanJson<'a> {
            session_id: &'a str,
            location: &'a str,
            baselines: Vec<BaselineJson<'a>>,
            runs: Vec<RunJson<'a>>,
            estimated_total_s: f64,
            warnings: &'a [String],
        }
        let plan = PlanJson {
            session_id: &self.session_id,
            location: self.location,
            baselines: self
                .baselines
                .iter()
                .map(|b| BaselineJson {
                    suite: &b.suite,
                    baseline_key: &b.baseline_key,
                    baseline_type: b.baseline.type_name(),
                })
                .collect(),
            runs: self
                .runs()
                .map(|r| RunJson {
                    index: r.index,
                    suite: &r.suite,
                    baseline_key: &r.baseline_key,
                    baseline_type: r.baseline_type,
                    workload: r.workload(),
                    workload_name: r.workload_name(),
                    qps: r.point.qps,
                    sweep: &r.point.sweep,
                    qps_label: &r.point.qps_label,
                    seed: r.seed,
                    estimated_s: r.estimated_s(),
                    repeats: (r.item.repeats > 1).then_some(r.item.repeats),
                    search: r.item.search.as_ref().map(|s| {
                        let mut v = s.to_json();
                        v["sla"] = s.sla.to_json();
                        v
                    }),
                })
                .collect(),
            estimated_total_s: self.estimated_total_s,
            warnings: &self.warnings,
        };
        serde_json::to_value(plan).unwrap_or(serde_json::Value::Null)
    }
}

fn ser_num_opt<S: serde::Serializer>(v: &Option<Num>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => n.serialize(s),
        None => s.serialize_none(),
    }
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

/// Expand a validated configuration into the plan.
pub fn build(cfg: &LoadedConfig, session_id: String) -> RunPlan {
    let mut baselines = Vec::new();
    let mut warnings = Vec::new();
    let mut total = 0.0;
    let mut index = 0;
    for suite in &cfg.suites {
        let mut seen: Vec<String> = Vec::new();
        let items: Vec<Arc<WorkloadItem>> = suite.workloads.iter().cloned().map(Arc::new).collect();
        for b in &suite.baselines {
            let base = b.key();
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
            let baseline = Arc::new(b.clone());
            total += b.ty.deploy_estimate_s;
            let mut runs = Vec::new();
            for item in &items {
                for point in planned_points(item) {
                    let seed = point_seed(&suite.name, item, &point);
                    total += point.estimated_s * f64::from(item.repeats.max(1));
                    runs.push(PlannedRun {
                        index,
                        suite: suite.name.clone(),
                        baseline_key: key.clone(),
                        baseline_type: b.type_name(),
                        baseline: baseline.clone(),
                        item: item.clone(),
                        point,
                        seed,
                    });
                    index += 1;
                }
            }
            baselines.push(BaselineRuns {
                suite: suite.name.clone(),
                baseline_key: key,
                baseline,
                runs,
            });
        }
    }
    if cfg.infra.location == Location::NoBench {
        total = 0.0;
    }
    RunPlan {
        session_id,
        location: cfg.infra.location.as_str(),
        baselines,
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
        plan.run_count(),
        fmt_duration(plan.estimated_total_s)
    );
    let headers = [
        "#", "suite", "baseline", "type", "workload", "sweep", "est.",
    ];
    let rows: Vec<[String; 7]> = plan
        .runs()
        .map(|r| {
            [
                (r.index + 1).to_string(),
                r.suite.clone(),
                r.baseline_key.clone(),
                r.baseline_type.to_string(),
                r.workload_name(),
                r.sweep_label(),
                fmt_duration(r.estimated_s()),
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
