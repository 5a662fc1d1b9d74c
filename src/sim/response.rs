//! The simulator's responses: a started generation and where its token timing comes from
//! (fixed delays or the engine), the SSE chunks of a streamed response (one per generated
//! token, written when due, several due at once in one frame), the JSON body of a whole one,
//! error bodies, and the injected faults (a stall, a garbage line, a dropped connection) at
//! their token counts.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{json, Value};

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::engine::SeqEvent;
use super::metrics::add;
use super::tokens::OutputPlan;
use super::Shared;
use crate::record::ApiType;

/// The data line sent by `malformedAfterTokens`: valid SSE framing, invalid JSON.
pub(super) const GARBAGE: &str = "data: {\"choices\": [{\"text\": <<sim: malformed chunk>>\n\n";

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response {
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

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Faults {
    pub(super) stall: Option<u32>,
    pub(super) malformed: Option<u32>,
    pub(super) reset: Option<u32>,
}

/// Everything a response needs besides the token timing.
pub(super) struct Generation {
    pub(super) api: ApiType,
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) plan: OutputPlan,
    pub(super) prompt_len: u64,
    pub(super) include_usage: bool,
    pub(super) faults: Faults,
}

/// Where a response's token timing comes from.
pub(super) enum Source {
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
    pub(super) async fn next_token(&mut self) -> Option<()> {
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
    pub(super) fn next_due_with_previous(&self) -> bool {
        match self {
            Source::Fixed { itl, next, .. } => *next > 0 && itl.is_zero(),
            Source::Engine { .. } => false,
        }
    }

    pub(super) fn cached_tokens(&self) -> u64 {
        match self {
            Source::Fixed { cached, .. } | Source::Engine { cached, .. } => *cached,
        }
    }
}

/// Counts a fixed-mode request as running while it lives.
pub(super) struct RunningGuard(Arc<Shared>);

impl RunningGuard {
    pub(super) fn new(sh: &Arc<Shared>) -> Self {
        sh.metrics.running.fetch_add(1, Ordering::Relaxed);
        RunningGuard(Arc::clone(sh))
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.metrics.running.fetch_sub(1, Ordering::Relaxed);
    }
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

pub(super) fn stream_response(sh: &Arc<Shared>, g: Generation, src: Source) -> Response {
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
pub(super) async fn whole_response(sh: &Arc<Shared>, g: Generation, mut src: Source) -> Response {
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
