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

/// Why a tool call failed. Commands and output in it are redacted.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program is not on the search path.
    #[error("`{program}` not found: {hint}")]
    NotFound {
        /// The program as asked for.
        program: String,
        /// How to install it, and where it was looked for.
        hint: String,
    },
    /// The tool did not finish in time and was killed.
    #[error("`{command}` did not finish within {}s and was killed{}", timeout.as_secs_f64(), quote_tail(stderr_tail))]
    Timeout {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
        /// The deadline it had.
        timeout: Duration,
        /// The last lines of its stderr (stdout when stderr was empty), redacted.
        stderr_tail: String,
    },
    /// The call was cancelled (Ctrl-C) and the tool killed.
    #[error("`{command}` was interrupted and killed")]
    Cancelled {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
    },
    /// The tool exited unsuccessfully.
    #[error("`{command}` failed ({status}){}", quote_tail(stderr_tail))]
    Failed {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its stderr (stdout when stderr was empty), redacted.
        stderr_tail: String,
    },
    /// The tool printed something the caller could not read.
    #[error("`{command}` printed output that could not be read: {message}")]
    BadOutput {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
        /// What was expected.
        message: String,
    },
    /// Starting or waiting for the tool, or writing the log, failed.
    #[error("`{command}`: {context}: {source}")]
    Io {
        /// The program as asked for.
        program: String,
        /// The command line, redacted.
        command: String,
        /// What was being done.
        context: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl ToolError {
    /// The program the failed call ran.
    pub fn program(&self) -> &str {
        match self {
            ToolError::NotFound { program, .. }
            | ToolError::Timeout { program, .. }
            | ToolError::Cancelled { program, .. }
            | ToolError::Failed { program, .. }
            | ToolError::BadOutput { program, .. }
            | ToolError::Io { program, .. } => program,
        }
    }

    /// Was the call cancelled?
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ToolError::Cancelled { .. })
    }
}

fn quote_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.trim_end())
    }
}

/// How to get a missing tool.
pub fn hint_for(program: &str) -> &'static str {
    match program {
        "kubectl" => "install kubectl (1-infrastructure/local-minikube/install-kubectl.sh puts it in ~/.local/bin); ",
        "helm" => "install helm (1-infrastructure/local-minikube/install-helm.sh puts it in ~/.local/bin); ",
        "minikube" => "install minikube (1-infrastructure/local-minikube/install-minikube.sh puts it in ~/.local/bin); ",
        "gcloud" => "install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install), then `gcloud auth login` and `gcloud config set project <id>`; ",
        "docker" => "install Docker Engine (https://docs.docker.com/engine/install/) and let this user run `docker ps`; ",
        _ => "",
    }
}

/// The command line as a shell would read it, each argument redacted then quoted.
pub fn display_command(program: &str, args: &[String], redact: &[String]) -> String {
    let mut s = shell_quote(&redact_with(program, redact));
    for a in args {
        s.push(' ');
        s.push_str(&shell_quote(&redact_with(a, redact)));
    }
    redact_with(&s, redact)
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=,@%+*".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn redact_with(text: &str, redact: &[String]) -> String {
    let mut out = text.to_string();
    for r in redact {
        if !r.is_empty() && out.contains(r.as_str()) {
            out = out.replace(r.as_str(), "***");
        }
    }
    out
}

/// The last lines of stderr (or of stdout when stderr is empty), redacted and bounded.
fn tail(out: &ToolOutput, redact: &[String]) -> String {
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    let joined = redact_with(&lines[from..].join("\n"), redact);
    if joined.chars().count() > TAIL_CHARS {
        let skip = joined.chars().count() - TAIL_CHARS;
        format!("…{}", joined.chars().skip(skip).collect::<String>())
    } else {
        joined
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
mod tests {
    use super::*;

    fn env(dir: &Path) -> ToolEnv {
        ToolEnv::from_env(dir.join("logs").join("infra.log")).with_install_dir(None)
    }

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".to_string(), script.to_string()]
    }

    fn log_of(t: &ToolEnv) -> String {
        std::fs::read_to_string(t.log_path()).unwrap_or_default()
    }

    #[tokio::test]
    async fn runs_a_command_and_logs_it_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let t = env(dir.path());
        let out = t
            .run(
                "sh",
                &sh("echo hello; echo oops >&2; echo \"$GREETING\""),
                RunOpts::new().env("GREETING", "hi there"),
            )
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "hello\nhi there\n");
        assert_eq!(out.stderr, "oops\n");
        let log = log_of(&t);
        assert!(log.contains("$ sh -c 'echo hello;"), "{log}");
        assert!(log.contains("  out| hello\n"), "{log}");
        assert!(log.contains("  err| oops\n"), "{log}");
        assert!(log.contains("exit status: 0 after"), "{log}");
    }

    #[tokio::test]
    async fn stdin_input_reaches_the_tool() {
        let dir = tempfile::tempdir().unwrap();
        let t = env(dir.path());
        let out = t
            .run("cat", &[], RunOpts::new().input("line one\nline two\n"))
            .await
            .unwrap();
        assert_eq!(out.stdout, "line one\nline two\n");
    }

    #[tokio::test]
    async fn failure_names_program_args_status_and_stderr_tail() {
        let dir = tempfile::tempdir().unwrap();
        let t = env(dir.path());
        let script = "for i in $(seq 1 40); do echo line$i >&2; done; exit 3";
        let err = t.run("sh", &sh(script), RunOpts::new()).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ToolError::Failed { .. }), "{err:?}");
        assert_eq!(err.program(), "sh");
        assert!(msg.starts_with("`sh -c 'for i in"), "{msg}");
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains("line40"), "{msg}");
        assert!(!msg.contains("line20\n"), "tail is bounded: {msg}");
        // `output` returns the same call as data.
        let out = t.output("sh", &sh("exit 3"), RunOpts::new()).await.unwrap();
        assert_eq!(out.status.code(), Some(3));
    }

    /// Is `pid` alive (a zombie counts as dead)?
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                let state = s.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z') && !state.starts_with('X')
            })
            .unwrap_or(false)
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let t = env(dir.path());
        let start = Instant::now();
        let err = t
            .run(
                "sh",
                &sh("sleep 30 & echo bg=$!; echo waiting >&2; sleep 30"),
                RunOpts::new().timeout(Duration::from_millis(500)),
            )
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        let msg = err.to_string();
        assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
        assert!(msg.contains("did not finish within 0.5s"), "{msg}");
        assert!(msg.contains("waiting"), "{msg}");
        let log = log_of(&t);
        assert!(log.contains("killed: no exit within 0.5s"), "{log}");
        let bg: u32 = log
            .split("out| bg=")
            .nth(1)
            .and_then(|s| s.lines().next())
            .and_then(|s| s.trim().parse().ok())
            .expect("background pid in log");
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(bg) {
            assert!(Instant::now() < deadline, "background sleep {bg} survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn cancel_stops_the_tool() {
        let dir = tempfile::tempdir().unwrap();
        let t = env(dir.path());
        let token = CancellationToken::new();
        let c = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c.cancel();
        });
        let start = Instant::now();
        let err = t
            .run("sh", &sh("sleep 30"), RunOpts::new().cancel(&token))
            .await
            .unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(log_of(&t).contains("killed: interrupted"));
    }

    #[tokio::test]
    async fn secrets_never_reach_the_log_or_errors() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "hf_SuperSecretToken123";
        let extra = "aGZfU3VwZXJTZWNyZXQ="; // a base64 form, redacted per call
        let t = env(dir.path()).redacting(secret);
        let script =
            format!("echo token={secret}; echo b64={extra}; echo bad {secret} >&2; exit 1");
        let err = t
            .run("sh", &sh(&script), RunOpts::new().redact(extra.to_string()))
            .await
            .unwrap_err();
        let msg = err.to_string();
        let log = log_of(&t);
        for text in [&msg, &log] {
            assert!(!text.contains(secret), "{text}");
            assert!(!text.contains(extra), "{text}");
            assert!(text.contains("***"), "{text}");
        }
        assert!(log.contains("  out| token=***"), "{log}");
        assert!(msg.contains("bad ***"), "{msg}");
        // The caller still gets the real output to parse.
        let out = t
            .output("sh", &sh(&format!("echo {secret}")), RunOpts::new())
            .await
            .unwrap();
        assert_eq!(out.stdout.trim(), secret);
        assert!(!log_of(&t).contains(secret));
        t.note(&format!("a note mentioning {secret}"));
        assert!(!log_of(&t).contains(secret));
        assert!(!format!("{t:?}").contains(secret));
    }

    #[tokio::test]
    async fn missing_program_is_not_found_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let t = env(dir.path()).with_path(&bin);
        assert_eq!(t.find("sh"), None);
        let err = t.run("kubectl", &[], RunOpts::new()).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ToolError::NotFound { .. }), "{err:?}");
        assert!(msg.contains("`kubectl` not found"), "{msg}");
        assert!(msg.contains("install-kubectl.sh"), "{msg}");
        assert!(msg.contains(&bin.display().to_string()), "{msg}");
    }

    #[test]
    fn find_uses_the_override_path_then_the_install_dir() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, inst) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("inst"),
        );
        for d in [&a, &b, &inst] {
            std::fs::create_dir(d).unwrap();
        }
        let make = |p: &Path, mode: u32| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        make(&a.join("tool"), 0o644); // not executable: skipped
        make(&b.join("tool"), 0o755);
        make(&inst.join("other"), 0o755);
        let path = std::env::join_paths([&a, &b]).unwrap();
        let t = env(dir.path())
            .with_path(path)
            .with_install_dir(Some(inst.clone()));
        assert_eq!(t.find("tool"), Some(b.join("tool")));
        assert_eq!(t.find("other"), Some(inst.join("other")));
        assert_eq!(t.find("missing"), None);
        let abs = b.join("tool");
        assert_eq!(t.find(abs.to_str().unwrap()), Some(abs.clone()));
        assert_eq!(t.find(a.join("tool").to_str().unwrap()), None);
        let sp = t.search_path();
        assert_eq!(
            std::env::split_paths(&sp).collect::<Vec<_>>(),
            vec![a, b, inst]
        );
    }

    #[test]
    fn commands_are_quoted_and_redacted() {
        let args: Vec<String> = [
            "get",
            "nodes",
            "-o",
            r"jsonpath={..allocatable.nvidia\.com/gpu}",
            "it's",
            "tok=abc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            display_command("kubectl", &args, &["abc".to_string()]),
            r"kubectl get nodes -o 'jsonpath={..allocatable.nvidia\.com/gpu}' 'it'\''s' tok=***"
        );
    }
}
