//! Reports end to end: `lmbench run` leaves the comparison JSON/PNG and report.html beside the
//! results, `lmbench report` regenerates them, and a headless Chromium renders the page.

use crate::util::*;
use std::path::Path;
use std::time::Duration;

const SUITE: &str = "default-simulated-demo";

fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    let pixels = buf.chunks(channels).map(|c| [c[0], c[1], c[2]]).collect();
    (info.width, info.height, pixels)
}

/// Distinct colours and the share of pixels that are not white.
fn content(pixels: &[[u8; 3]]) -> (usize, f64) {
    let distinct: std::collections::HashSet<[u8; 3]> = pixels.iter().copied().collect();
    let drawn = pixels.iter().filter(|p| **p != [255, 255, 255]).count();
    (distinct.len(), drawn as f64 / pixels.len() as f64)
}

fn comparison(suite: &Path, workload: &str) -> serde_json::Value {
    read_json(&suite.join(format!("{workload}_comparison.json")))
}

#[test]
fn run_writes_comparisons_and_a_report_that_report_regenerates() {
    let out = tempfile::tempdir().unwrap();
    let port = free_port();
    lmbench()
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--results-dir")
        .arg(out.path())
        .args(["--port", &port.to_string(), "--duration", "2"])
        .timeout(Duration::from_secs(180))
        .assert()
        .success();
    let suite = out.path().join(SUITE);
    let results: Vec<_> = result_files(&suite)
        .into_iter()
        .filter(|p| lmbench::report::is_result_file(p))
        .collect();
    assert_eq!(results.len(), 6, "{results:?}");
    let session = read_json(&results[0])["lmbench-session-id"]
        .as_str()
        .unwrap()
        .to_string();

    // The comparison JSON: LMBench's shape, keyed by the real baseline keys, sorted by QPS.
    let syn = comparison(&suite, "synthetic");
    let entries = syn.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{syn}");
    assert_eq!(entries[0]["qps"], 2);
    assert_eq!(entries[1]["qps"], 4);
    for e in entries {
        assert_eq!(e.as_object().unwrap().len(), 3, "{e}");
        for key in ["sim_prefix_cache_on", "sim_prefix_cache_off"] {
            for m in ["TTFT", "ITL", "TPOT"] {
                assert!(e[key][m].as_f64().unwrap() > 0.0, "{key}.{m}: {e}");
            }
        }
    }
    let random = comparison(&suite, "random");
    assert_eq!(random.as_array().unwrap().len(), 1, "{random}");

    for w in ["synthetic", "random"] {
        let (width, height, pixels) = decode_png(&suite.join(format!("{w}_comparison.png")));
        assert_eq!((width, height), (1600, 1100));
        let (colours, drawn) = content(&pixels);
        assert!(
            colours > 100 && drawn > 0.02,
            "{w}: {colours} colours, {drawn:.3} drawn"
        );
    }
    let html = std::fs::read_to_string(suite.join("report.html")).unwrap();
    assert!(html.contains(&session));
    assert_eq!(html.matches("data:image/png;base64,").count(), 2);

    // `lmbench report` regenerates the same comparison and the page.
    let before = syn.clone();
    for f in [
        "synthetic_comparison.json",
        "synthetic_comparison.png",
        "random_comparison.json",
        "random_comparison.png",
        "report.html",
    ] {
        std::fs::remove_file(suite.join(f)).unwrap();
    }
    let assert = lmbench()
        .arg("report")
        .arg(&suite)
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(stdout.contains("report.html"), "{stdout}");
    assert_eq!(comparison(&suite, "synthetic"), before);
    assert!(suite.join("random_comparison.png").is_file());
    let page = suite.join("report.html");
    assert!(page.is_file());

    lmbench()
        .args(["report", "--session", &session])
        .arg(&suite)
        .assert()
        .success();
    lmbench()
        .args(["report", "--all"])
        .arg(&suite)
        .assert()
        .success();
    let unknown = lmbench()
        .args(["report", "--session", "lmbench-0-nosuch"])
        .arg(&suite)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&unknown.get_output().stderr).to_string();
    assert!(
        stderr.contains("lmbench-0-nosuch") && stderr.contains(&session),
        "{stderr}"
    );
    lmbench()
        .arg("report")
        .arg(out.path().join("no-such-suite"))
        .assert()
        .code(2);
    // The result files themselves are never rewritten.
    let after: Vec<_> = result_files(&suite)
        .into_iter()
        .filter(|p| lmbench::report::is_result_file(p))
        .collect();
    assert_eq!(after, results);

    check_in_chromium(&page, &session);
}

/// Renders the page in headless Chromium: a screenshot that is not blank and shows the plots,
/// and the key text in the DOM. Skipped when Chromium is not installed, unless
/// LMBENCH_REQUIRE_CHROMIUM=1.
fn check_in_chromium(page: &Path, session: &str) {
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        if std::env::var("LMBENCH_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("LMBENCH_REQUIRE_CHROMIUM=1 but /usr/bin/chromium is not installed");
        }
        eprintln!("skipping the Chromium check of report.html: /usr/bin/chromium not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", page.display());
    let shot = tmp.path().join("shot.png");
    let browser = |extra: &[String]| {
        let mut c = assert_cmd::Command::new(chromium);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.path().join("profile").display()
        ))
        .args(extra)
        .arg(&url)
        .env("HOME", tmp.path())
        .timeout(Duration::from_secs(120));
        c
    };
    browser(&[
        format!("--screenshot={}", shot.display()),
        "--window-size=1400,2000".to_string(),
    ])
    .assert()
    .success();
    let (width, height, pixels) = decode_png(&shot);
    assert_eq!((width, height), (1400, 2000));
    let (colours, drawn) = content(&pixels);
    assert!(
        colours > 200 && drawn > 0.05,
        "screenshot looks blank: {colours} colours, {drawn:.3} drawn"
    );
    // The first plot is on screen: pixels of the first series' colour (tab10 blue), allowing
    // for the browser's scaling of the image.
    let blue = pixels
        .iter()
        .filter(|p| {
            (p[0] as i32 - 31).abs() < 25
                && (p[1] as i32 - 119).abs() < 25
                && (p[2] as i32 - 180).abs() < 25
        })
        .count();
    assert!(blue > 200, "no plot line visible ({blue} blue pixels)");

    let dom = browser(&["--dump-dom".to_string()]).assert().success();
    let dom = String::from_utf8_lossy(&dom.get_output().stdout).to_string();
    for text in [
        SUITE,
        session,
        "sim_prefix_cache_on",
        "sim_prefix_cache_off",
        "Warnings",
        "Latency (ms)",
        "Load and throughput",
        "achieved QPS",
        "Workload configuration",
        "Baselines",
        "synthetic",
        "random",
    ] {
        assert!(dom.contains(text), "{text} missing from the rendered page");
    }
    assert_eq!(dom.matches("data:image/png;base64,").count(), 2);
}
