//! Pure statistics used by the summary: exact percentiles over per-request samples (numpy's
//! default "linear" method), the [`Stats`] block written for each per-request metric, an HDR
//! histogram for the pooled per-chunk inter-token latencies, and LMBench's 2-decimal rounding.
//!
//! Nothing here knows about requests; [`super::Aggregator`] feeds it numbers.

use hdrhistogram::Histogram;
use serde::Serialize;

/// The `q`-quantile (`q` in `[0, 1]`, clamped) of an ascending slice of finite values, by
/// linear interpolation between the two nearest ranks at `rank = q·(n−1)`: numpy's default
/// `percentile` method, which LMBench and vLLM's benchmark use (`np.percentile(x, 99)` is
/// `percentile(sorted, 0.99)`).
///
/// Returns NaN for an empty slice; callers that write JSON check for emptiness first.
/// The result is non-decreasing in `q` and lies within `[sorted[0], sorted[n-1]]`.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
    let rank = q * (n - 1) as f64;
    // rank ≤ n−1 because q ≤ 1; the min() guards the float edge anyway.
    let lo = (rank.floor() as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let frac = rank - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    if frac == 0.0 || a == b {
        return a;
    }
    let d = b - a;
    let v = if d.is_finite() {
        a + d * frac
    } else {
        // Only reachable with values near f64::MAX of opposite signs.
        a * (1.0 - frac) + b * frac
    };
    // Clamping keeps the result monotone in q even where `b − a` rounds up (values of very
    // different magnitude); otherwise it is the textbook lerp numpy also computes.
    v.clamp(a, b)
}

/// Distribution of one per-request metric, computed exactly from every sample.
///
/// Key order in JSON is LMBench's (`mean`, `median`, `p99`) followed by the extras. Every value
/// is `null` when there were no samples. `std` is the population standard deviation (numpy's
/// default `ddof=0`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Arithmetic mean.
    pub mean: Option<f64>,
    /// 50th percentile (linear interpolation).
    pub median: Option<f64>,
    /// 99th percentile (linear interpolation).
    pub p99: Option<f64>,
    /// 90th percentile (linear interpolation).
    pub p90: Option<f64>,
    /// Smallest sample.
    pub min: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
    /// Population standard deviation.
    pub std: Option<f64>,
    /// Number of samples the statistics are computed over.
    pub count: u64,
}

impl Stats {
    /// Statistics of `samples` (any order; non-finite values are ignored). Sorts in place.
    pub fn from_samples(samples: &mut Vec<f64>) -> Stats {
        samples.retain(|x| x.is_finite());
        if samples.is_empty() {
            return Stats::default();
        }
        samples.sort_unstable_by(f64::total_cmp);
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        Stats {
            mean: Some(mean),
            median: Some(percentile(samples, 0.5)),
            p99: Some(percentile(samples, 0.99)),
            p90: Some(percentile(samples, 0.90)),
            min: samples.first().copied(),
            max: samples.last().copied(),
            std: Some(var.sqrt()),
            count: samples.len() as u64,
        }
    }
}

/// Distribution of the pooled per-chunk inter-token latency, in milliseconds.
///
/// `mean`, `max` and `count` are exact; the percentiles come from an HDR histogram with
/// microsecond resolution and 3 significant digits (relative error ≤ 0.1 %), reported as the
/// midpoint of the bucket holding the nearest-rank sample. Every value is `null` when no
/// request produced two content chunks.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChunkItlStats {
    /// Exact mean gap.
    pub mean: Option<f64>,
    /// 50th percentile (histogram).
    pub median: Option<f64>,
    /// 90th percentile (histogram).
    pub p90: Option<f64>,
    /// 99th percentile (histogram).
    pub p99: Option<f64>,
    /// Exact largest gap.
    pub max: Option<f64>,
    /// Number of gaps.
    pub count: u64,
}

/// Smallest and largest gap the histogram distinguishes, in microseconds: 1 µs to 10 min.
const HIST_LOW_US: u64 = 1;
const HIST_HIGH_US: u64 = 600_000_000;

/// Accumulates per-chunk gaps in bounded memory (about 170 KiB whatever the sample count).
#[derive(Debug, Clone)]
pub struct GapHistogram {
    hist: Histogram<u64>,
    sum_ms: f64,
    max_ms: f64,
    clamped: u64,
}

impl Default for GapHistogram {
    fn default() -> Self {
        GapHistogram {
            hist: Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, 3)
                .expect("constant histogram bounds are valid"),
            sum_ms: 0.0,
            max_ms: 0.0,
            clamped: 0,
        }
    }
}

impl GapHistogram {
    /// Records one gap in milliseconds. Negative gaps count as zero; gaps beyond 10 minutes
    /// are stored as 10 minutes in the histogram (counted in [`Self::clamped`]) but still
    /// enter the exact mean and max. Non-finite gaps are ignored.
    pub fn record_ms(&mut self, gap_ms: f64) {
        if !gap_ms.is_finite() {
            return;
        }
        let gap_ms = gap_ms.max(0.0);
        let us = (gap_ms * 1000.0).round();
        if us > HIST_HIGH_US as f64 {
            self.clamped += 1;
        }
        self.hist.saturating_record(us as u64);
        self.sum_ms += gap_ms;
        self.max_ms = self.max_ms.max(gap_ms);
    }

    /// Number of gaps recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Number of gaps longer than the histogram's 10-minute ceiling.
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// The summary block.
    pub fn stats(&self) -> ChunkItlStats {
        let count = self.hist.len();
        if count == 0 {
            return ChunkItlStats::default();
        }
        let at = |q: f64| {
            let us = self.hist.median_equivalent(self.hist.value_at_quantile(q));
            Some((us as f64 / 1000.0).min(self.max_ms))
        };
        ChunkItlStats {
            mean: Some(self.sum_ms / count as f64),
            median: at(0.5),
            p90: at(0.90),
            p99: at(0.99),
            max: Some(self.max_ms),
            count,
        }
    }
}

/// Rounds to `decimals` places exactly as Python's `round(x, decimals)` does (correct rounding
/// of the binary value, ties to even), which is what LMBench applies before writing JSON.
/// `-0.0` becomes `0.0`; non-finite values are returned unchanged.
pub fn round_dp(x: f64, decimals: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    // Rust's fixed-precision formatting rounds the exact binary value half-to-even, the same
    // rule Python's round() implements, so the round trip reproduces LMBench's numbers.
    let r: f64 = format!("{x:.decimals$}").parse().unwrap_or(x);
    if r == 0.0 {
        0.0
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_percentile(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let rank = q * (v.len() - 1) as f64;
        let lo = rank.floor() as usize;
        let hi = rank.ceil() as usize;
        v[lo] + (v[hi] - v[lo]) * (rank - lo as f64)
    }

    #[test]
    fn percentile_hand_computed() {
        // LMBench-style TTFT samples in ms.
        let v = [157.0, 210.0, 505.0];
        // rank 0.99·2 = 1.98 → 210 + 0.98·295 = 499.1
        assert!((percentile(&v, 0.99) - 499.1).abs() < 1e-9);
        assert_eq!(percentile(&v, 0.5), 210.0);
        // rank 0.9·2 = 1.8 → 210 + 0.8·295 = 446
        assert!((percentile(&v, 0.9) - 446.0).abs() < 1e-9);
        assert_eq!(percentile(&v, 0.0), 157.0);
        assert_eq!(percentile(&v, 1.0), 505.0);

        // Even count: median interpolates between the middle two.
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.5);
        // rank 0.99·3 = 2.97 → 3 + 0.97 = 3.97
        assert!((percentile(&v, 0.99) - 3.97).abs() < 1e-12);
        // rank 0.25·3 = 0.75
        assert_eq!(percentile(&v, 0.25), 1.75);

        assert_eq!(percentile(&[42.0], 0.99), 42.0);
        assert!(percentile(&[], 0.5).is_nan());
        // Out-of-range q is clamped.
        assert_eq!(percentile(&[1.0, 9.0], 7.0), 9.0);
        assert_eq!(percentile(&[1.0, 9.0], -1.0), 1.0);
    }

    #[test]
    fn stats_hand_computed() {
        let mut v = vec![4.0, 2.0, 8.0, 6.0];
        let s = Stats::from_samples(&mut v);
        assert_eq!(s.count, 4);
        assert_eq!(s.mean, Some(5.0));
        assert_eq!(s.median, Some(5.0));
        assert_eq!(s.min, Some(2.0));
        assert_eq!(s.max, Some(8.0));
        // population variance: (9+1+1+9)/4 = 5
        assert!((s.std.unwrap() - 5f64.sqrt()).abs() < 1e-12);
        // rank 0.9·3 = 2.7 → 6 + 0.7·2 = 7.4
        assert!((s.p90.unwrap() - 7.4).abs() < 1e-12);
        // rank 0.99·3 = 2.97 → 6 + 0.97·2 = 7.94
        assert!((s.p99.unwrap() - 7.94).abs() < 1e-12);

        let empty = Stats::from_samples(&mut Vec::new());
        assert_eq!(empty, Stats::default());
        assert_eq!(empty.mean, None);

        let s = Stats::from_samples(&mut vec![f64::NAN, 3.0, f64::INFINITY]);
        assert_eq!(s.count, 1);
        assert_eq!(s.p99, Some(3.0));
    }

    #[test]
    fn gap_histogram() {
        let mut h = GapHistogram::default();
        assert_eq!(h.stats(), ChunkItlStats::default());
        for g in [10.0, 20.0, 30.0, 40.0] {
            h.record_ms(g);
        }
        h.record_ms(-1.0); // counts as 0
        h.record_ms(f64::NAN); // ignored
        let s = h.stats();
        assert_eq!(s.count, 5);
        assert_eq!(s.mean, Some(20.0));
        assert_eq!(s.max, Some(40.0));
        // nearest rank: ceil(0.5·5) = 3rd smallest = 20 ms
        assert!((s.median.unwrap() - 20.0).abs() <= 0.02);
        assert!((s.p99.unwrap() - 40.0).abs() <= 0.04);
        assert!((s.p90.unwrap() - 40.0).abs() <= 0.04);

        h.record_ms(11.0 * 60.0 * 1000.0);
        assert_eq!(h.clamped(), 1);
        assert_eq!(h.stats().max, Some(660_000.0));
    }

    #[test]
    fn gap_histogram_accuracy() {
        let mut h = GapHistogram::default();
        let mut exact = Vec::new();
        for i in 1..=10_000u32 {
            let g = f64::from(i) * 0.0137 + 3.0;
            h.record_ms(g);
            exact.push(g);
        }
        let s = h.stats();
        let e = Stats::from_samples(&mut exact);
        for (hist, ex) in [(s.median, e.median), (s.p90, e.p90), (s.p99, e.p99)] {
            let (hist, ex) = (hist.unwrap(), ex.unwrap());
            assert!((hist - ex).abs() / ex < 2e-3, "{hist} vs {ex}");
        }
        assert!((s.mean.unwrap() - e.mean.unwrap()).abs() < 1e-9);
    }

    #[test]
    fn round_like_python() {
        // Values checked against CPython's round(x, 2).
        assert_eq!(round_dp(0.125, 2), 0.12);
        assert_eq!(round_dp(0.375, 2), 0.38);
        assert_eq!(round_dp(2.675, 2), 2.67);
        assert_eq!(round_dp(290.665, 2), 290.67);
        assert_eq!(round_dp(1.005, 2), 1.0);
        assert_eq!(round_dp(-0.001, 2).to_bits(), 0.0f64.to_bits());
        assert_eq!(round_dp(11349.296, 2), 11349.3);
        assert!(round_dp(f64::NAN, 2).is_nan());
    }

    proptest! {
        #[test]
        fn percentile_matches_naive(
            values in prop::collection::vec(-1e6f64..1e6, 1..60),
            q in 0.0f64..=1.0,
        ) {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let got = percentile(&sorted, q);
            let want = naive_percentile(&values, q);
            prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "{got} vs {want}");
        }

        #[test]
        fn percentile_monotone_in_q(
            values in prop::collection::vec(
                prop_oneof![-1e300f64..1e300, -1.0f64..1.0, Just(0.0), 1e-300f64..1e-290],
                1..40,
            ),
            q1 in 0.0f64..=1.0,
            q2 in 0.0f64..=1.0,
        ) {
            let mut sorted = values;
            sorted.sort_by(f64::total_cmp);
            let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
            let (a, b) = (percentile(&sorted, lo), percentile(&sorted, hi));
            prop_assert!(a <= b, "p({lo})={a} > p({hi})={b}");
            prop_assert!(a >= sorted[0] && b <= sorted[sorted.len() - 1]);
        }
    }
}
