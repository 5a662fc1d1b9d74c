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
//! Prompts. Hash id `h` is a block of BLOCK_SIZE filler tokens seeded by `h` and the point's
//! salt, so the same id is the same text within a point and in every baseline, and different
//! text at the next point (a point never finds an earlier point's blocks in the cache);
//! `SALT_PER_POINT: false` seeds blocks by `h` alone, the same text at every point. A prompt
//! is its blocks in order,
//! cut (at a word, i.e. a token, boundary) or padded with per-request filler to exactly
//! `input_length` tokens. Requests whose hash ids share a prefix share exactly that prefix of
//! text, which is what a prefix cache can reuse (LMBench's text ignored the hash ids'
//! structure). BLOCK_SIZE defaults to 512, mooncake's block; gmi's blocks are about 32 tokens
//! (`BLOCK_SIZE: 32`).

use super::prompt::{mix_seed, PromptBuilder};
use super::search::Axis;
use super::{Point, RawWorkload, RunContext, SweepPoint, Workload, WorkloadError, WorkloadSpec};
use crate::cache::PromptReuse;
use crate::config::{Checked, Invalid, Item, LooseBool, Num, OneOrMany, TraceDuration, O};
use crate::record::{ApiType, Completed, Prompt, RequestSpec};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod format;

pub use format::{load, parse, TimeUnit, TraceEntry, TraceFile};

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
        /// Draw the hash ids' blocks anew at every point (default true), so a point never finds
        /// an earlier point's blocks in the cache; `false` keeps one text per hash id across
        /// points and baselines (lmbench addition).
        pub SALT_PER_POINT: O<bool>,
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
        let beside_search = c.list_beside_search(&self.QPS, "QPS");
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
        beside_search?;
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
            salt_per_point: self.SALT_PER_POINT.as_ref().is_none_or(|v| v.value),
        })
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
    /// `SALT_PER_POINT`.
    pub salt_per_point: bool,
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

    /// The QPS-mode point at rate `q`.
    fn qps_point(&self, q: Num) -> Point {
        Point::qps(q, self.duration_s.unwrap_or(600.0) + 10.0)
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
            self.qps.iter().map(|q| self.qps_point(*q)).collect()
        }
    }

    fn search_point(&self, axis: Axis, value: Num) -> Result<Point, String> {
        match axis {
            _ if self.timed => Err("a timed replay (PRESERVE_TIMING) has no load to search".into()),
            Axis::Qps => Ok(self.qps_point(value)),
            _ => Err(format!("searches QPS only, not {}", axis.key())),
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

    fn prompt_reuse(&self) -> PromptReuse {
        if self.salt_per_point {
            PromptReuse::PerPoint
        } else {
            PromptReuse::Shared
        }
    }

    fn extra_params(&self, block: &mut Map<String, Value>, api: ApiType) {
        block.insert("API_TYPE".into(), json!(api.as_str()));
    }
}

/// TRACE_FILE when the spec does not set one, relative to [`TRACE_DIR`].
pub const DEFAULT_TRACE_FILE: &str = "traces/gmi_trace.jsonl";
/// Tokens per hash id when BLOCK_SIZE is not set (mooncake's block size).
pub const DEFAULT_BLOCK_SIZE: usize = 512;
/// Keeps padding filler apart from any hash id's block text.
const PAD_SALT: u64 = 0x7472_6163_655f_7061;

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
    /// Mixed into every block's seed: the point's seed, or 0 with `SALT_PER_POINT: false`.
    salt: u64,
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
            salt: if cfg.salt_per_point { ctx.seed } else { 0 },
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
            let seed = if self.salt == 0 {
                mix_seed(&[*h])
            } else {
                mix_seed(&[self.salt, *h])
            };
            text.push_str(&self.prompt.filler_seeded(take, seed));
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
            slot_s: None,
            // The prompt as built, counted (not the trace's intended length): on the builder
            // thread, ahead of its due time, so counting never delays a send.
            client_prompt_tokens: self.prompt.count(&text) as u64,
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
mod tests;
