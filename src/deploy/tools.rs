//! External command-line tools (helm, kubectl, minikube, gcloud): found on a search path, run
//! with their output captured to a log, with a deadline, and with secrets kept out of messages.
//!
//! Every call appends `$ program args` and the tool's output, line by line as it arrives, to
//! one append-only log file (the suite's `pod-logs/infra.log`), so a slow `gcloud` or
//! `minikube start` can be followed with `tail -f`. Strings registered as secrets are replaced
//! by `***` in that log and in every error message. A tool runs as the leader of its own
//! process group; on timeout or cancellation the whole group is stopped (SIGTERM, a short
//! grace, SIGKILL), so nothing a tool forked keeps running behind lmbench's back.

use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

mod error;

pub use error::{display_command, hint_for, ToolError};
use error::{redact_with, tail};

/// A tool's deadline when [`RunOpts`] names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a stopped tool gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// How long output is still collected after the tool exited: a background process that
/// inherited the pipes must not keep the call waiting.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// Lines of stderr quoted in an error.
const TAIL_LINES: usize = 15;
/// Characters of stderr quoted in an error, at most.
const TAIL_CHARS: usize = 3000;

/// Where tools are looked up and where their output is logged.
#[derive(Clone)]
pub struct ToolEnv {
    /// The search path; `None` means this process's `PATH`.
    path: Option<OsString>,
    /// Where lmbench's install scripts put tools (`~/.local/bin`); searched after the path.
    install_dir: Option<PathBuf>,
    /// Append-only log of every call and its output.
    log: PathBuf,
    /// Strings never written to the log or to an error.
    secrets: Vec<String>,
}

impl fmt::Debug for ToolEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolEnv")
            .field("path", &self.path)
            .field("install_dir", &self.install_dir)
            .field("log", &self.log)
            .field("secrets", &format_args!("{} redacted", self.secrets.len()))
            .finish()
    }
}

impl ToolEnv {
    /// Tools from this process's `PATH`, then `~/.local/bin`; output appended to `log`.
    pub fn from_env(log: impl Into<PathBuf>) -> Self {
        let install_dir = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".local").join("bin"));
        ToolEnv {
            path: None,
            install_dir,
            log: log.into(),
            secrets: Vec::new(),
        }
    }

    /// Search this path (`PATH` syntax) instead of the process's `PATH`. Tools also get it
    /// as their `PATH`, so a tool that runs another one finds the same copy.
    pub fn with_path(mut self, path: impl Into<OsString>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Where install scripts put tools (searched after the path); `None` for nowhere.
    pub fn with_install_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.install_dir = dir;
        self
    }

    /// Never write `secret` to the log or to an error (it becomes `***`). Empty strings are
    /// ignored.
    pub fn redacting(mut self, secret: impl Into<String>) -> Self {
        let s = secret.into();
        if !s.is_empty() && !self.secrets.contains(&s) {
            self.secrets.push(s);
        }
        self
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Where install scripts put tools, if anywhere.
    pub fn install_dir(&self) -> Option<&Path> {
        self.install_dir.as_deref()
    }

    fn search_dirs(&self) -> Vec<PathBuf> {
        let base = self
            .path
            .clone()
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        // An empty entry would mean the current folder; tools are never taken from there.
        let mut dirs: Vec<PathBuf> = std::env::split_paths(&base)
            .filter(|d| !d.as_os_str().is_empty())
            .collect();
        if let Some(dir) = &self.install_dir {
            if !dirs.contains(dir) {
                dirs.push(dir.clone());
            }
        }
        dirs
    }

    /// The search path in `PATH` syntax (what tools get as their `PATH`).
    pub fn search_path(&self) -> OsString {
        std::env::join_paths(self.search_dirs()).unwrap_or_default()
    }

    /// The executable file `name` resolves to: `name` itself when it contains a `/`,
    /// otherwise the first executable `<dir>/<name>` on the search path.
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        if name.is_empty() {
            return None;
        }
        if name.contains('/') {
            let p = PathBuf::from(name);
            return is_executable(&p).then_some(p);
        }
        self.search_dirs()
            .into_iter()
            .map(|d| d.join(name))
            .find(|p| is_executable(p))
    }

    /// `text` with every secret (and every string of `extra`) replaced by `***`.
    pub fn redact(&self, text: &str, extra: &[String]) -> String {
        redact_with(text, &self.redactions(extra))
    }

    /// Append a timestamped note (redacted) to the log, e.g. a decision a step took.
    pub fn note(&self, message: &str) {
        let line = format!("[{}] # {}", timestamp(), self.redact(message, &[]));
        match open_log(&self.log) {
            Ok(mut f) => {
                let _ = writeln!(f, "{line}");
            }
            Err(e) => tracing::warn!("cannot write tool log {}: {e}", self.log.display()),
        }
    }

    /// Run `program` and require success: a non-zero exit is [`ToolError::Failed`].
    pub async fn run(
        &self,
        program: &str,
        args: &[String],
        opts: RunOpts,
    ) -> Result<ToolOutput, ToolError> {
        let out = self.output(program, args, opts.clone()).await?;
        if out.status.success() {
            return Ok(out);
        }
        let redact = self.redactions(&opts.redact);
        Err(ToolError::Failed {
            program: program.to_string(),
            command: display_command(program, args, &redact),
            status: out.status,
            stderr_tail: tail(&out, &redact),
        })
    }

    /// Run `program` and return its output whatever its exit status; errors only when it
    /// cannot be found or started, times out or is cancelled. For probes (`minikube status`).
    pub async fn output(
        &self,
        program: &str,
        args: &[String],
        opts: RunOpts,
    ) -> Result<ToolOutput, ToolError> {
        let redact = self.redactions(&opts.redact);
        let command = display_command(program, args, &redact);
        let resolved = self.find(program).ok_or_else(|| ToolError::NotFound {
            program: program.to_string(),
            hint: format!(
                "{}searched {}",
                hint_for(program),
                self.search_path().to_string_lossy()
            ),
        })?;
        let io_err = |context: &'static str| {
            let program = program.to_string();
            let command = command.clone();
            move |source| ToolError::Io {
                program,
                command,
                context,
                source,
            }
        };
        let log = LogSink::open(&self.log, redact.clone()).map_err(io_err("opening the log"))?;
        log.line(&format!("[{}] $ {command}", timestamp()));

        let mut cmd = Command::new(&resolved);
        cmd.args(args)
            .env("PATH", self.search_path())
            .envs(opts.envs.iter().map(|(k, v)| (k, v)))
            .stdin(if opts.input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(cwd) = &opts.cwd {
            cmd.current_dir(cwd);
        }
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(io_err("starting it"))?;
        let mut group = GroupGuard(child.id().map(|p| Pid::from_raw(p as i32)));

        if let (Some(input), Some(mut stdin)) = (opts.input.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                // A tool that exits without reading its input is not an error here.
                let _ = stdin.write_all(&input).await;
            });
        }
        let out_buf = Arc::new(Mutex::new(Vec::new()));
        let err_buf = Arc::new(Mutex::new(Vec::new()));
        let pumps = [
            child
                .stdout
                .take()
                .map(|s| tokio::spawn(pump(s, out_buf.clone(), log.clone(), "  out| "))),
            child
                .stderr
                .take()
                .map(|s| tokio::spawn(pump(s, err_buf.clone(), log.clone(), "  err| "))),
        ];

        let cancel = opts.cancel.clone().unwrap_or_default();
        enum End {
            Exited(io::Result<ExitStatus>),
            TimedOut,
            Cancelled,
        }
        let end = tokio::select! {
            s = child.wait() => End::Exited(s),
            _ = tokio::time::sleep(opts.timeout) => End::TimedOut,
            _ = cancel.cancelled() => End::Cancelled,
        };
        let (status, stopped) = match end {
            End::Exited(s) => {
                // Whatever the tool left running on purpose (a daemon) stays.
                group.0 = None;
                (Ok(s.map_err(io_err("waiting for it"))?), None)
            }
            End::TimedOut => (stop_group(&mut child, &mut group).await, Some(true)),
            End::Cancelled => (stop_group(&mut child, &mut group).await, Some(false)),
        };
        for p in pumps.into_iter().flatten() {
            if tokio::time::timeout(DRAIN_WAIT, p).await.is_err() {
                log.line("  (output still open after the tool exited; no longer read)");
            }
        }
        let take = |b: &Arc<Mutex<Vec<u8>>>| {
            let bytes = std::mem::take(&mut *b.lock().unwrap_or_else(|e| e.into_inner()));
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let output = ToolOutput {
            // Only a killed tool can fail to be waited for; report it as killed.
            status: status.unwrap_or_else(|_| ExitStatus::from_raw(Signal::SIGKILL as i32)),
            stdout: take(&out_buf),
            stderr: take(&err_buf),
        };
        let elapsed = start.elapsed().as_secs_f64();
        match stopped {
            None => log.line(&format!(
                "[{}] {} after {elapsed:.2}s",
                timestamp(),
                output.status
            )),
            Some(true) => log.line(&format!(
                "[{}] killed: no exit within {}s",
                timestamp(),
                opts.timeout.as_secs_f64()
            )),
            Some(false) => log.line(&format!(
                "[{}] killed: interrupted after {elapsed:.2}s",
                timestamp()
            )),
        }
        match stopped {
            None => Ok(output),
            Some(true) => Err(ToolError::Timeout {
                program: program.to_string(),
                command,
                timeout: opts.timeout,
                stderr_tail: tail(&output, &redact),
            }),
            Some(false) => Err(ToolError::Cancelled {
                program: program.to_string(),
                command,
            }),
        }
    }

    /// The secrets plus `extra`, longest first (so a secret that contains another is
    /// replaced whole), without empty strings.
    fn redactions(&self, extra: &[String]) -> Vec<String> {
        let mut all: Vec<String> = self
            .secrets
            .iter()
            .chain(extra)
            .filter(|s| !s.is_empty())
            .cloned()
            .collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        all
    }
}

/// How one tool call runs.
#[derive(Clone)]
pub struct RunOpts {
    /// Kill the tool (and its process group) after this long.
    pub timeout: Duration,
    /// Strings replaced by `***` in the log and in errors, besides the [`ToolEnv`]'s secrets.
    pub redact: Vec<String>,
    /// Bytes written to the tool's stdin (otherwise stdin is `/dev/null`).
    pub input: Option<Vec<u8>>,
    /// Variables added to the inherited environment. Their values are never logged.
    pub envs: Vec<(String, String)>,
    /// Working folder; this process's when `None`.
    pub cwd: Option<PathBuf>,
    /// Stop the tool when this fires ([`ToolError::Cancelled`]).
    pub cancel: Option<CancellationToken>,
}

impl Default for RunOpts {
    fn default() -> Self {
        RunOpts {
            timeout: DEFAULT_TIMEOUT,
            redact: Vec::new(),
            input: None,
            envs: Vec::new(),
            cwd: None,
            cancel: None,
        }
    }
}

impl fmt::Debug for RunOpts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunOpts")
            .field("timeout", &self.timeout)
            .field("redact", &format_args!("{} strings", self.redact.len()))
            .field("input", &self.input.as_ref().map(|i| i.len()))
            .field(
                "envs",
                &self
                    .envs
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("cwd", &self.cwd)
            .field("cancel", &self.cancel.is_some())
            .finish()
    }
}

impl RunOpts {
    /// The defaults: [`DEFAULT_TIMEOUT`], no input, nothing extra.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Also redact `s`.
    pub fn redact(mut self, s: impl Into<String>) -> Self {
        self.redact.push(s.into());
        self
    }

    /// Feed `input` to stdin.
    pub fn input(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.input = Some(input.into());
        self
    }

    /// Add an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Run in `dir`.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Stop the tool when `token` fires.
    pub fn cancel(mut self, token: &CancellationToken) -> Self {
        self.cancel = Some(token.clone());
        self
    }
}

/// What a tool printed and how it ended. The text is as printed (not redacted): it is for
/// the caller to parse, not to log.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output (invalid UTF-8 replaced).
    pub stdout: String,
    /// Standard error (invalid UTF-8 replaced).
    pub stderr: String,
}

impl ToolOutput {
    /// Did it exit with status 0?
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn open_log(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// The log of one call: lines are redacted, then appended whole.
#[derive(Clone)]
struct LogSink {
    file: Arc<Mutex<File>>,
    redact: Arc<Vec<String>>,
}

impl LogSink {
    fn open(path: &Path, redact: Vec<String>) -> io::Result<Self> {
        Ok(LogSink {
            file: Arc::new(Mutex::new(open_log(path)?)),
            redact: Arc::new(redact),
        })
    }

    fn line(&self, text: &str) {
        let mut line = redact_with(text, &self.redact);
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // A full disk must not fail the tool call; the output is still returned.
        let _ = f.write_all(line.as_bytes());
    }
}

/// Copy one output stream into `buf` and, line by line, into the log.
async fn pump(
    stream: impl AsyncRead + Unpin,
    buf: Arc<Mutex<Vec<u8>>>,
    log: LogSink,
    prefix: &'static str,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                buf.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&line);
                let text = String::from_utf8_lossy(&line);
                log.line(&format!("{prefix}{}", text.trim_end_matches(['\n', '\r'])));
            }
        }
    }
}

/// SIGKILLs a tool's process group when dropped while armed: a call abandoned midway (its
/// future dropped) leaves nothing running.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pg) = self.0.take() {
            let _ = killpg(pg, Signal::SIGKILL);
        }
    }
}

/// SIGTERM the group, give the leader a short grace, then SIGKILL whatever is left.
async fn stop_group(child: &mut Child, group: &mut GroupGuard) -> io::Result<ExitStatus> {
    let Some(pg) = group.0 else {
        return child.wait().await;
    };
    let _ = killpg(pg, Signal::SIGTERM);
    let status = match tokio::time::timeout(KILL_GRACE, child.wait()).await {
        Ok(s) => s,
        Err(_) => {
            let _ = killpg(pg, Signal::SIGKILL);
            child.wait().await
        }
    };
    // Members that outlived the leader (or ignored SIGTERM) go too.
    let _ = killpg(pg, Signal::SIGKILL);
    group.0 = None;
    status
}

#[cfg(test)]
mod tests;
