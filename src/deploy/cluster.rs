//! Baselines deployed on a Kubernetes cluster: Helm-ProductionStack, Direct-ProductionStack and
//! LLM-D.
//!
//! A [`ClusterDeployment`] is created empty and records each thing it creates as it goes (the helm
//! release, the applied objects, the port-forward), so that [`ClusterDeployment::teardown`]
//! removes exactly what exists after a failure at any step, after success and after Ctrl-C.
//!
//! The steps per type (inventory §4.1, §4.2, §4.6, done with kube-rs instead of kubectl):
//! - Helm-ProductionStack: the values file with `<YOUR_HF_TOKEN>` substituted into a private
//!   temporary copy → `helm upgrade --install vllm <chart>` → every pod of the namespace Ready →
//!   port-forward `svc/vllm-router-service:80` to the local port → `/v1/models` answers.
//! - Direct-ProductionStack: the manifests with both token placeholders substituted in memory
//!   (never written to disk) → server-side apply → the same wait, port-forward and probe.
//! - LLM-D: namespace `llm-d` and Secret `llm-d-hf-token` applied → `helm upgrade --install llm-d
//!   <chart>` with the values file → pods Ready → port-forward
//!   `svc/llm-d-inference-gateway-istio:80` → probe.
//!
//! Charts: `LMBENCH_PS_CHART` (default `vllm/vllm-stack`, after `helm repo add vllm
//! https://vllm-project.github.io/production-stack`) and `LMBENCH_LLMD_CHART` (default
//! `llm-d/llm-d`, repo `https://llm-d.ai/llm-d-deployer`); a chart that is a local folder needs no
//! repo.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use tokio_util::sync::CancellationToken;

use crate::config::{BaselineKind, Secret};
use crate::deploy::helm::{substituted_copy, Helm};
use crate::deploy::k8s::{AppliedObject, Kube, PortForward, WaitOptions};
use crate::deploy::readiness;
use crate::deploy::tools::ToolEnv;

/// The production-stack router's Service and port.
pub const PS_ROUTER_SERVICE: (&str, u16) = ("vllm-router-service", 80);
/// llm-d's gateway Service and port.
pub const LLMD_GATEWAY_SERVICE: (&str, u16) = ("llm-d-inference-gateway-istio", 80);
/// The namespace llm-d is installed into.
pub const LLMD_NAMESPACE: &str = "llm-d";
const PS_RELEASE: &str = "vllm";
const LLMD_RELEASE: &str = "llm-d";
const PS_REPO: (&str, &str) = ("vllm", "https://vllm-project.github.io/production-stack");
const LLMD_REPO: (&str, &str) = ("llm-d", "https://llm-d.ai/llm-d-deployer");

/// Whether a baseline type is deployed on a cluster (rather than as a local process).
pub fn is_cluster_kind(kind: &BaselineKind) -> bool {
    matches!(
        kind,
        BaselineKind::HelmProductionStack { .. }
            | BaselineKind::DirectProductionStack { .. }
            | BaselineKind::LlmD { .. }
    )
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
            context: None,
        }
    }

    /// Deploy `kind` and wait until the endpoint on `127.0.0.1:<local_port>` lists a model.
    /// Whatever fails, what was created so far is recorded: call [`Self::teardown`] either way.
    pub async fn deploy(
        &mut self,
        kind: &BaselineKind,
        token: Option<&Secret>,
        tools: &ToolEnv,
        opts: &ClusterOptions,
        cancel: &CancellationToken,
    ) -> Result<readiness::ReadyInfo, String> {
        self.context = opts.context.clone();
        let token = token.map(Secret::expose).unwrap_or("");
        let (service, port) = match kind {
            BaselineKind::HelmProductionStack { path, selection } => {
                let kube = self
                    .connect(opts.context.as_deref(), opts.namespace.as_deref())
                    .await?;
                let ns = kube.namespace().to_string();
                let chart = chart(tools, "LMBENCH_PS_CHART", "vllm/vllm-stack", PS_REPO).await?;
                let values = substituted_copy(path, &[("<YOUR_HF_TOKEN>", token)])
                    .map_err(|e| format!("{selection}: {e}"))?;
                tools.note(&format!(
                    "helm-production-stack: release {PS_RELEASE}, chart {chart}, values {selection}"
                ));
                // Recorded before the install: a half-done install is uninstalled too.
                self.release = Some((PS_RELEASE.to_string(), ns.clone()));
                self.helm(tools)
                    .upgrade_install(
                        PS_RELEASE,
                        &chart,
                        Some(&ns),
                        values.path(),
                        opts.helm_timeout,
                    )
                    .await
                    .map_err(|e| format!("helm install of {selection}: {e}"))?;
                PS_ROUTER_SERVICE
            }
            BaselineKind::DirectProductionStack { path, selection } => {
                let kube = self
                    .connect(opts.context.as_deref(), opts.namespace.as_deref())
                    .await?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let b64 = base64::engine::general_purpose::STANDARD.encode(token);
                let text = text
                    .replace("<YOUR_HF_TOKEN_BASE64>", &b64)
                    .replace("<YOUR_HF_TOKEN>", token);
                tools.note(&format!(
                    "direct-production-stack: server-side apply of {selection} into namespace {}",
                    kube.namespace()
                ));
                match kube.apply_manifests(&text, path).await {
                    Ok(objs) => self.objects.extend(objs),
                    Err(e) => {
                        self.objects.extend(e.partially_applied().iter().cloned());
                        return Err(format!("apply of {selection}: {e}"));
                    }
                }
                PS_ROUTER_SERVICE
            }
            BaselineKind::LlmD { path, selection } => {
                let kube = self
                    .connect(opts.context.as_deref(), Some(LLMD_NAMESPACE))
                    .await?;
                let chart = chart(tools, "LMBENCH_LLMD_CHART", "llm-d/llm-d", LLMD_REPO).await?;
                match kube
                    .apply_manifests(
                        &llmd_prelude(token),
                        Path::new("<llm-d namespace and token secret>"),
                    )
                    .await
                {
                    Ok(objs) => self
                        .objects
                        .extend(objs.into_iter().filter(|o| o.kind != "Namespace")),
                    Err(e) => {
                        self.objects.extend(
                            e.partially_applied()
                                .iter()
                                .filter(|o| o.kind != "Namespace")
                                .cloned(),
                        );
                        return Err(format!("llm-d namespace and token secret: {e}"));
                    }
                }
                tools.note(&format!(
                    "llm-d: release {LLMD_RELEASE}, chart {chart}, values {selection}, namespace {LLMD_NAMESPACE}"
                ));
                self.release = Some((LLMD_RELEASE.to_string(), LLMD_NAMESPACE.to_string()));
                self.helm(tools)
                    .upgrade_install(
                        LLMD_RELEASE,
                        &chart,
                        Some(LLMD_NAMESPACE),
                        path,
                        opts.helm_timeout,
                    )
                    .await
                    .map_err(|e| format!("helm install of {selection}: {e}"))?;
                LLMD_GATEWAY_SERVICE
            }
            other => {
                return Err(format!(
                    "{} is not a Kubernetes baseline",
                    other.type_name()
                ))
            }
        };
        let kube = self.kube.clone().expect("connected above");
        let wait = WaitOptions {
            deadline: opts.pods_deadline,
            poll: opts.pods_poll,
            max_bad_checks: 6,
        };
        let ready = kube
            .wait_pods_ready(None, wait, cancel)
            .await
            .map_err(|e| {
                format!(
                    "pods of {} in namespace {}: {e}",
                    self.key,
                    kube.namespace()
                )
            })?;
        tracing::info!(
            "{}: {} pod(s) Ready in {:.1}s",
            self.key,
            ready.pods.len(),
            ready.elapsed.as_secs_f64()
        );
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
        let base_url = format!("http://127.0.0.1:{}", opts.local_port);
        tokio::select! {
            r = readiness::wait_ready(&base_url, opts.ready_timeout, || None) => {
                r.map_err(|e| format!("{} through the port-forward: {e}", self.key))
            }
            _ = cancel.cancelled() => Err("interrupted during deployment".to_string()),
        }
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
async fn chart(
    tools: &ToolEnv,
    env: &str,
    default: &str,
    repo: (&str, &str),
) -> Result<String, String> {
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

/// llm-d's namespace and the Secret its chart reads the Hugging Face token from.
fn llmd_prelude(token: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(token);
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {LLMD_NAMESPACE}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: llm-d-hf-token\n  namespace: {LLMD_NAMESPACE}\n\
         type: Opaque\ndata:\n  HF_TOKEN: {b64}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llmd_prelude_holds_the_token_only_in_base64() {
        let text = llmd_prelude("hf_secret");
        assert!(!text.contains("hf_secret"));
        assert!(text.contains("HF_TOKEN: aGZfc2VjcmV0"));
        assert!(text.contains("kind: Namespace"));
    }

    #[test]
    fn cluster_kinds() {
        let k = BaselineKind::DirectProductionStack {
            selection: "a.yaml".into(),
            path: "a.yaml".into(),
        };
        assert!(is_cluster_kind(&k));
        let f = BaselineKind::Flat {
            selection: "a.sh".into(),
            path: "a.sh".into(),
        };
        assert!(!is_cluster_kind(&f));
    }
}
