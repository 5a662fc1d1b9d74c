//! Repeats end to end: a spec with `REPEATS: 3` against the simulated engine writes three
//! result files per point, each saying which repeat it is and each with its own request
//! stream; the last holds every repeat's figures and their spread, which this test recomputes
//! from the three files (Student's t for two degrees of freedom, 4.302653); the report shows
//! each point once, as mean ± half-width.

use crate::util::*;
use serde_json::Value;

#[test]
fn repeats_write_every_run_and_the_spread_over_them() {
    let out = tempfile::tempdir().unwrap();
    let files = run_e2e_spec("repeats.yaml", "e2e-repeats", out.path());
    assert_eq!(files.len(), 6, "{files:?}");
    let results: Vec<Value> = files.iter().map(|f| read_json(f)).collect();
    for rate in [20, 40] {
        let mut of_rate: Vec<&Value> = results
            .iter()
            .filter(|v| v["workload"]["REQUEST_RATE"] == rate)
            .collect();
        assert_eq!(of_rate.len(), 3, "rate {rate}");
        of_rate.sort_by_key(|v| v["lmbench"]["run"]["repeat"]["n"].as_u64());
        let mut seeds: Vec<u64> = Vec::new();
        for (i, v) in of_rate.iter().enumerate() {
            assert_lmbench_shape(v);
            let rep = &v["lmbench"]["run"]["repeat"];
            assert_eq!(
                (rep["n"].as_u64(), rep["of"].as_u64()),
                (Some(i as u64 + 1), Some(3))
            );
            seeds.push(v["lmbench"]["run"]["seed"].as_u64().unwrap());
            // Only the last holds the spread.
            assert_eq!(
                v["results"].get("repeats").is_some(),
                i == 2,
                "{}",
                v["name"]
            );
        }
        seeds.dedup();
        assert_eq!(seeds.len(), 3, "every repeat has its own stream: {seeds:?}");
        let last = &of_rate[2]["results"]["repeats"];
        assert_eq!(
            (last["n"].as_u64(), last["of"].as_u64()),
            (Some(3), Some(3))
        );
        // Recompute the TTFT mean's spread from the three files.
        let xs: Vec<f64> = of_rate
            .iter()
            .map(|v| v["results"]["ttft_ms"]["mean"].as_f64().unwrap())
            .collect();
        let mean = xs.iter().sum::<f64>() / 3.0;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let half = 4.302_653 * sd / 3f64.sqrt();
        let s = &last["stats"]["ttft_ms.mean"];
        let near = |got: &Value, want: f64| (got.as_f64().unwrap() - want).abs() <= 0.011;
        assert_eq!(s["n"], 3);
        assert!(near(&s["mean"], mean), "{s} vs {mean}");
        assert!(near(&s["std"], sd), "{s} vs {sd}");
        assert!(
            near(&s["ci95"][0], mean - half) && near(&s["ci95"][1], mean + half),
            "{s}"
        );
        // The engine's TTFT is 40 ms: every repeat's mean is near it, and so is the interval.
        assert!(xs.iter().all(|x| (40.0..60.0).contains(x)), "{xs:?}");
        // Each repeat's figures are listed, the earlier ones with their files.
        let runs = last["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 3);
        for (r, v) in runs.iter().zip(&of_rate) {
            assert_eq!(r["ttft_ms.mean"], v["results"]["ttft_ms"]["mean"]);
        }
        assert!(runs[0]["file"].is_string() && runs[2]["file"].is_null());
    }
    let html = std::fs::read_to_string(out.path().join("e2e-repeats/report.html")).unwrap();
    // Each point once per table (latency, load, and the steady-state and engine-metrics tables
    // where it has figures for them): never a row per repeat.
    let rows = html.matches("(x3)</td>").count();
    assert!(
        rows >= 2 * 2 && rows.is_multiple_of(2) && rows <= 2 * 4,
        "{rows} rows marked (x3)"
    );
    assert!(html.contains(" ± "), "no mean ± half-width");
    let cmp = read_json(&out.path().join("e2e-repeats/vllm_random_comparison.json"));
    assert_eq!(cmp.as_array().unwrap().len(), 2, "{cmp}");
}
