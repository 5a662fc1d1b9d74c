//! OpenAI-compatible streaming client: builds request bodies (completions and chat APIs),
//! sends one streaming request per [`RequestSpec`], and turns what comes back into a
//! [`RequestRecord`] with per-chunk arrival times, server-reported usage and a classified
//! error. `send` never fails: every failure is data in the record.
//!
//! Timing: each network chunk is stamped once on arrival and the stamp is shared by every
//! event parsed from it, so decoding cost never shows up as latency.
//!
//! Connections: the send time is stamped when the request is handed to the HTTP client, before
//! a pooled connection is taken or a new one opened, so a new connection's set-up is part of the
//! request's TTFT; the record says whether the request waited for one and for how long
//! ([`super::connections`]). Idle connections stay in the pool for [`POOL_IDLE_TIMEOUT`] and
//! [`Client::warm_up`] opens some before a run, so that requests seconds apart find one open.
//!
//! Tokens: without a server `usage` count, the client's count of generated tokens is the
//! generated text counted with the run's tokenizer ([`super::TokenCounter`]); the number of
//! content chunks is recorded beside it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use hyper_util::client::legacy::connect::HttpInfo;
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::body::{body_size_hint, write_body, write_body_with_hole, HoleBody};
use super::chunk::StreamChunk;
use super::connections::{Registry, TrackLayer};
use super::sse::{SseDecoder, SseEventRef};
use super::TokenCounter;
use crate::record::{ApiType, Completed, ErrorKind, RequestError, RequestRecord, RequestSpec};

/// Longest error detail kept in a record, in characters.
const MAX_ERROR_CHARS: usize = 300;
/// How much of a non-2xx body is read for the error message.
const MAX_ERROR_BODY_BYTES: usize = 4096;
/// How long the body of a non-2xx response may take to arrive before the status is reported
/// with what was read so far.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(1);
/// After `[DONE]`, how long to wait for the end of the body. Reading it to the end lets the
/// connection go back to the pool; a server that keeps the body open costs at most this.
const DRAIN_AFTER_DONE: Duration = Duration::from_millis(200);
/// Idle pooled connections are kept this long, so that requests many seconds apart (LMBench's
/// usual 0.5–2 QPS, spread over send threads) find a connection open instead of paying a new
/// connect, or a new port-forward stream, inside their TTFT. A server that closes an idle
/// connection sooner is noticed by the pool (the connection reads its end); a request that
/// meets one closing just as it is sent is resent once (see [`Client::send`]).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// TCP keep-alive probes on idle connections after this long, so that a long-idle pooled
/// connection is not silently dropped by a NAT, load balancer or firewall on the way (and a
/// dead peer is noticed before a request is written to it).
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// Upper bound on the TCP connect phase (the request timeout, if shorter, applies instead).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the serving endpoint.
#[derive(Clone)]
pub struct ClientConfig {
    /// Server root, e.g. `http://localhost:30080` or `https://api.example.com` (a trailing
    /// `/v1` is accepted).
    pub base_url: String,
    /// The `model` field of every request.
    pub model: String,
    /// Which endpoint to call.
    pub api: ApiType,
    /// Limit on a whole request: connect, response head and the entire stream.
    pub request_timeout: Duration,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// Merged into every request body before the request's own extras (a baseline's
    /// `extraBody`, e.g. `{"ignore_eos": true}`).
    pub extra_body: Map<String, Value>,
    /// A PEM file of certificate authorities trusted for `https://`, besides the system's.
    pub ca_cert: Option<std::path::PathBuf>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api", &self.api)
            .field("request_timeout", &self.request_timeout)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("extra_body", &self.extra_body)
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

/// A streaming client for one endpoint. Cloning is cheap and clones share the connection pool.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    /// The connections `http`'s pool opened that no response has come back on yet.
    conns: Arc<Registry>,
    inner: Arc<Inner>,
    /// Live counters of the run this handle belongs to, if any.
    progress: Option<Arc<crate::progress::RunProgress>>,
    /// Counts generated text into `client_completion_tokens`; without one, content chunks are
    /// counted.
    tokens: Option<Counter>,
}

/// A [`TokenCounter`], shown in `Debug` output as a placeholder.
#[derive(Clone)]
struct Counter(Arc<dyn TokenCounter>);

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCounter")
    }
}

#[derive(Debug)]
struct Inner {
    cfg: ClientConfig,
    url: String,
    /// `url`, parsed once (parsing it per request was a measurable part of a request's cost).
    parsed_url: reqwest::Url,
    /// `Authorization: Bearer …`, built once; marked sensitive so it is never logged.
    auth: Option<HeaderValue>,
}

/// Writes the request bodies of one client (its endpoint's API, model and `extraBody`).
#[derive(Clone)]
pub struct BodyWriter(Arc<Inner>);

impl BodyWriter {
    /// The JSON body of `spec`.
    pub fn body(&self, spec: &RequestSpec) -> bytes::Bytes {
        let mut body = Vec::with_capacity(body_size_hint(spec));
        write_body(&self.0.cfg, spec, &mut body);
        body.into()
    }

    /// The JSON body of `spec` with the content of its prompt's message `hole` to be put in
    /// later ([`HoleBody::fill`]); `None` if the body has no such message (a text prompt, or
    /// an `extraBody` that replaces the prompt).
    pub fn body_with_hole(&self, spec: &RequestSpec, hole: usize) -> Option<HoleBody> {
        let mut bytes = Vec::with_capacity(body_size_hint(spec));
        let at = write_body_with_hole(&self.0.cfg, spec, Some(hole), &mut bytes)?;
        // Room for an answer of `max_tokens` tokens of a few bytes each, escaped.
        let room = (spec.max_tokens as usize)
            .saturating_mul(8)
            .clamp(256, 1 << 20);
        Some(HoleBody::new(bytes, at, room))
    }
}

/// How long [`Client::warm_up`] leaves the connections it opened to go back to the pool.
const WARM_SETTLE: Duration = Duration::from_millis(20);

/// The header that carries a request's user id.
static USER_ID: HeaderName = HeaderName::from_static("x-user-id");
static EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
static JSON: HeaderValue = HeaderValue::from_static("application/json");

impl Client {
    /// Builds the client; fails on a base URL that is not a valid `http://` or `https://`
    /// URL, or a `ca_cert` that holds no certificate.
    pub fn new(cfg: ClientConfig) -> anyhow::Result<Self> {
        let url = endpoint_url(&cfg.base_url, cfg.api);
        let parsed = reqwest::Url::parse(&url)
            .with_context(|| format!("invalid base URL {:?}", cfg.base_url))?;
        if parsed.scheme() != "http" && parsed.scheme() != "https" {
            bail!(
                "base URL {:?}: expected an http:// or https:// URL",
                cfg.base_url
            );
        }
        let conns = Arc::new(Registry::default());
        let http = http_client(&cfg, &conns)?;
        let auth = match &cfg.api_key {
            Some(key) => {
                let mut v = HeaderValue::try_from(format!("Bearer {key}"))
                    .map_err(|_| anyhow::anyhow!("the API key is not a valid header value"))?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        Ok(Client {
            http,
            conns,
            inner: Arc::new(Inner {
                cfg,
                url,
                parsed_url: parsed,
                auth,
            }),
            progress: None,
            tokens: None,
        })
    }

    /// A handle on the same endpoint, configuration and progress counters with a connection
    /// pool of its own: connections belong to the runtime that opened them, so each of the
    /// runner's send threads gets its own pool.
    pub fn with_own_pool(&self) -> anyhow::Result<Client> {
        let conns = Arc::new(Registry::default());
        Ok(Client {
            http: http_client(&self.inner.cfg, &conns)?,
            conns,
            ..self.clone()
        })
    }

    /// A handle on the same connection pool that counts generated text with `counter` (the
    /// run's tokenizer) into each record's `client_completion_tokens`.
    pub fn with_token_counter(&self, counter: Arc<dyn TokenCounter>) -> Client {
        Client {
            tokens: Some(Counter(counter)),
            ..self.clone()
        }
    }

    /// Opens `n` connections to the endpoint at once, one `GET /v1/models` each (answered and
    /// read to the end), and leaves them idle in this handle's pool, so that the first
    /// requests of a run find connections open (and, through a port-forward, their streams).
    /// Gives up after `within`. Returns how many distinct connections answered; a server that
    /// refuses or fails is not an error here, since the run's own requests will record it.
    /// Must run on the runtime that will send the requests: connections belong to it.
    pub async fn warm_up(&self, n: usize, within: Duration) -> usize {
        let Ok(url) = reqwest::Url::parse(&models_url(&self.inner.cfg.base_url)) else {
            return 0;
        };
        let one = || async {
            let mut req = self.http.get(url.clone());
            if let Some(auth) = &self.inner.auth {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            let mut resp = req.send().await.ok()?;
            let local = resp
                .extensions()
                .get::<HttpInfo>()
                .map(HttpInfo::local_addr);
            // Claimed here, so that no measured request counts these as its own.
            let _ = self.conns.connection_of(local, std::time::Instant::now());
            // Read to the end, so that the connection goes back to the pool.
            while let Ok(Some(_)) = resp.chunk().await {}
            local
        };
        let all = futures_util::future::join_all((0..n).map(|_| one()));
        let answered = tokio::time::timeout(within, all).await.unwrap_or_default();
        // Each connection's own task puts it back in the pool a moment after its response was
        // read; a request checked out before that opens one more connection (through a
        // port-forward, one more stream), which on a busy machine happened to the first request
        // of a run. Giving the tasks that moment costs nothing measured: the clock starts after.
        tokio::time::sleep(WARM_SETTLE).await;
        let distinct: std::collections::HashSet<_> = answered.into_iter().flatten().collect();
        distinct.len()
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// A handle on the same connection pool that counts its requests into `progress`.
    pub fn with_progress(&self, progress: Arc<crate::progress::RunProgress>) -> Client {
        Client {
            progress: Some(progress),
            ..self.clone()
        }
    }

    /// The endpoint requests are posted to.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// What writes this client's request bodies, for making them before a request is due
    /// (the runner's request builder does, on its own thread).
    pub fn body_writer(&self) -> BodyWriter {
        BodyWriter(self.inner.clone())
    }

    /// Sends `spec` as one streaming request and records what happened. Times are seconds
    /// since `epoch`. Never returns an error: connection failures, bad statuses, timeouts,
    /// broken or malformed streams and cancellation all end up in `record.error`, with the
    /// timings observed up to that point.
    pub async fn send(
        &self,
        spec: &RequestSpec,
        epoch: Instant,
        cancel: &CancellationToken,
    ) -> Completed {
        self.send_built(spec, None, epoch, cancel).await
    }

    /// [`Self::send`] with the body already written by [`Self::body_writer`] (`None`: written
    /// here, before the send time is stamped, so its cost shows as send lag).
    pub async fn send_built(
        &self,
        spec: &RequestSpec,
        body: Option<bytes::Bytes>,
        epoch: Instant,
        cancel: &CancellationToken,
    ) -> Completed {
        let (done, tail) = self.send_built_open(spec, body, epoch, cancel).await;
        if let Some(tail) = tail {
            tail.drain().await;
        }
        done
    }

    /// [`Self::send_built`] that returns as soon as `[DONE]` is read, with what is left of
    /// the response (the end of its body) for the caller to [`Tail::drain`]: the connection
    /// goes back to the pool only then. A caller with a request due the moment this answer
    /// arrived sends it first, on another connection, instead of waiting for the server to
    /// end a body it has nothing more to say in.
    pub async fn send_built_open(
        &self,
        spec: &RequestSpec,
        body: Option<bytes::Bytes>,
        epoch: Instant,
        cancel: &CancellationToken,
    ) -> (Completed, Option<Tail>) {
        if let Some(p) = &self.progress {
            p.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut ex = Exchange::new(spec, epoch);
        let timeout = self.inner.cfg.request_timeout;
        let tokens = self.tokens.as_ref().map(|c| &*c.0);
        let outcome = {
            let fut = self.exchange(spec, body, &mut ex);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(req_err(ErrorKind::Cancelled, "run cancelled")),
                r = tokio::time::timeout(timeout, fut) => r.unwrap_or_else(|_| {
                    Err(req_err(
                        ErrorKind::Timeout,
                        format!("no complete response within {timeout:?}"),
                    ))
                }),
            }
        };
        let (outcome, tail) = match outcome {
            Ok(resp) => (Ok(()), Some(Tail(resp))),
            Err(e) => (Err(e), None),
        };
        (ex.finish(outcome, tokens), tail)
    }

    async fn exchange(
        &self,
        spec: &RequestSpec,
        body: Option<bytes::Bytes>,
        ex: &mut Exchange,
    ) -> Result<reqwest::Response, RequestError> {
        let body = body.unwrap_or_else(|| self.body_writer().body(spec));
        let mut req = self
            .http
            .post(self.inner.parsed_url.clone())
            .header(CONTENT_TYPE, JSON.clone())
            .header(ACCEPT, EVENT_STREAM.clone())
            .body(body);
        if let Some(uid) = spec.user_id {
            req = req.header(USER_ID.clone(), HeaderValue::from(uid));
        }
        if let Some(auth) = &self.inner.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }

        // The clock starts before a connection is taken from the pool or opened: a request
        // that waits for a new connection has that wait in its TTFT, and says how long it was.
        let sent_at = Instant::now();
        ex.record.sent_s = sent_at.saturating_duration_since(ex.epoch).as_secs_f64();
        let retry = req.try_clone();
        let mut resp = match req.send().await {
            Ok(r) => r,
            // A keep-alive connection the server closed just as it was reused (llama.cpp's
            // HTTP server closes a connection after a fixed number of requests): nothing came
            // back, so the request is sent once more on a fresh connection. The first attempt's
            // send time stays, so the cost of the retry is part of the measured latency.
            Err(e) if is_stale_connection(&e) && retry.is_some() => {
                tracing::debug!(
                    "request {}: stale keep-alive connection, resending",
                    spec.id
                );
                retry
                    .expect("checked")
                    .send()
                    .await
                    .map_err(|e| connect_error(&e))?
            }
            Err(e) => return Err(connect_error(&e)),
        };
        let local = resp
            .extensions()
            .get::<HttpInfo>()
            .map(HttpInfo::local_addr);
        let (new_connection, connect_ms) = self.conns.connection_of(local, sent_at.into_std());
        ex.record.new_connection = new_connection;
        ex.record.connect_ms = connect_ms;
        let status = resp.status();
        ex.record.status = Some(status.as_u16());
        if !status.is_success() {
            let body = read_error_body(&mut resp).await;
            return Err(req_err(
                ErrorKind::HttpStatus,
                format!("HTTP {status}: {body}"),
            ));
        }

        let mut decoder = SseDecoder::default();
        let mut last_chunk_s = ex.record.sent_s;
        while !ex.done {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    return Err(req_err(
                        ErrorKind::StreamBroken,
                        format!("reading the response body: {}", error_chain(&e)),
                    ))
                }
            };
            last_chunk_s = ex.now();
            // Events after `[DONE]` in the same network chunk are ignored.
            decoder.push_with(&chunk, |event| {
                if ex.done {
                    Ok(())
                } else {
                    ex.on_event(event, last_chunk_s)
                }
            })?;
        }
        if !ex.done {
            if let Some(event) = decoder.finish().event {
                ex.on_event(event.as_ref(), last_chunk_s)?;
            }
        }
        if !ex.done {
            return Err(req_err(
                ErrorKind::StreamBroken,
                "stream ended without [DONE]",
            ));
        }
        Ok(resp)
    }
}

/// A response whose `[DONE]` has been read: the end of its body is still to come.
pub struct Tail(reqwest::Response);

impl Tail {
    /// Reads the body to its end, so that the connection goes back to the pool; gives up after
    /// `DRAIN_AFTER_DONE` (200 ms; a server that keeps the body open costs at most that, and its
    /// connection is closed).
    pub async fn drain(self) {
        let mut resp = self.0;
        let drain = async { while let Ok(Some(_)) = resp.chunk().await {} };
        let deadline = async {
            // The end of the body usually comes with `[DONE]` and only needs the connection
            // task to take a turn. Arming the timer first would wake the I/O driver's thread
            // for a timer that is almost never reached, so it is armed after one yield.
            tokio::task::yield_now().await;
            tokio::time::sleep(DRAIN_AFTER_DONE).await;
        };
        tokio::select! {
            biased;
            _ = drain => {}
            _ = deadline => {}
        }
    }
}

/// The HTTP client behind a [`Client`]: one connection pool, whose new connections are noted
/// in `conns`.
fn http_client(cfg: &ClientConfig, conns: &Arc<Registry>) -> anyhow::Result<reqwest::Client> {
    super::tls::builder(cfg.ca_cert.as_deref())
        .map_err(anyhow::Error::msg)?
        // Benchmark traffic must go straight to the endpoint, whatever *_PROXY says.
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_keepalive(TCP_KEEPALIVE)
        .connect_timeout(cfg.request_timeout.min(MAX_CONNECT_TIMEOUT))
        .connector_layer(TrackLayer(conns.clone()))
        // A retried request would be measured as one slow request.
        .retry(reqwest::retry::never())
        .user_agent(concat!("lmbench/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// True for an error where a pooled connection was closed by the server before any part of
/// the response arrived (hyper: "connection closed before message completed").
fn is_stale_connection(e: &reqwest::Error) -> bool {
    !e.is_timeout()
        && !e.is_connect()
        && e.status().is_none()
        && error_chain(e).contains("connection closed before message completed")
}

/// `base` + `/v1/models` (a base already ending in `/v1` is not given a second one).
fn models_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/models")
    } else {
        format!("{base}/v1/models")
    }
}

/// A failed connect, with what the process's open-file limit has to do with it if anything.
fn connect_error(e: &reqwest::Error) -> RequestError {
    let chain = error_chain(e);
    match crate::limits::out_of_files(e) {
        Some(why) => req_err(ErrorKind::Connect, format!("{why}: {chain}")),
        None => req_err(ErrorKind::Connect, chain),
    }
}

/// `base` + the API path; a base already ending in `/v1` is not given a second one.
fn endpoint_url(base: &str, api: ApiType) -> String {
    let base = base.trim_end_matches('/');
    let path = match api {
        ApiType::Completions => "completions",
        ApiType::Chat => "chat/completions",
    };
    if base.ends_with("/v1") {
        format!("{base}/{path}")
    } else {
        format!("{base}/v1/{path}")
    }
}

/// The state of one request while its response streams in.
struct Exchange {
    epoch: Instant,
    record: RequestRecord,
    text: String,
    /// Reasoning text (generated, but not part of the answer); counted, never handed on.
    reasoning: String,
    done: bool,
}

impl Exchange {
    fn new(spec: &RequestSpec, epoch: Instant) -> Self {
        let now = secs_since(epoch);
        Exchange {
            epoch,
            record: RequestRecord {
                id: spec.id,
                user_id: spec.user_id,
                round: spec.round,
                warmup: spec.warmup,
                due_s: spec.due_s,
                slot_s: spec.slot_s,
                sent_s: now,
                new_connection: None,
                connect_ms: None,
                first_token_s: None,
                end_s: now,
                // One allocation for the usual case of one chunk per token.
                chunk_times_s: Vec::with_capacity(spec.max_tokens.min(4096) as usize),
                prompt_tokens: None,
                completion_tokens: None,
                cached_tokens: None,
                client_prompt_tokens: spec.client_prompt_tokens,
                client_completion_tokens: 0,
                content_chunks: 0,
                max_tokens: spec.max_tokens,
                status: None,
                error: None,
            },
            text: String::new(),
            reasoning: String::new(),
            done: false,
        }
    }

    fn now(&self) -> f64 {
        secs_since(self.epoch)
    }

    /// Applies one event that arrived at `t`.
    fn on_event(&mut self, event: SseEventRef<'_>, t: f64) -> Result<(), RequestError> {
        let (name, data) = match event {
            SseEventRef::Done => {
                self.done = true;
                self.record.end_s = t;
                return Ok(());
            }
            SseEventRef::Message { event, data } => (event, data),
        };
        if name == Some("error") {
            return Err(req_err(
                ErrorKind::BadResponse,
                format!("server sent an error event: {data}"),
            ));
        }
        if data.trim().is_empty() {
            return Ok(());
        }
        let chunk: StreamChunk = serde_json::from_str(data).map_err(|e| {
            req_err(
                ErrorKind::BadResponse,
                format!("invalid JSON in stream ({e}): {data}"),
            )
        })?;
        if let Some(error) = &chunk.error {
            return Err(req_err(
                ErrorKind::BadResponse,
                format!("server error in stream: {}", error_text(error)),
            ));
        }
        if chunk.object.as_deref() == Some("error") {
            let detail = chunk.message.as_ref().map_or(data.into(), error_text);
            return Err(req_err(
                ErrorKind::BadResponse,
                format!("server error in stream: {detail}"),
            ));
        }
        if let Some(usage) = &chunk.usage {
            let r = &mut self.record;
            r.prompt_tokens = usage.prompt_tokens.or(r.prompt_tokens);
            r.completion_tokens = usage.completion_tokens.or(r.completion_tokens);
            if let Some(cached) = usage
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
            {
                r.cached_tokens = Some(cached);
            }
        }
        let Some(choice) = chunk.choices.as_ref().and_then(|c| c.0.as_ref()) else {
            return Ok(());
        };
        let mut content = false;
        for text in [
            choice.text.as_deref(),
            choice.delta.as_ref().and_then(|d| d.content.as_deref()),
        ]
        .into_iter()
        .flatten()
        {
            if !text.is_empty() {
                content = true;
                self.text.push_str(text);
            }
        }
        if let Some(delta) = &choice.delta {
            // Reasoning tokens are generated tokens (they take decode time) but are not part
            // of the answer a later round would carry in its history.
            for text in [&delta.reasoning_content, &delta.reasoning]
                .into_iter()
                .filter_map(|r| r.as_deref())
                .filter(|s| !s.is_empty())
            {
                content = true;
                self.reasoning.push_str(text);
            }
        }
        if content {
            let r = &mut self.record;
            r.first_token_s.get_or_insert(t);
            r.chunk_times_s.push(t);
        }
        Ok(())
    }

    /// Closes the record: counts what was generated, and judges the outcome. An error after
    /// `[DONE]` (a timeout or cancellation while draining the end of the body) does not spoil
    /// a completed response; a completed response without any content is a failure.
    fn finish(
        mut self,
        outcome: Result<(), RequestError>,
        tokens: Option<&dyn TokenCounter>,
    ) -> Completed {
        let r = &mut self.record;
        r.content_chunks = r.chunk_times_s.len() as u64;
        // Counted on the send thread after the last time was stamped, so the count delays no
        // time stamp of this request.
        r.client_completion_tokens = match tokens {
            Some(t) => [&self.text, &self.reasoning]
                .into_iter()
                .filter(|s| !s.is_empty())
                .map(|s| t.count(s) as u64)
                .sum(),
            None => r.content_chunks,
        };
        if self.done {
            // `[DONE]` after nothing at all: the server accepted the request and produced no
            // token, which is no completion (its TTFT and throughput would be undefined or
            // zero). A request that asked for no tokens is the exception.
            if r.chunk_times_s.is_empty() && r.max_tokens > 0 {
                r.error = Some(req_err(
                    ErrorKind::BadResponse,
                    "the stream ended with [DONE] without any generated content",
                ));
            }
        } else {
            r.end_s = secs_since(self.epoch);
            if let Err(error) = outcome {
                r.error = Some(error);
            }
        }
        if r.error.is_some() {
            self.text.clear();
        }
        Completed {
            record: self.record,
            text: self.text,
            follow_up: None,
        }
    }
}

fn secs_since(epoch: Instant) -> f64 {
    Instant::now()
        .saturating_duration_since(epoch)
        .as_secs_f64()
}

fn req_err(kind: ErrorKind, message: impl AsRef<str>) -> RequestError {
    RequestError {
        kind,
        message: truncate_chars(message.as_ref(), MAX_ERROR_CHARS),
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// An error with its chain of causes (reqwest's own message rarely says what went wrong).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The readable part of an OpenAI-style error value (`{"message": …}` or a plain string).
fn error_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(s)) => s.clone(),
            _ => v.to_string(),
        },
        _ => v.to_string(),
    }
}

/// The start of a non-2xx body, for the error message; bounded in size and time.
async fn read_error_body(resp: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(ERROR_BODY_WAIT, async {
        while buf.len() < MAX_ERROR_BODY_BYTES {
            match resp.chunk().await {
                Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
                _ => break,
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf);
    truncate_chars(text.trim(), MAX_ERROR_CHARS)
}

#[cfg(test)]
mod tests;
