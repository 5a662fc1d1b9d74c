//! Kubernetes through kube-rs: server-side apply of multi-document manifests, waiting for pods,
//! port-forwarding a service to a local port, pod logs and teardown.
//!
//! [`Kube`] is a client bound to one namespace. The Kubernetes baselines use it in this order:
//! [`Kube::apply_manifests`] (or helm, elsewhere) → [`Kube::wait_pods_ready`] →
//! [`Kube::port_forward`] of the router service to `127.0.0.1:30080` → the benchmark →
//! [`Kube::collect_logs`] after each point → [`Kube::delete_objects`] and
//! [`Kube::wait_pods_gone`] at teardown.
//!
//! Manifests may hold a Secret with the Hugging Face token, so nothing here ever puts an object's
//! body into an error message or a log line: only kind, name, namespace and the API server's
//! status message.

mod apply;
mod logs;
mod pods;
mod portforward;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kube::discovery::ApiResource;

pub use portforward::{PortForward, TargetPort};

/// A Kubernetes API client bound to one namespace.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    namespace: String,
    /// Pause between the polls of [`Kube::wait_pods_gone`] and between discovery retries of a
    /// custom kind whose CustomResourceDefinition was applied moments before.
    poll: Duration,
}

impl fmt::Debug for Kube {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kube")
            .field("namespace", &self.namespace)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl Kube {
    /// A client from the environment (`KUBECONFIG`, `~/.kube/config`, or the in-cluster service
    /// account). The namespace is `namespace` when given, otherwise the current context's
    /// namespace (`default` when the context names none).
    pub async fn from_env(namespace: Option<&str>) -> Result<Kube, K8sError> {
        Kube::for_context(None, namespace).await
    }

    /// Like [`Kube::from_env`], but with the kubeconfig's `context` when one is named (the
    /// infrastructure step's cluster, e.g. `minikube`), rather than the current one.
    pub async fn for_context(
        context: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Kube, K8sError> {
        let where_ = |e: &dyn std::fmt::Display| match context {
            Some(c) => format!("kubeconfig context {c}: {e}"),
            None => e.to_string(),
        };
        let config = match context {
            None => kube::Config::infer().await.map_err(|e| where_(&e)),
            Some(c) => {
                let options = kube::config::KubeConfigOptions {
                    context: Some(c.to_string()),
                    ..Default::default()
                };
                kube::Config::from_kubeconfig(&options)
                    .await
                    .map_err(|e| where_(&e))
            }
        }
        .map_err(|message| K8sError::Config { message })?;
        let namespace = namespace
            .map(str::to_owned)
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| K8sError::Config {
            message: where_(&api_message(&e)),
        })?;
        Ok(Kube::new(client, &namespace))
    }

    /// Wrap an existing client (tests: a tower-test mock, or a fake API server over http).
    pub fn new(client: kube::Client, namespace: &str) -> Kube {
        Kube {
            client,
            namespace: namespace.to_owned(),
            poll: Duration::from_secs(2),
        }
    }

    /// The same client with another pause between the polls of [`Kube::wait_pods_gone`] and
    /// between discovery retries (default 2 s; tests use milliseconds).
    pub fn with_poll_interval(mut self, poll: Duration) -> Kube {
        self.poll = poll;
        self
    }

    /// The namespace that objects without one, and every pod query, go to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The underlying kube-rs client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }
}

/// One object that [`Kube::apply_manifests`] applied: enough to name it and to delete it.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedObject {
    /// `apiVersion` as written in the manifest (`v1`, `apps/v1`, `example.com/v1`).
    pub api_version: String,
    /// `kind` as written in the manifest.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// The namespace it was applied to; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// The resolved resource type (group, version, plural) that delete requests address.
    pub resource: ApiResource,
}

impl fmt::Display for AppliedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)?;
        if let Some(ns) = &self.namespace {
            write!(f, " in namespace {ns}")?;
        }
        Ok(())
    }
}

/// How [`Kube::wait_pods_ready`] polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitOptions {
    /// Give up (with a per-pod report) after this long.
    pub deadline: Duration,
    /// Pause between two polls.
    pub poll: Duration,
    /// Fail early when one container stays in a hopeless waiting state (CrashLoopBackOff,
    /// ImagePullBackOff, …) for this many consecutive polls.
    pub max_bad_checks: u32,
}

impl Default for WaitOptions {
    /// 25 minutes, a poll every 5 s, give up after 6 bad polls in a row.
    fn default() -> Self {
        WaitOptions {
            deadline: Duration::from_secs(1500),
            poll: Duration::from_secs(5),
            max_bad_checks: 6,
        }
    }
}

/// What [`Kube::wait_pods_ready`] found once every pod was ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyReport {
    /// The ready pods, sorted by name.
    pub pods: Vec<String>,
    /// How long the wait took.
    pub elapsed: Duration,
}

/// Where in a manifest file a document (or an item of a `List` document) starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocPos {
    /// 1-based document number in the file, counting the documents that `---` separates
    /// (a leading `---` does not open an extra one).
    pub doc: usize,
    /// 1-based line where the document starts.
    pub line: usize,
    /// 1-based item number when the document is a `List`.
    pub item: Option<usize>,
}

impl fmt::Display for DocPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {} (line {})", self.doc, self.line)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        Ok(())
    }
}

/// A manifest object that could not be applied ([`K8sError::Apply`],
/// [`K8sError::UnknownKind`]).
#[derive(Debug)]
pub struct ObjectFailure {
    /// The manifest file.
    pub file: PathBuf,
    /// Where in it.
    pub at: DocPos,
    /// `apiVersion` of the document.
    pub api_version: String,
    /// `kind` of the document.
    pub kind: String,
    /// `metadata.name` of the document.
    pub name: String,
    /// The namespace it was to go to (`None` for cluster-scoped kinds, or when the kind itself
    /// is unknown).
    pub namespace: Option<String>,
    /// The API server's status message, or the discovery failure.
    pub message: String,
    /// The objects applied before this failure, in order (for teardown).
    pub applied: Vec<AppliedObject>,
}

/// Why a Kubernetes operation failed. Messages name the file, document, object and the API
/// server's own words; never an object's body.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// No usable client configuration (no kubeconfig, no in-cluster service account, bad TLS
    /// settings, …).
    #[error("cannot set up a Kubernetes client from KUBECONFIG / ~/.kube/config / in-cluster: {message}")]
    Config {
        /// What kube-rs reported.
        message: String,
    },
    /// A manifest document is not valid YAML or not a Kubernetes object.
    #[error("{}: {at}: {message}", file.display())]
    Manifest {
        /// The manifest file.
        file: PathBuf,
        /// Where in it.
        at: DocPos,
        /// What is wrong.
        message: String,
    },
    /// The resource type of a document's kind could not be found on the cluster.
    #[error("{}: {}: {}/{}: the cluster does not serve kind {} in {}: {}", .0.file.display(), .0.at, .0.kind, .0.name, .0.kind, .0.api_version, .0.message)]
    UnknownKind(Box<ObjectFailure>),
    /// The API server refused a document.
    #[error("{}: {}: applying {}/{}{}: {}", .0.file.display(), .0.at, .0.kind, .0.name, in_namespace(&.0.namespace), .0.message)]
    Apply(Box<ObjectFailure>),
    /// Any other API request failed.
    #[error("{action}: {message}")]
    Api {
        /// What was being done (`listing pods in namespace bench`).
        action: String,
        /// The API server's status message, reason and HTTP code, or the transport error.
        message: String,
        /// The HTTP status code, when the API server answered.
        code: Option<u16>,
    },
    /// The pods were not all ready by the deadline.
    #[error("{} in namespace {namespace} not ready after {:.1}s:\n{report}", describe_selector(selector.as_deref()), waited.as_secs_f64())]
    PodsNotReady {
        /// The namespace.
        namespace: String,
        /// The label selector, if any.
        selector: Option<String>,
        /// How long was waited.
        waited: Duration,
        /// One line (plus event lines) per pod that is not ready.
        report: String,
    },
    /// A container stayed in a state it does not recover from by itself.
    #[error(
        "pod {pod} container {container}: {reason} for {checks} consecutive checks: {message}"
    )]
    PodFailing {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
        /// The waiting reason (CrashLoopBackOff, ImagePullBackOff, …).
        reason: String,
        /// The waiting message and the last termination, when known.
        message: String,
        /// How many polls in a row saw it.
        checks: u32,
    },
    /// The caller's cancellation token fired.
    #[error("cancelled while {what}")]
    Cancelled {
        /// What was being waited for.
        what: String,
    },
    /// A service could not be resolved to a ready pod and port.
    #[error("port-forward to service {service}:{port} in namespace {namespace}: {message}")]
    PortForward {
        /// The namespace.
        namespace: String,
        /// The service.
        service: String,
        /// The service port.
        port: u16,
        /// What is wrong.
        message: String,
    },
    /// The local port could not be bound (usually: already taken).
    #[error("cannot listen on {addr} for the port-forward: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A local file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Some objects could not be deleted (the others were).
    #[error("could not delete {} object(s): {}", failures.len(), failures.join("; "))]
    Delete {
        /// One `Kind/name: message` per failure.
        failures: Vec<String>,
    },
    /// Pods were still there after the teardown deadline.
    #[error("{} in namespace {namespace} still present after {:.1}s: {}", describe_selector(selector.as_deref()), waited.as_secs_f64(), pods.join(", "))]
    PodsRemain {
        /// The namespace.
        namespace: String,
        /// The label selector, if any.
        selector: Option<String>,
        /// How long was waited.
        waited: Duration,
        /// `name (phase)` of every survivor.
        pods: Vec<String>,
    },
}

impl K8sError {
    /// The objects that an interrupted [`Kube::apply_manifests`] had applied before it failed,
    /// in order; empty for every other error. Teardown deletes these.
    pub fn partially_applied(&self) -> &[AppliedObject] {
        match self {
            K8sError::UnknownKind(f) | K8sError::Apply(f) => &f.applied,
            _ => &[],
        }
    }

    /// An [`K8sError::Api`] for a failed kube-rs call.
    fn api(action: impl Into<String>, err: &kube::Error) -> K8sError {
        K8sError::Api {
            action: action.into(),
            message: api_message(err),
            code: api_code(err),
        }
    }
}

fn in_namespace(namespace: &Option<String>) -> String {
    match namespace {
        Some(ns) => format!(" in namespace {ns}"),
        None => String::new(),
    }
}

fn describe_selector(selector: Option<&str>) -> String {
    match selector {
        Some(s) => format!("pods matching {s}"),
        None => "pods".to_owned(),
    }
}

/// A kube-rs error as one readable line: the API server's message, reason and HTTP code when it
/// answered, the client-side error otherwise.
pub(crate) fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => {
            let mut text = if status.message.is_empty() {
                "no message".to_owned()
            } else {
                status.message.clone()
            };
            match (status.reason.is_empty(), status.code) {
                (true, 0) => {}
                (true, code) => text.push_str(&format!(" (HTTP {code})")),
                (false, 0) => text.push_str(&format!(" ({})", status.reason)),
                (false, code) => text.push_str(&format!(" ({}, HTTP {code})", status.reason)),
            }
            text
        }
        other => other.to_string(),
    }
}

/// The HTTP status code of a kube-rs error, when the API server answered.
pub(crate) fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) if status.code != 0 => Some(status.code),
        _ => None,
    }
}
