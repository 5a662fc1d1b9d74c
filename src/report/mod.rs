//! Reports over a suite folder: per workload `<WORKLOAD>_comparison.json` (LMBench's shape) and
//! `<WORKLOAD>_comparison.png`, and one self-contained `report.html`.
//!
//! LMBench's visualizer mixes every session ever run under a suite name and parses baseline
//! keys out of file names by splitting on `_`. Here a report covers one session by default
//! (`--all` merges them, as LMBench did), and the baseline key comes from the result's own
//! fields ([`load`]). Result files are only read; the comparison files and `report.html` are
//! regenerated (written atomically) on every call.
//!
//! - [`load`] reads result files, chooses sessions, groups into workloads and series;
//! - [`compare`] builds the comparison JSON;
//! - [`plot`] draws the comparison PNG (plotters, embedded DejaVu Sans);
//! - [`html`] renders `report.html`, with the SLA searches of `<WORKLOAD>_sla.json` from `sla`
//!   and the engine's metrics over time from `engine`.
//!
//! The `lmbench report` command itself (printing the files, the exit code) is in `commands`.

pub mod compare;
mod engine;
pub mod html;
pub mod load;
pub mod plot;
mod sla;
pub mod text;

use std::path::{Path, PathBuf};

pub use crate::results::is_result_file;
pub use load::Selection;

use crate::files::Existing;
use load::{SelectError, WorkloadGroup};

/// Name of the HTML report in a suite folder.
pub const REPORT_FILE: &str = "report.html";

/// Why no report could be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The suite folder does not exist (or is not a folder).
    #[error("{} does not exist or is not a folder", .0.display())]
    NotAFolder(PathBuf),
    /// The folder holds no readable result file.
    #[error("no result files in {}", .0.display())]
    NoResults(PathBuf),
    /// No result file carries the requested session id.
    #[error("session {id} not found in {}; sessions there: {known}", dir.display())]
    UnknownSession {
        /// The id asked for.
        id: String,
        /// The folder.
        dir: PathBuf,
        /// The ids found, comma-separated.
        known: String,
    },
    /// The folder could not be listed.
    #[error("cannot read {}: {source}", dir.display())]
    Read {
        /// The folder.
        dir: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl ReportError {
    /// True when the input was bad (no such folder, no result files, an unknown session)
    /// rather than a failure to read it.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, ReportError::Read { .. })
    }
}

/// What [`generate`] did.
#[derive(Debug, Default)]
pub struct Generated {
    /// Files written, in order: per workload the JSON and the PNG, then `report.html`.
    pub written: Vec<PathBuf>,
    /// Files that could not be written or drawn (the others were still written).
    pub errors: Vec<String>,
    /// The sessions reported, oldest first.
    pub sessions: Vec<String>,
}

/// Writes the comparison files of every workload of the selected session(s) and
/// `report.html` into `suite_dir`.
pub fn generate(suite_dir: &Path, selection: &Selection) -> Result<Generated, ReportError> {
    if !suite_dir.is_dir() {
        return Err(ReportError::NotAFolder(suite_dir.to_path_buf()));
    }
    let files = load::read_suite_dir(suite_dir).map_err(|source| ReportError::Read {
        dir: suite_dir.to_path_buf(),
        source,
    })?;
    for s in &files.skipped {
        tracing::warn!("skipping {}: {}", s.path.display(), s.reason);
    }
    let all_sessions = load::sessions(&files.results);
    let (chosen, shown) = load::select(&files.results, selection).map_err(|e| match e {
        SelectError::NoResults => ReportError::NoResults(suite_dir.to_path_buf()),
        SelectError::UnknownSession(id, known) => ReportError::UnknownSession {
            id,
            dir: suite_dir.to_path_buf(),
            known: known.join(", "),
        },
    })?;
    let groups = load::group(&chosen, &shown);
    let suite = chosen
        .iter()
        .map(|r| r.suite.as_str())
        .find(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            suite_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
    let all = matches!(selection, Selection::All);

    let mut out = Generated {
        sessions: shown.clone(),
        ..Generated::default()
    };
    let mut notes: Vec<String> = files
        .skipped
        .iter()
        .map(|s| format!("{} was not read: {}", s.path.display(), s.reason))
        .collect();
    let font = plot::ensure_font();
    let mut pngs: Vec<Option<Vec<u8>>> = Vec::new();
    for g in &groups {
        let base = crate::results::file_name_part(&g.workload);
        let json_path = suite_dir.join(format!("{base}_comparison.json"));
        match write_json(&json_path, &compare::comparison_json(g)) {
            Ok(()) => out.written.push(json_path),
            Err(e) => out
                .errors
                .push(format!("cannot write {}: {e}", json_path.display())),
        }
        let png_path = suite_dir.join(format!("{base}_comparison.png"));
        let drawn = font
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(|()| {
                plot::write_png(
                    &png_path,
                    g,
                    &format!("{suite}: {}", g.workload),
                    &subtitle(g, &shown, all),
                    plot::FONT_FAMILY,
                )
            });
        match drawn.and_then(|()| Ok(std::fs::read(&png_path)?)) {
            Ok(bytes) => {
                out.written.push(png_path);
                pngs.push(Some(bytes));
            }
            Err(e) => {
                let msg = format!("cannot draw {}: {e:#}", png_path.display());
                notes.push(msg.clone());
                out.errors.push(msg);
                pngs.push(None);
            }
        }
    }

    let sla = sla::read(suite_dir, &shown, &mut notes);
    let page = html::Page {
        suite: &suite,
        shown: &shown,
        sessions: &all_sessions,
        all,
        groups: &groups,
        pngs: &pngs,
        notes: &notes,
        sla: &sla,
        generated_at: chrono::Local::now()
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
    };
    let html_path = suite_dir.join(REPORT_FILE);
    match crate::files::write_atomic(
        &html_path,
        html::render(&page).as_bytes(),
        Existing::Replace,
    ) {
        Ok(()) => out.written.push(html_path),
        Err(e) => out
            .errors
            .push(format!("cannot write {}: {e}", html_path.display())),
    }
    Ok(out)
}

fn subtitle(g: &WorkloadGroup, shown: &[String], all: bool) -> String {
    let runs = g.runs.len();
    let what = if all {
        format!("{} sessions merged", shown.len())
    } else {
        format!(
            "session {}",
            shown.first().map(String::as_str).unwrap_or("")
        )
    };
    format!(
        "{what}   ·   {runs} result{}   ·   {} baseline{}",
        if runs == 1 { "" } else { "s" },
        g.series.len(),
        if g.series.len() == 1 { "" } else { "s" }
    )
}

/// `value` as pretty JSON (LMBench's 2-space indent) with a final newline, written atomically.
fn write_json(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    crate::files::write_atomic(path, &bytes, Existing::Replace)
}

/// Write `<WORKLOAD>_comparison.json` and `.png` for one session of a suite folder (the newest
/// when `session` is None) and `report.html`; returns the files written. A folder with no
/// result of that session (every run failed before writing one) is not an error: nothing is
/// written and a warning is logged. Result files are never touched.
pub fn write_suite(suite_dir: &Path, session: Option<&str>) -> anyhow::Result<Vec<PathBuf>> {
    let selection = session.map_or(Selection::Newest, |s| Selection::Session(s.to_string()));
    match generate(suite_dir, &selection) {
        Ok(g) if g.errors.is_empty() => Ok(g.written),
        Ok(g) => {
            for f in &g.written {
                tracing::info!("report: {}", f.display());
            }
            Err(anyhow::anyhow!("{}", g.errors.join("; ")))
        }
        Err(e @ (ReportError::NoResults(_) | ReportError::UnknownSession { .. })) => {
            tracing::warn!("no report: {e}");
            Ok(Vec::new())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod repeats_tests;
#[cfg(test)]
mod tests;
