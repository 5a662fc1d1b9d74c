//! LMBench-compatible result files.
//!
//! Each run writes two files into the suite's result directory:
//! - `<key>_<WORKLOAD>_<qps>_<YYYYmmdd-HHMM>.json`: LMBench's per-run JSON (`name`,
//!   `lmbench-session-id`, `timestamp`, `results`, `infra`, `serving`, `workload`, in that order)
//!   followed by lmbench's `schema_version` and `lmbench` keys, so LMBench's dashboard and
//!   visualizer read it unchanged;
//! - `<same stem>.requests.jsonl`: one [`RequestRecord`] per line, written while the run goes.
//!
//! Result files are never overwritten (LMBench's minute-resolution names silently replaced
//! earlier runs): a taken name gets a `-1`, `-2`, … suffix after the timestamp, and the JSON is
//! written atomically without clobbering. `measure` produces the [`Summary`] placed under
//! `results`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};

use crate::measure::Summary;
use crate::record::RequestRecord;

/// Value of the top-level `schema_version` key.
pub const SCHEMA_VERSION: &str = "lmbench/1";

/// Suffix of the per-request file beside a result JSON.
pub const REQUESTS_SUFFIX: &str = ".requests.jsonl";

/// How many `-N` suffixes to try before giving up on a free file name.
const MAX_SUFFIX: u32 = 10_000;

/// Everything about a run that the result file records besides its summary.
#[derive(Debug, Clone)]
pub struct ResultMeta {
    /// The suite's `Name` (top-level `name`).
    pub suite_name: String,
    /// `lmbench-<unix>-<8 hex>` (top-level `lmbench-session-id`).
    pub session_id: String,
    /// When the run was summarized; written at minute resolution as `YYYYmmdd-HHMM`.
    pub timestamp: chrono::DateTime<chrono::Local>,
    /// The baseline key, first part of the file name.
    pub baseline_key: String,
    /// LMBench's `WORKLOAD` value, e.g. `synthetic`.
    pub workload_name: String,
    /// The QPS as LMBench writes it in file names: `0.5`, `2`, `unknown`.
    pub qps_label: String,
    /// The infrastructure section of run-bench.yaml (`infra`).
    pub infra: Value,
    /// `{"baseline_type": …, "config": {…}}` (`serving`).
    pub serving: Value,
    /// `{"WORKLOAD": …, "QPS": …, params…}` (`workload`).
    pub workload: Value,
    /// lmbench's own run details (run index, seed, start time, partial flag…), written under
    /// `lmbench.run`.
    pub run: Value,
}

/// `YYYYmmdd-HHMM`, LMBench's timestamp format.
pub fn format_timestamp(ts: &chrono::DateTime<chrono::Local>) -> String {
    ts.format("%Y%m%d-%H%M").to_string()
}

/// The file name stem `<key>_<WORKLOAD>_<qps_label>_<YYYYmmdd-HHMM>` (no suffix, no `.json`).
/// Path separators, whitespace and control characters in the parts become `-` so the name
/// stays one file inside the result directory; an empty part becomes `unknown`.
pub fn result_base_name(meta: &ResultMeta) -> String {
    format!(
        "{}_{}_{}_{}",
        sanitize(&meta.baseline_key),
        sanitize(&meta.workload_name),
        sanitize(&meta.qps_label),
        format_timestamp(&meta.timestamp)
    )
}

/// `<key>_<WORKLOAD>_<qps_label>_<YYYYmmdd-HHMM>.json`, LMBench's result file name.
pub fn result_file_name(meta: &ResultMeta) -> String {
    format!("{}.json", result_base_name(meta))
}

fn sanitize(part: &str) -> String {
    if part.is_empty() {
        return "unknown".to_string();
    }
    file_name_part(part)
}

/// A name part as it appears in result file names: path separators, whitespace and control
/// characters become `-`.
pub fn file_name_part(part: &str) -> String {
    part.chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_whitespace() || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect()
}

/// The complete result JSON. Top-level keys in order: `name`, `lmbench-session-id`,
/// `timestamp`, `results`, `infra`, `serving`, `workload` (LMBench's), then `schema_version`
/// and `lmbench` (`version`, `run`, `requests_file`). Any `hf_token`-like key in the
/// infra/serving/workload/run values is dropped, whatever the caller passed.
///
/// `requests_file` names `<base>.requests.jsonl`; [`ResultWriter::finish`] corrects it if the
/// writer had to pick a suffixed name.
pub fn build_result_json(meta: &ResultMeta, summary: &Summary) -> Value {
    let mut root = Map::new();
    root.insert("name".into(), json!(meta.suite_name));
    root.insert("lmbench-session-id".into(), json!(meta.session_id));
    root.insert("timestamp".into(), json!(format_timestamp(&meta.timestamp)));
    root.insert("results".into(), summary.results_json());
    root.insert("infra".into(), redacted(&meta.infra));
    root.insert("serving".into(), redacted(&meta.serving));
    root.insert("workload".into(), redacted(&meta.workload));
    root.insert("schema_version".into(), json!(SCHEMA_VERSION));
    root.insert(
        "lmbench".into(),
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "baseline_key": meta.baseline_key,
            "run": redacted(&meta.run),
            "requests_file": format!("{}{REQUESTS_SUFFIX}", result_base_name(meta)),
        }),
    );
    Value::Object(root)
}

fn redacted(v: &Value) -> Value {
    let mut v = v.clone();
    strip_secrets(&mut v);
    v
}

fn is_secret_key(k: &str) -> bool {
    let norm: String = k
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    norm == "hftoken"
}

fn strip_secrets(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !is_secret_key(k));
            map.values_mut().for_each(strip_secrets);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_secrets),
        _ => {}
    }
}

/// Writes one run's files: the per-request JSONL as records arrive, the result JSON at the end.
///
/// Dropping a writer without [`Self::finish`] flushes the JSONL (best effort) and writes no JSON.
#[derive(Debug)]
pub struct ResultWriter {
    dir: PathBuf,
    base: String,
    stem: String,
    requests_path: PathBuf,
    jsonl: BufWriter<File>,
    records: u64,
}

impl ResultWriter {
    /// Creates `dir` if needed and `<dir>/<result_base_name(meta)>.requests.jsonl`; see
    /// [`Self::create_with_base`].
    pub fn create(dir: impl AsRef<Path>, meta: &ResultMeta) -> io::Result<Self> {
        Self::create_with_base(dir, &result_base_name(meta))
    }

    /// Creates `dir` if needed and `<dir>/<stem>.requests.jsonl`, where `stem` is `base`, or
    /// `base-1`, `base-2`, … if `<stem>.json` or `<stem>.requests.jsonl` already exists. The
    /// JSONL is created with `create_new`, so two writers never share a stem.
    pub fn create_with_base(dir: impl AsRef<Path>, base: &str) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        for stem in candidate_stems(base) {
            if dir.join(format!("{stem}.json")).exists() {
                continue;
            }
            let requests_path = dir.join(format!("{stem}{REQUESTS_SUFFIX}"));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&requests_path)
            {
                Ok(file) => {
                    return Ok(ResultWriter {
                        dir,
                        base: base.to_string(),
                        stem,
                        requests_path,
                        jsonl: BufWriter::with_capacity(64 * 1024, file),
                        records: 0,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(no_free_name(&dir, base))
    }

    /// The chosen stem (`base` or `base-N`).
    pub fn stem(&self) -> &str {
        &self.stem
    }

    /// Path of the per-request JSONL.
    pub fn requests_path(&self) -> &Path {
        &self.requests_path
    }

    /// Where [`Self::finish`] will write the JSON unless that name is taken meanwhile.
    pub fn json_path(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.stem))
    }

    /// Records written so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }

    /// Appends one record as a JSON line (buffered).
    pub fn write_record(&mut self, rec: &RequestRecord) -> io::Result<()> {
        serde_json::to_writer(&mut self.jsonl, rec)?;
        self.jsonl.write_all(b"\n")?;
        self.records += 1;
        Ok(())
    }

    /// Flushes and fsyncs the JSONL, then writes `result` (with `lmbench.requests_file` set to
    /// the JSONL's actual name) atomically to `<stem>.json`, never replacing an existing file:
    /// if another process took that name since [`Self::create`], the next free `base-N` is
    /// used. Returns the JSON's path.
    pub fn finish(self, result: &Value) -> io::Result<PathBuf> {
        let file = self.jsonl.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);

        let mut result = result.clone();
        if let Some(lm) = result.get_mut("lmbench").and_then(Value::as_object_mut) {
            let name = format!("{}{REQUESTS_SUFFIX}", self.stem);
            lm.insert("requests_file".into(), Value::String(name));
        }
        let bytes = json_bytes(&result)?;

        let first = std::iter::once(self.stem.clone());
        let others = candidate_stems(&self.base).filter(|s| *s != self.stem);
        for stem in first.chain(others) {
            if stem != self.stem && self.dir.join(format!("{stem}{REQUESTS_SUFFIX}")).exists() {
                continue;
            }
            let path = self.dir.join(format!("{stem}.json"));
            match write_atomic(&path, &bytes, false) {
                Ok(()) => return Ok(path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(no_free_name(&self.dir, &self.base))
    }
}

fn candidate_stems(base: &str) -> impl Iterator<Item = String> + '_ {
    (0..=MAX_SUFFIX).map(move |k| {
        if k == 0 {
            base.to_string()
        } else {
            format!("{base}-{k}")
        }
    })
}

fn no_free_name(dir: &Path, base: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "no free result file name for {base} in {} after {MAX_SUFFIX} suffixes",
            dir.display()
        ),
    )
}

fn json_bytes(value: &Value) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `value` as pretty JSON (2-space indent, like LMBench's `json.dump(indent=2)`) to
/// `path` atomically: a temporary file in the same directory is written, fsynced and renamed
/// over `path`, so readers see the old file or the new one, never a part. Replaces an existing
/// file; see [`write_json_new`] for the no-clobber variant.
pub fn write_json_atomic(path: impl AsRef<Path>, value: &Value) -> io::Result<()> {
    write_atomic(path.as_ref(), &json_bytes(value)?, true)
}

/// Like [`write_json_atomic`] but fails with [`io::ErrorKind::AlreadyExists`] instead of
/// replacing an existing file.
pub fn write_json_new(path: impl AsRef<Path>, value: &Value) -> io::Result<()> {
    write_atomic(path.as_ref(), &json_bytes(value)?, false)
}

/// Reads a `.requests.jsonl` back (blank lines skipped).
pub fn read_records(path: impl AsRef<Path>) -> io::Result<Vec<RequestRecord>> {
    let reader = BufReader::new(File::open(path.as_ref())?);
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let rec = serde_json::from_str(&line).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}:{}: {e}", path.as_ref().display(), i + 1),
            )
        })?;
        out.push(rec);
    }
    Ok(out)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn write_atomic(path: &Path, bytes: &[u8], replace: bool) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy()
        .into_owned();
    if !replace && path.exists() {
        return Err(exists(path));
    }
    let (tmp, file) = create_temp(&dir, &name)?;
    let persisted = persist(file, bytes, &tmp, path, replace);
    // After a rename the temp name is gone; after a hard link or a failure it must go.
    let _ = fs::remove_file(&tmp);
    persisted?;
    sync_dir(&dir);
    Ok(())
}

fn persist(mut file: File, bytes: &[u8], tmp: &Path, path: &Path, replace: bool) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    if replace {
        fs::rename(tmp, path)
    } else {
        link_no_clobber(tmp, path)
    }
}

/// Moves `tmp` to `path` only if `path` does not exist. A hard link fails atomically when the
/// target exists, which a check followed by a rename cannot guarantee; the check+rename is
/// only the fallback for filesystems without hard links.
fn link_no_clobber(tmp: &Path, path: &Path) -> io::Result<()> {
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists(path)),
        Err(_) if path.exists() => Err(exists(path)),
        Err(_) => fs::rename(tmp, path),
    }
}

fn exists(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} already exists", path.display()),
    )
}

fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    loop {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Makes a rename or link durable. Best effort: not every platform or filesystem allows
/// fsyncing a directory, and the data itself is already synced.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::{summarize, SummaryContext};
    use crate::record::{ErrorKind, RequestError};
    use chrono::TimeZone;

    fn meta() -> ResultMeta {
        ResultMeta {
            suite_name: "basic-helm-benchmark".into(),
            session_id: "lmbench-1700000000-abcd1234".into(),
            timestamp: chrono::Local
                .with_ymd_and_hms(2025, 8, 1, 12, 0, 0)
                .earliest()
                .unwrap(),
            baseline_key: "helm_basic".into(),
            workload_name: "synthetic".into(),
            qps_label: "0.5".into(),
            infra: json!({"Location": "Local-Flat"}),
            serving: json!({
                "baseline_type": "Helm-ProductionStack",
                "config": {
                    "helmConfigSelection": "basic/llama-3.1-8b-basic.yaml",
                    "modelURL": "meta-llama/Llama-3.1-8B-Instruct",
                    "hf_token": "hf_secret",
                },
            }),
            workload: json!({"WORKLOAD": "synthetic", "NUM_USERS": 10, "QPS": 0.5, "HF-Token": "x"}),
            run: json!({"index": 0, "seed": 7, "started_at": 1_754_000_000, "partial": false}),
        }
    }

    fn record(id: u64, sent: f64, ok: bool) -> RequestRecord {
        RequestRecord {
            id,
            user_id: Some(id),
            round: 1,
            warmup: false,
            due_s: sent,
            sent_s: sent,
            first_token_s: ok.then_some(sent + 0.2),
            end_s: sent + 0.5,
            chunk_times_s: if ok {
                vec![sent + 0.2, sent + 0.3, sent + 0.4]
            } else {
                Vec::new()
            },
            prompt_tokens: Some(1000),
            completion_tokens: ok.then_some(3),
            cached_tokens: None,
            client_prompt_tokens: 998,
            client_completion_tokens: if ok { 3 } else { 0 },
            max_tokens: 3,
            status: Some(if ok { 200 } else { 500 }),
            error: (!ok).then(|| RequestError {
                kind: ErrorKind::HttpStatus,
                message: "500 Internal Server Error".into(),
            }),
        }
    }

    fn records() -> Vec<RequestRecord> {
        (0..5).map(|i| record(i, i as f64 * 2.0, i != 3)).collect()
    }

    fn ctx() -> SummaryContext {
        SummaryContext {
            target_qps: Some(0.5),
            run_duration_s: Some(10.0),
        }
    }

    fn dir_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn file_name_and_timestamp() {
        let m = meta();
        assert_eq!(format_timestamp(&m.timestamp), "20250801-1200");
        assert_eq!(
            result_file_name(&m),
            "helm_basic_synthetic_0.5_20250801-1200.json"
        );
        let mut odd = meta();
        odd.baseline_key = "a/b c".into();
        odd.qps_label = String::new();
        assert_eq!(
            result_base_name(&odd),
            "a-b-c_synthetic_unknown_20250801-1200"
        );
    }

    /// The keys and types LMBench's dashboard and visualizer read.
    #[test]
    fn dashboard_compatible_shape() {
        let m = meta();
        let s = summarize(&records(), &ctx());
        let v = build_result_json(&m, &s);
        let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            top,
            [
                "name",
                "lmbench-session-id",
                "timestamp",
                "results",
                "infra",
                "serving",
                "workload",
                "schema_version",
                "lmbench"
            ]
        );
        assert_eq!(v["name"], "basic-helm-benchmark");
        assert_eq!(v["lmbench-session-id"], "lmbench-1700000000-abcd1234");
        assert_eq!(v["timestamp"], "20250801-1200");

        let r = &v["results"];
        assert!(r["successful_requests"].is_u64());
        assert_eq!(r["successful_requests"], 4);
        assert!(r["total_input_tokens"].is_u64());
        assert!(r["total_generated_tokens"].is_u64());
        for k in [
            "benchmark_duration_s",
            "request_throughput_req_per_s",
            "output_token_throughput_tok_per_s",
            "input_token_throughput_tok_per_s",
            "total_token_throughput_tok_per_s",
        ] {
            assert!(r[k].is_number(), "{k}");
        }
        for k in ["ttft_ms", "tpot_ms", "itl_ms"] {
            for stat in ["mean", "median", "p99"] {
                assert!(r[k][stat].is_number(), "{k}.{stat}");
            }
        }
        // Sends at 0, 2, 4, 6, 8; ends 0.5 later; one failure (id 3) not counted.
        assert_eq!(r["benchmark_duration_s"], 8.5);
        assert_eq!(r["total_input_tokens"], 4000);
        assert_eq!(r["total_generated_tokens"], 12);
        assert_eq!(r["ttft_ms"]["mean"], 200.0);
        assert_eq!(r["failures_by_cause"]["http_status"], 1);

        assert!(v["infra"].is_object());
        assert_eq!(v["serving"]["baseline_type"], "Helm-ProductionStack");
        assert!(v["serving"]["config"].is_object());
        assert!(v["serving"]["config"].get("hf_token").is_none());
        assert_eq!(v["workload"]["WORKLOAD"], "synthetic");
        assert!(v["workload"]["QPS"].is_number());
        assert!(v["workload"].get("HF-Token").is_none());

        assert_eq!(v["schema_version"], "lmbench/1");
        assert_eq!(v["lmbench"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["lmbench"]["run"]["seed"], 7);
        assert_eq!(
            v["lmbench"]["requests_file"],
            "helm_basic_synthetic_0.5_20250801-1200.requests.jsonl"
        );
    }

    #[test]
    fn empty_run_writes_error_object() {
        let s = summarize(&[], &ctx());
        let v = build_result_json(&meta(), &s);
        assert_eq!(v["results"]["error"], "No successful requests completed");
        assert!(v["results"]["message"].is_string());
        assert!(!serde_json::to_string(&v).unwrap().contains("NaN"));
    }

    #[test]
    fn writer_round_trip_and_no_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("suite");
        let m = meta();
        let recs = records();
        let mut w = ResultWriter::create(&dir, &m).unwrap();
        assert_eq!(w.stem(), result_base_name(&m));
        assert!(w.requests_path().exists());
        for r in &recs {
            w.write_record(r).unwrap();
        }
        assert_eq!(w.records_written(), 5);
        let result = build_result_json(&m, &summarize(&recs, &ctx()));
        let path = w.finish(&result).unwrap();
        assert_eq!(path, dir.join(result_file_name(&m)));
        assert_eq!(
            dir_names(&dir),
            [
                "helm_basic_synthetic_0.5_20250801-1200.json",
                "helm_basic_synthetic_0.5_20250801-1200.requests.jsonl"
            ]
        );
        let back: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(back, result);
        let lines =
            fs::read_to_string(dir.join(format!("{}{REQUESTS_SUFFIX}", w_stem(&m)))).unwrap();
        assert_eq!(lines.lines().count(), 5);
        for (line, want) in lines.lines().zip(&recs) {
            let got: RequestRecord = serde_json::from_str(line).unwrap();
            assert_eq!(&got, want);
        }
        assert_eq!(
            read_records(dir.join(format!("{}{REQUESTS_SUFFIX}", w_stem(&m)))).unwrap(),
            recs
        );
    }

    fn w_stem(m: &ResultMeta) -> String {
        result_base_name(m)
    }

    #[test]
    fn writer_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let m = meta();
        let base = result_base_name(&m);
        // An earlier run's JSON with the same name (same key/workload/QPS within a minute).
        fs::write(dir.join(format!("{base}.json")), "original").unwrap();
        // And someone's JSONL for the first suffix.
        fs::write(dir.join(format!("{base}-1{REQUESTS_SUFFIX}")), "other").unwrap();

        let mut w = ResultWriter::create(dir, &m).unwrap();
        assert_eq!(w.stem(), format!("{base}-2"));
        w.write_record(&records()[0]).unwrap();
        let result = build_result_json(&m, &summarize(&records(), &ctx()));
        let path = w.finish(&result).unwrap();
        assert_eq!(path, dir.join(format!("{base}-2.json")));
        assert_eq!(
            fs::read_to_string(dir.join(format!("{base}.json"))).unwrap(),
            "original"
        );
        assert_eq!(
            fs::read_to_string(dir.join(format!("{base}-1{REQUESTS_SUFFIX}"))).unwrap(),
            "other"
        );
        let back: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            back["lmbench"]["requests_file"],
            format!("{base}-2{REQUESTS_SUFFIX}")
        );
        // The timestamp stays the last `_`-separated part of the name.
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name.rsplit('_').next(), Some("20250801-1200-2.json"));
    }

    #[test]
    fn json_taken_during_run_gets_next_name() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let w = ResultWriter::create_with_base(dir, "k_random_2_20250101-0000").unwrap();
        assert_eq!(w.json_path(), dir.join("k_random_2_20250101-0000.json"));
        // Another process writes the same JSON name while the run is going.
        fs::write(w.json_path(), "theirs").unwrap();
        let path = w.finish(&json!({"lmbench": {}})).unwrap();
        assert_eq!(path, dir.join("k_random_2_20250101-0000-1.json"));
        assert_eq!(
            fs::read_to_string(dir.join("k_random_2_20250101-0000.json")).unwrap(),
            "theirs"
        );
        let back: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            back["lmbench"]["requests_file"],
            "k_random_2_20250101-0000.requests.jsonl"
        );
        assert_eq!(dir_names(dir).len(), 3);
    }

    #[test]
    fn atomic_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cmp.json");
        write_json_atomic(&path, &json!({"a": 1})).unwrap();
        write_json_atomic(&path, &json!({"a": 2, "b": [1, 2]})).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\n  \"a\": 2,\n  \"b\": [\n    1,\n    2\n  ]\n}\n");

        let err = write_json_new(&path, &json!({"a": 3})).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(fs::read_to_string(&path).unwrap().contains("\"a\": 2"));
        write_json_new(tmp.path().join("new.json"), &json!([])).unwrap();

        assert_eq!(dir_names(tmp.path()), ["cmp.json", "new.json"]);
    }

    #[test]
    fn bad_jsonl_line_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.requests.jsonl");
        let good = serde_json::to_string(&records()[0]).unwrap();
        fs::write(&path, format!("{good}\n\n{{not json\n")).unwrap();
        let err = read_records(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains(":3:"), "{err}");
    }
}
