//! A fake Kubernetes API server for tests: no real API server can run on the machines these
//! tests run on, so this one (axum, plain HTTP on 127.0.0.1) serves enough of the real API's
//! semantics for the kube-rs client and lmbench's Kubernetes deployers:
//!
//! - discovery (`/api`, `/apis`, `/api/v1`, `/apis/<group>/<version>`, plain and aggregated)
//!   for the built-in kinds a serving stack uses plus one custom kind (`example.com/v1` `Foo`);
//! - server-side apply (field managers, conflicts, `force`), create, replace, merge patch,
//!   get, list (label and field selectors), watch, delete (with garbage collection of owned
//!   objects), dry runs, and the real server's `Status` errors and validation;
//! - controllers: Deployments → ReplicaSets → Pods, StatefulSets and DaemonSets → Pods,
//!   workload status, Endpoints; pods turn Running/Ready `ready_after` after they are created,
//!   or crash-loop, or stay unschedulable with a FailedScheduling event (options);
//! - pod logs, and pod port-forwarding over WebSocket (`v4.channel.k8s.io`) relayed to a
//!   backend TCP address (e.g. lmbench's simulated engine).
//!
//! Everything a client sends is recorded for assertions ([`FakeKube::requests`]).

mod api;
mod controllers;
mod portforward;
mod select;
mod server;
mod store;
mod tests;

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the fake cluster behaves.
#[derive(Debug, Clone, Default)]
pub struct FakeKubeOptions {
    /// Where port-forwarded connections go (every forwarded port of every pod); `None`: the
    /// port-forward's error channel reports "connection refused".
    pub backend: Option<SocketAddr>,
    /// Pods become Running + Ready this long after they are created (which is when their
    /// Deployment/StatefulSet is applied or its pod template changes). Until then they are
    /// Pending with containers waiting in `ContainerCreating`.
    pub ready_after: Duration,
    /// Pods of a workload (Deployment/StatefulSet/DaemonSet, or a bare Pod) whose name
    /// contains this string crash-loop once started: phase Running, Ready=False, the first
    /// container waiting in `CrashLoopBackOff` with `restartCount` ≥ 1, a BackOff event, and
    /// `?previous=true` logs.
    pub crash: Option<String>,
    /// Pods of a workload whose name contains this string are never scheduled: phase Pending,
    /// PodScheduled=False (Unschedulable), and a Warning `FailedScheduling` event.
    pub pending_with_event: Option<String>,
    /// How long each port-forward takes to open (before the WebSocket upgrade), as an API
    /// server and kubelet far away take.
    pub forward_delay: Duration,
}

/// One HTTP request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `PATCH`, …
    pub method: String,
    /// The URL path, e.g. `/apis/apps/v1/namespaces/default/deployments/x`.
    pub path: String,
    /// The raw query string without `?` and without kube-rs's leading `&`
    /// (e.g. `fieldManager=lmbench&force=true`), still percent-encoded.
    pub query: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The request body as text (lossy UTF-8); for Secrets only its length, so a token never
    /// ends up in a test's failure message.
    pub body: String,
}

impl RecordedRequest {
    /// The decoded value of query parameter `key`, if present.
    pub fn query_param(&self, key: &str) -> Option<String> {
        server::parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Counters of one forwarded port of one port-forward connection (shared with the relay).
#[derive(Debug)]
pub struct PortForwardStats {
    namespace: String,
    pod: String,
    port: u16,
    bytes_to_pod: AtomicU64,
    bytes_from_pod: AtomicU64,
    error: Mutex<Option<String>>,
}

impl PortForwardStats {
    fn new(namespace: &str, pod: &str, port: u16) -> Self {
        PortForwardStats {
            namespace: namespace.to_string(),
            pod: pod.to_string(),
            port,
            bytes_to_pod: AtomicU64::new(0),
            bytes_from_pod: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }
}

/// A snapshot of one forwarded port of one port-forward connection.
#[derive(Debug, Clone, PartialEq)]
pub struct PortForward {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name from the URL.
    pub pod: String,
    /// The forwarded pod port.
    pub port: u16,
    /// Bytes the client sent that reached the backend.
    pub bytes_to_pod: u64,
    /// Bytes the backend sent back to the client.
    pub bytes_from_pod: u64,
    /// What the error channel reported, if anything (e.g. connection refused).
    pub error: Option<String>,
}

/// A running fake API server. Dropping it stops the server (and its own runtime, if
/// started with [`FakeKube::start_in_background`]).
pub struct FakeKube {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeKube {
    /// Starts the server on 127.0.0.1 (an ephemeral port) in the current tokio runtime.
    pub async fn start(opts: FakeKubeOptions) -> FakeKube {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake kube: binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("fake kube: local address");
        let sim = store::SimOptions {
            ready_after: opts.ready_after,
            crash: opts.crash.clone(),
            pending_with_event: opts.pending_with_event.clone(),
        };
        let shared = Arc::new(server::Shared {
            store: Mutex::new(store::Store::new(sim, addr.to_string())),
            requests: Mutex::new(Vec::new()),
            backend: Mutex::new(opts.backend),
            forwards: Mutex::new(Vec::new()),
            forward_delay: opts.forward_delay,
            shutdown: tokio_util::sync::CancellationToken::new(),
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(Arc::clone(&shared));
        let token = shared.shutdown.clone();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        FakeKube {
            shared,
            addr,
            server,
            handle: tokio::runtime::Handle::current(),
            runtime: None,
        }
    }

    /// Starts the server on a runtime of its own (two worker threads), for synchronous tests
    /// that run the `lmbench` binary while the fake answers it.
    pub fn start_in_background(opts: FakeKubeOptions) -> FakeKube {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("fake kube: building its runtime");
        let mut fake = rt.block_on(Self::start(opts));
        fake.runtime = Some(rt);
        fake
    }

    /// The runtime the server runs on (to start more servers beside it, e.g. a simulated
    /// engine as the port-forward backend: `fake.handle().block_on(lmbench::sim::spawn_local(..))`
    /// from a synchronous test).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.handle.clone()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes `dir/kubeconfig`: cluster `minikube` at [`FakeKube::url`], context `minikube`
    /// (namespace `default`, current), user `minikube` with a dummy token. Returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: minikube\n  cluster:\n    server: {}\ncontexts:\n- name: minikube\n  context:\n    cluster: minikube\n    namespace: default\n    user: minikube\ncurrent-context: minikube\npreferences: {{}}\nusers:\n- name: minikube\n  user:\n    token: fake-kube-token\n",
            self.url()
        );
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("fake kube: writing {}: {e}", path.display()));
        path
    }

    /// A kube-rs client for this server (default namespace `default`). Call it inside a tokio
    /// runtime.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url().parse().expect("fake kube: URL"));
        kube::Client::try_from(config).expect("fake kube: client")
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Every stored object as the API would serve it now (controllers run first), including
    /// the pre-existing namespaces, node and service accounts, and the controllers' ReplicaSets,
    /// Pods, Events and Endpoints.
    pub fn objects(&self) -> Vec<Value> {
        let s = self.shared.store();
        s.items.values().map(|st| st.obj.clone()).collect()
    }

    /// Every stored object of `kind` (e.g. `"Pod"`), in all namespaces.
    pub fn objects_of(&self, kind: &str) -> Vec<Value> {
        self.objects()
            .into_iter()
            .filter(|o| o["kind"] == kind)
            .collect()
    }

    /// The stored object of `kind` named `name` in `namespace` (ignored for cluster-scoped
    /// kinds), as the API would serve it now.
    pub fn object(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let r = api::RESOURCES.iter().find(|r| r.kind == kind)?;
        let s = self.shared.store();
        s.get(&store::Key::new(r, namespace, name))
            .map(|st| st.obj.clone())
    }

    /// Creates (or replaces) the objects of a multi-document YAML manifest, as `helm install`
    /// would: field manager `helm`, namespace from each object or `default`, missing namespaces
    /// created. Panics, naming the document, if one is not a valid object of a served kind.
    /// Returns `Kind/namespace/name` of each object.
    pub fn seed(&self, yaml: &str) -> Vec<String> {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
            .unwrap_or_else(|e| panic!("fake kube: seed YAML does not parse: {e}"));
        let mut out = Vec::new();
        let now = Instant::now();
        let mut s = self.shared.store();
        for (i, doc) in docs.into_iter().enumerate() {
            if doc.is_null() || doc.as_object().is_some_and(|m| m.is_empty()) {
                continue;
            }
            let av = doc["apiVersion"].as_str().unwrap_or("").to_string();
            let kind = doc["kind"].as_str().unwrap_or("").to_string();
            let r = api::find_kind(&av, &kind).unwrap_or_else(|| {
                panic!("fake kube: seed document {i}: {av} {kind} is not a kind this fake serves")
            });
            let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
            let ns = if r.namespaced {
                doc["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string()
            } else {
                String::new()
            };
            if r.namespaced && !s.namespace_exists(&ns) {
                let nsr = api::find("", "v1", "namespaces").expect("served");
                s.put_system(nsr, "", serde_json::json!({"metadata": {"name": ns}}), now);
            }
            let exists = s.get(&store::Key::new(r, &ns, &name)).is_some();
            let op = if exists {
                store::WriteOp::Replace
            } else {
                store::WriteOp::Create
            };
            s.write(r, &ns, Some(&name), doc, "helm", op, false, now)
                .unwrap_or_else(|e| {
                    panic!(
                        "fake kube: seed document {i} ({kind} {ns}/{name}): {} {}",
                        e.code, e.message
                    )
                });
            out.push(format!("{kind}/{ns}/{name}"));
        }
        out
    }

    /// Changes where port-forwarded connections go from now on.
    pub fn set_backend(&self, backend: Option<SocketAddr>) {
        *self
            .shared
            .backend
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = backend;
    }

    /// Every forwarded port of every port-forward connection so far, with byte counts.
    pub fn port_forwards(&self) -> Vec<PortForward> {
        self.shared
            .forwards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| PortForward {
                namespace: s.namespace.clone(),
                pod: s.pod.clone(),
                port: s.port,
                bytes_to_pod: s.bytes_to_pod.load(Ordering::Relaxed),
                bytes_from_pod: s.bytes_from_pod.load(Ordering::Relaxed),
                error: s.error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            })
            .collect()
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        self.server.abort();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
