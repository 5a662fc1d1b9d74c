//! The simulator's HTTP face: axum routes, OpenAI request parsing, the SSE and JSON response
//! shapes, and fault injection.
//!
//! Streaming follows vLLM and llama-server: one `data:` chunk per generated token (the chat API
//! first sends a role-only delta, together with the first token), the last token chunk carries
//! `finish_reason`, then a `"choices": []` chunk with `usage` when
//! `stream_options.include_usage` is set, then `data: [DONE]`.

use std::io::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::Router;
use rand::RngExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::cache::block_hashes;
use super::engine::{NewSeq, SeqEvent};
use super::metrics::add;
use super::tokens::{self, OutputPlan};
use super::{Shared, SimMode};
use crate::record::ApiType;

/// Default `max_tokens` when a request names none (vLLM's completions default).
pub const DEFAULT_MAX_TOKENS: u32 = 16;

/// Request bodies up to this size are read (long-context prompts are large).
const BODY_LIMIT: usize = 256 << 20;

/// The data line sent by `malformedAfterTokens`: valid SSE framing, invalid JSON.
const GARBAGE: &str = "data: {\"choices\": [{\"text\": <<sim: malformed chunk>>\n\n";

/// All routes over the shared state.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// A request refused before generation starts.
struct Reject(StatusCode, String);

impl From<Reject> for Response {
    fn from(Reject(status, message): Reject) -> Response {
        error(status, message)
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let kind = match status {
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => "invalid_request_error",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        StatusCode::UNAUTHORIZED => "authentication_error",
        _ => "server_error",
    };
    let body = json!({
        "error": {
            "message": message.into(),
            "type": kind,
            "param": null,
            "code": status.as_u16(),
        }
    });
    (status, Json(body)).into_response()
}

fn not_ready(sh: &Shared) -> Option<Reject> {
    (Instant::now() < sh.ready_at).then(|| {
        Reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "sim: still starting up".into(),
        )
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// With `apiKey` set, the `/v1` routes want `Authorization: Bearer <apiKey>` (as vLLM's
/// `--api-key`): anything else is answered 401.
fn unauthorized(sh: &Shared, headers: &HeaderMap) -> Option<Reject> {
    let key = sh.cfg.api_key.as_deref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (given != Some(key)).then(|| {
        Reject(
            StatusCode::UNAUTHORIZED,
            "sim: missing or wrong API key".into(),
        )
    })
}

async fn models(State(sh): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(r) = not_ready(&sh).or_else(|| unauthorized(&sh, &headers)) {
        return r.into();
    }
    let max_len = (sh.cfg.max_model_len > 0).then_some(sh.cfg.max_model_len);
    Json(json!({
        "object": "list",
        "data": [{
            "id": sh.cfg.model,
            "object": "model",
            "created": sh.created,
            "owned_by": "lmbench-sim",
            "root": sh.cfg.model,
            "max_model_len": max_len,
        }]
    }))
    .into_response()
}

async fn health(State(sh): State<Arc<Shared>>) -> Response {
    match not_ready(&sh) {
        Some(r) => r.into(),
        None => Json(json!({"status": "ok"})).into_response(),
    }
}

async fn metrics(State(sh): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        sh.metrics.render(),
    )
        .into_response()
}

async fn completions(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(r) = unauthorized(&sh, &headers) {
        return r.into();
    }
    generate(sh, ApiType::Completions, body).await
}

async fn chat_completions(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = unauthorized(&sh, &headers) {
        return r.into();
    }
    generate(sh, ApiType::Chat, body).await
}

#[derive(Debug, Deserialize)]
struct GenRequest {
    model: Option<String>,
    prompt: Option<Value>,
    messages: Option<Vec<ChatMessage>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    ignore_eos: Option<bool>,
    n: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct ChatMessage {
    content: Option<Value>,
}

/// The prompt's tokens: `prompt` (a string, a list whose first string is used, or a list of
/// token ids) or the words of every message's content in order (roles add no tokens).
fn prompt_tokens(api: ApiType, req: &GenRequest) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    match api {
        ApiType::Completions => match &req.prompt {
            Some(Value::String(s)) => tokens::tokenize_into(s, &mut out),
            Some(Value::Array(items)) => match items.first() {
                Some(Value::String(s)) => tokens::tokenize_into(s, &mut out),
                Some(Value::Number(_)) => token_ids(items, &mut out)?,
                Some(Value::Array(ids)) => token_ids(ids, &mut out)?,
                _ => return Err("`prompt` must be a string or a non-empty list".into()),
            },
            _ => return Err("`prompt` is required and must be a string or a list".into()),
        },
        ApiType::Chat => {
            let messages = req
                .messages
                .as_deref()
                .filter(|m| !m.is_empty())
                .ok_or("`messages` is required and must be a non-empty list")?;
            for m in messages {
                match &m.content {
                    Some(Value::String(s)) => tokens::tokenize_into(s, &mut out),
                    Some(Value::Array(parts)) => {
                        for p in parts {
                            if let Some(text) = p.get("text").and_then(Value::as_str) {
                                tokens::tokenize_into(text, &mut out);
                            }
                        }
                    }
                    None | Some(Value::Null) => {}
                    Some(_) => return Err("message `content` must be a string or a list".into()),
                }
            }
        }
    }
    if out.is_empty() {
        return Err("the prompt is empty".into());
    }
    Ok(out)
}

fn token_ids(items: &[Value], out: &mut Vec<u64>) -> Result<(), String> {
    for v in items {
        let id = v
            .as_u64()
            .ok_or("token ids must be non-negative integers")?;
        out.push(tokens::id_token(id));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    stall: Option<u32>,
    malformed: Option<u32>,
    reset: Option<u32>,
}

/// Everything a response needs besides the token timing.
struct Generation {
    api: ApiType,
    id: String,
    created: u64,
    model: String,
    plan: OutputPlan,
    prompt_len: u64,
    include_usage: bool,
    faults: Faults,
}

/// Where a response's token timing comes from.
enum Source {
    Fixed {
        first: Instant,
        itl: Duration,
        next: u32,
        len: u32,
        cached: u64,
        shared: Arc<Shared>,
        _running: RunningGuard,
    },
    Engine {
        events: mpsc::UnboundedReceiver<SeqEvent>,
        cached: u64,
    },
}

impl Source {
    /// Waits until the next token is generated; `None` when the engine dropped the sequence.
    async fn next_token(&mut self) -> Option<()> {
        match self {
            Source::Fixed {
                first,
                itl,
                next,
                len,
                shared,
                ..
            } => {
                // A token already due goes out at once: a timer, even an expired one, waits
                // for the timer's next 1 ms tick. With no inter-token delay every later token
                // is due when the first was, which has passed: no need to read the clock.
                let due = *first + *itl * *next;
                let passed = *next > 0 && itl.is_zero();
                if !passed && Instant::now() < due {
                    tokio::time::sleep_until(due).await;
                }
                *next += 1;
                add(&shared.metrics.generation_tokens, 1);
                if *next == *len {
                    add(&shared.metrics.requests_finished, 1);
                }
                Some(())
            }
            Source::Engine { events, cached } => loop {
                match events.recv().await? {
                    SeqEvent::Admitted { cached_tokens } => *cached = cached_tokens,
                    SeqEvent::Token => return Some(()),
                }
            },
        }
    }

    /// True when the next token is due at the same instant as the one before it (fixed mode
    /// with zero inter-token delay; that instant has passed, since the token before it was
    /// generated): such tokens are generated together, so they are written together.
    fn next_due_with_previous(&self) -> bool {
        match self {
            Source::Fixed { itl, next, .. } => *next > 0 && itl.is_zero(),
            Source::Engine { .. } => false,
        }
    }

    fn cached_tokens(&self) -> u64 {
        match self {
            Source::Fixed { cached, .. } | Source::Engine { cached, .. } => *cached,
        }
    }
}

/// Counts a fixed-mode request as running while it lives.
struct RunningGuard(Arc<Shared>);

impl RunningGuard {
    fn new(sh: &Arc<Shared>) -> Self {
        sh.metrics.running.fetch_add(1, Ordering::Relaxed);
        RunningGuard(Arc::clone(sh))
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.metrics.running.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn generate(sh: Arc<Shared>, api: ApiType, body: Bytes) -> Response {
    add(&sh.metrics.requests, 1);
    match start(&sh, api, &body) {
        Ok((g, src, true)) => stream_response(&sh, g, src),
        Ok((g, src, false)) => whole_response(&sh, g, src).await,
        Err(reject) => {
            add(&sh.metrics.request_errors, 1);
            reject.into()
        }
    }
}

/// Validates a request, applies the seeded failure draw and starts its generation. Returns the
/// generation, its token source and whether to stream.
fn start(
    sh: &Arc<Shared>,
    api: ApiType,
    body: &[u8],
) -> Result<(Generation, Source, bool), Reject> {
    if let Some(r) = not_ready(sh) {
        return Err(r);
    }
    let bad = |msg: String| Reject(StatusCode::BAD_REQUEST, msg);
    let req: GenRequest =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid request body: {e}")))?;
    let cfg = &sh.cfg;
    if let Some(model) = req.model.as_deref().filter(|m| *m != cfg.model) {
        return Err(Reject(
            StatusCode::NOT_FOUND,
            format!("The model `{model}` does not exist."),
        ));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(bad("only n = 1 is supported".into()));
    }
    let prompt = prompt_tokens(api, &req).map_err(bad)?;
    let prompt_len = prompt.len() as u64;
    let max_tokens = req
        .max_tokens
        .or(req.max_completion_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    if max_tokens == 0 {
        return Err(bad("max_tokens must be at least 1".into()));
    }
    if cfg.max_model_len > 0 && prompt_len + u64::from(max_tokens) > cfg.max_model_len {
        return Err(bad(format!(
            "This model's maximum context length is {} tokens. However, you requested {} tokens \
             ({prompt_len} in the messages, {max_tokens} in the completion).",
            cfg.max_model_len,
            prompt_len + u64::from(max_tokens)
        )));
    }

    let (fail, stream_fault) = {
        let mut rng = sh.lock_fault_rng();
        let a: f64 = rng.random();
        let b: f64 = rng.random();
        (a < cfg.fail_probability, b < cfg.stream_fault_probability)
    };
    if fail {
        return Err(Reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            "sim: injected failure".into(),
        ));
    }
    let faults = if stream_fault {
        Faults {
            stall: cfg.stall_after_tokens,
            malformed: cfg.malformed_after_tokens,
            reset: cfg.reset_after_tokens,
        }
    } else {
        Faults::default()
    };

    let plan = OutputPlan::new(
        cfg.seed,
        &prompt,
        max_tokens,
        cfg.eos_probability,
        req.ignore_eos.unwrap_or(false),
    );
    let blocks = block_hashes(&prompt, cfg.block_size as usize);
    add(&sh.metrics.prompt_tokens, prompt_len);
    let source = match cfg.mode {
        SimMode::Fixed => {
            let cached = {
                let mut cache = sh.lock_cache();
                let hit = if cache.enabled() {
                    add(&sh.metrics.prefix_cache_queries, prompt_len);
                    let hit = cache.lookup(&blocks, prompt_len);
                    add(&sh.metrics.prefix_cache_hits, hit);
                    cache.insert(&blocks);
                    hit
                } else {
                    0
                };
                sh.metrics
                    .cache_tokens
                    .store(cache.resident_tokens(), Ordering::Relaxed);
                hit
            };
            Source::Fixed {
                first: Instant::now() + Duration::from_secs_f64(cfg.ttft_ms / 1e3),
                itl: Duration::from_secs_f64(cfg.itl_ms / 1e3),
                next: 0,
                len: plan.token_count(),
                cached,
                shared: Arc::clone(sh),
                _running: RunningGuard::new(sh),
            }
        }
        SimMode::Engine => {
            let (tx, rx) = mpsc::unbounded_channel();
            let seq = NewSeq {
                prompt_len,
                blocks,
                output_len: plan.token_count(),
                events: tx,
            };
            let submitted = sh.engine.as_ref().is_some_and(|e| e.send(seq).is_ok());
            if !submitted {
                return Err(Reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "sim: engine stopped".into(),
                ));
            }
            Source::Engine {
                events: rx,
                cached: 0,
            }
        }
    };
    let id = sh.next_id.fetch_add(1, Ordering::Relaxed);
    let g = Generation {
        api,
        id: match api {
            ApiType::Completions => format!("cmpl-sim-{id}"),
            ApiType::Chat => format!("chatcmpl-sim-{id}"),
        },
        created: unix_now(),
        model: cfg.model.clone(),
        plan,
        prompt_len,
        include_usage: req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        faults,
    };
    Ok((g, source, req.stream.unwrap_or(false)))
}

impl Generation {
    fn object(&self, streaming: bool) -> &'static str {
        match (self.api, streaming) {
            (ApiType::Completions, _) => "text_completion",
            (ApiType::Chat, true) => "chat.completion.chunk",
            (ApiType::Chat, false) => "chat.completion",
        }
    }

    /// What every streamed chunk of this response starts with, up to the choices list:
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[`. Built once per response;
    /// each chunk is this prefix, its choice and the closing brackets.
    fn chunk_prefix(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(96 + self.model.len());
        p.extend_from_slice(b"data: {\"id\":");
        push_json_str(&mut p, &self.id);
        p.extend_from_slice(b",\"object\":\"");
        p.extend_from_slice(self.object(true).as_bytes());
        p.extend_from_slice(b"\",\"created\":");
        p.extend_from_slice(self.created.to_string().as_bytes());
        p.extend_from_slice(b",\"model\":");
        push_json_str(&mut p, &self.model);
        p.extend_from_slice(b",\"choices\":[");
        p
    }

    /// Appends the chat API's role-only chunk (sent with the first token).
    fn push_role_chunk(&self, prefix: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(prefix);
        out.extend_from_slice(
            b"{\"index\":0,\"delta\":{\"role\":\"assistant\"},\"logprobs\":null,\
              \"finish_reason\":null}]}\n\n",
        );
    }

    /// Appends the chunk of token `i`; the last token's chunk carries `finish_reason`.
    fn push_token_chunk(&self, prefix: &[u8], i: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(prefix);
        out.extend_from_slice(match self.api {
            ApiType::Completions => b"{\"index\":0,\"text\":" as &[u8],
            ApiType::Chat => b"{\"index\":0,\"delta\":{\"content\":",
        });
        let word = self.plan.words[i];
        if word.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            out.extend_from_slice(b"\" ");
            out.extend_from_slice(word.as_bytes());
            out.push(b'"');
        } else {
            push_json_str(out, &self.plan.token_text(i));
        }
        if self.api == ApiType::Chat {
            out.push(b'}');
        }
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        if i + 1 == self.plan.words.len() {
            push_json_str(out, self.plan.finish.as_str());
        } else {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b"}]}\n\n");
    }

    /// Appends the final `"choices": []` chunk with `usage`.
    fn push_usage_chunk(&self, prefix: &[u8], cached: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(prefix);
        let completion = u64::from(self.plan.token_count());
        // Infallible: writing into a `Vec` cannot fail. Same fields as `usage`.
        let _ = write!(
            out,
            "],\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{completion},\
             \"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{cached}}}}}}}\n\n",
            self.prompt_len,
            self.prompt_len + completion,
        );
    }

    fn usage(&self, cached: u64) -> Value {
        let completion = u64::from(self.plan.token_count());
        json!({
            "prompt_tokens": self.prompt_len,
            "completion_tokens": completion,
            "total_tokens": self.prompt_len + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        })
    }

    fn whole_body(&self, cached: u64) -> Value {
        let text = self.plan.text();
        let choice = match self.api {
            ApiType::Completions => json!({
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": self.plan.finish.as_str(),
            }),
            ApiType::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": null,
                "finish_reason": self.plan.finish.as_str(),
            }),
        };
        json!({
            "id": self.id,
            "object": self.object(false),
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": self.usage(cached),
        })
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Infallible: writing a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

type Chunk = Result<Bytes, std::io::Error>;

fn abort(what: &str) -> Chunk {
    Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        format!("sim: {what}"),
    ))
}

const DONE: &[u8] = b"data: [DONE]\n\n";

fn stream_response(sh: &Arc<Shared>, g: Generation, src: Source) -> Response {
    let streamer = Streamer {
        prefix: g.chunk_prefix(),
        g,
        src: Some(src),
        shutdown: sh.shutdown.clone(),
        step: 0,
        step_checked: false,
        malformed_sent: false,
        ended: false,
    };
    let stream = futures_util::stream::unfold(streamer, |mut s| async move {
        let frame = s.next_frame().await?;
        Some((frame, s))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// One streamed response, produced as hyper polls the body (no task or channel of its own):
/// a chunk is produced when its token is due; chunks generated at the same instant (fixed mode
/// with zero inter-token delay, the usage chunk and `[DONE]` right after the last token) form
/// one frame, written together. An `Err` frame makes hyper drop the connection mid-body, which
/// is how resets and engine shutdowns reach the client. A client that goes away drops the body
/// and with it the generation (which frees its engine slot).
struct Streamer {
    g: Generation,
    /// `None` once a stall has given the engine slot back.
    src: Option<Source>,
    shutdown: tokio_util::sync::CancellationToken,
    prefix: Vec<u8>,
    /// Tokens generated so far; faults are keyed by this count.
    step: usize,
    /// The stall and reset faults of `step` have been looked at.
    step_checked: bool,
    malformed_sent: bool,
    ended: bool,
}

impl Streamer {
    /// The next frame of the body; `None` at its end.
    async fn next_frame(&mut self) -> Option<Chunk> {
        if self.ended {
            return None;
        }
        let n = self.g.plan.words.len();
        let mut out = Vec::new();
        loop {
            let sent = self.step as u32;
            let faults = self.g.faults;
            if faults.malformed == Some(sent) && !self.malformed_sent {
                self.malformed_sent = true;
                out.extend_from_slice(GARBAGE.as_bytes());
            }
            if !self.step_checked && faults.reset == Some(sent) {
                if !out.is_empty() {
                    // The data goes first, on its own; the reset comes with the next frame.
                    return Some(Ok(Bytes::from(out)));
                }
                self.step_checked = true;
                self.ended = true;
                // hyper has taken every earlier frame (it is asking for this one); give it a
                // moment to write them out, or the error would discard them with the
                // connection.
                tokio::time::sleep(Duration::from_millis(5)).await;
                return Some(abort("injected connection reset"));
            }
            if !self.step_checked && faults.stall == Some(sent) {
                // Frees the engine's slot; the connection stays open with nothing on it.
                self.src = None;
                if !out.is_empty() {
                    return Some(Ok(Bytes::from(out)));
                }
                self.step_checked = true;
                self.ended = true;
                self.shutdown.cancelled().await;
                return None;
            }
            self.step_checked = true;
            if self.step == n {
                let cached = self.src.as_ref().map_or(0, Source::cached_tokens);
                if self.g.include_usage {
                    self.g.push_usage_chunk(&self.prefix, cached, &mut out);
                }
                out.extend_from_slice(DONE);
                self.ended = true;
                return Some(Ok(Bytes::from(out)));
            }
            let src = self.src.as_mut()?;
            if !out.is_empty() && !src.next_due_with_previous() {
                return Some(Ok(Bytes::from(out)));
            }
            let token = tokio::select! {
                _ = self.shutdown.cancelled() => None,
                t = src.next_token() => t,
            };
            if token.is_none() {
                if !out.is_empty() {
                    // Tokens already generated go out first; the abort is the next frame.
                    return Some(Ok(Bytes::from(out)));
                }
                self.ended = true;
                return Some(abort("engine stopped"));
            }
            if self.step == 0 && self.g.api == ApiType::Chat {
                self.g.push_role_chunk(&self.prefix, &mut out);
            }
            self.g.push_token_chunk(&self.prefix, self.step, &mut out);
            self.step += 1;
            self.step_checked = false;
        }
    }
}

/// A non-streamed response: waits for every token, then sends one JSON body. Faults apply at
/// the same token counts as when streaming: garbage or a dropped connection instead of the
/// body, or no answer at all.
async fn whole_response(sh: &Arc<Shared>, g: Generation, mut src: Source) -> Response {
    let shutdown = sh.shutdown.clone();
    let n = g.plan.words.len();
    for i in 0..=n {
        let sent = i as u32;
        if g.faults.malformed == Some(sent) {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                &GARBAGE["data: ".len()..],
            )
                .into_response();
        }
        if g.faults.reset == Some(sent) {
            let body = Body::from_stream(futures_util::stream::iter([abort(
                "injected connection reset",
            )]));
            return Response::new(body);
        }
        if g.faults.stall == Some(sent) {
            drop(src);
            shutdown.cancelled().await;
            return error(StatusCode::SERVICE_UNAVAILABLE, "sim: shutting down");
        }
        if i == n {
            break;
        }
        let token = tokio::select! {
            _ = shutdown.cancelled() => None,
            t = src.next_token() => t,
        };
        if token.is_none() {
            return error(StatusCode::SERVICE_UNAVAILABLE, "sim: engine stopped");
        }
    }
    Json(g.whole_body(src.cached_tokens())).into_response()
}
