//! The infrastructure steps and the helm wrapper against fake command-line tools.
//!
//! Each fake (`minikube`, `kubectl`, `helm`, `gcloud`, `docker`, `nvidia-smi`) is a small bash
//! script in a private search path that appends its argv to a calls file and answers what the
//! step reads. The tests assert the recorded call sequence: which commands ran, with which
//! flags, in which order, and what was cleaned up after a failure. Fakes use only bash
//! built-ins (or absolute paths), since their PATH holds nothing but the other fakes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lmbench::config::{Infra, Location};
use lmbench::deploy::helm::{substituted_copy, Helm};
use lmbench::deploy::tools::ToolEnv;
use lmbench::infra::{setup, setup_with, InfraError, InfraGuard, Waits};
use tokio_util::sync::CancellationToken;

struct Fakes {
    _dir: tempfile::TempDir,
    /// A repository root with `1-infrastructure/` assets.
    root: PathBuf,
    /// The search path: the fakes only.
    bin: PathBuf,
    /// The install folder handed to install scripts.
    inst: PathBuf,
    /// One line per fake call.
    calls: PathBuf,
    /// Flag files the fakes read and write.
    state: PathBuf,
    /// The tool log.
    log: PathBuf,
}

impl Fakes {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().to_path_buf();
        let f = Fakes {
            root: p.join("repo"),
            bin: p.join("bin"),
            inst: p.join("inst"),
            calls: p.join("calls.txt"),
            state: p.join("state"),
            log: p.join("suite").join("pod-logs").join("infra.log"),
            _dir: dir,
        };
        for d in [&f.bin, &f.inst, &f.state] {
            std::fs::create_dir_all(d).unwrap();
        }
        for loc in ["local-minikube", "lmcache-gke"] {
            let d = f.root.join("1-infrastructure").join(loc);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("nvidia-device-plugin.yml"), "kind: DaemonSet\n").unwrap();
        }
        f
    }

    /// A fake that records `<name> <args>` and then runs `body`.
    fn script(&self, name: &str, body: &str) -> String {
        format!(
            "#!/bin/bash\necho \"{name} $*\" >> '{}'\nSTATE='{}'\n{body}\n",
            self.calls.display(),
            self.state.display()
        )
    }

    fn write_exe(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn tool(&self, name: &str, body: &str) {
        Self::write_exe(&self.bin.join(name), &self.script(name, body));
    }

    fn tools(&self) -> ToolEnv {
        ToolEnv::from_env(&self.log)
            .with_path(&self.bin)
            .with_install_dir(Some(self.inst.clone()))
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn plugin(&self, loc: &str) -> String {
        self.root
            .join("1-infrastructure")
            .join(loc)
            .join("nvidia-device-plugin.yml")
            .display()
            .to_string()
    }

    /// Fakes with [`Fakes::minikube_tools`] in place.
    fn for_minikube(with_gpu: bool) -> Self {
        let f = Fakes::new();
        f.minikube_tools(with_gpu);
        f
    }

    /// Fakes with [`Fakes::gke_tools`] in place.
    fn for_gke(kubectl: &str) -> Self {
        let f = Fakes::new();
        f.gke_tools(kubectl);
        f
    }

    /// Set up `infra` against these fakes, without an interrupt.
    async fn setup(&self, infra: Infra) -> Result<InfraGuard, InfraError> {
        setup(&infra, &self.root, &self.tools(), &CancellationToken::new()).await
    }

    /// [`Fakes::setup`], expecting it to fail in `step`; returns the error.
    async fn setup_fails(&self, infra: Infra, step: &str) -> InfraError {
        let err = self.setup(infra).await.unwrap_err();
        assert_eq!(err.step(), step, "{err}");
        err
    }

    /// The fakes a LocalMinikube set-up talks to. `minikube status` fails until
    /// `minikube start` ran (or `state/started` exists).
    fn minikube_tools(&self, with_gpu: bool) {
        self.tool(
            "minikube",
            r#"case "$1" in
  status) if [[ -e "$STATE/started" ]]; then echo "host: Running"; exit 0; fi
          echo "host: Stopped"; exit 7;;
  start) : > "$STATE/started"; echo "Done! kubectl is now configured";;
esac"#,
        );
        self.tool("kubectl", KUBECTL_MINIKUBE);
        self.tool("helm", "exit 0");
        self.tool("docker", r#"[[ "$1" == info ]] && echo 27.3.1; exit 0"#);
        if with_gpu {
            self.tool("nvidia-smi", "exit 0");
        }
    }

    /// After a failed GKE set-up: the last call deleted the cluster, and no call mentions
    /// `not_reached` (a step after the one that failed).
    fn assert_cluster_deleted_before(&self, not_reached: &str) {
        let calls = self.calls();
        assert_eq!(calls.last().unwrap(), GKE_DELETE, "{calls:?}");
        assert!(!calls.iter().any(|c| c.contains(not_reached)), "{calls:?}");
    }

    /// The calls of a LocalMinikube set-up with GPUs, where `cluster` is the call that found
    /// the cluster healthy or started it.
    fn minikube_gpu_calls(&self, cluster: &str) -> Vec<String> {
        vec![
            "docker info --format {{.ServerVersion}}".to_string(),
            "minikube status".into(),
            cluster.into(),
            "minikube update-context".into(),
            format!(
                "kubectl --context minikube apply -f {}",
                self.plugin("local-minikube")
            ),
            GPU_QUERY.into(),
        ]
    }

    /// The fakes a GKE set-up talks to; `kubectl` is given separately.
    fn gke_tools(&self, kubectl: &str) {
        self.tool(
            "gcloud",
            r#"case "$*" in
  "config get-value project") echo proj;;
  "container clusters list"*) [[ -e "$STATE/existing" ]] && echo lm-bench; exit 0;;
  "beta container clusters create"*) [[ -e "$STATE/slow-create" ]] && /bin/sleep 30; echo "Created";;
  "compute disks list"*) printf 'gke-lm-bench-pvc-1\tus-central1-a\n';;
esac
exit 0"#,
        );
        self.tool("kubectl", kubectl);
    }
}

const KUBECTL_MINIKUBE: &str = r#"case "$*" in
  *cluster-info*) echo "Kubernetes control plane is running at https://192.168.49.2:8443";;
  *allocatable*) echo -n "1";;
esac
exit 0"#;

const KUBECTL_GKE: &str = r#"case "$*" in
  *"get nodes -o name"*) echo node/gke-lm-bench-default-pool-1
                         echo node/gke-lm-bench-gpu-pool-1
                         echo node/gke-lm-bench-cpu-pool-1;;
esac
exit 0"#;

fn infra(location: Location, gpus: Option<u32>, vram: u32) -> Infra {
    Infra {
        location,
        num_cluster_gpus: gpus,
        a100_vram: vram,
        json: serde_json::Value::Null,
    }
}

/// The LocalMinikube infrastructure every minikube test sets up.
fn minikube() -> Infra {
    infra(Location::LocalMinikube, None, 40)
}

/// LMCacheGKE infrastructure with `gpus` A100s of `vram` GB.
fn gke(gpus: u32, vram: u32) -> Infra {
    infra(Location::LmcacheGke, Some(gpus), vram)
}

fn quick() -> Waits {
    Waits {
        poll: Duration::from_millis(20),
        gpus: Duration::from_millis(200),
        nodes: Duration::from_millis(200),
    }
}

const GPU_QUERY: &str =
    r"kubectl --context minikube get nodes -o jsonpath={..allocatable.nvidia\.com/gpu}";

#[tokio::test]
async fn minikube_healthy_cluster_is_reused() {
    let f = Fakes::for_minikube(true);
    std::fs::write(f.state.join("started"), "").unwrap();
    let guard = f.setup(minikube()).await.unwrap();
    assert_eq!(guard.kube_context(), Some("minikube"));
    assert!(guard.gpus());
    assert_eq!(
        f.calls(),
        f.minikube_gpu_calls("kubectl --context minikube cluster-info --request-timeout=10s")
    );
    assert!(f.log().contains("reusing it"), "{}", f.log());

    // Teardown keeps the cluster by default, and says so.
    guard.teardown(&f.tools()).await.unwrap();
    assert!(!f.calls().iter().any(|c| c.contains("delete")));
    assert!(f.log().contains("minikube cluster left running"));
}

#[tokio::test]
async fn minikube_fresh_start_with_gpus() {
    let f = Fakes::for_minikube(true);
    let mut guard = f.setup(minikube()).await.unwrap();
    assert!(guard.gpus());
    assert_eq!(f.calls(), f.minikube_gpu_calls("minikube start --driver=docker --container-runtime=docker --gpus=all --memory=no-limit --cpus=no-limit"));
    // The log has each command and the fake's output.
    let log = f.log();
    assert!(log.contains("$ minikube start --driver=docker"), "{log}");
    assert!(
        log.contains("  out| Done! kubectl is now configured"),
        "{log}"
    );

    guard.set_delete_minikube(true);
    guard.teardown(&f.tools()).await.unwrap();
    assert_eq!(f.calls().last().unwrap(), "minikube delete");
}

#[tokio::test]
async fn minikube_without_nvidia_smi_starts_without_gpus() {
    let f = Fakes::for_minikube(false);
    let guard = f.setup(minikube()).await.unwrap();
    assert!(!guard.gpus());
    assert_eq!(
        f.calls(),
        vec![
            "docker info --format {{.ServerVersion}}",
            "minikube status",
            "minikube start --driver=docker --container-runtime=docker --memory=no-limit --cpus=no-limit",
            "minikube update-context",
        ]
    );
    assert!(f.log().contains("starting minikube without GPUs"));
}

#[tokio::test]
async fn minikube_gpu_check_fails_when_no_node_reports_gpus() {
    let f = Fakes::for_minikube(true);
    f.tool("kubectl", "exit 0"); // allocatable is empty
    std::fs::write(f.state.join("started"), "").unwrap();
    let err = setup_with(
        &minikube(),
        &f.root,
        &f.tools(),
        &CancellationToken::new(),
        &quick(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.step(), "minikube: check GPUs");
    let msg = err.to_string();
    assert!(
        msg.contains("no node reports allocatable nvidia.com/gpu"),
        "{msg}"
    );
    assert!(msg.contains("minikube delete"), "{msg}");
    let polls = f
        .calls()
        .iter()
        .filter(|c| c.contains("allocatable"))
        .count();
    assert!(polls >= 2, "polled {polls} times");
}

#[tokio::test]
async fn missing_tool_is_installed_by_its_script() {
    let f = Fakes::for_minikube(false);
    // kubectl is missing from the path; its install script copies it into the install dir.
    std::fs::remove_file(f.bin.join("kubectl")).unwrap();
    let staged = f.state.join("kubectl");
    Fakes::write_exe(&staged, &f.script("kubectl", KUBECTL_MINIKUBE));
    let script = f
        .root
        .join("1-infrastructure/local-minikube/install-kubectl.sh");
    Fakes::write_exe(
        &script,
        &format!(
            "#!/bin/bash\necho \"install-kubectl.sh into=$LMBENCH_INSTALL_DIR\" >> '{}'\n/bin/cp '{}' \"$LMBENCH_INSTALL_DIR/kubectl\"\n",
            f.calls.display(),
            staged.display()
        ),
    );
    std::fs::write(f.state.join("started"), "").unwrap();
    f.setup(minikube()).await.unwrap();
    let calls = f.calls();
    assert_eq!(
        calls[0],
        format!("install-kubectl.sh into={}", f.inst.display())
    );
    // The installed copy is the one used afterwards.
    assert!(
        calls
            .contains(&"kubectl --context minikube cluster-info --request-timeout=10s".to_string()),
        "{calls:?}"
    );
    assert!(f.inst.join("kubectl").exists());

    // helm missing and no install script: the error names the script.
    std::fs::remove_file(f.bin.join("helm")).unwrap();
    let err = f.setup_fails(minikube(), "minikube: install helm").await;
    assert!(
        err.to_string().contains("install-helm.sh is missing"),
        "{err}"
    );
}

#[tokio::test]
async fn minikube_without_docker_is_a_clear_error() {
    let f = Fakes::for_minikube(true);
    std::fs::remove_file(f.bin.join("docker")).unwrap();
    let err = f.setup_fails(minikube(), "minikube: docker").await;
    assert!(err.to_string().contains("install Docker Engine"), "{err}");
    assert!(f.calls().is_empty(), "{:?}", f.calls());
}

fn gke_prefix() -> Vec<String> {
    vec![
        "gcloud config get-value project".into(),
        "gcloud container clusters list --filter=name=lm-bench --format=value(name) --zone us-central1-a --project proj".into(),
    ]
}

const CTX: &str = "gke_proj_us-central1-a_lm-bench";

/// How the fakes see the GKE cluster deleted: at teardown, and when set-up fails after
/// creating it.
const GKE_DELETE: &str =
    "gcloud container clusters delete lm-bench --zone us-central1-a --project proj --quiet";

#[tokio::test]
async fn gke_happy_path_and_teardown() {
    let f = Fakes::for_gke(KUBECTL_GKE);
    let guard = f.setup(gke(4, 80)).await.unwrap();
    assert_eq!(guard.kube_context(), Some(CTX));
    let calls = f.calls();
    assert_eq!(calls[..2], gke_prefix()[..]);
    let create = &calls[2];
    assert!(
        create.starts_with(
            "gcloud beta container clusters create lm-bench --project proj --zone us-central1-a "
        ),
        "{create}"
    );
    for flag in [
        "--release-channel regular",
        "--machine-type e2-medium --num-nodes 1",
        "--image-type COS_CONTAINERD",
        "--enable-ip-alias",
        "--network projects/proj/global/networks/default",
        "--subnetwork projects/proj/regions/us-central1/subnetworks/default",
        "--addons HorizontalPodAutoscaling,HttpLoadBalancing,GcePersistentDiskCsiDriver",
    ] {
        assert!(create.contains(flag), "{flag} missing in {create}");
    }
    assert_eq!(
        calls[3..],
        [
            "gcloud beta container node-pools create gpu-pool --cluster lm-bench --project proj --zone us-central1-a --machine-type a2-ultragpu-4g --num-nodes 1 --image-type COS_CONTAINERD --accelerator type=nvidia-a100-80gb,count=4 --disk-type pd-balanced --disk-size 220 --spot".to_string(),
            "gcloud beta container node-pools create cpu-pool --cluster lm-bench --project proj --zone us-central1-a --machine-type e2-standard-4 --num-nodes 1 --image-type COS_CONTAINERD".into(),
            "gcloud container clusters get-credentials lm-bench --zone us-central1-a --project proj".into(),
            format!("kubectl --context {CTX} get nodes -o name"),
            format!("kubectl --context {CTX} label nodes gke-lm-bench-gpu-pool-1 pool=gpu-pool --overwrite"),
            format!("kubectl --context {CTX} label nodes gke-lm-bench-cpu-pool-1 pool=cpu-pool --overwrite"),
            format!("kubectl --context {CTX} apply -f {}", f.plugin("lmcache-gke")),
        ][..]
    );

    let before = calls.len();
    guard.teardown(&f.tools()).await.unwrap();
    assert_eq!(
        f.calls()[before..],
        [
            GKE_DELETE,
            "gcloud compute disks list --project proj --filter=name~lm-bench AND status=READY --format=value(name,zone.basename())",
            "gcloud compute disks delete gke-lm-bench-pvc-1 --zone us-central1-a --project proj --quiet",
        ][..]
    );
}

#[tokio::test]
async fn gke_40gb_uses_highgpu_machines_without_spot() {
    let f = Fakes::for_gke(KUBECTL_GKE);
    let guard = f.setup(gke(2, 40)).await.unwrap();
    let gpu_pool = f.calls()[3].clone();
    assert!(
        gpu_pool.contains("--machine-type a2-highgpu-2g"),
        "{gpu_pool}"
    );
    assert!(
        gpu_pool.contains("type=nvidia-tesla-a100,count=2"),
        "{gpu_pool}"
    );
    assert!(!gpu_pool.contains("--spot"), "{gpu_pool}");
    guard.teardown(&f.tools()).await.unwrap();
}

#[tokio::test]
async fn gke_failure_after_create_deletes_the_cluster() {
    let f = Fakes::for_gke(
        r#"case "$*" in
  *"get nodes -o name"*) echo node/gke-lm-bench-gpu-pool-1; echo node/gke-lm-bench-cpu-pool-1;;
  *label*) echo 'Error from server (Forbidden): nodes "gke-lm-bench-gpu-pool-1" is forbidden' >&2; exit 1;;
esac
exit 0"#,
    );
    let err = f.setup_fails(gke(4, 80), "GKE: label nodes").await;
    assert!(matches!(err, InfraError::RolledBack { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("GKE: label nodes: `kubectl --context"),
        "{msg}"
    );
    assert!(msg.contains("is forbidden"), "{msg}");
    assert!(msg.contains("exit status: 1"), "{msg}");
    assert!(msg.contains("cluster lm-bench was deleted again"), "{msg}");
    // No device plugin after the failed step.
    f.assert_cluster_deleted_before("apply");
}

#[tokio::test]
async fn gke_interrupt_during_create_deletes_the_cluster() {
    let f = Fakes::for_gke(KUBECTL_GKE);
    std::fs::write(f.state.join("slow-create"), "").unwrap();
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.cancel();
    });
    let start = std::time::Instant::now();
    let err = setup(&gke(1, 80), &f.root, &f.tools(), &cancel)
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(err.is_cancelled(), "{err:?}");
    assert_eq!(err.step(), "GKE: create cluster");
    f.assert_cluster_deleted_before("node-pools");
}

#[tokio::test]
async fn gke_existing_cluster_is_an_error_and_nothing_is_created() {
    let f = Fakes::for_gke(KUBECTL_GKE);
    std::fs::write(f.state.join("existing"), "").unwrap();
    let err = f
        .setup_fails(gke(4, 80), "GKE: look for an existing cluster")
        .await;
    let msg = err.to_string();
    assert!(msg.contains("`lm-bench` already exists"), "{msg}");
    assert!(
        msg.contains("gcloud container clusters delete lm-bench"),
        "{msg}"
    );
    assert_eq!(f.calls(), gke_prefix());
}

#[tokio::test]
async fn gke_without_project_is_an_error() {
    let f = Fakes::new();
    f.tool("gcloud", "echo '(unset)' >&2; exit 0");
    f.tool("kubectl", "exit 0");
    let err = f.setup_fails(gke(1, 40), "GKE: read the project").await;
    assert!(
        err.to_string().contains("gcloud config set project"),
        "{err}"
    );
    assert_eq!(f.calls(), ["gcloud config get-value project"]);
}

#[tokio::test]
async fn helm_wrapper_argv_and_private_values_copy() {
    let f = Fakes::new();
    // The fake prints the values file it was given, as a chatty tool might.
    f.tool(
        "helm",
        r#"if [[ "$1" == list ]]; then
  echo '[{"name":"vllm","namespace":"bench","revision":"2","status":"deployed","chart":"vllm-stack-0.1.5","app_version":"1"}]'
  exit 0
fi
prev=""
for a in "$@"; do
  if [[ "$prev" == -f ]]; then while IFS= read -r l; do echo "$l"; done < "$a"; fi
  prev="$a"
done"#,
    );
    let token = "hf_FakeTokenForTheHelmTest42";
    let tools = f.tools().redacting(token);
    let src = f.root.join("values.yaml");
    std::fs::write(&src, "servingEngineSpec:\n  hf_token: <YOUR_HF_TOKEN>\n").unwrap();

    let copy = substituted_copy(&src, &[("<YOUR_HF_TOKEN>", token)]).unwrap();
    let path = copy.path().to_path_buf();
    assert!(std::fs::read_to_string(&path).unwrap().contains(token));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let helm = Helm::new(&tools);
    let out = helm
        .upgrade_install(
            "vllm",
            "production-stack/helm",
            Some("bench"),
            &path,
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    assert!(
        out.stdout.contains(token),
        "the caller gets the real output"
    );
    helm.uninstall("vllm", Some("bench"), true).await.unwrap();
    let ctx_helm = Helm::new(&tools).with_kube_context(Some("minikube"));
    ctx_helm.uninstall("old", None, false).await.unwrap();
    let releases = helm.list_releases().await.unwrap();
    assert_eq!(releases.len(), 1);
    assert_eq!(
        (
            releases[0].name.as_str(),
            releases[0].namespace.as_str(),
            releases[0].status.as_str()
        ),
        ("vllm", "bench", "deployed")
    );
    assert_eq!(
        f.calls(),
        vec![
            format!(
                "helm upgrade --install vllm production-stack/helm -f {} --namespace bench --create-namespace --timeout 900s",
                path.display()
            ),
            "helm uninstall vllm --namespace bench --wait --ignore-not-found".into(),
            "helm uninstall old --ignore-not-found --kube-context minikube".into(),
            "helm list --all-namespaces --all -o json".into(),
        ]
    );
    drop(copy);
    assert!(!path.exists(), "the private copy outlived its guard");
    let log = f.log();
    assert!(log.contains("  out|   hf_token: ***"), "{log}");
    assert!(!log.contains(token), "{log}");
}
