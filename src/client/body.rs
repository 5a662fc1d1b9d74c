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
    write_body_with_hole(cfg, spec, None, out);
}

/// [`write_body`], also giving where in `out` the content of message `hole` of the prompt
/// begins (inside its JSON string), if the prompt has such a message: a turn built before the
/// answer it carries leaves that message empty, and the answer is put in there later
/// ([`HoleBody`]).
pub(super) fn write_body_with_hole(
    cfg: &ClientConfig,
    spec: &RequestSpec,
    hole: Option<usize>,
    out: &mut Vec<u8>,
) -> Option<usize> {
    let mut at = None;
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
                    // `render_completions_prompt`, escaped piece by piece as it is written.
                    out.push(b'"');
                    let mut label = String::new();
                    for (i, m) in m.iter().enumerate() {
                        label.clear();
                        push_role_label(&mut label, &m.role);
                        label.push_str(": ");
                        push_escaped(out, &label);
                        if Some(i) == hole {
                            at = Some(out.len());
                        }
                        push_escaped(out, &m.content);
                        out.extend_from_slice(b"\\n");
                    }
                    out.extend_from_slice(b"Assistant: \"");
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
                        if Some(i) == hole {
                            at = Some(out.len() + 1);
                        }
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
    at
}

/// A request body written before the answer it carries: the body up to that message's content,
/// in a buffer with room for the answer, and the rest of the body.
#[derive(Debug, Clone)]
pub struct HoleBody {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl HoleBody {
    /// Splits a body written with an empty message content at `at`, leaving room after the
    /// head for `answer_room` bytes of answer.
    pub(super) fn new(mut body: Vec<u8>, at: usize, answer_room: usize) -> HoleBody {
        let tail = body.split_off(at);
        body.reserve_exact(answer_room + tail.len());
        HoleBody { head: body, tail }
    }

    /// The body with `text` put in as the message's content: the same bytes as writing the
    /// whole body with that content. The head was written into the final buffer ahead of time,
    /// so filling in appends only the answer and the short rest: with a long history, copying
    /// the head (and faulting in fresh pages for it) took a few hundred microseconds on the
    /// thread that sends the turn.
    pub fn fill(self, text: &str) -> bytes::Bytes {
        let mut out = self.head;
        push_escaped(&mut out, text);
        out.extend_from_slice(&self.tail);
        out.into()
    }
}

fn push_field(out: &mut Vec<u8>, key: &str, value: &Value) {
    out.push(b',');
    push_json_str(out, key);
    out.push(b':');
    push_json(out, value);
}

/// Writes `s` as a JSON string, byte for byte what `serde_json` writes.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_escaped(out, s);
    out.push(b'"');
}

/// Bytes scanned together when looking for the next byte that needs escaping.
const SCAN: usize = 16;

/// True for the bytes JSON strings must escape: control characters, `"` and `\`.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Writes the inside of the JSON string for `s`, escaped exactly as `serde_json` escapes it
/// (`\"`, `\\`, `\b \f \n \r \t`, other control characters as `\u00xx`). Long prompts are
/// almost all plain text: runs without anything to escape are found [`SCAN`] bytes at a time
/// (a loop the compiler turns into vector compares) and copied whole, which writes a
/// 20,000-token history several times faster than escaping byte by byte did (the builder writes
/// such a body for every turn of a long conversation).
fn push_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        while i + SCAN <= bytes.len()
            && !bytes[i..i + SCAN]
                .iter()
                .fold(false, |any, &b| any | needs_escape(b))
        {
            i += SCAN;
        }
        let Some(&b) = bytes.get(i) else { break };
        if needs_escape(b) {
            out.extend_from_slice(&bytes[start..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 0xf) as usize]);
                }
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ASCII byte, and a byte that needs escaping at every offset of a string longer than
    /// several scan blocks (before, inside and after a block, at both ends), is written exactly
    /// as `serde_json` writes it.
    #[test]
    fn escaping_matches_serde_json_at_every_position() {
        let ascii: String = (0u8..128).map(char::from).collect();
        let mut cases = vec![String::new(), ascii, "é 🙂 \u{7f}".to_string()];
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', '\u{8}'] {
            for at in 0..3 * SCAN + 1 {
                let mut s: String = "abcdefghij".repeat(5)[..3 * SCAN + 1].to_string();
                s.insert(at, special);
                cases.push(s);
            }
        }
        for s in &cases {
            let mut out = Vec::new();
            push_json_str(&mut out, s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
        }
    }
}
