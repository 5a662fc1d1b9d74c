//! The fake API server against the real kube-rs client: apply, list, logs, delete, watch,
//! discovery, the real server's errors, the crash/pending options, and port-forwarding to a
//! TCP echo server and to lmbench's simulated engine.

use super::{FakeKube, FakeKubeOptions};
use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Endpoints, Event, Pod, Service};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams, WatchEvent,
    WatchParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, ApiCapabilities, ApiResource, Discovery, Scope};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn deployment(name: &str, app: &str, replicas: i32, port: i32) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{
                    "name": "main",
                    "image": "lmcache/lmstack-router:latest",
                    "ports": [{"name": "http", "containerPort": port}],
                }]},
            },
        },
    })
}

/// Server-side apply of `obj`, named `name`, through `api`.
async fn apply<K, P>(api: &Api<K>, pp: &PatchParams, name: &str, obj: &P) -> kube::Result<K>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    P: serde::Serialize + std::fmt::Debug,
{
    api.patch(name, pp, &Patch::Apply(obj)).await
}

/// Discovery of one kind (`group/version` `kind`) through kube-rs.
async fn kind_of(
    client: &kube::Client,
    group: &str,
    version: &str,
    kind: &str,
) -> kube::Result<(ApiResource, ApiCapabilities)> {
    pinned_kind(client, &GroupVersionKind::gvk(group, version, kind)).await
}

/// Log parameters asking for the previous (crashed) container's log.
fn previous_logs() -> LogParams {
    LogParams {
        previous: true,
        ..Default::default()
    }
}

/// [`apply`] of `deployment(name, app, replicas, port)`.
async fn apply_deployment(
    api: &Api<Deployment>,
    pp: &PatchParams,
    name: &str,
    app: &str,
    replicas: i32,
    port: i32,
) -> kube::Result<Deployment> {
    apply(api, pp, name, &deployment(name, app, replicas, port)).await
}

/// A server-side apply sent as plain HTTP, for requests kube-rs would not send.
async fn raw_apply(
    http: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    http.patch(url)
        .header("content-type", "application/apply-patch+yaml")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn api_code(e: &kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn kube_rs_applies_lists_logs_and_deletes_through_a_kubeconfig() {
    let fake = FakeKube::start(FakeKubeOptions {
        ready_after: Duration::from_millis(400),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = fake.write_kubeconfig(dir.path());
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    assert_eq!(config.cluster_url.to_string(), format!("{}/", fake.url()));
    let client = kube::Client::try_from(config).unwrap();

    // Discovery, one kind at a time and all at once (plain and aggregated).
    let (ar, caps) = kind_of(&client, "apps", "v1", "Deployment").await.unwrap();
    assert_eq!(
        (ar.plural.as_str(), caps.scope),
        ("deployments", Scope::Namespaced)
    );
    let (foo, _) = kind_of(&client, "example.com", "v1", "Foo").await.unwrap();
    assert_eq!(foo.plural, "foos");
    let (ns_ar, ns_caps) = kind_of(&client, "", "v1", "Namespace").await.unwrap();
    assert_eq!(
        (ns_ar.plural.as_str(), ns_caps.scope),
        ("namespaces", Scope::Cluster)
    );
    let (_, pod_caps) = kind_of(&client, "", "v1", "Pod").await.unwrap();
    let subs: Vec<&str> = pod_caps
        .subresources
        .iter()
        .map(|(a, _)| a.plural.as_str())
        .collect();
    assert!(
        subs.contains(&"log") && subs.contains(&"portforward"),
        "{subs:?}"
    );
    assert!(kind_of(&client, "apps", "v1", "Nope").await.is_err());
    let d = Discovery::new(client.clone()).run().await.unwrap();
    for g in [
        "",
        "apps",
        "rbac.authorization.k8s.io",
        "policy",
        "example.com",
    ] {
        assert!(d.has_group(g), "discovery lacks group {g:?}");
    }
    let d2 = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    let (pdb, _) = d2
        .resolve_gvk(&GroupVersionKind::gvk(
            "policy",
            "v1",
            "PodDisruptionBudget",
        ))
        .unwrap();
    assert_eq!(pdb.plural, "poddisruptionbudgets");
    assert!(d2
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Secret"))
        .is_some());

    // Server-side apply of a Deployment (typed) and a Service (dynamic, through discovery).
    fake.clear_requests();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pp = PatchParams::apply("lmbench-test").force();
    let applied = apply_deployment(&deploys, &pp, "router", "router", 2, 8000)
        .await
        .unwrap();
    let meta = &applied.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    let (svc_ar, _) = kind_of(&client, "", "v1", "Service").await.unwrap();
    let svcs: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &svc_ar);
    let svc_manifest: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "router-service"},
        "spec": {"selector": {"app": "router"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    apply(&svcs, &pp, "router-service", &svc_manifest)
        .await
        .unwrap();
    let svc: Service = Api::default_namespaced(client.clone())
        .get("router-service")
        .await
        .unwrap();
    let spec = svc.spec.unwrap();
    assert!(spec
        .cluster_ip
        .as_deref()
        .is_some_and(|ip| ip.starts_with("10.96.")));
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(spec.ports.unwrap()[0].protocol.as_deref(), Some("TCP"));

    // Applying the same object again changes nothing (same resourceVersion and generation).
    let rv = deploys
        .get("router")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let again = apply_deployment(&deploys, &pp, "router", "router", 2, 8000)
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version.unwrap(), rv);
    assert_eq!(again.metadata.generation, Some(1));

    // Pods exist at once but are not Ready before ready_after; logs are not there yet.
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let lp = ListParams::default().labels("app=router");
    let early = pods.list(&lp).await.unwrap();
    assert_eq!(early.items.len(), 2);
    for p in &early.items {
        let name = p.metadata.name.clone().unwrap();
        assert!(name.starts_with("router-"), "{name}");
        assert!(!ready(p), "{name} Ready before ready_after");
        let st = p.status.as_ref().unwrap();
        assert_eq!(st.phase.as_deref(), Some("Pending"));
        let waiting = st.container_statuses.as_ref().unwrap()[0]
            .state
            .as_ref()
            .unwrap()
            .waiting
            .clone();
        assert_eq!(
            waiting.unwrap().reason.as_deref(),
            Some("ContainerCreating")
        );
        let e = pods.logs(&name, &LogParams::default()).await.unwrap_err();
        assert_eq!(api_code(&e).0, 400);
    }
    let other = pods
        .list(&ListParams::default().labels("app=engine"))
        .await
        .unwrap();
    assert!(other.items.is_empty());

    // After ready_after they are Running and Ready, with the template's ports.
    let started = Instant::now();
    let ready_pods = eventually(5, "router pods Ready", || {
        let pods = pods.clone();
        let lp = lp.clone();
        async move {
            let l = pods.list(&lp).await.unwrap();
            (l.items.len() == 2 && l.items.iter().all(ready)).then_some(l.items)
        }
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    for p in &ready_pods {
        assert_eq!(p.status.as_ref().unwrap().phase.as_deref(), Some("Running"));
        assert!(p.status.as_ref().unwrap().pod_ip.is_some());
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8000);
        assert_eq!(p.metadata.labels.as_ref().unwrap()["app"], "router");
    }
    let d = deploys.get("router").await.unwrap();
    assert_eq!(d.status.unwrap().ready_replicas, Some(2));
    let eps: Endpoints = Api::default_namespaced(client.clone())
        .get("router-service")
        .await
        .unwrap();
    let subset = &eps.subsets.unwrap()[0];
    assert_eq!(subset.addresses.as_ref().unwrap().len(), 2);
    assert_eq!(subset.ports.as_ref().unwrap()[0].port, 8000);

    // Logs name the pod; there is no previous container to read.
    let pod_name = ready_pods[0].metadata.name.clone().unwrap();
    let text = pods.logs(&pod_name, &LogParams::default()).await.unwrap();
    assert!(
        text.lines().count() >= 2 && text.contains(&pod_name),
        "{text}"
    );
    let tail = pods
        .logs(
            &pod_name,
            &LogParams {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail.lines().count(), 1);
    let e = pods.logs(&pod_name, &previous_logs()).await.unwrap_err();
    let (code, _, msg) = api_code(&e);
    assert_eq!(code, 400);
    assert!(msg.contains("previous terminated container"), "{msg}");

    // Deleting the Deployment takes its ReplicaSet and pods with it.
    deploys
        .delete("router", &DeleteParams::background())
        .await
        .unwrap();
    assert!(pods.list(&lp).await.unwrap().items.is_empty());
    assert!(fake.objects_of("ReplicaSet").is_empty());
    let e = deploys.get("router").await.unwrap_err();
    let (code, reason, msg) = api_code(&e);
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(msg, "deployments.apps \"router\" not found");
    assert!(fake
        .object("Service", "default", "router-service")
        .is_some());

    // What the client sent.
    let reqs = fake.requests();
    let apply = reqs
        .iter()
        .find(|r| {
            r.method == "PATCH" && r.path == "/apis/apps/v1/namespaces/default/deployments/router"
        })
        .expect("the Deployment apply was recorded");
    assert_eq!(
        apply.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(
        apply.query_param("fieldManager").as_deref(),
        Some("lmbench-test")
    );
    assert_eq!(apply.query_param("force").as_deref(), Some("true"));
    let seq: Vec<(String, String)> = reqs
        .iter()
        .filter(|r| r.path.contains("/namespaces/default/"))
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    let pos = |m: &str, p: &str| {
        seq.iter()
            .position(|(a, b)| a == m && b == p)
            .unwrap_or_else(|| panic!("no {m} {p} in {seq:?}"))
    };
    let apply_at = pos(
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/router",
    );
    let list_at = pos("GET", "/api/v1/namespaces/default/pods");
    let log_at = pos(
        "GET",
        &format!("/api/v1/namespaces/default/pods/{pod_name}/log"),
    );
    let delete_at = pos(
        "DELETE",
        "/apis/apps/v1/namespaces/default/deployments/router",
    );
    assert!(
        apply_at < list_at && list_at < log_at && log_at < delete_at,
        "{seq:?}"
    );
    let list = &reqs[reqs
        .iter()
        .position(|r| r.path == "/api/v1/namespaces/default/pods")
        .unwrap()];
    assert_eq!(
        list.query_param("labelSelector").as_deref(),
        Some("app=router")
    );
}

#[tokio::test]
async fn the_fake_answers_like_a_real_api_server() {
    let fake = FakeKube::start(FakeKubeOptions::default()).await;
    let client = fake.client();
    lmbench::client::tls::install_provider();
    let http = reqwest::Client::new();
    let deploy_url = format!(
        "{}/apis/apps/v1/namespaces/default/deployments/x",
        fake.url()
    );

    // Apply without fieldManager: 422, like the real server (kube-rs refuses to send it).
    let r = raw_apply(&http, &deploy_url, deployment("x", "x", 1, 80).to_string()).await;
    assert_eq!(r.status().as_u16(), 422);
    let status: Value = r.json().await.unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Invalid"))
    );
    assert!(status["message"].as_str().unwrap().contains("fieldManager"));

    // A body naming another object or another kind than the URL: 400 BadRequest.
    let r = raw_apply(
        &http,
        format!("{deploy_url}?fieldManager=t"),
        deployment("y", "y", 1, 80).to_string(),
    )
    .await;
    assert_eq!(r.status().as_u16(), 400);
    let status: Value = r.json().await.unwrap();
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("does not match the name on the URL"));
    let mut wrong_kind = deployment("x", "x", 1, 80);
    wrong_kind["kind"] = json!("StatefulSet");
    let r = raw_apply(
        &http,
        format!("{deploy_url}?fieldManager=t"),
        wrong_kind.to_string(),
    )
    .await;
    assert_eq!(r.status().as_u16(), 400);

    // YAML bodies are accepted for apply.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: \"1\"\n";
    let r = raw_apply(
        &http,
        format!(
            "{}/api/v1/namespaces/default/configmaps/cfg?fieldManager=t",
            fake.url()
        ),
        yaml,
    )
    .await;
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        fake.object("ConfigMap", "default", "cfg").unwrap()["data"]["a"],
        "1"
    );

    // Validation: invalid names, selectors that miss the template's labels, bad labels.
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pp = PatchParams::apply("lmbench");
    let e = apply_deployment(&deploys, &pp, "sim_prefix", "a", 1, 80)
        .await
        .unwrap_err();
    let (code, reason, msg) = api_code(&e);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        msg.contains("metadata.name") && msg.contains("RFC 1123"),
        "{msg}"
    );
    let mut bad_sel = deployment("d", "a", 1, 80);
    bad_sel["spec"]["selector"]["matchLabels"]["app"] = json!("b");
    let e = apply(&deploys, &pp, "d", &bad_sel).await.unwrap_err();
    assert!(api_code(&e)
        .2
        .contains("`selector` does not match template `labels`"));
    let mut bad_label = deployment("d", "a", 1, 80);
    bad_label["metadata"]["labels"]["model"] = json!("meta-llama/Llama-3.1-8B");
    let e = apply(&deploys, &pp, "d", &bad_label).await.unwrap_err();
    assert_eq!(api_code(&e).0, 422);
    assert!(fake.object("Deployment", "default", "d").is_none());

    // A namespace must exist before objects are created in it.
    let in_bench: Api<Deployment> = Api::namespaced(client.clone(), "bench");
    let e = apply_deployment(&in_bench, &pp, "d", "a", 1, 80)
        .await
        .unwrap_err();
    let (code, _, msg) = api_code(&e);
    assert_eq!(
        (code, msg.as_str()),
        (404, "namespaces \"bench\" not found")
    );
    let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = apply(
        &nss,
        &pp,
        "bench",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}),
    )
    .await
    .unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    apply_deployment(&in_bench, &pp, "d", "a", 1, 80)
        .await
        .unwrap();

    // Field managers: what helm created conflicts with a different value unless forced.
    fake.seed(&serde_json::to_string(&deployment("helmed", "h", 1, 80)).unwrap());
    let e = apply_deployment(&deploys, &pp, "helmed", "h", 3, 80)
        .await
        .unwrap_err();
    let (code, reason, msg) = api_code(&e);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(
        msg.contains("conflict with \"helm\"") && msg.contains(".spec.replicas"),
        "{msg}"
    );
    let forced = apply_deployment(
        &deploys,
        &PatchParams::apply("lmbench").force(),
        "helmed",
        "h",
        3,
        80,
    )
    .await
    .unwrap();
    assert_eq!(forced.spec.unwrap().replicas, Some(3));
    assert_eq!(forced.metadata.generation, Some(2));
    let managers: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, ["helm", "lmbench"]);
    // A field the applier stops setting goes away when nobody else set it.
    let mut fewer = deployment("d", "a", 1, 80);
    fewer["metadata"]["labels"] = json!({"app": "a", "extra": "yes"});
    apply(&in_bench, &pp, "d", &fewer).await.unwrap();
    let after = apply_deployment(&in_bench, &pp, "d", "a", 1, 80)
        .await
        .unwrap();
    assert!(!after.metadata.labels.unwrap().contains_key("extra"));
    // The selector of a Deployment cannot change.
    let mut moved = deployment("d", "a2", 1, 80);
    moved["metadata"]["labels"] = json!({"app": "a"});
    let e = apply(&in_bench, &pp, "d", &moved).await.unwrap_err();
    assert!(api_code(&e).2.contains("field is immutable"));

    // Dry run stores nothing; merge patches work; unknown paths and kinds are 404 Status.
    apply_deployment(
        &deploys,
        &PatchParams::apply("lmbench").dry_run(),
        "dry",
        "dry",
        1,
        80,
    )
    .await
    .unwrap();
    assert!(fake.object("Deployment", "default", "dry").is_none());
    let merged = deploys
        .patch(
            "helmed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.spec.unwrap().replicas, Some(0));
    let r = http
        .get(format!(
            "{}/apis/apps/v1/namespaces/default/widgets",
            fake.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let status: Value = r.json().await.unwrap();
    assert_eq!(status["kind"], "Status");

    // Lists are proper List objects; selectors the server does not index are refused.
    let r: Value = http
        .get(format!(
            "{}/apis/apps/v1/namespaces/default/deployments?labelSelector=app%3Dh",
            fake.url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["kind"], "DeploymentList");
    assert_eq!(r["apiVersion"], "apps/v1");
    assert!(r["metadata"]["resourceVersion"].is_string());
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    let events: Api<Event> = Api::default_namespaced(client.clone());
    let e = events
        .list(&ListParams::default().fields("spec.bogus=1"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e).0, 400);

    // Secrets: stringData is stored as base64 data.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::default_namespaced(client.clone());
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tok"}, "stringData": {"token": "abc"}});
    let s = apply(&secrets, &pp, "tok", &secret).await.unwrap();
    assert_eq!(s.data.unwrap()["token"].0, b"abc");
    let secret_write = fake
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/secrets/tok"))
        .unwrap();
    assert!(!secret_write.body.contains("abc"), "{}", secret_write.body);
}

#[tokio::test]
async fn crash_and_pending_options_show_in_status_events_and_logs() {
    let fake = FakeKube::start(FakeKubeOptions {
        crash: Some("crashy".into()),
        pending_with_event: Some("hungry".into()),
        ..Default::default()
    })
    .await;
    let seeded = fake.seed(&format!(
        "{}\n---\n{}\n",
        serde_json::to_string(&deployment("crashy-engine", "crashy", 1, 8000)).unwrap(),
        serde_json::to_string(&{
            let mut d = deployment("hungry-engine", "hungry", 1, 8000);
            d["metadata"]["namespace"] = json!("bench");
            d
        })
        .unwrap()
    ));
    assert_eq!(
        seeded,
        [
            "Deployment/default/crashy-engine",
            "Deployment/bench/hungry-engine"
        ]
    );
    let client = fake.client();

    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let crashy = pods
        .list(&ListParams::default().labels("app=crashy"))
        .await
        .unwrap()
        .items;
    assert_eq!(crashy.len(), 1);
    let p = &crashy[0];
    let name = p.metadata.name.clone().unwrap();
    assert!(!ready(p));
    let cs = &p
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    assert!(cs.restart_count >= 1);
    let waiting = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    let prev = pods.logs(&name, &previous_logs()).await.unwrap();
    assert!(prev.contains(&name) && prev.contains("crash"), "{prev}");

    let bench_pods: Api<Pod> = Api::namespaced(client.clone(), "bench");
    let hungry = bench_pods.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(hungry.len(), 1);
    let hname = hungry[0].metadata.name.clone().unwrap();
    assert_eq!(
        hungry[0].status.as_ref().unwrap().phase.as_deref(),
        Some("Pending")
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "bench");
    let evs = events
        .list(&ListParams::default().fields(&format!("involvedObject.name={hname}")))
        .await
        .unwrap()
        .items;
    let failed = evs
        .iter()
        .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
        .unwrap_or_else(|| panic!("no FailedScheduling event in {evs:?}"));
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert!(failed
        .message
        .as_deref()
        .unwrap()
        .contains("Insufficient nvidia.com/gpu"));
    let none = events
        .list(&ListParams::default().fields("involvedObject.name=someone-else"))
        .await
        .unwrap();
    assert!(none.items.is_empty());
    assert!(bench_pods
        .logs(&hname, &LogParams::default())
        .await
        .is_err());
    let e = bench_pods
        .portforward(&hname, &[8000])
        .await
        .err()
        .expect("no port-forward to a pending pod");
    assert_eq!(api_code(&e).0, 400);
    // The Deployment never becomes available.
    let d: Deployment = Api::namespaced(client.clone(), "bench")
        .get("hungry-engine")
        .await
        .unwrap();
    let st = d.status.unwrap();
    assert_eq!(st.ready_replicas, None);
    assert_eq!(st.unavailable_replicas, Some(1));
}

#[tokio::test]
async fn watch_streams_pods_turning_ready() {
    let fake = FakeKube::start(FakeKubeOptions {
        ready_after: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let client = fake.client();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let deploys: Api<Deployment> = Api::default_namespaced(client);
    apply_deployment(&deploys, &PatchParams::apply("t"), "w", "w", 1, 80)
        .await
        .unwrap();
    let list = pods
        .list(&ListParams::default().labels("app=w"))
        .await
        .unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let stream = pods
        .watch(&WatchParams::default().labels("app=w").timeout(10), &rv)
        .await
        .unwrap();
    let mut stream = Box::pin(stream);
    let got_ready = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = stream.next().await {
            if let WatchEvent::Modified(p) = ev.unwrap() {
                if ready(&p) {
                    return p;
                }
            }
        }
        panic!("watch ended without a Ready pod");
    })
    .await
    .expect("a MODIFIED event with the pod Ready");
    assert_eq!(got_ready.metadata.labels.unwrap()["app"], "w");
}

/// A TCP server that writes back what it reads; returns its address.
async fn echo_server() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_relays_to_an_echo_server_and_the_simulated_engine() {
    let echo = echo_server().await;
    let fake = FakeKube::start(FakeKubeOptions {
        backend: Some(echo),
        ..Default::default()
    })
    .await;
    let client = fake.client();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    apply_deployment(
        &deploys,
        &PatchParams::apply("t"),
        "engine",
        "engine",
        1,
        8000,
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let pod = pods
        .list(&ListParams::default().labels("app=engine"))
        .await
        .unwrap()
        .items[0]
        .metadata
        .name
        .clone()
        .unwrap();

    // Echo: small and large writes come back unchanged.
    let mut pf = pods.portforward(&pod, &[8000]).await.unwrap();
    let mut stream = pf.take_stream(8000).unwrap();
    stream
        .write_all(b"hello through the fake kube")
        .await
        .unwrap();
    let mut buf = [0u8; 27];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello through the fake kube");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (mut rd, mut wr) = tokio::io::split(stream);
    let sent = big.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&sent).await.unwrap();
        wr
    });
    let mut back = vec![0u8; big.len()];
    rd.read_exact(&mut back).await.unwrap();
    assert!(back == big, "echoed bytes differ");
    drop(writer.await.unwrap());
    drop(rd);
    tokio::time::timeout(Duration::from_secs(5), pf.join())
        .await
        .expect("the port-forward ends once the client closes")
        .unwrap();
    let stats = fake.port_forwards();
    assert_eq!(stats.len(), 1);
    assert_eq!((stats[0].pod.as_str(), stats[0].port), (pod.as_str(), 8000));
    assert_eq!(stats[0].bytes_to_pod, 27 + 300_000);
    assert_eq!(stats[0].bytes_from_pod, 27 + 300_000);

    // A port no container declares: the error channel says the connection was refused.
    let mut pf = pods.portforward(&pod, &[9999]).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), pf.take_error(9999).unwrap())
        .await
        .unwrap()
        .expect("an error message on the error channel");
    assert!(err.contains("connection refused"), "{err}");

    // lmbench's simulated engine behind the port-forward: an HTTP/1.1 request gets its answer.
    let sim = lmbench::sim::spawn_local(lmbench::sim::SimConfig::default())
        .await
        .unwrap();
    fake.set_backend(Some(sim.addr));
    let mut pf = pods.portforward(&pod, &[8000]).await.unwrap();
    let mut stream = pf.take_stream(8000).unwrap();
    stream
        .write_all(b"GET /v1/models HTTP/1.1\r\nHost: localhost:8000\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the engine answered and closed")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"sim-model\""), "{text}");
    drop(stream);
    // The server closed the WebSocket first (as a real one does once the pod's port closes),
    // so kube-rs's own close frame afterwards is refused; what matters is that it ends.
    let ended = tokio::time::timeout(Duration::from_secs(5), pf.join())
        .await
        .expect("the port-forward ends after the engine closed");
    if let Err(e) = ended {
        assert!(
            e.to_string().contains("send"),
            "unexpected port-forward error: {e}"
        );
    }
    let last = fake.port_forwards().pop().unwrap();
    assert!(
        last.bytes_from_pod as usize >= answer.len() && last.error.is_none(),
        "{last:?}"
    );
    sim.shutdown().await.unwrap();
}

#[test]
fn a_background_fake_serves_synchronous_tests() {
    let fake = FakeKube::start_in_background(FakeKubeOptions::default());
    fake.seed(&serde_json::to_string(&deployment("bg", "bg", 1, 8000)).unwrap());
    // A plain blocking HTTP request, as a tool run by a synchronous test would make.
    let mut conn = std::net::TcpStream::connect(fake.addr()).unwrap();
    std::io::Write::write_all(
        &mut conn,
        b"GET /api/v1/namespaces/default/pods?labelSelector=app%3Dbg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut conn, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["kind"], "PodList");
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    // The fake's runtime can host the port-forward backend too.
    let sim = fake
        .handle()
        .block_on(lmbench::sim::spawn_local(lmbench::sim::SimConfig::default()))
        .unwrap();
    fake.set_backend(Some(sim.addr));
    assert!(std::net::TcpStream::connect(sim.addr).is_ok());
    assert_eq!(fake.requests().len(), 1);
}

/// lmbench's port-forward carries a pooled client connection on one forwarded stream for as
/// long as the connection lives: requests 3.5 s apart (longer than the 3 s the pool used to
/// keep idle connections) all go through the stream the warm-up opened. A connection opened
/// for a request waits for its stream (150 ms here) behind a local connect that completed at
/// once; the request's connect time includes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_is_one_long_lived_forwarded_stream() {
    use lmbench::client::{Client, ClientConfig};
    use lmbench::record::{ApiType, Prompt, RequestSpec};
    let sim = lmbench::sim::spawn_local(lmbench::sim::SimConfig {
        mode: lmbench::sim::SimMode::Fixed,
        ttft_ms: 10.0,
        itl_ms: 1.0,
        ..lmbench::sim::SimConfig::default()
    })
    .await
    .unwrap();
    let stream_set_up = Duration::from_millis(150);
    let fake = FakeKube::start(FakeKubeOptions {
        backend: Some(sim.addr),
        forward_delay: stream_set_up,
        ..Default::default()
    })
    .await;
    let client = fake.client();
    let pp = PatchParams::apply("t");
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    apply_deployment(&deploys, &pp, "engine", "engine", 1, 8000)
        .await
        .unwrap();
    let svcs: Api<Service> = Api::default_namespaced(client.clone());
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "engine"},
        "spec": {"selector": {"app": "engine"}, "ports": [{"port": 80, "targetPort": 8000}]},
    });
    apply(&svcs, &pp, "engine", &svc).await.unwrap();
    let kube = lmbench::deploy::k8s::Kube::new(client, "default");
    let fwd = kube.port_forward("engine", 80, 0).await.unwrap();

    let cfg = ClientConfig {
        base_url: format!("http://{}", fwd.local_addr),
        model: lmbench::sim::SimConfig::default().model,
        api: ApiType::Completions,
        request_timeout: Duration::from_secs(20),
        api_key: None,
        extra_body: Default::default(),
        ca_cert: None,
    };
    let spec = |id| RequestSpec {
        id,
        user_id: Some(id),
        round: 1,
        due_s: 0.0,
        slot_s: None,
        prompt: Prompt::Text("through the port-forward".into()),
        max_tokens: 4,
        client_prompt_tokens: 4,
        warmup: false,
        extra: Default::default(),
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let epoch = tokio::time::Instant::now();

    let warm = Client::new(cfg.clone()).unwrap();
    assert_eq!(warm.warm_up(1, Duration::from_secs(10)).await, 1);
    assert_eq!(fake.port_forwards().len(), 1);
    for id in 0..3 {
        if id > 0 {
            tokio::time::sleep(Duration::from_millis(3500)).await;
        }
        let r = warm.send(&spec(id), epoch, &cancel).await.record;
        assert!(r.ok(), "{:?}", r.error);
        assert_eq!((r.new_connection, r.connect_ms), (Some(false), None));
        let ttft = r.first_token_s.unwrap() - r.sent_s;
        assert!(ttft < 0.14, "request {id}: TTFT {ttft} s");
    }
    let forwards = fake.port_forwards();
    assert_eq!(forwards.len(), 1, "{forwards:?}");
    assert!(forwards[0].bytes_from_pod > 0);

    // A client without warm connections: its first request waits for the stream.
    let cold = Client::new(cfg).unwrap();
    let r = cold.send(&spec(9), epoch, &cancel).await.record;
    assert!(r.ok(), "{:?}", r.error);
    assert_eq!(r.new_connection, Some(true));
    let connect_ms = r.connect_ms.unwrap();
    let ttft_ms = (r.first_token_s.unwrap() - r.sent_s) * 1000.0;
    eprintln!(
        "through the port-forward: 3 requests 3.5 s apart on 1 stream; a new connection: \
         connect {connect_ms:.1} ms (stream set-up 150 ms), TTFT {ttft_ms:.1} ms"
    );
    assert!(connect_ms >= 150.0, "connect {connect_ms} ms");
    assert!(
        ttft_ms >= connect_ms,
        "TTFT {ttft_ms} ms, connect {connect_ms} ms"
    );
    assert_eq!(fake.port_forwards().len(), 2);
    fwd.shutdown().await;
    sim.shutdown().await.unwrap();
}
