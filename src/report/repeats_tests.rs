//! The report of points run several times (`REPEATS`): one row and one plotted point per
//! repeated point, at the mean over its repeats, with the 95 % confidence interval as an
//! error bar in the PNG (found by decoding it) and as `mean ± half-width` in the HTML.

use super::load::{from_value, group, select, RunResult, Selection};
use super::*;
use serde_json::{json, Value};
use std::time::SystemTime;

const SESSION: &str = "lmbench-1700000000-aaaaaaaa";

/// A result of point `index` at `qps`, with TTFT mean `ttft`, as repeat `repeat` (n, of), and
/// `repeats` (the last repeat's spread) when given.
fn result(
    index: u64,
    qps: f64,
    ttft: f64,
    repeat: Option<(u32, u32)>,
    repeats: Option<Value>,
) -> RunResult {
    let lat = |m: f64| json!({"mean": m, "median": m, "p90": m, "p99": m});
    let mut results = json!({
        "successful_requests": 10, "ttft_ms": lat(ttft), "tpot_ms": lat(5.0),
        "itl_ms": lat(6.0), "inter_token_latency_ms": lat(5.0), "e2e_latency_ms": lat(ttft + 50.0),
        "output_token_throughput_tok_per_s": 100.0,
    });
    if let Some(r) = repeats {
        results["repeats"] = r;
    }
    let mut run = json!({"index": index, "partial": false, "sweep": {"QPS": qps}});
    if let Some((n, of)) = repeat {
        run["repeat"] = json!({"n": n, "of": of});
    }
    let v = json!({
        "name": "s", "lmbench-session-id": SESSION, "timestamp": "20261208-0100",
        "results": results, "infra": {}, "serving": {"baseline_type": "Simulated"},
        "workload": {"WORKLOAD": "random", "QPS": qps},
        "lmbench": {"version": "x", "baseline_key": "sim_a", "run": run},
    });
    let name = format!(
        "sim_a_random_{qps}_20261208-0100-{index}-{}.json",
        repeat.map_or(0, |r| r.0)
    );
    from_value(Path::new(&name), &v, SystemTime::UNIX_EPOCH).unwrap()
}

/// `results.repeats` of three repeats with TTFT means 60, 100, 140: mean 100, CI 100 ± 99.4.
fn spread() -> Value {
    let half = crate::measure::repeats::t_975(2) * 40.0 / 3f64.sqrt();
    json!({"n": 3, "of": 3, "runs": [], "stats": {
        "ttft_ms.mean": {"n": 3, "mean": 100.0, "std": 40.0, "cv": 0.4, "ci95": [100.0 - half, 100.0 + half]},
    }})
}

/// Point 0 at 2 QPS run three times (its last repeat holding the spread), point 1 at 4 QPS
/// once.
fn repeated() -> Vec<RunResult> {
    vec![
        result(0, 2.0, 60.0, Some((1, 3)), None),
        result(0, 2.0, 100.0, Some((2, 3)), None),
        result(0, 2.0, 140.0, Some((3, 3)), Some(spread())),
        result(1, 4.0, 90.0, None, None),
    ]
}

#[test]
fn a_repeated_point_shows_once_at_its_mean() {
    let (chosen, ids) = select(&repeated(), &Selection::Newest).unwrap();
    assert_eq!(
        chosen.len(),
        2,
        "the earlier repeats are folded into the last"
    );
    let groups = group(&chosen, &ids);
    let runs = &groups[0].runs;
    let at2 = runs.iter().find(|r| r.qps() == Some(2.0)).unwrap();
    // The mean over the repeats, not the last repeat's own 140.
    assert_eq!(at2.stat("ttft_ms", "mean"), Some(100.0));
    let (lo, hi) = at2.ci95("ttft_ms.mean").unwrap();
    assert!(
        (lo - 0.63).abs() < 0.01 && (hi - 199.37).abs() < 0.01,
        "{lo}..{hi}"
    );
    // A point whose last repeat never came keeps its repeats.
    let partial = vec![
        result(0, 2.0, 60.0, Some((1, 3)), None),
        result(0, 2.0, 100.0, Some((2, 3)), None),
    ];
    assert_eq!(select(&partial, &Selection::Newest).unwrap().0.len(), 2);
}

/// The longest vertical run of pixels of exactly `colour` in the top-left quarter (the TTFT
/// panel): its length and column.
fn longest_vertical_run(buf: &[u8], colour: [u8; 3]) -> (u32, u32) {
    let mut best = (0, 0);
    for x in 0..plot::WIDTH / 2 {
        let mut run = 0;
        for y in 0..plot::HEIGHT / 2 {
            let i = ((y * plot::WIDTH + x) * 3) as usize;
            if buf[i..i + 3] == colour {
                run += 1;
                best = best.max((run, x));
            } else {
                run = 0;
            }
        }
    }
    best
}

#[test]
fn the_png_draws_the_confidence_interval_as_an_error_bar() {
    plot::ensure_font().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let draw = |results: Vec<RunResult>, name: &str| {
        let (chosen, ids) = select(&results, &Selection::Newest).unwrap();
        let g = group(&chosen, &ids);
        let path = tmp.path().join(name);
        plot::write_png(&path, &g[0], "t", "s", plot::FONT_FAMILY).unwrap();
        let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        buf
    };
    let with = draw(repeated(), "with.png");
    // The same figures without the spread: the point drawn at the same mean, no bar.
    let mut plain = repeated();
    plain.truncate(3);
    plain.remove(0);
    plain.remove(0);
    plain[0].results["ttft_ms"]["mean"] = json!(100.0);
    plain[0].results.as_object_mut().unwrap().remove("repeats");
    plain.push(result(1, 4.0, 90.0, None, None));
    let without = draw(plain, "without.png");
    // The bar runs from the interval's low end (0.63 ms, near the axis) to its high end
    // (199.37 ms, near the top of the panel), through the marker at the mean that splits it in
    // two: vertical runs of the series' colour far longer than anything the lines and markers
    // draw, which the same point without repeats lacks.
    let c = plot::series_color(0);
    let colour = [c.0, c.1, c.2];
    let (bar, x) = longest_vertical_run(&with, colour);
    let (plain_run, _) = longest_vertical_run(&without, colour);
    assert!(bar >= 120, "longest vertical run {bar} px at x {x}");
    assert!(plain_run < 40, "without repeats: {plain_run} px");
}

#[test]
fn the_html_shows_mean_plus_minus_the_interval() {
    let (chosen, ids) = select(&repeated(), &Selection::Newest).unwrap();
    let groups = group(&chosen, &ids);
    let page = html::Page {
        suite: "s",
        shown: &ids,
        sessions: &[],
        all: false,
        groups: &groups,
        pngs: &[None],
        notes: &[],
        sla: &[],
        generated_at: String::new(),
    };
    let h = html::render(&page);
    assert!(
        h.contains("QPS=2.0 (x3)") || h.contains("2.0 (x3)"),
        "no repeat count in the row"
    );
    assert!(h.contains(">100.00 ± 99.37</td>"), "no mean ± half-width");
    assert!(h.contains("title=\"n=3, sd 40.00, CV 0.40, 95 % CI 0.63–199.37\""));
    assert!(h.contains("half-width of the 95 % confidence interval"));
}
