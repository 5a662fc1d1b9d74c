//! TraceReplayer: replays a JSONL request trace (mooncake, gmi) against the endpoint.
//!
//! Owns the trace format (loading, unit detection, sorting, the START_TIME/DURATION window),
//! the two schedules (timed replay and QPS mode) and the prompts synthesised from `hash_ids`.
//!
//! Format. One request per line: `timestamp`, `input_length`, `output_length`, `hash_ids`.
//! The timestamp is an integer or numeric string in milliseconds from the trace start
//! (mooncake), Unix milliseconds, or Unix nanoseconds (gmi, as strings: they do not fit an
//! `f64`); the unit is detected from the earliest ten timestamps as LMBench does. Lines are
//! sorted by time in memory (the file is never rewritten); offsets are seconds from the
//! earliest entry, and entries with `START_TIME ≤ offset ≤ START_TIME + DURATION` are replayed,
//! re-based to START_TIME. A line that cannot be read is an error naming file and line.
//!
//! Schedules. Timed mode (`PRESERVE_TIMING: true`) sends each request at its re-based offset
//! divided by SPEED_UP (multiplied by TIME_SCALE when SPEED_UP is absent), with MAX_DELAY
//! capping each inter-arrival gap (LMBench capped the absolute offset, so everything after
//! MAX_DELAY fired at once). QPS mode is an open loop: the `k`-th request of the window, in
//! trace order, is due at `k/QPS` (LMBench awaited each answer before sleeping `1/QPS`).
//! Requests stream through the normal runner, so TTFT is measured (LMBench invented it from
//! total latency); `max_tokens` is the trace's `output_length`.
//!
//! Prompts. Hash id `h` is a block of BLOCK_SIZE filler tokens seeded by `h` alone, so the same
//! id is the same text in every run, QPS point and baseline; a prompt is its blocks in order,
//! cut (at a word, i.e. a token, boundary) or padded with per-request filler to exactly
//! `input_length` tokens. Requests whose hash ids share a prefix share exactly that prefix of
//! text, which is what a prefix cache can reuse (LMBench's text ignored the hash ids'
//! structure). BLOCK_SIZE defaults to 512, mooncake's block; gmi's blocks are about 32 tokens
//! (`BLOCK_SIZE: 32`).

use super::prompt::{mix_seed, PromptBuilder};
use super::{Point, RawWorkload, RunContext, SweepPoint, Workload, WorkloadError, WorkloadSpec};
use crate::config::{Checked, Invalid, Item, LooseBool, Num, OneOrMany, TraceDuration, O};
use crate::record::{ApiType, Completed, Prompt, RequestSpec};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Folder of trace files (TRACE_FILE is relative to it), under the folder of run-bench.yaml.
pub const TRACE_DIR: &str = "3-workloads/trace-replayer";

workload_keys! {
    /// `TraceReplayer`'s keys.
    pub struct Raw {
        /// Trace file relative to `3-workloads/trace-replayer/` (default traces/gmi_trace.jsonl).
        pub TRACE_FILE: O<String>,
        /// Seconds from the trace start (default 0).
        pub START_TIME: O<Num>,
        /// Seconds to replay, or full / null (default: the whole trace).
        pub DURATION: O<TraceDuration>,
        /// true: replay the trace's timing; false: QPS mode (default false).
        pub PRESERVE_TIMING: O<LooseBool>,
        /// Replay speed factor (default 1.0).
        pub SPEED_UP: O<Num>,
        /// Legacy time scale (used when SPEED_UP is absent).
        pub TIME_SCALE: O<Num>,
        /// Cap on each inter-arrival gap, in seconds.
        pub MAX_DELAY: O<Num>,
        /// Rates for QPS mode (default [1.0]).
        pub QPS: O<OneOrMany<Num>>,
        /// Tokens per `hash_ids` block (lmbench addition; default 512, as in mooncake traces).
        pub BLOCK_SIZE: O<i64>,
        /// Longest prompt sent, in tokens (lmbench addition; default: no limit).
        pub MAX_INPUT_TOKENS: O<i64>,
        /// Largest max_tokens sent (lmbench addition; default: no limit).
        pub MAX_OUTPUT_TOKENS: O<i64>,
        /// What to do with a longer request: `clip` (default) or `skip` (lmbench addition).
        pub OVERLONG: O<String>,
    }
}

impl RawWorkload for Raw {
    const NAME: &'static str = "TraceReplayer";
    type Spec = Config;

    fn validate(&self, c: &mut Item<'_, '_>) -> Checked<Config> {
        let dir = c.root().join(TRACE_DIR);
        let trace_file = match &self.TRACE_FILE {
            Some(f) => c.file_in(f, "TRACE_FILE", &dir).map(|_| f.value.clone()),
            None => {
                let p = dir.join(DEFAULT_TRACE_FILE);
                if p.is_file() {
                    Ok(DEFAULT_TRACE_FILE.to_string())
                } else {
                    c.push(
                        None,
                        "TRACE_FILE",
                        format!(
                            "not set, and the default trace does not exist: {}",
                            p.display()
                        ),
                    );
                    Err(Invalid)
                }
            }
        };
        let start = match &self.START_TIME {
            Some(st) if !(st.value.value.is_finite() && st.value.value >= 0.0) => {
                c.push(
                    Some(&st.referenced),
                    "START_TIME",
                    format!(
                        "expected a non-negative number of seconds, got {}",
                        st.value.value
                    ),
                );
                Err(Invalid)
            }
            st => Ok(st.as_ref().map_or(0.0, |s| s.value.value)),
        };
        let duration = match &self.DURATION {
            Some(d) => match d.value {
                TraceDuration::Seconds(v) if !(v.is_finite() && v > 0.0) => {
                    c.push(
                        Some(&d.referenced),
                        "DURATION",
                        format!("expected a positive number of seconds or `full`, got {v}"),
                    );
                    Err(Invalid)
                }
                TraceDuration::Seconds(v) => Ok(Some(v)),
                TraceDuration::Full => Ok(None),
            },
            None => Ok(None),
        };
        let speed_up = c.positive(&self.SPEED_UP, "SPEED_UP");
        let time_scale = c.positive(&self.TIME_SCALE, "TIME_SCALE");
        let max_delay = c.positive(&self.MAX_DELAY, "MAX_DELAY");
        let qps = c.positive_list(&self.QPS, "QPS", false);
        let block = c.int(&self.BLOCK_SIZE, "BLOCK_SIZE", 1);
        let max_in = c.int(&self.MAX_INPUT_TOKENS, "MAX_INPUT_TOKENS", 1);
        let max_out = c.int(&self.MAX_OUTPUT_TOKENS, "MAX_OUTPUT_TOKENS", 1);
        let skip = match &self.OVERLONG {
            Some(o) if o.value != "clip" && o.value != "skip" => {
                c.push(
                    Some(&o.referenced),
                    "OVERLONG",
                    format!("expected `clip` or `skip`, got `{}`", o.value),
                );
                Err(Invalid)
            }
            o => Ok(o.as_ref().is_some_and(|o| o.value == "skip")),
        };
        Ok(Config {
            trace_file: trace_file?,
            start_time_s: start?,
            duration_s: duration?,
            timed: self.PRESERVE_TIMING.as_ref().is_some_and(|b| b.value.0),
            speed_up: speed_up?,
            time_scale: time_scale?,
            max_delay_s: max_delay?,
            qps: qps?.unwrap_or_else(|| vec![Num::float(1.0)]),
            block_size: block?.map_or(DEFAULT_BLOCK_SIZE, |b| b as usize),
            max_input_tokens: max_in?.map(|m| m as u64),
            max_output_tokens: max_out?.map(|m| m as u64),
            skip_overlong: skip?,
        })
    }

    fn tokenizer(&self) -> &O<String> {
        &self.TOKENIZER
    }
}

/// A validated TraceReplayer item.
#[derive(Debug, Clone)]
pub struct Config {
    /// `TRACE_FILE` (or the default), relative to [`TRACE_DIR`].
    pub trace_file: String,
    /// `START_TIME`, seconds from the trace start.
    pub start_time_s: f64,
    /// `DURATION` in seconds; `None` for the whole trace.
    pub duration_s: Option<f64>,
    /// `PRESERVE_TIMING`: timed replay instead of QPS points.
    pub timed: bool,
    /// `SPEED_UP`.
    pub speed_up: Option<f64>,
    /// `TIME_SCALE` (used when SPEED_UP is absent).
    pub time_scale: Option<f64>,
    /// `MAX_DELAY`: cap on each inter-arrival gap, seconds.
    pub max_delay_s: Option<f64>,
    /// `QPS` (QPS mode): one point each.
    pub qps: Vec<Num>,
    /// `BLOCK_SIZE`: tokens per hash id.
    pub block_size: usize,
    /// `MAX_INPUT_TOKENS`.
    pub max_input_tokens: Option<u64>,
    /// `MAX_OUTPUT_TOKENS`.
    pub max_output_tokens: Option<u64>,
    /// `OVERLONG: skip`.
    pub skip_overlong: bool,
}

impl Config {
    /// Trace seconds per run second.
    fn speed(&self) -> f64 {
        self.speed_up
            .or(self.time_scale.map(|t| 1.0 / t))
            .unwrap_or(1.0)
    }

    /// Run seconds per trace second.
    fn scale(&self) -> f64 {
        match (self.speed_up, self.time_scale) {
            (Some(s), _) => 1.0 / s,
            (None, Some(t)) => t,
            (None, None) => 1.0,
        }
    }

    /// The trace file, resolved against the folder of run-bench.yaml.
    pub fn trace_path(&self, root: &Path) -> PathBuf {
        root.join(TRACE_DIR).join(&self.trace_file)
    }
}

impl WorkloadSpec for Config {
    fn workload_name(&self) -> String {
        "trace_replayer".into()
    }

    fn points(&self) -> Vec<Point> {
        if self.timed {
            let dur = self.duration_s.unwrap_or(3600.0);
            vec![Point {
                sweep: SweepPoint {
                    key: "MODE",
                    value: None,
                },
                qps: None,
                qps_label: "unknown".to_string(),
                estimated_s: dur / self.speed() + 10.0,
            }]
        } else {
            let dur = self.duration_s.unwrap_or(600.0);
            self.qps
                .iter()
                .map(|q| Point::qps(*q, dur + 10.0))
                .collect()
        }
    }

    fn build(&self, point: &Point, ctx: &RunContext) -> Result<Box<dyn Workload>, WorkloadError> {
        let path = self.trace_path(&ctx.root);
        let trace = load(&path)?;
        Ok(Box::new(TraceReplayer::new(
            self,
            &trace,
            &path.display().to_string(),
            point.target_qps(),
            ctx,
        )?))
    }

    fn extra_params(&self, block: &mut Map<String, Value>, api: ApiType) {
        block.insert("API_TYPE".into(), json!(api.as_str()));
    }
}

/// TRACE_FILE when the spec does not set one, relative to [`TRACE_DIR`].
pub const DEFAULT_TRACE_FILE: &str = "traces/gmi_trace.jsonl";
/// Tokens per hash id when BLOCK_SIZE is not set (mooncake's block size).
pub const DEFAULT_BLOCK_SIZE: usize = 512;
/// Timestamps detection looks at (LMBench's sample size).
const DETECT_SAMPLE: usize = 10;
/// Keeps padding filler apart from any hash id's block text.
const PAD_SALT: u64 = 0x7472_6163_655f_7061;

/// The unit of a trace's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Milliseconds from the start of the trace (mooncake).
    MsOffsets,
    /// Unix time in milliseconds.
    UnixMs,
    /// Unix time in nanoseconds (gmi).
    UnixNs,
}

impl TimeUnit {
    /// The name written in the workload statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::MsOffsets => "ms_offsets",
            TimeUnit::UnixMs => "unix_ms",
            TimeUnit::UnixNs => "unix_ns",
        }
    }

    fn ticks_per_s(self) -> f64 {
        match self {
            TimeUnit::MsOffsets | TimeUnit::UnixMs => 1e3,
            TimeUnit::UnixNs => 1e9,
        }
    }

    /// LMBench's rule on the earliest timestamps: mostly in the 2020s in ns or ms, else ms
    /// offsets when all are small, else ns when large.
    fn detect(sample: &[f64]) -> TimeUnit {
        let share = |lo: f64, hi: f64| {
            sample.iter().filter(|t| (lo..=hi).contains(*t)).count() as f64
                / sample.len().max(1) as f64
        };
        let max = sample.iter().copied().fold(f64::MIN, f64::max);
        if share(1.6e18, 2e18) >= 0.8 {
            TimeUnit::UnixNs
        } else if share(1.6e12, 2e12) >= 0.8 {
            TimeUnit::UnixMs
        } else if max < 1e12 {
            TimeUnit::MsOffsets
        } else if max > 1e15 {
            TimeUnit::UnixNs
        } else {
            TimeUnit::UnixMs
        }
    }
}

/// One request of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEntry {
    /// Line number in the file, from 1.
    pub line: usize,
    /// Seconds after the earliest entry of the trace.
    pub offset_s: f64,
    /// Prompt tokens.
    pub input_length: u64,
    /// Generated tokens (`max_tokens`).
    pub output_length: u64,
    /// One id per KV block of the prompt; equal leading ids mean an equal prompt prefix.
    pub hash_ids: Vec<u64>,
}

/// A loaded trace, sorted by time.
#[derive(Debug, Clone)]
pub struct TraceFile {
    /// The detected timestamp unit.
    pub unit: TimeUnit,
    /// Every request, earliest first (ties keep file order).
    pub entries: Vec<TraceEntry>,
    /// Seconds from the earliest to the latest entry.
    pub span_s: f64,
}

/// A timestamp as written: integers stay exact (Unix ns exceed an `f64`'s precision).
#[derive(Clone, Copy)]
struct Stamp {
    int: Option<i128>,
    approx: f64,
}

impl Stamp {
    fn cmp(&self, o: &Stamp) -> Ordering {
        match (self.int, o.int) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.approx.total_cmp(&o.approx),
        }
    }

    fn minus(&self, o: &Stamp) -> f64 {
        match (self.int, o.int) {
            (Some(a), Some(b)) => (a - b) as f64,
            _ => self.approx - o.approx,
        }
    }
}

fn stamp(v: &serde_json::Value) -> Result<Stamp, String> {
    use serde_json::Value;
    let from_f = |f: f64| {
        f.is_finite()
            .then_some(Stamp {
                int: None,
                approx: f,
            })
            .ok_or_else(|| format!("timestamp {f} is not finite"))
    };
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Stamp {
                    int: Some(i.into()),
                    approx: i as f64,
                })
            } else if let Some(u) = n.as_u64() {
                Ok(Stamp {
                    int: Some(u.into()),
                    approx: u as f64,
                })
            } else {
                from_f(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i128>() {
                Ok(Stamp {
                    int: Some(i),
                    approx: i as f64,
                })
            } else {
                s.parse::<f64>()
                    .map_err(|_| format!("timestamp \"{s}\" is not a number"))
                    .and_then(from_f)
            }
        }
        other => Err(format!(
            "timestamp must be a number or a numeric string, got {other}"
        )),
    }
}

fn count_field(obj: &serde_json::Map<String, serde_json::Value>, key: &str) -> Result<u64, String> {
    match obj.get(key) {
        None => Err(format!("missing `{key}`")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("`{key}` must be a non-negative integer, got {v}")),
    }
}

fn parse_line(text: &str) -> Result<(Stamp, u64, u64, Vec<u64>), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let obj = v
        .as_object()
        .ok_or_else(|| "expected a JSON object".to_string())?;
    let ts = stamp(obj.get("timestamp").ok_or("missing `timestamp`")?)?;
    let input = count_field(obj, "input_length")?;
    let output = count_field(obj, "output_length")?;
    let hash_ids = match obj.get("hash_ids") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|h| {
                h.as_u64()
                    .or_else(|| h.as_i64().map(|i| i as u64))
                    .ok_or_else(|| format!("`hash_ids` must hold integers, got {h}"))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("`hash_ids` must be a list, got {other}")),
    };
    Ok((ts, input, output, hash_ids))
}

/// Parse trace text; `name` (the file) prefixes error messages.
pub fn parse(text: &str, name: &str) -> Result<TraceFile, WorkloadError> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (ts, input, output, hash_ids) = parse_line(line)
            .map_err(|e| WorkloadError::Other(format!("{name}: line {}: {e}", i + 1)))?;
        rows.push((
            ts,
            TraceEntry {
                line: i + 1,
                offset_s: 0.0,
                input_length: input,
                output_length: output,
                hash_ids,
            },
        ));
    }
    if rows.is_empty() {
        return Err(WorkloadError::Other(format!("{name}: the trace is empty")));
    }
    // Stable: requests with equal timestamps keep their file order.
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let sample: Vec<f64> = rows
        .iter()
        .take(DETECT_SAMPLE)
        .map(|r| r.0.approx)
        .collect();
    let unit = TimeUnit::detect(&sample);
    let first = rows[0].0;
    let ticks = unit.ticks_per_s();
    let entries: Vec<TraceEntry> = rows
        .into_iter()
        .map(|(ts, mut e)| {
            e.offset_s = ts.minus(&first) / ticks;
            e
        })
        .collect();
    let span_s = entries.last().map(|e| e.offset_s).unwrap_or(0.0);
    Ok(TraceFile {
        unit,
        entries,
        span_s,
    })
}

/// Load a trace file.
pub fn load(path: &Path) -> Result<TraceFile, WorkloadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| WorkloadError::Other(format!("cannot read trace {}: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

/// A request of the schedule, before its prompt is built.
struct Scheduled {
    line: usize,
    due_s: f64,
    hash_ids: Vec<u64>,
    input_tokens: usize,
    max_tokens: u32,
}

/// The TraceReplayer workload for one run.
pub struct TraceReplayer {
    prompt: Arc<PromptBuilder>,
    block_size: usize,
    seed: u64,
    base: u64,
    schedule: std::vec::IntoIter<Scheduled>,
    next_id: u64,
    window_s: f64,
    stats: serde_json::Value,
}

impl TraceReplayer {
    /// The replay of `trace` (read from `name`) under `cfg`; `qps` is this run's target in QPS
    /// mode (default 1).
    pub fn new(
        cfg: &Config,
        trace: &TraceFile,
        name: &str,
        qps: Option<f64>,
        ctx: &RunContext,
    ) -> Result<Self, WorkloadError> {
        let start = cfg.start_time_s;
        let end = cfg.duration_s.map(|d| start + d).unwrap_or(f64::INFINITY);
        let timed = cfg.timed;
        // Run seconds per trace second.
        let scale = cfg.scale();
        let max_delay = cfg.max_delay_s;
        let qps = qps.unwrap_or(1.0);
        let block_size = cfg.block_size;
        let max_in = cfg.max_input_tokens;
        let max_out = cfg.max_output_tokens;
        let skip = cfg.skip_overlong;
        let cap = ctx.duration_override_s;

        let window: Vec<&TraceEntry> = trace
            .entries
            .iter()
            .filter(|e| e.offset_s >= start && e.offset_s <= end)
            .collect();
        if window.is_empty() {
            let until = if end.is_finite() {
                format!("{end} s")
            } else {
                "the end".into()
            };
            return Err(WorkloadError::Other(format!(
                "{name}: no requests between {start} s and {until} of the trace (it spans 0 to {:.3} s)",
                trace.span_s
            )));
        }

        // Timed due times over the whole window (skipped requests keep their place in time).
        let mut timed_due = Vec::new();
        let mut gaps_capped = 0u64;
        let (mut prev_rel, mut prev_due) = (0.0, 0.0);
        let capped_gap = |gap: f64, n: &mut u64| match max_delay {
            Some(m) if gap > m => {
                *n += 1;
                m
            }
            _ => gap,
        };
        if timed {
            for e in &window {
                let rel = e.offset_s - start;
                let due = prev_due + capped_gap((rel - prev_rel) * scale, &mut gaps_capped);
                timed_due.push(due);
                prev_rel = rel;
                prev_due = due;
            }
        }

        let mut schedule = Vec::new();
        let (mut skipped, mut clipped_in, mut clipped_out, mut clipped_req) = (0u64, 0, 0, 0);
        let mut beyond_cap = 0u64;
        for (i, e) in window.iter().enumerate() {
            let due = if timed {
                timed_due[i]
            } else {
                schedule.len() as f64 / qps
            };
            if cap.is_some_and(|c| due >= c) {
                beyond_cap = (window.len() - i) as u64;
                break;
            }
            let over_in = max_in.is_some_and(|m| e.input_length > m);
            let over_out = max_out.is_some_and(|m| e.output_length > m);
            if over_in || over_out {
                if skip {
                    skipped += 1;
                    continue;
                }
                clipped_req += 1;
                clipped_in += u64::from(over_in);
                clipped_out += u64::from(over_out);
            }
            let input = max_in.map_or(e.input_length, |m| e.input_length.min(m));
            let output = max_out.map_or(e.output_length, |m| e.output_length.min(m));
            schedule.push(Scheduled {
                line: e.line,
                due_s: due,
                hash_ids: e.hash_ids.clone(),
                // An empty prompt or a zero max_tokens is not a request an engine serves.
                input_tokens: input.max(1) as usize,
                max_tokens: output.clamp(1, u64::from(u32::MAX)) as u32,
            });
        }

        let window_s = if timed {
            let last_rel = window.last().map(|e| e.offset_s - start).unwrap_or(0.0);
            let tail = if end.is_finite() {
                capped_gap((end - start - last_rel) * scale, &mut 0)
            } else {
                0.0
            };
            prev_due + tail
        } else {
            schedule.len() as f64 / qps
        };
        let window_s = cap.map_or(window_s, |c| window_s.min(c));
        let replay_span_s = schedule.last().map(|s| s.due_s).unwrap_or(0.0);
        let stats = serde_json::json!({
            "trace_file": name,
            "format": trace.unit.as_str(),
            "trace_requests": trace.entries.len(),
            "trace_span_s": trace.span_s,
            "window_start_s": start,
            "window_end_s": end.is_finite().then_some(end),
            "requests_in_window": window.len(),
            "requests_scheduled": schedule.len(),
            "beyond_duration_override": beyond_cap,
            "mode": if timed { "timed" } else { "qps" },
            "speed_up": timed.then_some(1.0 / scale),
            "max_delay_s": max_delay.filter(|_| timed),
            "gaps_capped_by_max_delay": gaps_capped,
            "replay_span_s": replay_span_s,
            "block_size": block_size,
            "overlong": if skip { "skip" } else { "clip" },
            "clipped_requests": clipped_req,
            "clipped_inputs": clipped_in,
            "clipped_outputs": clipped_out,
            "skipped_overlong": skipped,
        });
        Ok(TraceReplayer {
            prompt: ctx.prompt.clone(),
            block_size,
            seed: ctx.seed,
            base: ctx.user_id_base,
            schedule: schedule.into_iter(),
            next_id: 0,
            window_s,
            stats,
        })
    }

    /// The request's blocks in order, cut or padded to exactly `input_tokens` tokens.
    fn prompt_text(&self, s: &Scheduled) -> String {
        let n = s.input_tokens;
        let mut text = String::with_capacity(n * 8);
        let mut have = 0;
        for h in &s.hash_ids {
            if have >= n {
                break;
            }
            // Filler draws word after word, so a shorter draw is a prefix of the full block.
            let take = (n - have).min(self.block_size);
            text.push_str(&self.prompt.filler_seeded(take, mix_seed(&[*h])));
            have += take;
        }
        if have < n {
            let pad_seed = mix_seed(&[self.seed, PAD_SALT, s.line as u64]);
            text.push_str(&self.prompt.filler_seeded(n - have, pad_seed));
        }
        text
    }
}

impl Workload for TraceReplayer {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        let s = self.schedule.next()?;
        let text = self.prompt_text(&s);
        let id = self.next_id;
        self.next_id += 1;
        Some(RequestSpec {
            id,
            user_id: Some(self.base + s.line as u64 - 1),
            round: 0,
            due_s: s.due_s,
            // Every filler word is one token whatever precedes it, so the length is exact by
            // construction; counting a 100k-token prompt here would delay the next send.
            client_prompt_tokens: s.input_tokens as u64,
            prompt: Prompt::Text(text),
            max_tokens: s.max_tokens,
            warmup: false,
            extra: Default::default(),
        })
    }

    fn on_complete(&mut self, _done: &Completed, _now_s: f64) -> Vec<RequestSpec> {
        Vec::new()
    }

    fn window(&self) -> Option<(f64, f64)> {
        Some((0.0, self.window_s))
    }

    fn stats(&self) -> serde_json::Value {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ApiType;

    fn ctx(seed: u64) -> RunContext {
        RunContext {
            prompt: PromptBuilder::global(),
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            api: ApiType::Completions,
            seed,
            user_id_base: 1000,
            duration_override_s: None,
        }
    }

    /// The validated item; these tests hand the trace in themselves, so the file the item
    /// names only has to exist (the shipped sample when none is named).
    fn cfg(yaml: &str) -> Config {
        let mut raw: Raw = serde_saphyr::from_str(yaml).unwrap();
        if raw.TRACE_FILE.is_none() {
            let at = serde_saphyr::Location::UNKNOWN;
            raw.TRACE_FILE = Some(serde_saphyr::Spanned::new(
                "traces/sample_trace.jsonl".into(),
                at,
                at,
            ));
        }
        crate::workload::validate_for_test(&raw, Path::new(env!("CARGO_MANIFEST_DIR")))
    }

    /// A trace of ms offsets, one line per `(offset_ms, input, output, hash_ids)`.
    fn trace_text(rows: &[(u64, u64, u64, &[u64])]) -> String {
        rows.iter()
            .map(|(t, i, o, h)| {
                format!(
                    "{}\n",
                    serde_json::json!({"timestamp": t, "input_length": i, "output_length": o, "hash_ids": h})
                )
            })
            .collect()
    }

    fn replay(text: &str, yaml: &str, qps: Option<f64>, c: &RunContext) -> TraceReplayer {
        let t = parse(text, "t.jsonl").unwrap();
        TraceReplayer::new(&cfg(yaml), &t, "t.jsonl", qps, c).unwrap()
    }

    fn drain(w: &mut TraceReplayer) -> Vec<RequestSpec> {
        std::iter::from_fn(|| w.next_scheduled()).collect()
    }

    fn dues(w: &mut TraceReplayer) -> Vec<f64> {
        drain(w).iter().map(|s| s.due_s).collect()
    }

    fn prompt_of(s: &RequestSpec) -> &str {
        match &s.prompt {
            Prompt::Text(t) => t,
            Prompt::Messages(_) => panic!("expected a text prompt"),
        }
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
        }
    }

    /// Every second from 0 to 10 s, 8 tokens in, 4 out, no hash ids.
    fn every_second() -> String {
        let rows: Vec<(u64, u64, u64, &[u64])> =
            (0..=10).map(|s| (s * 1000, 8, 4, &[][..])).collect();
        trace_text(&rows)
    }

    #[test]
    fn detects_ms_offsets() {
        let t = parse(&trace_text(&[(0, 1, 1, &[]), (1500, 1, 1, &[])]), "m").unwrap();
        assert_eq!(t.unit, TimeUnit::MsOffsets);
        assert_eq!(t.span_s, 1.5);
    }

    #[test]
    fn detects_unix_ns_strings_exactly() {
        let text = concat!(
            r#"{"timestamp": "1753694362340138614", "input_length": 5, "output_length": 2, "hash_ids": [7]}"#,
            "\n",
            r#"{"timestamp": "1753694363340138615", "input_length": 5, "output_length": 2, "hash_ids": [7]}"#,
            "\n"
        );
        let t = parse(text, "g").unwrap();
        assert_eq!(t.unit, TimeUnit::UnixNs);
        // One nanosecond survives: the difference is taken in integers.
        assert_eq!(t.entries[1].offset_s, 1_000_000_001.0 / 1e9);
    }

    #[test]
    fn detects_unix_ms() {
        let t = parse(
            &trace_text(&[
                (1_753_694_362_340, 1, 1, &[]),
                (1_753_694_362_840, 1, 1, &[]),
            ]),
            "u",
        )
        .unwrap();
        assert_eq!(t.unit, TimeUnit::UnixMs);
        assert_eq!(t.span_s, 0.5);
    }

    #[test]
    fn sorts_by_time_keeping_file_order_for_ties() {
        let t = parse(
            &trace_text(&[(3000, 1, 1, &[]), (1000, 2, 1, &[]), (1000, 3, 1, &[])]),
            "s",
        )
        .unwrap();
        let lines: Vec<usize> = t.entries.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 1]);
        assert_eq!(t.entries[0].offset_s, 0.0);
        assert_eq!(t.entries[2].offset_s, 2.0);
    }

    #[test]
    fn window_is_inclusive_and_rebased_to_start_time() {
        let mut w = replay(
            &every_second(),
            "{START_TIME: 3, DURATION: 4, PRESERVE_TIMING: true}",
            None,
            &ctx(1),
        );
        assert_eq!(w.stats()["requests_in_window"], 5);
        assert_eq!(w.window(), Some((0.0, 4.0)));
        close(&dues(&mut w), &[0.0, 1.0, 2.0, 3.0, 4.0]);
        // `full` is the whole trace.
        let mut w = replay(
            &every_second(),
            "{START_TIME: 8.5, DURATION: full, PRESERVE_TIMING: true}",
            None,
            &ctx(1),
        );
        close(&dues(&mut w), &[0.5, 1.5]);
    }

    #[test]
    fn timed_due_times_are_offsets_over_speed_up() {
        let text = trace_text(&[
            (0, 1, 1, &[]),
            (1000, 1, 1, &[]),
            (3000, 1, 1, &[]),
            (7000, 1, 1, &[]),
        ]);
        let want = [0.0, 0.5, 1.5, 3.5];
        let mut w = replay(&text, "{PRESERVE_TIMING: true, SPEED_UP: 2}", None, &ctx(1));
        close(&dues(&mut w), &want);
        // TIME_SCALE multiplies when SPEED_UP is absent, and SPEED_UP wins when both are set.
        let mut w = replay(
            &text,
            "{PRESERVE_TIMING: true, TIME_SCALE: 0.5}",
            None,
            &ctx(1),
        );
        close(&dues(&mut w), &want);
        let mut w = replay(
            &text,
            "{PRESERVE_TIMING: 'True', SPEED_UP: 2, TIME_SCALE: 10}",
            None,
            &ctx(1),
        );
        close(&dues(&mut w), &want);
    }

    #[test]
    fn max_delay_caps_each_gap_not_the_offset() {
        let text = trace_text(&[
            (0, 1, 1, &[]),
            (1000, 1, 1, &[]),
            (101_000, 1, 1, &[]),
            (102_000, 1, 1, &[]),
            (103_500, 1, 1, &[]),
        ]);
        let mut w = replay(
            &text,
            "{PRESERVE_TIMING: true, MAX_DELAY: 2}",
            None,
            &ctx(1),
        );
        assert_eq!(w.stats()["gaps_capped_by_max_delay"], 1);
        // The 100 s gap becomes 2 s; the later gaps are unchanged.
        close(&dues(&mut w), &[0.0, 1.0, 3.0, 4.0, 5.5]);
    }

    #[test]
    fn qps_mode_is_an_open_loop_in_trace_order() {
        let mut w = replay(
            &every_second(),
            "{START_TIME: 2, DURATION: 5, QPS: [4]}",
            Some(4.0),
            &ctx(1),
        );
        assert_eq!(w.window(), Some((0.0, 1.5)));
        assert_eq!(w.stats()["mode"], "qps");
        close(&dues(&mut w), &[0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
    }

    #[test]
    fn duration_override_caps_the_replay() {
        let mut w = replay(
            &every_second(),
            "{PRESERVE_TIMING: true, SPEED_UP: 2}",
            None,
            &{
                let mut c = ctx(1);
                c.duration_override_s = Some(2.0);
                c
            },
        );
        assert_eq!(w.window(), Some((0.0, 2.0)));
        assert_eq!(w.stats()["beyond_duration_override"], 7);
        close(&dues(&mut w), &[0.0, 0.5, 1.0, 1.5]);
        let mut w = replay(&every_second(), "{QPS: [10]}", Some(10.0), &{
            let mut c = ctx(1);
            c.duration_override_s = Some(0.5);
            c
        });
        assert_eq!(dues(&mut w).len(), 5);
    }

    #[test]
    fn shared_leading_hash_ids_share_exactly_that_prefix() {
        let bs = DEFAULT_BLOCK_SIZE as u64;
        let text = trace_text(&[(0, 3 * bs, 1, &[1, 2, 3]), (10, 3 * bs, 1, &[1, 2, 4])]);
        let mut w = replay(&text, "{PRESERVE_TIMING: true}", None, &ctx(1));
        let specs = drain(&mut w);
        let a: Vec<&str> = prompt_of(&specs[0]).split(' ').skip(1).collect();
        let b: Vec<&str> = prompt_of(&specs[1]).split(' ').skip(1).collect();
        assert_eq!(a.len(), 3 * bs as usize);
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        assert_eq!(common, 2 * bs as usize);
        assert_ne!(a[2 * bs as usize..], b[2 * bs as usize..]);
    }

    #[test]
    fn block_text_does_not_depend_on_the_run_seed() {
        let text = trace_text(&[(0, 64, 1, &[5, 6])]);
        let yaml = "{PRESERVE_TIMING: true, BLOCK_SIZE: 32}";
        let a = drain(&mut replay(&text, yaml, None, &ctx(1)));
        let b = drain(&mut replay(&text, yaml, None, &ctx(2)));
        assert_eq!(prompt_of(&a[0]), prompt_of(&b[0]));
    }

    #[test]
    fn prompts_have_exactly_input_length_tokens() {
        let text = trace_text(&[
            (0, 0, 1, &[1]),
            (1, 1, 1, &[1, 2]),
            (2, 100, 1, &[]),
            (3, 512, 1, &[1]),
            (4, 513, 1, &[1]),
            (5, 1500, 1, &[1, 2]),
            (6, 700, 1, &[1, 2, 3, 4]),
        ]);
        let mut w = replay(&text, "{PRESERVE_TIMING: true}", None, &ctx(3));
        let b = PromptBuilder::global();
        let specs = drain(&mut w);
        let want = [1, 1, 100, 512, 513, 1500, 700];
        for (s, n) in specs.iter().zip(want) {
            assert_eq!(s.client_prompt_tokens, n);
            assert_eq!(b.count(prompt_of(s)), n as usize, "request {}", s.id);
        }
    }

    #[test]
    fn overlong_requests_are_clipped_or_skipped_and_counted() {
        let text = trace_text(&[
            (0, 100, 10, &[1]),
            (1000, 300, 10, &[1]),
            (2000, 100, 50, &[1]),
            (3000, 300, 50, &[1]),
        ]);
        let limits = "MAX_INPUT_TOKENS: 200, MAX_OUTPUT_TOKENS: 20, BLOCK_SIZE: 64";
        let mut w = replay(
            &text,
            &format!("{{PRESERVE_TIMING: true, {limits}}}"),
            None,
            &ctx(1),
        );
        let st = w.stats();
        assert_eq!(
            (
                &st["clipped_requests"],
                &st["clipped_inputs"],
                &st["clipped_outputs"],
                &st["skipped_overlong"]
            ),
            (&3.into(), &2.into(), &2.into(), &0.into())
        );
        let specs = drain(&mut w);
        let lens: Vec<(u64, u32)> = specs
            .iter()
            .map(|s| (s.client_prompt_tokens, s.max_tokens))
            .collect();
        assert_eq!(lens, [(100, 10), (200, 10), (100, 20), (200, 20)]);
        let mut w = replay(
            &text,
            &format!("{{PRESERVE_TIMING: true, OVERLONG: skip, {limits}}}"),
            None,
            &ctx(1),
        );
        assert_eq!(w.stats()["skipped_overlong"], 3);
        assert_eq!(w.stats()["clipped_requests"], 0);
        let specs = drain(&mut w);
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].due_s, 0.0);
    }

    #[test]
    fn a_malformed_line_is_an_error_naming_file_and_line() {
        for bad in [
            "{not json",
            r#"{"timestamp": 5, "output_length": 2}"#,
            r#"{"timestamp": "soon", "input_length": 1, "output_length": 2}"#,
            r#"{"timestamp": 5, "input_length": -1, "output_length": 2}"#,
            r#"{"timestamp": 5, "input_length": 1, "output_length": 2, "hash_ids": [1.5]}"#,
        ] {
            let text = format!(
                "{}\n{}\n{bad}\n",
                every_second().lines().next().unwrap(),
                ""
            );
            let e = parse(&text, "traces/x.jsonl").unwrap_err().to_string();
            assert!(e.starts_with("traces/x.jsonl: line 3: "), "{e}");
        }
    }

    #[test]
    fn an_empty_window_is_an_error() {
        let t = parse(&every_second(), "t.jsonl").unwrap();
        let Err(e) =
            TraceReplayer::new(&cfg("{START_TIME: 60}"), &t, "t.jsonl", Some(1.0), &ctx(1))
        else {
            panic!("expected an error");
        };
        assert!(e.to_string().contains("no requests between 60 s"), "{e}");
    }

    #[test]
    fn the_same_seed_gives_a_byte_identical_request_stream() {
        let text = trace_text(&[
            (0, 600, 5, &[1, 2]),
            (200, 2000, 7, &[1, 2, 3]),
            (900, 50, 9, &[9]),
        ]);
        let yaml = "{PRESERVE_TIMING: true, SPEED_UP: 3, MAX_DELAY: 0.1}";
        let stream = |seed| {
            serde_json::to_string(&drain(&mut replay(&text, yaml, None, &ctx(seed)))).unwrap()
        };
        assert_eq!(stream(11), stream(11));
        // Only the padding after the blocks depends on the seed.
        assert_ne!(stream(11), stream(12));
    }

    #[test]
    fn user_ids_follow_the_trace_lines() {
        let text = trace_text(&[(500, 1, 1, &[]), (0, 1, 1, &[])]);
        let mut w = replay(&text, "{}", Some(1.0), &ctx(1));
        let ids: Vec<Option<u64>> = drain(&mut w).iter().map(|s| s.user_id).collect();
        assert_eq!(ids, [Some(1001), Some(1000)]);
    }

    /// A tiny deterministic generator, independent of any crate's stream.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The shipped sample trace: mooncake's format (ms offsets, 512-token blocks), 200 requests
    /// of conversations that share one of four system prompts and grow turn by turn.
    fn sample_trace() -> String {
        let mut rng = SplitMix(0x7361_6d70_6c65);
        let mut next_hash = 0u64;
        let mut fresh = |n: u64| -> Vec<u64> {
            let ids = (next_hash..next_hash + n).collect();
            next_hash += n;
            ids
        };
        let systems: Vec<Vec<u64>> = [2, 3, 1, 4].into_iter().map(&mut fresh).collect();
        let mut reqs = Vec::new();
        let mut start = 0.0f64;
        for session in 0..110u64 {
            let mut ids = systems[rng.below(4) as usize].clone();
            ids.extend(fresh(1 + rng.below(3)));
            let mut at = start;
            for turn in 0..1 + rng.below(4) {
                if turn > 0 {
                    ids.extend(fresh(1 + rng.below(2)));
                    at += 8.0 + 22.0 * rng.unit();
                }
                let input = ids.len() as u64 * 512 - rng.below(384);
                let output = 16 + rng.below(113);
                let ms = (at * 1000.0).round() as u64;
                reqs.push((ms, session, turn, input, output, ids.clone()));
            }
            start += -2.5 * (1.0 - rng.unit()).ln();
        }
        reqs.sort_by_key(|r| (r.0, r.1, r.2));
        reqs.truncate(200);
        reqs.iter()
            .map(|(ms, _, _, input, output, ids)| {
                let ids: Vec<String> = ids.iter().map(|h| h.to_string()).collect();
                format!(
                    "{{\"timestamp\": {ms}, \"input_length\": {input}, \"output_length\": {output}, \"hash_ids\": [{}]}}\n",
                    ids.join(", ")
                )
            })
            .collect()
    }

    #[test]
    fn the_sample_trace_is_its_generators_output() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(TRACE_DIR)
            .join("traces/sample_trace.jsonl");
        let want = sample_trace();
        if std::env::var_os("LMBENCH_WRITE_SAMPLE_TRACE").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap();
        assert!(
            have == want,
            "{} differs from its generator; LMBENCH_WRITE_SAMPLE_TRACE=1 rewrites it",
            path.display()
        );
        let t = load(&path).unwrap();
        assert_eq!(t.entries.len(), 200);
        assert_eq!(t.unit, TimeUnit::MsOffsets);
        assert!((120.0..300.0).contains(&t.span_s), "span {}", t.span_s);
    }
}
