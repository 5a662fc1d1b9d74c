//! The fake API server's resource table, its discovery documents (`/api`, `/apis`,
//! `/api/v1`, `/apis/<group>/<version>`, plain and aggregated) and `Status` error objects.

use serde_json::{json, Value};

/// One served resource type, as discovery describes it.
#[derive(Debug)]
pub struct Resource {
    /// API group ("" for the core group).
    pub group: &'static str,
    /// The one served version.
    pub version: &'static str,
    /// Kind of one object.
    pub kind: &'static str,
    /// Plural resource name used in paths.
    pub plural: &'static str,
    /// Singular resource name.
    pub singular: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Subresources served for this type (`log`, `portforward`).
    pub subresources: &'static [&'static str],
    /// Short names (`po`, `svc`, …) as discovery lists them.
    pub short_names: &'static [&'static str],
}

impl Resource {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// How error messages name the resource: `pods`, `deployments.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// How error messages name the kind: `Pod`, `Deployment.apps`.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// The `details` of a `Status` about one object of this type.
    pub fn details(&self, name: &str) -> Value {
        let mut d = json!({"name": name, "kind": self.plural});
        if !self.group.is_empty() {
            d["group"] = json!(self.group);
        }
        d
    }
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A resource of `group`/v1 without subresources or short names.
const fn res(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group,
        version: "v1",
        kind,
        plural,
        singular,
        namespaced,
        subresources: &[],
        short_names: &[],
    }
}

impl Resource {
    /// With these subresources.
    const fn subresources(self, subresources: &'static [&'static str]) -> Resource {
        Resource {
            subresources,
            ..self
        }
    }

    /// With these short names.
    const fn short(self, short_names: &'static [&'static str]) -> Resource {
        Resource {
            short_names,
            ..self
        }
    }
}

/// Every resource type the fake serves. `example.com/v1` `Foo` stands for a custom resource.
pub static RESOURCES: &[Resource] = &[
    res("", "Pod", "pods", "pod", true)
        .subresources(&["log", "portforward"])
        .short(&["po"]),
    res("", "Service", "services", "service", true).short(&["svc"]),
    res("", "Endpoints", "endpoints", "endpoints", true).short(&["ep"]),
    res("", "Secret", "secrets", "secret", true),
    res("", "ConfigMap", "configmaps", "configmap", true).short(&["cm"]),
    res(
        "",
        "ServiceAccount",
        "serviceaccounts",
        "serviceaccount",
        true,
    )
    .short(&["sa"]),
    res(
        "",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
    )
    .short(&["pvc"]),
    res(
        "",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
    )
    .short(&["pv"]),
    res("", "Event", "events", "event", true).short(&["ev"]),
    res("", "Namespace", "namespaces", "namespace", false).short(&["ns"]),
    res("", "Node", "nodes", "node", false).short(&["no"]),
    res("apps", "Deployment", "deployments", "deployment", true).short(&["deploy"]),
    res("apps", "StatefulSet", "statefulsets", "statefulset", true).short(&["sts"]),
    res("apps", "DaemonSet", "daemonsets", "daemonset", true).short(&["ds"]),
    res("apps", "ReplicaSet", "replicasets", "replicaset", true).short(&["rs"]),
    res("rbac.authorization.k8s.io", "Role", "roles", "role", true),
    res(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        "rolebinding",
        true,
    ),
    res(
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        "clusterrole",
        false,
    ),
    res(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
    ),
    res(
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        true,
    )
    .short(&["pdb"]),
    res("networking.k8s.io", "Ingress", "ingresses", "ingress", true).short(&["ing"]),
    res(
        "storage.k8s.io",
        "StorageClass",
        "storageclasses",
        "storageclass",
        false,
    )
    .short(&["sc"]),
    res("example.com", "Foo", "foos", "foo", true),
];

/// The resource served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resource of `apiVersion` + `kind` (for seeded manifests).
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The resource with this group and plural, any version (store keys carry no version).
pub fn by_group_plural(group: &str, plural: &str) -> &'static Resource {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .unwrap_or_else(|| panic!("fake kube: no resource {plural} in group {group:?}"))
}

fn groups() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for r in RESOURCES {
        if !r.group.is_empty() && !out.contains(&r.group) {
            out.push(r.group);
        }
    }
    out
}

/// True if `group/version` is served (a non-core group).
pub fn group_version_served(group: &str, version: &str) -> bool {
    RESOURCES
        .iter()
        .any(|r| !r.group.is_empty() && r.group == group && r.version == version)
}

/// `GET /api`: APIVersions.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(group: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/v1"), "version": "v1"});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis`: APIGroupList.
pub fn group_list() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups().into_iter().map(group_entry).collect::<Vec<_>>()
    })
}

/// `GET /apis/<group>`: APIGroup.
pub fn group(group: &str) -> Option<Value> {
    groups().contains(&group).then(|| {
        let mut g = group_entry(group);
        g["kind"] = json!("APIGroup");
        g["apiVersion"] = json!("v1");
        g
    })
}

fn sub_verbs(sub: &str) -> Vec<&'static str> {
    match sub {
        "portforward" => vec!["create", "get"],
        _ => vec!["get"],
    }
}

/// `GET /api/v1` or `GET /apis/<group>/<version>`: APIResourceList, subresources included.
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
        }));
        for sub in r.subresources {
            let kind = if *sub == "portforward" {
                "PodPortForwardOptions"
            } else {
                r.kind
            };
            resources.push(json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": sub_verbs(sub),
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn aggregated_group(group: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group)
        .map(|r| {
            let subs: Vec<Value> = r
                .subresources
                .iter()
                .map(|s| {
                    json!({
                        "subresource": s,
                        "responseKind": {"group": "", "version": "", "kind": if *s == "portforward" { "PodPortForwardOptions" } else { r.kind }},
                        "verbs": sub_verbs(s),
                    })
                })
                .collect();
            json!({
                "resource": r.plural,
                "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": r.singular,
                "verbs": VERBS,
                "shortNames": r.short_names,
                "subresources": subs,
            })
        })
        .collect();
    json!({
        "metadata": {"name": group},
        "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}]
    })
}

/// `GET /api` or `GET /apis` with the aggregated-discovery `Accept` header:
/// APIGroupDiscoveryList of the core group or of every other group.
pub fn aggregated(core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("")]
    } else {
        groups().into_iter().map(aggregated_group).collect()
    };
    json!({
        "apiVersion": "apidiscovery.k8s.io/v2",
        "kind": "APIGroupDiscoveryList",
        "metadata": {},
        "items": items
    })
}

/// An API error the way the real server sends it: HTTP code + `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `Status.reason` (`NotFound`, `BadRequest`, `Invalid`, `Conflict`, …).
    pub reason: &'static str,
    /// `Status.message`.
    pub message: String,
    /// `Status.details`, if any.
    pub details: Option<Value>,
}

impl ApiError {
    /// A `Status` with `code`, `reason` and `message`.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 NotFound for one object: `pods "x" not found`.
    pub fn not_found(r: &Resource, name: &str) -> Self {
        ApiError {
            details: Some(r.details(name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", r.qualified()),
            )
        }
    }

    /// 404 for a path the server does not serve.
    pub fn no_route() -> Self {
        ApiError {
            details: Some(json!({})),
            ..Self::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    /// 422 Invalid: `Deployment.apps "x" is invalid: <causes>`.
    pub fn invalid(r: &Resource, name: &str, causes: &[(String, String)]) -> Self {
        let text: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let message = if text.len() == 1 {
            format!("{} \"{name}\" is invalid: {}", r.qualified_kind(), text[0])
        } else {
            format!(
                "{} \"{name}\" is invalid: [{}]",
                r.qualified_kind(),
                text.join(", ")
            )
        };
        let mut details = json!({"name": name, "kind": r.kind});
        if !r.group.is_empty() {
            details["group"] = json!(r.group);
        }
        details["causes"] = causes
            .iter()
            .map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f}))
            .collect();
        ApiError {
            details: Some(details),
            ..Self::new(422, "Invalid", message)
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

/// A `Status` with `status: Success` (what deleting most kinds answers).
pub fn success_status(r: &Resource, name: &str, uid: &str) -> Value {
    let mut details = r.details(name);
    details["uid"] = json!(uid);
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details
    })
}
