//! A local engine as a supervised process group.
//!
//! The launch command becomes the leader of its own process group, so one `killpg` reaches
//! everything it forks (vLLM's engine core, a shell's background jobs). Teardown is SIGTERM,
//! a grace period, then SIGKILL; the group counts as gone only once `killpg(pg, 0)` says
//! `ESRCH`. Dropping a [`LocalProcess`] that was never torn down SIGKILLs the group, so a
//! panic or an early `?` leaves nothing running.
//!
//! Zombies are members of their group too, and the init process of a container often does
//! not reap orphans, so this process makes itself a child subreaper (Linux) and reaps the
//! group's orphans itself; otherwise `ESRCH` would never come.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::{log_tail, DeployError};

/// How often teardown checks whether the group is gone.
const POLL: Duration = Duration::from_millis(10);
/// How long teardown waits for the group to vanish after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How long `Drop` blocks reaping after its SIGKILL.
const DROP_REAP: Duration = Duration::from_millis(200);
/// Log lines quoted when the process exits on its own.
const TAIL_LINES: usize = 20;

/// What to run for a local baseline, and where its output goes.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The program to execute, e.g. `bash`.
    pub program: PathBuf,
    /// Its arguments, e.g. the launch script's path.
    pub args: Vec<OsString>,
    /// The working directory.
    pub cwd: PathBuf,
    /// Variables added to (or overriding) the inherited environment. Values are never logged.
    pub env: Vec<(String, String)>,
    /// File that receives stdout and stderr (appended; parent folders are created).
    pub log_path: PathBuf,
}

/// What [`LocalProcess::teardown`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeardownReport {
    /// The group leader's exit status, if it was collected.
    pub leader_status: Option<ExitStatus>,
    /// Whether any process of the group was still running when teardown began.
    pub was_running: bool,
    /// Whether SIGTERM was not enough and the group had to be SIGKILLed.
    pub needed_sigkill: bool,
    /// Time from the start of teardown until the whole group was gone.
    pub elapsed: Duration,
}

/// A running local engine: the leader of its own process group, with output in a log file.
///
/// Must be created inside a Tokio runtime.
#[derive(Debug)]
pub struct LocalProcess {
    child: Child,
    pid: u32,
    log_path: PathBuf,
    status: Option<ExitStatus>,
    /// Set once the whole group is known to be gone; then it is never signalled again,
    /// since its id may be reused.
    report: Option<TeardownReport>,
}

impl LocalProcess {
    /// Start `spec` as the leader of a new process group, stdin from `/dev/null`, stdout and
    /// stderr appended to `spec.log_path`, environment = this process's plus `spec.env`.
    pub fn spawn(spec: &LaunchSpec) -> Result<Self, DeployError> {
        become_subreaper();
        if let Some(dir) = spec.log_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                DeployError::io(format!("creating log folder {}", dir.display()), e)
            })?;
        }
        let open_err =
            |e| DeployError::io(format!("opening log file {}", spec.log_path.display()), e);
        let stdout = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_path)
            .map_err(open_err)?;
        let stderr = stdout.try_clone().map_err(open_err)?;

        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .current_dir(&spec.cwd)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| DeployError::Spawn {
            program: spec.program.clone(),
            cwd: spec.cwd.clone(),
            source,
        })?;
        let pid = child.id().ok_or_else(|| {
            DeployError::io(
                "reading the pid of the spawned engine",
                std::io::Error::other("child has no pid"),
            )
        })?;
        tracing::info!(
            pid,
            program = %spec.program.display(),
            args = ?spec.args,
            env_keys = ?spec.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            log = %spec.log_path.display(),
            "started local engine process group"
        );
        live_groups().lock().map(|mut g| g.push(pid)).ok();
        Ok(LocalProcess {
            child,
            pid,
            log_path: spec.log_path.clone(),
            status: None,
            report: None,
        })
    }

    /// The leader's pid, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The log file receiving the engine's output.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The leader's exit status, if it has exited (reaping it if needed).
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.status = Some(status);
            }
        }
        self.status
    }

    /// If the leader has exited: its status and the last lines of its log, for an error
    /// message. Fits [`super::readiness::wait_ready`]'s `is_dead`.
    pub fn exit_reason(&mut self) -> Option<String> {
        let status = self.try_exit_status()?;
        Some(format!(
            "{status}; last {TAIL_LINES} lines of {}:\n{}",
            self.log_path.display(),
            log_tail(&self.log_path, TAIL_LINES)
        ))
    }

    /// Stop the whole group: SIGTERM, wait up to `grace` for the leader and every other
    /// member to be gone, then SIGKILL and wait again. Calling it again returns the first
    /// report without signalling anything.
    pub async fn teardown(&mut self, grace: Duration) -> Result<TeardownReport, DeployError> {
        if let Some(report) = &self.report {
            return Ok(report.clone());
        }
        let start = Instant::now();
        let was_running = !self.group_gone();
        let mut needed_sigkill = false;
        if was_running {
            self.signal(Signal::SIGTERM)?;
            if !self.wait_gone(grace).await {
                needed_sigkill = true;
                tracing::warn!(
                    pgid = self.pid,
                    grace_s = grace.as_secs_f64(),
                    "engine ignored SIGTERM; sending SIGKILL"
                );
                self.signal(Signal::SIGKILL)?;
                if !self.wait_gone(KILL_WAIT).await {
                    return Err(DeployError::GroupSurvived {
                        pgid: self.pgid().as_raw(),
                        waited: KILL_WAIT,
                    });
                }
            }
        }
        let report = TeardownReport {
            leader_status: self.status,
            was_running,
            needed_sigkill,
            elapsed: start.elapsed(),
        };
        tracing::info!(
            pgid = self.pid,
            status = ?report.leader_status,
            was_running,
            needed_sigkill,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "local engine torn down"
        );
        self.report = Some(report.clone());
        forget_group(self.pid);
        Ok(report)
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(self.pid as i32)
    }

    fn signal(&self, signal: Signal) -> Result<(), DeployError> {
        match killpg(self.pgid(), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(source) => Err(DeployError::Signal {
                pgid: self.pgid().as_raw(),
                signal: signal.as_str(),
                source,
            }),
        }
    }

    /// Reap what can be reaped, then: is no process of the group left?
    fn group_gone(&mut self) -> bool {
        // Only after the leader is collected: reaping by group before that could take the
        // leader's status away from tokio.
        if self.try_exit_status().is_some() {
            reap_orphans(self.pgid());
        }
        matches!(killpg(self.pgid(), None), Err(Errno::ESRCH))
    }

    async fn wait_gone(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.group_gone() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for LocalProcess {
    fn drop(&mut self) {
        forget_group(self.pid);
        if self.report.is_some() || self.group_gone() {
            return;
        }
        tracing::warn!(
            pgid = self.pid,
            "local engine dropped without teardown; sending SIGKILL to its group"
        );
        let _ = killpg(self.pgid(), Signal::SIGKILL);
        // Blocking briefly is acceptable on this error path; it keeps zombies from piling up.
        let deadline = Instant::now() + DROP_REAP;
        while !self.group_gone() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Process groups of engines started and not yet torn down, for [`kill_all_live_groups`].
fn live_groups() -> &'static std::sync::Mutex<Vec<u32>> {
    static G: std::sync::OnceLock<std::sync::Mutex<Vec<u32>>> = std::sync::OnceLock::new();
    G.get_or_init(Default::default)
}

fn forget_group(pid: u32) {
    if let Ok(mut g) = live_groups().lock() {
        g.retain(|p| *p != pid);
    }
}

/// SIGKILL every engine process group still running. For a forced exit (a second Ctrl-C),
/// where `std::process::exit` skips destructors and teardown: nothing deployed is left behind.
pub fn kill_all_live_groups() -> usize {
    let groups: Vec<u32> = live_groups().lock().map(|g| g.clone()).unwrap_or_default();
    for pid in &groups {
        let _ = killpg(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
    groups.len()
}

/// Collect exited children of ours that belong to group `pgid` (orphans handed to us as
/// subreaper), without blocking.
fn reap_orphans(pgid: Pid) {
    let group = Pid::from_raw(-pgid.as_raw());
    while let Ok(status) = waitpid(group, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(target_os = "linux")]
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::debug!("could not become a child subreaper: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str) -> LaunchSpec {
        LaunchSpec {
            program: "bash".into(),
            args: vec!["-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: vec![],
            log_path: dir.join("logs").join("engine.log"),
        }
    }

    fn group_exists(pgid: u32) -> bool {
        !matches!(killpg(Pid::from_raw(pgid as i32), None), Err(Errno::ESRCH))
    }

    /// Wait until the log has `needle`, i.e. the script got past its setup.
    async fn wait_for_log(path: &Path, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle)) {
            assert!(Instant::now() < deadline, "log never showed {needle:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn teardown_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut p =
            LocalProcess::spawn(&spec(dir.path(), "sleep 30 & sleep 30 & echo up; wait")).unwrap();
        wait_for_log(p.log_path(), "up").await;
        let pgid = p.pid();
        assert!(group_exists(pgid));
        assert_eq!(p.try_exit_status(), None);

        let report = p.teardown(Duration::from_secs(5)).await.unwrap();
        assert!(!group_exists(pgid), "group {pgid} still has members");
        assert!(report.was_running);
        assert!(!report.needed_sigkill);
        assert_eq!(report.leader_status.and_then(|s| s.code()), None);
        assert!(report.elapsed < Duration::from_secs(5), "{report:?}");

        let again = p.teardown(Duration::from_secs(5)).await.unwrap();
        assert_eq!(again, report);
    }

    #[tokio::test]
    async fn sigterm_ignoring_group_is_killed_after_grace() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = LocalProcess::spawn(&spec(
            dir.path(),
            "trap '' TERM; sleep 30 & echo up; wait; sleep 30",
        ))
        .unwrap();
        wait_for_log(p.log_path(), "up").await;
        let pgid = p.pid();
        let grace = Duration::from_millis(300);
        let report = p.teardown(grace).await.unwrap();
        assert!(report.needed_sigkill);
        assert!(report.elapsed >= grace, "{report:?}");
        assert!(!group_exists(pgid));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(report.leader_status.unwrap().signal(), Some(9));
    }

    #[tokio::test]
    async fn drop_without_teardown_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let p =
            LocalProcess::spawn(&spec(dir.path(), "sleep 30 & sleep 30 & echo up; wait")).unwrap();
        wait_for_log(p.log_path(), "up").await;
        let pgid = p.pid();
        drop(p);
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_exists(pgid) {
            assert!(Instant::now() < deadline, "group {pgid} survived drop");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn log_captures_stdout_and_stderr_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(
            dir.path(),
            "echo to-stdout; echo to-stderr >&2; echo \"var=$LMBENCH_TEST_VAR\"; pwd",
        );
        s.env.push(("LMBENCH_TEST_VAR".into(), "hello".into()));
        std::fs::create_dir_all(s.log_path.parent().unwrap()).unwrap();
        std::fs::write(&s.log_path, "earlier run\n").unwrap();
        let mut p = LocalProcess::spawn(&s).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.try_exit_status().is_none() {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(p.try_exit_status().unwrap().success());
        let log = std::fs::read_to_string(&s.log_path).unwrap();
        let cwd = dir.path().canonicalize().unwrap();
        assert_eq!(
            log,
            format!(
                "earlier run\nto-stdout\nto-stderr\nvar=hello\n{}\n",
                cwd.display()
            )
        );
        let report = p.teardown(Duration::from_secs(1)).await.unwrap();
        assert!(!report.was_running);
        assert!(!report.needed_sigkill);
    }

    #[tokio::test]
    async fn exit_reason_has_status_and_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut p =
            LocalProcess::spawn(&spec(dir.path(), "echo 'model file not found'; exit 3")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let reason = loop {
            if let Some(r) = p.exit_reason() {
                break r;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert!(reason.contains("exit status: 3"), "{reason}");
        assert!(reason.contains("model file not found"), "{reason}");
    }

    #[tokio::test]
    async fn spawn_failure_names_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), "true");
        s.program = "/nonexistent/lmbench-engine".into();
        let err = LocalProcess::spawn(&s).unwrap_err();
        assert!(matches!(err, DeployError::Spawn { .. }));
        assert!(
            err.to_string().contains("/nonexistent/lmbench-engine"),
            "{err}"
        );
    }
}
