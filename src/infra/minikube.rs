//! `LocalMinikube`: a local one-node Kubernetes cluster on Docker, with the host's GPUs.
//!
//! Set-up installs what is missing (kubectl, helm, minikube: the scripts in
//! `1-infrastructure/local-minikube/` download pinned releases to `~/.local/bin`), needs a
//! working Docker, and reuses a cluster that is already healthy; otherwise it starts one. With
//! `nvidia-smi` on the path the cluster gets the GPUs (`--gpus=all`), the NVIDIA device plugin
//! is applied and set-up waits until the node reports allocatable `nvidia.com/gpu`. Without it
//! the cluster starts without GPUs and a warning says GPU baselines will not schedule.
//!
//! Teardown leaves the cluster running (a restart costs minutes and the images it pulled),
//! unless `LMBENCH_MINIKUBE_DELETE=1`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{run_teardown, Ctx, InfraError};
use crate::deploy::tools::{RunOpts, ToolEnv};

/// The kubeconfig context minikube creates.
pub const CONTEXT: &str = "minikube";
/// The folder of this Location's assets, relative to the repository root.
pub const ASSETS: &str = "1-infrastructure/local-minikube";
/// The device plugin manifest, relative to the repository root.
pub const DEVICE_PLUGIN: &str = "1-infrastructure/local-minikube/nvidia-device-plugin.yml";

const SHORT: Duration = Duration::from_secs(60);
const INSTALL: Duration = Duration::from_secs(600);
const START: Duration = Duration::from_secs(1200);
const DELETE: Duration = Duration::from_secs(300);

/// The flags of `minikube start`.
pub fn start_args(gpus: bool) -> Vec<&'static str> {
    let mut args = vec!["start", "--driver=docker", "--container-runtime=docker"];
    if gpus {
        args.push("--gpus=all");
    }
    args.extend(["--memory=no-limit", "--cpus=no-limit"]);
    args
}

/// Set up the cluster; returns whether it has GPUs.
pub(super) async fn setup(root: &Path, ctx: &Ctx<'_>) -> Result<bool, InfraError> {
    for tool in ["kubectl", "helm", "minikube"] {
        ensure_installed(root, ctx, tool).await?;
    }
    check_docker(ctx).await?;

    let gpus = ctx.tools.find("nvidia-smi").is_some();
    let plugin = root.join(DEVICE_PLUGIN);
    if gpus && !plugin.is_file() {
        return Err(InfraError::step_msg(
            "minikube: device plugin",
            format!(
                "{} is missing: it is needed to give the cluster this host's GPUs",
                plugin.display()
            ),
        ));
    }

    let status = ctx
        .probe("minikube: status", "minikube", &["status"], SHORT)
        .await?;
    let healthy = status.success()
        && ctx
            .probe(
                "minikube: cluster-info",
                "kubectl",
                &[
                    "--context",
                    CONTEXT,
                    "cluster-info",
                    "--request-timeout=10s",
                ],
                SHORT,
            )
            .await?
            .success();
    if healthy {
        tracing::info!("reusing the running minikube cluster");
        ctx.tools
            .note("minikube is running and answers: reusing it");
    } else {
        if !gpus {
            tracing::warn!(
                "nvidia-smi not found: starting minikube without GPUs; baselines that request \
                 nvidia.com/gpu will not schedule"
            );
            ctx.tools
                .note("nvidia-smi not found: starting minikube without GPUs");
        }
        tracing::info!("starting minikube (this takes a few minutes the first time)");
        ctx.run("minikube: start", "minikube", &start_args(gpus), START)
            .await
            .map_err(|e| match e {
                InfraError::Tool { step, source } => InfraError::Step {
                    step,
                    message: format!(
                        "{source}\n(if an old cluster is in the way, `minikube delete` and run again)"
                    ),
                },
                other => other,
            })?;
    }
    ctx.run(
        "minikube: update-context",
        "minikube",
        &["update-context"],
        SHORT,
    )
    .await?;

    if gpus {
        let plugin = plugin.to_string_lossy();
        ctx.run(
            "minikube: apply the NVIDIA device plugin",
            "kubectl",
            &["--context", CONTEXT, "apply", "-f", &plugin],
            SHORT,
        )
        .await?;
        wait_for_gpus(ctx, healthy).await?;
    }
    Ok(gpus)
}

/// Install `tool` with its script when it is not on the path (nor in the install folder).
async fn ensure_installed(root: &Path, ctx: &Ctx<'_>, tool: &str) -> Result<(), InfraError> {
    if ctx.tools.find(tool).is_some() {
        return Ok(());
    }
    let step = format!("minikube: install {tool}");
    let script: PathBuf = root.join(ASSETS).join(format!("install-{tool}.sh"));
    if !script.is_file() {
        return Err(InfraError::Step {
            step,
            message: format!(
                "`{tool}` is not installed and the install script {} is missing",
                script.display()
            ),
        });
    }
    let Some(dir) = ctx.tools.install_dir() else {
        return Err(InfraError::Step {
            step,
            message: format!(
                "`{tool}` is not installed and HOME is not set to install it into ~/.local/bin"
            ),
        });
    };
    tracing::info!("{tool} not found: installing it into {}", dir.display());
    ctx.tools
        .note(&format!("{tool} not found: running {}", script.display()));
    let script_s = script.to_string_lossy().into_owned();
    let opts = RunOpts::new()
        .timeout(INSTALL)
        .env("LMBENCH_INSTALL_DIR", dir.to_string_lossy());
    if ctx.tools.find(&script_s).is_some() {
        ctx.run_opts(&step, &script_s, &[], opts).await?;
    } else {
        // Copied without its executable bit: run it through bash.
        ctx.run_opts(&step, "bash", &[&script_s], opts).await?;
    }
    if ctx.tools.find(tool).is_none() {
        return Err(InfraError::Step {
            step,
            message: format!(
                "{} finished but `{tool}` is still not found in {}",
                script.display(),
                dir.display()
            ),
        });
    }
    Ok(())
}

/// minikube's docker driver needs a Docker daemon this user may talk to.
async fn check_docker(ctx: &Ctx<'_>) -> Result<(), InfraError> {
    let step = "minikube: docker";
    if ctx.tools.find("docker").is_none() {
        return Err(InfraError::step_msg(
            step,
            "`docker` not found: minikube runs the cluster in a Docker container; install \
             Docker Engine (https://docs.docker.com/engine/install/) and let this user run it",
        ));
    }
    let out = ctx
        .probe(
            step,
            "docker",
            &["info", "--format", "{{.ServerVersion}}"],
            SHORT,
        )
        .await?;
    if !out.success() {
        return Err(InfraError::step_msg(
            step,
            format!(
                "the Docker daemon does not answer (`docker info`: {}): start Docker, or add \
                 this user to the docker group (`sudo usermod -aG docker $USER`, then log in again)",
                out.stderr.trim()
            ),
        ));
    }
    Ok(())
}

/// Wait until a node reports allocatable `nvidia.com/gpu`.
async fn wait_for_gpus(ctx: &Ctx<'_>, reused: bool) -> Result<(), InfraError> {
    let step = "minikube: check GPUs";
    let deadline = Instant::now() + ctx.waits.gpus;
    loop {
        let out = ctx
            .run(
                step,
                "kubectl",
                &[
                    "--context",
                    CONTEXT,
                    "get",
                    "nodes",
                    "-o",
                    r"jsonpath={..allocatable.nvidia\.com/gpu}",
                ],
                SHORT,
            )
            .await?;
        let counts = out.stdout.split_whitespace().collect::<Vec<_>>();
        if counts.iter().any(|c| c.parse::<u64>().is_ok_and(|n| n > 0)) {
            tracing::info!("minikube node GPUs: {}", counts.join(" "));
            return Ok(());
        }
        if Instant::now() >= deadline {
            let why = if reused {
                "the running cluster was probably started without GPUs: `minikube delete` and run again"
            } else {
                "check the device plugin's pods (`kubectl -n kube-system get pods`) and the NVIDIA container toolkit (`nvidia-ctk runtime configure --runtime=docker`)"
            };
            return Err(InfraError::step_msg(
                step,
                format!(
                    "no node reports allocatable nvidia.com/gpu after {}s: {why}",
                    ctx.waits.gpus.as_secs()
                ),
            ));
        }
        ctx.sleep(step, ctx.waits.poll).await?;
    }
}

pub(super) async fn teardown(tools: &ToolEnv, delete: bool) -> Result<(), InfraError> {
    if !delete {
        tracing::info!(
            "leaving the minikube cluster running (LMBENCH_MINIKUBE_DELETE=1 deletes it)"
        );
        tools
            .note("teardown: minikube cluster left running (LMBENCH_MINIKUBE_DELETE=1 deletes it)");
        return Ok(());
    }
    run_teardown(
        tools,
        "minikube teardown: delete",
        "minikube",
        &["delete"],
        DELETE,
    )
    .await?;
    Ok(())
}
