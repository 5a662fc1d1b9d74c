//! HTTP side of the fake API server: recording each request, routing the Kubernetes REST
//! paths (discovery, collections, objects, `log` and `portforward` subresources), and answering
//! as a real API server does (List objects, `Status` errors, watch streams).

use super::api::{self, ApiError, Resource};
use super::controllers::{self, reconcile};
use super::select::{FieldSelector, LabelSelector};
use super::store::{Key, Propagation, Store, WriteOp};
use super::{portforward, PortForwardStats, RecordedRequest};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// State shared by the handlers and the [`super::FakeKube`] handle.
pub struct Shared {
    pub store: Mutex<Store>,
    pub requests: Mutex<Vec<RecordedRequest>>,
    pub backend: Mutex<Option<SocketAddr>>,
    pub forwards: Mutex<Vec<Arc<PortForwardStats>>>,
    pub forward_delay: std::time::Duration,
    pub shutdown: CancellationToken,
}

impl Shared {
    /// The store, with every controller run up to now.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        let mut s = self.store.lock().unwrap_or_else(|e| e.into_inner());
        reconcile(&mut s, Instant::now());
        s
    }
}

/// Percent-decoding of one query component (`+` is a space).
fn decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=2` → pairs, decoded; empty segments (kube-rs starts its queries with `&`) skipped.
pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }
    fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// What a path names.
enum Target {
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    Version,
    Health,
    Collection {
        r: &'static Resource,
        ns: Option<String>,
    },
    Object {
        r: &'static Resource,
        ns: String,
        name: String,
    },
    Sub {
        r: &'static Resource,
        ns: String,
        name: String,
        sub: String,
    },
}

fn resource_path(g: &str, v: &str, rest: &[&str]) -> Result<Target, ApiError> {
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(r) = api::find(g, v, plural).filter(|r| r.namespaced) {
            let ns = ns.to_string();
            return match tail {
                [] => Ok(Target::Collection { r, ns: Some(ns) }),
                [name] => Ok(Target::Object {
                    r,
                    ns,
                    name: name.to_string(),
                }),
                [name, sub] if r.subresources.contains(sub) => Ok(Target::Sub {
                    r,
                    ns,
                    name: name.to_string(),
                    sub: sub.to_string(),
                }),
                _ => Err(ApiError::no_route()),
            };
        }
    }
    match rest {
        [plural] => {
            let r = api::find(g, v, plural).ok_or_else(ApiError::no_route)?;
            Ok(Target::Collection { r, ns: None })
        }
        [plural, name] => {
            let r = api::find(g, v, plural)
                .filter(|r| !r.namespaced)
                .ok_or_else(ApiError::no_route)?;
            Ok(Target::Object {
                r,
                ns: String::new(),
                name: name.to_string(),
            })
        }
        _ => Err(ApiError::no_route()),
    }
}

fn parse_path(path: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["api"] => Ok(Target::CoreVersions),
        ["apis"] => Ok(Target::Groups),
        ["version"] => Ok(Target::Version),
        ["healthz" | "readyz" | "livez"] => Ok(Target::Health),
        ["api", "v1"] => Ok(Target::ResourceList(String::new(), "v1".into())),
        ["apis", g] => Ok(Target::Group(g.to_string())),
        ["apis", g, v] if api::group_version_served(g, v) => {
            Ok(Target::ResourceList(g.to_string(), v.to_string()))
        }
        ["api", "v1", rest @ ..] => resource_path("", "v1", rest),
        ["apis", g, v, rest @ ..] => resource_path(g, v, rest),
        _ => Err(ApiError::no_route()),
    }
}

fn json_response(code: u16, v: &Value) -> Response {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

fn method_not_allowed(method: &Method) -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        format!("the server does not allow this method on the requested resource ({method})"),
    )
}

/// Parses a request body (JSON, or YAML for apply and `application/yaml`).
fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the body of the request is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("the body of the request was empty"));
    }
    serde_json::from_str(text).or_else(|_| {
        serde_saphyr::from_str::<Value>(text).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        })
    })
}

fn list_object(r: &Resource, rv: String, items: Vec<Value>) -> Value {
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut o| {
            // Lists of built-in kinds carry apiVersion/kind once, not per item.
            if let Some(m) = o.as_object_mut() {
                if !r.group.contains('.') || r.group.ends_with("k8s.io") {
                    m.remove("apiVersion");
                    m.remove("kind");
                }
            }
            o
        })
        .collect();
    json!({"apiVersion": r.api_version(), "kind": format!("{}List", r.kind), "metadata": {"resourceVersion": rv}, "items": items})
}

/// The axum handler for every path.
pub async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match axum::body::to_bytes(body, 256 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            )))
        }
    };
    sh.requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RecordedRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            query: raw_query.trim_start_matches('&').to_string(),
            content_type: content_type.clone(),
            // Secrets (an HF token) stay out of the record, which tests may print.
            body: if path.contains("/secrets") {
                format!("<{} bytes of a Secret, not recorded>", body.len())
            } else {
                String::from_utf8_lossy(&body).into_owned()
            },
        });
    let query = Query(parse_query(&raw_query));
    let target = match parse_path(&path) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let method = parts.method.clone();
    if let Target::Sub { r, ns, name, sub } = &target {
        if sub == "portforward" && r.kind == "Pod" {
            if method != Method::GET {
                return error_response(&ApiError::bad_request("Upgrade request required"));
            }
            return portforward::handle(sh, &mut parts, ns, name, &query.all("ports")).await;
        }
    }
    let result = route(
        &sh,
        &method,
        &parts.headers,
        target,
        &query,
        content_type.as_deref(),
        &body,
    )
    .await;
    match result {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

fn discovery_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=APIGroupDiscoveryList"))
        })
}

fn aggregated_response(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )],
        v.to_string(),
    )
        .into_response()
}

fn manager_of(query: &Query, headers: &HeaderMap) -> String {
    match query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string(),
    }
}

fn dry_run(query: &Query) -> Result<bool, ApiError> {
    match query.get("dryRun") {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dryRun value {other:?}: only \"All\" is supported"
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn route(
    sh: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    target: Target,
    query: &Query,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let now = Instant::now();
    match target {
        Target::CoreVersions
        | Target::Groups
        | Target::Group(_)
        | Target::ResourceList(..)
        | Target::Version
        | Target::Health
            if method != Method::GET =>
        {
            Err(method_not_allowed(method))
        }
        Target::CoreVersions if discovery_aggregated(headers) => {
            Ok(aggregated_response(&api::aggregated(true)))
        }
        Target::Groups if discovery_aggregated(headers) => {
            Ok(aggregated_response(&api::aggregated(false)))
        }
        Target::CoreVersions => {
            let addr = sh.store().server_address.clone();
            Ok(json_response(200, &api::core_versions(&addr)))
        }
        Target::Groups => Ok(json_response(200, &api::group_list())),
        Target::Group(g) => api::group(&g)
            .map(|v| json_response(200, &v))
            .ok_or_else(ApiError::no_route),
        Target::ResourceList(g, v) => Ok(json_response(200, &api::resource_list(&g, &v))),
        Target::Version => Ok(json_response(
            200,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64"}),
        )),
        Target::Health => Ok((StatusCode::OK, "ok").into_response()),
        Target::Collection { r, ns } => {
            collection(sh, method, headers, r, ns, query, body, now).await
        }
        Target::Object { r, ns, name } => object(
            sh,
            method,
            headers,
            r,
            &ns,
            &name,
            query,
            content_type,
            body,
            now,
        ),
        Target::Sub { r, ns, name, sub } => {
            if sub == "log" && method == Method::GET {
                logs(sh, r, &ns, &name, query, now)
            } else {
                Err(method_not_allowed(method))
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn collection(
    sh: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    r: &'static Resource,
    ns: Option<String>,
    query: &Query,
    body: &[u8],
    now: Instant,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), r)?;
    if *method == Method::GET {
        if query.flag("watch") {
            return watch(sh, r, ns, labels, fields, query);
        }
        let s = sh.store();
        let items = s.list(r, ns.as_deref(), &labels, &fields);
        return Ok(json_response(200, &list_object(r, s.current_rv(), items)));
    }
    if *method == Method::POST {
        let ns = match (r.namespaced, ns) {
            (true, Some(ns)) => ns,
            (false, None) => String::new(),
            _ => return Err(method_not_allowed(method)),
        };
        let obj = parse_body(body)?;
        let manager = manager_of(query, headers);
        let dry = dry_run(query)?;
        let (stored, _) =
            sh.store()
                .write(r, &ns, None, obj, &manager, WriteOp::Create, dry, now)?;
        return Ok(json_response(201, &stored));
    }
    if *method == Method::DELETE {
        let (propagation, dry) = delete_options(query, body)?;
        let mut s = sh.store();
        let victims = s.list(r, ns.as_deref(), &labels, &fields);
        let mut deleted = Vec::new();
        for v in victims {
            let key = Key::new(
                r,
                v["metadata"]["namespace"].as_str().unwrap_or(""),
                v["metadata"]["name"].as_str().unwrap_or(""),
            );
            if let Some(o) = s.delete(&key, propagation, dry) {
                deleted.push(o);
            }
        }
        let rv = s.current_rv();
        return Ok(json_response(200, &list_object(r, rv, deleted)));
    }
    Err(method_not_allowed(method))
}

fn delete_options(query: &Query, body: &[u8]) -> Result<(Propagation, bool), ApiError> {
    let opts: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_body(body)?
    };
    let policy = opts["propagationPolicy"]
        .as_str()
        .or(query.get("propagationPolicy"))
        .unwrap_or("Background");
    let propagation = match policy {
        "Background" | "Foreground" => Propagation::Cascade,
        "Orphan" => Propagation::Orphan,
        other => {
            return Err(ApiError::new(
                422,
                "Invalid",
                format!("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""),
            ))
        }
    };
    let dry = dry_run(query)?
        || opts["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"));
    Ok((propagation, dry))
}

#[allow(clippy::too_many_arguments)]
fn object(
    sh: &Arc<Shared>,
    method: &Method,
    headers: &HeaderMap,
    r: &'static Resource,
    ns: &str,
    name: &str,
    query: &Query,
    content_type: Option<&str>,
    body: &[u8],
    now: Instant,
) -> Result<Response, ApiError> {
    let key = Key::new(r, ns, name);
    match *method {
        Method::GET => {
            let s = sh.store();
            let stored = s.get(&key).ok_or_else(|| ApiError::not_found(r, name))?;
            Ok(json_response(200, &stored.obj))
        }
        Method::PUT => {
            let obj = parse_body(body)?;
            let manager = manager_of(query, headers);
            let dry = dry_run(query)?;
            let (stored, created) =
                sh.store()
                    .write(r, ns, Some(name), obj, &manager, WriteOp::Replace, dry, now)?;
            Ok(json_response(if created { 201 } else { 200 }, &stored))
        }
        Method::PATCH => {
            let ct = content_type
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let force = query.get("force");
            let op = match ct.as_str() {
                "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                    let manager = query.get("fieldManager").unwrap_or("");
                    if manager.is_empty() {
                        return Err(ApiError {
                            details: Some(json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]})),
                            ..ApiError::new(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
                        });
                    }
                    WriteOp::Apply { force: force == Some("true") }
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    if force.is_some() {
                        return Err(ApiError::new(
                            422,
                            "Invalid",
                            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
                        ));
                    }
                    WriteOp::Merge
                }
                _ => {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {ct:?}; this fake does not serve application/json-patch+json)"),
                    ))
                }
            };
            let obj = parse_body(body)?;
            let manager = manager_of(query, headers);
            let dry = dry_run(query)?;
            let (stored, created) =
                sh.store()
                    .write(r, ns, Some(name), obj, &manager, op, dry, now)?;
            Ok(json_response(if created { 201 } else { 200 }, &stored))
        }
        Method::DELETE => {
            let (propagation, dry) = delete_options(query, body)?;
            let opts: Value = serde_json::from_slice(body).unwrap_or(json!({}));
            let mut s = sh.store();
            let current = s
                .get(&key)
                .ok_or_else(|| ApiError::not_found(r, name))?
                .obj
                .clone();
            if let Some(uid) = opts["preconditions"]["uid"].as_str() {
                if current["metadata"]["uid"] != uid {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", current["metadata"]["uid"].as_str().unwrap_or("")),
                    ));
                }
            }
            let deleted = s
                .delete(&key, propagation, dry)
                .ok_or_else(|| ApiError::not_found(r, name))?;
            let returns_object =
                r.kind == "Pod" || r.kind == "Namespace" || r.group.ends_with("example.com");
            if returns_object {
                let mut o = deleted;
                o["metadata"]["deletionTimestamp"] = json!(s.ts(now));
                if r.kind == "Pod" {
                    o["metadata"]["deletionGracePeriodSeconds"] = json!(30);
                }
                if r.kind == "Namespace" {
                    o["status"]["phase"] = json!("Terminating");
                }
                Ok(json_response(200, &o))
            } else {
                let uid = deleted["metadata"]["uid"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                Ok(json_response(200, &api::success_status(r, name, &uid)))
            }
        }
        _ => Err(method_not_allowed(method)),
    }
}

/// `GET .../pods/{pod}/log`: a few lines naming the pod; the real server's 400s for a
/// container that has not started, an unnamed container of a multi-container pod, and a
/// `previous` log that does not exist.
fn logs(
    sh: &Arc<Shared>,
    r: &'static Resource,
    ns: &str,
    name: &str,
    query: &Query,
    now: Instant,
) -> Result<Response, ApiError> {
    let s = sh.store();
    let stored = s
        .get(&Key::new(r, ns, name))
        .ok_or_else(|| ApiError::not_found(r, name))?;
    let pod = &stored.obj;
    let sim = stored
        .sim
        .clone()
        .ok_or_else(|| ApiError::not_found(r, name))?;
    let containers: Vec<&Value> = pod["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match query.get("container") {
        Some(c) if !c.is_empty() => {
            if !names.contains(&c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            c.to_string()
        }
        _ if names.len() == 1 => names[0].to_string(),
        _ => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    };
    if sim.pending {
        return Err(ApiError::bad_request(format!("container \"{container}\" in pod \"{name}\" is waiting to start: PodScheduled is False (Unschedulable)")));
    }
    if !controllers::started(&s, &sim, now) {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let crashed = sim.crash && names.first() == Some(&container.as_str());
    if query.flag("previous") && !crashed {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    let image = containers
        .iter()
        .find(|c| c["name"] == container.as_str())
        .and_then(|c| c["image"].as_str())
        .unwrap_or("");
    let start = sim.created + s.opts.ready_after;
    let mut lines = vec![
        (start, format!("fake-kube: container {container} of pod {name} (namespace {ns}) started from image {image}")),
        (start, format!("fake-kube: pod {name} running workload {}", sim.workload)),
    ];
    if crashed {
        let pattern = s.opts.crash.clone().unwrap_or_default();
        lines.push((
            start,
            format!(
                "RuntimeError: pod {name} crashed on purpose (fake kube option crash={pattern:?})"
            ),
        ));
        lines.push((
            start,
            format!("fake-kube: container {container} of pod {name} exited with code 1"),
        ));
    } else {
        lines.push((start, format!("fake-kube: pod {name} is ready")));
    }
    if let Some(n) = query.get("tailLines").and_then(|t| t.parse::<usize>().ok()) {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    let ts = query.flag("timestamps");
    let mut text = String::new();
    for (t, l) in lines {
        if ts {
            let wall = s.ts(t);
            text.push_str(&wall.replace('Z', ".000000000Z"));
            text.push(' ');
        }
        text.push_str(&l);
        text.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "text/plain")], text).into_response())
}

/// `?watch=true`: newline-delimited watch events, replayed from `resourceVersion` (or an
/// ADDED per existing object when none is given), then live until `timeoutSeconds`.
fn watch(
    sh: &Arc<Shared>,
    r: &'static Resource,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &Query,
) -> Result<Response, ApiError> {
    let timeout = Duration::from_secs(
        query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800),
    );
    let from = query.get("resourceVersion").unwrap_or("").to_string();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(64);
    let mut first = Vec::new();
    let mut cursor;
    {
        let s = sh.store();
        cursor = s.rv_now();
        if from.is_empty() || from == "0" {
            for o in s.list(r, ns.as_deref(), &labels, &fields) {
                first.push(json!({"type": "ADDED", "object": o}));
            }
        } else {
            let since: u64 = from
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {from:?}")))?;
            if since < s.oldest_watchable() {
                return Err(ApiError::new(
                    410,
                    "Expired",
                    format!(
                        "too old resource version: {since} ({})",
                        s.oldest_watchable()
                    ),
                ));
            }
            cursor = since;
        }
    }
    let matches = move |k: &Key, o: &Value| {
        k.group == r.group
            && k.plural == r.plural
            && ns.as_deref().is_none_or(|n| k.namespace == n)
            && labels.matches(o)
            && fields.matches(o)
    };
    let shared = Arc::clone(sh);
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + timeout;
        for ev in first {
            if tx.send(Ok(format!("{ev}\n").into())).await.is_err() {
                return;
            }
        }
        loop {
            let events: Vec<Value> = {
                let s = shared.store();
                let evs = s
                    .history
                    .iter()
                    .filter(|(rv, _, k, o)| *rv > cursor && matches(k, o))
                    .map(|(_, ty, _, o)| json!({"type": ty, "object": o}))
                    .collect();
                cursor = s.rv_now();
                evs
            };
            for ev in events {
                if tx.send(Ok(format!("{ev}\n").into())).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = shared.shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}
