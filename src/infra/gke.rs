//! `LMCacheGKE`: a GKE cluster `lm-bench` in `us-central1-a` with one GPU node
//! (`numClusterGPUs` A100s of `A100_VRAM` GB) and one CPU node for the router.
//!
//! The cluster costs money from the moment `clusters create` starts, so every failure or
//! interrupt after that point deletes it again before the error is returned, and teardown
//! deletes it along with the READY disks named after it. A cluster of that name that already
//! exists is an error (another run's, or one still being deleted) rather than something to
//! wait for or to delete unasked.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{run_teardown, Ctx, InfraError};
use crate::config::Infra;
use crate::deploy::tools::ToolEnv;

/// The cluster's name.
pub const CLUSTER: &str = "lm-bench";
/// Its zone.
pub const ZONE: &str = "us-central1-a";
/// The zone's region (for the default subnetwork).
pub const REGION: &str = "us-central1";
/// The device plugin manifest, relative to the repository root.
pub const DEVICE_PLUGIN: &str = "1-infrastructure/lmcache-gke/nvidia-device-plugin.yml";

const SHORT: Duration = Duration::from_secs(120);
const CREATE: Duration = Duration::from_secs(2400);
const POOL: Duration = Duration::from_secs(1800);
const DELETE: Duration = Duration::from_secs(2400);

/// The GPU node pool's machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuMachine {
    /// e.g. `a2-ultragpu-4g`.
    pub machine_type: String,
    /// e.g. `nvidia-a100-80gb`.
    pub accelerator: &'static str,
    /// The GPUs per node.
    pub count: u32,
    /// Spot VMs (the 80 GB machines: on-demand capacity is rarely available).
    pub spot: bool,
}

/// The machine for `gpus` A100s of `vram` GB: 80 → `a2-ultragpu-<n>g` (spot), 40 →
/// `a2-highgpu-<n>g`.
pub fn gpu_machine(gpus: u32, vram: u32) -> Result<GpuMachine, String> {
    if ![1, 2, 4, 8].contains(&gpus) {
        return Err(format!("numClusterGPUs must be 1, 2, 4 or 8, got {gpus}"));
    }
    match vram {
        80 => Ok(GpuMachine {
            machine_type: format!("a2-ultragpu-{gpus}g"),
            accelerator: "nvidia-a100-80gb",
            count: gpus,
            spot: true,
        }),
        40 => Ok(GpuMachine {
            machine_type: format!("a2-highgpu-{gpus}g"),
            accelerator: "nvidia-tesla-a100",
            count: gpus,
            spot: false,
        }),
        v => Err(format!("A100_VRAM must be 40 or 80, got {v}")),
    }
}

/// The kubeconfig context `get-credentials` creates.
pub fn context_name(project: &str) -> String {
    format!("gke_{project}_{ZONE}_{CLUSTER}")
}

/// The arguments of `gcloud beta container clusters create` (a small default pool; the GPU
/// and CPU pools are added afterwards).
pub fn create_args(project: &str) -> Vec<String> {
    let network = format!("projects/{project}/global/networks/default");
    let subnet = format!("projects/{project}/regions/{REGION}/subnetworks/default");
    [
        "beta",
        "container",
        "clusters",
        "create",
        CLUSTER,
        "--project",
        project,
        "--zone",
        ZONE,
        "--tier",
        "standard",
        "--release-channel",
        "regular",
        // The default pool: small; it runs system pods only.
        "--machine-type",
        "e2-medium",
        "--num-nodes",
        "1",
        "--image-type",
        "COS_CONTAINERD",
        "--disk-type",
        "pd-balanced",
        "--disk-size",
        "30",
        "--metadata",
        "disable-legacy-endpoints=true",
        "--logging=SYSTEM,WORKLOAD",
        "--monitoring=SYSTEM,STORAGE,POD,DEPLOYMENT,STATEFULSET,DAEMONSET,HPA,CADVISOR,KUBELET",
        "--enable-managed-prometheus",
        "--enable-ip-alias",
        "--network",
        &network,
        "--subnetwork",
        &subnet,
        "--default-max-pods-per-node",
        "110",
        "--addons",
        "HorizontalPodAutoscaling,HttpLoadBalancing,GcePersistentDiskCsiDriver",
        "--enable-shielded-nodes",
        "--enable-autoupgrade",
        "--enable-autorepair",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The arguments of `gcloud beta container node-pools create gpu-pool`.
pub fn gpu_pool_args(project: &str, m: &GpuMachine) -> Vec<String> {
    let accel = format!("type={},count={}", m.accelerator, m.count);
    let mut args = pool_args(project, "gpu-pool", &m.machine_type);
    args.extend(
        [
            "--accelerator",
            &accel,
            "--disk-type",
            "pd-balanced",
            "--disk-size",
            "220",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    if m.spot {
        args.push("--spot".into());
    }
    args
}

/// The arguments of `gcloud beta container node-pools create cpu-pool` (the router's node).
pub fn cpu_pool_args(project: &str) -> Vec<String> {
    pool_args(project, "cpu-pool", "e2-standard-4")
}

fn pool_args(project: &str, pool: &str, machine: &str) -> Vec<String> {
    [
        "beta",
        "container",
        "node-pools",
        "create",
        pool,
        "--cluster",
        CLUSTER,
        "--project",
        project,
        "--zone",
        ZONE,
        "--machine-type",
        machine,
        "--num-nodes",
        "1",
        "--image-type",
        "COS_CONTAINERD",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Create and prepare the cluster; returns the project.
pub(super) async fn setup(infra: &Infra, root: &Path, ctx: &Ctx<'_>) -> Result<String, InfraError> {
    // Everything that can be checked for free is checked before the cluster exists.
    for tool in ["gcloud", "kubectl"] {
        if ctx.tools.find(tool).is_none() {
            return Err(InfraError::Tool {
                step: "GKE: tools".into(),
                source: crate::deploy::tools::ToolError::NotFound {
                    program: tool.into(),
                    hint: crate::deploy::tools::hint_for(tool)
                        .trim_end_matches("; ")
                        .into(),
                },
            });
        }
    }
    let plugin = root.join(DEVICE_PLUGIN);
    if !plugin.is_file() {
        return Err(InfraError::step_msg(
            "GKE: device plugin",
            format!("{} is missing", plugin.display()),
        ));
    }
    let gpus = infra.num_cluster_gpus.ok_or_else(|| {
        InfraError::step_msg(
            "GKE: machine type",
            "1-infrastructure.numClusterGPUs is required for LMCacheGKE (1, 2, 4 or 8)",
        )
    })?;
    let machine = gpu_machine(gpus, infra.a100_vram)
        .map_err(|m| InfraError::step_msg("GKE: machine type", m))?;

    let step = "GKE: read the project";
    let out = ctx
        .run(step, "gcloud", &["config", "get-value", "project"], SHORT)
        .await?;
    let project = out.stdout.trim().to_string();
    if project.is_empty() || project == "(unset)" {
        return Err(InfraError::step_msg(
            step,
            "no Google Cloud project is set: run `gcloud config set project <project-id>`",
        ));
    }

    let step = "GKE: look for an existing cluster";
    let filter = format!("--filter=name={CLUSTER}");
    let out = ctx
        .run(
            step,
            "gcloud",
            &[
                "container",
                "clusters",
                "list",
                &filter,
                "--format=value(name)",
                "--zone",
                ZONE,
                "--project",
                &project,
            ],
            SHORT,
        )
        .await?;
    if out.stdout.lines().any(|l| l.trim() == CLUSTER) {
        return Err(InfraError::step_msg(
            step,
            format!(
                "a GKE cluster `{CLUSTER}` already exists in {ZONE} (project {project}): delete it \
                 (`gcloud container clusters delete {CLUSTER} --zone {ZONE} --project {project}`) \
                 or wait until its deletion finishes, then run again"
            ),
        ));
    }

    // From here on the cluster may exist: any failure deletes it.
    tracing::info!(
        "creating GKE cluster {CLUSTER} in {ZONE} (project {project}) with {} × {} on {}{}",
        machine.count,
        machine.accelerator,
        machine.machine_type,
        if machine.spot { " (spot)" } else { "" }
    );
    ctx.tools.note(&format!(
        "GKE: creating cluster {CLUSTER}; from now on a failure deletes it"
    ));
    match create_and_prepare(&project, &machine, &plugin, ctx).await {
        Ok(()) => Ok(project),
        Err(error) => {
            let cleanup = match delete_cluster(ctx.tools, &project).await {
                Ok(()) => format!("cluster {CLUSTER} was deleted again"),
                Err(e) => format!(
                    "deleting cluster {CLUSTER} failed too ({e}); delete it by hand: \
                     `gcloud container clusters delete {CLUSTER} --zone {ZONE} --project {project}`"
                ),
            };
            Err(InfraError::RolledBack {
                error: Box::new(error),
                cleanup,
            })
        }
    }
}

async fn create_and_prepare(
    project: &str,
    machine: &GpuMachine,
    plugin: &Path,
    ctx: &Ctx<'_>,
) -> Result<(), InfraError> {
    let run_args = |step: &'static str, args: Vec<String>, timeout: Duration| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ctx.run(step, "gcloud", &refs, timeout).await
    };
    run_args("GKE: create cluster", create_args(project), CREATE).await?;
    run_args(
        "GKE: create node pool gpu-pool",
        gpu_pool_args(project, machine),
        POOL,
    )
    .await?;
    run_args(
        "GKE: create node pool cpu-pool",
        cpu_pool_args(project),
        POOL,
    )
    .await?;
    ctx.run(
        "GKE: get credentials",
        "gcloud",
        &[
            "container",
            "clusters",
            "get-credentials",
            CLUSTER,
            "--zone",
            ZONE,
            "--project",
            project,
        ],
        SHORT,
    )
    .await?;

    let context = context_name(project);
    let (gpu_nodes, cpu_nodes) = wait_for_nodes(ctx, &context).await?;
    for (nodes, pool) in [(gpu_nodes, "gpu-pool"), (cpu_nodes, "cpu-pool")] {
        let label = format!("pool={pool}");
        for node in nodes {
            ctx.run(
                "GKE: label nodes",
                "kubectl",
                &[
                    "--context",
                    &context,
                    "label",
                    "nodes",
                    &node,
                    &label,
                    "--overwrite",
                ],
                SHORT,
            )
            .await?;
        }
    }
    let plugin = plugin.to_string_lossy();
    ctx.run(
        "GKE: apply the NVIDIA device plugin",
        "kubectl",
        &["--context", &context, "apply", "-f", &plugin],
        SHORT,
    )
    .await?;
    Ok(())
}

/// Wait until the nodes of both pools are registered; their names (without `node/`).
async fn wait_for_nodes(
    ctx: &Ctx<'_>,
    context: &str,
) -> Result<(Vec<String>, Vec<String>), InfraError> {
    let step = "GKE: list nodes";
    let deadline = Instant::now() + ctx.waits.nodes;
    loop {
        let out = ctx
            .run(
                step,
                "kubectl",
                &["--context", context, "get", "nodes", "-o", "name"],
                SHORT,
            )
            .await?;
        let names: Vec<String> = out
            .stdout
            .split_whitespace()
            .map(|n| n.strip_prefix("node/").unwrap_or(n).to_string())
            .collect();
        let of = |pool: &str| -> Vec<String> {
            names.iter().filter(|n| n.contains(pool)).cloned().collect()
        };
        let (gpu, cpu) = (of("gpu-pool"), of("cpu-pool"));
        if !gpu.is_empty() && !cpu.is_empty() {
            return Ok((gpu, cpu));
        }
        if Instant::now() >= deadline {
            return Err(InfraError::step_msg(
                step,
                format!(
                    "after {}s the cluster has no node of {}; nodes: [{}]",
                    ctx.waits.nodes.as_secs(),
                    if gpu.is_empty() {
                        "gpu-pool"
                    } else {
                        "cpu-pool"
                    },
                    names.join(", ")
                ),
            ));
        }
        ctx.sleep(step, ctx.waits.poll).await?;
    }
}

async fn delete_cluster(tools: &ToolEnv, project: &str) -> Result<(), InfraError> {
    tracing::info!("deleting GKE cluster {CLUSTER}");
    let args = [
        "container",
        "clusters",
        "delete",
        CLUSTER,
        "--zone",
        ZONE,
        "--project",
        project,
        "--quiet",
    ];
    run_teardown(
        tools,
        "GKE teardown: delete cluster",
        "gcloud",
        &args,
        DELETE,
    )
    .await?;
    Ok(())
}

/// Delete the cluster, then the READY disks whose name contains `lm-bench`.
pub(super) async fn teardown(tools: &ToolEnv, project: &str) -> Result<(), InfraError> {
    delete_cluster(tools, project).await.map_err(|e| InfraError::Step {
        step: e.step().to_string(),
        message: format!(
            "{e}\ndelete it by hand: `gcloud container clusters delete {CLUSTER} --zone {ZONE} --project {project}`"
        ),
    })?;
    let step = "GKE teardown: delete left-over disks";
    let filter = format!("--filter=name~{CLUSTER} AND status=READY");
    let list = [
        "compute",
        "disks",
        "list",
        "--project",
        project,
        &filter,
        "--format=value(name,zone.basename())",
    ];
    let out = run_teardown(tools, step, "gcloud", &list, SHORT).await?;
    for line in out.stdout.lines() {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(zone)) = (parts.next(), parts.next()) else {
            continue;
        };
        let delete = [
            "compute",
            "disks",
            "delete",
            name,
            "--zone",
            zone,
            "--project",
            project,
            "--quiet",
        ];
        run_teardown(tools, step, "gcloud", &delete, SHORT).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_types_follow_gpu_count_and_memory() {
        let m = gpu_machine(4, 80).unwrap();
        assert_eq!(m.machine_type, "a2-ultragpu-4g");
        assert_eq!(m.accelerator, "nvidia-a100-80gb");
        assert!(m.spot);
        let m = gpu_machine(8, 40).unwrap();
        assert_eq!(m.machine_type, "a2-highgpu-8g");
        assert_eq!(m.accelerator, "nvidia-tesla-a100");
        assert!(!m.spot);
        assert!(gpu_machine(3, 80).unwrap_err().contains("1, 2, 4 or 8"));
        assert!(gpu_machine(2, 24).unwrap_err().contains("40 or 80"));
        let args = gpu_pool_args("p", &gpu_machine(2, 40).unwrap()).join(" ");
        assert!(
            args.contains("--accelerator type=nvidia-tesla-a100,count=2"),
            "{args}"
        );
        assert!(!args.contains("--spot"));
        assert_eq!(context_name("p"), "gke_p_us-central1-a_lm-bench");
    }
}
