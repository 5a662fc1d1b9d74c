//! Prompts of exact token lengths, offline.
//!
//! The counting tokenizer is tiktoken's `cl100k_base` (embedded in the binary; the closest
//! built-in vocabulary to Llama 3's). Filler text is drawn from a pool of common English words
//! `w` for which `" " + w` is exactly one token. Because the tokenizer's pre-tokenizer splits
//! before each space-led word and merges never cross that boundary, `n` such words appended to
//! any text add exactly `n` tokens. The server's own tokenizer may count differently; lmbench
//! records the server's `usage` next to this count and reports the disagreement. A workload's
//! optional `TOKENIZER` key names a local `tokenizer.json` to count with instead.

use crate::client::render_completions_prompt;
use crate::record::{ApiType, Message, Prompt};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tiktoken_rs::CoreBPE;

/// Candidate filler words; only those that are one cl100k token with a leading space are used.
const CANDIDATES: &[&str] = &[
    "the",
    "time",
    "people",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "river",
    "garden",
    "light",
    "music",
    "paper",
    "table",
    "window",
    "market",
    "summer",
    "winter",
    "road",
    "tree",
    "stone",
    "river",
    "ocean",
    "green",
    "blue",
    "small",
    "large",
    "happy",
    "quick",
    "simple",
    "clear",
    "early",
    "open",
    "strong",
    "warm",
];

/// The tokenizer that counts tokens.
enum Counter {
    /// tiktoken's cl100k_base, embedded.
    Tiktoken(&'static CoreBPE),
    /// A Hugging Face `tokenizer.json` loaded from disk.
    Hf(Box<tokenizers::Tokenizer>),
}

/// Builds prompt text with exact token counts.
pub struct PromptBuilder {
    counter: Counter,
    words: Vec<String>,
    name: String,
    /// [`Self::tail_tokens`] on the completions API, once counted.
    tail: OnceLock<usize>,
    /// Bytes of text counted so far: what the tokenizer had to read (tests check that a
    /// multi-turn workload counts only a turn's new messages).
    counted_bytes: AtomicU64,
}

/// Fewest filler words a tokenizer must offer.
const MIN_POOL: usize = 8;

impl PromptBuilder {
    /// The default builder: tiktoken `cl100k_base` (the vocabulary loads once, in about 100 ms).
    pub fn global() -> Arc<PromptBuilder> {
        static B: OnceLock<Arc<PromptBuilder>> = OnceLock::new();
        B.get_or_init(|| {
            let bpe = tiktoken_rs::cl100k_base_singleton();
            let mut words: Vec<String> = CANDIDATES
                .iter()
                .filter(|w| bpe.encode_ordinary(&format!(" {w}")).len() == 1)
                .map(|w| w.to_string())
                .collect();
            words.sort_unstable();
            words.dedup();
            Arc::new(PromptBuilder {
                counter: Counter::Tiktoken(bpe),
                words,
                name: "tiktoken:cl100k_base".into(),
                tail: OnceLock::new(),
                counted_bytes: AtomicU64::new(0),
            })
        })
        .clone()
    }

    /// A builder of its own with the default tokenizer (not the shared one), so that its
    /// [`Self::counted_bytes`] covers one test's work only.
    #[cfg(test)]
    pub(crate) fn private_copy() -> Arc<PromptBuilder> {
        let g = PromptBuilder::global();
        let Counter::Tiktoken(bpe) = &g.counter else {
            unreachable!("the global builder uses tiktoken")
        };
        Arc::new(PromptBuilder {
            counter: Counter::Tiktoken(bpe),
            words: g.words.clone(),
            name: g.name.clone(),
            tail: OnceLock::new(),
            counted_bytes: AtomicU64::new(0),
        })
    }

    /// Bytes of text this builder has counted tokens of so far.
    pub fn counted_bytes(&self) -> u64 {
        self.counted_bytes.load(Ordering::Relaxed)
    }

    /// A builder counting with a local Hugging Face `tokenizer.json` (no hub access). Filler
    /// words are those of the candidate list, or of the vocabulary itself, that encode to one
    /// token after a space; the file is loaded once per process.
    pub fn from_tokenizer_file(path: &Path) -> Result<Arc<PromptBuilder>, String> {
        static CACHE: OnceLock<Mutex<HashMap<PathBuf, Arc<PromptBuilder>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(b) = cache.lock().ok().and_then(|c| c.get(path).cloned()) {
            return Ok(b);
        }
        let tok = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| format!("cannot load tokenizer {}: {e}", path.display()))?;
        let single = |w: &str| {
            tok.encode(format!(" {w}"), false)
                .map(|e| e.get_ids().len() == 1)
                .unwrap_or(false)
        };
        let mut words: Vec<String> = CANDIDATES
            .iter()
            .filter(|w| single(w))
            .map(|w| w.to_string())
            .collect();
        if words.len() < 64 {
            // Small vocabularies: take whole-word tokens from the vocabulary itself.
            let mut vocab: Vec<(String, u32)> = tok.get_vocab(false).into_iter().collect();
            vocab.sort_by_key(|(_, id)| *id);
            for (_, id) in vocab {
                let Ok(text) = tok.decode(&[id], false) else {
                    continue;
                };
                let w = text.trim();
                if text.starts_with(' ')
                    && w.len() >= 3
                    && w.chars().all(|c| c.is_ascii_alphabetic())
                    && single(w)
                {
                    words.push(w.to_string());
                }
                if words.len() >= 256 {
                    break;
                }
            }
        }
        words.sort_unstable();
        words.dedup();
        if words.len() < MIN_POOL {
            return Err(format!(
                "tokenizer {} has too few single-token words ({}) to build prompts of exact length",
                path.display(),
                words.len()
            ));
        }
        let b = Arc::new(PromptBuilder {
            counter: Counter::Hf(Box::new(tok)),
            words,
            name: format!("tokenizer.json:{}", path.display()),
            tail: OnceLock::new(),
            counted_bytes: AtomicU64::new(0),
        });
        if let Ok(mut c) = cache.lock() {
            c.insert(path.to_path_buf(), b.clone());
        }
        Ok(b)
    }

    /// Name of the counting tokenizer, as written in result files.
    pub fn tokenizer_name(&self) -> &str {
        &self.name
    }

    /// Number of tokens in `text` (no special tokens added).
    pub fn count(&self, text: &str) -> usize {
        self.counted_bytes
            .fetch_add(text.len() as u64, Ordering::Relaxed);
        match &self.counter {
            Counter::Tiktoken(bpe) => bpe.encode_ordinary(text).len(),
            Counter::Hf(t) => t
                .encode(text, false)
                .map(|e| e.get_ids().len())
                .unwrap_or(0),
        }
    }

    /// The client-side count of a prompt as it is sent: on the completions API the rendered
    /// prompt (role labels, newlines and the trailing `Assistant: ` included, as the server
    /// tokenizes it); on the chat API the message contents only (the server adds its chat
    /// template, which the client cannot know), hence labelled as content tokens in results.
    pub fn prompt_tokens(&self, api: ApiType, prompt: &Prompt) -> usize {
        match prompt {
            Prompt::Text(t) => self.count(t),
            Prompt::Messages(ms) => {
                ms.iter()
                    .map(|m| self.message_tokens(api, m))
                    .sum::<usize>()
                    + self.tail_tokens(api)
            }
        }
    }

    /// One message's share of [`Self::prompt_tokens`]: on the completions API its rendered line
    /// (`Role: content\n`), on the chat API its content. A rendered line ends in a newline
    /// and the next starts with a letter, a split the pre-tokenizer always makes, so the lines'
    /// counts add up to the whole prompt's (a test checks it): multi-turn workloads count each
    /// message once and keep a running sum instead of re-tokenizing the whole history each turn.
    pub fn message_tokens(&self, api: ApiType, m: &Message) -> usize {
        match api {
            ApiType::Chat => self.count(&m.content),
            ApiType::Completions => {
                self.count(&render_completions_prompt(std::slice::from_ref(m)))
                    - self.tail_tokens(api)
            }
        }
    }

    /// Tokens the completions API's rendering adds after the last message (`Assistant: `); 0 on
    /// the chat API.
    pub fn tail_tokens(&self, api: ApiType) -> usize {
        match api {
            ApiType::Chat => 0,
            ApiType::Completions => *self
                .tail
                .get_or_init(|| self.count(&render_completions_prompt(&[]))),
        }
    }

    /// Exactly `n` tokens of filler, each word preceded by a space, drawn with `rng`.
    pub fn filler(&self, n: usize, rng: &mut ChaCha8Rng) -> String {
        let mut s = String::with_capacity(n * 7);
        for _ in 0..n {
            let w = &self.words[rng.random_range(0..self.words.len())];
            s.push(' ');
            s.push_str(w);
        }
        s
    }

    /// Filler from a seed: the same seed and length always give the same text.
    pub fn filler_seeded(&self, n: usize, seed: u64) -> String {
        self.filler(n, &mut ChaCha8Rng::seed_from_u64(seed))
    }

    /// How many single-token words the pool holds.
    pub fn pool_size(&self) -> usize {
        self.words.len()
    }
}

/// The client counts generated text with the run's prompt builder, so that the client's
/// completion counts come from the tokenizer that counted the prompts.
impl crate::client::TokenCounter for PromptBuilder {
    fn count(&self, text: &str) -> usize {
        PromptBuilder::count(self, text)
    }
}

/// Mix several values into one seed (splitmix64 steps), for per-user or per-request streams.
pub fn mix_seed(parts: &[u64]) -> u64 {
    let mut x: u64 = 0x243F_6A88_85A3_08D3;
    for p in parts {
        x ^= p.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_is_large_enough() {
        assert!(PromptBuilder::global().pool_size() >= 50);
    }

    #[test]
    fn filler_has_exact_length_after_any_prefix() {
        let b = PromptBuilder::global();
        for (prefix, n) in [
            ("Hi, here's some system prompt:", 1usize),
            ("Here are some other context: user_17", 37),
            ("", 500),
            ("Question 3 for user 9:", 4000),
        ] {
            let f = b.filler_seeded(n, n as u64);
            assert_eq!(b.count(&f), n, "filler alone");
            let with_prefix = format!("{prefix}{f}");
            assert_eq!(
                b.count(&with_prefix),
                b.count(prefix) + n,
                "after `{prefix}`"
            );
            let with_suffix = format!("{with_prefix}. Please provide a detailed response.");
            assert_eq!(
                b.count(&with_suffix),
                b.count(prefix) + n + b.count(". Please provide a detailed response."),
            );
        }
    }

    /// Message counts add up to the whole rendered prompt's count, on both APIs, for messages
    /// of every kind the workloads send (long filler, punctuation and newlines at the ends).
    #[test]
    fn message_counts_add_up_to_the_rendered_prompt() {
        let b = PromptBuilder::global();
        let history = [
            Message::new(
                "system",
                format!("You are helpful.{}", b.filler_seeded(300, 1)),
            ),
            Message::new(
                "user",
                format!(
                    "Hi, here's some context: user_7{}.Question #1?",
                    b.filler_seeded(900, 2)
                ),
            ),
            Message::new("assistant", "Here's story #1: once upon a time...\n\n"),
            Message::new("user", "  Agent 2: and then?\n"),
            Message::new("assistant", "It ended  "),
            Message::new("user", "Why? 123456"),
        ];
        for api in [ApiType::Completions, ApiType::Chat] {
            for n in 0..=history.len() {
                let p = Prompt::Messages(history[..n].to_vec());
                let whole = match (api, &p) {
                    (ApiType::Completions, Prompt::Messages(ms)) => {
                        b.count(&render_completions_prompt(ms))
                    }
                    (_, Prompt::Messages(ms)) => ms.iter().map(|m| b.count(&m.content)).sum(),
                    _ => unreachable!(),
                };
                assert_eq!(b.prompt_tokens(api, &p), whole, "{api:?}, {n} messages");
            }
        }
        assert_eq!(b.tail_tokens(ApiType::Chat), 0);
        assert!(b.tail_tokens(ApiType::Completions) >= 2);
    }

    #[test]
    fn filler_is_deterministic_per_seed() {
        let b = PromptBuilder::global();
        assert_eq!(b.filler_seeded(64, 7), b.filler_seeded(64, 7));
        assert_ne!(b.filler_seeded(64, 7), b.filler_seeded(64, 8));
    }
}
