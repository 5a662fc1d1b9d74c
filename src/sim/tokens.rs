//! The simulator's tokenizer and text generator: a word is a token.
//!
//! Prompts are split on whitespace and every word counts as one token, identified by a stable
//! 64-bit hash of its bytes. lmbench's prompt builder uses words that are single tokens for
//! real tokenizers too, so the sim's counts agree with the client's for synthetic prompts.
//! Generated text is a sequence of words from [`VOCAB`], each with a leading space, chosen by a
//! ChaCha8 generator seeded from the configured seed and the prompt's tokens: the same prompt
//! always gives the same text.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// The words generated text is made of. Each is a single token with a leading space for the
/// common BPE vocabularies (checked for cl100k_base and o200k_base by a test), so generated text
/// that workloads feed back into later prompts keeps the sim's and the client's counts equal.
pub const VOCAB: [&str; 48] = [
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "with", "as", "at", "by", "from",
    "that", "this", "it", "be", "are", "have", "not", "but", "they", "we", "you", "one", "all",
    "time", "people", "water", "world", "year", "day", "work", "life", "city", "house", "light",
    "music", "river", "story", "market", "road", "paper", "table", "letter", "stone", "green",
];

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `bytes`, continuing from `state`. Chosen over `std`'s hasher because its output
/// is fixed forever, which seeded determinism needs.
pub fn fnv1a(state: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(state, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// Combines two 64-bit values into one hash (order matters).
pub fn mix(a: u64, b: u64) -> u64 {
    fnv1a(fnv1a(FNV_OFFSET, &a.to_le_bytes()), &b.to_le_bytes())
}

/// The token id (hash) of one word.
pub fn word_token(word: &str) -> u64 {
    fnv1a(FNV_OFFSET, word.as_bytes())
}

/// The token id (hash) of a numeric token id sent in a `prompt` array; tagged so it cannot
/// collide with a word of the same digits.
pub fn id_token(id: u64) -> u64 {
    fnv1a(fnv1a(FNV_OFFSET, b"\x00id"), &id.to_le_bytes())
}

/// Appends the tokens of `text` (its whitespace-separated words) to `out`.
pub fn tokenize_into(text: &str, out: &mut Vec<u64>) {
    out.extend(text.split_whitespace().map(word_token));
}

/// One hash of a whole token sequence.
pub fn sequence_hash(tokens: &[u64]) -> u64 {
    tokens.iter().fold(FNV_OFFSET, |h, &t| mix(h, t))
}

/// Why generation ended, as OpenAI's `finish_reason` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// `max_tokens` was reached.
    Length,
    /// The simulated model emitted end-of-sequence (only with `eosProbability` > 0).
    Stop,
}

impl FinishReason {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Length => "length",
            FinishReason::Stop => "stop",
        }
    }
}

/// The text a request will generate, decided when it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPlan {
    /// One word per generated token (without the leading space).
    pub words: Vec<&'static str>,
    /// Why generation ends after the last word.
    pub finish: FinishReason,
}

impl OutputPlan {
    /// Decides the output for a prompt. After each token the simulated model stops with
    /// probability `eos_probability` (never when `ignore_eos`), otherwise it runs to
    /// `max_tokens`; at least one token is always generated.
    pub fn new(
        seed: u64,
        prompt: &[u64],
        max_tokens: u32,
        eos_probability: f64,
        ignore_eos: bool,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed, sequence_hash(prompt)));
        let max = max_tokens.max(1) as usize;
        let mut words = Vec::with_capacity(max);
        let mut finish = FinishReason::Length;
        while words.len() < max {
            words.push(VOCAB[rng.random_range(0..VOCAB.len())]);
            let eos = !ignore_eos && eos_probability > 0.0 && rng.random_bool(eos_probability);
            if eos && words.len() < max {
                finish = FinishReason::Stop;
                break;
            }
        }
        OutputPlan { words, finish }
    }

    /// Number of tokens generated.
    pub fn token_count(&self) -> u32 {
        self.words.len() as u32
    }

    /// The text of token `i` as streamed: the word with a leading space.
    pub fn token_text(&self, i: usize) -> String {
        format!(" {}", self.words[i])
    }

    /// The whole generated text.
    pub fn text(&self) -> String {
        self.words.iter().map(|w| format!(" {w}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(text: &str) -> Vec<u64> {
        let mut v = Vec::new();
        tokenize_into(text, &mut v);
        v
    }

    #[test]
    fn words_are_tokens() {
        assert_eq!(toks("  a b\tc\n d  ").len(), 4);
        assert_eq!(toks("x y"), vec![word_token("x"), word_token("y")]);
        assert_ne!(word_token("1"), id_token(1));
        assert!(toks("").is_empty());
    }

    #[test]
    fn output_is_deterministic_per_seed_and_prompt() {
        let p = toks("hello world this is a prompt");
        let a = OutputPlan::new(7, &p, 20, 0.0, false);
        assert_eq!(a, OutputPlan::new(7, &p, 20, 0.0, false));
        assert_eq!(a.token_count(), 20);
        assert_eq!(a.finish, FinishReason::Length);
        assert_ne!(a, OutputPlan::new(8, &p, 20, 0.0, false));
        assert_ne!(
            a,
            OutputPlan::new(7, &toks("another prompt"), 20, 0.0, false)
        );
        assert_eq!(a.text().split_whitespace().count(), 20);
        assert!(a.token_text(0).starts_with(' '));
    }

    #[test]
    fn eos_stops_early_unless_ignored() {
        let p = toks("p");
        let early = OutputPlan::new(1, &p, 1000, 0.5, false);
        assert!(early.token_count() < 1000);
        assert_eq!(early.finish, FinishReason::Stop);
        let full = OutputPlan::new(1, &p, 1000, 0.5, true);
        assert_eq!(full.token_count(), 1000);
        assert_eq!(full.finish, FinishReason::Length);
        assert_eq!(OutputPlan::new(1, &p, 0, 0.0, false).token_count(), 1);
    }

    #[test]
    fn vocab_words_are_single_tokens_for_real_tokenizers() {
        for bpe in [
            tiktoken_rs::cl100k_base_singleton(),
            tiktoken_rs::o200k_base_singleton(),
        ] {
            for w in VOCAB {
                let n = bpe.encode_ordinary(&format!(" {w}")).len();
                assert_eq!(n, 1, "{w:?} is {n} tokens");
            }
            let text = OutputPlan::new(3, &[1, 2, 3], 200, 0.0, false).text();
            assert_eq!(bpe.encode_ordinary(&text).len(), 200);
        }
    }
}
