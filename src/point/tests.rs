//! The result path against golden files: result JSONs written by the version before the
//! restructuring, from fixed records (`tests/fixtures/result-golden/`), must come out byte for
//! byte the same from the same records and run details. A deliberate change of the result's
//! content rewrites them (`LMBENCH_UPDATE_GOLDEN=1`), and the diff is reviewed in the commit.

use super::*;
use crate::results::read_records;
use chrono::TimeZone;
use serde_json::json;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/result-golden")
}

/// The golden suite's configuration in a temporary tree, and its plan.
fn golden_plan(tmp: &Path) -> (crate::suite::LoadedConfig, crate::plan::RunPlan) {
    std::fs::create_dir_all(tmp.join("0-bench-specs")).unwrap();
    std::fs::create_dir_all(tmp.join("3-workloads/trace-replayer")).unwrap();
    std::fs::write(
        tmp.join("3-workloads/trace-replayer/t.jsonl"),
        "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 4, \"hash_ids\": [1]}\n",
    )
    .unwrap();
    std::fs::write(
        tmp.join("run-bench.yaml"),
        "0-bench-specs:\n  - golden.yaml\n1-infrastructure:\n  Location: Local-Flat\n",
    )
    .unwrap();
    std::fs::copy(
        golden().join("spec.yaml"),
        tmp.join("0-bench-specs/golden.yaml"),
    )
    .unwrap();
    let cfg = crate::suite::load(&tmp.join("run-bench.yaml"), None).unwrap();
    let plan = crate::plan::build(&cfg, "lmbench-1700000000-0badf00d".into());
    (cfg, plan)
}

#[test]
fn results_are_byte_identical_to_the_golden_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (cfg, plan) = golden_plan(tmp.path());
    let runs: Vec<&PlannedRun> = plan.runs().collect();
    let ts = chrono::Local
        .with_ymd_and_hms(2026, 11, 30, 9, 41, 0)
        .earliest()
        .unwrap();
    let mut cases = 0;
    for entry in std::fs::read_dir(golden()).unwrap() {
        let case = entry.unwrap().path();
        if !case.is_dir() {
            continue;
        }
        cases += 1;
        let input: Value =
            serde_json::from_slice(&std::fs::read(case.join("input.json")).unwrap()).unwrap();
        let mut run = runs[input["run_index"].as_u64().unwrap() as usize].clone();
        let existing = input["existing_endpoint"].as_bool().unwrap();
        let serving = if existing {
            run.baseline_key = "existing".into();
            run.baseline_type = "existing-endpoint";
            Serving::default()
        } else {
            Serving {
                baseline_type: Some(run.baseline.type_name().into()),
                config: Some(run.baseline.config_json.clone()),
            }
        };
        let want_name = input["result_file"].as_str().unwrap();
        let want = std::fs::read(case.join(want_name)).unwrap();
        let records =
            read_records(case.join(want_name.replace(".json", crate::results::REQUESTS_SUFFIX)))
                .unwrap();
        let head = ResultHead {
            suite: run.suite.clone(),
            session_id: plan.session_id.clone(),
            name: ResultName {
                baseline_key: run.baseline_key.clone(),
                workload: run.workload_name(),
                qps_label: run.point.qps_label.clone(),
                timestamp: ts,
            },
            infra: cfg.infra.json.clone(),
            serving,
        };
        let mut agg = Aggregator::new();
        let out = tmp.path().join("out").join(case.file_name().unwrap());
        let mut writer = ResultWriter::create(&out, &head.name).unwrap();
        for r in &records {
            agg.add(r);
            writer.write_record(r).unwrap();
        }
        let window = input["window"]
            .as_array()
            .map(|w| (w[0].as_f64().unwrap(), w[1].as_f64().unwrap()));
        let summary = agg.finish(&SummaryContext {
            target_qps: run.point.target_qps(),
            run_duration_s: window.map(|(a, b)| b - a),
            api: Default::default(),
            capped: false,
        });
        let facts = RunFacts {
            window,
            started_at_unix_s: 1_764_495_660.123_456_7,
            endpoint: "http://127.0.0.1:30080".into(),
            api: run.baseline.api_type,
            model: run.baseline.model_url.clone(),
            request_timeout: Duration::from_secs(600),
            tokenizer: "tiktoken cl100k_base".into(),
            stats: serde_json::from_value(input["scheduler"].clone()).unwrap(),
            workload_stats: input["workload_stats"].clone(),
            cache_state: None,
            measurement: None,
            steady_state: None,
            sla: None,
            stopped_early: None,
            repeat: None,
            engine_metrics: None,
        };
        let path = writer
            .finish(&result_file(&run, &head, &summary, &facts))
            .unwrap();
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), want_name);
        let got = std::fs::read(&path).unwrap();
        if std::env::var_os("LMBENCH_UPDATE_GOLDEN").is_some() {
            // A deliberate change of the result schema: rewrite, then review `git diff`.
            std::fs::write(case.join(want_name), &got).unwrap();
            continue;
        }
        assert!(
            got == want,
            "{}: result differs from the golden file\n--- golden\n{}\n--- now\n{}",
            case.display(),
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&got)
        );
        // Read back through the one result type, it is still the same file.
        let back = ResultFile::read(&path).unwrap();
        assert_eq!(back.to_bytes().unwrap(), want);
    }
    assert_eq!(cases, 8, "golden cases");
}

#[test]
fn figures_line() {
    let r = json!({"successful_requests": 9, "total_requests": 10,
        "ttft_ms": {"median": 12.345}, "inter_token_latency_ms": {"median": 3.0},
        "achieved_qps": 1.99, "target_qps": 2.0, "send_lag_ms": {"p99": 0.4}});
    assert_eq!(
        figures::line(r.as_object().unwrap(), 10),
        "9/10 ok, TTFT p50 12.35 ms, ITL p50 3.00 ms, achieved 1.99 of target 2.00 QPS, send lag p99 0.40 ms"
    );
}
