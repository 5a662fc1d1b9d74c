//! One handle for a deployed baseline, whatever hosts it: a supervised local process group, a
//! set of objects on a Kubernetes cluster reached through a port-forward, or a server that is
//! already running elsewhere. The suite loop deploys, waits until ready, asks whether the
//! engine is still there, collects logs and tears down through this handle alone.
//!
//! A baseline type says what to bring up as a [`Launch`]; [`Deployment::teardown`] removes
//! exactly what [`Deployment::deploy`] created, after success, failure and Ctrl-C alike, and
//! then waits until the local port is free for the next baseline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::cluster::{ClusterDeployment, ClusterOptions, ClusterPlan};
use super::local::{LaunchSpec, LocalProcess};
use super::readiness::{self, ReadyInfo};
use super::tools::ToolEnv;
use super::DeployError;
use crate::config::Secret;

/// What a baseline type brings up.
#[derive(Debug, Clone)]
pub enum Launch {
    /// A supervised local process group that serves on the local port.
    Process(LaunchSpec),
    /// Objects on a Kubernetes cluster, reached through a port-forward on the local port.
    Cluster(ClusterPlan),
    /// A server that is already running: nothing is deployed or torn down, readiness is still
    /// checked.
    External(Endpoint),
}

/// Where a baseline's requests go.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Server root, e.g. `http://127.0.0.1:30080` (a trailing `/v1` is accepted).
    pub base_url: String,
    /// A PEM file of certificate authorities to trust for `https://`, besides the system's.
    pub ca_cert: Option<PathBuf>,
    /// Sent as `Authorization: Bearer …` with every request and readiness probe.
    pub api_key: Option<Secret>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("base_url", &self.base_url)
            .field("ca_cert", &self.ca_cert)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Endpoint {
    /// `http://127.0.0.1:<port>`, where local and cluster baselines answer.
    pub fn local(port: u16, api_key: Option<Secret>) -> Endpoint {
        Endpoint {
            base_url: format!("http://127.0.0.1:{port}"),
            ca_cert: None,
            api_key,
        }
    }
}

/// How deployments are made and taken down.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The local port process and cluster baselines serve on.
    pub port: u16,
    /// How long a deployed baseline may take to answer `GET /v1/models`.
    pub ready_timeout: Duration,
    /// Between SIGTERM and SIGKILL of a local engine's process group.
    pub teardown_grace: Duration,
    /// How long to wait for the port to be free before a deployment and after a teardown.
    pub port_free_timeout: Duration,
    /// Runs helm and logs the commands (token redacted).
    pub tools: ToolEnv,
    /// Cluster deployments' settings (kubeconfig context, deadlines).
    pub cluster: ClusterOptions,
    /// The baseline's Hugging Face token, for cluster plans that substitute it.
    pub hf_token: Option<Secret>,
    /// The API key local and cluster endpoints are called with (`OPENAI_API_KEY`).
    pub api_key: Option<Secret>,
}

enum Engine {
    /// Not deployed yet (or nothing to deploy).
    Pending(Box<Launch>),
    Local(Box<LocalProcess>),
    Cluster(Box<ClusterDeployment>),
    External,
}

/// A baseline being deployed, deployed, or torn down.
pub struct Deployment {
    key: String,
    engine: Engine,
    endpoint: Endpoint,
    opts: DeployOptions,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment")
            .field("key", &self.key)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Deployment {
    /// A deployment of `launch` for the baseline `key`; nothing happens until
    /// [`Self::deploy`].
    pub fn new(key: &str, launch: Launch, opts: DeployOptions) -> Deployment {
        let endpoint = match &launch {
            Launch::External(e) => e.clone(),
            _ => Endpoint::local(opts.port, opts.api_key.clone()),
        };
        Deployment {
            key: key.to_string(),
            engine: Engine::Pending(Box::new(launch)),
            endpoint,
            opts,
        }
    }

    /// Where requests go once the baseline is ready.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `(pod, metrics URL)` of each engine pod of a cluster baseline behind a router, through
    /// its own port-forward; empty for every other baseline (its endpoint serves the metrics).
    pub fn metrics_targets(&self) -> Vec<(String, String)> {
        match &self.engine {
            Engine::Cluster(c) => c.metrics_targets(),
            _ => Vec::new(),
        }
    }

    /// Whether the baseline occupies the local port (so the port must be free first).
    fn binds_port(launch: &Launch) -> bool {
        !matches!(launch, Launch::External(_))
    }

    /// Bring the baseline up: start the process group, or apply/install on the cluster and
    /// forward its Service. What was created is recorded even when this fails: call
    /// [`Self::teardown`] either way.
    pub async fn deploy(&mut self, cancel: &CancellationToken) -> Result<(), DeployError> {
        let Engine::Pending(launch) = std::mem::replace(&mut self.engine, Engine::External) else {
            return Ok(());
        };
        if Self::binds_port(&launch) {
            readiness::wait_port_free(self.opts.port, self.opts.port_free_timeout).await?;
        }
        match *launch {
            Launch::Process(spec) => {
                self.engine = Engine::Local(Box::new(LocalProcess::spawn(&spec)?));
                Ok(())
            }
            Launch::Cluster(plan) => {
                let mut c = Box::new(ClusterDeployment::new(&self.key));
                let r = c
                    .deploy(
                        &plan,
                        self.opts.hf_token.as_ref(),
                        &self.opts.tools,
                        &self.opts.cluster,
                        cancel,
                    )
                    .await;
                self.engine = Engine::Cluster(c);
                if cancel.is_cancelled() {
                    return Err(DeployError::Interrupted);
                }
                r.map_err(|message| DeployError::Cluster { message })
            }
            Launch::External(_) => Ok(()),
        }
    }

    /// Wait until the endpoint lists a model (`GET /v1/models`), failing early if the engine
    /// exits, and with [`DeployError::Interrupted`] on Ctrl-C.
    pub async fn wait_ready(
        &mut self,
        cancel: &CancellationToken,
    ) -> Result<ReadyInfo, DeployError> {
        let endpoint = self.endpoint.clone();
        let timeout = self.opts.ready_timeout;
        let key = self.key.clone();
        let ready = tokio::select! {
            r = readiness::wait_ready(&endpoint, timeout, || self.exit_reason()) => r,
            _ = cancel.cancelled() => return Err(DeployError::Interrupted),
        };
        match (&self.engine, ready) {
            // Through a port-forward, say so: the pods themselves were Ready.
            (Engine::Cluster(_), Err(e)) => Err(DeployError::Cluster {
                message: format!("{key} through the port-forward: {e}"),
            }),
            (_, r) => r,
        }
    }

    /// Why the engine is gone, if it is: the process group exited, or the port-forward's
    /// listener stopped.
    pub fn exit_reason(&mut self) -> Option<String> {
        match &mut self.engine {
            Engine::Local(p) => p.exit_reason(),
            Engine::Cluster(c) => (!c.is_forwarding()).then(|| "the port-forward is gone".into()),
            Engine::Pending(_) | Engine::External => None,
        }
    }

    /// Where the engine's logs are: the process's log file, or the folder pod logs go to.
    pub fn logs_at(&self, pod_logs: &Path) -> PathBuf {
        match &self.engine {
            Engine::Local(p) => p.log_path().to_path_buf(),
            _ => pod_logs.to_path_buf(),
        }
    }

    /// Pod logs, previous logs and descriptions into `dir` as `<pod>_<tag>.log` (cluster
    /// baselines; a local engine's log is written as it runs). Failures are logged, not fatal.
    pub async fn collect_logs(&self, dir: &Path, tag: &str) {
        if let Engine::Cluster(c) = &self.engine {
            c.collect_logs(dir, tag).await;
        }
    }

    /// Remove what [`Self::deploy`] created — SIGTERM → grace → SIGKILL of the process group,
    /// or the port-forward, release and objects of the cluster plan — then wait until the
    /// local port is free. Returns how it went, for the log (`None`: nothing was deployed).
    pub async fn teardown(&mut self) -> Result<Option<String>, DeployError> {
        let engine = std::mem::replace(&mut self.engine, Engine::External);
        let done = match engine {
            Engine::Local(mut p) => p.teardown(self.opts.teardown_grace).await.map(|rep| {
                format!(
                    "in {:.1}s{}",
                    rep.elapsed.as_secs_f64(),
                    if rep.needed_sigkill {
                        " (needed SIGKILL)"
                    } else {
                        ""
                    }
                )
            }),
            Engine::Cluster(mut c) => c
                .teardown(&self.opts.tools, &self.opts.cluster)
                .await
                .map(|()| String::new())
                .map_err(|message| DeployError::Cluster { message }),
            Engine::Pending(_) | Engine::External => return Ok(None),
        };
        let freed = readiness::wait_port_free(self.opts.port, self.opts.port_free_timeout).await;
        match (done, freed) {
            (Ok(d), Ok(())) => Ok(Some(d)),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), freed) => {
                if let Err(p) = freed {
                    tracing::error!("after teardown of {}: {p}", self.key);
                }
                Err(e)
            }
        }
    }
}

/// The process launch of a local baseline: `program args…` run in `root` with `env`, its
/// output in `log_path`.
pub fn process(
    program: impl Into<PathBuf>,
    args: Vec<std::ffi::OsString>,
    root: &Path,
    env: Vec<(String, String)>,
    log_path: PathBuf,
) -> Launch {
    Launch::Process(LaunchSpec {
        program: program.into(),
        args,
        cwd: root.to_path_buf(),
        env,
        log_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::tools::ToolEnv;

    fn opts(port: u16, dir: &Path) -> DeployOptions {
        DeployOptions {
            port,
            ready_timeout: Duration::from_secs(10),
            teardown_grace: Duration::from_secs(2),
            port_free_timeout: Duration::from_millis(300),
            tools: ToolEnv::from_env(dir.join("infra.log")),
            cluster: ClusterOptions::new(port, Duration::from_secs(10)),
            hf_token: None,
            api_key: None,
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn an_external_endpoint_is_checked_but_never_deployed_or_torn_down() {
        let sim = crate::sim::spawn_local(crate::sim::SimConfig::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = Endpoint {
            base_url: sim.base_url(),
            ca_cert: None,
            api_key: None,
        };
        let mut d = Deployment::new("ext", Launch::External(target.clone()), opts(1, dir.path()));
        let cancel = CancellationToken::new();
        d.deploy(&cancel).await.unwrap();
        assert_eq!(d.endpoint(), &target);
        let ready = d.wait_ready(&cancel).await.unwrap();
        assert_eq!(ready.models, ["sim-model"]);
        assert_eq!(d.exit_reason(), None);
        assert_eq!(d.teardown().await.unwrap(), None);
        // Still serving.
        assert!(std::net::TcpStream::connect(sim.addr).is_ok());
        sim.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_process_that_dies_is_a_typed_error_and_teardown_still_runs() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let launch = process(
            "bash",
            vec!["-c".into(), "echo 'no model here' >&2; exit 3".into()],
            dir.path(),
            Vec::new(),
            dir.path().join("engine.log"),
        );
        let mut d = Deployment::new("dies", launch, opts(port, dir.path()));
        let cancel = CancellationToken::new();
        d.deploy(&cancel).await.unwrap();
        assert_eq!(d.endpoint().base_url, format!("http://127.0.0.1:{port}"));
        let err = d.wait_ready(&cancel).await.unwrap_err();
        assert!(matches!(err, DeployError::ExitedEarly { .. }), "{err:?}");
        assert!(err.to_string().contains("no model here"), "{err}");
        assert!(d.exit_reason().is_some());
        assert_eq!(d.logs_at(Path::new("pods")), dir.path().join("engine.log"));
        assert!(d.teardown().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_busy_port_is_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let launch = process(
            "bash",
            vec!["-c".into(), "touch started; sleep 30".into()],
            dir.path(),
            Vec::new(),
            dir.path().join("engine.log"),
        );
        let mut d = Deployment::new("busy", launch, opts(port, dir.path()));
        let err = d.deploy(&CancellationToken::new()).await.unwrap_err();
        assert!(matches!(err, DeployError::PortBusy { .. }), "{err:?}");
        assert!(!dir.path().join("started").exists());
        assert_eq!(d.teardown().await.unwrap(), None);
    }

    #[tokio::test]
    async fn ctrl_c_while_waiting_is_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let launch = process(
            "bash",
            vec!["-c".into(), "exec sleep 30".into()],
            dir.path(),
            Vec::new(),
            dir.path().join("engine.log"),
        );
        let mut d = Deployment::new("slow", launch, opts(port, dir.path()));
        let cancel = CancellationToken::new();
        d.deploy(&cancel).await.unwrap();
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.cancel();
        });
        let err = d.wait_ready(&cancel).await.unwrap_err();
        assert!(matches!(err, DeployError::Interrupted), "{err:?}");
        let how = d.teardown().await.unwrap().unwrap();
        assert!(how.starts_with("in "), "{how}");
    }
}
