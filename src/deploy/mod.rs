//! Bring a baseline up and take it down again, through one handle ([`Deployment`]) whatever
//! hosts it.
//!
//! - A local baseline is a launch script run as a supervised process group
//!   ([`local::LocalProcess`]): its output goes to a log file, and teardown signals the whole
//!   group, so engines that fork workers (vLLM) leave nothing behind.
//! - A Kubernetes baseline is a [`cluster::ClusterPlan`] carried out with kube-rs and the helm
//!   CLI ([`cluster`], [`k8s`], [`helm`], [`tools`]).
//! - An external endpoint is only checked.
//!
//! [`readiness`] decides when the engine can take load (`GET /v1/models` lists a model) and
//! when its port is free again for the next baseline.

pub mod cluster;
mod deployment;
pub mod helm;
pub mod k8s;
pub mod local;
pub mod readiness;
pub mod tools;

pub use deployment::{process, DeployOptions, Deployment, Endpoint, Launch};

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why bringing a baseline up or down failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The engine's launch command could not be started at all.
    #[error("could not start {} (in {}): {source}", program.display(), cwd.display())]
    Spawn {
        /// The program that was to be executed.
        program: PathBuf,
        /// The working directory it was to run in.
        cwd: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The supervised process exited before the engine became ready.
    ///
    /// `reason` carries the exit status and the tail of the engine's log (see
    /// [`local::LocalProcess::exit_reason`]).
    #[error("engine process exited before it was ready: {reason}")]
    ExitedEarly {
        /// Exit status and log tail, as one human-readable text.
        reason: String,
    },
    /// The engine did not answer `/v1/models` with a model before the deadline.
    #[error("engine at {url} not ready after {:.1}s; last error: {last_error}", waited.as_secs_f64())]
    ReadyTimeout {
        /// The URL that was polled.
        url: String,
        /// How long was waited.
        waited: Duration,
        /// The last failure seen while polling.
        last_error: String,
    },
    /// A port that the baseline needs is still taken by another process.
    #[error("port {port} is still in use after {:.1}s", waited.as_secs_f64())]
    PortBusy {
        /// The port.
        port: u16,
        /// How long was waited for it to become free.
        waited: Duration,
    },
    /// Signalling the engine's process group failed.
    #[error("could not send {signal} to process group {pgid}: {source}")]
    Signal {
        /// The process group id.
        pgid: i32,
        /// The signal's name.
        signal: &'static str,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
    /// Processes of the engine's group were still alive after SIGKILL and a wait.
    #[error("process group {pgid} still has live processes {:.1}s after SIGKILL", waited.as_secs_f64())]
    GroupSurvived {
        /// The process group id.
        pgid: i32,
        /// How long was waited after SIGKILL.
        waited: Duration,
    },
    /// A Kubernetes deployment step failed (the message names the step and the object).
    #[error("{message}")]
    Cluster {
        /// What failed.
        message: String,
    },
    /// Ctrl-C or SIGTERM arrived while the baseline was being deployed.
    #[error("interrupted during deployment")]
    Interrupted,
    /// Any other I/O failure (log file, waiting on the child).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl DeployError {
    /// An [`DeployError::Io`] with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        DeployError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The last `lines` lines of the file at `path`, lossily decoded as UTF-8.
///
/// Reads at most the final 64 KiB, so a huge engine log costs nothing. A missing or
/// unreadable file yields a short note instead of an error: this feeds error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let read = || -> io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        Ok(buf)
    };
    match read() {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.log");
        let body: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, body).unwrap();
        let tail = log_tail(&path, 3);
        assert_eq!(tail, "line 28\nline 29\nline 30");
        assert_eq!(log_tail(&path, 100).lines().count(), 30);
    }

    fn flat_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("2-serving-engines/flat")
    }

    fn scripts_under(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                scripts_under(&path, out);
            } else if path.extension().is_some_and(|e| e == "sh") {
                out.push(path);
            }
        }
    }

    #[test]
    fn flat_scripts_are_valid_bash() {
        let mut scripts = Vec::new();
        scripts_under(&flat_dir(), &mut scripts);
        for expected in [
            "llama-cpp/gemma-270m.sh",
            "llama-cpp/gemma-270m-no-prompt-cache.sh",
            "basic-vllm/run-llama8B.sh",
            "basic-lmcache/run-llama8B.sh",
            "sim/fixed.sh",
            "sim/engine.sh",
        ] {
            assert!(
                scripts.contains(&flat_dir().join(expected)),
                "{expected} missing"
            );
        }
        for script in &scripts {
            let out = std::process::Command::new("bash")
                .arg("-n")
                .arg(script)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let text = std::fs::read_to_string(script).unwrap();
            assert!(text.contains("set -euo pipefail"), "{}", script.display());
            // A real engine's script execs it, so the process group holds the server itself;
            // test helpers that crash an engine on purpose say so in their header.
            if !text.contains("for reliability tests") {
                assert!(text.contains("exec "), "{}", script.display());
            }
        }
    }

    /// Run a flat script with `/bin/echo` standing in for the server; its stdout.
    fn dry_run(script: &str, env: &[(&str, &str)], args: &[&str]) -> String {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(flat_dir().join(script)).args(args);
        for var in [
            "LLAMA_EXTRA_ARGS",
            "THREADS",
            "NP",
            "CTX",
            "MODEL_ALIAS",
            "SIM_MODEL",
            "SIM_TTFT_MS",
            "SIM_ITL_MS",
            "SIM_SEED",
        ] {
            cmd.env_remove(var);
        }
        let out = cmd.envs(env.iter().copied()).output().unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn llama_scripts_pass_the_expected_flags() {
        let dir = tempfile::tempdir().unwrap();
        let gguf = dir.path().join("model.gguf");
        std::fs::write(&gguf, "GGUF").unwrap();
        let gguf = gguf.to_str().unwrap();
        let env = [
            ("LLAMA_SERVER", "/bin/echo"),
            ("GEMMA_GGUF", gguf),
            ("LMBENCH_PORT", "31234"),
        ];
        let plain = dry_run("llama-cpp/gemma-270m.sh", &env, &["--seed", "1"]);
        assert_eq!(
            plain.trim(),
            format!(
                "-m {gguf} --host 127.0.0.1 --port 31234 -t 1 -np 4 -c 8192 --swa-full --metrics \
                 --no-webui --alias gemma-3-270m --seed 1"
            )
        );
        let no_cache = dry_run("llama-cpp/gemma-270m-no-prompt-cache.sh", &env, &[]);
        assert!(
            no_cache
                .trim()
                .ends_with("--alias gemma-3-270m --no-cache-prompt --cache-ram 0"),
            "{no_cache}"
        );
    }

    #[test]
    fn sim_scripts_pass_the_expected_flags() {
        let env = [
            ("LMBENCH_BIN", "/bin/echo"),
            ("LMBENCH_PORT", "31235"),
            ("SIM_TTFT_MS", "50"),
        ];
        let fixed = dry_run("sim/fixed.sh", &env, &["--set", "k=v"]);
        assert_eq!(
            fixed.trim(),
            "sim --host 127.0.0.1 --port 31235 --mode fixed --ttft-ms 50 --set k=v"
        );
        let engine = dry_run("sim/engine.sh", &env, &[]);
        assert!(engine.contains("--mode engine"), "{engine}");
    }

    /// Launch a llama-cpp flat script, check readiness and a completion, send one prompt
    /// twice, tear down; the number of prompt tokens the second request found cached.
    async fn serve_gemma_for_real(script: &str) -> u64 {
        use local::{LaunchSpec, LocalProcess};
        use std::time::Duration;

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut engine = LocalProcess::spawn(&LaunchSpec {
            program: "bash".into(),
            args: vec![flat_dir().join(script).into()],
            cwd: root.to_path_buf(),
            env: vec![
                ("LMBENCH_PORT".into(), port.to_string()),
                ("LMBENCH_ROOT".into(), root.display().to_string()),
            ],
            log_path: dir.path().join("flat_serve.log"),
        })
        .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let ready = readiness::wait_ready(
            &Endpoint::local(port, None),
            Duration::from_secs(1800),
            || engine.exit_reason(),
        )
        .await
        .unwrap();
        assert_eq!(ready.models, vec!["gemma-3-270m".to_owned()]);

        let prompt = "The history of the city begins with a small harbour. ".repeat(20);
        let body = serde_json::json!({
            "model": "gemma-3-270m", "prompt": prompt, "max_tokens": 4, "temperature": 0
        });
        crate::client::tls::install_provider();
        let client = reqwest::Client::new();
        let mut cached = 0;
        for _ in 0..2 {
            let resp: serde_json::Value = client
                .post(format!("{base}/v1/completions"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(resp["choices"][0]["text"].is_string(), "{resp}");
            cached = resp["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0);
        }
        let report = engine.teardown(Duration::from_secs(10)).await.unwrap();
        assert!(report.was_running && !report.needed_sigkill, "{report:?}");
        readiness::wait_port_free(port, Duration::from_secs(5))
            .await
            .unwrap();
        cached
    }

    #[tokio::test]
    #[ignore = "needs llama-server and the Gemma GGUF (scripts/install-llama-server.sh, \
                scripts/fetch-gemma.sh); builds them on first use"]
    async fn gemma_flat_scripts_serve_for_real() {
        let with_cache = serve_gemma_for_real("llama-cpp/gemma-270m.sh").await;
        assert!(with_cache > 0, "prompt cache unused: {with_cache}");
        let without = serve_gemma_for_real("llama-cpp/gemma-270m-no-prompt-cache.sh").await;
        assert_eq!(without, 0);
    }

    #[test]
    fn log_tail_of_a_missing_file_says_so() {
        let tail = log_tail(Path::new("/nonexistent/lmbench/engine.log"), 5);
        assert!(tail.contains("cannot read"), "{tail}");
    }
}
