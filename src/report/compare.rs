//! `<WORKLOAD>_comparison.json` in LMBench's shape: a list sorted by QPS of
//! `{"qps": <number>, "<baseline_key>": {"TTFT": mean_ms, "ITL": mean_ms, "TPOT": mean_ms}, …}`,
//! missing metrics written as 0 as LMBench does. Runs without a QPS (timed trace replay) sit at
//! `qps` 0, where LMBench's default puts them.

use serde_json::{json, Map, Value};

use super::load::WorkloadGroup;

/// The comparison JSON of one workload.
pub fn comparison_json(group: &WorkloadGroup) -> Value {
    let mut entries: Vec<(f64, Map<String, Value>)> = Vec::new();
    for series in &group.series {
        for &i in &series.points {
            let r = &group.runs[i];
            let x = r.qps().unwrap_or(0.0);
            let qps_value = r.qps_value.clone().unwrap_or(json!(0));
            let pos = match entries.iter().position(|(q, _)| *q == x) {
                Some(p) => p,
                None => {
                    let mut m = Map::new();
                    m.insert("qps".into(), qps_value);
                    entries.push((x, m));
                    entries.len() - 1
                }
            };
            let mean = |block: &str| r.stat(block, "mean").unwrap_or(0.0);
            entries[pos].1.insert(
                series.label.clone(),
                json!({
                    "TTFT": mean("ttft_ms"),
                    "ITL": mean("itl_ms"),
                    "TPOT": mean("tpot_ms"),
                }),
            );
        }
    }
    entries.sort_by(|a, b| a.0.total_cmp(&b.0));
    Value::Array(entries.into_iter().map(|(_, m)| Value::Object(m)).collect())
}
