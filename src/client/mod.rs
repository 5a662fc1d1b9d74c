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

pub use body::{build_body, render_completions_prompt, HoleBody};
pub use openai::{BodyWriter, Client, ClientConfig, Tail};
pub use sse::{SseDecoder, SseEvent, SseTail};

/// Counts tokens of text the way the run counts its prompts. The client counts the generated
/// text of each request with it when a run gives it one ([`Client::with_token_counter`]);
/// implemented by the workloads' prompt builder, so that client counts of prompts and of
/// completions come from the same tokenizer.
pub trait TokenCounter: Send + Sync {
    /// The number of tokens in `text`.
    fn count(&self, text: &str) -> usize;
}
