//! The OpenAI-compatible streaming client: turns a [`RequestSpec`](crate::record::RequestSpec)
//! into a [`Completed`](crate::record::Completed) record with per-chunk timings.
//!
//! - [`sse`]: incremental server-sent-events decoder.
//! - [`openai`]: the HTTP client, timing and error classification; `body` writes the request
//!   body, `chunk` reads a streamed chunk.
//! - [`connections`]: which requests waited for a new connection, and for how long.
//! - [`tls`]: `https://` (rustls, one crypto provider, optional private CA).

mod body;
mod chunk;
pub mod connections;
pub mod openai;
pub mod sse;
#[cfg(test)]
pub(crate) mod test_support;
pub mod tls;

pub use body::{build_body, render_completions_prompt};
pub use openai::{Client, ClientConfig};
pub use sse::{SseDecoder, SseEvent, SseTail};
