//! The load generator's own CPU during a point, for the measurement verdict
//! ([`crate::measure::verdict`]): how much CPU time the process used (`getrusage`), and how
//! long the runner's threads were ready to run but waited for a CPU (the kernel's run delay,
//! `/proc/thread-self/schedstat`). Waiting is what turns into send lag: a request that is due
//! while its send thread waits for a CPU leaves late, however little work lmbench has to do.
//!
//! A leaf: it imports nothing of the crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// CPU time (user + system) the whole process has used so far, all threads together.
pub fn process_cpu() -> Option<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_SELF).ok()?;
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    Some(tv(u.user_time()) + tv(u.system_time()))
}

/// How long the calling thread has waited on a run queue so far (ready, not running), from
/// the second field of `/proc/thread-self/schedstat`; `None` where the kernel does not say.
pub fn thread_run_delay() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Run delay summed over the threads that report into it ([`WaitMeter::track`]).
#[derive(Debug, Clone, Default)]
pub struct WaitMeter {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    wait_ns: AtomicU64,
    threads: AtomicU64,
    unknown: AtomicU64,
}

impl WaitMeter {
    /// Starts counting the calling thread's run delay; it is added when the guard is dropped
    /// (on that same thread).
    pub fn track(&self) -> WaitGuard {
        WaitGuard {
            meter: self.clone(),
            start: thread_run_delay(),
        }
    }

    /// Total run delay of the threads whose guards were dropped.
    pub fn waited(&self) -> Duration {
        Duration::from_nanos(self.inner.wait_ns.load(Ordering::Relaxed))
    }

    /// How many threads reported.
    pub fn threads(&self) -> u64 {
        self.inner.threads.load(Ordering::Relaxed)
    }

    /// Whether every thread could read its run delay.
    pub fn known(&self) -> bool {
        self.inner.unknown.load(Ordering::Relaxed) == 0 && self.threads() > 0
    }

    /// The waits so far as a share of `elapsed_s` per thread; `None` where a thread could not
    /// read its run delay.
    pub fn over(&self, elapsed_s: f64) -> Option<CpuWait> {
        let threads = self.threads();
        let total_s = self.waited().as_secs_f64();
        (self.known() && elapsed_s > 0.0).then(|| CpuWait {
            threads,
            total_s,
            share: total_s / (elapsed_s * threads as f64),
        })
    }
}

/// How long a set of threads were ready to run but waited for a CPU ([`WaitMeter::over`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CpuWait {
    /// Threads counted.
    pub threads: u64,
    /// Their waits, summed, in seconds.
    pub total_s: f64,
    /// `total_s` over the elapsed time and the threads: the share of its time an average
    /// thread spent waiting for a CPU.
    pub share: f64,
}

/// Adds the thread's run delay since [`WaitMeter::track`] when dropped.
pub struct WaitGuard {
    meter: WaitMeter,
    start: Option<Duration>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let inner = &self.meter.inner;
        inner.threads.fetch_add(1, Ordering::Relaxed);
        match (self.start, thread_run_delay()) {
            (Some(a), Some(b)) => {
                let ns = b.saturating_sub(a).as_nanos() as u64;
                inner.wait_ns.fetch_add(ns, Ordering::Relaxed);
            }
            _ => {
                inner.unknown.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_grows_with_work() {
        let a = process_cpu().unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(50) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let b = process_cpu().unwrap();
        assert!(b > a, "{a:?} -> {b:?}");
    }

    /// Two threads pinned to one CPU, both busy: each waits for the other about half the time.
    #[test]
    fn threads_sharing_one_cpu_wait_for_it() {
        let meter = WaitMeter::default();
        let cpu = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
            .ok()
            .and_then(|set| {
                (0..nix::sched::CpuSet::count()).find(|&c| set.is_set(c).unwrap_or(false))
            })
            .expect("a CPU this process may run on");
        let spin = |meter: WaitMeter| {
            std::thread::spawn(move || {
                let mut one = nix::sched::CpuSet::new();
                one.set(cpu).unwrap();
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &one).unwrap();
                let _g = meter.track();
                let t = std::time::Instant::now();
                let mut x = 0u64;
                while t.elapsed() < Duration::from_millis(400) {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                std::hint::black_box(x);
            })
        };
        let a = spin(meter.clone());
        let b = spin(meter.clone());
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(meter.threads(), 2);
        assert!(meter.known(), "no run delay in /proc/thread-self/schedstat");
        // 2 × 400 ms of wall time on one CPU: together at least ~300 ms spent waiting.
        let waited = meter.waited();
        assert!(waited > Duration::from_millis(200), "waited {waited:?}");
    }
}
