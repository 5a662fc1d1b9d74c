//! The OpenAI-compatible streaming client: turns a [`RequestSpec`](crate::record::RequestSpec)
//! into a [`Completed`](crate::record::Completed) record with per-chunk timings.
//!
//! - [`sse`]: incremental server-sent-events decoder.
//! - [`openai`]: the HTTP client, timing and error classification; `body` writes the request
//!   body, `chunk` reads a streamed chunk.
//! - [`tls`]: `https://` (rustls, one crypto provider, optional private CA).

mod body;
mod chunk;
pub mod openai;
pub mod sse;
pub mod tls;

pub use body::{build_body, render_completions_prompt};
pub use openai::{Client, ClientConfig};
pub use sse::{SseDecoder, SseEvent, SseTail};
