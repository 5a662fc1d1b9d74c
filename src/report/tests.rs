//! Unit tests of the report: loading and grouping, the comparison JSON, the PNG, the HTML.

use super::load::{baseline_key_from_stem, from_value, group, select, sessions, Selection};
use super::*;
use serde_json::{json, Value};
use std::fs;
use std::time::SystemTime;

const OLD: &str = "lmbench-1700000000-aaaaaaaa";
const NEW: &str = "lmbench-1700100000-bbbbbbbb";

/// A result JSON as lmbench writes it, reduced to what the report reads.
struct Fixture {
    session: &'static str,
    timestamp: &'static str,
    key: &'static str,
    workload: &'static str,
    qps: Option<Value>,
    ttft: f64,
    index: u64,
}

impl Fixture {
    fn new(session: &'static str, key: &'static str, workload: &'static str, qps: Value) -> Self {
        Fixture {
            session,
            timestamp: if session == OLD {
                "20250101-1000"
            } else {
                "20250102-1000"
            },
            key,
            workload,
            qps: Some(qps),
            ttft: 50.0,
            index: 0,
        }
    }

    fn ttft(mut self, ttft: f64) -> Self {
        self.ttft = ttft;
        self
    }

    fn index(mut self, index: u64) -> Self {
        self.index = index;
        self
    }

    fn untimed(mut self) -> Self {
        self.qps = None;
        self
    }

    fn value(&self) -> Value {
        let lat = |mean: f64| {
            json!({"mean": mean, "median": mean, "p90": mean * 1.1, "p99": mean * 1.2,
                   "min": mean * 0.9, "max": mean * 1.3, "std": 1.0, "count": 10})
        };
        let mut workload = json!({"WORKLOAD": self.workload, "NUM_USERS": 4});
        if let Some(q) = &self.qps {
            workload["QPS"] = q.clone();
        }
        let sweep = match &self.qps {
            Some(q) => json!({"QPS": q}),
            None => json!({"QPS": null}),
        };
        json!({
            "name": "two-sessions",
            "lmbench-session-id": self.session,
            "timestamp": self.timestamp,
            "results": {
                "successful_requests": 10,
                "benchmark_duration_s": 5.0,
                "output_token_throughput_tok_per_s": 100.0 + self.ttft,
                "request_throughput_req_per_s": 2.0,
                "ttft_ms": lat(self.ttft),
                "tpot_ms": lat(8.0),
                "itl_ms": lat(12.0),
                "e2e_latency_ms": lat(200.0),
                "inter_token_latency_ms": {"mean": 8.5, "median": 8.4, "p90": 9.0, "p99": 12.0},
                "send_lag_ms": lat(1.0),
                "total_requests": 10,
                "failed_requests": 0,
                "failures_by_cause": {},
                "target_qps": self.qps.as_ref().and_then(Value::as_f64),
                "achieved_qps": self.qps.as_ref().and_then(Value::as_f64),
                "qps_shortfall": false,
                "warnings": [],
            },
            "infra": {"Location": "Local-Flat"},
            "serving": {"baseline_type": "Flat", "config": {"configSelection": "x.sh"}},
            "workload": workload,
            "schema_version": "lmbench/1",
            "lmbench": {"version": "0.1.0", "run": {"index": self.index, "sweep": sweep}},
        })
    }

    fn file_name(&self) -> String {
        let qps = match &self.qps {
            Some(q) => q.to_string(),
            None => "unknown".to_string(),
        };
        format!(
            "{}_{}_{qps}_{}.json",
            self.key, self.workload, self.timestamp
        )
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(self.file_name());
        fs::write(&path, serde_json::to_string_pretty(&self.value()).unwrap()).unwrap();
        path
    }

    fn load(&self) -> load::RunResult {
        from_value(
            Path::new(&self.file_name()),
            &self.value(),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap()
    }
}

/// A folder with an older session (2 baselines × synthetic at 1 and 2 QPS) and a newer one
/// (the same baselines, synthetic at 2 and 4 QPS, plus random at 4).
fn two_sessions() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (i, (key, qps)) in [("flat_a", 1), ("flat_a", 2), ("flat_b", 1), ("flat_b", 2)]
        .into_iter()
        .enumerate()
    {
        Fixture::new(OLD, key, "synthetic", json!(qps))
            .ttft(10.0 * qps as f64)
            .index(i as u64)
            .write(d);
    }
    for (i, (key, w, qps)) in [
        ("flat_a", "synthetic", 2),
        ("flat_a", "synthetic", 4),
        ("flat_a", "random", 4),
        ("flat_b", "synthetic", 2),
        ("flat_b", "synthetic", 4),
        ("flat_b", "random", 4),
    ]
    .into_iter()
    .enumerate()
    {
        Fixture::new(NEW, key, w, json!(qps))
            .ttft(100.0 + qps as f64)
            .index(i as u64)
            .write(d);
    }
    // Not results: the comparison file of an earlier report, a request log, a temp file.
    fs::write(d.join("synthetic_comparison.json"), "[]").unwrap();
    fs::write(d.join("x.requests.jsonl"), "{}\n").unwrap();
    fs::write(d.join(".x.json.1.0.tmp"), "").unwrap();
    tmp
}

fn read(dir: &Path) -> Vec<load::RunResult> {
    let f = load::read_suite_dir(dir).unwrap();
    assert!(f.skipped.is_empty(), "{:?}", f.skipped);
    f.results
}

#[test]
fn keys_come_from_the_files_own_workload() {
    // LMBench's token split got these wrong (`flat_basic`, `flat`, `helm_basic_strict`).
    let cases = [
        (
            "flat_basic_vllm_run_llama8B_trace_replayer_unknown_20250101-0000",
            "trace_replayer",
            "flat_basic_vllm_run_llama8B",
        ),
        (
            "flat_basic_lmcache_run_llama8B_trace_replayer_1.0_20250101-0000",
            "trace_replayer",
            "flat_basic_lmcache_run_llama8B",
        ),
        (
            "helm_basic_strict_synthetic_1.60_20250101-0000",
            "strict_synthetic",
            "helm_basic",
        ),
        (
            "flat_basic_vllm_run_llama8B_strict_synthetic_0.8_20250101-0000-2",
            "strict_synthetic",
            "flat_basic_vllm_run_llama8B",
        ),
        // A key that contains the workload's name.
        (
            "sim_random_x_random_4_20250101-0000",
            "random",
            "sim_random_x",
        ),
        (
            "synthetic_synthetic_2_20250101-0000",
            "synthetic",
            "synthetic",
        ),
        ("k_vllm_random_inf_20250101-0000", "vllm_random", "k"),
        // Not lmbench's shape: the last `_<WORKLOAD>_`, else the whole stem.
        ("odd_synthetic_name", "synthetic", "odd"),
        ("nothing-here", "random", "nothing-here"),
    ];
    for (stem, workload, key) in cases {
        assert_eq!(baseline_key_from_stem(stem, workload), key, "{stem}");
    }

    let f = Fixture::new(
        OLD,
        "flat_basic_vllm_run_llama8B",
        "trace_replayer",
        json!(1),
    )
    .untimed();
    assert_eq!(f.load().baseline_key, "flat_basic_vllm_run_llama8B");
    assert_eq!(f.load().point_label(), "timed");
    assert_eq!(f.load().qps(), None);

    // A stored key wins over the file name.
    let mut v = f.value();
    v["lmbench"]["baseline_key"] = json!("the_real_key");
    let r = from_value(Path::new(&f.file_name()), &v, SystemTime::UNIX_EPOCH).unwrap();
    assert_eq!(r.baseline_key, "the_real_key");

    // Missing pieces are reported, not guessed.
    assert!(from_value(
        Path::new("a.json"),
        &json!({"x": 1}),
        SystemTime::UNIX_EPOCH
    )
    .is_err());
    assert!(from_value(
        Path::new("a.json"),
        &json!({"results": {}, "workload": {}}),
        SystemTime::UNIX_EPOCH
    )
    .is_err());
}

#[test]
fn result_files_are_told_apart() {
    for (name, yes) in [
        ("k_synthetic_2_20250101-0000.json", true),
        ("synthetic_comparison.json", false),
        ("k_synthetic_2_20250101-0000.requests.jsonl", false),
        (".k.json.12.0.tmp", false),
        (".hidden.json", false),
        ("synthetic_comparison.png", false),
        ("report.html", false),
    ] {
        assert_eq!(is_result_file(Path::new(name)), yes, "{name}");
    }
}

#[test]
fn newest_session_by_default_one_on_request_all_merged() {
    let tmp = two_sessions();
    let results = read(tmp.path());
    assert_eq!(results.len(), 10);
    let s = sessions(&results);
    assert_eq!(
        s.iter()
            .map(|s| (s.id.as_str(), s.files))
            .collect::<Vec<_>>(),
        [(OLD, 4), (NEW, 6)]
    );

    let (newest, ids) = select(&results, &Selection::Newest).unwrap();
    assert_eq!(ids, [NEW]);
    assert_eq!(newest.len(), 6);
    assert!(newest.iter().all(|r| r.session == NEW));

    let (old, ids) = select(&results, &Selection::Session(OLD.into())).unwrap();
    assert_eq!(ids, [OLD]);
    assert_eq!(old.len(), 4);
    assert!(old.iter().all(|r| r.session == OLD));

    let (all, ids) = select(&results, &Selection::All).unwrap();
    assert_eq!(ids, [OLD, NEW]);
    assert_eq!(all.len(), 10);

    match select(&results, &Selection::Session("lmbench-nope".into())) {
        Err(load::SelectError::UnknownSession(id, known)) => {
            assert_eq!(id, "lmbench-nope");
            assert_eq!(known, [OLD, NEW]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        select(&[], &Selection::Newest).unwrap_err(),
        load::SelectError::NoResults
    );

    // Grouping: workloads in run order, series in order of appearance, points by QPS.
    let groups = group(&newest, &ids_of(&newest));
    assert_eq!(
        groups
            .iter()
            .map(|g| g.workload.as_str())
            .collect::<Vec<_>>(),
        ["synthetic", "random"]
    );
    let syn = &groups[0];
    assert_eq!(
        syn.series
            .iter()
            .map(|s| s.label.as_str())
            .collect::<Vec<_>>(),
        ["flat_a", "flat_b"]
    );
    assert!(syn.superseded.is_empty());
    let xs: Vec<f64> = syn.series[1]
        .points
        .iter()
        .map(|&i| syn.runs[i].qps().unwrap())
        .collect();
    assert_eq!(xs, [2.0, 4.0]);
}

fn ids_of(results: &[load::RunResult]) -> Vec<String> {
    sessions(results).into_iter().map(|s| s.id).collect()
}

#[test]
fn merged_sessions_plot_the_newest_of_equal_points() {
    let tmp = two_sessions();
    let results = read(tmp.path());
    let (all, ids) = select(&results, &Selection::All).unwrap();
    let groups = group(&all, &ids);
    let syn = &groups[0];
    assert_eq!(syn.workload, "synthetic");
    // QPS 2 ran in both sessions for both baselines: the newer ones are used.
    assert_eq!(syn.superseded.len(), 2);
    for &i in &syn.superseded {
        assert_eq!(syn.runs[i].session, OLD);
    }
    let cmp = compare::comparison_json(syn);
    let at2 = cmp
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["qps"] == 2)
        .unwrap();
    assert_eq!(at2["flat_a"]["TTFT"], 102.0);
    assert_eq!(
        cmp.as_array()
            .unwrap()
            .iter()
            .map(|e| e["qps"].as_f64().unwrap())
            .collect::<Vec<_>>(),
        [1.0, 2.0, 4.0]
    );
}

#[test]
fn comparison_json_has_lmbench_shape_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Written out of order; QPS as the YAML had them (int and float).
    Fixture::new(NEW, "base_b", "synthetic", json!(4))
        .ttft(40.0)
        .write(d);
    Fixture::new(NEW, "base_a", "synthetic", json!(0.5))
        .ttft(5.0)
        .index(1)
        .write(d);
    Fixture::new(NEW, "base_a", "synthetic", json!(4))
        .ttft(41.0)
        .index(2)
        .write(d);
    // No successful request: LMBench's error object, metrics written as 0.
    let failed = Fixture::new(NEW, "base_b", "synthetic", json!(0.5)).index(3);
    let mut v = failed.value();
    v["results"] = json!({"error": "No successful requests completed", "message": "all failed"});
    fs::write(d.join(failed.file_name()), v.to_string()).unwrap();

    let g = generate(d, &Selection::Newest).unwrap();
    assert!(g.errors.is_empty(), "{:?}", g.errors);
    let cmp: Value =
        serde_json::from_str(&fs::read_to_string(d.join("synthetic_comparison.json")).unwrap())
            .unwrap();
    assert_eq!(
        cmp,
        json!([
            {
                "qps": 0.5,
                "base_b": {"TTFT": 0.0, "ITL": 0.0, "TPOT": 0.0},
                "base_a": {"TTFT": 5.0, "ITL": 12.0, "TPOT": 8.0},
            },
            {
                "qps": 4,
                "base_b": {"TTFT": 40.0, "ITL": 12.0, "TPOT": 8.0},
                "base_a": {"TTFT": 41.0, "ITL": 12.0, "TPOT": 8.0},
            },
        ])
    );
    // Keys in order of the runs (base_b ran first), QPS ascending.
    let text = fs::read_to_string(d.join("synthetic_comparison.json")).unwrap();
    assert!(
        text.starts_with("[\n  {\n    \"qps\": 0.5,\n    \"base_b\""),
        "{text}"
    );

    let html = fs::read_to_string(d.join("report.html")).unwrap();
    assert!(html.contains("No successful requests completed: all failed"));
}

#[test]
fn untimed_runs_sit_at_qps_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    Fixture::new(NEW, "k", "trace_replayer", json!(1.0))
        .untimed()
        .ttft(30.0)
        .write(d);
    Fixture::new(NEW, "k", "trace_replayer", json!(1.0))
        .ttft(20.0)
        .index(1)
        .write(d);
    let g = generate(d, &Selection::Newest).unwrap();
    assert!(g.errors.is_empty(), "{:?}", g.errors);
    let cmp: Value = serde_json::from_str(
        &fs::read_to_string(d.join("trace_replayer_comparison.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(cmp[0]["qps"], 0);
    assert_eq!(cmp[0]["k"]["TTFT"], 30.0);
    assert_eq!(cmp[1]["qps"], 1.0);
    let html = fs::read_to_string(d.join("report.html")).unwrap();
    assert!(html.contains("<td>timed</td>"));
    assert!(html.contains("unconnected markers at 0"));
}

#[test]
fn two_items_of_one_workload_are_separate_series() {
    let results: Vec<load::RunResult> = (0..2)
        .map(|item| {
            let f = Fixture::new(NEW, "k", "synthetic", json!(2)).index(item);
            let mut v = f.value();
            v["workload"]["NUM_USERS"] = json!(4 + item);
            from_value(
                Path::new(&format!("k_synthetic_2_20250102-1000-{item}.json")),
                &v,
                SystemTime::UNIX_EPOCH,
            )
            .unwrap()
        })
        .collect();
    let groups = group(&results, &[NEW.to_string()]);
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0]
            .series
            .iter()
            .map(|s| s.label.as_str())
            .collect::<Vec<_>>(),
        ["k (item 1)", "k (item 2)"]
    );
    assert!(groups[0].superseded.is_empty());
    assert_eq!(groups[0].items.len(), 2);
    assert!(groups[0].items[0].get("QPS").is_none());
}

fn decode_png(path: &Path) -> (u32, u32, Vec<u8>, png::ColorType) {
    let decoder = png::Decoder::new(fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf, info.color_type)
}

#[test]
fn png_has_the_size_and_real_content() {
    let tmp = two_sessions();
    let g = generate(tmp.path(), &Selection::Newest).unwrap();
    assert!(g.errors.is_empty(), "{:?}", g.errors);
    let png_path = tmp.path().join("synthetic_comparison.png");
    assert!(g.written.contains(&png_path));
    let (w, h, buf, color) = decode_png(&png_path);
    assert_eq!((w, h), (plot::WIDTH, plot::HEIGHT));
    assert_eq!(color, png::ColorType::Rgb);
    let pixels: Vec<[u8; 3]> = buf.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    let distinct: std::collections::HashSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(distinct.len() > 100, "{} colours", distinct.len());
    let non_white = pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    assert!(
        non_white > pixels.len() / 50,
        "{non_white} of {} pixels drawn",
        pixels.len()
    );
    // Both series' colours are on the picture.
    for s in 0..2 {
        let c = plot::series_color(s);
        assert!(
            distinct.contains(&[c.0, c.1, c.2]),
            "series {s} colour missing"
        );
    }
    // No temporary file left behind.
    let leftovers: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .filter(|n| n != ".x.json.1.0.tmp")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn drawing_without_the_font_fails_cleanly() {
    let tmp = two_sessions();
    let results = read(tmp.path());
    let (chosen, ids) = select(&results, &Selection::Newest).unwrap();
    let groups = group(&chosen, &ids);
    let path = tmp.path().join("nofont.png");
    let err = plot::write_png(&path, &groups[0], "t", "s", "lmbench-no-such-font").unwrap_err();
    assert!(format!("{err:#}").contains("FontUnavailable"), "{err:#}");
    assert!(!path.exists());
    let tmp_left = fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with(".nofont.png"));
    assert!(!tmp_left);
}

#[test]
fn html_escapes_everything_from_files() {
    assert_eq!(
        text::escape(r#"<script>alert("x" & 'y')</script>"#),
        "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
    );
    assert_eq!(text::escape("plain ünïcode"), "plain ünïcode");

    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let f = Fixture::new(NEW, "k<b>", "synthetic", json!(2));
    let mut v = f.value();
    v["serving"]["config"]["note"] = json!("</pre><script>alert(1)</script>");
    v["results"]["warnings"] = json!(["achieved <1 & \"low\""]);
    v["name"] = json!("suite<i>");
    fs::write(d.join(f.file_name()), v.to_string()).unwrap();
    let g = generate(d, &Selection::Newest).unwrap();
    assert!(g.errors.is_empty(), "{:?}", g.errors);
    let html = fs::read_to_string(d.join("report.html")).unwrap();
    assert!(!html.contains("<script"), "unescaped script");
    assert!(!html.contains("k<b>") && !html.contains("suite<i>"));
    assert!(html.contains("k&lt;b&gt;"));
    assert!(html.contains("&lt;/pre&gt;&lt;script&gt;"));
    assert!(html.contains("achieved &lt;1 &amp; &quot;low&quot;"));
    assert!(html.contains("<title>lmbench report — suite&lt;i&gt;</title>"));
}

#[test]
fn report_is_self_contained_with_every_metric() {
    let tmp = two_sessions();
    let g = generate(tmp.path(), &Selection::Newest).unwrap();
    let html = fs::read_to_string(tmp.path().join(REPORT_FILE)).unwrap();
    assert_eq!(
        g.written.last().unwrap(),
        &tmp.path().join(REPORT_FILE),
        "{:?}",
        g.written
    );
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 2);
    for forbidden in ["http://", "https://", "<script", "<link"] {
        assert!(!html.contains(forbidden), "{forbidden}");
    }
    for text in [
        "TTFT",
        "TPOT",
        "ITL (per chunk)",
        "E2E latency",
        "p50",
        "p90",
        "p99",
        "achieved QPS",
        "send lag p99 (ms)",
        "output tok/s",
        "failed",
        "configSelection",
        NEW,
        "1 other session",
    ] {
        assert!(html.contains(text), "{text} missing");
    }
    assert!(!html.contains(OLD) || html.contains("Sessions in this folder"));
    // The base64 decodes to the PNG on disk.
    let start = html.find("base64,").unwrap() + 7;
    let end = start + html[start..].find('"').unwrap();
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        &html[start..end],
    )
    .unwrap();
    assert_eq!(
        bytes,
        fs::read(tmp.path().join("synthetic_comparison.png")).unwrap()
    );
}

#[test]
fn write_suite_never_touches_results_and_regenerates_its_own_files() {
    let tmp = two_sessions();
    let d = tmp.path();
    let before: Vec<(PathBuf, Vec<u8>)> = load::read_suite_dir(d)
        .unwrap()
        .results
        .iter()
        .map(|r| (r.path.clone(), fs::read(&r.path).unwrap()))
        .collect();
    let first = write_suite(d, Some(OLD)).unwrap();
    assert_eq!(
        first
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        [
            "synthetic_comparison.json",
            "synthetic_comparison.png",
            "report.html"
        ]
    );
    let old_cmp = fs::read_to_string(d.join("synthetic_comparison.json")).unwrap();
    assert!(old_cmp.contains("\"qps\": 1"));
    let second = write_suite(d, None).unwrap();
    assert_eq!(second.len(), 5);
    let new_cmp = fs::read_to_string(d.join("synthetic_comparison.json")).unwrap();
    assert!(!new_cmp.contains("\"qps\": 1,"), "{new_cmp}");
    for (path, bytes) in before {
        assert_eq!(fs::read(&path).unwrap(), bytes, "{}", path.display());
    }
    // An unknown session (every run failed before writing a result) writes nothing.
    assert!(write_suite(d, Some("lmbench-0-none")).unwrap().is_empty());
}

#[test]
fn exit_codes() {
    let tmp = two_sessions();
    // `lmbench report` (crate::commands) on `dir` with `--session` / `--all`.
    let opts = |dir: &Path, session: Option<&str>, all: bool| {
        let selection = match (session, all) {
            (_, true) => Selection::All,
            (Some(s), false) => Selection::Session(s.to_string()),
            (None, false) => Selection::Newest,
        };
        (dir.to_path_buf(), selection)
    };
    let run_report =
        |(dir, selection): &(PathBuf, Selection)| crate::commands::report(dir, selection).code();
    assert_eq!(run_report(&opts(tmp.path(), None, false)), 0);
    assert_eq!(run_report(&opts(tmp.path(), Some(OLD), false)), 0);
    assert_eq!(run_report(&opts(tmp.path(), None, true)), 0);
    assert_eq!(run_report(&opts(tmp.path(), Some("lmbench-x"), false)), 2);
    assert_eq!(
        run_report(&opts(&tmp.path().join("missing"), None, false)),
        2
    );
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(run_report(&opts(empty.path(), None, false)), 2);

    match generate(tmp.path(), &Selection::Session("lmbench-x".into())) {
        Err(e @ ReportError::UnknownSession { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("lmbench-x") && msg.contains(OLD) && msg.contains(NEW));
        }
        other => panic!("{other:?}"),
    }

    // A write failure: report.html is a non-empty folder, so it cannot be replaced.
    fs::remove_file(tmp.path().join(REPORT_FILE)).unwrap();
    fs::create_dir(tmp.path().join(REPORT_FILE)).unwrap();
    fs::write(tmp.path().join(REPORT_FILE).join("x"), "").unwrap();
    assert_eq!(run_report(&opts(tmp.path(), None, false)), 1);
    let g = generate(tmp.path(), &Selection::Newest).unwrap();
    assert_eq!(g.errors.len(), 1, "{:?}", g.errors);
    assert_eq!(
        g.written.len(),
        4,
        "the comparison files were still written"
    );
    assert!(write_suite(tmp.path(), None).is_err());
}

#[test]
fn unreadable_files_are_skipped_and_noted() {
    let tmp = two_sessions();
    fs::write(
        tmp.path().join("broken_synthetic_2_20250103-0000.json"),
        "{",
    )
    .unwrap();
    let files = load::read_suite_dir(tmp.path()).unwrap();
    assert_eq!(files.skipped.len(), 1);
    assert_eq!(files.results.len(), 10);
    generate(tmp.path(), &Selection::Newest).unwrap();
    let html = fs::read_to_string(tmp.path().join(REPORT_FILE)).unwrap();
    assert!(html.contains("broken_synthetic_2_20250103-0000.json was not read"));
}

#[test]
fn a_timed_item_joins_the_series_of_the_only_qps_item() {
    // trace-sample.yaml's shape: one timed item and one QPS item per baseline.
    let run = |key: &'static str, timed: bool, index: u64| {
        let f = if timed {
            Fixture::new(NEW, key, "trace_replayer", json!(1)).untimed()
        } else {
            Fixture::new(NEW, key, "trace_replayer", json!(25))
        };
        let mut v = f.index(index).value();
        v["workload"]["PRESERVE_TIMING"] = json!(timed);
        from_value(
            Path::new(&format!(
                "{key}_trace_replayer_x_20250102-1000-{index}.json"
            )),
            &v,
            SystemTime::UNIX_EPOCH,
        )
        .unwrap()
    };
    let results = vec![run("a", true, 0), run("a", false, 1), run("b", true, 2)];
    let groups = group(&results, &[NEW.to_string()]);
    let g = &groups[0];
    assert_eq!(
        g.series
            .iter()
            .map(|s| s.label.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(g.series[0].points.len(), 2);
    assert_eq!(g.items.len(), 2, "both configurations are listed");
    assert!(g.has_untimed());

    // With two QPS items the timed one gets its own number too.
    let mut three = results.clone();
    let mut other = run("a", false, 3);
    other.workload_params["NUM_USERS"] = json!(99);
    three.push(other);
    let groups = group(&three, &[NEW.to_string()]);
    let labels: Vec<&str> = groups[0].series.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        ["a (item 3)", "a (item 1)", "b (item 3)", "a (item 2)"]
    );
}

/// An invalid measurement is marked in the load table, and each reason, with what to change,
/// is listed among the warnings (the result's own one-line warning about it is not repeated);
/// a valid one reads "valid".
#[test]
fn invalid_measurements_are_marked_with_what_to_change() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let bad = Fixture::new(NEW, "starved", "synthetic", json!(2));
    let mut v = bad.value();
    v["results"]["warnings"] =
        json!(["INVALID measurement (send_lag): see results.measurement for why"]);
    v["results"]["measurement"] = json!({
        "valid": false,
        "reasons": [{"check": "send_lag", "detail": "p99 send lag 96.3 ms is over the 10 ms budget",
                     "advice": "give lmbench CPUs of its own"}],
        "checks": {}
    });
    fs::write(d.join(bad.file_name()), v.to_string()).unwrap();
    let good = Fixture::new(NEW, "roomy", "synthetic", json!(2));
    let mut v = good.value();
    v["results"]["measurement"] = json!({"valid": true, "reasons": [], "checks": {}});
    fs::write(d.join(good.file_name()), v.to_string()).unwrap();
    let g = generate(d, &Selection::Newest).unwrap();
    assert!(g.errors.is_empty(), "{:?}", g.errors);
    let html = fs::read_to_string(d.join("report.html")).unwrap();
    assert!(html.contains("<th>measurement</th>"));
    assert!(
        html.contains("<td class=\"bad wrap\">INVALID: send_lag</td>"),
        "{html}"
    );
    assert!(html.contains("<td>valid</td>"));
    assert!(html.contains(
        "invalid measurement (send_lag): p99 send lag 96.3 ms is over the 10 ms budget; \
         change: give lmbench CPUs of its own"
    ));
    assert!(!html.contains("see results.measurement for why"));
}

/// Points with steady-state figures get a table of them; a growing queue is marked.
#[test]
fn steady_state_table_shows_the_plateau() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let stats = |p50: f64| json!({"median": p50, "p99": p50 * 2.0});
    for (key, growing) in [("calm", false), ("queued", true)] {
        let f = Fixture::new(NEW, key, "synthetic", json!(2));
        let mut v = f.value();
        v["results"]["steady_state"] = json!({
            "rule": "from one median E2E latency after the first send to the last send",
            "window_s": [0.5, 9.25], "requests": 17, "successful_requests": 17,
            "ttft_ms": stats(42.5), "tpot_ms": stats(5.0), "e2e_latency_ms": stats(117.0),
            "request_throughput_req_per_s": 35.02, "output_token_throughput_tok_per_s": 539.27,
            "mean_in_flight": 3.96, "in_flight_start": 3, "in_flight_end": if growing { 9 } else { 4 },
            "growing": growing
        });
        fs::write(d.join(f.file_name()), v.to_string()).unwrap();
    }
    let g = generate(d, &Selection::Newest).unwrap();
    assert!(g.errors.is_empty(), "{:?}", g.errors);
    let html = fs::read_to_string(d.join("report.html")).unwrap();
    assert!(html.contains("<h3>Steady state</h3>"), "{html}");
    assert!(
        html.contains("<td>0.50–9.25</td><td>17</td><td>42.50</td><td>85.00</td>"),
        "{html}"
    );
    assert!(html.contains("<td>3.96; 3 → 4</td>"), "{html}");
    assert!(
        html.contains("<td class=\"bad\">3.96; 3 → 9 (growing: no plateau)</td>"),
        "{html}"
    );
}
