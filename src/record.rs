//! The two plain data types that cross the load path: a [`RequestSpec`] (what a workload wants
//! sent, and when) and a [`RequestRecord`] (what happened when the client sent it).
//!
//! Workloads produce specs; the runner schedules them; the client turns each into a record;
//! `measure` summarises records and `results` writes them. Times in a record are seconds since
//! the run's epoch (an `Instant` taken when the run starts), so records are comparable within a
//! run without wall-clock jumps; the run's wall-clock start is stored once beside them.

use serde::{Deserialize, Serialize};

/// Which OpenAI-compatible endpoint a baseline serves requests on (`apiType` in a spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApiType {
    /// `POST /v1/completions` with a `prompt` string.
    #[default]
    Completions,
    /// `POST /v1/chat/completions` with a `messages` list.
    Chat,
}

impl ApiType {
    /// The value as written in spec files and result JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiType::Completions => "completions",
            ApiType::Chat => "chat",
        }
    }
}

/// One chat message (role + content), used for both APIs: the completions API renders the
/// list LMBench's way (`System: …\nUser: …\nAssistant: `).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with the given role and text.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Message {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// What to send: either a ready prompt string or a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// A single prompt string (sent as one user message on the chat API).
    Text(String),
    /// A conversation (rendered LMBench's way on the completions API).
    Messages(Vec<Message>),
}

/// A request a workload wants sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSpec {
    /// Unique within a run, assigned by the workload in creation order.
    pub id: u64,
    /// Sent as the `x-user-id` header (session routers use it); `None` sends no header.
    pub user_id: Option<u64>,
    /// Round (turn) number within the user's conversation, from 1; 0 where it has no meaning.
    pub round: u32,
    /// Seconds after the run's start at which the request is due (open loop: the runner sends it
    /// then, whatever earlier requests are doing).
    pub due_s: f64,
    /// For a turn that waits for an earlier answer: when it would have been due had every
    /// earlier answer of its conversation come in time (its slot in the workload's schedule).
    /// `due_s` is later than the slot when the answer came late. `None`: the request waits for
    /// nothing, its slot is `due_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_s: Option<f64>,
    /// The prompt.
    pub prompt: Prompt,
    /// `max_tokens` for the request.
    pub max_tokens: u32,
    /// The client-side token count of the prompt as sent (tiktoken unless a tokenizer is
    /// configured; see `PromptBuilder::prompt_tokens`): on the completions API the whole
    /// rendered prompt, on the chat API the message contents (the server's chat template is not
    /// counted). Kept next to the server's `usage.prompt_tokens`.
    pub client_prompt_tokens: u64,
    /// Warmup requests are sent and recorded but excluded from every metric.
    pub warmup: bool,
    /// Extra fields merged into the request body (e.g. `ignore_eos`, `temperature`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl RequestSpec {
    /// A copy without the prompt (an empty text): what is known about a request once its body
    /// is written, at a fraction of a long conversation's copying cost.
    pub fn without_prompt(&self) -> RequestSpec {
        RequestSpec {
            id: self.id,
            user_id: self.user_id,
            round: self.round,
            due_s: self.due_s,
            slot_s: self.slot_s,
            prompt: Prompt::Text(String::new()),
            max_tokens: self.max_tokens,
            client_prompt_tokens: self.client_prompt_tokens,
            warmup: self.warmup,
            extra: self.extra.clone(),
        }
    }
}

/// Why a request did not complete normally. Errors are data: counted by kind, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Could not connect or the connection broke before a response.
    Connect,
    /// The server answered with a non-2xx status.
    HttpStatus,
    /// The per-request timeout expired.
    Timeout,
    /// The response stream broke off or ended without `[DONE]`.
    StreamBroken,
    /// The stream carried data that is not valid SSE/JSON, or an error object.
    BadResponse,
    /// The run was cancelled while the request was in flight.
    Cancelled,
}

impl ErrorKind {
    /// Stable name used in result files.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Timeout => "timeout",
            ErrorKind::StreamBroken => "stream_broken",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

/// A failed request's cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestError {
    /// The class of failure.
    pub kind: ErrorKind,
    /// Human-readable detail (status line, server message, I/O error), truncated.
    pub message: String,
}

/// What happened to one request. One line of `<run>.requests.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The spec's id.
    pub id: u64,
    /// The spec's user id.
    pub user_id: Option<u64>,
    /// The spec's round.
    pub round: u32,
    /// Whether this was a warmup request (excluded from metrics).
    pub warmup: bool,
    /// When it was due (seconds since run start).
    pub due_s: f64,
    /// The spec's slot ([`RequestSpec::slot_s`]); `None`: the slot is `due_s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_s: Option<f64>,
    /// When the client started sending it: the request was handed to the HTTP client, before
    /// a connection was taken from the pool or opened. TTFT and E2E latency count from here, so
    /// the set-up of a new connection is inside them; `connect_ms` says how much of it.
    pub sent_s: f64,
    /// Whether the request waited for a new connection: `Some(true)` when the connection it
    /// went out on was opened for it (ready only after the request was sent), `Some(false)`
    /// when it went out on a connection that was already open (kept in the pool). `None` when
    /// not known: no response head came back (a failed connect, a timeout or cancellation
    /// before the head), or a record written before lmbench recorded connections.
    #[serde(default)]
    pub new_connection: Option<bool>,
    /// With `new_connection` true: milliseconds of this request's time spent setting up that
    /// connection, from the later of the send and the start of the connect (name lookup, TCP,
    /// TLS) until the connection was ready, plus, on a port-forwarded baseline, the set-up of the
    /// forwarded stream. It is part of the TTFT, not in addition to it. `None` otherwise.
    #[serde(default)]
    pub connect_ms: Option<f64>,
    /// When the first chunk carrying generated content arrived; `None` if none did.
    pub first_token_s: Option<f64>,
    /// When the response ended (last byte, error or timeout).
    pub end_s: f64,
    /// Arrival time of every chunk that carried generated content, in order (the first equals
    /// `first_token_s`). Per-chunk inter-token latencies are the differences.
    pub chunk_times_s: Vec<f64>,
    /// `usage.prompt_tokens` from the server, if it reported usage.
    pub prompt_tokens: Option<u64>,
    /// `usage.completion_tokens` from the server, if it reported usage.
    pub completion_tokens: Option<u64>,
    /// `usage.prompt_tokens_details.cached_tokens`, if reported.
    pub cached_tokens: Option<u64>,
    /// The client's count of the prompt (see [`RequestSpec::client_prompt_tokens`]).
    pub client_prompt_tokens: u64,
    /// The client's count of generated tokens: the generated text (answer and reasoning)
    /// counted with the run's tokenizer (the one that counts the prompts). A client without a
    /// tokenizer (and records written before lmbench counted text) hold the number of content
    /// chunks instead.
    pub client_completion_tokens: u64,
    /// Content chunks received: chunks that carried generated text or reasoning (the length of
    /// `chunk_times_s`). Servers that send one token per chunk make it the token count; 0 in
    /// records written before lmbench recorded it.
    #[serde(default)]
    pub content_chunks: u64,
    /// The `max_tokens` asked for.
    pub max_tokens: u32,
    /// HTTP status, if a response started.
    pub status: Option<u16>,
    /// The failure, if any. `None` means the stream completed with `[DONE]` after at least one
    /// content chunk (a stream with no content at all is a `bad_response` failure, unless
    /// `max_tokens` was 0).
    pub error: Option<RequestError>,
}

impl RequestRecord {
    /// When the request was due had every earlier answer of its conversation come in time.
    pub fn slot(&self) -> f64 {
        self.slot_s.unwrap_or(self.due_s)
    }

    /// True if the request completed without error.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Prompt tokens: the server's count when reported, else the client's.
    pub fn prompt_tokens_best(&self) -> u64 {
        self.prompt_tokens.unwrap_or(self.client_prompt_tokens)
    }

    /// Generated tokens: the server's count when reported, else the client's.
    pub fn completion_tokens_best(&self) -> u64 {
        self.completion_tokens
            .unwrap_or(self.client_completion_tokens)
    }
}

/// A record plus the generated text, which multi-round workloads append to the history.
/// The text is not written to result files.
#[derive(Debug, Clone)]
pub struct Completed {
    /// What happened.
    pub record: RequestRecord,
    /// The generated text (empty on failure).
    pub text: String,
    /// The turn that was waiting for this answer, if the workload built it ahead
    /// ([`crate::workload::Workload::turn_ahead`]) and the runner sent it (or queued it for its
    /// slot) the moment the answer arrived: its spec without the prompt, so that the workload
    /// records that turn instead of building it.
    pub follow_up: Option<RequestSpec>,
}
