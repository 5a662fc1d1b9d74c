//! OpenAI-compatible streaming client: builds request bodies (completions and chat APIs),
//! sends one streaming request per [`RequestSpec`], and turns what comes back into a
//! [`RequestRecord`] with per-chunk arrival times, server-reported usage and a classified
//! error. `send` never fails: every failure is data in the record.
//!
//! Timing: each network chunk is stamped once on arrival and the stamp is shared by every
//! event parsed from it, so decoding cost never shows up as latency.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::header::{HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::sse::{SseDecoder, SseEventRef};
use crate::record::{
    ApiType, Completed, ErrorKind, Message, Prompt, RequestError, RequestRecord, RequestSpec,
};

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
/// Idle pooled connections are dropped after this long (below common 5 s server keep-alives).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(3);

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
    inner: Arc<Inner>,
    /// Live counters of the run this handle belongs to, if any.
    progress: Option<Arc<crate::progress::RunProgress>>,
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
        let http = http_client(&cfg)?;
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
            inner: Arc::new(Inner {
                cfg,
                url,
                parsed_url: parsed,
                auth,
            }),
            progress: None,
        })
    }

    /// A handle on the same endpoint, configuration and progress counters with a connection
    /// pool of its own: connections belong to the runtime that opened them, so each of the
    /// runner's send threads gets its own pool.
    pub fn with_own_pool(&self) -> anyhow::Result<Client> {
        Ok(Client {
            http: http_client(&self.inner.cfg)?,
            ..self.clone()
        })
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
        if let Some(p) = &self.progress {
            p.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let mut ex = Exchange::new(spec, epoch);
        let timeout = self.inner.cfg.request_timeout;
        let outcome = {
            let fut = self.exchange(spec, &mut ex);
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
        ex.finish(outcome)
    }

    async fn exchange(&self, spec: &RequestSpec, ex: &mut Exchange) -> Result<(), RequestError> {
        let mut body = Vec::with_capacity(body_size_hint(spec));
        write_body(&self.inner.cfg, spec, &mut body);
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

        ex.record.sent_s = ex.now();
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
                    .map_err(|e| req_err(ErrorKind::Connect, error_chain(&e)))?
            }
            Err(e) => return Err(req_err(ErrorKind::Connect, error_chain(&e))),
        };
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
        Ok(())
    }
}

/// The HTTP client behind a [`Client`]: one connection pool.
fn http_client(cfg: &ClientConfig) -> anyhow::Result<reqwest::Client> {
    super::tls::builder(cfg.ca_cert.as_deref())
        .map_err(anyhow::Error::msg)?
        // Benchmark traffic must go straight to the endpoint, whatever *_PROXY says.
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(usize::MAX)
        // Servers close idle keep-alive connections (uvicorn, which serves vLLM, and
        // llama.cpp after 5 s); reusing one just as it closes fails the request before it is
        // sent. Dropping idle connections sooner costs a reconnect, never a failure.
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .connect_timeout(cfg.request_timeout.min(MAX_CONNECT_TIMEOUT))
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

/// The request body for `spec`: `model`, the prompt (`prompt` on the completions API,
/// `messages` on the chat API), `max_tokens`, `temperature: 0`, `stream: true` with usage
/// reporting, then every key of the config's `extra_body`, then of `spec.extra` (each
/// reporting, then every key of the config's `ca_cert: None,
/// overriding what came before).
pub fn build_body(cfg: &ClientConfig, spec: &RequestSpec) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), Value::String(cfg.model.clone()));
    match cfg.api {
        ApiType::Completions => {
            let prompt = match &spec.prompt {
                Prompt::Text(text) => text.clone(),
                Prompt::Messages(messages) => render_completions_prompt(messages),
            };
            body.insert("prompt".into(), Value::String(prompt));
        }
        ApiType::Chat => {
            let messages = match &spec.prompt {
                Prompt::Text(text) => vec![json!({"role": "user", "content": text})],
                Prompt::Messages(messages) => messages
                    .iter()
                    .map(|m| json!({"role": m.role, "content": m.content}))
                    .collect(),
            };
            body.insert("messages".into(), Value::Array(messages));
        }
    }
    body.insert("max_tokens".into(), json!(spec.max_tokens));
    body.insert("temperature".into(), json!(0));
    body.insert("stream".into(), json!(true));
    body.insert("stream_options".into(), json!({"include_usage": true}));
    for (key, value) in cfg.extra_body.iter().chain(&spec.extra) {
        body.insert(key.clone(), value.clone());
    }
    Value::Object(body)
}

/// Rough size of the serialised body, to allocate it once.
fn body_size_hint(spec: &RequestSpec) -> usize {
    let prompt = match &spec.prompt {
        Prompt::Text(t) => t.len(),
        Prompt::Messages(m) => m.iter().map(|m| m.role.len() + m.content.len() + 40).sum(),
    };
    prompt + 192
}

/// Serialises the same JSON object as [`build_body`] straight into `out`, without building a
/// `serde_json::Value` (per-request maps and string copies were a measurable share of the load
/// generator's cost at thousands of requests per second). An extra field overrides a standard
/// one in place, as in [`build_body`].
fn write_body(cfg: &ClientConfig, spec: &RequestSpec, out: &mut Vec<u8>) {
    let prompt_key = match cfg.api {
        ApiType::Completions => "prompt",
        ApiType::Chat => "messages",
    };
    // The keys `build_body` sets before any extra field, in its order.
    let keys = [
        "model",
        prompt_key,
        "max_tokens",
        "temperature",
        "stream",
        "stream_options",
    ];
    // A key set by the request's extras, else by the config's.
    let extra = |key: &str| spec.extra.get(key).or_else(|| cfg.extra_body.get(key));
    out.push(b'{');
    for (n, key) in keys.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        push_json_str(out, key);
        out.push(b':');
        if let Some(v) = extra(key) {
            push_json(out, v);
            continue;
        }
        match n {
            0 => push_json_str(out, &cfg.model),
            1 => match (&spec.prompt, cfg.api) {
                (Prompt::Text(text), ApiType::Completions) => push_json_str(out, text),
                (Prompt::Messages(m), ApiType::Completions) => {
                    push_json_str(out, &render_completions_prompt(m));
                }
                (Prompt::Text(text), ApiType::Chat) => {
                    out.extend_from_slice(b"[{\"role\":\"user\",\"content\":");
                    push_json_str(out, text);
                    out.extend_from_slice(b"}]");
                }
                (Prompt::Messages(messages), ApiType::Chat) => {
                    out.push(b'[');
                    for (i, m) in messages.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(b"{\"role\":");
                        push_json_str(out, &m.role);
                        out.extend_from_slice(b",\"content\":");
                        push_json_str(out, &m.content);
                        out.push(b'}');
                    }
                    out.push(b']');
                }
            },
            2 => out.extend_from_slice(spec.max_tokens.to_string().as_bytes()),
            3 => out.push(b'0'),
            4 => out.extend_from_slice(b"true"),
            _ => out.extend_from_slice(b"{\"include_usage\":true}"),
        }
    }
    // The config's keys first (with the request's value where it has one), then the request's
    // own new keys: the order `build_body`'s map gets.
    for (key, value) in &cfg.extra_body {
        if !keys.contains(&key.as_str()) {
            push_field(out, key, spec.extra.get(key).unwrap_or(value));
        }
    }
    for (key, value) in &spec.extra {
        if !keys.contains(&key.as_str()) && !cfg.extra_body.contains_key(key) {
            push_field(out, key, value);
        }
    }
    out.push(b'}');
}

fn push_field(out: &mut Vec<u8>, key: &str, value: &Value) {
    out.push(b',');
    push_json_str(out, key);
    out.push(b':');
    push_json(out, value);
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Infallible: serialising a `str` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn push_json(out: &mut Vec<u8>, v: &Value) {
    // Infallible: a `Value` always serialises, and writing into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// Renders a conversation as one completions-API prompt, LMBench's way: `System: …\n`,
/// `User: …\n`, `Assistant: …\n` per message (other roles capitalised the same way), then a
/// trailing `Assistant: ` for the model to continue.
pub fn render_completions_prompt(messages: &[Message]) -> String {
    let len = messages
        .iter()
        .map(|m| m.role.len() + m.content.len() + 3)
        .sum::<usize>();
    let mut out = String::with_capacity(len + 11);
    for m in messages {
        push_role_label(&mut out, &m.role);
        out.push_str(": ");
        out.push_str(&m.content);
        out.push('\n');
    }
    out.push_str("Assistant: ");
    out
}

fn push_role_label(out: &mut String, role: &str) {
    let mut chars = role.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
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

/// One streamed chunk; only the fields the measurement needs, everything else skipped. Text is
/// borrowed from the event's data where it has no escapes, and only the first choice is kept,
/// so a chunk is parsed without allocating.
#[derive(Deserialize)]
struct StreamChunk<'a> {
    #[serde(default, borrow)]
    choices: Option<FirstChoice<'a>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default, borrow)]
    object: Option<Text<'a>>,
    #[serde(default)]
    message: Option<Value>,
}

/// The first element of `choices` (the client asks for one completion), the others skipped.
struct FirstChoice<'a>(Option<Choice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct First<'a>(std::marker::PhantomData<Choice<'a>>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for First<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<Choice<'a>>()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(first))
            }
        }
        d.deserialize_seq(First(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Choice<'a> {
    /// Completions API.
    #[serde(default, borrow)]
    text: Option<Text<'a>>,
    /// Chat API.
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    content: Option<Text<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Text<'a>>,
    #[serde(default, borrow)]
    reasoning: Option<Text<'a>>,
}

/// A JSON string borrowed from the input when it has no escapes, copied when it has.
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a str>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

/// The state of one request while its response streams in.
struct Exchange {
    epoch: Instant,
    record: RequestRecord,
    text: String,
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
                sent_s: now,
                first_token_s: None,
                end_s: now,
                // One allocation for the usual case of one chunk per token.
                chunk_times_s: Vec::with_capacity(spec.max_tokens.min(4096) as usize),
                prompt_tokens: None,
                completion_tokens: None,
                cached_tokens: None,
                client_prompt_tokens: spec.client_prompt_tokens,
                client_completion_tokens: 0,
                max_tokens: spec.max_tokens,
                status: None,
                error: None,
            },
            text: String::new(),
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
            let reasoning = [&delta.reasoning_content, &delta.reasoning]
                .into_iter()
                .any(|r| r.as_deref().is_some_and(|s| !s.is_empty()));
            content |= reasoning;
        }
        if content {
            let r = &mut self.record;
            r.first_token_s.get_or_insert(t);
            r.chunk_times_s.push(t);
            r.client_completion_tokens += 1;
        }
        Ok(())
    }

    /// Closes the record. An error after `[DONE]` (a timeout or cancellation while draining
    /// the end of the body) does not spoil a completed response.
    fn finish(mut self, outcome: Result<(), RequestError>) -> Completed {
        if !self.done {
            self.record.end_s = self.now();
            if let Err(error) = outcome {
                self.record.error = Some(error);
                self.text.clear();
            }
        }
        Completed {
            record: self.record,
            text: self.text,
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
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Mutex;

    use axum::body::{Body, Bytes};
    use axum::extract::{ConnectInfo, State};
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::response::{IntoResponse, Response};

    fn spec(prompt: Prompt) -> RequestSpec {
        RequestSpec {
            id: 7,
            user_id: Some(42),
            round: 2,
            due_s: 1.5,
            prompt,
            max_tokens: 16,
            client_prompt_tokens: 11,
            warmup: false,
            extra: Map::new(),
        }
    }

    fn cfg(base_url: &str, api: ApiType) -> ClientConfig {
        ClientConfig {
            base_url: base_url.to_string(),
            model: "m".to_string(),
            api,
            request_timeout: Duration::from_secs(10),
            api_key: None,
            extra_body: Map::new(),
            ca_cert: None,
        }
    }

    fn conversation() -> Vec<Message> {
        vec![
            Message::new("system", "Be brief."),
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello."),
            Message::new("user", "Bye"),
        ]
    }

    // ---- bodies -------------------------------------------------------------------------

    #[test]
    fn renders_lmbench_prompt() {
        assert_eq!(
            render_completions_prompt(&conversation()),
            "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant: "
        );
        assert_eq!(render_completions_prompt(&[]), "Assistant: ");
        assert_eq!(
            render_completions_prompt(&[Message::new("tool", "x")]),
            "Tool: x\nAssistant: "
        );
    }

    #[test]
    fn completions_body() {
        let c = cfg("http://h", ApiType::Completions);
        let body = build_body(&c, &spec(Prompt::Text("hello".into())));
        assert_eq!(
            body,
            json!({
                "model": "m", "prompt": "hello", "max_tokens": 16, "temperature": 0,
                "stream": true, "stream_options": {"include_usage": true}
            })
        );
        let body = build_body(&c, &spec(Prompt::Messages(conversation())));
        assert_eq!(
            body["prompt"],
            "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant: "
        );
        assert!(body.get("messages").is_none());
    }

    #[test]
    fn chat_body() {
        let c = cfg("http://h", ApiType::Chat);
        let body = build_body(&c, &spec(Prompt::Text("hello".into())));
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": "hello"}])
        );
        assert!(body.get("prompt").is_none());
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        let body = build_body(&c, &spec(Prompt::Messages(conversation())));
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Bye"},
            ])
        );
    }

    #[test]
    fn extra_merged_and_overrides() {
        let mut s = spec(Prompt::Text("x".into()));
        s.extra.insert("ignore_eos".into(), json!(true));
        s.extra.insert("temperature".into(), json!(0.7));
        for api in [ApiType::Completions, ApiType::Chat] {
            let body = build_body(&cfg("http://h", api), &s);
            assert_eq!(body["ignore_eos"], json!(true));
            assert_eq!(body["temperature"], json!(0.7));
            assert_eq!(body["stream"], json!(true));
        }
    }

    /// The body sent on the wire is the same JSON object, key order included, as `build_body`
    /// for every prompt shape, API and combination of extra fields (new keys, overrides of
    /// standard keys, a request overriding its config).
    #[test]
    fn written_body_equals_built_body() {
        let odd = "quote \" backslash \\ newline \n tab \t unicode é 🙂 \u{1}";
        let prompts = [
            Prompt::Text("hello".into()),
            Prompt::Text(odd.into()),
            Prompt::Messages(conversation()),
            Prompt::Messages(vec![Message::new("user", odd)]),
        ];
        let cfg_extras = [
            json!({}),
            json!({"ignore_eos": true}),
            json!({"temperature": 0.5, "top_k": 3, "model": "other", "stream": false}),
            json!({"messages": [], "prompt": "p", "min_tokens": 2}),
        ];
        let spec_extras = [
            json!({}),
            json!({"top_p": 0.9}),
            json!({"top_k": 9, "max_tokens": 3, "ignore_eos": false, "x\"y": [1, {"a": null}]}),
            json!({"stream_options": {"include_usage": false}, "min_tokens": 5}),
        ];
        let mut checked = 0;
        for api in [ApiType::Completions, ApiType::Chat] {
            for ce in &cfg_extras {
                for se in &spec_extras {
                    for p in &prompts {
                        let mut c = cfg("http://h", api);
                        c.model = format!("m/{odd}");
                        c.extra_body = ce.as_object().unwrap().clone();
                        let mut s = spec(p.clone());
                        s.extra = se.as_object().unwrap().clone();
                        let mut out = Vec::new();
                        write_body(&c, &s, &mut out);
                        let written: Value = serde_json::from_slice(&out)
                            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                        let built = build_body(&c, &s);
                        assert_eq!(written, built);
                        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect();
                        let (kw, kb): (Vec<String>, Vec<String>) = (keys(&written), keys(&built));
                        assert_eq!(kw, kb);
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 128);
    }

    #[test]
    fn endpoint_urls() {
        let c = ApiType::Completions;
        assert_eq!(endpoint_url("http://h:1", c), "http://h:1/v1/completions");
        assert_eq!(endpoint_url("http://h:1/", c), "http://h:1/v1/completions");
        assert_eq!(
            endpoint_url("http://h:1/v1/", c),
            "http://h:1/v1/completions"
        );
        assert_eq!(
            endpoint_url("http://h:1/x", ApiType::Chat),
            "http://h:1/x/v1/chat/completions"
        );
    }

    #[test]
    fn rejects_bad_urls_and_hides_key() {
        // https:// is served (rustls); other schemes are not.
        assert!(Client::new(cfg("https://h", ApiType::Chat)).is_ok());
        assert!(Client::new(cfg("ftp://h", ApiType::Chat)).is_err());
        let mut bad_ca = cfg("https://h", ApiType::Chat);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        bad_ca.ca_cert = Some(dir.path().join("ca.pem"));
        let err = Client::new(bad_ca).unwrap_err().to_string();
        assert!(
            err.contains("ca.pem") && err.contains("no certificate"),
            "{err}"
        );
        assert!(Client::new(cfg("not a url", ApiType::Chat)).is_err());
        let mut c = cfg("http://h", ApiType::Chat);
        c.api_key = Some("sk-secret".into());
        assert!(!format!("{c:?}").contains("sk-secret"));
        let client = Client::new(c).unwrap();
        assert!(!format!("{client:?}").contains("sk-secret"));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé…");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }

    #[test]
    fn chunk_text_with_escapes_and_extra_choices() {
        let s = spec(Prompt::Text("x".into()));
        let mut ex = Exchange::new(&s, Instant::now());
        for data in [
            r#"{"choices":[{"text":"a\nb \"q\" \u00e9"},{"text":"ignored"}]}"#,
            r#"{"choices":[{"delta":{"content":"plain"}}],"object":"text_completion"}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"r\tr"}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}}"#,
        ] {
            ex.on_event(SseEventRef::Message { event: None, data }, 1.0)
                .unwrap();
        }
        assert_eq!(ex.text, "a\nb \"q\" éplain");
        let r = &ex.record;
        assert_eq!(r.client_completion_tokens, 3);
        assert_eq!(r.chunk_times_s, vec![1.0; 3]);
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
            (Some(3), Some(3), Some(1))
        );
    }

    #[test]
    fn odd_chunks_never_panic() {
        let s = spec(Prompt::Text("x".into()));
        for data in [
            "null",
            "[]",
            "42",
            "{}",
            r#"{"choices":null}"#,
            r#"{"choices":[]}"#,
            r#"{"choices":[{}]}"#,
            r#"{"choices":[{"text":null,"delta":null}]}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"usage":null}"#,
            r#"{"usage":{"prompt_tokens":-1}}"#,
            r#"{"error":"x"}"#,
            r#"{"object":"error","message":"y"}"#,
        ] {
            let mut ex = Exchange::new(&s, Instant::now());
            let _ = ex.on_event(SseEventRef::Message { event: None, data }, 0.0);
        }
    }

    // ---- a scripted SSE server --------------------------------------------------------

    #[derive(Clone)]
    struct Script {
        status: StatusCode,
        /// Written one by one, each after `delay`.
        pieces: Vec<String>,
        delay: Duration,
        /// Break the connection (no terminating chunk) after the pieces.
        abort: bool,
    }

    impl Script {
        fn ok(pieces: Vec<String>, delay: Duration) -> Self {
            Script {
                status: StatusCode::OK,
                pieces,
                delay,
                abort: false,
            }
        }
    }

    struct Seen {
        path: String,
        headers: HeaderMap,
        body: Value,
        peer: SocketAddr,
    }

    struct ServerState {
        script: Script,
        seen: Mutex<Vec<Seen>>,
        /// When each piece was handed to the connection.
        sent: Arc<Mutex<Vec<Instant>>>,
    }

    async fn handler(
        State(st): State<Arc<ServerState>>,
        ConnectInfo(peer): ConnectInfo<SocketAddr>,
        uri: Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> Response {
        st.seen.lock().unwrap().push(Seen {
            path: uri.path().to_string(),
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            peer,
        });
        let script = st.script.clone();
        if script.status != StatusCode::OK {
            return (script.status, script.pieces.concat()).into_response();
        }
        let sent = st.sent.clone();
        let pieces = script
            .pieces
            .into_iter()
            .map(Some)
            .chain(std::iter::once(None));
        let stream = futures_util::stream::unfold(
            (pieces, sent, script.delay, script.abort),
            |(mut pieces, sent, delay, abort)| async move {
                let item = match pieces.next()? {
                    Some(piece) => {
                        tokio::time::sleep(delay).await;
                        sent.lock().unwrap().push(Instant::now());
                        Ok(Bytes::from(piece))
                    }
                    None if abort => {
                        // Give the last piece time to leave before the connection breaks.
                        tokio::time::sleep(delay).await;
                        Err(std::io::Error::other("abort"))
                    }
                    None => return None,
                };
                Some((item, (pieces, sent, delay, abort)))
            },
        );
        Response::builder()
            .header(CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(stream))
            .unwrap()
    }

    async fn serve(script: Script) -> (String, Arc<ServerState>) {
        let state = Arc::new(ServerState {
            script,
            seen: Mutex::new(Vec::new()),
            sent: Arc::new(Mutex::new(Vec::new())),
        });
        let app = axum::Router::new()
            .fallback(handler)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        (format!("http://{addr}"), state)
    }

    fn sse(v: Value) -> String {
        format!("data: {v}\n\n")
    }

    fn completion_piece(text: &str) -> String {
        sse(json!({"id": "c", "object": "text_completion",
                   "choices": [{"index": 0, "text": text, "finish_reason": null}]}))
    }

    fn chat_piece(delta: Value) -> String {
        sse(json!({"id": "c", "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}))
    }

    fn usage_piece() -> String {
        sse(json!({"id": "c", "choices": [], "usage": {
            "prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16,
            "prompt_tokens_details": {"cached_tokens": 8}}}))
    }

    const DONE: &str = "data: [DONE]\n\n";

    fn at(epoch: Instant, t: Instant) -> f64 {
        t.saturating_duration_since(epoch).as_secs_f64()
    }

    async fn run(c: ClientConfig, s: &RequestSpec) -> Completed {
        let client = Client::new(c).unwrap();
        client
            .send(s, Instant::now(), &CancellationToken::new())
            .await
    }

    fn kind(done: &Completed) -> Option<ErrorKind> {
        done.record.error.as_ref().map(|e| e.kind)
    }

    // ---- real HTTP -------------------------------------------------------------------

    #[tokio::test]
    async fn completions_stream_timed_and_usage_parsed() {
        let delay = Duration::from_millis(40);
        let tokens = ["a", "b", "c", "d", "e"];
        let mut pieces: Vec<String> = tokens.iter().map(|t| completion_piece(t)).collect();
        pieces.push(usage_piece());
        pieces.push(DONE.to_string());
        let (base, st) = serve(Script::ok(pieces, delay)).await;

        let mut c = cfg(&base, ApiType::Completions);
        c.api_key = Some("sk-test".into());
        let client = Client::new(c).unwrap();
        let s = spec(Prompt::Messages(conversation()));
        let epoch = Instant::now();
        let done = client.send(&s, epoch, &CancellationToken::new()).await;
        let r = &done.record;

        assert_eq!(r.error, None);
        assert_eq!(r.status, Some(200));
        assert_eq!(done.text, "abcde");
        assert_eq!((r.id, r.user_id, r.round, r.due_s), (7, Some(42), 2, 1.5));
        assert_eq!((r.client_prompt_tokens, r.max_tokens), (11, 16));
        assert_eq!(r.client_completion_tokens, 5);
        assert_eq!(r.prompt_tokens, Some(11));
        assert_eq!(r.completion_tokens, Some(5));
        assert_eq!(r.cached_tokens, Some(8));

        // Causality against the server's own clock: every content chunk is stamped after
        // the server wrote it (and not absurdly later), and never before the request left.
        let sent = st.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 7);
        assert_eq!(r.chunk_times_s.len(), 5);
        assert_eq!(r.first_token_s, Some(r.chunk_times_s[0]));
        let d = delay.as_secs_f64();
        assert!(r.first_token_s.unwrap() - r.sent_s >= d);
        for (k, t) in r.chunk_times_s.iter().enumerate() {
            let written = at(epoch, sent[k]);
            assert!(*t >= written, "chunk {k}: {t} < {written}");
            assert!(*t - written < 2.0);
        }
        for w in r.chunk_times_s.windows(2) {
            let gap = w[1] - w[0];
            assert!(gap >= d / 2.0 && gap < 2.0, "gap {gap}");
        }
        let span = r.chunk_times_s[4] - r.chunk_times_s[0];
        assert!(span >= 3.5 * d, "span {span}");
        assert!(r.end_s >= at(epoch, sent[6]));
        assert!(r.end_s >= r.chunk_times_s[4] && r.end_s - r.sent_s < 5.0);

        let seen = st.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let req = &seen[0];
        assert_eq!(req.path, "/v1/completions");
        assert_eq!(req.headers["x-user-id"], "42");
        assert_eq!(req.headers["authorization"], "Bearer sk-test");
        assert_eq!(req.body, build_body(client.config(), &s));
    }

    #[tokio::test]
    async fn chat_role_chunk_is_not_a_token_but_reasoning_is() {
        let delay = Duration::from_millis(30);
        let pieces = vec![
            chat_piece(json!({"role": "assistant", "content": ""})),
            chat_piece(json!({"reasoning_content": "hmm"})),
            chat_piece(json!({"content": "Hel"})),
            chat_piece(json!({"content": "lo"})),
            chat_piece(json!({})),
            usage_piece(),
            DONE.to_string(),
        ];
        let (base, st) = serve(Script::ok(pieces, delay)).await;
        let mut s = spec(Prompt::Text("hi".into()));
        s.user_id = None;
        let epoch = Instant::now();
        let client = Client::new(cfg(&base, ApiType::Chat)).unwrap();
        let done = client.send(&s, epoch, &CancellationToken::new()).await;
        let r = &done.record;
        assert_eq!(r.error, None);
        assert_eq!(done.text, "Hello");
        assert_eq!(r.client_completion_tokens, 3);
        let sent = st.sent.lock().unwrap().clone();
        // The first token is the reasoning chunk (the second piece), not the role chunk.
        assert!(r.first_token_s.unwrap() >= at(epoch, sent[1]));
        assert!(r.first_token_s.unwrap() - r.sent_s >= 2.0 * delay.as_secs_f64());
        let seen = st.seen.lock().unwrap();
        assert_eq!(seen[0].path, "/v1/chat/completions");
        assert!(seen[0].headers.get("x-user-id").is_none());
        assert!(seen[0].headers.get("authorization").is_none());
        assert_eq!(seen[0].body["messages"][0]["content"], "hi");
    }

    #[tokio::test]
    async fn events_of_one_network_chunk_share_a_timestamp() {
        let piece = ["x", "y", "z"]
            .iter()
            .map(|t| completion_piece(t))
            .chain([usage_piece(), "data: [DONE]".to_string()])
            .collect::<String>();
        // `[DONE]` without its closing blank line still completes the stream.
        let (base, _) = serve(Script::ok(vec![piece], Duration::ZERO)).await;
        let done = run(
            cfg(&base, ApiType::Completions),
            &spec(Prompt::Text("p".into())),
        )
        .await;
        let r = &done.record;
        assert_eq!(r.error, None);
        assert_eq!(r.chunk_times_s.len(), 3);
        assert!(r.chunk_times_s.iter().all(|t| *t == r.chunk_times_s[0]));
    }

    #[tokio::test]
    async fn missing_usage_is_fine() {
        let mut pieces: Vec<String> = (0..4).map(|_| completion_piece("t")).collect();
        pieces.push(DONE.to_string());
        let (base, _) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
        let done = run(
            cfg(&base, ApiType::Completions),
            &spec(Prompt::Text("p".into())),
        )
        .await;
        let r = &done.record;
        assert_eq!(r.error, None);
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
            (None, None, None)
        );
        assert_eq!(r.client_completion_tokens, 4);
        assert_eq!(r.completion_tokens_best(), 4);
        assert_eq!(r.prompt_tokens_best(), 11);
    }

    #[tokio::test]
    async fn http_500_is_http_status() {
        let script = Script {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            pieces: vec!["engine overloaded".to_string()],
            delay: Duration::ZERO,
            abort: false,
        };
        let (base, _) = serve(script).await;
        let done = run(cfg(&base, ApiType::Chat), &spec(Prompt::Text("p".into()))).await;
        let r = &done.record;
        assert_eq!(kind(&done), Some(ErrorKind::HttpStatus));
        assert_eq!(r.status, Some(500));
        let msg = &r.error.as_ref().unwrap().message;
        assert!(
            msg.contains("500") && msg.contains("engine overloaded"),
            "{msg}"
        );
        assert_eq!(r.first_token_s, None);
        assert!(r.end_s >= r.sent_s);
        assert!(done.text.is_empty());
    }

    #[tokio::test]
    async fn stream_cut_before_done_is_stream_broken() {
        let pieces = vec![completion_piece("a"), completion_piece("b")];
        let (base, _) = serve(Script::ok(pieces, Duration::from_millis(10))).await;
        let done = run(
            cfg(&base, ApiType::Completions),
            &spec(Prompt::Text("p".into())),
        )
        .await;
        let r = &done.record;
        assert_eq!(kind(&done), Some(ErrorKind::StreamBroken));
        assert_eq!(r.status, Some(200));
        assert_eq!(r.chunk_times_s.len(), 2);
        assert_eq!(r.client_completion_tokens, 2);
        assert!(r.first_token_s.is_some());
        assert!(r.end_s >= r.chunk_times_s[1]);
        assert!(done.text.is_empty());
    }

    #[tokio::test]
    async fn connection_broken_mid_body_is_stream_broken() {
        let mut script = Script::ok(vec![completion_piece("a")], Duration::from_millis(10));
        script.abort = true;
        let (base, _) = serve(script).await;
        let done = run(
            cfg(&base, ApiType::Completions),
            &spec(Prompt::Text("p".into())),
        )
        .await;
        assert_eq!(kind(&done), Some(ErrorKind::StreamBroken));
        assert_eq!(done.record.chunk_times_s.len(), 1);
    }

    #[tokio::test]
    async fn invalid_json_is_bad_response() {
        let pieces = vec![
            completion_piece("a"),
            "data: {not json\n\n".to_string(),
            DONE.to_string(),
        ];
        let (base, _) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
        let done = run(
            cfg(&base, ApiType::Completions),
            &spec(Prompt::Text("p".into())),
        )
        .await;
        assert_eq!(kind(&done), Some(ErrorKind::BadResponse));
        assert_eq!(done.record.status, Some(200));
        assert_eq!(done.record.chunk_times_s.len(), 1);
    }

    #[tokio::test]
    async fn error_object_is_bad_response() {
        let pieces = vec![
            chat_piece(json!({"content": "a"})),
            sse(json!({"error": {"message": "boom", "type": "InternalError"}})),
            DONE.to_string(),
        ];
        let (base, _) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
        let done = run(cfg(&base, ApiType::Chat), &spec(Prompt::Text("p".into()))).await;
        assert_eq!(kind(&done), Some(ErrorKind::BadResponse));
        assert!(done.record.error.unwrap().message.contains("boom"));
    }

    #[tokio::test]
    async fn slow_server_times_out() {
        let pieces = vec![completion_piece("a"), DONE.to_string()];
        let (base, _) = serve(Script::ok(pieces, Duration::from_secs(3))).await;
        let mut c = cfg(&base, ApiType::Completions);
        c.request_timeout = Duration::from_millis(300);
        let done = run(c, &spec(Prompt::Text("p".into()))).await;
        let r = &done.record;
        assert_eq!(kind(&done), Some(ErrorKind::Timeout));
        let took = r.end_s - r.sent_s;
        assert!((0.29..2.5).contains(&took), "took {took}");
        assert_eq!(r.first_token_s, None);
    }

    #[tokio::test]
    async fn timeout_covers_the_stream_not_just_the_head() {
        let pieces: Vec<String> = (0..20).map(|_| completion_piece("t")).collect();
        let (base, _) = serve(Script::ok(pieces, Duration::from_millis(50))).await;
        let mut c = cfg(&base, ApiType::Completions);
        c.request_timeout = Duration::from_millis(300);
        let done = run(c, &spec(Prompt::Text("p".into()))).await;
        assert_eq!(kind(&done), Some(ErrorKind::Timeout));
        assert_eq!(done.record.status, Some(200));
        assert!(!done.record.chunk_times_s.is_empty());
    }

    #[tokio::test]
    async fn cancellation_is_cancelled() {
        let pieces: Vec<String> = (0..20).map(|_| completion_piece("t")).collect();
        let (base, _) = serve(Script::ok(pieces, Duration::from_millis(50))).await;
        let client = Client::new(cfg(&base, ApiType::Completions)).unwrap();
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            trigger.cancel();
        });
        let done = client
            .send(&spec(Prompt::Text("p".into())), Instant::now(), &cancel)
            .await;
        assert_eq!(kind(&done), Some(ErrorKind::Cancelled));
        assert!(done.record.chunk_times_s.len() < 20);

        // Already cancelled: nothing is waited for.
        let done = client
            .send(&spec(Prompt::Text("p".into())), Instant::now(), &cancel)
            .await;
        assert_eq!(kind(&done), Some(ErrorKind::Cancelled));
    }

    #[tokio::test]
    async fn refused_connection_is_connect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let done = run(
            cfg(&format!("http://{addr}"), ApiType::Completions),
            &spec(Prompt::Text("p".into())),
        )
        .await;
        assert_eq!(kind(&done), Some(ErrorKind::Connect));
        assert_eq!(done.record.status, None);
        assert!(done.record.end_s >= done.record.sent_s);
    }

    #[tokio::test]
    async fn connection_reused_after_done() {
        let pieces = vec![completion_piece("a"), usage_piece(), DONE.to_string()];
        let (base, st) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
        let client = Client::new(cfg(&base, ApiType::Completions)).unwrap();
        let s = spec(Prompt::Text("p".into()));
        for _ in 0..3 {
            let done = client
                .send(&s, Instant::now(), &CancellationToken::new())
                .await;
            assert_eq!(done.record.error, None);
        }
        let seen = st.seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|r| r.peer == seen[0].peer));
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_client() {
        let pieces = vec![
            completion_piece("a"),
            completion_piece("b"),
            DONE.to_string(),
        ];
        let (base, st) = serve(Script::ok(pieces, Duration::from_millis(20))).await;
        let client = Client::new(cfg(&base, ApiType::Completions)).unwrap();
        let epoch = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let client = client.clone();
            let mut s = spec(Prompt::Text("p".into()));
            s.id = i;
            tasks.push(tokio::spawn(async move {
                client.send(&s, epoch, &CancellationToken::new()).await
            }));
        }
        for (i, task) in tasks.into_iter().enumerate() {
            let done = task.await.unwrap();
            assert_eq!(done.record.error, None);
            assert_eq!(done.record.id, i as u64);
            assert_eq!(done.text, "ab");
        }
        assert_eq!(st.seen.lock().unwrap().len(), 16);
    }

    /// A server that answers the first request of a connection with a complete stream, keeps
    /// the connection open, and closes it without answering when a second request arrives on
    /// it (as llama.cpp's HTTP server does at its per-connection request limit).
    async fn closing_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut answered = false;
                    loop {
                        // One read holds one small request here (loopback, tiny body).
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        seen.fetch_add(1, Ordering::SeqCst);
                        if answered {
                            return; // close without a response
                        }
                        answered = true;
                        let body = format!(
                            "{}{}data: [DONE]\n\n",
                            completion_piece("hi"),
                            usage_piece()
                        );
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        if sock.write_all(head.as_bytes()).await.is_err()
                            || sock.write_all(body.as_bytes()).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}"), requests)
    }

    #[tokio::test]
    async fn a_reused_connection_closed_by_the_server_is_resent_once() {
        let (base, requests) = closing_server().await;
        let client = Client::new(cfg(&base, ApiType::Completions)).unwrap();
        let s = spec(Prompt::Text("x".into()));
        let epoch = Instant::now();
        let cancel = CancellationToken::new();
        let first = client.send(&s, epoch, &cancel).await;
        assert!(first.record.ok(), "{:?}", first.record.error);
        let second = client.send(&s, epoch, &cancel).await;
        assert!(second.record.ok(), "{:?}", second.record.error);
        assert_eq!(second.text, "hi");
        // The second request reached the closing connection, then a fresh one.
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
