//! The OpenAI-compatible streaming client: turns a [`RequestSpec`](crate::record::RequestSpec)
//! into a [`Completed`](crate::record::Completed) record with per-chunk timings.
//!
//! - [`sse`]: incremental server-sent-events decoder.
//! - [`openai`]: request bodies, the HTTP client, timing and error classification.
//! - [`tls`]: `https://` (rustls, one crypto provider, optional private CA).

pub mod openai;
pub mod sse;
pub mod tls;

pub use openai::{build_body, render_completions_prompt, Client, ClientConfig};
pub use sse::{SseDecoder, SseEvent, SseTail};
