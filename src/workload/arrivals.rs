//! Arrival processes: when the requests of an open-loop run are due.
//!
//! [`Arrivals`] is vLLM's benchmark arrival process. The first request is due at 0; each gap to
//! the next is drawn from a gamma distribution with shape `burstiness` and scale
//! `1 / (rate · burstiness)`, so the mean gap is `1 / rate` whatever the burstiness and the
//! squared coefficient of variation is `1 / burstiness`. Burstiness 1 is a Poisson process
//! (exponential gaps); below 1 requests come in clumps, above 1 more evenly, and an infinite
//! burstiness gives constant spacing. An infinite rate puts every request at time 0. Due times
//! are absolute (cumulative sums of the gaps), so a late send never shifts later ones.
//!
//! The gaps come from a ChaCha8 generator seeded with the caller's seed: the same seed, rate and
//! burstiness always give the same schedule, on every platform.
//!
//! [`vllm_schedule`] is the schedule vLLM's serving benchmark sends: `n` gaps drawn as above,
//! summed from the first draw (so the first request is due after one gap, not at 0), then every
//! due time scaled by one factor so that the last is due at exactly `n / rate`. The raw sums of
//! a short schedule can miss the nominal rate by a wide margin (seed 0, 30 requests: 1.36×);
//! scaling keeps the shape of the draws and lands the offered rate on the target.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::Gamma;

/// A seeded stream of absolute due times (seconds since the run's start).
pub struct Arrivals {
    rate: f64,
    burstiness: f64,
    rng: ChaCha8Rng,
    gamma: Option<Gamma<f64>>,
    next_due: f64,
}

impl Arrivals {
    /// Arrivals at `rate` requests/s (`f64::INFINITY`: all at once) with gamma shape
    /// `burstiness` (1 = Poisson, `f64::INFINITY` = evenly spaced), drawn from `seed`.
    pub fn new(rate: f64, burstiness: f64, seed: u64) -> Result<Self, String> {
        if rate.is_nan() || rate <= 0.0 {
            return Err(format!("request rate must be positive, got {rate}"));
        }
        if burstiness.is_nan() || burstiness <= 0.0 {
            return Err(format!("burstiness must be positive, got {burstiness}"));
        }
        let gamma = if rate.is_finite() && burstiness.is_finite() {
            Some(
                Gamma::new(burstiness, 1.0 / (rate * burstiness))
                    .map_err(|e| format!("rate {rate}, burstiness {burstiness}: {e}"))?,
            )
        } else {
            None
        };
        Ok(Arrivals {
            rate,
            burstiness,
            rng: ChaCha8Rng::seed_from_u64(seed),
            gamma,
            next_due: 0.0,
        })
    }

    /// The configured rate (requests/s).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The configured gamma shape.
    pub fn burstiness(&self) -> f64 {
        self.burstiness
    }

    /// The next inter-arrival gap in seconds (0 at an infinite rate).
    pub fn next_gap(&mut self) -> f64 {
        match &self.gamma {
            Some(g) => self.rng.sample(g),
            None if self.rate.is_infinite() => 0.0,
            None => 1.0 / self.rate,
        }
    }

    /// The first `n` due times.
    pub fn due_times(rate: f64, burstiness: f64, seed: u64, n: usize) -> Result<Vec<f64>, String> {
        Ok(Arrivals::new(rate, burstiness, seed)?.take(n).collect())
    }
}

impl Iterator for Arrivals {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        let due = self.next_due;
        self.next_due += self.next_gap();
        Some(due)
    }
}

/// vLLM's schedule of `n` requests (see the module docs): cumulative gamma gaps including the
/// first, scaled so that the last request is due at `n / rate`. An infinite rate puts every
/// request at 0; an infinite burstiness gives `1/rate, 2/rate, …, n/rate` (no scaling needed).
pub fn vllm_schedule(rate: f64, burstiness: f64, seed: u64, n: usize) -> Result<Vec<f64>, String> {
    let mut a = Arrivals::new(rate, burstiness, seed)?;
    let mut due = Vec::with_capacity(n);
    let mut t = 0.0;
    for _ in 0..n {
        t += a.next_gap();
        due.push(t);
    }
    if let Some(&last) = due.last() {
        if rate.is_finite() && last > 0.0 {
            let factor = n as f64 / rate / last;
            for d in &mut due {
                *d *= factor;
            }
            // Exactly n/rate, whatever the rounding of the product.
            *due.last_mut().expect("non-empty") = n as f64 / rate;
        }
    }
    Ok(due)
}

/// The rate a schedule actually offers, by lmbench's send-window definition:
/// `n / ((last − first) · n/(n−1)) = (n − 1) / (last − first)`. `None` for fewer than two due
/// times or a zero span (everything at once).
pub fn schedule_rate(due: &[f64]) -> Option<f64> {
    let (first, last) = (due.first()?, due.last()?);
    let span = last - first;
    (due.len() >= 2 && span > 0.0).then(|| (due.len() - 1) as f64 / span)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kolmogorov's asymptotic critical value at α = 0.01: `sqrt(ln(2/α) / 2)`.
    const KS_C_001: f64 = 1.627_6;

    fn ln_gamma(x: f64) -> f64 {
        // Lanczos approximation (g = 7, 9 terms): about 15 significant digits for x > 0.
        const G: f64 = 7.0;
        const C: [f64; 9] = [
            0.999_999_999_999_809_9,
            676.520_368_121_885_1,
            -1_259.139_216_722_402_8,
            771.323_428_777_653_1,
            -176.615_029_162_140_6,
            12.507_343_278_686_905,
            -0.138_571_095_265_720_12,
            9.984_369_578_019_572e-6,
            1.505_632_735_149_311_6e-7,
        ];
        if x < 0.5 {
            let pi = std::f64::consts::PI;
            return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
        }
        let x = x - 1.0;
        let mut a = C[0];
        let t = x + G + 0.5;
        for (i, c) in C.iter().enumerate().skip(1) {
            a += c / (x + i as f64);
        }
        0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
    }

    /// The regularized lower incomplete gamma function `P(a, x)`: a power series below
    /// `a + 1`, the complement of a Lentz continued fraction above.
    fn reg_lower_gamma(a: f64, x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        let log_prefix = a * x.ln() - x - ln_gamma(a);
        if x < a + 1.0 {
            let (mut term, mut sum, mut n) = (1.0 / a, 1.0 / a, a);
            for _ in 0..10_000 {
                n += 1.0;
                term *= x / n;
                sum += term;
                if term.abs() < sum.abs() * 1e-16 {
                    break;
                }
            }
            (sum.ln() + log_prefix).exp()
        } else {
            let tiny = 1e-300;
            let mut b = x + 1.0 - a;
            let mut c = 1.0 / tiny;
            let mut d = 1.0 / b;
            let mut h = d;
            for i in 1..10_000 {
                let an = -(i as f64) * (i as f64 - a);
                b += 2.0;
                d = an * d + b;
                if d.abs() < tiny {
                    d = tiny;
                }
                c = b + an / c;
                if c.abs() < tiny {
                    c = tiny;
                }
                d = 1.0 / d;
                let delta = d * c;
                h *= delta;
                if (delta - 1.0).abs() < 1e-16 {
                    break;
                }
            }
            1.0 - (log_prefix.exp() * h)
        }
    }

    /// The CDF of the gamma distribution with this shape and scale.
    fn gamma_cdf(shape: f64, scale: f64, x: f64) -> f64 {
        reg_lower_gamma(shape, x / scale)
    }

    /// The one-sample Kolmogorov–Smirnov statistic of `samples` against `cdf`.
    fn ks_statistic(samples: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len() as f64;
        s.iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = cdf(x);
                (f - i as f64 / n).max((i + 1) as f64 / n - f)
            })
            .fold(0.0, f64::max)
    }

    fn gaps(rate: f64, burstiness: f64, seed: u64, n: usize) -> Vec<f64> {
        let mut a = Arrivals::new(rate, burstiness, seed).unwrap();
        (0..n).map(|_| a.next_gap()).collect()
    }

    const N: usize = 2000;

    #[test]
    fn incomplete_gamma_matches_closed_forms() {
        for x in [0.01f64, 0.3, 1.0, 2.5, 7.0, 30.0] {
            let exp = 1.0 - (-x).exp();
            assert!((reg_lower_gamma(1.0, x) - exp).abs() < 1e-12, "P(1, {x})");
            let two = 1.0 - (-x).exp() * (1.0 + x);
            assert!((reg_lower_gamma(2.0, x) - two).abs() < 1e-12, "P(2, {x})");
        }
        // P(1/2, x) = erf(√x); erf(1) = 0.8427007929497149.
        assert!((reg_lower_gamma(0.5, 1.0) - 0.842_700_792_949_714_9).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!((ln_gamma(10.0) - 362_880f64.ln()).abs() < 1e-10);
    }

    #[test]
    fn poisson_gaps_pass_a_ks_test_against_the_exponential() {
        let rate = 4.0;
        let g = gaps(rate, 1.0, 0, N);
        let d = ks_statistic(&g, |x| 1.0 - (-rate * x).exp());
        let crit = KS_C_001 / (N as f64).sqrt();
        eprintln!("Poisson: D = {d:.5}, critical value (α = 0.01, n = {N}) = {crit:.5}");
        assert!(d < crit, "D = {d} ≥ {crit}");
    }

    #[test]
    fn gamma_gaps_pass_a_ks_test_against_the_gamma_cdf() {
        let rate = 10.0;
        let crit = KS_C_001 / (N as f64).sqrt();
        for b in [0.5, 2.0] {
            let g = gaps(rate, b, 0, N);
            let scale = 1.0 / (rate * b);
            let d = ks_statistic(&g, |x| gamma_cdf(b, scale, x));
            eprintln!("burstiness {b}: D = {d:.5}, critical value = {crit:.5}");
            assert!(d < crit, "burstiness {b}: D = {d} ≥ {crit}");
            // The test has power: the same gaps are clearly not exponential.
            let d_exp = ks_statistic(&g, |x| 1.0 - (-rate * x).exp());
            eprintln!("burstiness {b} against Exp(rate): D = {d_exp:.5}");
            assert!(d_exp > crit, "burstiness {b} looks Poisson: D = {d_exp}");
        }
    }

    #[test]
    fn gap_mean_and_variance_match_the_gamma_moments() {
        let rate = 5.0;
        for b in [0.5, 1.0, 2.0, 8.0] {
            let g = gaps(rate, b, 3, 20_000);
            let n = g.len() as f64;
            let mean = g.iter().sum::<f64>() / n;
            let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let want_var = 1.0 / (rate * rate * b);
            // Four standard errors of the mean.
            let se = (want_var / n).sqrt();
            assert!((mean - 1.0 / rate).abs() < 4.0 * se, "b {b}: mean {mean}");
            assert!(
                (var / want_var - 1.0).abs() < 0.1,
                "b {b}: variance {var}, want {want_var}"
            );
        }
    }

    #[test]
    fn due_times_are_cumulative_from_zero() {
        let mut a = Arrivals::new(2.0, 1.0, 9).unwrap();
        let mut b = Arrivals::new(2.0, 1.0, 9).unwrap();
        let due: Vec<f64> = a.by_ref().take(50).collect();
        assert_eq!(due[0], 0.0);
        let mut t = 0.0;
        for d in &due {
            assert_eq!(*d, t);
            t += b.next_gap();
        }
        assert!(due.windows(2).all(|w| w[1] >= w[0]));
    }

    #[test]
    fn same_seed_same_schedule_and_different_seeds_differ() {
        let a = Arrivals::due_times(3.0, 0.7, 42, 100).unwrap();
        assert_eq!(a, Arrivals::due_times(3.0, 0.7, 42, 100).unwrap());
        assert_ne!(a, Arrivals::due_times(3.0, 0.7, 43, 100).unwrap());
    }

    #[test]
    fn infinite_rate_sends_everything_at_once_and_infinite_burstiness_is_even() {
        let all = Arrivals::due_times(f64::INFINITY, 1.0, 0, 25).unwrap();
        assert!(all.iter().all(|d| *d == 0.0));
        assert_eq!(schedule_rate(&all), None);
        let even = Arrivals::due_times(4.0, f64::INFINITY, 0, 5).unwrap();
        assert_eq!(even, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(schedule_rate(&even), Some(4.0));
    }

    /// vLLM's rescaling: the last request lands on `n / rate`, the gaps keep the draws' shape
    /// (each scaled by one factor), and the offered rate is the target where the raw sums miss
    /// it (seed 0, 30 requests at 2 req/s: the raw draws offer 1.36× the target).
    #[test]
    fn vllm_schedule_is_rescaled_to_end_at_n_over_rate() {
        let (rate, n) = (2.0, 30);
        let raw: Vec<f64> = {
            let mut a = Arrivals::new(rate, 1.0, 0).unwrap();
            let mut t = 0.0;
            (0..n)
                .map(|_| {
                    t += a.next_gap();
                    t
                })
                .collect()
        };
        let due = vllm_schedule(rate, 1.0, 0, n).unwrap();
        assert_eq!(due.len(), n);
        assert_eq!(*due.last().unwrap(), n as f64 / rate);
        assert!(due[0] > 0.0, "the first request waits one gap, as in vLLM");
        let factor = due[0] / raw[0];
        for (d, r) in due.iter().zip(&raw) {
            assert!(
                (d / r - factor).abs() < 1e-9,
                "one factor for every due time"
            );
        }
        let raw_rate = (n - 1) as f64 / (raw[n - 1] - raw[0]);
        let scaled_rate = n as f64 / due[n - 1];
        assert!((raw_rate / rate - 1.0).abs() > 0.2, "raw draws: {raw_rate}");
        assert!((scaled_rate - rate).abs() < 1e-12);
        assert_eq!(
            vllm_schedule(4.0, f64::INFINITY, 0, 4).unwrap(),
            vec![0.25, 0.5, 0.75, 1.0]
        );
        assert!(vllm_schedule(f64::INFINITY, 1.0, 0, 5)
            .unwrap()
            .iter()
            .all(|d| *d == 0.0));
        assert!(vllm_schedule(1.0, 1.0, 0, 0).unwrap().is_empty());
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(Arrivals::new(0.0, 1.0, 0).is_err());
        assert!(Arrivals::new(-1.0, 1.0, 0).is_err());
        assert!(Arrivals::new(f64::NAN, 1.0, 0).is_err());
        assert!(Arrivals::new(1.0, 0.0, 0).is_err());
    }
}
