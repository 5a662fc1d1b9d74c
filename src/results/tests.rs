//! Unit tests of result files: names, the dashboard's shape, the writer, reading back.

use super::*;
use crate::measure::{summarize, SummaryContext};
use crate::record::{ErrorKind, RequestError, RequestRecord};
use chrono::TimeZone;
use serde_json::json;
use std::fs;

fn name() -> ResultName {
    ResultName {
        baseline_key: "helm_basic".into(),
        workload: "synthetic".into(),
        qps_label: "0.5".into(),
        timestamp: chrono::Local
            .with_ymd_and_hms(2025, 8, 1, 12, 0, 0)
            .earliest()
            .unwrap(),
    }
}

fn head() -> ResultHead {
    ResultHead {
        suite: "basic-helm-benchmark".into(),
        session_id: "lmbench-1700000000-abcd1234".into(),
        name: name(),
        infra: json!({"Location": "Local-Flat"}),
        serving: Serving {
            baseline_type: Some("Helm-ProductionStack".into()),
            config: Some(json!({
                "helmConfigSelection": "basic/llama-3.1-8b-basic.yaml",
                "modelURL": "meta-llama/Llama-3.1-8B-Instruct",
                "hf_token": "hf_secret",
            })),
        },
    }
}

fn workload() -> Map<String, Value> {
    json!({"WORKLOAD": "synthetic", "NUM_USERS": 10, "QPS": 0.5, "HF-Token": "x"})
        .as_object()
        .unwrap()
        .clone()
}

fn run_info() -> RunInfo {
    RunInfo {
        index: Some(0),
        seed: Some(7),
        started_at_unix_s: Some(1_754_000_000.0),
        partial: Some(false),
        ..RunInfo::default()
    }
}

/// The result file `records` make, as lmbench writes it.
fn result(records: &[RequestRecord]) -> ResultFile {
    let s = summarize(records, &ctx());
    let results = s.results_json().as_object().unwrap().clone();
    ResultFile::new(&head(), results, workload(), run_info())
}

fn record(id: u64, sent: f64, ok: bool) -> RequestRecord {
    RequestRecord {
        id,
        user_id: Some(id),
        round: 1,
        warmup: false,
        due_s: sent,
        slot_s: None,
        sent_s: sent,
        new_connection: None,
        connect_ms: None,
        first_token_s: ok.then_some(sent + 0.2),
        end_s: sent + 0.5,
        chunk_times_s: if ok {
            vec![sent + 0.2, sent + 0.3, sent + 0.4]
        } else {
            Vec::new()
        },
        prompt_tokens: Some(1000),
        completion_tokens: ok.then_some(3),
        cached_tokens: None,
        client_prompt_tokens: 998,
        client_completion_tokens: if ok { 3 } else { 0 },
        content_chunks: if ok { 3 } else { 0 },
        max_tokens: 3,
        status: Some(if ok { 200 } else { 500 }),
        error: (!ok).then(|| RequestError {
            kind: ErrorKind::HttpStatus,
            message: "500 Internal Server Error".into(),
        }),
    }
}

fn records() -> Vec<RequestRecord> {
    (0..5).map(|i| record(i, i as f64 * 2.0, i != 3)).collect()
}

fn ctx() -> SummaryContext {
    SummaryContext {
        target_qps: Some(0.5),
        run_duration_s: Some(10.0),
        api: Default::default(),
        capped: false,
    }
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn as_value(f: &ResultFile) -> Value {
    serde_json::from_slice(&f.to_bytes().unwrap()).unwrap()
}

#[test]
fn file_name_and_timestamp() {
    let n = name();
    assert_eq!(format_timestamp(&n.timestamp), "20250801-1200");
    assert_eq!(n.file_name(), "helm_basic_synthetic_0.5_20250801-1200.json");
    let mut odd = name();
    odd.baseline_key = "a/b c".into();
    odd.qps_label = String::new();
    assert_eq!(odd.base(), "a-b-c_synthetic_unknown_20250801-1200");
}

/// The keys and types LMBench's dashboard and visualizer read.
#[test]
fn dashboard_compatible_shape() {
    let v = as_value(&result(&records()));
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        top,
        [
            "name",
            "lmbench-session-id",
            "timestamp",
            "results",
            "infra",
            "serving",
            "workload",
            "schema_version",
            "lmbench"
        ]
    );
    assert_eq!(v["name"], "basic-helm-benchmark");
    assert_eq!(v["lmbench-session-id"], "lmbench-1700000000-abcd1234");
    assert_eq!(v["timestamp"], "20250801-1200");

    let r = &v["results"];
    assert!(r["successful_requests"].is_u64());
    assert_eq!(r["successful_requests"], 4);
    assert!(r["total_input_tokens"].is_u64());
    assert!(r["total_generated_tokens"].is_u64());
    for k in [
        "benchmark_duration_s",
        "request_throughput_req_per_s",
        "output_token_throughput_tok_per_s",
        "input_token_throughput_tok_per_s",
        "total_token_throughput_tok_per_s",
    ] {
        assert!(r[k].is_number(), "{k}");
    }
    for k in ["ttft_ms", "tpot_ms", "itl_ms"] {
        for stat in ["mean", "median", "p99"] {
            assert!(r[k][stat].is_number(), "{k}.{stat}");
        }
    }
    // Sends at 0, 2, 4, 6, 8; ends 0.5 later; one failure (id 3) not counted.
    assert_eq!(r["benchmark_duration_s"], 8.5);
    assert_eq!(r["total_input_tokens"], 4000);
    assert_eq!(r["total_generated_tokens"], 12);
    assert_eq!(r["ttft_ms"]["mean"], 200.0);
    assert_eq!(r["failures_by_cause"]["http_status"], 1);

    assert!(v["infra"].is_object());
    assert_eq!(v["serving"]["baseline_type"], "Helm-ProductionStack");
    assert!(v["serving"]["config"].is_object());
    assert!(v["serving"]["config"].get("hf_token").is_none());
    assert_eq!(v["workload"]["WORKLOAD"], "synthetic");
    assert!(v["workload"]["QPS"].is_number());
    assert!(v["workload"].get("HF-Token").is_none());

    assert_eq!(v["schema_version"], "lmbench/1");
    assert_eq!(v["lmbench"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["lmbench"]["run"]["seed"], 7);
    assert_eq!(
        v["lmbench"]["requests_file"],
        "helm_basic_synthetic_0.5_20250801-1200.requests.jsonl"
    );
}

#[test]
fn empty_run_writes_error_object() {
    let v = as_value(&result(&[]));
    assert_eq!(v["results"]["error"], "No successful requests completed");
    assert!(v["results"]["message"].is_string());
    assert!(!serde_json::to_string(&v).unwrap().contains("NaN"));
}

#[test]
fn writer_round_trip_and_no_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("suite");
    let n = name();
    let recs = records();
    let mut w = ResultWriter::create(&dir, &n).unwrap();
    assert_eq!(w.stem(), n.base());
    assert!(w.requests_path().exists());
    for r in &recs {
        w.write_record(r).unwrap();
    }
    assert_eq!(w.records_written(), 5);
    let result = result(&recs);
    let path = w.finish(&result).unwrap();
    assert_eq!(path, dir.join(n.file_name()));
    assert_eq!(
        dir_names(&dir),
        [
            "helm_basic_synthetic_0.5_20250801-1200.json",
            "helm_basic_synthetic_0.5_20250801-1200.requests.jsonl"
        ]
    );
    let back = ResultFile::read(&path).unwrap();
    assert_eq!(back.to_bytes().unwrap(), result.to_bytes().unwrap());
    let lines = fs::read_to_string(dir.join(format!("{}{REQUESTS_SUFFIX}", n.base()))).unwrap();
    assert_eq!(lines.lines().count(), 5);
    for (line, want) in lines.lines().zip(&recs) {
        let got: RequestRecord = serde_json::from_str(line).unwrap();
        assert_eq!(&got, want);
    }
    assert_eq!(
        read_records(dir.join(format!("{}{REQUESTS_SUFFIX}", n.base()))).unwrap(),
        recs
    );
}

#[test]
fn writer_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let n = name();
    let base = n.base();
    // An earlier run's JSON with the same name (same key/workload/QPS within a minute).
    fs::write(dir.join(format!("{base}.json")), "original").unwrap();
    // And someone's JSONL for the first suffix.
    fs::write(dir.join(format!("{base}-1{REQUESTS_SUFFIX}")), "other").unwrap();

    let mut w = ResultWriter::create(dir, &n).unwrap();
    assert_eq!(w.stem(), format!("{base}-2"));
    w.write_record(&records()[0]).unwrap();
    let path = w.finish(&result(&records())).unwrap();
    assert_eq!(path, dir.join(format!("{base}-2.json")));
    assert_eq!(
        fs::read_to_string(dir.join(format!("{base}.json"))).unwrap(),
        "original"
    );
    assert_eq!(
        fs::read_to_string(dir.join(format!("{base}-1{REQUESTS_SUFFIX}"))).unwrap(),
        "other"
    );
    let back: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        back["lmbench"]["requests_file"],
        format!("{base}-2{REQUESTS_SUFFIX}")
    );
    // The timestamp stays the last `_`-separated part of the name.
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name.rsplit('_').next(), Some("20250801-1200-2.json"));
}

#[test]
fn json_taken_during_run_gets_next_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let w = ResultWriter::create_with_base(dir, "k_random_2_20250101-0000").unwrap();
    assert_eq!(w.json_path(), dir.join("k_random_2_20250101-0000.json"));
    // Another process writes the same JSON name while the run is going.
    fs::write(w.json_path(), "theirs").unwrap();
    let path = w.finish(&result(&records())).unwrap();
    assert_eq!(path, dir.join("k_random_2_20250101-0000-1.json"));
    assert_eq!(
        fs::read_to_string(dir.join("k_random_2_20250101-0000.json")).unwrap(),
        "theirs"
    );
    let back: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        back["lmbench"]["requests_file"],
        "k_random_2_20250101-0000.requests.jsonl"
    );
    assert_eq!(dir_names(dir).len(), 3);
}

#[test]
fn bad_jsonl_line_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("x.requests.jsonl");
    let good = serde_json::to_string(&records()[0]).unwrap();
    fs::write(&path, format!("{good}\n\n{{not json\n")).unwrap();
    let err = read_records(&path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains(":3:"), "{err}");
}

#[test]
fn lmbench_files_read_back_without_lmbench_fields() {
    // LMBench's own result file: no session id, no schema version, no lmbench block.
    let v = json!({
        "name": "s", "timestamp": "20250101-0000",
        "results": {"successful_requests": 1},
        "infra": {}, "serving": {"baseline_type": "Flat", "config": {}},
        "workload": {"WORKLOAD": "synthetic", "QPS": 1},
    });
    let f = ResultFile::from_value(v.clone()).unwrap();
    assert_eq!(f.session_id, None);
    assert_eq!(f.workload_name(), "synthetic");
    assert!(f.run().is_none());
    // Written back, it is the same object.
    let again: Value = serde_json::from_slice(&f.to_bytes().unwrap()).unwrap();
    assert_eq!(again, v);
    assert!(ResultFile::from_value(json!({"x": 1})).is_err());
    assert!(ResultFile::from_value(json!({"results": {}, "workload": {}})).is_err());
}

#[test]
fn complete_runs_of_a_session() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let write = |file: &str, session: &str, index: u64, partial: bool| {
        let mut f = result(&records());
        f.session_id = Some(session.into());
        let run = &mut f.lmbench.as_mut().unwrap().run;
        run.index = Some(index);
        run.partial = Some(partial);
        fs::write(dir.join(file), f.to_bytes().unwrap()).unwrap();
    };
    write("a.json", "lmbench-1-aaaaaaaa", 0, false);
    write("b.json", "lmbench-1-aaaaaaaa", 1, true);
    write("c.json", "lmbench-2-bbbbbbbb", 2, false);
    write("x_comparison.json", "lmbench-1-aaaaaaaa", 3, false);
    fs::write(dir.join("broken.json"), "{").unwrap();
    let done = complete_runs(dir, "lmbench-1-aaaaaaaa");
    assert_eq!(
        done,
        [CompleteRun {
            path: dir.join("a.json"),
            index: 0,
            workload: "synthetic".into(),
            baseline_key: Some("helm_basic".into()),
            repeat: None,
        }]
    );
}
