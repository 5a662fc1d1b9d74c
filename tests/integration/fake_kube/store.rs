//! The fake's object store and its writes: server-side apply (field managers, conflicts,
//! `force`), create, replace, merge patch, delete with owner-reference garbage collection,
//! defaulting of server-set fields, and the validation a real API server does that catches
//! client bugs (names, labels, selectors that do not match templates, immutable fields).

use super::api::{self, ApiError, Resource};
use super::select::{FieldSelector, LabelSelector};
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

/// Where an object lives: group + plural (no version: one stored copy per object) + namespace
/// ("" when cluster-scoped) + name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(r: &Resource, namespace: &str, name: &str) -> Self {
        Key {
            group: r.group.to_string(),
            plural: r.plural.to_string(),
            namespace: if r.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    pub fn resource(&self) -> &'static Resource {
        api::by_group_plural(&self.group, &self.plural)
    }
}

/// Leaves of an object: path of map keys → value (lists and scalars are leaves).
type Leaves = BTreeMap<Vec<String>, Value>;

/// One field manager's share of an object.
#[derive(Debug, Clone)]
struct Manager {
    name: String,
    apply: bool,
    api_version: String,
    time: String,
    leaves: Leaves,
}

/// The simulated life of a pod (the fake's kubelet).
#[derive(Debug, Clone)]
pub struct PodSim {
    /// When the pod object was created.
    pub created: Instant,
    /// The workload (Deployment, StatefulSet, DaemonSet, or the pod itself) it belongs to.
    pub workload: String,
    /// Its containers crash-loop once started.
    pub crash: bool,
    /// It is never scheduled (a FailedScheduling event says why).
    pub pending: bool,
    /// Its pod IP.
    pub ip: String,
    /// Events already written for it (by reason).
    pub events: Vec<&'static str>,
}

/// A stored object with its managers and, for pods, its simulation.
#[derive(Debug, Clone)]
pub struct Stored {
    pub obj: Value,
    managers: Vec<Manager>,
    pub sim: Option<PodSim>,
}

/// Behaviour knobs the store's controllers follow.
#[derive(Debug, Clone, Default)]
pub struct SimOptions {
    pub ready_after: Duration,
    pub crash: Option<String>,
    pub pending_with_event: Option<String>,
}

/// How a write came in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WriteOp {
    /// Server-side apply (PATCH application/apply-patch+yaml).
    Apply { force: bool },
    /// POST: the object must not exist.
    Create,
    /// PUT: the object must exist; the body is the whole object.
    Replace,
    /// PATCH merge-patch / strategic-merge-patch: the body is merged into the object.
    Merge,
}

/// Delete propagation policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Propagation {
    /// Dependents are deleted (Background and Foreground both end there; the fake is instant).
    Cascade,
    /// Dependents lose their owner reference and stay.
    Orphan,
}

/// All stored objects plus counters.
#[derive(Debug)]
pub struct Store {
    pub items: BTreeMap<Key, Stored>,
    rv: u64,
    counter: u64,
    start: Instant,
    start_wall: SystemTime,
    pub opts: SimOptions,
    pub server_address: String,
    /// Recent changes for watches: (resourceVersion, ADDED/MODIFIED/DELETED, key, object).
    pub history: std::collections::VecDeque<(u64, &'static str, Key, Value)>,
}

/// How many changes watches can replay.
const HISTORY: usize = 20_000;

/// The node every scheduled pod runs on.
pub const NODE: &str = "minikube";

fn fnv(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Characters the real controllers use for generated names and hashes.
fn safe_chars(mut h: u64, n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut s = String::new();
    for _ in 0..n {
        s.push(ALPHABET[(h % ALPHABET.len() as u64) as usize] as char);
        h /= ALPHABET.len() as u64;
        if h == 0 {
            h = fnv(s.as_bytes(), 7);
        }
    }
    s
}

/// A pod-template hash: 10 safe characters from the template's JSON.
pub fn template_hash(template: &Value) -> String {
    safe_chars(fnv(template.to_string().as_bytes(), 0), 10)
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn flatten(v: &Value, prefix: &mut Vec<String>, out: &mut Leaves) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                prefix.push(k.clone());
                flatten(x, prefix, out);
                prefix.pop();
            }
        }
        other if !prefix.is_empty() => {
            out.insert(prefix.clone(), other.clone());
        }
        _ => {}
    }
}

fn set_path(root: &mut Value, path: &[String], v: Value) {
    let mut cur = root;
    for p in &path[..path.len() - 1] {
        if !cur.is_object() {
            *cur = json!({});
        }
        cur = cur
            .as_object_mut()
            .expect("just made an object")
            .entry(p.clone())
            .or_insert_with(|| json!({}));
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    cur.as_object_mut()
        .expect("just made an object")
        .insert(path[path.len() - 1].clone(), v);
}

fn unflatten(leaves: &Leaves) -> Value {
    let mut root = json!({});
    for (p, v) in leaves {
        set_path(&mut root, p, v.clone());
    }
    root
}

/// The parts of an object the client owns: no status, no server-set metadata.
fn user_fields(obj: &Value) -> Value {
    let mut v = obj.clone();
    strip_nulls(&mut v);
    if let Some(m) = v.as_object_mut() {
        m.remove("status");
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "generation",
                "managedFields",
                "selfLink",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                meta.remove(k);
            }
        }
    }
    v
}

fn leaves_of(obj: &Value) -> Leaves {
    let mut out = Leaves::new();
    flatten(&user_fields(obj), &mut Vec::new(), &mut out);
    out
}

/// `managedFields[].fieldsV1` for a set of leaves: `{"f:spec": {"f:replicas": {}}}`.
fn fields_v1(leaves: &Leaves) -> Value {
    let mut root = json!({});
    for p in leaves.keys() {
        let path: Vec<String> = p.iter().map(|k| format!("f:{k}")).collect();
        set_path(&mut root, &path, json!({}));
    }
    root
}

fn json_merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn obj_name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_1123_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

type Causes = Vec<(String, String)>;

fn check_labels(labels: &Value, field: &str, causes: &mut Causes) {
    let Some(m) = labels.as_object() else {
        return;
    };
    for (k, v) in m {
        if !is_label_key(k) {
            causes.push((
                field.to_string(),
                format!("Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"),
            ));
        }
        match v.as_str() {
            Some(s) if is_label_value(s) => {}
            Some(s) => causes.push((
                field.to_string(),
                format!("Invalid value: {s:?}: {LABEL_VALUE_MSG}"),
            )),
            None => causes.push((
                format!("{field}[{k}]"),
                format!("Invalid value: {v}: label values must be strings"),
            )),
        }
    }
}

fn check_containers(spec: &Value, field: &str, causes: &mut Causes) {
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    if containers.is_empty() {
        causes.push((format!("{field}.containers"), "Required value".to_string()));
    }
    let mut seen = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let f = format!("{field}.containers[{i}]");
        match c["name"].as_str() {
            None | Some("") => causes.push((format!("{f}.name"), "Required value".into())),
            Some(n) if !is_dns_label(n) => causes.push((
                format!("{f}.name"),
                format!("Invalid value: {n:?}: {LABEL_1123_MSG}"),
            )),
            Some(n) if seen.contains(&n) => {
                causes.push((format!("{f}.name"), format!("Duplicate value: {n:?}")));
            }
            Some(n) => seen.push(n),
        }
        if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
            causes.push((format!("{f}.image"), "Required value".into()));
        }
        for (j, p) in c["ports"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let port = p["containerPort"].as_i64().unwrap_or(0);
            if !(1..=65535).contains(&port) {
                causes.push((
                    format!("{f}.ports[{j}].containerPort"),
                    format!(
                        "Invalid value: {}: must be between 1 and 65535, inclusive",
                        p["containerPort"]
                    ),
                ));
            }
        }
        for (j, e) in c["env"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            if e["name"].as_str().is_none_or(str::is_empty) {
                causes.push((format!("{f}.env[{j}].name"), "Required value".into()));
            }
        }
    }
}

/// The checks of a real API server that a client can trip over.
fn validate(r: &Resource, obj: &Value, old: Option<&Value>) -> Causes {
    let mut causes = Causes::new();
    let name = obj_name(obj);
    let name_ok = match r.kind {
        "Service" => {
            name.len() <= 63
                && is_dns_label(name)
                && name.starts_with(|c: char| c.is_ascii_lowercase())
        }
        "Namespace" => is_dns_label(name),
        _ => is_dns_subdomain(name),
    };
    if !name_ok {
        let msg = match r.kind {
            "Service" => LABEL_1035_MSG,
            "Namespace" => LABEL_1123_MSG,
            _ => SUBDOMAIN_MSG,
        };
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: {name:?}: {msg}"),
        ));
    }
    check_labels(&obj["metadata"]["labels"], "metadata.labels", &mut causes);
    let spec = &obj["spec"];
    match r.kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            let sel = &spec["selector"];
            if !sel.is_object()
                || (sel["matchLabels"].is_null() && sel["matchExpressions"].is_null())
            {
                causes.push(("spec.selector".into(), "Required value".into()));
            } else {
                check_labels(
                    &sel["matchLabels"],
                    "spec.selector.matchLabels",
                    &mut causes,
                );
                let tpl = &spec["template"]["metadata"]["labels"];
                if !LabelSelector::from_match_labels(&sel["matchLabels"]).matches(&spec["template"])
                {
                    causes.push((
                        "spec.template.metadata.labels".into(),
                        format!(
                            "Invalid value: {tpl}: `selector` does not match template `labels`"
                        ),
                    ));
                }
            }
            check_labels(
                &spec["template"]["metadata"]["labels"],
                "spec.template.metadata.labels",
                &mut causes,
            );
            check_containers(&spec["template"]["spec"], "spec.template.spec", &mut causes);
            if spec["replicas"].as_i64().is_some_and(|n| n < 0) {
                causes.push((
                    "spec.replicas".into(),
                    format!(
                        "Invalid value: {}: must be greater than or equal to 0",
                        spec["replicas"]
                    ),
                ));
            }
            if let Some(old) = old {
                if old["spec"]["selector"] != spec["selector"] {
                    causes.push((
                        "spec.selector".into(),
                        format!("Invalid value: {}: field is immutable", spec["selector"]),
                    ));
                }
            }
        }
        "Pod" => check_containers(spec, "spec", &mut causes),
        "Service" => {
            let ports = spec["ports"].as_array().cloned().unwrap_or_default();
            let headless = spec["clusterIP"] == "None";
            if ports.is_empty() && !headless && spec["type"] != "ExternalName" {
                causes.push(("spec.ports".into(), "Required value".into()));
            }
            let mut names = Vec::new();
            for (i, p) in ports.iter().enumerate() {
                let port = p["port"].as_i64().unwrap_or(0);
                if !(1..=65535).contains(&port) {
                    causes.push((
                        format!("spec.ports[{i}].port"),
                        format!(
                            "Invalid value: {}: must be between 1 and 65535, inclusive",
                            p["port"]
                        ),
                    ));
                }
                match p["name"].as_str() {
                    None | Some("") if ports.len() > 1 => {
                        causes.push((format!("spec.ports[{i}].name"), "Required value".into()));
                    }
                    Some(n) if names.contains(&n) => causes.push((
                        format!("spec.ports[{i}].name"),
                        format!("Duplicate value: {n:?}"),
                    )),
                    Some(n) => names.push(n),
                    None => {}
                }
                match &p["targetPort"] {
                    Value::Number(n) if !(1..=65535).contains(&n.as_i64().unwrap_or(0)) => {
                        causes.push((
                            format!("spec.ports[{i}].targetPort"),
                            format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
                        ));
                    }
                    Value::String(s) if !is_dns_label(s) || s.len() > 15 => causes.push((
                        format!("spec.ports[{i}].targetPort"),
                        format!("Invalid value: {s:?}: must be no more than 15 characters and a valid IANA service name"),
                    )),
                    _ => {}
                }
            }
            if let Some(old) = old {
                let before = &old["spec"]["clusterIP"];
                if !spec["clusterIP"].is_null() && before != &spec["clusterIP"] {
                    causes.push((
                        "spec.clusterIP".into(),
                        format!("Invalid value: {}: field is immutable", spec["clusterIP"]),
                    ));
                }
            }
        }
        "Secret" | "ConfigMap" => {
            for field in ["data", "binaryData"] {
                if let Some(m) = obj[field].as_object() {
                    for k in m.keys() {
                        let ok = !k.is_empty()
                            && k.len() <= 253
                            && k.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                        if !ok {
                            causes.push((
                                format!("{field}[{k}]"),
                                format!("Invalid value: {k:?}: a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"),
                            ));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    causes
}

/// Apply conflicts of `manager`'s new leaves with other managers' differing values.
fn conflicts(
    new: &Leaves,
    managers: &[Manager],
    manager: &str,
) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for m in managers.iter().filter(|m| m.name != manager) {
        for (p, v) in new {
            if m.leaves.get(p).is_some_and(|theirs| theirs != v) {
                out.push((m.name.clone(), m.api_version.clone(), p.clone()));
            }
        }
    }
    out
}

impl Store {
    /// A store holding what a fresh single-node cluster has: the usual namespaces, their
    /// `default` service accounts, and one Ready node.
    pub fn new(opts: SimOptions, server_address: String) -> Self {
        let mut s = Store {
            items: BTreeMap::new(),
            rv: 100,
            counter: 0,
            start: Instant::now(),
            start_wall: SystemTime::now(),
            opts,
            server_address,
            history: Default::default(),
        };
        let now = Instant::now();
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let nsr = api::find("", "v1", "namespaces").expect("served");
            s.put_system(nsr, "", json!({"metadata": {"name": ns}}), now);
        }
        let node = api::find("", "v1", "nodes").expect("served");
        s.put_system(
            node,
            "",
            json!({
                "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": ""}},
                "spec": {"podCIDR": "10.244.0.0/24"},
                "status": {
                    "capacity": {"cpu": "16", "memory": "131072Mi", "pods": "110", "nvidia.com/gpu": "1"},
                    "allocatable": {"cpu": "16", "memory": "131072Mi", "pods": "110", "nvidia.com/gpu": "1"},
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                    "addresses": [{"type": "InternalIP", "address": "192.168.49.2"}, {"type": "Hostname", "address": NODE}],
                    "nodeInfo": {"kubeletVersion": "v1.33.0", "containerRuntimeVersion": "docker://28.0.0", "architecture": "amd64", "operatingSystem": "linux"}
                }
            }),
            now,
        );
        s
    }

    /// RFC 3339 wall time of an instant.
    pub fn ts(&self, t: Instant) -> String {
        let wall = self.start_wall + t.saturating_duration_since(self.start);
        chrono::DateTime::<chrono::Utc>::from(wall)
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// The current resourceVersion as a number (for watches).
    pub fn rv_now(&self) -> u64 {
        self.rv
    }

    /// The current resourceVersion (for lists).
    pub fn current_rv(&self) -> String {
        self.rv.to_string()
    }

    fn next_counter(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn new_uid(&mut self) -> String {
        let n = self.next_counter();
        let h = fnv(&n.to_le_bytes(), 3);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (h >> 32) as u32,
            (h >> 16) as u16,
            n & 0xfff,
            (h >> 4) & 0xfff,
            n
        )
    }

    /// A fresh generated-name suffix (5 safe characters).
    pub fn new_suffix(&mut self) -> String {
        let n = self.next_counter();
        safe_chars(fnv(&n.to_le_bytes(), 11), 5)
    }

    /// True if namespace `ns` exists.
    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.items.contains_key(&Key {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: ns.to_string(),
        })
    }

    /// The object at `key`, if stored.
    pub fn get(&self, key: &Key) -> Option<&Stored> {
        self.items.get(key)
    }

    /// Every object of `r` in `ns` (all namespaces when `None`) matching both selectors.
    pub fn list(
        &self,
        r: &Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.items
            .iter()
            .filter(|(k, _)| k.group == r.group && k.plural == r.plural)
            .filter(|(k, _)| ns.is_none_or(|n| k.namespace == n))
            .map(|(_, s)| &s.obj)
            .filter(|o| labels.matches(o) && fields.matches(o))
            .cloned()
            .collect()
    }

    /// Server-set fields and defaults around a client's object.
    fn finalize(
        &mut self,
        r: &Resource,
        ns: &str,
        name: &str,
        mut obj: Value,
        old: Option<&Value>,
        now: Instant,
    ) -> Value {
        obj["apiVersion"] = json!(r.api_version());
        obj["kind"] = json!(r.kind);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        obj["metadata"]["name"] = json!(name);
        if r.namespaced {
            obj["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        let uid = match old {
            Some(o) => o["metadata"]["uid"].clone(),
            None => json!(self.new_uid()),
        };
        obj["metadata"]["uid"] = uid;
        obj["metadata"]["creationTimestamp"] = match old {
            Some(o) => o["metadata"]["creationTimestamp"].clone(),
            None => json!(self.ts(now)),
        };
        if obj.get("spec").is_some() {
            let old_gen = old.map(|o| o["metadata"]["generation"].as_i64().unwrap_or(1));
            let spec_changed = old.is_none_or(|o| o["spec"] != obj["spec"]);
            obj["metadata"]["generation"] = json!(match old_gen {
                None => 1,
                Some(g) if spec_changed => g + 1,
                Some(g) => g,
            });
        }
        if let Some(s) = old.map(|o| o["status"].clone()).filter(|s| !s.is_null()) {
            obj["status"] = s;
        }
        match r.kind {
            "Service" => {
                let ty = obj["spec"]["type"]
                    .as_str()
                    .unwrap_or("ClusterIP")
                    .to_string();
                obj["spec"]["type"] = json!(ty);
                if ty != "ExternalName" && obj["spec"]["clusterIP"].is_null() {
                    let ip = match old.map(|o| o["spec"]["clusterIP"].clone()) {
                        Some(Value::String(s)) => s,
                        _ => {
                            let n = self.next_counter();
                            format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 2)
                        }
                    };
                    obj["spec"]["clusterIP"] = json!(ip);
                }
                if let Some(ip) = obj["spec"]["clusterIP"].as_str() {
                    obj["spec"]["clusterIPs"] = json!([ip]);
                }
                obj["spec"]["sessionAffinity"] = obj["spec"]["sessionAffinity"]
                    .as_str()
                    .map_or(json!("None"), |s| json!(s));
                let old_ports = old
                    .map(|o| o["spec"]["ports"].clone())
                    .unwrap_or(Value::Null);
                if let Some(ports) = obj["spec"]["ports"].as_array_mut() {
                    for (i, p) in ports.iter_mut().enumerate() {
                        if p["protocol"].is_null() {
                            p["protocol"] = json!("TCP");
                        }
                        if p["targetPort"].is_null() {
                            p["targetPort"] = p["port"].clone();
                        }
                        if (ty == "NodePort" || ty == "LoadBalancer") && p["nodePort"].is_null() {
                            p["nodePort"] = match old_ports[i]["nodePort"].as_i64() {
                                Some(n) => json!(n),
                                None => json!(30000 + (self.next_counter() % 2767)),
                            };
                        }
                    }
                }
                if obj["status"].is_null() {
                    obj["status"] = json!({"loadBalancer": {}});
                }
            }
            "Deployment" | "StatefulSet" | "ReplicaSet" if obj["spec"]["replicas"].is_null() => {
                obj["spec"]["replicas"] = json!(1);
            }
            "Secret" => {
                if obj["type"].is_null() {
                    obj["type"] = json!("Opaque");
                }
                if let Some(sd) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
                    let mut data = obj["data"].as_object().cloned().unwrap_or_default();
                    for (k, v) in sd.as_object().cloned().unwrap_or_default() {
                        let text = v.as_str().unwrap_or("").to_string();
                        data.insert(
                            k,
                            json!(base64::engine::general_purpose::STANDARD.encode(text)),
                        );
                    }
                    obj["data"] = Value::Object(data);
                }
            }
            "Namespace" => {
                obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
            }
            "PersistentVolumeClaim" if obj["status"].is_null() => {
                let cap = obj["spec"]["resources"]["requests"]["storage"].clone();
                obj["status"] = json!({"phase": "Bound", "accessModes": obj["spec"]["accessModes"].clone(), "capacity": {"storage": cap}});
            }
            _ => {}
        }
        obj
    }

    /// Stores `obj` as a system component would (no client manager; used for namespaces,
    /// nodes, controllers' objects, seeding). Bumps resourceVersion only on change.
    pub fn put_system(
        &mut self,
        r: &'static Resource,
        ns: &str,
        obj: Value,
        now: Instant,
    ) -> Value {
        let key = Key::new(r, ns, obj_name(&obj));
        self.put_controller(key, obj, now)
    }

    /// Stores a finished object: resourceVersion, managedFields, pod simulation, the
    /// namespace's default service account.
    fn store(
        &mut self,
        key: Key,
        mut new: Value,
        old: Option<Value>,
        managers: Option<Vec<Manager>>,
        now: Instant,
    ) -> Value {
        let r = key.resource();
        let unchanged = old.as_ref().is_some_and(|o| {
            let mut a = o.clone();
            let mut b = new.clone();
            for x in [&mut a, &mut b] {
                if let Some(m) = x["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                    m.remove("managedFields");
                }
            }
            a == b
        });
        let entry_managers = match managers {
            Some(m) => m,
            None => self
                .items
                .get(&key)
                .map(|s| s.managers.clone())
                .unwrap_or_default(),
        };
        new["metadata"]["resourceVersion"] = if unchanged {
            old.as_ref().expect("unchanged implies old")["metadata"]["resourceVersion"].clone()
        } else {
            json!(self.next_rv())
        };
        if entry_managers.is_empty() {
            if let Some(m) = new["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        } else {
            new["metadata"]["managedFields"] = entry_managers
                .iter()
                .map(|m| {
                    json!({
                        "manager": m.name,
                        "operation": if m.apply { "Apply" } else { "Update" },
                        "apiVersion": m.api_version,
                        "time": m.time,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": fields_v1(&m.leaves),
                    })
                })
                .collect();
        }
        let sim = match self.items.get(&key).and_then(|s| s.sim.clone()) {
            Some(s) => Some(s),
            None if r.kind == "Pod" => Some(self.new_pod_sim(&new, now)),
            None => None,
        };
        if !unchanged {
            let rv = self.rv;
            self.log(
                rv,
                if old.is_none() { "ADDED" } else { "MODIFIED" },
                &key,
                &new,
            );
        }
        if r.kind == "Namespace" && old.is_none() {
            let sa = api::find("", "v1", "serviceaccounts").expect("served");
            let ns = key.name.clone();
            self.items.insert(
                key.clone(),
                Stored {
                    obj: new.clone(),
                    managers: entry_managers,
                    sim,
                },
            );
            self.put_system(sa, &ns, json!({"metadata": {"name": "default"}}), now);
            return new;
        }
        self.items.insert(
            key,
            Stored {
                obj: new.clone(),
                managers: entry_managers,
                sim,
            },
        );
        new
    }

    /// The simulation of a new pod: which workload it belongs to and whether it crashes or
    /// stays unscheduled.
    pub fn new_pod_sim(&mut self, pod: &Value, now: Instant) -> PodSim {
        let workload = self.workload_of(pod);
        let n = self.next_counter();
        PodSim {
            created: now,
            crash: self
                .opts
                .crash
                .as_deref()
                .is_some_and(|c| workload.contains(c)),
            pending: self
                .opts
                .pending_with_event
                .as_deref()
                .is_some_and(|c| workload.contains(c)),
            workload,
            ip: format!("10.244.0.{}", n % 250 + 3),
            events: Vec::new(),
        }
    }

    /// The workload a pod belongs to: its Deployment (through the ReplicaSet), StatefulSet or
    /// DaemonSet; the pod itself when it has no controller.
    pub fn workload_of(&self, pod: &Value) -> String {
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
        let Some(owner) = pod["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|r| r.first())
        else {
            return obj_name(pod).to_string();
        };
        let owner_name = owner["name"].as_str().unwrap_or("").to_string();
        if owner["kind"] == "ReplicaSet" {
            let rs = self.items.get(&Key {
                group: "apps".into(),
                plural: "replicasets".into(),
                namespace: ns.to_string(),
                name: owner_name.clone(),
            });
            if let Some(d) = rs.and_then(|s| {
                s.obj["metadata"]["ownerReferences"]
                    .as_array()?
                    .first()
                    .cloned()
            }) {
                return d["name"].as_str().unwrap_or("").to_string();
            }
        }
        owner_name
    }

    /// A client's write of one object (apply, create, replace, merge patch). `name` is the
    /// name in the URL (`None` for POST, which takes it from the body). Returns the stored
    /// object and whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        &mut self,
        r: &'static Resource,
        ns: &str,
        name: Option<&str>,
        body: Value,
        manager: &str,
        op: WriteOp,
        dry_run: bool,
        now: Instant,
    ) -> Result<(Value, bool), ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of the request was in an unknown format: expected a JSON/YAML object, got {body}"
            )));
        }
        if op != WriteOp::Merge {
            let av = body["apiVersion"].as_str().unwrap_or("");
            let kind = body["kind"].as_str().unwrap_or("");
            if av != r.api_version() {
                return Err(ApiError::bad_request(match op {
                    WriteOp::Apply { .. } => format!(
                        "Incorrect version specified in apply patch. Specified patch version: {av}, expected: {}",
                        r.api_version()
                    ),
                    _ => format!(
                        "the API version in the data ({av}) does not match the expected API version ({})",
                        r.api_version()
                    ),
                }));
            }
            if kind != r.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({kind}) does not match the expected kind ({}) of {}",
                    r.kind,
                    r.qualified()
                )));
            }
        }
        let body_ns = body["metadata"]["namespace"].as_str().unwrap_or("");
        if r.namespaced && !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let mut body_name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
        if op == WriteOp::Create && body_name.is_empty() {
            if let Some(g) = body["metadata"]["generateName"].as_str() {
                body_name = format!("{g}{}", self.new_suffix());
            }
        }
        let name = match name {
            Some(url_name) => {
                if !body_name.is_empty() && body_name != url_name {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
                    )));
                }
                url_name.to_string()
            }
            None => body_name,
        };
        if name.is_empty() {
            return Err(ApiError::invalid(
                r,
                "",
                &[(
                    "metadata.name".into(),
                    "Required value: name or generateName is required".into(),
                )],
            ));
        }
        if r.namespaced && !self.namespace_exists(ns) {
            let nsr = api::find("", "v1", "namespaces").expect("served");
            return Err(ApiError::not_found(nsr, ns));
        }
        let key = Key::new(r, ns, &name);
        let existing = self.items.get(&key).cloned();
        match (op, &existing) {
            (WriteOp::Create, Some(_)) => {
                return Err(ApiError {
                    details: Some(r.details(&name)),
                    ..ApiError::new(
                        409,
                        "AlreadyExists",
                        format!("{} \"{name}\" already exists", r.qualified()),
                    )
                })
            }
            (WriteOp::Replace | WriteOp::Merge, None) => return Err(ApiError::not_found(r, &name)),
            _ => {}
        }
        if let (WriteOp::Replace, Some(ex)) = (op, &existing) {
            let want = &body["metadata"]["resourceVersion"];
            if want.is_string() && *want != ex.obj["metadata"]["resourceVersion"] {
                return Err(ApiError {
                    details: Some(r.details(&name)),
                    ..ApiError::new(409, "Conflict", format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                        r.qualified()
                    ))
                });
            }
        }
        let mut managers = existing
            .as_ref()
            .map(|s| s.managers.clone())
            .unwrap_or_default();
        let time = self.ts(now);
        let merged_leaves = match op {
            WriteOp::Apply { force } => {
                let new_leaves = leaves_of(&body);
                let found = conflicts(&new_leaves, &managers, manager);
                if !found.is_empty() && !force {
                    let text: Vec<String> = found
                        .iter()
                        .map(|(m, av, p)| {
                            format!("conflict with \"{m}\" using {av}: .{}", p.join("."))
                        })
                        .collect();
                    let msg = if text.len() == 1 {
                        format!("Apply failed with 1 conflict: {}", text[0])
                    } else {
                        format!(
                            "Apply failed with {} conflicts: {}",
                            text.len(),
                            text.join("\n")
                        )
                    };
                    return Err(ApiError {
                        details: Some(r.details(&name)),
                        ..ApiError::new(409, "Conflict", msg)
                    });
                }
                for (m, _, p) in &found {
                    if let Some(other) = managers.iter_mut().find(|x| &x.name == m) {
                        other.leaves.remove(p);
                    }
                }
                managers.retain(|m| m.name != manager);
                managers.push(Manager {
                    name: manager.to_string(),
                    apply: true,
                    api_version: r.api_version(),
                    time: time.clone(),
                    leaves: new_leaves,
                });
                let mut all = Leaves::new();
                for m in &managers {
                    all.extend(m.leaves.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                all
            }
            WriteOp::Create | WriteOp::Replace | WriteOp::Merge => {
                let new_obj = match (op, &existing) {
                    (WriteOp::Merge, Some(ex)) => {
                        let mut cur = user_fields(&ex.obj);
                        json_merge(&mut cur, &body);
                        cur
                    }
                    _ => body.clone(),
                };
                let new_leaves = leaves_of(&new_obj);
                let old_leaves = existing
                    .as_ref()
                    .map(|e| leaves_of(&e.obj))
                    .unwrap_or_default();
                let changed: Leaves = new_leaves
                    .iter()
                    .filter(|(k, v)| old_leaves.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for m in managers.iter_mut() {
                    m.leaves.retain(|k, v| new_leaves.get(k) == Some(v));
                }
                let mut mine = managers
                    .iter()
                    .find(|m| m.name == manager)
                    .map(|m| m.leaves.clone())
                    .unwrap_or_default();
                mine.extend(changed);
                managers.retain(|m| m.name != manager && !m.leaves.is_empty());
                managers.push(Manager {
                    name: manager.to_string(),
                    apply: false,
                    api_version: r.api_version(),
                    time: time.clone(),
                    leaves: mine,
                });
                new_leaves
            }
        };
        let mut desired = unflatten(&merged_leaves);
        if r.kind == "Secret" {
            if let Some(data) = desired["data"].as_object() {
                for (k, v) in data {
                    let ok = v.as_str().is_some_and(|s| {
                        base64::engine::general_purpose::STANDARD.decode(s).is_ok()
                    });
                    if !ok {
                        return Err(ApiError::bad_request(format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k}]"
                        )));
                    }
                }
            }
        }
        if let Some(m) = desired.as_object_mut() {
            m.remove("status");
        }
        let old_obj = existing.as_ref().map(|e| e.obj.clone());
        let obj = self.finalize(r, ns, &name, desired, old_obj.as_ref(), now);
        let causes = validate(r, &obj, old_obj.as_ref());
        if !causes.is_empty() {
            return Err(ApiError::invalid(r, &name, &causes));
        }
        if dry_run {
            let mut shown = obj;
            shown["metadata"]["resourceVersion"] = old_obj
                .as_ref()
                .map_or(json!(""), |o| o["metadata"]["resourceVersion"].clone());
            return Ok((shown, existing.is_none()));
        }
        let stored = self.store(key, obj, old_obj, Some(managers), now);
        Ok((stored, existing.is_none()))
    }

    /// Deletes one object and (unless orphaning) its dependents. Returns the deleted object.
    pub fn delete(&mut self, key: &Key, propagation: Propagation, dry_run: bool) -> Option<Value> {
        let stored = self.items.get(key)?.obj.clone();
        if dry_run {
            return Some(stored);
        }
        self.remove(key);
        let uid = stored["metadata"]["uid"].as_str().unwrap_or("").to_string();
        if propagation == Propagation::Orphan {
            for s in self.items.values_mut() {
                if let Some(refs) = s.obj["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid.as_str());
                }
            }
        }
        if key.plural == "namespaces" {
            let inside: Vec<Key> = self
                .items
                .keys()
                .filter(|k| k.namespace == key.name)
                .cloned()
                .collect();
            for k in inside {
                self.remove(&k);
            }
        }
        self.collect_garbage();
        Some(stored)
    }

    /// Deletes every object whose owner (by uid) is gone, until none is left.
    pub fn collect_garbage(&mut self) {
        loop {
            let uids: std::collections::HashSet<String> = self
                .items
                .values()
                .filter_map(|s| s.obj["metadata"]["uid"].as_str().map(str::to_string))
                .collect();
            let orphans: Vec<Key> = self
                .items
                .iter()
                .filter(|(_, s)| {
                    s.obj["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| {
                            !refs.is_empty()
                                && refs
                                    .iter()
                                    .all(|r| !uids.contains(r["uid"].as_str().unwrap_or("")))
                        })
                })
                .map(|(k, _)| k.clone())
                .collect();
            if orphans.is_empty() {
                return;
            }
            for k in orphans {
                self.remove(&k);
            }
        }
    }

    /// Stores `obj` as a controller's own write (ReplicaSets, pods, events, endpoints, status).
    pub fn put_controller(&mut self, key: Key, obj: Value, now: Instant) -> Value {
        let r = key.resource();
        let old = self.items.get(&key).map(|s| s.obj.clone());
        let status = obj.get("status").cloned();
        let mut new = self.finalize(r, &key.namespace, &key.name, obj, old.as_ref(), now);
        if let Some(st) = status {
            new["status"] = st;
        }
        self.store(key, new, old, None, now)
    }

    /// Sets the status of a stored object (bumping resourceVersion when it changes).
    pub fn set_status(&mut self, key: &Key, status: Value) {
        let changed = self
            .items
            .get(key)
            .is_some_and(|s| s.obj["status"] != status);
        if changed {
            let rv = self.next_rv();
            let s = self.items.get_mut(key).expect("checked");
            s.obj["status"] = status;
            s.obj["metadata"]["resourceVersion"] = json!(rv);
            let obj = s.obj.clone();
            let n = self.rv;
            self.log(n, "MODIFIED", key, &obj);
        }
    }

    fn log(&mut self, rv: u64, ty: &'static str, key: &Key, obj: &Value) {
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back((rv, ty, key.clone(), obj.clone()));
    }

    /// The oldest resourceVersion a watch can start from.
    pub fn oldest_watchable(&self) -> u64 {
        self.history
            .front()
            .map_or(self.rv, |h| h.0.saturating_sub(1))
    }

    /// Removes one object (a DELETED change for watches).
    pub fn remove(&mut self, key: &Key) -> Option<Stored> {
        let mut s = self.items.remove(key)?;
        let rv = self.next_rv();
        s.obj["metadata"]["resourceVersion"] = json!(rv);
        let n = self.rv;
        self.log(n, "DELETED", key, &s.obj);
        Some(s)
    }

    /// Stored objects of one resource type, as keys.
    pub fn keys_of(&self, group: &str, plural: &str) -> Vec<Key> {
        self.items
            .keys()
            .filter(|k| k.group == group && k.plural == plural)
            .cloned()
            .collect()
    }
}
