//! The tools every validation rule uses: parsing YAML with lmbench's options, collecting
//! [`ConfigIssue`]s for one file ([`Checker`]), and checking the keys of one item — a baseline
//! or a workload item — under its key prefix and location ([`Item`]).
//!
//! Rules themselves live next to the type they check (each workload file, each baseline file,
//! run-bench.yaml's in `config`); they all report through these helpers, so every problem
//! names the file, the line where known, the key and what was expected, and all of them are
//! reported together.

use super::values::{Num, OneOrMany};
use super::{ConfigIssue, HF_TOKEN_PLACEHOLDER};
use serde_saphyr::{Location as Loc, Spanned};
use std::path::{Path, PathBuf};

/// A located value.
pub type S<T> = Spanned<T>;
/// An optional located value.
pub type O<T> = Option<Spanned<T>>;

/// Parse YAML with lmbench's options: non-finite numbers reach the value (validation decides
/// where `.inf` is allowed, e.g. VLLMBenchmark's REQUEST_RATES).
pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    let mut opts = serde_saphyr::Options::default();
    opts.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    serde_saphyr::from_str_with_options(text, opts)
}

/// Values written under `hf_token` keys in `source`, on the key's line or on the more indented
/// lines that continue it, so they can be hidden from messages that quote the source.
fn token_literals(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(pos) = l.find("hf_token") else {
            continue;
        };
        let Some(colon) = l[pos..].find(':') else {
            continue;
        };
        let first = l[pos + colon + 1..].trim().trim_matches(['"', '\'', ' ']);
        let is_block = first.is_empty() || first.starts_with('|') || first.starts_with('>');
        if !is_block {
            out.push(first.to_string());
            continue;
        }
        let base = indent(l);
        for next in &lines[i + 1..] {
            if next.trim().is_empty() {
                continue;
            }
            if indent(next) <= base {
                break;
            }
            out.push(next.trim().trim_matches(['"', '\'']).to_string());
        }
    }
    out.retain(|t| t.len() >= 4 && t != HF_TOKEN_PLACEHOLDER);
    out
}

/// Hide anything that looks like a token in text that may quote the source (error snippets).
pub(crate) fn redact(text: &str, hf_token: Option<&str>) -> String {
    let mut out: String = text
        .lines()
        .map(|l| {
            if let Some(pos) = l.find("hf_token") {
                let after = &l[pos..];
                match after.find(':') {
                    Some(c) => format!("{}: ***", &l[..pos + c]),
                    None => l.to_string(),
                }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    if let Some(t) = hf_token.filter(|t| t.len() >= 4) {
        out = out.replace(t, "***");
    }
    out
}

/// 1-based line and column of a location, or nothing when the parser gave none.
pub fn line_of(loc: &Loc) -> (Option<u64>, Option<u64>) {
    if loc.line() == 0 {
        (None, None)
    } else {
        (Some(loc.line()), Some(loc.column()))
    }
}

/// Collects the problems of one file.
pub struct Checker<'a> {
    file: PathBuf,
    issues: &'a mut Vec<ConfigIssue>,
}

impl<'a> Checker<'a> {
    /// Problems of `file` go into `issues`.
    pub fn new(file: &Path, issues: &'a mut Vec<ConfigIssue>) -> Self {
        Checker {
            file: file.to_path_buf(),
            issues,
        }
    }

    /// The file being checked.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Record a problem with `key` (a whole key path) at `at`.
    pub fn push(&mut self, at: Option<&Loc>, key: &str, message: impl Into<String>) {
        let (line, column) = at.map(line_of).unwrap_or((None, None));
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Record a YAML or serde error, with anything that looks like a token hidden.
    pub fn serde_error(&mut self, e: &serde_saphyr::Error, hf_token: Option<&str>, source: &str) {
        let (line, column) = e.location().map(|l| line_of(&l)).unwrap_or((None, None));
        let mut message = redact(&e.to_string(), hf_token);
        for t in token_literals(source) {
            message = message.replace(&t, "***");
        }
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            line,
            column,
            key: String::new(),
            message,
        });
    }

    /// A required key: reports it missing (at `at`, the enclosing item's location).
    pub fn req<'v, T>(&mut self, v: &'v O<T>, key: &str, at: &Loc) -> Option<&'v S<T>> {
        if v.is_none() {
            self.push(Some(at), key, "missing required key");
        }
        v.as_ref()
    }

    /// The checks of one item whose keys are `<prefix>.<key>`, located at `at`, with paths
    /// resolving against `root`.
    pub fn item<'c>(&'c mut self, prefix: String, at: Loc, root: &'c Path) -> Item<'c, 'a> {
        Item {
            c: self,
            prefix,
            at,
            root,
            searching: false,
        }
    }
}

/// The checks of one item (a baseline or a workload item): keys are named under the item's
/// prefix (`Workload.Random[0].QPS`) and missing ones are reported at the item's location.
pub struct Item<'c, 'a> {
    c: &'c mut Checker<'a>,
    prefix: String,
    at: Loc,
    root: &'c Path,
    searching: bool,
}

/// A rule that failed; the problem is already recorded in the [`Checker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// The outcome of one check: the value (for an optional key, `None` when it is absent), or
/// [`Invalid`]. A validation function runs every check first and combines the outcomes with `?`
/// afterwards, so all problems of an item are reported, not just the first.
pub type Checked<T> = Result<T, Invalid>;

impl Item<'_, '_> {
    /// The whole key path of `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}.{key}", self.prefix)
    }

    /// The item's own key path (`Serving[0].Flat`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where the item starts.
    pub fn at(&self) -> Loc {
        self.at
    }

    /// The folder paths resolve against (the folder of run-bench.yaml).
    pub fn root(&self) -> &Path {
        self.root
    }

    /// Whether the item searches for its load (`SEARCH`) instead of listing its points: its
    /// list of points is then left out ([`Item::req_positive_list`]).
    pub fn searching(&self) -> bool {
        self.searching
    }

    /// Marks the item as searching (see [`Item::searching`]).
    pub fn set_searching(&mut self, searching: bool) {
        self.searching = searching;
    }

    /// A sweep list given beside `SEARCH`: reported (an item lists its points or searches).
    pub fn list_beside_search<T>(&mut self, v: &O<T>, key: &str) -> Checked<()> {
        match v {
            Some(s) if self.searching => {
                self.push(
                    Some(&s.referenced),
                    key,
                    "given beside SEARCH: an item either lists its points or searches for its load",
                );
                Err(Invalid)
            }
            _ => Ok(()),
        }
    }

    /// Record a problem with `key` at `at` (the item's location when `None`).
    pub fn push(&mut self, at: Option<&Loc>, key: &str, message: impl Into<String>) {
        let at = at.copied().unwrap_or(self.at);
        let key = self.key(key);
        self.c.push(Some(&at), &key, message);
    }

    /// Record a problem with the item itself.
    pub fn push_item(&mut self, message: impl Into<String>) {
        let (at, key) = (self.at, self.prefix.clone());
        self.c.push(Some(&at), &key, message);
    }

    /// A required key's value; a missing one is reported at the item.
    pub fn req<'v, T>(&mut self, v: &'v O<T>, key: &str) -> Checked<&'v S<T>> {
        let (key, at) = (self.key(key), self.at);
        self.c.req(v, &key, &at).ok_or(Invalid)
    }

    /// A required integer of at least `min`.
    pub fn req_int(&mut self, v: &O<i64>, key: &str, min: i64) -> Checked<i64> {
        self.req(v, key)?;
        self.int(v, key, min)?.ok_or(Invalid)
    }

    /// An optional integer of at least `min`.
    pub fn int(&mut self, v: &O<i64>, key: &str, min: i64) -> Checked<Option<i64>> {
        let Some(s) = v.as_ref() else { return Ok(None) };
        if s.value < min {
            let what = match min {
                0 => "a non-negative integer".to_string(),
                1 => "a positive integer".to_string(),
                m => format!("an integer >= {m}"),
            };
            self.push(
                Some(&s.referenced),
                key,
                format!("expected {what}, got {}", s.value),
            );
            return Err(Invalid);
        }
        Ok(Some(s.value))
    }

    /// A required non-empty list of positive numbers (QPS, rates, intervals); an item that
    /// searches has none (and may not give one).
    pub fn req_positive_list(
        &mut self,
        v: &O<OneOrMany<Num>>,
        key: &str,
        allow_inf: bool,
    ) -> Checked<Vec<Num>> {
        if self.searching {
            return self.list_beside_search(v, key).map(|()| Vec::new());
        }
        self.req(v, key)?;
        self.positive_list(v, key, allow_inf)?.ok_or(Invalid)
    }

    /// An optional non-empty list of positive numbers; `.inf` only where `allow_inf`.
    pub fn positive_list(
        &mut self,
        v: &O<OneOrMany<Num>>,
        key: &str,
        allow_inf: bool,
    ) -> Checked<Option<Vec<Num>>> {
        let Some(s) = v.as_ref() else { return Ok(None) };
        if s.value.0.is_empty() {
            self.push(
                Some(&s.referenced),
                key,
                "expected a non-empty list of positive numbers",
            );
            return Err(Invalid);
        }
        let mut ok = true;
        for (i, n) in s.value.0.iter().enumerate() {
            let bad = n.value.is_nan() || n.value <= 0.0 || (!allow_inf && n.value.is_infinite());
            if bad {
                self.push(
                    Some(&s.referenced),
                    &format!("{key}[{i}]"),
                    format!(
                        "expected a positive{} number, got {}",
                        if allow_inf { "" } else { " finite" },
                        n.value
                    ),
                );
                ok = false;
            }
        }
        if ok {
            Ok(Some(s.value.0.clone()))
        } else {
            Err(Invalid)
        }
    }

    /// An optional number within [lo, hi] (or [lo, hi) when `hi_open`).
    pub fn num_in(
        &mut self,
        v: &O<Num>,
        key: &str,
        lo: f64,
        hi: f64,
        hi_open: bool,
    ) -> Checked<Option<f64>> {
        let Some(s) = v.as_ref() else { return Ok(None) };
        let x = s.value.value;
        let ok = x.is_finite() && x >= lo && if hi_open { x < hi } else { x <= hi };
        if !ok {
            let close = if hi_open { ")" } else { "]" };
            self.push(
                Some(&s.referenced),
                key,
                format!("expected a number in [{lo}, {hi}{close}, got {x}"),
            );
            return Err(Invalid);
        }
        Ok(Some(x))
    }

    /// An optional positive finite number.
    pub fn positive(&mut self, v: &O<Num>, key: &str) -> Checked<Option<f64>> {
        let Some(s) = v.as_ref() else { return Ok(None) };
        if !(s.value.value.is_finite() && s.value.value > 0.0) {
            self.push(
                Some(&s.referenced),
                key,
                format!("expected a positive number, got {}", s.value.value),
            );
            return Err(Invalid);
        }
        Ok(Some(s.value.value))
    }

    /// A file that must exist under `dir`.
    pub fn file_in(&mut self, v: &S<String>, key: &str, dir: &Path) -> Checked<PathBuf> {
        if v.value.trim().is_empty() {
            self.push(
                Some(&v.referenced),
                key,
                "expected a file name, got an empty string",
            );
            return Err(Invalid);
        }
        let p = dir.join(&v.value);
        if !p.is_file() {
            self.push(
                Some(&v.referenced),
                key,
                format!("selected file does not exist: {}", p.display()),
            );
            return Err(Invalid);
        }
        Ok(p)
    }

    /// An optional file relative to the root, which must exist when the key is set.
    pub fn root_file(&mut self, v: &O<String>, key: &str) -> Checked<Option<PathBuf>> {
        let Some(v) = v.as_ref() else { return Ok(None) };
        let root = self.root.to_path_buf();
        self.file_in(v, key, &root).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_token_lines_and_values() {
        let s = "  3 |   hf_token: hf_secretvalue\n  4 | modelURL: x hf_secretvalue";
        let r = redact(s, Some("hf_secretvalue"));
        assert!(!r.contains("hf_secretvalue"), "{r}");
        assert!(r.contains("modelURL"));
    }
}
