//! Engine mode: one scheduler loop that runs simulated forward steps on the real clock.
//!
//! Continuous batching as vLLM does it: up to `maxBatch` sequences run at once, the rest wait
//! in FIFO order and are admitted at step boundaries (that is when their prefix-cache lookup
//! happens). Each step has a token budget of `maxBatchedTokens` (0 = unlimited): every running
//! sequence that has finished its prefill decodes one token, and the remaining budget goes to
//! prompt chunks of the sequences still prefilling, oldest first (chunked prefill). A step
//! costs `decodeBaseUs + decodeUsPerSeq × decoding sequences + prefillUsPerToken × prefill
//! tokens`. At its end every decoding sequence emits a token, and a sequence whose prefill
//! completed emits its first token and inserts its prompt blocks into the prefix cache.
//!
//! Steps follow each other on absolute deadlines (`sleep_until`), so per-step scheduling
//! jitter does not accumulate; after falling far behind (an overloaded host) the schedule
//! restarts from the current time instead of replaying the backlog in a burst.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cache::PrefixCache;
use super::metrics::{add, Metrics};
use super::Shared;

/// How late a step may end before the schedule restarts from now.
const RESYNC_AFTER: Duration = Duration::from_millis(100);

/// A request handed to the engine.
#[derive(Debug)]
pub struct NewSeq {
    /// Prompt tokens.
    pub prompt_len: u64,
    /// Chained hashes of the prompt's full blocks.
    pub blocks: Vec<u64>,
    /// Tokens to generate (at least 1).
    pub output_len: u32,
    /// Where progress goes; dropping the receiver aborts the sequence.
    pub events: mpsc::UnboundedSender<SeqEvent>,
}

/// Progress of one sequence, sent to its HTTP handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqEvent {
    /// Admitted to the batch; this many prompt tokens came from the prefix cache.
    Admitted {
        /// Cached prompt tokens.
        cached_tokens: u64,
    },
    /// One token was generated.
    Token,
}

/// The cost model and limits of a step.
#[derive(Debug, Clone, Copy)]
pub struct StepCosts {
    /// Microseconds per prefilled (uncached) prompt token.
    pub prefill_us_per_token: f64,
    /// Fixed microseconds of every step.
    pub decode_base_us: f64,
    /// Microseconds per decoding sequence in a step.
    pub decode_us_per_seq: f64,
    /// Most sequences admitted at once.
    pub max_batch: usize,
    /// Token budget of a step; 0 = unlimited (whole prompts prefill in one step).
    pub max_batched_tokens: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    None,
    Decode,
    Prefill(u64),
}

#[derive(Debug)]
struct Seq {
    new: NewSeq,
    computed: u64,
    generated: u32,
    work: Work,
}

/// The batching state, advanced one step at a time by [`run`] (and directly by tests).
#[derive(Debug)]
pub struct Scheduler {
    costs: StepCosts,
    waiting: VecDeque<NewSeq>,
    running: Vec<Seq>,
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(costs: StepCosts) -> Self {
        Scheduler {
            costs,
            waiting: VecDeque::new(),
            running: Vec::new(),
        }
    }

    /// Queues a sequence for admission.
    pub fn enqueue(&mut self, seq: NewSeq) {
        self.waiting.push_back(seq);
    }

    /// True when nothing is queued or running.
    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Drops abandoned sequences, admits waiting ones and plans the next step. Returns the
    /// step's duration, or `None` when there is nothing to run.
    pub fn plan(&mut self, cache: &mut PrefixCache, m: &Metrics) -> Option<Duration> {
        self.running.retain(|s| !s.new.events.is_closed());
        self.waiting.retain(|s| !s.events.is_closed());
        while self.running.len() < self.costs.max_batch {
            let Some(new) = self.waiting.pop_front() else {
                break;
            };
            let cached = if cache.enabled() {
                add(&m.prefix_cache_queries, new.prompt_len);
                let hit = cache.lookup(&new.blocks, new.prompt_len);
                add(&m.prefix_cache_hits, hit);
                hit
            } else {
                0
            };
            let admitted = SeqEvent::Admitted {
                cached_tokens: cached,
            };
            if new.events.send(admitted).is_ok() {
                self.running.push(Seq {
                    new,
                    computed: cached,
                    generated: 0,
                    work: Work::None,
                });
            }
        }

        let mut budget = match self.costs.max_batched_tokens {
            0 => u64::MAX,
            n => n,
        };
        let mut decoding = 0u64;
        for s in &mut self.running {
            s.work = if s.computed == s.new.prompt_len {
                decoding += 1;
                Work::Decode
            } else {
                Work::None
            };
        }
        budget = budget.saturating_sub(decoding);
        if decoding == 0 {
            // Progress is guaranteed even with a budget smaller than the batch.
            budget = budget.max(1);
        }
        let mut prefill = 0u64;
        for s in self.running.iter_mut().filter(|s| s.work == Work::None) {
            let chunk = (s.new.prompt_len - s.computed).min(budget);
            if chunk == 0 {
                break;
            }
            budget -= chunk;
            prefill += chunk;
            s.work = Work::Prefill(chunk);
        }
        if decoding == 0 && prefill == 0 {
            return None;
        }
        let c = &self.costs;
        let us = c.decode_base_us
            + c.decode_us_per_seq * decoding as f64
            + c.prefill_us_per_token * prefill as f64;
        Some(Duration::from_nanos((us * 1000.0).round() as u64))
    }

    /// Applies the planned step: emits tokens, caches finished prefills, retires sequences
    /// that are done or abandoned.
    pub fn complete(&mut self, cache: &mut PrefixCache, m: &Metrics) {
        self.running.retain_mut(|s| {
            let emit = match s.work {
                Work::None => false,
                Work::Decode => true,
                Work::Prefill(chunk) => {
                    s.computed += chunk;
                    let done = s.computed == s.new.prompt_len;
                    if done {
                        cache.insert(&s.new.blocks);
                    }
                    done
                }
            };
            s.work = Work::None;
            if !emit {
                return true;
            }
            s.generated += 1;
            add(&m.generation_tokens, 1);
            let delivered = s.new.events.send(SeqEvent::Token).is_ok();
            if s.generated >= s.new.output_len {
                add(&m.requests_finished, 1);
                return false;
            }
            delivered
        });
        m.cache_tokens.store(
            cache.resident_tokens(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn publish(&self, m: &Metrics) {
        use std::sync::atomic::Ordering::Relaxed;
        m.running.store(self.running.len() as u64, Relaxed);
        m.waiting.store(self.waiting.len() as u64, Relaxed);
    }
}

/// The engine loop: runs until `shutdown` or until every submitter is gone. Dropping the loop
/// drops every sequence's sender, which ends their responses.
pub(super) async fn run(
    mut rx: mpsc::UnboundedReceiver<NewSeq>,
    shared: Arc<Shared>,
    costs: StepCosts,
    shutdown: CancellationToken,
) {
    let m = &shared.metrics;
    let mut sched = Scheduler::new(costs);
    let mut start = Instant::now();
    loop {
        if sched.is_idle() {
            sched.publish(m);
            let next = tokio::select! {
                _ = shutdown.cancelled() => None,
                s = rx.recv() => s,
            };
            let Some(seq) = next else { break };
            sched.enqueue(seq);
            start = Instant::now();
        }
        while let Ok(seq) = rx.try_recv() {
            sched.enqueue(seq);
        }
        let step = sched.plan(&mut shared.lock_cache(), m);
        sched.publish(m);
        let Some(step) = step else { continue };
        let deadline = start + step;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => {}
        }
        sched.complete(&mut shared.lock_cache(), m);
        let now = Instant::now();
        start = if now.saturating_duration_since(deadline) > RESYNC_AFTER {
            tracing::debug!(
                late_ms = now.saturating_duration_since(deadline).as_millis() as u64,
                "sim engine fell behind; resynchronising"
            );
            now
        } else {
            deadline
        };
    }
    sched.running.clear();
    sched.waiting.clear();
    sched.publish(m);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::cache::block_hashes;

    const COSTS: StepCosts = StepCosts {
        prefill_us_per_token: 10.0,
        decode_base_us: 1000.0,
        decode_us_per_seq: 100.0,
        max_batch: 2,
        max_batched_tokens: 100,
    };

    fn seq(
        tag: u64,
        prompt_len: u64,
        output_len: u32,
    ) -> (NewSeq, mpsc::UnboundedReceiver<SeqEvent>) {
        let tokens: Vec<u64> = (0..prompt_len).map(|i| tag * 1_000_000 + i).collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let s = NewSeq {
            prompt_len,
            blocks: block_hashes(&tokens, 16),
            output_len,
            events: tx,
        };
        (s, rx)
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<SeqEvent>) -> Vec<SeqEvent> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn us(d: Option<Duration>) -> u64 {
        d.unwrap().as_micros() as u64
    }

    #[test]
    fn chunked_prefill_then_decode() {
        let mut cache = PrefixCache::new(16, 10_000);
        let m = Metrics::default();
        let mut s = Scheduler::new(COSTS);
        let (a, mut ra) = seq(1, 150, 3);
        s.enqueue(a);
        // 150 tokens with a budget of 100: two prefill steps, the first token after the second.
        assert_eq!(us(s.plan(&mut cache, &m)), 1000 + 100 * 10);
        s.complete(&mut cache, &m);
        assert_eq!(
            drain(&mut ra),
            vec![SeqEvent::Admitted { cached_tokens: 0 }]
        );
        assert_eq!(us(s.plan(&mut cache, &m)), 1000 + 50 * 10);
        s.complete(&mut cache, &m);
        assert_eq!(drain(&mut ra), vec![SeqEvent::Token]);
        assert_eq!(us(s.plan(&mut cache, &m)), 1000 + 100);
        s.complete(&mut cache, &m);
        assert_eq!(us(s.plan(&mut cache, &m)), 1000 + 100);
        s.complete(&mut cache, &m);
        assert_eq!(drain(&mut ra), vec![SeqEvent::Token, SeqEvent::Token]);
        assert!(s.is_idle());
        assert!(
            ra.try_recv().is_err(),
            "sender dropped after the last token"
        );
        assert_eq!(cache.resident_tokens(), 144);
        assert_eq!(
            m.generation_tokens
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );

        // The same prompt again: 144 cached, 6 to prefill.
        let (b, mut rb) = seq(1, 150, 1);
        s.enqueue(b);
        assert_eq!(us(s.plan(&mut cache, &m)), 1000 + 6 * 10);
        s.complete(&mut cache, &m);
        assert_eq!(
            drain(&mut rb),
            vec![SeqEvent::Admitted { cached_tokens: 144 }, SeqEvent::Token]
        );
        assert_eq!(
            m.prefix_cache_hits
                .load(std::sync::atomic::Ordering::Relaxed),
            144
        );
        assert_eq!(
            m.prefix_cache_queries
                .load(std::sync::atomic::Ordering::Relaxed),
            300
        );
    }

    #[test]
    fn batch_limit_queues_and_decode_shares_budget() {
        let mut cache = PrefixCache::new(16, 0);
        let m = Metrics::default();
        let mut s = Scheduler::new(COSTS);
        let (a, _ra) = seq(1, 10, 5);
        let (b, _rb) = seq(2, 10, 5);
        let (c, mut rc) = seq(3, 10, 5);
        s.enqueue(a);
        s.enqueue(b);
        s.enqueue(c);
        assert_eq!(us(s.plan(&mut cache, &m)), 1000 + 20 * 10);
        s.publish(&m);
        assert_eq!(m.waiting.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(m.running.load(std::sync::atomic::Ordering::Relaxed), 2);
        s.complete(&mut cache, &m);
        assert!(drain(&mut rc).is_empty());
        // Two decoding sequences.
        assert_eq!(us(s.plan(&mut cache, &m)), 1000 + 2 * 100);
        s.complete(&mut cache, &m);
        // A disabled cache is not queried.
        assert_eq!(
            m.prefix_cache_queries
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn abandoned_sequences_are_dropped() {
        let mut cache = PrefixCache::new(16, 0);
        let m = Metrics::default();
        let mut s = Scheduler::new(COSTS);
        let (a, ra) = seq(1, 10, 5);
        s.enqueue(a);
        drop(ra);
        assert_eq!(s.plan(&mut cache, &m), None);
        assert!(s.is_idle());
    }
}
