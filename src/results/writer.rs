//! Writing one run's files: the per-request JSONL while the run goes, the result JSON at the
//! end, under a name no earlier file has; and reading a JSONL back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{ResultFile, ResultName, REQUESTS_SUFFIX};
use crate::files::{write_atomic, Existing};
use crate::record::RequestRecord;

/// How many `-N` suffixes to try before giving up on a free file name.
const MAX_SUFFIX: u32 = 10_000;

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
    /// Creates `dir` if needed and `<dir>/<name.base()>.requests.jsonl`; see
    /// [`Self::create_with_base`].
    pub fn create(dir: impl AsRef<Path>, name: &ResultName) -> io::Result<Self> {
        Self::create_with_base(dir, &name.base())
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

    /// Writes what is buffered to the JSONL, so that it can be read back before [`Self::finish`].
    pub fn flush(&mut self) -> io::Result<()> {
        self.jsonl.flush()
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
    pub fn finish(self, result: &ResultFile) -> io::Result<PathBuf> {
        let file = self.jsonl.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);

        let mut result = result.clone();
        if let Some(lm) = &mut result.lmbench {
            lm.requests_file = Some(format!("{}{REQUESTS_SUFFIX}", self.stem));
        }
        let bytes = result.to_bytes()?;

        let first = std::iter::once(self.stem.clone());
        let others = candidate_stems(&self.base).filter(|s| *s != self.stem);
        for stem in first.chain(others) {
            if stem != self.stem && self.dir.join(format!("{stem}{REQUESTS_SUFFIX}")).exists() {
                continue;
            }
            let path = self.dir.join(format!("{stem}.json"));
            match write_atomic(&path, &bytes, Existing::Keep) {
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

/// Reads a `.requests.jsonl` back (blank lines skipped).
pub fn read_records(path: impl AsRef<Path>) -> io::Result<Vec<RequestRecord>> {
    let mut out = Vec::new();
    for_each_record(path, |r| out.push(r))?;
    Ok(out)
}

/// Reads a `.requests.jsonl` one record at a time (memory flat in its length).
pub fn for_each_record(path: impl AsRef<Path>, mut f: impl FnMut(RequestRecord)) -> io::Result<()> {
    let reader = BufReader::new(File::open(path.as_ref())?);
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
        f(rec);
    }
    Ok(())
}
