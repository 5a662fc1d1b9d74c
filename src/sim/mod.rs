//! The built-in simulated OpenAI-compatible serving engine, behind `lmbench sim`, the
//! `Simulated` baseline and the tests. Its behaviour is known exactly, so measurements taken
//! against it can be checked.
//!
//! - Tokens: a whitespace-separated word is a token ([`tokens`]); output is seeded and
//!   deterministic per prompt.
//! - [`SimMode::Fixed`]: exact `ttftMs` to the first token and `itlMs` between tokens,
//!   whatever the load.
//! - [`SimMode::Engine`]: continuous batching with chunked prefill on a step cost model
//!   (`engine`) and a vLLM-style prefix cache ([`cache`]).
//! - Faults (all off by default): injected 500s, stalls, malformed chunks, dropped
//!   connections and a slow start (`http`).
//! - `GET /metrics`: Prometheus counters and gauges (`metrics`).

pub mod cache;
mod engine;
mod http;
pub mod metrics;
mod response;
pub mod tokens;

#[cfg(test)]
mod tests;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{ensure, Context};
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use cache::PrefixCache;
use engine::{NewSeq, StepCosts};
use metrics::Metrics;

/// How token timing is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimMode {
    /// Exact `ttftMs` and `itlMs` for every request, independent of load (for tests).
    Fixed,
    /// A batching engine whose latencies depend on load and on prefix-cache hits.
    #[default]
    Engine,
}

/// Every knob of the simulator, spelled in camelCase in spec files; unset knobs take their
/// defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SimConfig {
    /// Timing model.
    pub mode: SimMode,
    /// The one model name served; requests naming another get 404.
    pub model: String,
    /// Seed of generated text and of fault draws.
    pub seed: u64,
    /// Largest prompt + `max_tokens` accepted (HTTP 400 beyond); 0 = unlimited.
    pub max_model_len: u64,
    /// Chance that the model ends generation after each token (finish reason `stop`);
    /// requests with `ignore_eos` always run to `max_tokens`.
    pub eos_probability: f64,
    /// Fixed mode: milliseconds from arrival to the first token.
    pub ttft_ms: f64,
    /// Fixed mode: milliseconds between tokens.
    pub itl_ms: f64,
    /// Engine mode: most sequences running at once; later ones wait in FIFO order.
    pub max_batch: u32,
    /// Engine mode: token budget of one step (decodes first, then prompt chunks);
    /// 0 = unlimited (whole prompts prefill in one step). Otherwise at least `maxBatch`.
    pub max_batched_tokens: u64,
    /// Engine mode: microseconds per uncached prompt token.
    pub prefill_us_per_token: f64,
    /// Engine mode: fixed microseconds of every step.
    pub decode_base_us: f64,
    /// Engine mode: microseconds per decoding sequence in a step.
    pub decode_us_per_seq: f64,
    /// Whether prompts are looked up in and added to the prefix cache.
    pub prefix_caching: bool,
    /// Tokens per prefix-cache block.
    pub block_size: u32,
    /// Prefix-cache capacity in tokens (whole blocks, LRU eviction); 0 = no cache.
    pub cache_capacity_tokens: u64,
    /// Chance that a generation request is answered HTTP 500 (seeded draw).
    pub fail_probability: f64,
    /// Chance that a request is subject to the `*AfterTokens` faults below (seeded draw).
    pub stream_fault_probability: f64,
    /// After this many tokens, send nothing more but keep the connection open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_after_tokens: Option<u32>,
    /// After this many tokens, send one data line that is not JSON, then carry on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub malformed_after_tokens: Option<u32>,
    /// After this many tokens, drop the connection mid-response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_after_tokens: Option<u32>,
    /// Every endpoint except `/metrics` answers 503 until this long after start.
    pub ready_delay_ms: u64,
    /// When set, the `/v1` routes answer 401 unless sent `Authorization: Bearer <apiKey>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            mode: SimMode::Engine,
            model: "sim-model".into(),
            seed: 0,
            max_model_len: 0,
            eos_probability: 0.0,
            ttft_ms: 50.0,
            itl_ms: 10.0,
            max_batch: 64,
            max_batched_tokens: 2048,
            prefill_us_per_token: 50.0,
            decode_base_us: 8000.0,
            decode_us_per_seq: 200.0,
            prefix_caching: true,
            block_size: 16,
            cache_capacity_tokens: 262_144,
            fail_probability: 0.0,
            stream_fault_probability: 1.0,
            stall_after_tokens: None,
            malformed_after_tokens: None,
            reset_after_tokens: None,
            ready_delay_ms: 0,
            api_key: None,
        }
    }
}

impl SimConfig {
    /// Checks ranges the simulator relies on.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.model.is_empty(), "sim: model must not be empty");
        for (name, p) in [
            ("eosProbability", self.eos_probability),
            ("failProbability", self.fail_probability),
            ("streamFaultProbability", self.stream_fault_probability),
        ] {
            ensure!(
                (0.0..=1.0).contains(&p),
                "sim: {name} must be within 0..=1, got {p}"
            );
        }
        for (name, v) in [
            ("ttftMs", self.ttft_ms),
            ("itlMs", self.itl_ms),
            ("prefillUsPerToken", self.prefill_us_per_token),
            ("decodeBaseUs", self.decode_base_us),
            ("decodeUsPerSeq", self.decode_us_per_seq),
        ] {
            ensure!(
                (0.0..3.6e9).contains(&v),
                "sim: {name} must be a non-negative number of sane size, got {v}"
            );
        }
        ensure!(self.max_batch >= 1, "sim: maxBatch must be at least 1");
        ensure!(
            self.max_batched_tokens == 0 || self.max_batched_tokens >= u64::from(self.max_batch),
            "sim: maxBatchedTokens must be 0 (unlimited) or at least maxBatch ({})",
            self.max_batch
        );
        ensure!(self.block_size >= 1, "sim: blockSize must be at least 1");
        Ok(())
    }
}

/// State shared by the HTTP handlers and the engine loop.
struct Shared {
    cfg: SimConfig,
    metrics: Metrics,
    cache: Mutex<PrefixCache>,
    fault_rng: Mutex<ChaCha8Rng>,
    engine: Option<mpsc::UnboundedSender<NewSeq>>,
    ready_at: Instant,
    created: u64,
    next_id: AtomicU64,
    shutdown: CancellationToken,
}

impl Shared {
    fn lock_cache(&self) -> MutexGuard<'_, PrefixCache> {
        // A panic while holding the lock leaves the cache usable; carry on with it.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_fault_rng(&self) -> MutexGuard<'_, ChaCha8Rng> {
        self.fault_rng.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Serves the simulator on `listener` until `shutdown` is cancelled. In-flight responses are
/// cut off at shutdown (their connections drop), so this returns promptly.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: SimConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    cfg.validate()?;
    let capacity = if cfg.prefix_caching {
        cfg.cache_capacity_tokens
    } else {
        0
    };
    let (engine_tx, engine_rx) = mpsc::unbounded_channel();
    let costs = StepCosts {
        prefill_us_per_token: cfg.prefill_us_per_token,
        decode_base_us: cfg.decode_base_us,
        decode_us_per_seq: cfg.decode_us_per_seq,
        max_batch: cfg.max_batch as usize,
        max_batched_tokens: cfg.max_batched_tokens,
    };
    let engine_mode = cfg.mode == SimMode::Engine;
    let shared = Arc::new(Shared {
        cache: Mutex::new(PrefixCache::new(cfg.block_size, capacity)),
        fault_rng: Mutex::new(ChaCha8Rng::seed_from_u64(tokens::mix(
            cfg.seed,
            0x6661_756c_7473, // "faults": keeps fault draws apart from text generation
        ))),
        engine: engine_mode.then_some(engine_tx),
        ready_at: Instant::now() + Duration::from_millis(cfg.ready_delay_ms),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        metrics: Metrics::default(),
        next_id: AtomicU64::new(1),
        shutdown: shutdown.clone(),
        cfg,
    });
    let engine_task = engine_mode.then(|| {
        tokio::spawn(engine::run(
            engine_rx,
            Arc::clone(&shared),
            costs,
            shutdown.clone(),
        ))
    });
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, mode = ?shared.cfg.mode, model = %shared.cfg.model, "sim serving");
    let app = http::router(Arc::clone(&shared));
    // Like real serving engines: without TCP_NODELAY a response's first body write can wait for
    // the client's delayed ACK (~40 ms), which would show up as TTFT that no engine has.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .context("sim: HTTP server failed");
    shutdown.cancel();
    if let Some(task) = engine_task {
        task.await.context("sim: engine loop panicked")?;
    }
    served
}

/// A simulator running on a local port (see [`spawn_local`]). Dropping it shuts the
/// simulator down in the background; [`SimHandle::shutdown`] waits for that.
#[derive(Debug)]
pub struct SimHandle {
    /// Where it listens (127.0.0.1, an ephemeral port).
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl SimHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash or `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the simulator and waits until it has stopped.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.context("sim: server task panicked")?,
            None => Ok(()),
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a simulator on 127.0.0.1 with an ephemeral port, in a task of the current runtime.
pub async fn spawn_local(cfg: SimConfig) -> anyhow::Result<SimHandle> {
    cfg.validate()?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .context("sim: binding 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, cfg, shutdown.clone()));
    Ok(SimHandle {
        addr,
        shutdown,
        task: Some(task),
    })
}
