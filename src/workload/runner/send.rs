//! Send threads: threads of their own, each with a one-thread tokio runtime that owns its
//! requests' connections and timers (see the runner's module docs for why), and the warm-up
//! that opens connections on their pools before the clock starts.

use std::time::Duration;

use crate::client::Client;
use crate::cpu::WaitMeter;

/// CPUs per send thread: one send thread uses most of a core only at tens of thousands of
/// chunks per second, and on a small machine the engine under test may share the CPUs.
pub(super) const CPUS_PER_SEND_THREAD: usize = 4;

/// Connections each send thread opens before the clock starts (fewer where the workload caps
/// its requests in flight lower): enough for the requests in flight at LMBench's usual rates;
/// the pool grows beyond them when more are in flight, and keeps what it opened.
pub const WARM_CONNECTIONS: usize = 4;

/// Longest the connection warm-up may take: a slow or silent endpoint delays the start by no
/// more than this (the run's own requests then record what is wrong).
pub(super) const WARM_UP_WAIT: Duration = Duration::from_secs(10);

/// How many send threads a run gets: one per [`CPUS_PER_SEND_THREAD`] CPUs, at least one.
pub(super) fn default_send_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / CPUS_PER_SEND_THREAD).max(1))
}

/// A thread that runs request tasks (see the module docs), with the client whose connection
/// pool it uses. Dropping it stops the thread once its runtime has nothing left that is waited
/// for; the idle pooled connections it opened close then.
pub(super) struct SendThread {
    pub(super) handle: tokio::runtime::Handle,
    pub(super) client: Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SendThread {
    pub(super) fn start(client: Client, waits: &WaitMeter) -> std::io::Result<SendThread> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let waits = waits.clone();
        let thread = std::thread::Builder::new()
            .name("lmbench-send".into())
            .spawn(move || {
                let _waits = waits.track();
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(SendThread {
            handle,
            client,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits until it has ended (and reported its CPU wait).
    pub(super) fn join(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// `n` send threads: the first uses `client`'s own connection pool, the others a pool each
    /// (connections belong to the runtime that opened them). Fewer if threads cannot be
    /// started; none at all means request tasks run on the caller's runtime.
    pub(super) fn start_many(client: &Client, n: usize, waits: &WaitMeter) -> Vec<SendThread> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let c = if i == 0 {
                Ok(client.clone())
            } else {
                client.with_own_pool()
            };
            match c
                .map_err(|e| e.to_string())
                .and_then(|c| SendThread::start(c, waits).map_err(|e| e.to_string()))
            {
                Ok(t) => out.push(t),
                Err(e) => {
                    tracing::warn!(
                        "cannot start send thread {} of {n} ({e}); going on with {}",
                        i + 1,
                        out.len()
                    );
                    break;
                }
            }
        }
        out
    }
}

/// Opens connections on every send thread's pool (on the caller's client if there is no send
/// thread), `per_thread` each, all at once; returns how many answered.
pub(super) async fn warm_up(threads: &[SendThread], client: &Client, per_thread: usize) -> usize {
    if threads.is_empty() {
        return client.warm_up(per_thread, WARM_UP_WAIT).await;
    }
    // Each on its own thread's runtime: connections belong to the runtime that opened them.
    let tasks: Vec<_> = threads
        .iter()
        .map(|t| {
            let c = t.client.clone();
            t.handle
                .spawn(async move { c.warm_up(per_thread, WARM_UP_WAIT).await })
        })
        .collect();
    let mut opened = 0;
    for t in tasks {
        opened += t.await.unwrap_or(0);
    }
    opened
}

impl Drop for SendThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
