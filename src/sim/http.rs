//! The simulator's HTTP face: axum routes, the API key and readiness checks, OpenAI request
//! parsing, the seeded fault draw and the start of a generation (the response shapes are in
//! `response`).
//!
//! Streaming follows vLLM and llama-server: one `data:` chunk per generated token (the chat API
//! first sends a role-only delta, together with the first token), the last token chunk carries
//! `finish_reason`, then a `"choices": []` chunk with `usage` when
//! `stream_options.include_usage` is set, then `data: [DONE]`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
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
use super::engine::NewSeq;
use super::metrics::add;
use super::response::{
    error, stream_response, whole_response, Faults, Generation, RunningGuard, Source,
};
use super::tokens::{self, OutputPlan};
use super::{Shared, SimMode};
use crate::record::ApiType;

/// Default `max_tokens` when a request names none (vLLM's completions default).
pub const DEFAULT_MAX_TOKENS: u32 = 16;

/// Request bodies up to this size are read (long-context prompts are large).
const BODY_LIMIT: usize = 256 << 20;

/// All routes over the shared state.
pub(super) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/reset_prefix_cache", post(reset_prefix_cache))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// `POST /reset_prefix_cache`: empties the prefix cache, as vLLM's endpoint of that name does
/// (200 with an empty body). lmbench's cache reset between sweep points uses it.
async fn reset_prefix_cache(State(sh): State<Arc<Shared>>) -> Response {
    let dropped = sh.lock_cache().clear();
    tracing::debug!("sim: prefix cache reset ({dropped} tokens dropped)");
    StatusCode::OK.into_response()
}

/// A request refused before generation starts.
struct Reject(StatusCode, String);

impl From<Reject> for Response {
    fn from(Reject(status, message): Reject) -> Response {
        error(status, message)
    }
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
