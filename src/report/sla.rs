//! The SLA searches of `report.html`: for each `<WORKLOAD>_sla.json` of the sessions shown,
//! per baseline the highest load that met the SLA, how the search ended and the limit that
//! bound, then every probe with its figure against the limit and whether it stopped early.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::text::{escape, num};
use crate::results::sla::{SearchResult, SlaFile};
use crate::results::SLA_SUFFIX;

/// The `_sla.json` files in `dir` of the sessions in `shown`, by file name. Unreadable ones
/// are named in `notes`.
pub fn read(dir: &Path, shown: &[String], notes: &mut Vec<String>) -> Vec<SlaFile> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(SLA_SUFFIX) && !n.starts_with('.'))
        })
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        match SlaFile::read(&p) {
            Ok(f) if shown.contains(&f.session_id) => out.push(f),
            Ok(_) => {}
            Err(e) => notes.push(format!("{} was not read: {e}", p.display())),
        }
    }
    out
}

/// The load as the key writes it.
fn load(s: &SearchResult, v: Option<f64>) -> String {
    match v {
        Some(x) if s.over == "MAX_CONCURRENCY" => format!("{x:.0}"),
        Some(x) => format!("{x}"),
        None => "none".into(),
    }
}

fn status_text(s: &SearchResult) -> String {
    let v = serde_json::to_value(s.status).unwrap_or(Value::Null);
    let status = v.as_str().unwrap_or("?").replace('_', " ");
    match &s.error {
        Some(e) => format!("{status} ({e})"),
        None => status,
    }
}

/// The section, if there is any search.
pub fn section(h: &mut String, files: &[SlaFile]) {
    if files.iter().all(|f| f.searches.is_empty()) {
        return;
    }
    h.push_str(
        "<h2 id=\"sla\">SLA search</h2>\n<p class=\"muted\">The highest load that met the SLA, \
         found by probing: each probe is a run with its own result file; a probe clearly over \
         capacity stopped early. The binding limit is the one the lowest failing load \
         missed.</p>\n",
    );
    for f in files {
        for s in &f.searches {
            let _ = writeln!(
                h,
                "<h3>Workload <code>{}</code> · {} · <code>{}</code></h3>\n<p>SLA <code>{}</code>, \
                 {} from {} to {} (precision {}). <b>Highest {} meeting the SLA: {}</b>; lowest \
                 missing it: {}; binding: <code>{}</code>; {} probe(s), search {}.</p>",
                escape(&f.workload),
                escape(&s.baseline_key),
                escape(&s.item),
                escape(&s.sla.to_string()),
                escape(&s.over),
                num(s.search["low"].as_f64()),
                num(s.search["high"].as_f64()),
                num(s.search["precision"].as_f64()),
                escape(&s.over),
                escape(&load(s, s.max_load)),
                escape(&load(s, s.lowest_failing_load)),
                escape(s.binding.as_deref().unwrap_or("—")),
                s.probes.len(),
                escape(&status_text(s)),
            );
            h.push_str(
                "<div class=\"scroll\"><table>\n<thead><tr><th>#</th><th>load</th>\
                 <th>SLA</th><th>binding limit</th><th>value</th><th>limit</th>\
                 <th>measurement</th><th>stopped early</th><th>result file</th></tr></thead>\n\
                 <tbody>\n",
            );
            for p in &s.probes {
                let binding = p.sla.as_ref().and_then(|v| v.binding.clone());
                let check = p
                    .sla
                    .as_ref()
                    .and_then(|v| v.checks.iter().find(|c| Some(&c.name) == binding.as_ref()));
                let (verdict, class) = match p.pass {
                    Some(true) => ("met", ""),
                    Some(false) => ("missed", " class=\"bad\""),
                    None => ("no result", " class=\"bad\""),
                };
                let stopped = p.sla.as_ref().and_then(|v| v.stopped_early.clone());
                let _ =
                    writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td{class}>{verdict}</td><td><code>{}</code></td>\
                     <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    p.n,
                    escape(&load(s, Some(p.load))),
                    escape(binding.as_deref().unwrap_or("—")),
                    num(check.and_then(|c| c.value)),
                    num(check.map(|c| c.limit)),
                    match p.measurement_valid {
                        Some(true) => "valid",
                        Some(false) => "INVALID",
                        None => "—",
                    },
                    escape(stopped.as_deref().unwrap_or("—")),
                    escape(p.result_file.as_deref().or(p.error.as_deref()).unwrap_or("—")),
                );
            }
            h.push_str("</tbody></table></div>\n");
        }
    }
}
