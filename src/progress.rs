//! Live progress on stderr while a run is under way: position in the suite (baseline,
//! workload, sweep point), elapsed time and ETA, requests finished / in flight / failed,
//! achieved vs target QPS, and send lag. Drawn with indicatif, which hides itself when stderr
//! is not a terminal (CI logs stay clean; the runner's periodic log lines remain).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters a run updates as it goes (shared with the display).
#[derive(Debug, Default)]
pub struct RunProgress {
    /// Requests sent.
    pub sent: AtomicU64,
    /// Requests finished (successfully or not).
    pub finished: AtomicU64,
    /// Requests failed.
    pub failed: AtomicU64,
    /// Recent send lags in µs (a bounded window, for a live p99).
    lags_us: Mutex<Vec<u64>>,
}

/// Most recent send lags kept for the live p99.
const LAG_WINDOW: usize = 2048;

impl RunProgress {
    /// Record one finished request's send lag.
    pub fn record_lag(&self, lag_s: f64) {
        if let Ok(mut v) = self.lags_us.lock() {
            if v.len() >= LAG_WINDOW {
                v.remove(0);
            }
            v.push((lag_s.max(0.0) * 1e6) as u64);
        }
    }

    fn lag_p99_ms(&self) -> Option<f64> {
        let mut v = self.lags_us.lock().ok()?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let i = ((v.len() - 1) as f64 * 0.99).round() as usize;
        Some(v[i] as f64 / 1000.0)
    }
}

/// What the display shows about the current run.
#[derive(Debug, Clone)]
pub struct RunLabel {
    /// `[3/12] key workload QPS=2`.
    pub title: String,
    /// Target QPS, if any.
    pub target_qps: Option<f64>,
    /// Expected seconds of sending for this run, if known.
    pub expected_s: Option<f64>,
    /// Estimated seconds of the runs after this one.
    pub remaining_after_s: f64,
}

/// The live display of one run; dropping it clears the line.
pub struct Display {
    bar: ProgressBar,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

/// True if progress is drawn (stderr is a terminal and `NO_PROGRESS` is unset).
pub fn enabled() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("LMBENCH_NO_PROGRESS").is_none()
}

fn fmt_s(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{:02}:{:02}", s / 60, s % 60)
}

impl Display {
    /// Start showing `label`, reading `counters` four times a second.
    pub fn start(label: RunLabel, counters: Arc<RunProgress>) -> Display {
        let bar = if enabled() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = if bar.is_hidden() {
            None
        } else {
            let bar = bar.clone();
            let stop = stop.clone();
            Some(std::thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    bar.set_message(line(&label, &counters, start.elapsed().as_secs_f64()));
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(250));
                }
            }))
        };
        Display { bar, stop, ticker }
    }
}

/// The status line.
pub fn line(label: &RunLabel, c: &RunProgress, elapsed_s: f64) -> String {
    let sent = c.sent.load(Ordering::Relaxed);
    let finished = c.finished.load(Ordering::Relaxed);
    let failed = c.failed.load(Ordering::Relaxed);
    let in_flight = sent.saturating_sub(finished);
    let rate = if elapsed_s > 0.5 {
        sent as f64 / elapsed_s
    } else {
        0.0
    };
    let eta = label
        .expected_s
        .map(|e| (e - elapsed_s).max(0.0) + label.remaining_after_s)
        .map(|s| format!(", suite ETA {}", fmt_s(s)))
        .unwrap_or_default();
    let target = label
        .target_qps
        .map(|t| format!("{t}"))
        .unwrap_or_else(|| "-".into());
    let lag = c
        .lag_p99_ms()
        .map(|l| format!("{l:.1} ms"))
        .unwrap_or_else(|| "-".into());
    format!(
        "{} | {}{eta} | done {finished}, in flight {in_flight}, failed {failed} | {rate:.2} of {target} QPS | send lag p99 {lag}",
        label.title,
        fmt_s(elapsed_s),
    )
}

impl Drop for Display {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_has_the_figures() {
        let c = RunProgress::default();
        c.sent.store(10, Ordering::Relaxed);
        c.finished.store(7, Ordering::Relaxed);
        c.failed.store(1, Ordering::Relaxed);
        for lag in [0.001, 0.002, 0.003] {
            c.record_lag(lag);
        }
        let label = RunLabel {
            title: "[2/6] sim_a synthetic QPS=2".into(),
            target_qps: Some(2.0),
            expected_s: Some(10.0),
            remaining_after_s: 20.0,
        };
        let l = line(&label, &c, 5.0);
        assert!(
            l.starts_with("[2/6] sim_a synthetic QPS=2 | 00:05, suite ETA 00:25"),
            "{l}"
        );
        assert!(l.contains("done 7, in flight 3, failed 1"), "{l}");
        assert!(l.contains("2.00 of 2 QPS"), "{l}");
        assert!(l.contains("send lag p99 3.0 ms"), "{l}");
    }

    #[test]
    fn hidden_without_a_terminal() {
        // Test runs capture stderr, so nothing is drawn and dropping is immediate.
        let d = Display::start(
            RunLabel {
                title: "x".into(),
                target_qps: None,
                expected_s: None,
                remaining_after_s: 0.0,
            },
            Arc::new(RunProgress::default()),
        );
        assert!(d.ticker.is_none());
    }
}
