//! Pods: waiting until they are ready (or hopeless), waiting until they are gone, and writing
//! their logs and a readable description to files.
//!
//! The decisions (which pods count, which are ready, which containers are stuck, what a
//! description says) are pure functions of the listed pods and events, so they are tested
//! without an API server; the `Kube` methods only fetch, sleep and write.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Event, Pod};
use kube::api::{Api, ListParams};
use tokio_util::sync::CancellationToken;

use super::{api_message, K8sError, Kube, ReadyReport, WaitOptions};

/// Waiting reasons a container does not leave by itself in a useful time: a crash loop, an image
/// that cannot be pulled, a configuration that references something missing.
pub(crate) const HOPELESS_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// How many events of a pod a report shows (the most recent ones).
const MAX_EVENTS: usize = 5;

/// A pod that counts for readiness but is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotReady {
    pub pod: String,
    pub phase: String,
    /// Containers that are not ready, with their state (`vllm: waiting (ContainerCreating)`).
    pub containers: Vec<String>,
}

/// A container in one of the [`HOPELESS_REASONS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stuck {
    pub pod: String,
    pub container: String,
    pub reason: String,
    pub message: String,
}

/// The readiness of a set of pods at one poll.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub ready: Vec<String>,
    pub not_ready: Vec<NotReady>,
    pub stuck: Vec<Stuck>,
    /// Finished or terminating pods (`name (phase)`), which do not count.
    pub ignored: Vec<String>,
}

impl Readiness {
    /// At least one pod is ready and every pod that counts is.
    pub fn all_ready(&self) -> bool {
        !self.ready.is_empty() && self.not_ready.is_empty()
    }
}

pub(super) fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown")
}

pub(super) fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("<unnamed>")
}

/// Whether the pod's `Ready` condition is `True`.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Whether the pod is being deleted (an old replica on its way out during a rollout).
pub(crate) fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Sort pods into ready, not ready and stuck containers. Pods that have finished (Succeeded,
/// Failed) or are being deleted do not count: they will not become ready and are not what
/// serves.
pub(crate) fn readiness(pods: &[Pod]) -> Readiness {
    let mut out = Readiness::default();
    let mut pods: Vec<&Pod> = pods.iter().collect();
    pods.sort_by(|a, b| pod_name(a).cmp(pod_name(b)));
    for pod in pods {
        let name = pod_name(pod).to_owned();
        let phase = phase(pod);
        if matches!(phase, "Succeeded" | "Failed") || is_terminating(pod) {
            let how = if is_terminating(pod) {
                ", terminating"
            } else {
                ""
            };
            out.ignored.push(format!("{name} ({phase}{how})"));
            continue;
        }
        for cs in all_statuses(pod) {
            if let Some(w) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) {
                let reason = w.reason.as_deref().unwrap_or("");
                if HOPELESS_REASONS.contains(&reason) {
                    let mut message = w.message.clone().unwrap_or_default();
                    if let Some(t) = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
                        if !message.is_empty() {
                            message.push_str("; ");
                        }
                        let _ = write!(message, "last exit code {}", t.exit_code);
                        if let Some(r) = &t.reason {
                            let _ = write!(message, " ({r})");
                        }
                    }
                    out.stuck.push(Stuck {
                        pod: name.clone(),
                        container: cs.name.clone(),
                        reason: reason.to_owned(),
                        message,
                    });
                }
            }
        }
        if is_ready(pod) {
            out.ready.push(name);
        } else {
            let containers = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map(|cs| {
                    cs.iter()
                        .filter(|c| !c.ready)
                        .map(|c| format!("{}: {}", c.name, state_text(c.state.as_ref())))
                        .collect()
                })
                .unwrap_or_default();
            out.not_ready.push(NotReady {
                pod: name,
                phase: phase.to_owned(),
                containers,
            });
        }
    }
    out
}

/// Init and regular container statuses of a pod.
pub(super) fn all_statuses(pod: &Pod) -> impl Iterator<Item = &ContainerStatus> {
    let status = pod.status.as_ref();
    let init = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or(&[]);
    let main = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    init.iter().chain(main)
}

/// A container state in a few words: `running`, `waiting (ContainerCreating)`,
/// `terminated (Error, exit code 1)`.
pub(super) fn state_text(state: Option<&ContainerState>) -> String {
    let Some(state) = state else {
        return "no state yet".to_owned();
    };
    if let Some(w) = &state.waiting {
        let mut text = format!("waiting ({})", w.reason.as_deref().unwrap_or("no reason"));
        if let Some(m) = w.message.as_deref().filter(|m| !m.is_empty()) {
            let _ = write!(text, ": {m}");
        }
        text
    } else if let Some(t) = &state.terminated {
        format!(
            "terminated ({}, exit code {})",
            t.reason.as_deref().unwrap_or("no reason"),
            t.exit_code
        )
    } else if let Some(r) = &state.running {
        match &r.started_at {
            Some(t) => format!("running since {}", t.0),
            None => "running".to_owned(),
        }
    } else {
        "unknown".to_owned()
    }
}

/// The most recent events, oldest first, one `Reason: message` line each (with a repeat count).
pub(crate) fn event_lines(events: &[Event]) -> Vec<String> {
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|e| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    let skip = events.len().saturating_sub(MAX_EVENTS);
    events
        .into_iter()
        .skip(skip)
        .map(|e| {
            let mut line = format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or("(no reason)"),
                e.message.as_deref().unwrap_or("").trim()
            );
            if let Some(n) = e.count.filter(|n| *n > 1) {
                let _ = write!(line, " (x{n})");
            }
            if e.type_.as_deref() == Some("Warning") {
                line.insert_str(0, "Warning ");
            }
            line
        })
        .collect()
}

/// The deadline report: one line per pod that is not ready, and for Pending pods their events.
pub(crate) fn not_ready_report(
    readiness: &Readiness,
    events: &HashMap<String, Result<Vec<String>, String>>,
) -> String {
    if readiness.ready.is_empty() && readiness.not_ready.is_empty() {
        return if readiness.ignored.is_empty() {
            "  no pod matched".to_owned()
        } else {
            format!(
                "  no pod that can serve; finished or terminating: {}",
                readiness.ignored.join(", ")
            )
        };
    }
    let mut out = String::new();
    for nr in &readiness.not_ready {
        let _ = write!(out, "  {}: {}", nr.pod, nr.phase);
        if !nr.containers.is_empty() {
            let _ = write!(out, "; {}", nr.containers.join("; "));
        }
        out.push('\n');
        if nr.phase == "Pending" {
            match events.get(&nr.pod) {
                Some(Ok(lines)) if lines.is_empty() => out.push_str("    (no events)\n"),
                Some(Ok(lines)) => {
                    for line in lines {
                        let _ = writeln!(out, "    {line}");
                    }
                }
                Some(Err(e)) => {
                    let _ = writeln!(out, "    (events unavailable: {e})");
                }
                None => {}
            }
        }
    }
    if !readiness.ready.is_empty() {
        let _ = writeln!(out, "  ready: {}", readiness.ready.join(", "));
    }
    out.truncate(out.trim_end().len());
    out
}

/// Run `fut` unless `cancel` fires first.
async fn or_cancel<T>(
    cancel: &CancellationToken,
    what: &str,
    fut: impl Future<Output = T>,
) -> Result<T, K8sError> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(K8sError::Cancelled { what: what.to_owned() }),
        v = fut => Ok(v),
    }
}

pub(super) fn list_params(selector: Option<&str>) -> ListParams {
    match selector {
        Some(s) => ListParams::default().labels(s),
        None => ListParams::default(),
    }
}

impl Kube {
    pub(super) fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub(super) fn list_action(&self, selector: Option<&str>) -> String {
        match selector {
            Some(s) => format!("listing pods matching {s} in namespace {}", self.namespace),
            None => format!("listing pods in namespace {}", self.namespace),
        }
    }

    /// The recent events of one pod, as [`event_lines`], or why they could not be fetched.
    pub(super) async fn pod_events(&self, pod: &str) -> Result<Vec<String>, String> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default().fields(&format!("involvedObject.name={pod}"));
        match api.list(&lp).await {
            Ok(list) => Ok(event_lines(&list.items)),
            Err(e) => Err(api_message(&e)),
        }
    }

    /// Poll the pods (all of the namespace, or those matching a label selector) every
    /// `opts.poll` until at least one exists and every pod that counts is Ready (condition
    /// `Ready=True`; finished and terminating pods do not count).
    ///
    /// Fails early when a container stays in CrashLoopBackOff, ImagePullBackOff, ErrImagePull,
    /// InvalidImageName, CreateContainerConfigError or CreateContainerError for
    /// `opts.max_bad_checks` consecutive polls, naming pod, container, reason and message. At the
    /// deadline the error lists each pod that is not ready with its phase and container states,
    /// and for Pending pods their recent events (fetched at each poll while they are Pending).
    /// A failed pod listing is retried; `opts.max_bad_checks` failures in a row end the wait.
    /// Returns [`K8sError::Cancelled`] as soon as `cancel` fires.
    pub async fn wait_pods_ready(
        &self,
        selector: Option<&str>,
        opts: WaitOptions,
        cancel: &CancellationToken,
    ) -> Result<ReadyReport, K8sError> {
        let start = Instant::now();
        let api = self.pods();
        let lp = list_params(selector);
        let what = format!("waiting for {}", super::describe_selector(selector));
        let max_bad = opts.max_bad_checks.max(1);
        // (pod, container) → consecutive polls seen in a hopeless state
        let mut stuck_count: HashMap<(String, String), u32> = HashMap::new();
        let mut list_failures = 0u32;
        let mut last_summary = String::new();
        let mut report: String;
        loop {
            match or_cancel(cancel, &what, api.list(&lp)).await? {
                Err(e) => {
                    list_failures += 1;
                    tracing::warn!("{}: {}", self.list_action(selector), api_message(&e));
                    if list_failures >= max_bad {
                        return Err(K8sError::api(self.list_action(selector), &e));
                    }
                    report = format!("  last pod listing failed: {}", api_message(&e));
                }
                Ok(list) => {
                    list_failures = 0;
                    let state = readiness(&list.items);
                    if state.all_ready() {
                        tracing::info!(
                            "{} pod(s) ready in namespace {}: {}",
                            state.ready.len(),
                            self.namespace,
                            state.ready.join(", ")
                        );
                        return Ok(ReadyReport {
                            pods: state.ready,
                            elapsed: start.elapsed(),
                        });
                    }
                    let mut still_stuck = HashMap::new();
                    for s in &state.stuck {
                        let key = (s.pod.clone(), s.container.clone());
                        let n = stuck_count.get(&key).copied().unwrap_or(0) + 1;
                        if n >= max_bad {
                            return Err(K8sError::PodFailing {
                                pod: s.pod.clone(),
                                container: s.container.clone(),
                                reason: s.reason.clone(),
                                message: s.message.clone(),
                                checks: n,
                            });
                        }
                        still_stuck.insert(key, n);
                    }
                    stuck_count = still_stuck;

                    let mut events = HashMap::new();
                    for nr in state.not_ready.iter().filter(|nr| nr.phase == "Pending") {
                        let ev = or_cancel(cancel, &what, self.pod_events(&nr.pod)).await?;
                        events.insert(nr.pod.clone(), ev);
                    }
                    report = not_ready_report(&state, &events);
                    if report != last_summary {
                        tracing::info!(
                            "waiting for pods in namespace {} ({}/{} ready):\n{report}",
                            self.namespace,
                            state.ready.len(),
                            state.ready.len() + state.not_ready.len()
                        );
                        last_summary = report.clone();
                    }
                }
            }
            let elapsed = start.elapsed();
            if elapsed >= opts.deadline {
                return Err(K8sError::PodsNotReady {
                    namespace: self.namespace.clone(),
                    selector: selector.map(str::to_owned),
                    waited: elapsed,
                    report,
                });
            }
            let pause = opts.poll.min(opts.deadline - elapsed);
            or_cancel(cancel, &what, tokio::time::sleep(pause)).await?;
        }
    }

    /// Wait until no pod matches `selector` (all pods of the namespace when `None`), polling at
    /// this client's poll interval. The error lists the survivors with their phase.
    pub async fn wait_pods_gone(
        &self,
        selector: Option<&str>,
        deadline: Duration,
    ) -> Result<(), K8sError> {
        let start = Instant::now();
        let api = self.pods();
        let lp = list_params(selector);
        loop {
            let list = api
                .list(&lp)
                .await
                .map_err(|e| K8sError::api(self.list_action(selector), &e))?;
            if list.items.is_empty() {
                return Ok(());
            }
            let elapsed = start.elapsed();
            if elapsed >= deadline {
                let mut pods: Vec<String> = list
                    .items
                    .iter()
                    .map(|p| {
                        let deleting = if is_terminating(p) {
                            ", terminating"
                        } else {
                            ""
                        };
                        format!("{} ({}{deleting})", pod_name(p), phase(p))
                    })
                    .collect();
                pods.sort();
                return Err(K8sError::PodsRemain {
                    namespace: self.namespace.clone(),
                    selector: selector.map(str::to_owned),
                    waited: elapsed,
                    pods,
                });
            }
            tokio::time::sleep(self.poll.min(deadline - elapsed)).await;
        }
    }
}
