//! The infrastructure step of `1-infrastructure.Location`: set up before the first baseline,
//! torn down after the last one (and after a failure or an interrupt).
//!
//! [`setup`] returns an [`InfraGuard`] that knows what was created and which kubeconfig
//! context baselines must use; [`InfraGuard::teardown`] undoes what needs undoing.
//!
//! | Location | set-up | teardown |
//! |---|---|---|
//! | `Local-Flat`, `NoBench` | nothing | nothing |
//! | `LocalMinikube` | [`minikube`]: install missing tools, reuse a healthy cluster or start one (with GPUs when `nvidia-smi` exists) | left running unless `LMBENCH_MINIKUBE_DELETE=1` |
//! | `LMCacheGKE` | [`gke`]: create cluster `lm-bench` with a GPU and a CPU node pool | delete the cluster and its left-over disks |
//!
//! Every tool call goes through [`ToolEnv`], so the commands and their output land in one
//! log, and every error names the step that failed and what the tool said.

pub mod gke;
pub mod minikube;

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{Infra, Location};
use crate::deploy::tools::{RunOpts, ToolEnv, ToolError, ToolOutput};

/// Why the infrastructure step failed.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    /// A tool the step ran failed (not found, non-zero exit, timeout).
    #[error("{step}: {source}")]
    Tool {
        /// The step, e.g. `GKE: create node pool gpu-pool`.
        step: String,
        /// What the tool did.
        #[source]
        source: ToolError,
    },
    /// The step found something it cannot go on with.
    #[error("{step}: {message}")]
    Step {
        /// The step.
        step: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Cancelled (Ctrl-C) during a step.
    #[error("{step}: interrupted")]
    Cancelled {
        /// The step.
        step: String,
    },
    /// A set-up step failed after something costly was created, and it was removed again
    /// (or removing it failed too, as `cleanup` says).
    #[error("{error}; {cleanup}")]
    RolledBack {
        /// The original failure.
        error: Box<InfraError>,
        /// What the clean-up did.
        cleanup: String,
    },
}

impl InfraError {
    /// The step that failed.
    pub fn step(&self) -> &str {
        match self {
            InfraError::Tool { step, .. }
            | InfraError::Step { step, .. }
            | InfraError::Cancelled { step } => step,
            InfraError::RolledBack { error, .. } => error.step(),
        }
    }

    /// Was it an interrupt?
    pub fn is_cancelled(&self) -> bool {
        match self {
            InfraError::Cancelled { .. } => true,
            InfraError::RolledBack { error, .. } => error.is_cancelled(),
            _ => false,
        }
    }

    fn step_msg(step: &str, message: impl Into<String>) -> Self {
        InfraError::Step {
            step: step.to_string(),
            message: message.into(),
        }
    }
}

/// How long set-up waits for things that come up in the background. The defaults suit real
/// clusters; tests shorten them.
#[derive(Debug, Clone)]
pub struct Waits {
    /// Between two checks.
    pub poll: Duration,
    /// For a node to report allocatable `nvidia.com/gpu` after the device plugin is applied.
    pub gpus: Duration,
    /// For the GKE node pools' nodes to be registered after `get-credentials`.
    pub nodes: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            poll: Duration::from_secs(5),
            gpus: Duration::from_secs(180),
            nodes: Duration::from_secs(300),
        }
    }
}

/// What set-up created, and how to reach it.
#[derive(Debug)]
pub struct InfraGuard {
    location: Location,
    kind: Kind,
    done: bool,
}

#[derive(Debug)]
enum Kind {
    Nothing,
    Minikube { gpus: bool, delete: bool },
    Gke { project: String, context: String },
}

impl InfraGuard {
    /// A guard for infrastructure that is assumed to exist already (`--start-from 2`):
    /// nothing is torn down. Minikube baselines use the `minikube` context; GKE ones the
    /// kubeconfig's current context.
    pub fn existing(location: Location) -> Self {
        let kind = match location {
            Location::LocalMinikube => Kind::Minikube {
                gpus: false,
                delete: false,
            },
            _ => Kind::Nothing,
        };
        InfraGuard {
            location,
            kind,
            done: false,
        }
    }

    /// The Location it was set up for.
    pub fn location(&self) -> Location {
        self.location
    }

    /// The kubeconfig context Kubernetes baselines must use (`minikube`,
    /// `gke_<project>_us-central1-a_lm-bench`); `None` for the current context or no cluster.
    pub fn kube_context(&self) -> Option<&str> {
        match &self.kind {
            Kind::Nothing => None,
            Kind::Minikube { .. } => Some(minikube::CONTEXT),
            Kind::Gke { context, .. } => Some(context),
        }
    }

    /// Whether the cluster was set up with GPUs (GKE always is).
    pub fn gpus(&self) -> bool {
        match &self.kind {
            Kind::Nothing => false,
            Kind::Minikube { gpus, .. } => *gpus,
            Kind::Gke { .. } => true,
        }
    }

    /// For LocalMinikube: delete the cluster at teardown (`minikube delete`) instead of
    /// leaving it running. [`setup`] sets it when `LMBENCH_MINIKUBE_DELETE=1`.
    pub fn set_delete_minikube(&mut self, delete: bool) {
        if let Kind::Minikube { delete: d, .. } = &mut self.kind {
            *d = delete;
        }
    }

    /// Undo what set-up created: delete the GKE cluster and its left-over disks; delete the
    /// minikube cluster only when asked to (otherwise say in the log that it was kept).
    pub async fn teardown(mut self, tools: &ToolEnv) -> Result<(), InfraError> {
        self.done = true;
        let kind = std::mem::replace(&mut self.kind, Kind::Nothing);
        match kind {
            Kind::Nothing => Ok(()),
            Kind::Minikube { delete, .. } => minikube::teardown(tools, delete).await,
            Kind::Gke { project, .. } => gke::teardown(tools, &project).await,
        }
    }
}

impl Drop for InfraGuard {
    fn drop(&mut self) {
        if !self.done {
            if let Kind::Gke { project, .. } = &self.kind {
                tracing::warn!(
                    "GKE cluster {} was not torn down and keeps costing money; delete it with \
                     `gcloud container clusters delete {} --zone {} --project {project}`",
                    gke::CLUSTER,
                    gke::CLUSTER,
                    gke::ZONE
                );
            }
        }
    }
}

/// Set up `infra` (assets under `root/1-infrastructure/`), with the default [`Waits`].
/// `cancel` stops the step that is running; whatever was created is removed again.
pub async fn setup(
    infra: &Infra,
    root: &Path,
    tools: &ToolEnv,
    cancel: &CancellationToken,
) -> Result<InfraGuard, InfraError> {
    setup_with(infra, root, tools, cancel, &Waits::default()).await
}

/// [`setup`] with explicit waits.
pub async fn setup_with(
    infra: &Infra,
    root: &Path,
    tools: &ToolEnv,
    cancel: &CancellationToken,
    waits: &Waits,
) -> Result<InfraGuard, InfraError> {
    let ctx = Ctx {
        tools,
        cancel,
        waits,
    };
    let kind = match infra.location {
        Location::NoBench | Location::LocalFlat => Kind::Nothing,
        Location::LocalMinikube => {
            let gpus = minikube::setup(root, &ctx).await?;
            Kind::Minikube {
                gpus,
                delete: std::env::var("LMBENCH_MINIKUBE_DELETE").is_ok_and(|v| v.trim() == "1"),
            }
        }
        Location::LmcacheGke => {
            let project = gke::setup(infra, root, &ctx).await?;
            let context = gke::context_name(&project);
            Kind::Gke { project, context }
        }
    };
    Ok(InfraGuard {
        location: infra.location,
        kind,
        done: false,
    })
}

/// What every step needs: the tools, the interrupt, the waits.
pub(crate) struct Ctx<'a> {
    pub(crate) tools: &'a ToolEnv,
    pub(crate) cancel: &'a CancellationToken,
    pub(crate) waits: &'a Waits,
}

impl Ctx<'_> {
    fn check_cancel(&self, step: &str) -> Result<(), InfraError> {
        if self.cancel.is_cancelled() {
            return Err(InfraError::Cancelled { step: step.into() });
        }
        Ok(())
    }

    /// Run a tool that must succeed.
    async fn run(
        &self,
        step: &str,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<ToolOutput, InfraError> {
        self.run_opts(step, program, args, RunOpts::new().timeout(timeout))
            .await
    }

    async fn run_opts(
        &self,
        step: &str,
        program: &str,
        args: &[&str],
        opts: RunOpts,
    ) -> Result<ToolOutput, InfraError> {
        self.call(step, program, args, opts, true).await
    }

    /// Run a tool whose exit status is the answer.
    async fn probe(
        &self,
        step: &str,
        program: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<ToolOutput, InfraError> {
        let opts = RunOpts::new().timeout(timeout);
        self.call(step, program, args, opts, false).await
    }

    /// Run a tool unless interrupted already, and stop it on an interrupt; with
    /// `must_succeed`, a non-zero exit is an error ([`ToolEnv::run`]), otherwise part of the
    /// output ([`ToolEnv::output`]).
    async fn call(
        &self,
        step: &str,
        program: &str,
        args: &[&str],
        opts: RunOpts,
        must_succeed: bool,
    ) -> Result<ToolOutput, InfraError> {
        self.check_cancel(step)?;
        let (args, opts) = (strings(args), opts.cancel(self.cancel));
        let out = if must_succeed {
            self.tools.run(program, &args, opts).await
        } else {
            self.tools.output(program, &args, opts).await
        };
        out.map_err(tool_err(step))
    }

    /// Sleep, unless interrupted.
    async fn sleep(&self, step: &str, d: Duration) -> Result<(), InfraError> {
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = self.cancel.cancelled() => Err(InfraError::Cancelled { step: step.into() }),
        }
    }
}

/// Run a tool that must succeed during teardown, which has no interrupt to honour (it is what
/// runs after one); a failure is an error of `step`.
async fn run_teardown(
    tools: &ToolEnv,
    step: &str,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<ToolOutput, InfraError> {
    tools
        .run(program, &strings(args), RunOpts::new().timeout(timeout))
        .await
        .map_err(|source| InfraError::Tool {
            step: step.into(),
            source,
        })
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn tool_err(step: &str) -> impl FnOnce(ToolError) -> InfraError + '_ {
    move |source| {
        if source.is_cancelled() {
            InfraError::Cancelled { step: step.into() }
        } else {
            InfraError::Tool {
                step: step.into(),
                source,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_flat_and_nobench_do_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // An empty search path: any tool call would fail.
        let tools = ToolEnv::from_env(dir.path().join("infra.log"))
            .with_path(dir.path().join("nothing"))
            .with_install_dir(None);
        for location in [Location::LocalFlat, Location::NoBench] {
            let infra = Infra {
                location,
                num_cluster_gpus: None,
                a100_vram: 40,
                json: serde_json::Value::Null,
            };
            let guard = setup(&infra, dir.path(), &tools, &CancellationToken::new())
                .await
                .unwrap();
            assert_eq!(guard.location(), location);
            assert_eq!(guard.kube_context(), None);
            guard.teardown(&tools).await.unwrap();
        }
        assert!(!dir.path().join("infra.log").exists());
    }

    #[test]
    fn existing_guard_uses_the_minikube_context() {
        let g = InfraGuard::existing(Location::LocalMinikube);
        assert_eq!(g.kube_context(), Some("minikube"));
        assert_eq!(
            InfraGuard::existing(Location::LmcacheGke).kube_context(),
            None
        );
    }
}
