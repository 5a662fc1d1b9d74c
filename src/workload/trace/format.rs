//! The trace format TraceReplayer reads: one JSON request per line with `timestamp`,
//! `input_length`, `output_length` and `hash_ids`. The timestamp is an integer or numeric
//! string in milliseconds from the trace start (mooncake), Unix milliseconds, or Unix
//! nanoseconds (gmi, as strings: they do not fit an `f64`); the unit is detected from the
//! earliest ten timestamps as LMBench does. Lines are sorted by time in memory; offsets are
//! seconds from the earliest entry. A line that cannot be read is an error naming file and line.

use crate::workload::WorkloadError;
use std::cmp::Ordering;
use std::path::Path;

/// Timestamps detection looks at (LMBench's sample size).
const DETECT_SAMPLE: usize = 10;
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
