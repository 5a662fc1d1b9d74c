//! `lmbench run` with Kubernetes baselines, end to end, with no real cluster: the infrastructure
//! step talks to fake `minikube`/`kubectl`/`docker`/`helm` scripts on PATH, lmbench's kube-rs
//! client talks to the fake API server (`fake_kube`) through a kubeconfig, and the router's
//! port-forward is relayed to lmbench's simulated engine, so the benchmark's requests really go
//! through kube-rs's port-forward stream.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use crate::fake_kube::{FakeKube, FakeKubeOptions};
use crate::util::{free_port, port_free, read_json, result_files};

const TOKEN: &str = "hf_e2eSecretToken123";
const MODEL: &str = "router-model";

/// The router and one engine, as rendered manifests with both token placeholders.
const MANIFEST: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: vllm-secrets
type: Opaque
data:
  hf_token: <YOUR_HF_TOKEN_BASE64>
---
apiVersion: v1
kind: Service
metadata:
  name: vllm-router-service
spec:
  selector:
    app: vllm-router
  ports:
    - name: router-sport
      port: 80
      targetPort: 8000
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm-deployment-router
spec:
  replicas: 1
  selector:
    matchLabels:
      app: vllm-router
  template:
    metadata:
      labels:
        app: vllm-router
    spec:
      containers:
        - name: router
          image: lmcache/lmstack-router:latest
          ports:
            - containerPort: 8000
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm-llama-deployment-vllm
spec:
  replicas: 1
  selector:
    matchLabels:
      app: vllm-engine
  template:
    metadata:
      labels:
        app: vllm-engine
    spec:
      containers:
        - name: vllm
          image: lmcache/vllm-openai:v0.3.5
          env:
            - name: HF_TOKEN
              valueFrom:
                secretKeyRef:
                  name: vllm-secrets
                  key: hf_token
          ports:
            - containerPort: 8000
"#;

struct Setup {
    dir: tempfile::TempDir,
    fake: FakeKube,
    _sim: lmbench::sim::SimHandle,
    bin: PathBuf,
    calls: PathBuf,
    port: u16,
}

impl Setup {
    fn new(opts: FakeKubeOptions, baseline: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let fake = FakeKube::start_in_background(opts);
        let sim_cfg = lmbench::sim::SimConfig {
            model: MODEL.into(),
            ..Default::default()
        };
        let sim = fake
            .handle()
            .block_on(lmbench::sim::spawn_local(sim_cfg))
            .unwrap();
        fake.set_backend(Some(sim.addr));
        let w = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w(
            "2-serving-engines/direct-production-stack/kubernetes_configurations/test/router.yaml",
            MANIFEST,
        );
        w(
            "2-serving-engines/helm-production-stack/helm_configurations/test/values.yaml",
            "servingEngineSpec:\n  modelSpec:\n    - name: llama\n      modelURL: router-model\n      hf_token: <YOUR_HF_TOKEN>\n",
        );
        w(
            "1-infrastructure/local-minikube/nvidia-device-plugin.yml",
            "kind: DaemonSet\n",
        );
        w(
            "0-bench-specs/k8s.yaml",
            &format!(
                "Name: k8s-e2e\nServing:\n{baseline}Workload:\n  Random:\n    - NUM_USERS: 2\n      NUM_ROUNDS: 2\n      PROMPT_LEN: 16\n      ANSWER_LEN: 4\n      QPS: [4]\n      DURATION: 2\n"
            ),
        );
        w(
            "run-bench.yaml",
            "0-bench-specs:\n  - k8s.yaml\n1-infrastructure:\n  Location: LocalMinikube\n",
        );
        let bin = root.join("fakebin");
        std::fs::create_dir_all(&bin).unwrap();
        let calls = root.join("calls.txt");
        let tool = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/bash\necho \"{name} $*\" >> '{}'\n{body}\nexit 0\n",
                    calls.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        // A healthy minikube without GPUs: reused, not started.
        tool(
            "minikube",
            r#"[[ "$1" == status ]] && echo "host: Running""#,
        );
        tool(
            "kubectl",
            r#"[[ "$*" == *cluster-info* ]] && echo "Kubernetes control plane is running""#,
        );
        tool("docker", r#"[[ "$1" == info ]] && echo 27.3.1"#);
        // helm: keeps the values file it was given (to check the token substitution) and, on
        // uninstall, deletes what the test seeded in its place, as the real release would.
        tool(
            "helm",
            &format!(
                r#"case "$1" in
  upgrade) for ((i=1; i<=$#; i++)); do [[ "${{!i}}" == -f ]] && j=$((i+1)) && cp "${{!j}}" '{v}'; done;;
  uninstall) for d in $FAKE_HELM_RELEASE; do
      curl -s -X DELETE "$FAKE_KUBE_URL/apis/apps/v1/namespaces/$d" >/dev/null; done;;
esac"#,
                v = root.join("helm-values-copy.yaml").display()
            ),
        );
        Setup {
            port: free_port(),
            dir,
            fake,
            _sim: sim,
            bin,
            calls,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self) -> std::process::Output {
        self.run_with(&[])
    }

    fn run_with(&self, env: &[(&str, &str)]) -> std::process::Output {
        self.command(env).output().unwrap()
    }

    fn command(&self, env: &[(&str, &str)]) -> std::process::Command {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // As util::lmbench(), but a std Command so a test can spawn it and signal it.
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("lmbench"));
        c.env_remove("RUST_BACKTRACE")
            .env("RUST_LIB_BACKTRACE", "0")
            .env("NO_COLOR", "1");
        c.current_dir(self.root())
            .args(["run", "-c", "run-bench.yaml", "--results-dir", "results"])
            .args(["--ready-timeout", "10", "--request-timeout", "10"])
            .env("PATH", path)
            .env("KUBECONFIG", self.fake.write_kubeconfig(self.root()))
            .env("HF_TOKEN", TOKEN)
            .env("LMBENCH_PORT", self.port.to_string())
            .env("LMBENCH_NO_PROGRESS", "1")
            .env("FAKE_KUBE_URL", self.fake.url())
            .env(
                "LMBENCH_PS_CHART",
                crate::util::repo().join("tests/fixtures/charts/production-stack"),
            )
            .env(
                "FAKE_HELM_RELEASE",
                "default/deployments/vllm-deployment-router default/deployments/vllm-llama-deployment-vllm",
            )
            .envs(env.iter().copied());
        c
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Every file lmbench wrote under results/, with its text.
    fn written(&self) -> Vec<(PathBuf, String)> {
        fn walk(d: &Path, out: &mut Vec<(PathBuf, String)>) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                    out.push((p, text));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root().join("results"), &mut out);
        out
    }

    fn assert_no_token_written(&self) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
        for (p, text) in self.written() {
            assert!(
                !text.contains(TOKEN) && !text.contains(&b64),
                "{} holds the token",
                p.display()
            );
        }
    }
}

impl Setup {
    /// The file names under results/k8s-e2e/pod-logs.
    fn pod_logs(&self) -> Vec<String> {
        std::fs::read_dir(self.root().join("results/k8s-e2e/pod-logs"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// After teardown: no Direct object left on the cluster, no token in any file lmbench
    /// wrote, the local port free.
    fn assert_torn_down(&self) {
        assert!(self.fake.objects_of("Deployment").is_empty());
        assert!(self
            .fake
            .objects_of("Secret")
            .iter()
            .all(|o| o["metadata"]["name"] != "vllm-secrets"));
        self.assert_no_token_written();
        assert!(port_free(self.port));
    }
}

/// A Direct-ProductionStack run on a fake cluster with `opts` that must fail (exit 1) with
/// every one of `expect` in its stderr, and leave nothing behind.
fn failing_direct(opts: FakeKubeOptions, expect: &[&str]) -> Setup {
    let s = Setup::new(opts, DIRECT);
    let out = s.run();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for e in expect {
        assert!(err.contains(e), "{e:?} not in:\n{err}");
    }
    s.assert_torn_down();
    s
}

fn show(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const DIRECT: &str = "  - Direct-ProductionStack:\n      kubernetesConfigSelection: test/router.yaml\n      modelURL: router-model\n      hf_token: <YOUR_HF_TOKEN>\n";
const LLMD: &str = "  - LLM-D:\n      configSelection: test.yaml\n      modelURL: router-model\n      apiType: chat\n      hf_token: <YOUR_HF_TOKEN>\n";
const HELM: &str = "  - Helm-ProductionStack:\n      helmConfigSelection: test/values.yaml\n      modelURL: router-model\n      hf_token: <YOUR_HF_TOKEN>\n";

#[test]
fn direct_production_stack_applies_waits_forwards_benchmarks_and_deletes() {
    let s = Setup::new(
        FakeKubeOptions {
            ready_after: Duration::from_millis(300),
            ..Default::default()
        },
        DIRECT,
    );
    let out = s.run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // The benchmark's requests went through kube-rs's port-forward to the router pod.
    let results = result_files(&s.root().join("results/k8s-e2e"));
    assert_eq!(results.len(), 1, "{}", show(&out));
    let v = read_json(&results[0]);
    let ok = v["results"]["successful_requests"].as_u64().unwrap();
    assert!(ok >= 4, "{v}");
    let forwards = s.fake.port_forwards();
    assert!(
        forwards
            .iter()
            .any(|f| f.pod.starts_with("vllm-deployment-router") && f.port == 8000),
        "{forwards:?}"
    );
    let to_pod: u64 = forwards.iter().map(|f| f.bytes_to_pod).sum();
    let from_pod: u64 = forwards.iter().map(|f| f.bytes_from_pod).sum();
    assert!(to_pod > 500 && from_pod > 500, "{forwards:?}");
    // The engine pod behind the router was scraped for its metrics through a port-forward of
    // its own (the fake relays every pod to the simulated engine).
    assert!(
        forwards
            .iter()
            .any(|f| f.pod.starts_with("vllm-llama-deployment-vllm") && f.port == 8000),
        "{forwards:?}"
    );
    let m = &v["results"]["engine_metrics"];
    let pods = m["pods"].as_array().unwrap_or_else(|| panic!("{m}"));
    assert_eq!(pods.len(), 1, "{m}");
    assert!(
        pods[0]["pod"]
            .as_str()
            .unwrap()
            .starts_with("vllm-llama-deployment-vllm"),
        "{m}"
    );
    assert_eq!(pods[0]["engine"], "lmbench_sim", "{m}");
    assert!(pods[0]["scrapes"].as_u64().unwrap() >= 2, "{m}");
    assert_eq!(m["engine"], "lmbench_sim", "{m}");

    // Server-side apply of each object, by lmbench, then deletion in reverse order.
    let reqs = s.fake.requests();
    let applied: Vec<&str> = reqs
        .iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(
        applied,
        [
            "/api/v1/namespaces/default/secrets/vllm-secrets",
            "/api/v1/namespaces/default/services/vllm-router-service",
            "/apis/apps/v1/namespaces/default/deployments/vllm-deployment-router",
            "/apis/apps/v1/namespaces/default/deployments/vllm-llama-deployment-vllm",
        ]
    );
    for r in reqs.iter().filter(|r| r.method == "PATCH") {
        assert_eq!(r.query_param("fieldManager").as_deref(), Some("lmbench"));
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
    }
    let deleted: Vec<&str> = reqs
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        deleted,
        [
            "vllm-llama-deployment-vllm",
            "vllm-deployment-router",
            "vllm-router-service",
            "vllm-secrets"
        ]
    );
    assert!(s.fake.objects_of("Deployment").is_empty());
    assert!(s.fake.objects_of("Pod").is_empty());

    // The Secret the cluster got carries the real token (base64); nothing lmbench wrote does.
    let secret = s.fake.object("Secret", "default", "vllm-secrets");
    assert!(secret.is_none(), "deleted at teardown");
    s.assert_no_token_written();

    // Pod logs after the run, LMBench's names: <pod>_<KEY>_<workload>_<qps>.log.
    let logs = s.pod_logs();
    assert!(
        logs.iter()
            .any(|n| n.starts_with("vllm-deployment-router")
                && n.ends_with("_test_router_random_4.log")),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|n| n.ends_with("_describe.txt")),
        "{logs:?}"
    );

    // The infrastructure step reused the healthy minikube; the local port is free again.
    let calls = s.calls();
    assert!(
        calls.iter().any(|c| c.starts_with("minikube status")),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("minikube start")),
        "{calls:?}"
    );
    assert!(port_free(s.port));
}

#[test]
fn helm_production_stack_installs_with_a_private_values_copy_and_uninstalls() {
    let s = Setup::new(FakeKubeOptions::default(), HELM);
    // What `helm install` would create, in place of the fake helm doing it.
    s.fake.seed(
        &MANIFEST
            .split("---\n")
            .skip(1)
            .collect::<Vec<_>>()
            .join("---\n"),
    );
    let out = s.run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let calls = s.calls();
    let install = calls
        .iter()
        .find(|c| c.starts_with("helm upgrade --install vllm "))
        .unwrap_or_else(|| panic!("{calls:?}"));
    assert!(
        install.contains("tests/fixtures/charts/production-stack -f "),
        "{install}"
    );
    assert!(install.contains("--namespace default"), "{install}");
    assert!(install.contains("--kube-context minikube"), "{install}");
    // helm got a copy with the token in it, in a private temporary folder removed afterwards.
    let copy = std::fs::read_to_string(s.root().join("helm-values-copy.yaml")).unwrap();
    assert!(copy.contains(&format!("hf_token: {TOKEN}")), "{copy}");
    let values_path = install
        .split(" -f ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        !Path::new(values_path).exists(),
        "{values_path} left behind"
    );
    assert!(calls
        .iter()
        .any(|c| c.starts_with("helm uninstall vllm --namespace default --wait")));
    let v = read_json(&result_files(&s.root().join("results/k8s-e2e"))[0]);
    assert!(
        v["results"]["successful_requests"].as_u64().unwrap() >= 4,
        "{v}"
    );
    assert!(s.fake.objects_of("Pod").is_empty());
    s.assert_no_token_written();
    assert!(port_free(s.port));
}

#[test]
fn a_crash_looping_engine_fails_the_baseline_and_everything_is_deleted() {
    let s = failing_direct(
        FakeKubeOptions {
            crash: Some("deployment-vllm".into()),
            ..Default::default()
        },
        &["CrashLoopBackOff", "vllm-llama-deployment-vllm"],
    );
    // The pods' descriptions are kept from before the teardown.
    let logs = s.pod_logs();
    assert!(
        logs.iter()
            .any(|n| n.contains("deployment-vllm") && n.ends_with("_deploy_describe.txt")),
        "{logs:?}"
    );
}

#[test]
fn llm_d_gets_its_namespace_and_token_secret_then_helm_then_its_gateway_forwarded() {
    let s = Setup::new(FakeKubeOptions::default(), LLMD);
    std::fs::create_dir_all(s.root().join("2-serving-engines/llm-d/llmd_configurations")).unwrap();
    std::fs::write(
        s.root()
            .join("2-serving-engines/llm-d/llmd_configurations/test.yaml"),
        "sampleApplication:\n  model:\n    modelName: router-model\n",
    )
    .unwrap();
    // What the llm-d chart would create: its gateway in namespace llm-d.
    s.fake.seed(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: llm-d\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: llm-d-inference-gateway-istio\n  namespace: llm-d\n\
         spec:\n  selector:\n    app: gateway\n  ports:\n    - port: 80\n      targetPort: 8000\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: gateway\n  namespace: llm-d\n\
         spec:\n  selector:\n    matchLabels:\n      app: gateway\n  template:\n    metadata:\n      labels:\n        app: gateway\n\
         \x20   spec:\n      containers:\n        - name: gw\n          image: istio/proxyv2\n          ports:\n            - containerPort: 8000\n",
    );
    let out = s.run_with(&[
        ("FAKE_HELM_RELEASE", "llm-d/deployments/gateway"),
        ("LMBENCH_LLMD_CHART", "/charts/llm-d"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let reqs = s.fake.requests();
    let secret = reqs
        .iter()
        .position(|r| {
            r.method == "PATCH" && r.path == "/api/v1/namespaces/llm-d/secrets/llm-d-hf-token"
        })
        .unwrap_or_else(|| panic!("{reqs:?}"));
    assert!(reqs[..secret]
        .iter()
        .any(|r| r.method == "PATCH" && r.path == "/api/v1/namespaces/llm-d"));
    let calls = s.calls();
    assert!(
        calls.iter().any(
            |c| c.starts_with("helm upgrade --install llm-d /charts/llm-d -f ")
                && c.contains("llmd_configurations/test.yaml --namespace llm-d")
        ),
        "{calls:?}"
    );
    assert!(s
        .fake
        .port_forwards()
        .iter()
        .any(|f| f.namespace == "llm-d" && f.pod.starts_with("gateway") && f.bytes_from_pod > 0));
    // Teardown: the release and the token secret go; the namespace stays (it may hold more).
    assert!(calls
        .iter()
        .any(|c| c.starts_with("helm uninstall llm-d --namespace llm-d --wait")));
    assert!(reqs
        .iter()
        .any(|r| r.method == "DELETE" && r.path.ends_with("/secrets/llm-d-hf-token")));
    assert!(s.fake.object("Secret", "llm-d", "llm-d-hf-token").is_none());
    s.assert_no_token_written();
    assert!(port_free(s.port));
}

/// Against a real cluster, when `LMBENCH_TEST_KUBECONFIG` names a kubeconfig (skipped
/// otherwise): apply a small web server with a Service in a scratch namespace, wait for its pod,
/// port-forward the Service, fetch a page through it, collect the logs, delete everything.
#[test]
fn real_cluster_apply_wait_forward_logs_delete() {
    let Some(path) = std::env::var_os("LMBENCH_TEST_KUBECONFIG") else {
        eprintln!("LMBENCH_TEST_KUBECONFIG not set: real-cluster test skipped");
        return;
    };
    use lmbench::deploy::k8s::{Kube, WaitOptions};
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(cfg).unwrap();
        let ns = format!("lmbench-test-{}", std::process::id());
        let setup = Kube::new(client.clone(), "default");
        let ns_doc = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
        let ns_obj = setup
            .apply_manifests(&ns_doc, Path::new("namespace"))
            .await
            .unwrap();
        let kube = Kube::new(client, &ns);
        let web = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27-alpine\n          ports: [{containerPort: 80}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports: [{port: 8080, targetPort: 80}]\n";
        let objs = kube.apply_manifests(web, Path::new("web.yaml")).await.unwrap();
        let cancel = tokio_util::sync::CancellationToken::new();
        let wait = WaitOptions {
            deadline: Duration::from_secs(300),
            poll: Duration::from_secs(2),
            max_bad_checks: 6,
        };
        kube.wait_pods_ready(Some("app=web"), wait, &cancel)
            .await
            .unwrap();
        let port = free_port();
        let fwd = kube.port_forward("web", 8080, port).await.unwrap();
        lmbench::client::tls::install_provider();
        let body = reqwest::get(format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("nginx"), "{body}");
        fwd.shutdown().await;
        let dir = tempfile::tempdir().unwrap();
        let files = kube.collect_logs(dir.path(), "t", None).await.unwrap();
        assert!(!files.is_empty());
        kube.delete_objects(&objs).await.unwrap();
        kube.wait_pods_gone(Some("app=web"), Duration::from_secs(180))
            .await
            .unwrap();
        setup.delete_objects(&ns_obj).await.unwrap();
    });
}

#[test]
fn pending_pods_are_reported_with_their_events_at_the_deadline() {
    failing_direct(
        FakeKubeOptions {
            pending_with_event: Some("deployment-vllm".into()),
            ..Default::default()
        },
        &["Pending", "FailedScheduling", "Insufficient nvidia.com/gpu"],
    );
}

#[test]
fn ctrl_c_while_pods_start_tears_the_baseline_down_and_exits_130() {
    let s = Setup::new(
        FakeKubeOptions {
            pending_with_event: Some("deployment-vllm".into()),
            ..Default::default()
        },
        DIRECT,
    );
    let child = s
        .command(&[])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the manifests are applied and lmbench is waiting for the pods.
    let t0 = std::time::Instant::now();
    while s.fake.objects_of("Deployment").len() < 2 {
        assert!(t0.elapsed() < Duration::from_secs(30), "never applied");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    s.assert_torn_down();
}
