//! Pod logs and descriptions, written to files after every point (LMBench's
//! `<pod>_<KEY>_<workload>_<qps>.log`) and after a failed deployment: each container's log,
//! its previous instance's log, and a readable description with the pod's events.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::LogParams;

use super::pods::{all_statuses, list_params, phase, pod_name, state_text};
use super::{api_code, api_message, K8sError, Kube};

/// A readable description of a pod: phase, node, conditions, containers with image, state and
/// restarts, then its events and any notes (e.g. logs that could not be fetched).
///
/// Environment variables and annotations are left out on purpose: they may hold secrets.
pub(crate) fn describe_pod(
    pod: &Pod,
    events: &Result<Vec<String>, String>,
    notes: &[String],
) -> String {
    let mut out = String::new();
    let meta = &pod.metadata;
    let status = pod.status.as_ref();
    let spec = pod.spec.as_ref();
    let _ = writeln!(out, "Name:        {}", pod_name(pod));
    let _ = writeln!(
        out,
        "Namespace:   {}",
        meta.namespace.as_deref().unwrap_or("")
    );
    let _ = writeln!(
        out,
        "Node:        {}",
        spec.and_then(|s| s.node_name.as_deref())
            .unwrap_or("<none>")
    );
    if let Some(t) = status.and_then(|s| s.start_time.as_ref()) {
        let _ = writeln!(out, "Start time:  {}", t.0);
    }
    if let Some(t) = &meta.deletion_timestamp {
        let _ = writeln!(out, "Deleting:    since {}", t.0);
    }
    let _ = writeln!(out, "Phase:       {}", phase(pod));
    if let Some(reason) = status.and_then(|s| s.reason.as_deref()) {
        let _ = writeln!(out, "Reason:      {reason}");
    }
    if let Some(message) = status.and_then(|s| s.message.as_deref()) {
        let _ = writeln!(out, "Message:     {message}");
    }
    if let Some(ip) = status.and_then(|s| s.pod_ip.as_deref()) {
        let _ = writeln!(out, "IP:          {ip}");
    }
    if let Some(labels) = meta.labels.as_ref().filter(|l| !l.is_empty()) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "Labels:      {}", labels.join(", "));
    }
    if let Some(conds) = status.and_then(|s| s.conditions.as_ref()) {
        out.push_str("Conditions:\n");
        for c in conds {
            let _ = write!(out, "  {}={}", c.type_, c.status);
            if let Some(r) = &c.reason {
                let _ = write!(out, " ({r})");
            }
            if let Some(m) = c.message.as_deref().filter(|m| !m.is_empty()) {
                let _ = write!(out, ": {m}");
            }
            out.push('\n');
        }
    }
    let statuses: HashMap<&str, &ContainerStatus> =
        all_statuses(pod).map(|c| (c.name.as_str(), c)).collect();
    let sections = [
        (
            "Init containers",
            spec.and_then(|s| s.init_containers.as_deref())
                .unwrap_or(&[]),
        ),
        (
            "Containers",
            spec.map(|s| s.containers.as_slice()).unwrap_or(&[]),
        ),
    ];
    for (title, containers) in sections {
        if containers.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{title}:");
        for c in containers {
            let _ = writeln!(out, "  {}:", c.name);
            let _ = writeln!(
                out,
                "    Image:       {}",
                c.image.as_deref().unwrap_or("<none>")
            );
            if let Some(ports) = c.ports.as_ref().filter(|p| !p.is_empty()) {
                let ports: Vec<String> = ports
                    .iter()
                    .map(|p| match &p.name {
                        Some(n) => format!("{}/{n}", p.container_port),
                        None => p.container_port.to_string(),
                    })
                    .collect();
                let _ = writeln!(out, "    Ports:       {}", ports.join(", "));
            }
            match statuses.get(c.name.as_str()) {
                Some(cs) => {
                    let _ = writeln!(out, "    State:       {}", state_text(cs.state.as_ref()));
                    if let Some(last) = cs.last_state.as_ref().filter(|s| {
                        s.running.is_some() || s.terminated.is_some() || s.waiting.is_some()
                    }) {
                        let _ = writeln!(out, "    Last state:  {}", state_text(Some(last)));
                    }
                    let _ = writeln!(out, "    Ready:       {}", cs.ready);
                    let _ = writeln!(out, "    Restarts:    {}", cs.restart_count);
                }
                None => out.push_str("    State:       no status yet\n"),
            }
        }
    }
    out.push_str("Events:\n");
    match events {
        Ok(lines) if lines.is_empty() => out.push_str("  <none>\n"),
        Ok(lines) => {
            for line in lines {
                let _ = writeln!(out, "  {line}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "  unavailable: {e}");
        }
    }
    if !notes.is_empty() {
        out.push_str("Notes:\n");
        for n in notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    out
}

/// A file name part without path separators.
fn file_part(s: &str) -> String {
    s.replace(['/', '\\'], "_")
}

impl Kube {
    /// Write, for every pod of the namespace (or those matching `selector`), into `dir`
    /// (created if missing):
    /// - `<pod>_<tag>.log`: the container's log since it started; for a pod with several
    ///   containers (init containers included), one `<pod>_<container>_<tag>.log` each;
    /// - `<pod>_<tag>_previous.log` (or `<pod>_<container>_<tag>_previous.log`): the previous
    ///   container instance's log, only when there is one and it is not empty;
    /// - `<pod>_<tag>_describe.txt`: phase, node, conditions, containers with image, state and
    ///   restarts, the pod's events, and notes about logs that could not be fetched.
    ///
    /// A log that cannot be fetched (a container that has not started) is noted in the
    /// description rather than failing the call. Returns the files written.
    pub async fn collect_logs(
        &self,
        dir: &Path,
        tag: &str,
        selector: Option<&str>,
    ) -> Result<Vec<PathBuf>, K8sError> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| K8sError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        let api = self.pods();
        let mut pods = api
            .list(&list_params(selector))
            .await
            .map_err(|e| K8sError::api(self.list_action(selector), &e))?
            .items;
        pods.sort_by(|a, b| pod_name(a).cmp(pod_name(b)));
        let tag = file_part(tag);
        let mut written = Vec::new();
        for pod in &pods {
            let name = pod_name(pod);
            let spec = pod.spec.as_ref();
            let containers: Vec<&str> = spec
                .and_then(|s| s.init_containers.as_deref())
                .unwrap_or(&[])
                .iter()
                .chain(spec.map(|s| s.containers.as_slice()).unwrap_or(&[]))
                .map(|c| c.name.as_str())
                .collect();
            let mut notes = Vec::new();
            for container in &containers {
                let base = if containers.len() == 1 {
                    format!("{}_{tag}", file_part(name))
                } else {
                    format!("{}_{}_{tag}", file_part(name), file_part(container))
                };
                let current = LogParams {
                    container: Some((*container).to_owned()),
                    ..LogParams::default()
                };
                match api.logs(name, &current).await {
                    Ok(text) => {
                        let path = dir.join(format!("{base}.log"));
                        write_file(&path, &text).await?;
                        written.push(path);
                    }
                    Err(e) => notes.push(format!(
                        "log of container {container} unavailable: {}",
                        api_message(&e)
                    )),
                }
                let previous = LogParams {
                    previous: true,
                    ..current
                };
                match api.logs(name, &previous).await {
                    Ok(text) if !text.is_empty() => {
                        let path = dir.join(format!("{base}_previous.log"));
                        write_file(&path, &text).await?;
                        written.push(path);
                    }
                    Ok(_) => {}
                    // No previous instance: the API answers 400 (or 404 for a pod just gone).
                    Err(e) if matches!(api_code(&e), Some(400 | 404)) => {}
                    Err(e) => notes.push(format!(
                        "previous log of container {container} unavailable: {}",
                        api_message(&e)
                    )),
                }
            }
            let events = self.pod_events(name).await;
            let path = dir.join(format!("{}_{tag}_describe.txt", file_part(name)));
            write_file(&path, &describe_pod(pod, &events, &notes)).await?;
            written.push(path);
        }
        tracing::debug!(
            "collected {} file(s) of {} pod(s) into {}",
            written.len(),
            pods.len(),
            dir.display()
        );
        Ok(written)
    }
}

/// Write one log or description (atomically, like every file lmbench writes whole).
async fn write_file(path: &Path, text: &str) -> Result<(), K8sError> {
    let (p, bytes) = (path.to_path_buf(), text.as_bytes().to_vec());
    let written = tokio::task::spawn_blocking(move || {
        crate::files::write_atomic(&p, &bytes, crate::files::Existing::Replace)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)));
    written.map_err(|source| K8sError::Io {
        path: path.to_path_buf(),
        source,
    })
}
