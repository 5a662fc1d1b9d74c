//! `report.html`: one self-contained page (inline CSS, plots as base64 `data:` URIs, no
//! scripts, nothing fetched) with the plots, a table of every metric per baseline × workload ×
//! point, each baseline's configuration, and the runs' warnings. Every piece of text that comes
//! from a file goes through [`escape`].

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::Value;

use super::load::{RunResult, SessionInfo, WorkloadGroup};
use super::plot::series_color;
use super::text::{escape, num};

/// What the page shows.
#[derive(Debug)]
pub struct Page<'a> {
    /// The suite's name.
    pub suite: &'a str,
    /// The sessions shown, oldest first.
    pub shown: &'a [String],
    /// Every session in the folder, oldest first.
    pub sessions: &'a [SessionInfo],
    /// True when every session was selected (`--all`).
    pub all: bool,
    /// The workloads.
    pub groups: &'a [WorkloadGroup],
    /// Each workload's PNG (parallel to `groups`), None when it could not be drawn.
    pub pngs: &'a [Option<Vec<u8>>],
    /// Problems of the report itself (unreadable files, a plot that failed).
    pub notes: &'a [String],
    /// The SLA searches of the sessions shown.
    pub sla: &'a [crate::results::sla::SlaFile],
    /// When the page was generated, as text.
    pub generated_at: String,
}

const CSS: &str = r#"
:root { --fg: #1f2328; --muted: #656d76; --line: #d0d7de; --head: #f3f5f7; --warn: #fff4d6;
        --warn-line: #e3b341; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 15px/1.45 "DejaVu Sans", "Segoe UI",
       Helvetica, Arial, sans-serif; color: var(--fg); background: #fff; }
main { max-width: 1560px; margin: 0 auto; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 22px; margin: 36px 0 10px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 17px; margin: 22px 0 8px; }
p.meta { color: var(--muted); margin: 2px 0; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
nav { margin: 14px 0; }
nav a { display: inline-block; margin: 0 6px 6px 0; padding: 3px 10px; border: 1px solid var(--line);
        border-radius: 14px; color: #0b57d0; text-decoration: none; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card b { display: block; font-size: 24px; }
.card.warn { background: var(--warn); border-color: var(--warn-line); }
img.plot { display: block; width: 100%; max-width: 1600px; height: auto; border: 1px solid var(--line);
           border-radius: 6px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: 4px 0 8px; }
th, td { border: 1px solid var(--line); padding: 4px 7px; }
th { background: var(--head); font-weight: 600; text-align: center; }
td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.l { text-align: left; }
td.ci { white-space: nowrap; }
details.engine { margin: 4px 0; }
details.engine svg { max-width: 100%; height: auto; }
tbody tr:nth-child(even) td { background: #fafbfc; }
tr.warn td { background: var(--warn) !important; }
tr.old td { color: var(--muted); font-style: italic; }
td.bad { color: var(--bad); font-weight: 600; }
td.wrap { white-space: normal; max-width: 190px; }
.sw { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px;
      vertical-align: -1px; }
ul.warnings { padding-left: 20px; }
ul.warnings li { margin: 3px 0; }
ul.warnings li.bad { color: var(--bad); }
pre { background: #f6f8fa; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
      overflow-x: auto; margin: 6px 0 12px; }
.muted { color: var(--muted); }
.kv { display: flex; flex-wrap: wrap; gap: 6px; margin: 6px 0 14px; }
.kv span { border: 1px solid var(--line); border-radius: 4px; padding: 2px 8px; background: #f6f8fa;
           font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
.kv b { font-weight: 600; color: #3d4450; margin-right: 6px; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
"#;

/// A warning of one run, for the list at the top.
struct RunWarning {
    bad: bool,
    text: String,
}

fn run_warnings(r: &RunResult) -> Vec<RunWarning> {
    let mut out = Vec::new();
    if let Some(e) = r.error() {
        out.push(RunWarning { bad: true, text: e });
    }
    if r.partial {
        out.push(RunWarning {
            bad: true,
            text: "partial run: interrupted before the end".to_string(),
        });
    }
    // An invalid measurement: each reason with what to change (the result's own one-line
    // warning about it is left out for these).
    let reasons = invalid_reasons(r);
    for reason in &reasons {
        out.push(RunWarning {
            bad: true,
            text: format!(
                "invalid measurement ({}): {}; change: {}",
                reason["check"].as_str().unwrap_or("?"),
                reason["detail"].as_str().unwrap_or("?"),
                reason["advice"].as_str().unwrap_or("?")
            ),
        });
    }
    for w in r.warnings() {
        if !reasons.is_empty() && w.starts_with("INVALID measurement") {
            continue;
        }
        out.push(RunWarning {
            bad: false,
            text: w,
        });
    }
    out
}

/// The reasons of a run's measurement verdict, if it is invalid.
fn invalid_reasons(r: &RunResult) -> Vec<Value> {
    r.results
        .get("measurement")
        .filter(|m| m["valid"] == false)
        .and_then(|m| m["reasons"].as_array().cloned())
        .unwrap_or_default()
}

/// Renders the page.
pub fn render(page: &Page) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("lmbench report — {}", page.suite);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(&title)
    );
    header(&mut h, page);
    warnings_section(&mut h, page);
    super::sla::section(&mut h, page.sla);
    for (i, g) in page.groups.iter().enumerate() {
        workload_section(&mut h, page, i, g);
    }
    baselines_section(&mut h, page);
    files_section(&mut h, page);
    let _ = write!(
        h,
        "<footer>Generated by lmbench {} at {}. Latencies in milliseconds; p50/p90/p99 are \
         exact percentiles (numpy's linear interpolation), per-chunk ITL percentiles come from an \
         HDR histogram.</footer>\n</main>\n</body>\n</html>\n",
        escape(env!("CARGO_PKG_VERSION")),
        escape(&page.generated_at)
    );
    h
}

fn header(h: &mut String, page: &Page) {
    let _ = writeln!(h, "<h1>{}</h1>", escape(page.suite));
    let runs: usize = page.groups.iter().map(|g| g.runs.len()).sum();
    let mut baselines: Vec<&str> = Vec::new();
    for g in page.groups {
        for r in &g.runs {
            if !baselines.contains(&r.baseline_key.as_str()) {
                baselines.push(&r.baseline_key);
            }
        }
    }
    let shown = if page.all {
        format!(
            "All {} sessions in this folder, merged (where several results share a baseline \
             and point, the plots and comparison JSON use the newest).",
            page.shown.len()
        )
    } else {
        let id = page.shown.first().map(String::as_str).unwrap_or("");
        let others = page.sessions.len().saturating_sub(1);
        if others == 0 {
            format!("Session <code>{}</code>.", escape(id))
        } else {
            format!(
                "Session <code>{}</code>; {others} other session{} in this folder not shown \
                 (<code>lmbench report --session ID</code> or <code>--all</code>).",
                escape(id),
                if others == 1 { "" } else { "s" }
            )
        }
    };
    let _ = writeln!(h, "<p class=\"meta\">{shown}</p>");
    let warning_count: usize = page
        .groups
        .iter()
        .flat_map(|g| &g.runs)
        .map(|r| run_warnings(r).len())
        .sum::<usize>()
        + page.notes.len();
    let _ = writeln!(
        h,
        "<div class=\"cards\"><div class=\"card\"><b>{runs}</b>results</div>\
         <div class=\"card\"><b>{}</b>baselines</div><div class=\"card\"><b>{}</b>workloads</div>\
         <div class=\"card{}\"><b>{warning_count}</b>warnings</div></div>",
        baselines.len(),
        page.groups.len(),
        if warning_count > 0 { " warn" } else { "" },
    );
    h.push_str("<nav><a href=\"#warnings\">Warnings</a>");
    for (i, g) in page.groups.iter().enumerate() {
        let _ = write!(h, "<a href=\"#workload-{i}\">{}</a>", escape(&g.workload));
    }
    h.push_str("<a href=\"#baselines\">Baselines</a><a href=\"#files\">Result files</a></nav>\n");
}

fn warnings_section(h: &mut String, page: &Page) {
    h.push_str("<h2 id=\"warnings\">Warnings</h2>\n");
    let mut items = String::new();
    for note in page.notes {
        let _ = writeln!(items, "<li class=\"bad\">{}</li>", escape(note));
    }
    for g in page.groups {
        for (i, r) in g.runs.iter().enumerate() {
            for w in run_warnings(r) {
                let _ = writeln!(
                    items,
                    "<li{}><b>{}</b> · {} · {}: {}</li>",
                    if w.bad { " class=\"bad\"" } else { "" },
                    escape(&g.series[g.series_of[i]].label),
                    escape(&g.workload),
                    escape(&r.point_label()),
                    escape(&w.text)
                );
            }
        }
        if !g.superseded.is_empty() {
            let _ = writeln!(
                items,
                "<li>{} · {} result(s) share a baseline and point with a newer one: the table \
                 lists them (in italics), the plot and comparison JSON use the newest.</li>",
                escape(&g.workload),
                g.superseded.len()
            );
        }
    }
    if items.is_empty() {
        h.push_str(
            "<p>None: no run reported a warning (QPS shortfall, failed requests, send lag, \
             missing usage, token disagreement).</p>\n",
        );
    } else {
        let _ = writeln!(h, "<ul class=\"warnings\">\n{items}</ul>");
    }
}

fn workload_section(h: &mut String, page: &Page, index: usize, g: &WorkloadGroup) {
    let _ = writeln!(
        h,
        "<h2 id=\"workload-{index}\">Workload <code>{}</code></h2>",
        escape(&g.workload)
    );
    match page.pngs.get(index).and_then(Option::as_ref) {
        Some(png) => {
            let _ = writeln!(
                h,
                "<img class=\"plot\" alt=\"{} against QPS: TTFT, ITL, TPOT and output \
                 throughput per baseline\" src=\"data:image/png;base64,{}\">",
                escape(&g.workload),
                base64::engine::general_purpose::STANDARD.encode(png)
            );
        }
        None => h.push_str("<p class=\"muted\">No plot (see the warnings).</p>\n"),
    }
    if g.has_untimed() {
        h.push_str(
            "<p class=\"muted\">Timed trace replays have no QPS: the plot shows them as \
             unconnected markers at 0, the comparison JSON at <code>qps</code> 0.</p>\n",
        );
    }
    if g.measured_x() {
        h.push_str(
            "<p class=\"muted\">Agentic sweeps the new-user interval; its QPS is the measured \
             rate.</p>\n",
        );
    }
    latency_table(h, g);
    steady_table(h, g);
    super::engine::section(h, g, |h, i| row_start(h, g, i));
    load_table(h, page, g);
    h.push_str("<h3>Workload configuration</h3>\n");
    for (i, item) in g.items.iter().enumerate() {
        if g.items.len() > 1 {
            let mut points: Vec<String> = Vec::new();
            for r in g.runs.iter().filter(|r| r.item_config() == *item) {
                let p = r.point_label();
                if !points.contains(&p) {
                    points.push(p);
                }
            }
            let _ = writeln!(
                h,
                "<p>Item {} <span class=\"muted\">(points: {})</span></p>",
                i + 1,
                escape(&points.join(", "))
            );
        }
        key_values(h, item);
    }
}

fn row_start(h: &mut String, g: &WorkloadGroup, i: usize) {
    let r = &g.runs[i];
    let old = g.superseded.contains(&i);
    let warn = !run_warnings(r).is_empty();
    let class = match (old, warn) {
        (true, _) => " class=\"old\"",
        (false, true) => " class=\"warn\"",
        _ => "",
    };
    let s = g.series_of[i];
    let c = series_color(s);
    let _ = write!(
        h,
        "<tr{class}><td class=\"l\" title=\"{}\"><span class=\"sw\" \
         style=\"background:rgb({},{},{})\"></span>{}</td><td>{}</td>",
        escape(&r.file_name()),
        c.0,
        c.1,
        c.2,
        escape(&g.series[s].label),
        escape(&match r.results["repeats"]["n"].as_u64() {
            Some(n) => format!("{} (x{n})", r.point_label()),
            None => r.point_label(),
        })
    );
}

/// A table cell of a metric: the value, or for a point with repeats the mean over them ± the
/// half-width of its 95 % confidence interval (the spread in the cell's title).
fn metric_cell(r: &RunResult, block: &str, stat: &str) -> String {
    let metric = format!("{block}.{stat}");
    let Some(s) = r.spread(&metric) else {
        return format!("<td>{}</td>", num(r.stat(block, stat)));
    };
    let mean = s["mean"].as_f64();
    match r.ci95(&metric) {
        Some((lo, hi)) => format!(
            "<td class=\"ci\" title=\"n={}, sd {}, CV {}, 95 % CI {}–{}\">{} ± {}</td>",
            s["n"],
            num(s["std"].as_f64()),
            num(s["cv"].as_f64()),
            num(Some(lo)),
            num(Some(hi)),
            num(mean),
            num(Some((hi - lo) / 2.0)),
        ),
        None => format!("<td>{}</td>", num(mean)),
    }
}

fn latency_table(h: &mut String, g: &WorkloadGroup) {
    const BLOCKS: [(&str, &str); 4] = [
        ("ttft_ms", "TTFT"),
        ("tpot_ms", "TPOT"),
        ("inter_token_latency_ms", "ITL (per chunk)"),
        ("e2e_latency_ms", "E2E latency"),
    ];
    h.push_str("<h3>Latency (ms)</h3>\n");
    if g.runs.iter().any(|r| r.results.get("repeats").is_some()) {
        h.push_str(
            "<p class=\"muted\">A point run several times (x<i>n</i>) shows the mean over its \
             repeats ± the half-width of the 95 % confidence interval of that mean (Student's \
             t); hover for n, standard deviation and CV. The plots draw the interval as an \
             error bar. In the other tables a repeated point's throughput and achieved QPS are \
             means over its repeats; its other figures (steady state, send lag, failures) are \
             its last repeat's.</p>\n",
        );
    }
    h.push_str(
        "<div class=\"scroll\"><table>\n<thead><tr>\
                <th rowspan=\"2\">Baseline</th><th rowspan=\"2\">QPS</th>",
    );
    for (_, name) in BLOCKS {
        let _ = write!(h, "<th colspan=\"4\">{name}</th>");
    }
    h.push_str("</tr><tr>");
    for _ in BLOCKS {
        h.push_str("<th>mean</th><th>p50</th><th>p90</th><th>p99</th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for i in 0..g.runs.len() {
        let r = &g.runs[i];
        row_start(h, g, i);
        for (block, _) in BLOCKS {
            for stat in ["mean", "median", "p90", "p99"] {
                h.push_str(&metric_cell(r, block, stat));
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

/// The figures over each point's plateau (`results.steady_state`), where any point has them.
fn steady_table(h: &mut String, g: &WorkloadGroup) {
    fn steady(r: &RunResult) -> Option<&Value> {
        r.results.get("steady_state").filter(|s| s.is_object())
    }
    if !g.runs.iter().any(|r| steady(r).is_some()) {
        return;
    }
    h.push_str(
        "<h3>Steady state</h3>\n<p class=\"muted\">From one median E2E latency after the first \
         send to the last send: ramp-up and drain left out.</p>\n<div class=\"scroll\"><table>\n\
         <thead><tr><th>Baseline</th><th>QPS</th><th>window (s)</th><th>requests</th>\
         <th>TTFT p50</th><th>TTFT p99</th><th>E2E p50</th><th>E2E p99</th><th>requests/s</th>\
         <th>output tok/s</th><th>in flight (mean; start → end)</th></tr></thead>\n<tbody>\n",
    );
    for i in 0..g.runs.len() {
        row_start(h, g, i);
        let Some(s) = steady(&g.runs[i]) else {
            h.push_str("<td colspan=\"9\" class=\"muted\">—</td></tr>\n");
            continue;
        };
        let f = |k: &str| s.get(k).and_then(Value::as_f64);
        let stat = |k: &str, q: &str| s.get(k).and_then(|b| b.get(q)).and_then(Value::as_f64);
        let growing = s["growing"] == true;
        let _ = writeln!(
            h,
            "<td>{}–{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td{}>{}; {} → {}{}</td></tr>",
            num(s["window_s"][0].as_f64()),
            num(s["window_s"][1].as_f64()),
            s["requests"].as_u64().unwrap_or(0),
            num(stat("ttft_ms", "median")),
            num(stat("ttft_ms", "p99")),
            num(stat("e2e_latency_ms", "median")),
            num(stat("e2e_latency_ms", "p99")),
            num(f("request_throughput_req_per_s")),
            num(f("output_token_throughput_tok_per_s")),
            if growing { " class=\"bad\"" } else { "" },
            num(f("mean_in_flight")),
            s["in_flight_start"].as_u64().unwrap_or(0),
            s["in_flight_end"].as_u64().unwrap_or(0),
            if growing {
                " (growing: no plateau)"
            } else {
                ""
            },
        );
    }
    h.push_str("</tbody></table></div>\n");
}

fn failures(r: &RunResult) -> String {
    let failed = r.field("failed_requests");
    let causes: Vec<String> = r
        .results
        .get("failures_by_cause")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
                .map(|(k, n)| format!("{k} {n}"))
                .collect()
        })
        .unwrap_or_default();
    match failed {
        Some(f) if causes.is_empty() => format!("{f}"),
        Some(f) => format!("{f} ({})", causes.join(", ")),
        None => "—".to_string(),
    }
}

fn load_table(h: &mut String, page: &Page, g: &WorkloadGroup) {
    h.push_str(
        "<h3>Load and throughput</h3>\n<div class=\"scroll\"><table>\n<thead><tr>\
         <th>Baseline</th><th>QPS</th><th>target QPS</th><th>achieved QPS</th>\
         <th>requests ok</th><th>failed</th><th>output tok/s</th><th>requests/s</th>\
         <th>input tok/s</th><th>send lag p99 (ms)</th><th>cache hit ratio</th>\
         <th>duration (s)</th><th>measurement</th><th>warnings</th>",
    );
    if page.all {
        h.push_str("<th>session</th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for i in 0..g.runs.len() {
        let r = &g.runs[i];
        row_start(h, g, i);
        let shortfall = r
            .results
            .get("qps_shortfall")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let failed = r.field("failed_requests").unwrap_or(0.0) > 0.0;
        let n_warn = run_warnings(r).len();
        let reasons = invalid_reasons(r);
        let verdict = match r.results.get("measurement") {
            None => "—".to_string(),
            Some(_) if reasons.is_empty() => "valid".to_string(),
            Some(_) => format!(
                "INVALID: {}",
                reasons
                    .iter()
                    .filter_map(|x| x["check"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let _ = write!(
            h,
            "<td>{}</td><td{}>{}</td><td>{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td{}>{}</td><td{}>{}</td>",
            num(r.field("target_qps")),
            if shortfall { " class=\"bad\"" } else { "" },
            num(r.field("achieved_qps")),
            r.field("successful_requests")
                .map_or("—".to_string(), |v| v.to_string()),
            if failed { " class=\"bad wrap\"" } else { "" },
            escape(&failures(r)),
            num(r.field("output_token_throughput_tok_per_s")),
            num(r.field("request_throughput_req_per_s")),
            num(r.field("input_token_throughput_tok_per_s")),
            num(r.stat("send_lag_ms", "p99")),
            num(r.field("cache_hit_ratio")),
            num(r.field("benchmark_duration_s")),
            if reasons.is_empty() {
                ""
            } else {
                " class=\"bad wrap\""
            },
            escape(&verdict),
            if n_warn > 0 { " class=\"bad\"" } else { "" },
            n_warn
        );
        if page.all {
            let _ = write!(
                h,
                "<td class=\"l\"><code>{}</code></td>",
                escape(&r.session)
            );
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table></div>\n");
}

/// An object's keys and values as a row of chips (values as compact JSON, strings bare).
fn key_values(h: &mut String, v: &Value) {
    let Some(map) = v.as_object() else {
        let _ = writeln!(h, "<pre>{}</pre>", escape(&v.to_string()));
        return;
    };
    if map.is_empty() {
        h.push_str("<p class=\"muted\">(empty)</p>\n");
        return;
    }
    h.push_str("<div class=\"kv\">");
    for (k, val) in map {
        let text = match val {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let _ = write!(h, "<span><b>{}</b>{}</span>", escape(k), escape(&text));
    }
    h.push_str("</div>\n");
}

fn baselines_section(h: &mut String, page: &Page) {
    h.push_str("<h2 id=\"baselines\">Baselines</h2>\n");
    // (key, type, config), each distinct configuration of a key once.
    let mut seen: Vec<(&str, &str, &Value)> = Vec::new();
    for g in page.groups {
        for r in &g.runs {
            if !seen
                .iter()
                .any(|(k, _, c)| *k == r.baseline_key && **c == r.serving_config)
            {
                seen.push((&r.baseline_key, &r.baseline_type, &r.serving_config));
            }
        }
    }
    for (key, kind, config) in seen {
        let _ = writeln!(
            h,
            "<h3><code>{}</code> <span class=\"muted\">({})</span></h3>",
            escape(key),
            escape(kind)
        );
        key_values(h, config);
    }
}

fn files_section(h: &mut String, page: &Page) {
    h.push_str(
        "<h2 id=\"files\">Result files</h2>\n<div class=\"scroll\"><table>\n<thead><tr>\
         <th>file</th><th>baseline</th><th>workload</th><th>point</th><th>session</th>\
         <th>timestamp</th></tr></thead>\n<tbody>\n",
    );
    for g in page.groups {
        for r in &g.runs {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td>\
                 <td class=\"l\">{}</td><td>{}</td><td class=\"l\"><code>{}</code></td>\
                 <td>{}</td></tr>",
                escape(&r.file_name()),
                escape(&r.baseline_key),
                escape(&g.workload),
                escape(&r.point_label()),
                escape(&r.session),
                escape(&r.timestamp)
            );
        }
    }
    h.push_str("</tbody></table></div>\n");
    if page.sessions.len() > 1 {
        h.push_str(
            "<h3>Sessions in this folder</h3>\n<table><thead><tr><th>session</th>\
             <th>result files</th><th>newest</th><th>shown</th></tr></thead><tbody>\n",
        );
        for s in page.sessions {
            let _ =
                writeln!(
                h,
                "<tr><td class=\"l\"><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&s.id),
                s.files,
                escape(&s.latest_timestamp),
                if page.shown.contains(&s.id) { "yes" } else { "no" }
            );
        }
        h.push_str("</tbody></table>\n");
    }
}
