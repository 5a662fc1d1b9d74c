//! VLLMBenchmark's datasets: reading the local files (sonnet lines, ShareGPT, custom and hf
//! JSONL) and sampling the `NUM_PROMPTS` prompts of a run from them (or building random ones),
//! with `SEED` as vLLM does. Errors name the file and the line.

use super::{
    Config, Source, DEFAULT_CUSTOM_OUTPUT_LEN, DEFAULT_HF_OUTPUT_LEN, DEFAULT_RANDOM_OUTPUT_LEN,
    DEFAULT_SONNET_OUTPUT_LEN, SONNET_INSTRUCTION, STREAM_PREFIX, STREAM_SAMPLE,
};
use crate::workload::prompt::{mix_seed, PromptBuilder};
use crate::workload::WorkloadError;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::Arc;

/// Where the `n` prompts of a run come from, read and sampled with `SEED` as vLLM does; what
/// the dataset says about itself goes into `info` (the result's workload counters).
pub(super) fn source(
    cfg: &Config,
    root: &Path,
    b: &Arc<PromptBuilder>,
    n: usize,
    info: &mut Map<String, Value>,
) -> Result<Source, WorkloadError> {
    let seed = cfg.seed;
    let dataset = cfg.dataset.clone();
    let path = cfg.dataset_path.as_ref().map(|p| root.join(p));
    let max_tokens = cfg.max_tokens;
    let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[seed, STREAM_SAMPLE]));
    let need_path = || {
        path.clone().ok_or_else(|| {
            WorkloadError::Other(format!("DATASET_NAME {dataset} needs DATASET_PATH"))
        })
    };
    let source = match dataset.as_str() {
        "random" => {
            let input = cfg.random_input_len;
            let output = cfg
                .random_output_len
                .or(max_tokens)
                .unwrap_or(DEFAULT_RANDOM_OUTPUT_LEN);
            let ratio = cfg.random_range_ratio;
            let prefix_len = cfg.random_prefix_len;
            let range = |len: i64| {
                // vLLM truncates both bounds to integers.
                let lo = ((len as f64 * (1.0 - ratio)) as i64).max(1);
                let hi = ((len as f64 * (1.0 + ratio)) as i64).max(lo);
                (lo, hi)
            };
            let (ilo, ihi) = range(input);
            let (olo, ohi) = range(output);
            let input_lens = (0..n)
                .map(|_| rng.random_range(ilo..=ihi) as usize)
                .collect();
            let output_lens = (0..n)
                .map(|_| positive_u32(rng.random_range(olo..=ohi)))
                .collect();
            info.insert("input_len_range".into(), json!([ilo, ihi]));
            info.insert("output_len_range".into(), json!([olo, ohi]));
            info.insert("prefix_len".into(), json!(prefix_len));
            Source::Random {
                prefix: b.filler_seeded(prefix_len, mix_seed(&[seed, STREAM_PREFIX])),
                input_lens,
                output_lens,
            }
        }
        "sonnet" => {
            let path = need_path()?;
            let input = cfg.sonnet_input_len;
            let prefix = cfg.sonnet_prefix_len;
            let output = cfg
                .sonnet_output_len
                .or(max_tokens)
                .unwrap_or(DEFAULT_SONNET_OUTPUT_LEN);
            let (head, lines, extra, prefix_lines) =
                sonnet_plan(&read_text(&path)?, &path, b, input, prefix)?;
            info.insert("dataset_entries".into(), json!(lines.len()));
            info.insert("prefix_lines".into(), json!(prefix_lines));
            info.insert("random_lines".into(), json!(extra));
            Source::Sonnet {
                head,
                lines,
                extra,
                output_len: positive_u32(output),
            }
        }
        "sharegpt" | "custom" | "hf" => {
            let path = need_path()?;
            let (configured, default_len) = match dataset.as_str() {
                "sharegpt" => (cfg.sharegpt_output_len.or(max_tokens), 0),
                "custom" => (
                    cfg.custom_output_len.or(max_tokens),
                    DEFAULT_CUSTOM_OUTPUT_LEN,
                ),
                _ => (cfg.hf_output_len.or(max_tokens), DEFAULT_HF_OUTPUT_LEN),
            };
            let configured = configured.map(positive_u32);
            let text = read_text(&path)?;
            let mut entries = match dataset.as_str() {
                "sharegpt" => load_sharegpt(&text, &path)?,
                "custom" => load_jsonl(&text, &path, custom_entry)?,
                _ => load_jsonl(&text, &path, hf_entry)?,
            };
            let loaded = entries.len();
            let mut shuffled: Vec<usize> = (0..loaded).collect();
            shuffled.shuffle(&mut rng);
            let mut order = Vec::with_capacity(n);
            let mut filtered_out = 0u64;
            for i in shuffled {
                if order.len() >= n {
                    break;
                }
                let e = &mut entries[i];
                if let Some(a) = e.answer.take() {
                    e.output_len = e
                        .output_len
                        .or_else(|| Some(b.count(&a) as u32).filter(|n| *n > 0));
                }
                if dataset == "sharegpt" && !sharegpt_valid(e, b, configured) {
                    filtered_out += 1;
                    continue;
                }
                order.push(i);
            }
            if order.is_empty() {
                let why = if dataset == "sharegpt" {
                    " (vLLM's filter: prompt of 4 to 1024 tokens, answer of at least 4, \
                     prompt + answer at most 2048)"
                } else {
                    ""
                };
                return Err(WorkloadError::Other(format!(
                    "{}: no usable entry in {loaded}{why}",
                    path.display()
                )));
            }
            let used = order.len();
            while order.len() < n {
                order.push(order[rng.random_range(0..used)]);
            }
            info.insert("dataset_entries".into(), json!(loaded));
            info.insert("entries_used".into(), json!(used));
            info.insert("oversampled".into(), json!(n - used));
            if dataset == "sharegpt" {
                info.insert("filtered_out".into(), json!(filtered_out));
            }
            Source::Pool {
                entries,
                order,
                configured,
                default_len,
            }
        }
        other => {
            return Err(WorkloadError::Other(format!(
                "unknown DATASET_NAME {other}: expected random, sonnet, sharegpt, custom or hf"
            )))
        }
    };
    Ok(source)
}

/// One usable dataset entry.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) prompt: String,
    /// The entry's own output length: its `output_len` field, else its answer's token count.
    pub(super) output_len: Option<u32>,
    /// The answer, until it is counted (only sampled entries are: a full ShareGPT file holds
    /// about 90 000 conversations).
    pub(super) answer: Option<String>,
}

fn err_at(path: &Path, line: usize, msg: impl std::fmt::Display) -> WorkloadError {
    WorkloadError::Other(format!("{}: line {line}: {msg}", path.display()))
}

fn read_text(path: &Path) -> Result<String, WorkloadError> {
    std::fs::read_to_string(path)
        .map_err(|e| WorkloadError::Other(format!("cannot read {}: {e}", path.display())))
}

fn positive_u32(v: i64) -> u32 {
    v.clamp(1, u32::MAX as i64) as u32
}

/// The sonnet prompt head (instruction + shared prefix lines), the file's lines (each ending in
/// a newline), how many random lines follow the head, and how many prefix lines it has.
fn sonnet_plan(
    text: &str,
    path: &Path,
    b: &PromptBuilder,
    input_len: i64,
    prefix_len: i64,
) -> Result<(String, Vec<String>, usize, usize), WorkloadError> {
    let lines: Vec<String> = text
        .split_inclusive('\n')
        .map(|l| {
            if l.ends_with('\n') {
                l.to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    if lines.is_empty() {
        return Err(err_at(path, 1, "no lines to sample (the file is empty)"));
    }
    let avg = lines.iter().map(|l| b.count(l)).sum::<usize>() as f64 / lines.len() as f64;
    let base = b.count(SONNET_INSTRUCTION) as i64;
    if input_len <= base {
        return Err(WorkloadError::Other(format!(
            "SONNET_INPUT_LEN {input_len} must exceed the instruction's {base} tokens"
        )));
    }
    // Python's round() rounds half to even.
    let lines_for = |len: i64| ((len - base) as f64 / avg.max(1e-9)).round_ties_even();
    let input_lines = lines_for(input_len).max(0.0) as usize;
    // vLLM slices with a possibly negative count; a prefix never exceeds the file or the input.
    let prefix_lines = (lines_for(prefix_len).max(0.0) as usize)
        .min(lines.len())
        .min(input_lines);
    let head = format!("{SONNET_INSTRUCTION}{}", lines[..prefix_lines].concat());
    Ok((head, lines, input_lines - prefix_lines, prefix_lines))
}

#[derive(serde::Deserialize)]
struct ShareGptEntry {
    #[serde(default)]
    conversations: Vec<ShareGptTurn>,
}

#[derive(serde::Deserialize)]
struct ShareGptTurn {
    from: String,
    value: String,
}

fn is_user(role: &str) -> bool {
    matches!(role, "human" | "user")
}

fn is_assistant(role: &str) -> bool {
    matches!(
        role,
        "gpt" | "assistant" | "chatgpt" | "bard" | "bing" | "model"
    )
}

/// Entries of a ShareGPT file: the first human turn answered by a gpt turn; conversations
/// without one are skipped (vLLM skips those with fewer than two turns).
fn load_sharegpt(text: &str, path: &Path) -> Result<Vec<Entry>, WorkloadError> {
    let data: Vec<ShareGptEntry> = serde_json::from_str(text).map_err(|e| {
        err_at(
            path,
            e.line(),
            format!(
                "column {}: not a ShareGPT list of {{\"conversations\": [{{\"from\", \"value\"}}, …]}}: {e}",
                e.column()
            ),
        )
    })?;
    Ok(data
        .into_iter()
        .filter_map(|c| {
            c.conversations
                .windows(2)
                .find(|w| is_user(&w[0].from) && is_assistant(&w[1].from))
                .map(|w| Entry {
                    prompt: w[0].value.clone(),
                    output_len: None,
                    answer: Some(w[1].value.clone()),
                })
        })
        .collect())
}

/// vLLM's `is_valid_sequence` with its ShareGPT defaults.
fn sharegpt_valid(e: &Entry, b: &PromptBuilder, configured: Option<u32>) -> bool {
    let prompt = b.count(&e.prompt);
    let output = configured.or(e.output_len).unwrap_or(0) as usize;
    !(prompt < 4 || (configured.is_none() && output < 4) || prompt > 1024 || prompt + output > 2048)
}

/// Parse a JSONL file line by line (blank lines skipped) with `entry`, naming the line of any
/// error.
fn load_jsonl(
    text: &str,
    path: &Path,
    entry: fn(&Value) -> Result<Entry, String>,
) -> Result<Vec<Entry>, WorkloadError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(line).map_err(|e| err_at(path, i + 1, format!("{e}")))?;
        out.push(entry(&v).map_err(|e| err_at(path, i + 1, e))?);
    }
    Ok(out)
}

fn output_len_field(v: &Value) -> Result<Option<u32>, String> {
    match v.get("output_len") {
        None | Some(Value::Null) => Ok(None),
        Some(x) => match x.as_u64() {
            Some(n) if n >= 1 && n <= u32::MAX as u64 => Ok(Some(n as u32)),
            _ => Err(format!("`output_len` must be a positive integer, got {x}")),
        },
    }
}

/// A `custom` line: `{"prompt": "…", "output_len": n}`.
fn custom_entry(v: &Value) -> Result<Entry, String> {
    let prompt = v
        .get("prompt")
        .and_then(Value::as_str)
        .ok_or("expected an object with a string `prompt`")?;
    Ok(Entry {
        prompt: prompt.to_string(),
        output_len: output_len_field(v)?,
        answer: None,
    })
}

/// A message's role and text: `{role|from, content|value}`, content a string or a list of
/// `{"text": …}` parts.
fn message(v: &Value) -> Option<(String, String)> {
    let role = v
        .get("role")
        .or_else(|| v.get("from"))?
        .as_str()?
        .to_string();
    let content = v.get("content").or_else(|| v.get("value"))?;
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => return None,
    };
    Some((role, text))
}

/// An `hf` line: a `prompt`, or the first user turn of a turn list (and the answer after it).
fn hf_entry(v: &Value) -> Result<Entry, String> {
    let output_len = output_len_field(v)?;
    if let Some(p) = v.get("prompt").and_then(Value::as_str) {
        return Ok(Entry {
            prompt: p.to_string(),
            output_len,
            answer: None,
        });
    }
    let Some(list) = ["turns", "conversations", "conversation", "messages"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_array))
    else {
        return Err(
            "expected a string `prompt` or a `turns`/`conversations`/`messages` list".into(),
        );
    };
    // A plain string turn is a user turn (MT-Bench); a list of messages is flattened.
    let mut turns: Vec<(String, String)> = Vec::new();
    for t in list {
        match t {
            Value::String(s) => turns.push(("user".into(), s.clone())),
            Value::Array(ms) => turns.extend(ms.iter().filter_map(message)),
            other => turns.extend(message(other)),
        }
    }
    let Some(i) = turns.iter().position(|(r, _)| is_user(r)) else {
        return Err("no user turn in the turn list".into());
    };
    let answer = turns
        .get(i + 1)
        .filter(|(r, _)| is_assistant(r))
        .map(|(_, t)| t.clone());
    Ok(Entry {
        prompt: turns[i].1.clone(),
        output_len,
        answer,
    })
}
