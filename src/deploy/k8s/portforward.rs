//! Forwarding a local TCP port to a Service, like `kubectl port-forward svc/NAME LOCAL:PORT`.
//!
//! The service is resolved to one Ready pod and a container port (the service port's
//! `targetPort`, by number or by container-port name). Every accepted connection gets its own
//! port-forward stream to that pod through the API server. When opening a stream fails, or the
//! pod reports an error on the port, the pod is resolved again, so a router pod that restarts
//! or is replaced costs the connections open at that moment, not the rest of the benchmark.
//!
//! The same forwarding pinned to one pod and port ([`Kube::port_forward_pod`]) reaches each
//! engine pod behind a router on its own, for scraping its metrics ([`Kube::engine_pods`]
//! says which pods those are).
//!
//! A stream lives exactly as long as its local connection ([`Forwarder::serve`] copies both
//! ways until either side closes), so a client connection reused from lmbench's pool for many
//! requests is one long-lived stream: only a new client connection opens a new stream, and its
//! requests wait for that set-up behind a local connect that completed at once. The set-up
//! time is handed to the client ([`crate::client::connections::relay_ready`]), which counts it
//! in the waiting request's `connect_ms`.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, Portforwarder};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::pods::{is_ready, is_terminating};
use super::{api_code, api_message, K8sError, Kube};

/// A service port's `targetPort`: a number, or the name of a container port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    /// A port number on the pod.
    Number(u16),
    /// The name of a container port (`ports[].name` in the pod spec).
    Named(String),
}

/// The label selector of a service, as `key=value,…` (sorted by key).
pub(crate) fn service_selector(svc: &Service) -> Result<String, String> {
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            "the service has no pod selector (port-forwarding needs the pods it selects)".to_owned()
        })?;
    Ok(selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(","))
}

/// The target of the service port `port`: its `targetPort`, or `port` itself when unset.
pub(crate) fn service_target_port(svc: &Service, port: u16) -> Result<TargetPort, String> {
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[]);
    let Some(sp) = ports.iter().find(|p| p.port == i32::from(port)) else {
        let have: Vec<String> = ports
            .iter()
            .map(|p| match &p.name {
                Some(n) => format!("{} ({n})", p.port),
                None => p.port.to_string(),
            })
            .collect();
        return Err(format!(
            "the service has no port {port} (it has: {})",
            if have.is_empty() {
                "none".to_owned()
            } else {
                have.join(", ")
            }
        ));
    };
    if let Some(proto) = sp.protocol.as_deref().filter(|p| *p != "TCP") {
        return Err(format!(
            "service port {port} is {proto}; only TCP can be forwarded"
        ));
    }
    match &sp.target_port {
        None => Ok(TargetPort::Number(port)),
        Some(IntOrString::Int(n)) => u16::try_from(*n)
            .ok()
            .filter(|n| *n != 0)
            .map(TargetPort::Number)
            .ok_or_else(|| format!("service port {port} has an invalid targetPort {n}")),
        Some(IntOrString::String(name)) if name.is_empty() => Ok(TargetPort::Number(port)),
        Some(IntOrString::String(name)) => Ok(TargetPort::Named(name.clone())),
    }
}

/// The pod port that `target` means on `pod`: the number itself, or the container port of that
/// name (`None` when no container of the pod declares it).
pub(crate) fn container_port(pod: &Pod, target: &TargetPort) -> Option<u16> {
    match target {
        TargetPort::Number(n) => Some(*n),
        TargetPort::Named(name) => pod
            .spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.as_deref().unwrap_or(&[]))
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// The first Ready pod (by name; terminating pods excluded) on which `target` resolves, with
/// the pod port.
pub(crate) fn pick_pod(pods: &[Pod], target: &TargetPort) -> Result<(String, u16), String> {
    let mut ready: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_ready(p) && !is_terminating(p))
        .collect();
    ready.sort_by_key(|p| p.metadata.name.clone());
    if ready.is_empty() {
        let seen: Vec<String> = pods
            .iter()
            .map(|p| {
                format!(
                    "{} ({})",
                    p.metadata.name.as_deref().unwrap_or("<unnamed>"),
                    p.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .unwrap_or("Unknown")
                )
            })
            .collect();
        return Err(if seen.is_empty() {
            "no pod matches the service's selector".to_owned()
        } else {
            format!("none of the service's pods is ready: {}", seen.join(", "))
        });
    }
    for pod in &ready {
        if let Some(port) = container_port(pod, target) {
            return Ok((pod.metadata.name.clone().unwrap_or_default(), port));
        }
    }
    let TargetPort::Named(name) = target else {
        unreachable!("a numeric target resolves on every pod")
    };
    Err(format!(
        "no container of the ready pods declares a port named {name:?}"
    ))
}

/// The pod and pod port connections currently go to.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    pod: String,
    port: u16,
}

/// Resolves the service and opens port-forward streams; shared by all connections.
struct Forwarder {
    services: Api<Service>,
    pods: Api<Pod>,
    namespace: String,
    service: String,
    service_port: u16,
    /// `None` after a failure: the next connection resolves the service again. The lock is
    /// held while resolving, so a burst of new connections resolves once.
    target: Mutex<Option<Target>>,
    /// A pod and port to go to instead of resolving a service.
    pinned: Option<Target>,
}

impl Forwarder {
    fn error(&self, message: String) -> K8sError {
        K8sError::PortForward {
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            port: self.service_port,
            message,
        }
    }

    async fn resolve(&self) -> Result<Target, K8sError> {
        if let Some(t) = &self.pinned {
            return Ok(t.clone());
        }
        let svc = self.services.get(&self.service).await.map_err(|e| {
            self.error(if api_code(&e) == Some(404) {
                "no such service".to_owned()
            } else {
                format!("reading the service: {}", api_message(&e))
            })
        })?;
        let selector = service_selector(&svc).map_err(|m| self.error(m))?;
        let target = service_target_port(&svc, self.service_port).map_err(|m| self.error(m))?;
        let pods = self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| {
                self.error(format!(
                    "listing pods matching {selector}: {}",
                    api_message(&e)
                ))
            })?;
        let (pod, port) = pick_pod(&pods.items, &target)
            .map_err(|m| self.error(format!("{m} (selector {selector})")))?;
        Ok(Target { pod, port })
    }

    async fn current(&self) -> Result<Target, K8sError> {
        let mut guard = self.target.lock().await;
        if let Some(t) = guard.as_ref() {
            return Ok(t.clone());
        }
        let fresh = self.resolve().await?;
        tracing::info!(
            "port-forward of service {}:{} now goes to pod {} port {}",
            self.service,
            self.service_port,
            fresh.pod,
            fresh.port
        );
        *guard = Some(fresh.clone());
        Ok(fresh)
    }

    async fn invalidate(&self, bad: &Target) {
        let mut guard = self.target.lock().await;
        if guard.as_ref() == Some(bad) {
            *guard = None;
        }
    }

    /// A port-forward stream to the current pod; on failure, resolve the service again and
    /// try once more.
    async fn open(&self) -> Result<(Portforwarder, Target), K8sError> {
        let target = self.current().await?;
        match self.pods.portforward(&target.pod, &[target.port]).await {
            Ok(pf) => Ok((pf, target)),
            Err(e) => {
                tracing::info!(
                    "port-forward to pod {} failed ({}); resolving service {} again",
                    target.pod,
                    api_message(&e),
                    self.service
                );
                self.invalidate(&target).await;
                let fresh = self.current().await?;
                let pf = self
                    .pods
                    .portforward(&fresh.pod, &[fresh.port])
                    .await
                    .map_err(|e| {
                        self.error(format!(
                            "opening a port-forward to pod {} port {}: {}",
                            fresh.pod,
                            fresh.port,
                            api_message(&e)
                        ))
                    })?;
                Ok((pf, fresh))
            }
        }
    }

    /// Carry one local connection (from `peer`) to the pod and back until either side closes:
    /// one stream for every request the connection carries.
    async fn serve(
        self: Arc<Self>,
        mut tcp: TcpStream,
        peer: SocketAddr,
        cancel: CancellationToken,
    ) {
        let accepted = std::time::Instant::now();
        let _ = tcp.set_nodelay(true);
        let opened = tokio::select! {
            _ = cancel.cancelled() => return,
            r = self.open() => r,
        };
        let (mut pf, target) = match opened {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        };
        let Some(mut upstream) = pf.take_stream(target.port) else {
            return;
        };
        // The first request on the connection has been waiting for this since its connect.
        crate::client::connections::relay_ready(peer, accepted.elapsed());
        let mut pod_error = pf.take_error(target.port).map(Box::pin);
        {
            let copy = tokio::io::copy_bidirectional(&mut tcp, &mut upstream);
            tokio::pin!(copy);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => {
                        pf.abort();
                        crate::client::connections::relay_closed(peer);
                        return;
                    }
                    r = &mut copy => {
                        if let Err(e) = r {
                            tracing::debug!("port-forward connection to pod {} ended: {e}", target.pod);
                        }
                        break;
                    }
                    msg = async {
                        match pod_error.as_mut() {
                            Some(f) => f.await,
                            None => std::future::pending().await,
                        }
                    } => {
                        pod_error = None;
                        if let Some(msg) = msg {
                            // The pod refused the port (container restarting, pod going away):
                            // the next connection picks a pod again.
                            tracing::warn!("port-forward to pod {} port {}: {msg}", target.pod, target.port);
                            self.invalidate(&target).await;
                            break;
                        }
                    }
                }
            }
        }
        drop(upstream);
        crate::client::connections::relay_closed(peer);
        if tokio::time::timeout(Duration::from_secs(5), pf.join())
            .await
            .is_err()
        {
            tracing::debug!(
                "port-forward stream to pod {} did not close in 5 s",
                target.pod
            );
        }
    }
}

/// A running port-forward. Dropping it (or [`PortForward::stop`]) stops accepting connections
/// and ends the open ones.
#[derive(Debug)]
pub struct PortForward {
    /// The local address connections are accepted on (`127.0.0.1:<port>`).
    pub local_addr: SocketAddr,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl PortForward {
    /// Stop listening and close the forwarded connections (returns at once; the listener is
    /// closed a moment later — use [`PortForward::shutdown`] to wait for it).
    pub fn stop(self) {
        self.cancel.cancel();
    }

    /// Whether it still accepts connections (its listener tasks are running).
    pub fn is_alive(&self) -> bool {
        !self.cancel.is_cancelled() && self.tasks.iter().any(|t| !t.is_finished())
    }

    /// Stop, and return once the local port is closed (so the next baseline can bind it).
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A listener on `127.0.0.1:port` (`0`: a free port) and the address it got.
async fn bind_loopback(port: u16) -> Result<(TcpListener, SocketAddr), K8sError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| K8sError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| K8sError::Bind { addr, source })?;
    Ok((listener, local_addr))
}

async fn accept_loop(listener: TcpListener, fwd: Arc<Forwarder>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(fwd.clone().serve(tcp, peer, cancel.child_token()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!("port-forward of service {}: accept failed: {e}", fwd.service);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

impl Kube {
    /// Forward `127.0.0.1:local_port` to port `service_port` of the Service `service`, like
    /// `kubectl port-forward svc/SERVICE LOCAL:PORT`.
    ///
    /// The service's selector and the port's `targetPort` (a number or a named container port)
    /// are resolved to a Ready pod before anything is bound, so a missing service or an unready
    /// deployment fails here. The local port must be free (`0` picks one; see
    /// [`PortForward::local_addr`]); `[::1]` on the same port is bound too when possible, so
    /// `localhost` works whichever address a client tries first. Each accepted connection gets
    /// its own port-forward stream (API server websocket); when opening one fails or the pod
    /// reports an error, the service is resolved again for the next connection.
    pub async fn port_forward(
        &self,
        service: &str,
        service_port: u16,
        local_port: u16,
    ) -> Result<PortForward, K8sError> {
        let fwd = Arc::new(Forwarder {
            services: Api::namespaced(self.client.clone(), &self.namespace),
            pods: Api::namespaced(self.client.clone(), &self.namespace),
            namespace: self.namespace.clone(),
            service: service.to_owned(),
            service_port,
            target: Mutex::new(None),
            pinned: None,
        });
        let first = fwd.current().await?;
        let (listener, local_addr) = bind_loopback(local_port).await?;
        let mut listeners = vec![listener];
        if local_port != 0 {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, local_port));
            match TcpListener::bind(v6).await {
                Ok(l) => listeners.push(l),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => tracing::warn!(
                    "{v6} is taken by another process; clients must use 127.0.0.1:{local_port}, \
                     not localhost"
                ),
                Err(e) => tracing::debug!("not listening on {v6}: {e}"),
            }
        }
        let cancel = CancellationToken::new();
        let tasks = listeners
            .into_iter()
            .map(|l| tokio::spawn(accept_loop(l, fwd.clone(), cancel.clone())))
            .collect();
        tracing::info!(
            "forwarding {local_addr} to service {service}:{service_port} in namespace {} \
             (pod {} port {})",
            self.namespace,
            first.pod,
            first.port
        );
        Ok(PortForward {
            local_addr,
            cancel,
            tasks,
        })
    }

    /// Forward a free local port (on `127.0.0.1`) to port `port` of the pod `pod`, like
    /// `kubectl port-forward pod/POD :PORT`; [`PortForward::local_addr`] says where.
    pub async fn port_forward_pod(&self, pod: &str, port: u16) -> Result<PortForward, K8sError> {
        let target = Target {
            pod: pod.to_owned(),
            port,
        };
        let fwd = Arc::new(Forwarder {
            services: Api::namespaced(self.client.clone(), &self.namespace),
            pods: Api::namespaced(self.client.clone(), &self.namespace),
            namespace: self.namespace.clone(),
            service: format!("pod/{pod}"),
            service_port: port,
            target: Mutex::new(Some(target.clone())),
            pinned: Some(target),
        });
        let (listener, local_addr) = bind_loopback(0).await?;
        let cancel = CancellationToken::new();
        let tasks = vec![tokio::spawn(accept_loop(listener, fwd, cancel.clone()))];
        tracing::info!(
            "forwarding {local_addr} to pod {pod} port {port} in namespace {}",
            self.namespace
        );
        Ok(PortForward {
            local_addr,
            cancel,
            tasks,
        })
    }

    /// The engine pods of a deployment whose requests go through the Service `service`: the
    /// Ready pods of the namespace that the service does not select (a router in front of
    /// engines), each with its first declared container port; none when the service selects
    /// every pod (it goes straight to the engines, which its endpoint then already reaches).
    pub async fn engine_pods(&self, service: &str) -> Result<Vec<(String, u16)>, K8sError> {
        let error = |message: String| K8sError::PortForward {
            namespace: self.namespace.clone(),
            service: service.to_owned(),
            port: 0,
            message,
        };
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let svc = services
            .get(service)
            .await
            .map_err(|e| error(format!("reading the service: {}", api_message(&e))))?;
        let selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let list = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| error(format!("listing pods: {}", api_message(&e))))?;
        let mut out: Vec<(String, u16)> = list
            .items
            .iter()
            .filter(|p| is_ready(p) && !is_terminating(p))
            .filter(|p| {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                selector.is_empty() || !selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
            .filter_map(|p| {
                let port = p
                    .spec
                    .as_ref()?
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.as_deref().unwrap_or(&[]))
                    .find_map(|port| u16::try_from(port.container_port).ok())?;
                Some((p.metadata.name.clone()?, port))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}
