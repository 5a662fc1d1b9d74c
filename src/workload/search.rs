//! An item's SLA search: instead of a fixed list of points, the highest load that meets its
//! `SLA` (`measure::sla`), found by probing.
//!
//! `SEARCH: {low, high, precision, over, max_probes}` sets the range of the searched key
//! (`over`: `QPS`, the default, or `MAX_CONCURRENCY` for items that cap requests in flight),
//! and [`Bisection`] picks the probes: `low` first (if it misses the SLA, no load in the range
//! meets it), then `high` (if it meets the SLA, the answer is at least `high`), then the
//! geometric middle of the bracket between the highest load that met the SLA and the lowest
//! that did not, until the two are within `precision` of each other (relative: the bracket's
//! top is at most `(1 + precision)` times its bottom) or one apart for a whole-number key.
//! Loads are rounded to three significant figures (whole numbers for concurrency) so result
//! files have readable names. Probing the top early costs little: a probe over capacity stops
//! early ([`crate::measure::sla::Watch`]).
//!
//! The probe budget ([`SearchSpec::max_probes`]) is the worst case over every outcome, computed
//! by playing the bisection through; `plan` shows it.

use serde_json::{json, Map, Value};

use crate::config::{Checked, Invalid, Item, O};
use crate::measure::sla::Sla;

/// The key a search varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// The request rate.
    Qps,
    /// The cap on requests in flight (VLLMBenchmark's `MAX_CONCURRENCY`).
    MaxConcurrency,
}

impl Axis {
    /// The key's name.
    pub fn key(self) -> &'static str {
        match self {
            Axis::Qps => "QPS",
            Axis::MaxConcurrency => "MAX_CONCURRENCY",
        }
    }

    /// Whether its values are whole numbers.
    pub fn integer(self) -> bool {
        self == Axis::MaxConcurrency
    }
}

/// A validated `SLA` + `SEARCH`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpec {
    /// What is searched.
    pub axis: Axis,
    /// The lowest load probed.
    pub low: f64,
    /// The highest load probed.
    pub high: f64,
    /// Relative width of the final bracket.
    pub precision: f64,
    /// Most probes to run (default: the bisection's worst case).
    pub max_probes: usize,
    /// What a probe must meet.
    pub sla: Sla,
}

/// Default `precision`.
const DEFAULT_PRECISION: f64 = 0.05;
/// Smallest `precision` accepted (finer steps are below the noise of any run).
const MIN_PRECISION: f64 = 0.001;

impl SearchSpec {
    /// Checks `SLA` and `SEARCH` of an item (both or neither); `None` when neither is given.
    pub fn check(
        sla: &O<Map<String, Value>>,
        search: &O<Map<String, Value>>,
        c: &mut Item<'_, '_>,
    ) -> Checked<Option<SearchSpec>> {
        let sla = Sla::check(sla, "SLA", c);
        let Some(s) = search.as_ref() else {
            if let Ok(Some(_)) = sla {
                c.push_item("SLA needs SEARCH: {low, high} (the range of loads to search)");
                return Err(Invalid);
            }
            return sla.map(|_| None);
        };
        let mut ok = true;
        let mut bad = |c: &mut Item<'_, '_>, key: &str, msg: String| {
            c.push(Some(&s.referenced), &format!("SEARCH.{key}"), msg);
            ok = false;
        };
        let num = |k: &str| {
            s.value
                .get(k)
                .map(|v| (v, v.as_f64().filter(|x| x.is_finite())))
        };
        let mut axis = Axis::Qps;
        let mut low = None;
        let mut high = None;
        let mut precision = DEFAULT_PRECISION;
        let mut max_probes = None;
        for (k, v) in &s.value {
            match k.as_str() {
                "over" => match v.as_str() {
                    Some("QPS") => axis = Axis::Qps,
                    Some("MAX_CONCURRENCY") => axis = Axis::MaxConcurrency,
                    _ => bad(c, k, format!("expected QPS or MAX_CONCURRENCY, got {v}")),
                },
                "low" | "high" => match num(k) {
                    Some((_, Some(x))) if x > 0.0 => {
                        if k == "low" {
                            low = Some(x);
                        } else {
                            high = Some(x);
                        }
                    }
                    _ => bad(c, k, format!("expected a positive number, got {v}")),
                },
                "precision" => match num(k) {
                    Some((_, Some(x))) if (MIN_PRECISION..=1.0).contains(&x) => precision = x,
                    _ => bad(
                        c,
                        k,
                        format!("expected a relative width from {MIN_PRECISION} to 1, got {v}"),
                    ),
                },
                "max_probes" => match v.as_u64().filter(|n| *n >= 2) {
                    Some(n) => max_probes = Some(n as usize),
                    None => bad(
                        c,
                        k,
                        format!("expected a whole number of at least 2, got {v}"),
                    ),
                },
                _ => bad(
                    c,
                    k,
                    "unknown key; expected low, high, precision, over or max_probes".into(),
                ),
            }
        }
        for (k, v) in [("low", low), ("high", high)] {
            if v.is_none() && !s.value.contains_key(k) {
                bad(c, k, "missing required key".into());
            }
        }
        let sla = match sla {
            Ok(Some(sla)) => Some(sla),
            Ok(None) => {
                c.push_item(
                    "SEARCH needs SLA: the limits a load must meet (e.g. ttft_p99_ms: 500)",
                );
                None
            }
            Err(Invalid) => None,
        };
        let (Some(low), Some(high), Some(sla), true) = (low, high, sla, ok) else {
            return Err(Invalid);
        };
        if axis.integer() && (low.fract() != 0.0 || high.fract() != 0.0) {
            c.push(
                Some(&s.referenced),
                "SEARCH",
                format!("MAX_CONCURRENCY is a whole number: low and high must be too, got {low} and {high}"),
            );
            return Err(Invalid);
        }
        if high <= low {
            c.push(
                Some(&s.referenced),
                "SEARCH.high",
                format!("expected more than low ({low}), got {high}"),
            );
            return Err(Invalid);
        }
        let mut spec = SearchSpec {
            axis,
            low,
            high,
            precision,
            max_probes: 0,
            sla,
        };
        let worst = spec.worst_case_probes();
        spec.max_probes = max_probes.map_or(worst, |m| m.min(worst));
        Ok(Some(spec))
    }

    /// The most probes the bisection can take, over every sequence of outcomes.
    pub fn worst_case_probes(&self) -> usize {
        fn deepest(b: &Bisection) -> usize {
            match b.next() {
                None => b.probes,
                Some(v) => {
                    let mut pass = b.clone();
                    pass.record(v, true);
                    let mut fail = b.clone();
                    fail.record(v, false);
                    deepest(&pass).max(deepest(&fail))
                }
            }
        }
        deepest(&Bisection::new(self))
    }

    /// `SEARCH` as validated (for the plan and the `_sla.json`).
    pub fn to_json(&self) -> Value {
        json!({
            "over": self.axis.key(),
            "low": self.low,
            "high": self.high,
            "precision": self.precision,
            "max_probes": self.max_probes,
        })
    }
}

/// Where a search stands or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Still probing.
    Searching,
    /// The highest load meeting the SLA is known within the precision.
    Found,
    /// Even `low` misses the SLA.
    BelowLow,
    /// `high` meets the SLA: the limit is at least `high`.
    AtLeastHigh,
    /// `max_probes` ran out before the bracket was narrow enough.
    BudgetSpent,
}

/// The probes of one search (see the module's header).
#[derive(Debug, Clone)]
pub struct Bisection {
    axis: Axis,
    low: f64,
    high: f64,
    precision: f64,
    max_probes: usize,
    /// Probes recorded.
    pub probes: usize,
    /// The highest load that met the SLA.
    pub best_pass: Option<f64>,
    /// The lowest load that did not.
    pub lowest_fail: Option<f64>,
}

impl Bisection {
    /// A search over `spec`'s range.
    pub fn new(spec: &SearchSpec) -> Bisection {
        Bisection {
            axis: spec.axis,
            low: spec.low,
            high: spec.high,
            precision: spec.precision,
            max_probes: if spec.max_probes == 0 {
                usize::MAX
            } else {
                spec.max_probes
            },
            probes: 0,
            best_pass: None,
            lowest_fail: None,
        }
    }

    /// Where the search stands.
    pub fn status(&self) -> Status {
        match (self.best_pass, self.lowest_fail) {
            (None, Some(f)) if f <= self.low => Status::BelowLow,
            (Some(p), _) if p >= self.high => Status::AtLeastHigh,
            (Some(p), Some(f)) if self.narrow(p, f) => Status::Found,
            _ if self.probes >= self.max_probes => Status::BudgetSpent,
            _ => Status::Searching,
        }
    }

    fn narrow(&self, pass: f64, fail: f64) -> bool {
        fail <= pass * (1.0 + self.precision) + 1e-9 || (self.axis.integer() && fail - pass <= 1.0)
    }

    /// The next load to probe; `None` once the search is over.
    pub fn next(&self) -> Option<f64> {
        if self.status() != Status::Searching {
            return None;
        }
        match (self.best_pass, self.lowest_fail) {
            (None, None) => Some(self.low),
            (Some(_), None) => Some(self.high),
            (Some(p), Some(f)) => self.middle(p, f),
            // Only `low` failing ends the search; nothing else probes below a pass.
            (None, Some(_)) => None,
        }
    }

    /// Records a probe's outcome.
    pub fn record(&mut self, load: f64, pass: bool) {
        self.probes += 1;
        if pass {
            // A pass above a failure (noise at the edge) does not move the bracket's bottom
            // past its top.
            if self.lowest_fail.is_none_or(|f| load < f) {
                self.best_pass = Some(self.best_pass.map_or(load, |p| p.max(load)));
            }
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(load, |f| f.min(load)));
        }
    }

    /// The geometric middle of `(pass, fail)`, rounded (see the module's header) but strictly
    /// inside.
    fn middle(&self, pass: f64, fail: f64) -> Option<f64> {
        let mid = (pass * fail).sqrt();
        if self.axis.integer() {
            let m = mid.round().clamp(pass + 1.0, fail - 1.0);
            return (m > pass && m < fail).then_some(m);
        }
        (3..12)
            .map(|digits| round_sig(mid, digits))
            .find(|m| *m > pass && *m < fail)
    }
}

/// `x` rounded to `digits` significant figures.
fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(axis: Axis, low: f64, high: f64, precision: f64) -> SearchSpec {
        let mut s = SearchSpec {
            axis,
            low,
            high,
            precision,
            max_probes: 0,
            sla: Sla::default(),
        };
        s.max_probes = s.worst_case_probes();
        s
    }

    /// Runs a search against a load that passes up to `limit`.
    fn search(s: &SearchSpec, limit: f64) -> (Bisection, Vec<f64>) {
        let mut b = Bisection::new(s);
        let mut probed = Vec::new();
        while let Some(v) = b.next() {
            probed.push(v);
            b.record(v, v <= limit);
        }
        (b, probed)
    }

    #[test]
    fn bisection_finds_the_limit_within_the_precision() {
        let s = spec(Axis::Qps, 0.5, 64.0, 0.05);
        for limit in [0.7, 3.3, 9.99, 10.0, 17.2, 50.0, 63.0] {
            let (b, probed) = search(&s, limit);
            assert_eq!(b.status(), Status::Found, "{limit}: {probed:?}");
            let (p, f) = (b.best_pass.unwrap(), b.lowest_fail.unwrap());
            assert!(p <= limit && f > limit, "{limit}: {p}..{f}");
            assert!(f <= p * 1.05 + 1e-9, "{limit}: {p}..{f}");
            assert!(probed.len() <= s.max_probes, "{limit}: {probed:?}");
            assert_eq!(&probed[..2], &[0.5, 64.0]);
            // Rounded to three significant figures.
            for v in &probed {
                assert_eq!(*v, round_sig(*v, 3), "{probed:?}");
            }
        }
    }

    #[test]
    fn the_ends_of_the_range_decide_at_once() {
        let s = spec(Axis::Qps, 1.0, 8.0, 0.1);
        let (b, probed) = search(&s, 0.5);
        assert_eq!((b.status(), probed), (Status::BelowLow, vec![1.0]));
        let (b, probed) = search(&s, 100.0);
        assert_eq!((b.status(), probed), (Status::AtLeastHigh, vec![1.0, 8.0]));
    }

    #[test]
    fn concurrency_is_searched_in_whole_numbers() {
        let s = spec(Axis::MaxConcurrency, 1.0, 64.0, 0.01);
        for limit in [1.0, 2.0, 7.0, 33.0, 63.0] {
            let (b, probed) = search(&s, limit);
            assert_eq!(b.status(), Status::Found, "{probed:?}");
            assert_eq!(b.best_pass, Some(limit), "{probed:?}");
            assert_eq!(b.lowest_fail, Some(limit + 1.0), "{probed:?}");
            assert!(probed.iter().all(|v| v.fract() == 0.0), "{probed:?}");
            assert!(probed.len() <= s.max_probes);
        }
    }

    #[test]
    fn the_budget_is_the_worst_case_and_fewer_than_a_dense_scan() {
        let s = spec(Axis::Qps, 0.5, 64.0, 0.05);
        // 2 ends + log2(ln(128)/ln(1.05)) ≈ 6.6 halvings, rounding aside.
        assert!((8..=10).contains(&s.max_probes), "{}", s.max_probes);
        let dense = (64f64 / 0.5).ln() / 1.05f64.ln();
        assert!(
            (s.max_probes as f64) < dense / 10.0,
            "{} vs {dense}",
            s.max_probes
        );
        let mut worst = 0;
        for i in 0..400 {
            let limit = 0.5 * (128f64).powf(i as f64 / 400.0);
            worst = worst.max(search(&s, limit).1.len());
        }
        assert!(worst <= s.max_probes, "{worst} > {}", s.max_probes);
        let capped = SearchSpec {
            max_probes: 4,
            ..s.clone()
        };
        let (b, probed) = search(&capped, 10.0);
        assert_eq!((b.status(), probed.len()), (Status::BudgetSpent, 4));
    }

    #[test]
    fn a_pass_above_a_failure_does_not_cross_the_bracket() {
        let s = spec(Axis::Qps, 1.0, 16.0, 0.05);
        let mut b = Bisection::new(&s);
        b.record(1.0, true);
        b.record(16.0, false);
        b.record(4.0, false);
        b.record(8.0, true);
        assert_eq!((b.best_pass, b.lowest_fail), (Some(1.0), Some(4.0)));
        assert_eq!(b.next(), Some(2.0));
    }
}
