//! The request body of one streaming request: the same JSON object whether built as a value
//! ([`build_body`], for tests and readers) or written straight to bytes (what is sent; a test
//! compares the two), and the completions-API rendering of a conversation.

use serde_json::{json, Map, Value};

use super::ClientConfig;
use crate::record::{ApiType, Message, Prompt, RequestSpec};

/// The request body for `spec`: `model`, the prompt (`prompt` on the completions API,
/// `messages` on the chat API), `max_tokens`, `temperature: 0`, `stream: true` with usage
/// reporting, then every key of the config's `extra_body`, then of `spec.extra` (each
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
pub(super) fn body_size_hint(spec: &RequestSpec) -> usize {
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
pub(super) fn write_body(cfg: &ClientConfig, spec: &RequestSpec, out: &mut Vec<u8>) {
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
