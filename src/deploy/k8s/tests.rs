//! Tests of the Kubernetes client: pure decisions directly, API request sequences against a
//! tower-test mock that records each request and answers it like an API server would.

use std::path::Path;
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::client::Body;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_test::mock;

use super::apply::{builtin_resource, manifest_objects, parse_documents};
use super::logs::describe_pod;
use super::pods::{event_lines, not_ready_report, readiness};
use super::portforward::{container_port, pick_pod, service_selector, service_target_port};
use super::*;

// ---------------------------------------------------------------------------------------------
// The mock API server
// ---------------------------------------------------------------------------------------------

/// One request as the mock saw it (query percent-decoded).
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: String,
}

impl Seen {
    /// `METHOD /path` for sequence assertions.
    fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn body_json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// An answer: HTTP status and body.
struct Reply(u16, String);

fn ok(v: Value) -> Reply {
    Reply(200, v.to_string())
}

fn text(s: &str) -> Reply {
    Reply(200, s.to_owned())
}

fn status(code: u16, reason: &str, message: &str) -> Reply {
    Reply(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code})
        .to_string(),
    )
}

/// The API server's answer for a group/version or kind it does not serve.
fn not_served() -> Reply {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// The API server's answer to a DELETE it carried out.
fn deleted() -> Reply {
    ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// A [`Kube`] on namespace `bench` whose requests the mock answers with `answer` until the
/// client is dropped; the task returns the requests seen (see [`finish`]).
fn serve<F>(mut answer: F) -> (Kube, JoinHandle<Vec<Seen>>)
where
    F: FnMut(&Seen) -> Reply + Send + 'static,
{
    let (svc, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(svc, "bench");
    let kube = Kube::new(client, "bench").with_poll_interval(Duration::from_millis(1));
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((req, send)) = handle.next_request().await {
            let (parts, body) = req.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let s = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: percent_decode(parts.uri.query().unwrap_or("")),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            };
            let Reply(code, body) = answer(&s);
            seen.push(s);
            let ctype = if body.starts_with('{') {
                "application/json"
            } else {
                "text/plain"
            };
            send.send_response(
                Response::builder()
                    .status(code)
                    .header(http::header::CONTENT_TYPE, ctype)
                    .body(Body::from(body.into_bytes()))
                    .unwrap(),
            );
        }
        seen
    });
    (kube, server)
}

/// Drop the client and collect what the mock saw.
async fn finish(kube: Kube, server: JoinHandle<Vec<Seen>>) -> Vec<Seen> {
    drop(kube);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("mock server did not end")
        .unwrap()
}

fn lines(seen: &[Seen]) -> Vec<String> {
    seen.iter().map(Seen::line).collect()
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const TOKEN_B64: &str = "aGZfc2VjcmV0X3Rva2VuX3ZhbHVl";

fn manifest() -> String {
    format!(
        "---
apiVersion: v1
kind: Secret
metadata:
  name: hf-token-secret
type: Opaque
data:
  token: {TOKEN_B64}
---
# only a comment: an empty document
---
apiVersion: v1
kind: Service
metadata:
  name: vllm-router-service
spec:
  selector:
    app: router
  ports:
    - port: 80
      targetPort: http
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm
  labels: {{app: vllm}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: vllm}}
  template:
    metadata:
      labels: {{app: vllm}}
    spec:
      containers:
        - name: vllm
          image: vllm/vllm-openai:latest
---
apiVersion: example.com/v1
kind: Foo
metadata:
  name: my-foo
  namespace: other
spec:
  size: 3
---
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: ConfigMap
    metadata:
      name: cm-a
    data:
      k: v
  - apiVersion: v1
    kind: Namespace
    metadata:
      name: extra
      namespace: ignored
"
    )
}

fn foo_resources(namespaced: bool) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "example.com/v1",
        "resources": [
            {"name": "foos", "singularName": "foo", "namespaced": namespaced, "kind": "Foo",
             "verbs": ["get", "list", "patch", "delete"]},
            {"name": "foos/status", "singularName": "", "namespaced": namespaced, "kind": "Foo",
             "verbs": ["get", "patch"]}
        ]
    })
}

/// Answer an apply PATCH like the API server: the object back.
fn echo(s: &Seen) -> Reply {
    Reply(200, s.body.clone())
}

/// Apply `yaml` (read from `file`) against the mock, which answers with `answer` or, where
/// that has nothing to say, like the API server to an apply ([`echo`]); the result and the
/// requests seen.
async fn apply_against<F>(
    yaml: &str,
    file: &str,
    mut answer: F,
) -> (Result<Vec<AppliedObject>, K8sError>, Vec<Seen>)
where
    F: FnMut(&Seen) -> Option<Reply> + Send + 'static,
{
    let (kube, server) = serve(move |s| answer(s).unwrap_or_else(|| echo(s)));
    let applied = kube.apply_manifests(yaml, Path::new(file)).await;
    (applied, finish(kube, server).await)
}

fn pod_json(name: &str, phase: &str, ready: bool, waiting: Option<(&str, &str)>) -> Value {
    let mut status = json!({
        "phase": phase,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    });
    if phase != "Pending" || waiting.is_some() {
        let state = match waiting {
            Some((reason, message)) => json!({"waiting": {"reason": reason, "message": message}}),
            None => json!({"running": {"startedAt": "2025-01-01T00:00:00Z"}}),
        };
        status["containerStatuses"] = json!([{
            "name": "vllm", "image": "vllm/vllm-openai:latest", "imageID": "", "ready": ready,
            "restartCount": 4, "state": state,
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}
        }]);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "labels": {"app": "vllm"}},
        "spec": {"nodeName": "minikube", "containers": [{"name": "vllm", "image": "vllm/vllm-openai:latest",
                 "ports": [{"name": "http", "containerPort": 8000}],
                 "env": [{"name": "HF_TOKEN", "value": "hf_plaintext_token"}]}]},
        "status": status
    })
}

fn pod_list(pods: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods})
}

fn event(pod: &str, reason: &str, message: &str, at: &str) -> Value {
    json!({
        "metadata": {"name": format!("{pod}.{reason}")},
        "involvedObject": {"kind": "Pod", "name": pod},
        "reason": reason, "message": message, "type": "Warning", "lastTimestamp": at, "count": 3
    })
}

fn event_list(events: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": events})
}

const UNSCHEDULABLE: &str = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.";

/// The events of a pod `vllm-0` that cannot be scheduled.
fn unschedulable_events() -> Value {
    event_list(vec![event(
        "vllm-0",
        "FailedScheduling",
        UNSCHEDULABLE,
        "2025-01-01T00:00:00Z",
    )])
}

fn pod(v: Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

/// `kube.wait_pods_ready` for `selector`, polling every 2 ms for at most `deadline_ms`, and
/// giving up after `max_bad_checks` checks in a row that find a container stuck.
async fn wait_fast(
    kube: &Kube,
    selector: Option<&str>,
    deadline_ms: u64,
    max_bad_checks: u32,
) -> Result<ReadyReport, K8sError> {
    let opts = WaitOptions {
        deadline: Duration::from_millis(deadline_ms),
        poll: Duration::from_millis(2),
        max_bad_checks,
    };
    kube.wait_pods_ready(selector, opts, &CancellationToken::new())
        .await
}

// ---------------------------------------------------------------------------------------------
// Manifest parsing (pure)
// ---------------------------------------------------------------------------------------------

#[test]
fn documents_are_numbered_as_in_the_file_and_empty_ones_skipped() {
    let docs = parse_documents(&manifest(), Path::new("m.yaml")).unwrap();
    let at: Vec<(usize, usize)> = docs.iter().map(|d| (d.at.doc, d.at.line)).collect();
    // The leading `---` opens document 1; document 2 is comment-only.
    assert_eq!(at, vec![(1, 1), (3, 11), (4, 22), (5, 39), (6, 47)]);
    assert_eq!(docs[0].value["data"]["token"], TOKEN_B64);
    assert_eq!(docs[1].value["spec"]["ports"][0]["port"], 80);

    let no_leading = "kind: A\n---\n\n---\n# c\n...\n";
    let docs = parse_documents(no_leading, Path::new("x")).unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!((docs[0].at.doc, docs[0].at.line), (1, 1));
    assert!(parse_documents("# nothing\n", Path::new("x"))
        .unwrap()
        .is_empty());
    assert!(parse_documents("", Path::new("x")).unwrap().is_empty());

    // YAML 1.1 scalars, as the API server's own clients read them.
    let docs = parse_documents(
        "%YAML 1.1\n--- {kind: A, mode: 0644, on: yes, port: 80, tag: \"0644\"}\n",
        Path::new("x"),
    )
    .unwrap();
    assert_eq!((docs[0].at.doc, docs[0].at.line), (1, 2));
    assert_eq!(docs[0].value["mode"], 420);
    assert_eq!(docs[0].value["port"], 80);
    assert_eq!(docs[0].value["on"], true);
    assert_eq!(docs[0].value["tag"], "0644");
}

#[test]
fn a_yaml_error_names_file_document_and_line_but_not_the_content() {
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: Secret\n\
         data:\n  token: \"{TOKEN_B64}\n  other: [\n"
    );
    let err = parse_documents(&yaml, Path::new("/x/manifests.yaml")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("/x/manifests.yaml: document 2 (line 4): invalid YAML"),
        "{msg}"
    );
    assert!(!msg.contains(TOKEN_B64), "{msg}");
    assert!(matches!(err, K8sError::Manifest { .. }));
}

#[test]
fn lists_are_expanded_and_objects_checked() {
    let docs = parse_documents(&manifest(), Path::new("m.yaml")).unwrap();
    let objs = manifest_objects(docs, Path::new("m.yaml")).unwrap();
    let names: Vec<(&str, &str, Option<usize>)> = objs
        .iter()
        .map(|o| (o.gvk.kind.as_str(), o.name.as_str(), o.at.item))
        .collect();
    assert_eq!(
        names,
        vec![
            ("Secret", "hf-token-secret", None),
            ("Service", "vllm-router-service", None),
            ("Deployment", "vllm", None),
            ("Foo", "my-foo", None),
            ("ConfigMap", "cm-a", Some(1)),
            ("Namespace", "extra", Some(2)),
        ]
    );
    assert_eq!(objs[2].gvk.group, "apps");
    assert_eq!(objs[3].namespace.as_deref(), Some("other"));

    let check = |yaml: &str| {
        let docs = parse_documents(yaml, Path::new("f.yaml")).unwrap();
        manifest_objects(docs, Path::new("f.yaml"))
            .unwrap_err()
            .to_string()
    };
    for (yaml, want) in [
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n",
            "document 1 (line 1): ConfigMap has no `metadata.name`",
        ),
        (
            "kind: ConfigMap\nmetadata: {name: a}\n",
            "missing `apiVersion`",
        ),
        (
            "---\n- a\n- b\n",
            "document 1 (line 1): expected a Kubernetes object",
        ),
        (
            "apiVersion: a/b/c\nkind: X\nmetadata: {name: n}\n",
            "apiVersion `a/b/c`",
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n  - {apiVersion: v1, kind: Pod}\n",
            "document 1 (line 1), item 1: Pod has no",
        ),
    ] {
        let e = check(yaml);
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn builtin_kinds_resolve_without_the_cluster() {
    use kube::api::GroupVersionKind;
    let (ar, namespaced) =
        builtin_resource(&GroupVersionKind::gvk("apps", "v1", "Deployment")).unwrap();
    assert_eq!(
        (ar.plural.as_str(), ar.api_version.as_str()),
        ("deployments", "apps/v1")
    );
    assert!(namespaced);
    let (ar, namespaced) = builtin_resource(&GroupVersionKind::gvk("", "v1", "Namespace")).unwrap();
    assert_eq!(ar.plural, "namespaces");
    assert!(!namespaced);
    assert!(builtin_resource(&GroupVersionKind::gvk("example.com", "v1", "Deployment")).is_none());
}

// ---------------------------------------------------------------------------------------------
// Apply and delete against the mock
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn apply_patches_every_object_with_server_side_apply() {
    let (applied, seen) = apply_against(&manifest(), "stack.yaml", |s| {
        (s.method == "GET" && s.path == "/apis/example.com/v1").then(|| ok(foo_resources(true)))
    })
    .await;
    let applied = applied.unwrap();
    assert_eq!(
        lines(&seen),
        vec![
            "PATCH /api/v1/namespaces/bench/secrets/hf-token-secret",
            "PATCH /api/v1/namespaces/bench/services/vllm-router-service",
            "PATCH /apis/apps/v1/namespaces/bench/deployments/vllm",
            "GET /apis/example.com/v1",
            "PATCH /apis/example.com/v1/namespaces/other/foos/my-foo",
            "PATCH /api/v1/namespaces/bench/configmaps/cm-a",
            "PATCH /api/v1/namespaces/extra",
        ]
    );
    for s in seen.iter().filter(|s| s.method == "PATCH") {
        assert!(s.query.contains("fieldManager=lmbench"), "{}", s.query);
        assert!(s.query.contains("force=true"), "{}", s.query);
        assert_eq!(s.content_type, "application/apply-patch+yaml");
    }
    // The body is the document itself, placed in the client's namespace.
    let secret = seen[0].body_json();
    assert_eq!(secret["data"]["token"], TOKEN_B64);
    assert_eq!(secret["metadata"]["namespace"], "bench");
    // A cluster-scoped object loses a stray namespace.
    assert!(seen[6].body_json()["metadata"].get("namespace").is_none());

    let summary: Vec<(String, String, Option<String>)> = applied
        .iter()
        .map(|o| (o.kind.clone(), o.name.clone(), o.namespace.clone()))
        .collect();
    let b = || Some("bench".to_owned());
    assert_eq!(
        summary,
        vec![
            ("Secret".into(), "hf-token-secret".into(), b()),
            ("Service".into(), "vllm-router-service".into(), b()),
            ("Deployment".into(), "vllm".into(), b()),
            ("Foo".into(), "my-foo".into(), Some("other".into())),
            ("ConfigMap".into(), "cm-a".into(), b()),
            ("Namespace".into(), "extra".into(), None),
        ]
    );
    assert_eq!(applied[3].resource.plural, "foos");
    assert_eq!(applied[3].api_version, "example.com/v1");
    assert_eq!(
        applied[0].to_string(),
        "Secret/hf-token-secret in namespace bench"
    );
}

#[tokio::test]
async fn a_refused_document_names_file_document_object_and_api_message() {
    let (applied, seen) = apply_against(&manifest(), "/specs/stack.yaml", |s| {
        s.path.ends_with("/deployments/vllm").then(|| {
            status(
                422,
                "Invalid",
                "Deployment.apps \"vllm\" is invalid: spec.template.spec.containers[0].image: Required value",
            )
        })
    })
    .await;
    let err = applied.unwrap_err();
    assert_eq!(seen.len(), 3, "stops at the refused document");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "/specs/stack.yaml: document 4 (line 22): applying Deployment/vllm in namespace bench: \
             Deployment.apps \"vllm\" is invalid: spec.template.spec.containers[0].image: Required value"
        ),
        "{msg}"
    );
    assert!(msg.contains("Invalid, HTTP 422"), "{msg}");
    assert!(!msg.contains(TOKEN_B64));
    let before: Vec<&str> = err
        .partially_applied()
        .iter()
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(before, vec!["hf-token-secret", "vllm-router-service"]);
}

#[tokio::test]
async fn an_unknown_kind_fails_without_retrying() {
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\
                apiVersion: example.com/v1\nkind: Foo\nmetadata: {name: f}\n";
    let (applied, seen) =
        apply_against(yaml, "f.yaml", |s| (s.method == "GET").then(not_served)).await;
    let err = applied.unwrap_err();
    assert_eq!(
        lines(&seen),
        vec![
            "PATCH /api/v1/namespaces/bench/configmaps/a",
            "GET /apis/example.com/v1"
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "f.yaml: document 2 (line 4): Foo/f: the cluster does not serve kind Foo in example.com/v1"
        ),
        "{msg}"
    );
    assert_eq!(err.partially_applied().len(), 1);
}

#[tokio::test]
async fn a_custom_kind_after_its_crd_is_discovered_once_served() {
    let yaml = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
                metadata: {name: foos.example.com}\n---\n\
                apiVersion: example.com/v1\nkind: Foo\nmetadata: {name: f, namespace: x}\n---\n\
                apiVersion: example.com/v1\nkind: Foo\nmetadata: {name: g}\n";
    let mut discovery_calls = 0;
    let (applied, seen) = apply_against(yaml, "crd.yaml", move |s| {
        (s.method == "GET").then(|| {
            discovery_calls += 1;
            // The new kind is served from the third discovery on.
            if discovery_calls < 3 {
                not_served()
            } else {
                ok(foo_resources(false))
            }
        })
    })
    .await;
    let applied = applied.unwrap();
    assert_eq!(
        lines(&seen),
        vec![
            "PATCH /apis/apiextensions.k8s.io/v1/customresourcedefinitions/foos.example.com",
            "GET /apis/example.com/v1",
            "GET /apis/example.com/v1",
            "GET /apis/example.com/v1",
            "PATCH /apis/example.com/v1/foos/f",
            // resolved once per kind
            "PATCH /apis/example.com/v1/foos/g",
        ]
    );
    assert_eq!(applied[1].namespace, None);
}

fn applied_fixture() -> Vec<AppliedObject> {
    use kube::api::GroupVersionKind;
    let obj = |group: &str, kind: &str, name: &str| {
        let gvk = GroupVersionKind::gvk(group, "v1", kind);
        AppliedObject {
            api_version: gvk.api_version(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            namespace: Some("bench".to_owned()),
            resource: builtin_resource(&gvk).unwrap().0,
        }
    };
    vec![
        obj("", "Secret", "hf-token-secret"),
        obj("", "Service", "vllm-router-service"),
        obj("apps", "Deployment", "vllm"),
    ]
}

#[tokio::test]
async fn delete_goes_in_reverse_order_and_accepts_gone_objects() {
    let (kube, server) = serve(|s| {
        if s.path.contains("/services/") {
            status(
                404,
                "NotFound",
                "services \"vllm-router-service\" not found",
            )
        } else {
            deleted()
        }
    });
    kube.delete_objects(&applied_fixture()).await.unwrap();
    let seen = finish(kube, server).await;
    assert_eq!(
        lines(&seen),
        vec![
            "DELETE /apis/apps/v1/namespaces/bench/deployments/vllm",
            "DELETE /api/v1/namespaces/bench/services/vllm-router-service",
            "DELETE /api/v1/namespaces/bench/secrets/hf-token-secret",
        ]
    );
    for s in &seen {
        assert_eq!(
            s.body_json()["propagationPolicy"],
            "Background",
            "{}",
            s.body
        );
    }
}

#[tokio::test]
async fn delete_tries_every_object_and_reports_failures() {
    let (kube, server) = serve(|s| {
        if s.path.contains("/deployments/") {
            status(403, "Forbidden", "deployments.apps \"vllm\" is forbidden")
        } else {
            deleted()
        }
    });
    let err = kube.delete_objects(&applied_fixture()).await.unwrap_err();
    let seen = finish(kube, server).await;
    assert_eq!(seen.len(), 3);
    assert_eq!(
        err.to_string(),
        "could not delete 1 object(s): Deployment/vllm in namespace bench: \
         deployments.apps \"vllm\" is forbidden (Forbidden, HTTP 403)"
    );
}

// ---------------------------------------------------------------------------------------------
// Pod readiness
// ---------------------------------------------------------------------------------------------

#[test]
fn readiness_ignores_finished_and_terminating_pods_and_spots_stuck_containers() {
    let mut terminating = pod_json("old-0", "Running", false, None);
    terminating["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    let pods = vec![
        pod(pod_json("b-ready", "Running", true, None)),
        pod(pod_json("a-done", "Succeeded", false, None)),
        pod(terminating),
        pod(pod_json(
            "c-crash",
            "Running",
            false,
            Some((
                "CrashLoopBackOff",
                "back-off 40s restarting failed container",
            )),
        )),
    ];
    let r = readiness(&pods);
    assert_eq!(r.ready, vec!["b-ready"]);
    assert_eq!(r.not_ready.len(), 1);
    assert_eq!(r.not_ready[0].pod, "c-crash");
    assert_eq!(r.stuck.len(), 1);
    assert_eq!(r.stuck[0].reason, "CrashLoopBackOff");
    assert_eq!(
        r.stuck[0].message,
        "back-off 40s restarting failed container; last exit code 1 (Error)"
    );
    assert!(!r.all_ready());
    assert!(readiness(&pods[..2]).all_ready());
    assert!(!readiness(&pods[1..2]).all_ready(), "no pod that counts");
    assert_eq!(
        r.ignored,
        vec!["a-done (Succeeded)", "old-0 (Running, terminating)"]
    );
    let none = not_ready_report(&readiness(&pods[1..3]), &Default::default());
    assert_eq!(
        none,
        "  no pod that can serve; finished or terminating: a-done (Succeeded), \
         old-0 (Running, terminating)"
    );
    assert_eq!(
        not_ready_report(&readiness(&[]), &Default::default()),
        "  no pod matched"
    );
    assert!(!readiness(&[]).all_ready());
}

#[test]
fn events_are_listed_oldest_first_and_capped() {
    let events: Vec<Event> = (0..8)
        .rev()
        .map(|i| {
            serde_json::from_value(event(
                "p",
                &format!("R{i}"),
                "m",
                &format!("2025-01-01T00:00:0{i}Z"),
            ))
            .unwrap()
        })
        .collect();
    let lines = event_lines(&events);
    assert_eq!(
        lines,
        (3..8)
            .map(|i| format!("Warning R{i}: m (x3)"))
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn wait_reports_pending_events_then_succeeds_when_ready() {
    let mut polls = 0;
    let (kube, server) = serve(move |s| {
        if s.path == "/api/v1/namespaces/bench/pods" {
            polls += 1;
            if polls == 1 {
                ok(pod_list(vec![pod_json("vllm-0", "Pending", false, None)]))
            } else {
                ok(pod_list(vec![pod_json("vllm-0", "Running", true, None)]))
            }
        } else {
            ok(unschedulable_events())
        }
    });
    let report = wait_fast(&kube, Some("app=vllm"), 10_000, 6).await.unwrap();
    let seen = finish(kube, server).await;
    assert_eq!(report.pods, vec!["vllm-0"]);
    assert_eq!(
        lines(&seen),
        vec![
            "GET /api/v1/namespaces/bench/pods",
            "GET /api/v1/namespaces/bench/events",
            "GET /api/v1/namespaces/bench/pods",
        ]
    );
    assert!(
        seen[0].query.contains("labelSelector=app=vllm"),
        "{}",
        seen[0].query
    );
    assert!(
        seen[1]
            .query
            .contains("fieldSelector=involvedObject.name=vllm-0"),
        "{}",
        seen[1].query
    );
}

#[tokio::test]
async fn wait_deadline_lists_pending_pods_with_their_events() {
    let (kube, server) = serve(|s| {
        if s.path.ends_with("/pods") {
            ok(pod_list(vec![
                pod_json("vllm-0", "Pending", false, None),
                pod_json("router-0", "Running", true, None),
            ]))
        } else {
            ok(unschedulable_events())
        }
    });
    let err = wait_fast(&kube, None, 30, 1000).await.unwrap_err();
    finish(kube, server).await;
    let msg = err.to_string();
    assert!(matches!(err, K8sError::PodsNotReady { .. }), "{msg}");
    assert!(
        msg.starts_with("pods in namespace bench not ready after"),
        "{msg}"
    );
    assert!(msg.contains("\n  vllm-0: Pending\n"), "{msg}");
    assert!(
        msg.contains(&format!(
            "    Warning FailedScheduling: {UNSCHEDULABLE} (x3)"
        )),
        "{msg}"
    );
    assert!(msg.contains("ready: router-0"), "{msg}");
}

#[tokio::test]
async fn wait_gives_up_early_on_a_crash_loop() {
    let (kube, server) = serve(|_| {
        ok(pod_list(vec![pod_json(
            "vllm-0",
            "Running",
            false,
            Some((
                "CrashLoopBackOff",
                "back-off 10s restarting failed container=vllm",
            )),
        )]))
    });
    let err = wait_fast(&kube, None, 60_000, 3).await.unwrap_err();
    let seen = finish(kube, server).await;
    assert_eq!(
        seen.len(),
        3,
        "one list per check, no events for a running pod"
    );
    assert_eq!(
        err.to_string(),
        "pod vllm-0 container vllm: CrashLoopBackOff for 3 consecutive checks: \
         back-off 10s restarting failed container=vllm; last exit code 1 (Error)"
    );
}

#[tokio::test]
async fn a_crash_loop_that_recovers_resets_the_count() {
    let mut polls = 0;
    let (kube, server) = serve(move |_| {
        polls += 1;
        let p = match polls {
            1 | 2 | 4 | 5 => pod_json("vllm-0", "Running", false, Some(("CrashLoopBackOff", "x"))),
            3 => pod_json("vllm-0", "Running", false, None),
            _ => pod_json("vllm-0", "Running", true, None),
        };
        ok(pod_list(vec![p]))
    });
    let report = wait_fast(&kube, None, 60_000, 3).await.unwrap();
    let seen = finish(kube, server).await;
    assert_eq!(seen.len(), 6);
    assert_eq!(report.pods, vec!["vllm-0"]);
}

#[tokio::test]
async fn wait_stops_when_cancelled() {
    let (kube, server) = serve(|_| ok(pod_list(vec![pod_json("vllm-0", "Pending", false, None)])));
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        trigger.cancel();
    });
    let opts = WaitOptions {
        deadline: Duration::from_secs(60),
        poll: Duration::from_secs(30),
        max_bad_checks: 6,
    };
    let started = std::time::Instant::now();
    let err = kube.wait_pods_ready(None, opts, &cancel).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(err, K8sError::Cancelled { .. }), "{err}");
    finish(kube, server).await;
}

#[tokio::test]
async fn wait_pods_gone_polls_until_empty_or_lists_survivors() {
    let mut polls = 0;
    let (kube, server) = serve(move |_| {
        polls += 1;
        if polls < 3 {
            ok(pod_list(vec![pod_json("vllm-0", "Running", true, None)]))
        } else {
            ok(pod_list(vec![]))
        }
    });
    kube.wait_pods_gone(Some("app=vllm"), Duration::from_secs(10))
        .await
        .unwrap();
    let seen = finish(kube, server).await;
    assert_eq!(seen.len(), 3);
    assert!(seen[0].query.contains("labelSelector=app=vllm"));

    let (kube, server) = serve(|_| {
        let mut p = pod_json("vllm-0", "Running", true, None);
        p["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        ok(pod_list(vec![p]))
    });
    let err = kube
        .wait_pods_gone(Some("app=vllm"), Duration::from_millis(20))
        .await
        .unwrap_err();
    finish(kube, server).await;
    let msg = err.to_string();
    assert!(
        msg.starts_with("pods matching app=vllm in namespace bench still present after"),
        "{msg}"
    );
    assert!(msg.ends_with(": vllm-0 (Running, terminating)"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

fn two_container_pod() -> Value {
    let mut p = pod_json("vllm-0", "Running", false, None);
    p["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    p["status"]["containerStatuses"]
        .as_array_mut()
        .unwrap()
        .push(
            json!({"name": "sidecar", "image": "busybox", "imageID": "", "ready": false,
                     "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}}),
        );
    p
}

#[tokio::test]
async fn collect_logs_writes_logs_previous_logs_and_descriptions() {
    let (kube, server) = serve(|s| {
        let previous = s.query.contains("previous=true");
        match (s.path.as_str(), previous) {
            ("/api/v1/namespaces/bench/pods", _) => ok(pod_list(vec![
                pod_json("router-0", "Running", true, None),
                two_container_pod(),
            ])),
            ("/api/v1/namespaces/bench/pods/router-0/log", false) => {
                text("router line 1\nrouter line 2\n")
            }
            ("/api/v1/namespaces/bench/pods/router-0/log", true) => status(
                400,
                "BadRequest",
                "previous terminated container \"vllm\" in pod \"router-0\" not found",
            ),
            ("/api/v1/namespaces/bench/pods/vllm-0/log", false)
                if s.query.contains("container=vllm") =>
            {
                text("vllm serving\n")
            }
            ("/api/v1/namespaces/bench/pods/vllm-0/log", true)
                if s.query.contains("container=vllm") =>
            {
                text("CUDA out of memory\n")
            }
            ("/api/v1/namespaces/bench/pods/vllm-0/log", _) => status(
                400,
                "BadRequest",
                "container \"sidecar\" in pod \"vllm-0\" is waiting to start: ContainerCreating",
            ),
            ("/api/v1/namespaces/bench/events", _) => ok(event_list(vec![event(
                "x",
                "BackOff",
                "Back-off restarting failed container",
                "2025-01-01T00:00:00Z",
            )])),
            other => panic!("unexpected request {other:?}"),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pod-logs");
    let files = kube
        .collect_logs(&out, "KEY_synthetic_1.5", None)
        .await
        .unwrap();
    let seen = finish(kube, server).await;

    let logs = "/api/v1/namespaces/bench/pods";
    assert_eq!(
        lines(&seen),
        vec![
            format!("GET {logs}"),
            format!("GET {logs}/router-0/log"),
            format!("GET {logs}/router-0/log"),
            "GET /api/v1/namespaces/bench/events".to_owned(),
            format!("GET {logs}/vllm-0/log"),
            format!("GET {logs}/vllm-0/log"),
            format!("GET {logs}/vllm-0/log"),
            format!("GET {logs}/vllm-0/log"),
            "GET /api/v1/namespaces/bench/events".to_owned(),
        ]
    );
    assert!(seen[2].query.contains("previous=true"));
    assert!(seen[3]
        .query
        .contains("fieldSelector=involvedObject.name=router-0"));

    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            "router-0_KEY_synthetic_1.5.log",
            "router-0_KEY_synthetic_1.5_describe.txt",
            "vllm-0_vllm_KEY_synthetic_1.5.log",
            "vllm-0_vllm_KEY_synthetic_1.5_previous.log",
            "vllm-0_KEY_synthetic_1.5_describe.txt",
        ]
    );
    for f in &files {
        assert!(f.starts_with(&out) && f.exists(), "{}", f.display());
    }
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(
        read("router-0_KEY_synthetic_1.5.log"),
        "router line 1\nrouter line 2\n"
    );
    assert_eq!(
        read("vllm-0_vllm_KEY_synthetic_1.5_previous.log"),
        "CUDA out of memory\n"
    );
    assert!(!out.join("router-0_KEY_synthetic_1.5_previous.log").exists());

    let describe = read("vllm-0_KEY_synthetic_1.5_describe.txt");
    for want in [
        "Name:        vllm-0",
        "Node:        minikube",
        "Phase:       Running",
        "Ready=False",
        "  vllm:\n    Image:       vllm/vllm-openai:latest",
        "Ports:       8000/http",
        "Last state:  terminated (Error, exit code 1)",
        "Restarts:    4",
        "  sidecar:\n    Image:       busybox\n    State:       waiting (ContainerCreating)",
        "Events:\n  Warning BackOff: Back-off restarting failed container (x3)",
        "log of container sidecar unavailable: container \"sidecar\" in pod \"vllm-0\" is waiting to start",
    ] {
        assert!(describe.contains(want), "missing {want:?} in:\n{describe}");
    }
    assert!(
        !describe.contains("hf_plaintext_token"),
        "env values must not be written"
    );
}

#[test]
fn describe_notes_unavailable_events() {
    let text = describe_pod(
        &pod(pod_json("p", "Pending", false, None)),
        &Err("forbidden".to_owned()),
        &[],
    );
    assert!(text.contains("Phase:       Pending"), "{text}");
    assert!(text.contains("Events:\n  unavailable: forbidden"), "{text}");
    assert!(text.contains("State:       no status yet"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Port-forward resolution (pure); the socket path needs a server that speaks the port-forward
// websocket protocol and is tested elsewhere.
// ---------------------------------------------------------------------------------------------

fn service(target_port: Option<Value>) -> Service {
    let mut port = json!({"name": "http", "port": 80, "protocol": "TCP"});
    if let Some(t) = target_port {
        port["targetPort"] = t;
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "vllm-router-service"},
        "spec": {"selector": {"release": "vllm", "app": "router"}, "ports": [port]}
    }))
    .unwrap()
}

#[test]
fn service_selector_and_target_port() {
    assert_eq!(
        service_selector(&service(None)).unwrap(),
        "app=router,release=vllm"
    );
    let mut no_selector = service(None);
    no_selector.spec.as_mut().unwrap().selector = None;
    assert!(service_selector(&no_selector)
        .unwrap_err()
        .contains("no pod selector"));

    assert_eq!(
        service_target_port(&service(Some(json!(8000))), 80).unwrap(),
        TargetPort::Number(8000)
    );
    assert_eq!(
        service_target_port(&service(Some(json!("http"))), 80).unwrap(),
        TargetPort::Named("http".into())
    );
    assert_eq!(
        service_target_port(&service(None), 80).unwrap(),
        TargetPort::Number(80)
    );
    let e = service_target_port(&service(None), 8080).unwrap_err();
    assert_eq!(e, "the service has no port 8080 (it has: 80 (http))");
    let mut udp = service(None);
    udp.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].protocol = Some("UDP".into());
    assert!(service_target_port(&udp, 80)
        .unwrap_err()
        .contains("only TCP"));
}

#[test]
fn a_ready_pod_and_its_named_port_are_picked() {
    let named = TargetPort::Named("http".into());
    let p = pod(pod_json("router-b", "Running", true, None));
    assert_eq!(container_port(&p, &named), Some(8000));
    assert_eq!(container_port(&p, &TargetPort::Number(9000)), Some(9000));
    assert_eq!(
        container_port(&p, &TargetPort::Named("metrics".into())),
        None
    );

    let pods = vec![
        pod(pod_json("router-c", "Running", true, None)),
        pod(pod_json("router-a", "Pending", false, None)),
        p,
    ];
    assert_eq!(
        pick_pod(&pods, &named).unwrap(),
        ("router-b".to_owned(), 8000)
    );
    assert_eq!(
        pick_pod(&pods[1..2], &named).unwrap_err(),
        "none of the service's pods is ready: router-a (Pending)"
    );
    assert_eq!(
        pick_pod(&[], &named).unwrap_err(),
        "no pod matches the service's selector"
    );
    assert!(pick_pod(&pods, &TargetPort::Named("grpc".into()))
        .unwrap_err()
        .contains("no container of the ready pods declares a port named \"grpc\""));
}

#[tokio::test]
async fn port_forward_resolution_failures_are_reported_before_binding() {
    let (kube, server) = serve(|s| {
        if s.path.ends_with("/services/missing") {
            status(404, "NotFound", "services \"missing\" not found")
        } else if s.path.contains("/services/") {
            ok(serde_json::to_value(service(Some(json!("http")))).unwrap())
        } else {
            ok(pod_list(vec![pod_json("router-0", "Pending", false, None)]))
        }
    });
    let err = kube.port_forward("missing", 80, 0).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "port-forward to service missing:80 in namespace bench: no such service"
    );
    let err = kube
        .port_forward("vllm-router-service", 80, 0)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "port-forward to service vllm-router-service:80 in namespace bench: \
         none of the service's pods is ready: router-0 (Pending) (selector app=router,release=vllm)"
    );
    let seen = finish(kube, server).await;
    assert_eq!(
        lines(&seen),
        vec![
            "GET /api/v1/namespaces/bench/services/missing",
            "GET /api/v1/namespaces/bench/services/vllm-router-service",
            "GET /api/v1/namespaces/bench/pods",
        ]
    );
    assert!(seen[2]
        .query
        .contains("labelSelector=app=router,release=vllm"));
}

#[tokio::test]
async fn port_forward_refuses_a_taken_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (kube, server) = serve(|s| {
        if s.path.contains("/services/") {
            ok(serde_json::to_value(service(Some(json!("http")))).unwrap())
        } else {
            ok(pod_list(vec![pod_json("router-0", "Running", true, None)]))
        }
    });
    let err = kube
        .port_forward("vllm-router-service", 80, port)
        .await
        .unwrap_err();
    assert!(matches!(err, K8sError::Bind { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot listen on 127.0.0.1:{port} for the port-forward"
        )),
        "{err}"
    );

    // A free port: the listener is up and goes away on shutdown.
    let pf = kube
        .port_forward("vllm-router-service", 80, 0)
        .await
        .unwrap();
    let addr = pf.local_addr;
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    pf.shutdown().await;
    std::net::TcpListener::bind(addr).expect("port free again after shutdown");
    finish(kube, server).await;
}
