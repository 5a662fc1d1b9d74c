//! Baselines deployed on a Kubernetes cluster.
//!
//! A Kubernetes baseline type (Helm-ProductionStack, Direct-ProductionStack, LLM-D: each in its
//! own file under `baseline/`) describes what it creates as a [`ClusterPlan`]: manifests to
//! server-side apply (placeholders substituted in memory, never written to disk), a helm release
//! (`<YOUR_HF_TOKEN>` substituted into a private temporary copy of the values), and the Service
//! to forward. A [`ClusterDeployment`] carries the plan out — connect with kube-rs, apply, `helm
//! upgrade --install`, wait until every pod of the namespace is Ready, port-forward the Service
//! to the local port — and records each thing it creates as it goes, so that
//! [`ClusterDeployment::teardown`] removes exactly what exists after a failure at any step,
//! after success and after Ctrl-C.
//!
//! A chart comes from its environment override (`LMBENCH_PS_CHART`, `LMBENCH_LLMD_CHART`) or
//! its default in a helm repository that is added and updated first; a chart that is a local
//! folder needs no repository.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::deploy::helm::{substituted_copy, Helm};
use crate::deploy::k8s::{AppliedObject, Kube, PortForward, WaitOptions};
use crate::deploy::tools::ToolEnv;

/// What a Kubernetes baseline creates, in this order: manifests, then a helm release, then the
/// port-forward of a Service. Each baseline type builds its own plan; [`ClusterDeployment`]
/// carries it out and records what exists for teardown.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    /// What is deployed, for the log (`helm-production-stack`).
    pub label: &'static str,
    /// The namespace; `None` for the kubeconfig context's.
    pub namespace: Option<&'static str>,
    /// Objects server-side applied first.
    pub manifests: Option<Manifests>,
    /// A helm release installed after them.
    pub release: Option<HelmRelease>,
    /// The Service (name, port) forwarded to the local port once every pod is Ready.
    pub service: (&'static str, u16),
}

/// Multi-document manifests to apply, possibly holding the token (kept in memory only).
#[derive(Debug, Clone)]
pub struct Manifests {
    /// The YAML, placeholders already substituted.
    pub text: Secret,
    /// Where it came from, for error messages.
    pub origin: PathBuf,
    /// What it is, for messages (the selected file, or a description).
    pub what: String,
    /// Kinds applied but left in place at teardown (a shared Namespace).
    pub keep_kinds: &'static [&'static str],
    /// Whether the apply is noted in the log.
    pub note: bool,
}

/// A helm release to install.
#[derive(Debug, Clone)]
pub struct HelmRelease {
    /// The release name.
    pub name: &'static str,
    /// The chart.
    pub chart: Chart,
    /// The values file.
    pub values: PathBuf,
    /// The selected file as written, for messages.
    pub what: String,
    /// Whether `<YOUR_HF_TOKEN>` in the values is replaced (in a private temporary copy).
    pub substitute_token: bool,
}

/// Where a chart comes from: the environment's override, else a default from a repo.
#[derive(Debug, Clone, Copy)]
pub struct Chart {
    /// The variable that overrides it (`LMBENCH_PS_CHART`).
    pub env: &'static str,
    /// The default chart (`vllm/vllm-stack`).
    pub default: &'static str,
    /// The default's repository (name, URL), added and updated before use.
    pub repo: (&'static str, &'static str),
}

/// How to deploy.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The kubeconfig context (None: the current one).
    pub context: Option<String>,
    /// The namespace for production-stack baselines (None: the context's).
    pub namespace: Option<String>,
    /// Local port the router is forwarded to (30080).
    pub local_port: u16,
    /// Deadline for pods to become Ready (LMBench: 1500 s).
    pub pods_deadline: Duration,
    /// Time between pod polls.
    pub pods_poll: Duration,
    /// Deadline for `/v1/models` through the port-forward once pods are Ready.
    pub ready_timeout: Duration,
    /// Deadline for one helm command.
    pub helm_timeout: Duration,
    /// Deadline for the pods to go at teardown.
    pub teardown_timeout: Duration,
}

impl ClusterOptions {
    /// Options for a deployment that must be ready within `ready_timeout` (`--ready-timeout`):
    /// the pods get that long, polled every 5 s (LMBench's interval) or 20 times within the
    /// deadline when it is short; the endpoint gets it again once they are Ready.
    pub fn new(local_port: u16, ready_timeout: Duration) -> Self {
        ClusterOptions {
            context: None,
            namespace: None,
            local_port,
            pods_deadline: ready_timeout,
            pods_poll: (ready_timeout / 20)
                .clamp(Duration::from_millis(200), Duration::from_secs(5)),
            ready_timeout,
            helm_timeout: Duration::from_secs(600),
            teardown_timeout: ready_timeout.min(Duration::from_secs(300)),
        }
    }
}

/// What one cluster baseline created, for teardown.
pub struct ClusterDeployment {
    key: String,
    kube: Option<Kube>,
    release: Option<(String, String)>,
    objects: Vec<AppliedObject>,
    forward: Option<PortForward>,
    /// A port-forward to each engine pod behind the Service, for its metrics.
    pod_forwards: Vec<(String, PortForward)>,
    context: Option<String>,
}

impl std::fmt::Debug for ClusterDeployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterDeployment")
            .field("key", &self.key)
            .field("release", &self.release)
            .field("objects", &self.objects.len())
            .field("forwarding", &self.forward.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterDeployment {
    /// Nothing created yet, for the baseline `key`.
    pub fn new(key: &str) -> Self {
        ClusterDeployment {
            key: key.to_string(),
            kube: None,
            release: None,
            objects: Vec::new(),
            forward: None,
            pod_forwards: Vec::new(),
            context: None,
        }
    }

    /// Carry out `plan` up to a port-forward of its Service on `127.0.0.1:<local_port>`,
    /// with every pod Ready. Whatever fails, what was created so far is recorded: call
    /// [`Self::teardown`] either way.
    pub async fn deploy(
        &mut self,
        plan: &ClusterPlan,
        token: Option<&Secret>,
        tools: &ToolEnv,
        opts: &ClusterOptions,
        cancel: &CancellationToken,
    ) -> Result<(), String> {
        self.context = opts.context.clone();
        let token = token.map(Secret::expose).unwrap_or("");
        let namespace = plan.namespace.or(opts.namespace.as_deref());
        let kube = self.connect(opts.context.as_deref(), namespace).await?;
        let ns = kube.namespace().to_string();
        let chart = match &plan.release {
            Some(r) => Some(chart(tools, r.chart).await?),
            None => None,
        };
        if let Some(m) = &plan.manifests {
            if m.note {
                tools.note(&format!(
                    "{}: server-side apply of {} into namespace {ns}",
                    plan.label, m.what
                ));
            }
            let keep = |o: &AppliedObject| !m.keep_kinds.contains(&o.kind.as_str());
            match kube.apply_manifests(m.text.expose(), &m.origin).await {
                Ok(objs) => self.objects.extend(objs.into_iter().filter(keep)),
                Err(e) => {
                    self.objects
                        .extend(e.partially_applied().iter().filter(|o| keep(o)).cloned());
                    return Err(format!("{}: {e}", apply_what(m)));
                }
            }
        }
        if let (Some(r), Some(chart)) = (&plan.release, chart) {
            let copy;
            let values = if r.substitute_token {
                copy = substituted_copy(&r.values, &[("<YOUR_HF_TOKEN>", token)])
                    .map_err(|e| format!("{}: {e}", r.what))?;
                copy.path()
            } else {
                r.values.as_path()
            };
            tools.note(&format!(
                "{}: release {}, chart {chart}, values {}, namespace {ns}",
                plan.label, r.name, r.what
            ));
            // Recorded before the install: a half-done install is uninstalled too.
            self.release = Some((r.name.to_string(), ns.clone()));
            self.helm(tools)
                .upgrade_install(r.name, &chart, Some(&ns), values, opts.helm_timeout)
                .await
                .map_err(|e| format!("helm install of {}: {e}", r.what))?;
        }
        let wait = WaitOptions {
            deadline: opts.pods_deadline,
            poll: opts.pods_poll,
            max_bad_checks: 6,
        };
        let ready = kube
            .wait_pods_ready(None, wait, cancel)
            .await
            .map_err(|e| format!("pods of {} in namespace {ns}: {e}", self.key))?;
        tracing::info!(
            "{}: {} pod(s) Ready in {:.1}s",
            self.key,
            ready.pods.len(),
            ready.elapsed.as_secs_f64()
        );
        let (service, port) = plan.service;
        let forward = kube
            .port_forward(service, port, opts.local_port)
            .await
            .map_err(|e| format!("port-forward of svc/{service}:{port}: {e}"))?;
        tracing::info!(
            "{}: svc/{service}:{port} forwarded to {}",
            self.key,
            forward.local_addr
        );
        self.forward = Some(forward);
        // Each engine pod behind a router on its own, for its metrics (a failure here costs
        // only those metrics).
        match kube.engine_pods(service).await {
            Ok(pods) => {
                for (pod, port) in pods {
                    match kube.port_forward_pod(&pod, port).await {
                        Ok(f) => self.pod_forwards.push((pod, f)),
                        Err(e) => tracing::warn!("{}: no metrics of pod {pod}: {e}", self.key),
                    }
                }
            }
            Err(e) => tracing::warn!("{}: engine pods not found for metrics: {e}", self.key),
        }
        Ok(())
    }

    /// `(pod, metrics URL)` of each engine pod behind the Service, through its own
    /// port-forward.
    pub fn metrics_targets(&self) -> Vec<(String, String)> {
        self.pod_forwards
            .iter()
            .map(|(pod, f)| (pod.clone(), format!("http://{}/metrics", f.local_addr)))
            .collect()
    }

    async fn connect(
        &mut self,
        context: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Kube, String> {
        let kube = Kube::for_context(context, namespace)
            .await
            .map_err(|e| format!("cannot reach the cluster: {e}"))?;
        self.kube = Some(kube.clone());
        Ok(kube)
    }

    fn helm<'a>(&self, tools: &'a ToolEnv) -> Helm<'a> {
        Helm::new(tools).with_kube_context(self.context.as_deref())
    }

    /// Pod logs, previous logs and descriptions into `dir` (LMBench's
    /// `<pod>_<KEY>_<workload>_<qps>.log`), after each run. Failures are logged, not fatal.
    pub async fn collect_logs(&self, dir: &Path, tag: &str) -> Vec<PathBuf> {
        let Some(kube) = &self.kube else {
            return Vec::new();
        };
        match kube.collect_logs(dir, tag, None).await {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!("{}: pod logs not collected: {e}", self.key);
                Vec::new()
            }
        }
    }

    /// Whether the port-forward is still accepting connections (a dead forward fails the runs
    /// after it).
    pub fn is_forwarding(&self) -> bool {
        self.forward.as_ref().is_some_and(PortForward::is_alive)
    }

    /// Remove what was created, newest first: the port-forward, the helm release (`helm
    /// uninstall --wait`), the applied objects; then wait for the pods to go. Every step runs
    /// even when an earlier one failed; the errors are returned together.
    pub async fn teardown(&mut self, tools: &ToolEnv, opts: &ClusterOptions) -> Result<(), String> {
        let mut errors = Vec::new();
        for (_, f) in std::mem::take(&mut self.pod_forwards) {
            f.shutdown().await;
        }
        if let Some(f) = self.forward.take() {
            f.shutdown().await;
        }
        if let Some((release, ns)) = self.release.take() {
            if let Err(e) = self.helm(tools).uninstall(&release, Some(&ns), true).await {
                errors.push(format!("helm uninstall {release}: {e}"));
            }
        }
        if let Some(kube) = &self.kube {
            let objs = std::mem::take(&mut self.objects);
            if !objs.is_empty() {
                if let Err(e) = kube.delete_objects(&objs).await {
                    errors.push(format!("delete: {e}"));
                }
            }
            if let Err(e) = kube.wait_pods_gone(None, opts.teardown_timeout).await {
                errors.push(format!("pods still there: {e}"));
            }
        }
        self.kube = None;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// The chart to install: the environment's override, else the default from its repo (added and
/// updated first). A local folder needs no repo.
async fn chart(tools: &ToolEnv, chart: Chart) -> Result<String, String> {
    let Chart { env, default, repo } = chart;
    if let Ok(c) = std::env::var(env) {
        if !c.is_empty() {
            if !Path::new(&c).exists() && c.starts_with(&format!("{}/", repo.0)) {
                add_repo(tools, repo).await?;
            }
            return Ok(c);
        }
    }
    add_repo(tools, repo).await?;
    Ok(default.to_string())
}

async fn add_repo(tools: &ToolEnv, (name, url): (&str, &str)) -> Result<(), String> {
    let helm = Helm::new(tools);
    helm.repo_add(name, url)
        .await
        .map_err(|e| format!("helm repo add {name} {url}: {e}"))?;
    helm.repo_update()
        .await
        .map_err(|e| format!("helm repo update: {e}"))
}

/// What a failed apply was applying, for its error message.
fn apply_what(m: &Manifests) -> String {
    if m.note {
        format!("apply of {}", m.what)
    } else {
        m.what.clone()
    }
}
