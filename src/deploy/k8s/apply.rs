//! Server-side apply of multi-document manifests, and deleting what was applied.
//!
//! The YAML text is cut into documents at `---` / `...` marker lines (YAML forbids those at the
//! start of a line inside content, so cutting there is exact) and each document is parsed on its
//! own; that way an error names the document and its first line. Each object's resource type
//! comes from a table of built-in kinds, or else from the API server's discovery document of
//! its group version.

use std::collections::HashMap;
use std::path::Path;

use kube::api::{Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{ApiResource, Scope};
use serde_json::Value;

use super::{api_code, api_message, AppliedObject, DocPos, K8sError, Kube, ObjectFailure};

/// The field manager that owns what lmbench applies.
pub const FIELD_MANAGER: &str = "lmbench";

/// How many times discovery of a custom kind is tried when its CustomResourceDefinition was
/// applied earlier in the same call (the API server serves a new kind a moment after).
const DISCOVERY_TRIES: u32 = 10;

/// Built-in kinds: (API group, kind, plural, namespaced). Their plural and scope do not depend on
/// the version, so one row covers every version a manifest may name.
const BUILTIN_KINDS: &[(&str, &str, &str, bool)] = &[
    ("", "Namespace", "namespaces", false),
    ("", "Secret", "secrets", true),
    ("", "ConfigMap", "configmaps", true),
    ("", "Service", "services", true),
    ("", "ServiceAccount", "serviceaccounts", true),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims", true),
    ("", "PersistentVolume", "persistentvolumes", false),
    ("", "Pod", "pods", true),
    ("", "Endpoints", "endpoints", true),
    ("", "LimitRange", "limitranges", true),
    ("", "ResourceQuota", "resourcequotas", true),
    ("apps", "Deployment", "deployments", true),
    ("apps", "StatefulSet", "statefulsets", true),
    ("apps", "DaemonSet", "daemonsets", true),
    ("apps", "ReplicaSet", "replicasets", true),
    ("batch", "Job", "jobs", true),
    ("batch", "CronJob", "cronjobs", true),
    ("rbac.authorization.k8s.io", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("networking.k8s.io", "Ingress", "ingresses", true),
    (
        "networking.k8s.io",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("networking.k8s.io", "IngressClass", "ingressclasses", false),
    (
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    ("storage.k8s.io", "StorageClass", "storageclasses", false),
    (
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    (
        "scheduling.k8s.io",
        "PriorityClass",
        "priorityclasses",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
];

/// The resource type and scope of a built-in kind, without asking the cluster.
pub(crate) fn builtin_resource(gvk: &GroupVersionKind) -> Option<(ApiResource, bool)> {
    BUILTIN_KINDS
        .iter()
        .find(|(group, kind, _, _)| *group == gvk.group && *kind == gvk.kind)
        .map(|(_, _, plural, namespaced)| {
            (ApiResource::from_gvk_with_plural(gvk, plural), *namespaced)
        })
}

/// One document of a manifest file that is not empty.
#[derive(Debug)]
pub(crate) struct ManifestDoc {
    pub at: DocPos,
    pub value: Value,
}

/// Cut `yaml` into documents and parse each; empty and comment-only documents are left out.
pub(crate) fn parse_documents(yaml: &str, file: &Path) -> Result<Vec<ManifestDoc>, K8sError> {
    // (first line, text padded with empty lines so that parser line numbers match the file)
    let mut chunks: Vec<(usize, String)> = Vec::new();
    let mut text = String::new();
    let mut start = 1;
    for (i, line) in yaml.lines().enumerate() {
        let lineno = i + 1;
        let rest = marker_rest(line, "---");
        if rest.is_some() || marker_rest(line, "...").is_some() {
            chunks.push((start, std::mem::take(&mut text)));
            text = "\n".repeat(lineno - 1);
            start = lineno;
            // Content may follow `--- ` on the same line (`--- {kind: ...}`).
            if let Some(rest) = rest {
                text.push_str(rest);
            }
            text.push('\n');
        } else if line.starts_with('%') {
            // A directive (`%YAML 1.2`) belongs to the marker that follows; the parser sees
            // documents without their markers, so it gets an empty line instead.
            text.push('\n');
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    chunks.push((start, text));

    let mut docs = Vec::new();
    let mut number = 0;
    for (i, (line, text)) in chunks.iter().enumerate() {
        let value = parse_chunk(text).map_err(|message| K8sError::Manifest {
            file: file.to_path_buf(),
            at: DocPos {
                doc: number + 1,
                line: *line,
                item: None,
            },
            message,
        })?;
        // A leading `---` opens the first document; the empty text before it is not one.
        if i > 0 || !value.is_null() {
            number += 1;
        }
        if value.is_null() {
            continue;
        }
        docs.push(ManifestDoc {
            at: DocPos {
                doc: number,
                line: *line,
                item: None,
            },
            value,
        });
    }
    Ok(docs)
}

/// What follows a document marker (`---` or `...`) at the start of `line`, or `None` when the
/// line is not one.
fn marker_rest<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(marker)?;
    if rest.is_empty() || rest.starts_with([' ', '\t']) {
        Some(rest)
    } else {
        None
    }
}

/// Parse one document. The error text leaves out the parser's source snippet: the line it would
/// quote may be a Secret's data.
fn parse_chunk(text: &str) -> Result<Value, String> {
    if text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#')
    }) {
        return Ok(Value::Null);
    }
    // Kubernetes reads manifests as YAML 1.1: `defaultMode: 0644` is octal (420) there.
    let options = serde_saphyr::options! { legacy_octal_numbers: true };
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|e| {
        let inner = e.without_snippet();
        let message = inner.to_string();
        let mut out = format!("invalid YAML: {}", first_line(&message));
        if let Some(loc) = inner.location().filter(|_| !message.contains("line")) {
            out.push_str(&format!(" (line {}, column {})", loc.line(), loc.column()));
        }
        out
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// An object ready to be applied: its identity and its body.
#[derive(Debug)]
pub(crate) struct ManifestObject {
    pub at: DocPos,
    pub api_version: String,
    pub gvk: GroupVersionKind,
    pub name: String,
    pub namespace: Option<String>,
    pub body: Value,
}

/// The objects of the parsed documents, with `List` kinds expanded into their items.
pub(crate) fn manifest_objects(
    docs: Vec<ManifestDoc>,
    file: &Path,
) -> Result<Vec<ManifestObject>, K8sError> {
    let mut out = Vec::new();
    for doc in docs {
        let is_list = doc
            .value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| {
                k == "List"
                    || (k.ends_with("List") && doc.value.get("items").is_some_and(Value::is_array))
            });
        if is_list {
            let Some(items) = doc.value.get("items").and_then(Value::as_array) else {
                return Err(K8sError::Manifest {
                    file: file.to_path_buf(),
                    at: doc.at,
                    message: "a List needs an `items` sequence".to_owned(),
                });
            };
            for (i, item) in items.iter().enumerate() {
                let at = DocPos {
                    item: Some(i + 1),
                    ..doc.at
                };
                out.push(manifest_object(item.clone(), at, file)?);
            }
        } else {
            out.push(manifest_object(doc.value, doc.at, file)?);
        }
    }
    Ok(out)
}

fn manifest_object(body: Value, at: DocPos, file: &Path) -> Result<ManifestObject, K8sError> {
    let err = |message: String| K8sError::Manifest {
        file: file.to_path_buf(),
        at,
        message,
    };
    if !body.is_object() {
        return Err(err(format!(
            "expected a Kubernetes object (a mapping with apiVersion, kind and metadata), found {}",
            json_type(&body)
        )));
    }
    let field = |key: &str| -> Result<String, K8sError> {
        match body.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(other) if !other.is_null() => Err(err(format!(
                "`{key}` must be a non-empty string, found {}",
                json_type(other)
            ))),
            _ => Err(err(format!("missing `{key}`"))),
        }
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) if !g.is_empty() && !v.is_empty() && !v.contains('/') => (g, v),
        None => ("", api_version.as_str()),
        _ => {
            return Err(err(format!(
                "{kind}: apiVersion `{api_version}` is not `version` or `group/version`"
            )))
        }
    };
    let metadata = body.get("metadata");
    let name = match metadata.and_then(|m| m.get("name")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(err(format!(
                "{kind} has no `metadata.name` (server-side apply needs a fixed name; \
                 generateName is not supported)"
            )))
        }
    };
    let namespace = match metadata.and_then(|m| m.get("namespace")) {
        Some(Value::String(s)) => (!s.is_empty()).then(|| s.clone()),
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(err(format!(
                "{kind}/{name}: `metadata.namespace` must be a string, found {}",
                json_type(other)
            )))
        }
    };
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    Ok(ManifestObject {
        at,
        api_version,
        gvk,
        name,
        namespace,
        body,
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

impl Kube {
    /// Server-side apply (field manager `lmbench`, forced) of every document of a
    /// multi-document YAML text, in order.
    ///
    /// Empty and comment-only documents are skipped and `List` kinds are expanded. A built-in
    /// kind's resource type comes from a table; any other kind is looked up in the API server's
    /// discovery document of its group version (retried for a few polls when a
    /// CustomResourceDefinition was applied earlier in the same text). Namespaced objects
    /// without `metadata.namespace` go to this client's namespace.
    ///
    /// The whole text is parsed and checked before anything is sent. Errors name `source` (the
    /// file), the document number and line, kind/name and the API server's message, and carry
    /// the objects applied so far ([`K8sError::partially_applied`]). Returns what was applied.
    pub async fn apply_manifests(
        &self,
        yaml: &str,
        source: &Path,
    ) -> Result<Vec<AppliedObject>, K8sError> {
        let objects = manifest_objects(parse_documents(yaml, source)?, source)?;
        let mut applied: Vec<AppliedObject> = Vec::with_capacity(objects.len());
        let mut resolved: HashMap<GroupVersionKind, (ApiResource, bool)> = HashMap::new();
        let mut crd_applied = false;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        for mut obj in objects {
            let (resource, namespaced) = match resolved.get(&obj.gvk) {
                Some(r) => r.clone(),
                None => {
                    let r = match self.resolve_kind(&obj.gvk, crd_applied).await {
                        Ok(r) => r,
                        Err(message) => {
                            return Err(K8sError::UnknownKind(Box::new(ObjectFailure {
                                file: source.to_path_buf(),
                                at: obj.at,
                                api_version: obj.api_version,
                                kind: obj.gvk.kind,
                                name: obj.name,
                                namespace: obj.namespace,
                                message,
                                applied,
                            })))
                        }
                    };
                    resolved.insert(obj.gvk.clone(), r.clone());
                    r
                }
            };
            let namespace = if namespaced {
                let ns = obj
                    .namespace
                    .take()
                    .unwrap_or_else(|| self.namespace.clone());
                obj.body["metadata"]["namespace"] = Value::String(ns.clone());
                Some(ns)
            } else {
                // A namespace on a cluster-scoped object means nothing; kubectl drops it too.
                if let Some(meta) = obj.body.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.remove("namespace");
                }
                None
            };
            let api: Api<DynamicObject> = match &namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
                None => Api::all_with(self.client.clone(), &resource),
            };
            let object = AppliedObject {
                api_version: obj.api_version,
                kind: obj.gvk.kind.clone(),
                name: obj.name,
                namespace,
                resource,
            };
            if let Err(e) = api
                .patch(&object.name, &params, &Patch::Apply(&obj.body))
                .await
            {
                return Err(K8sError::Apply(Box::new(ObjectFailure {
                    file: source.to_path_buf(),
                    at: obj.at,
                    api_version: object.api_version,
                    kind: object.kind,
                    name: object.name,
                    namespace: object.namespace,
                    message: api_message(&e),
                    applied,
                })));
            }
            tracing::info!("applied {object}");
            if obj.gvk.group == "apiextensions.k8s.io" && obj.gvk.kind == "CustomResourceDefinition"
            {
                crd_applied = true;
            }
            applied.push(object);
        }
        Ok(applied)
    }

    /// The resource type and scope (`true` = namespaced) of a kind.
    async fn resolve_kind(
        &self,
        gvk: &GroupVersionKind,
        retry: bool,
    ) -> Result<(ApiResource, bool), String> {
        if let Some(found) = builtin_resource(gvk) {
            return Ok(found);
        }
        let tries = if retry { DISCOVERY_TRIES } else { 1 };
        let mut last = String::new();
        for attempt in 1..=tries {
            match kube::discovery::pinned_kind(&self.client, gvk).await {
                Ok((resource, caps)) => {
                    return Ok((resource, caps.scope == Scope::Namespaced));
                }
                Err(e) => {
                    last = match &e {
                        kube::Error::Discovery(_) => e.to_string(),
                        other => api_message(other),
                    };
                    tracing::debug!(
                        "discovery of {} {} (try {attempt}/{tries}): {last}",
                        gvk.kind,
                        gvk.api_version()
                    );
                }
            }
            if attempt < tries {
                tokio::time::sleep(self.poll).await;
            }
        }
        Err(last)
    }

    /// Delete objects in reverse order (propagation policy Background, so dependents such as a
    /// Deployment's pods are removed by the garbage collector). An object that is already gone
    /// (404) is fine. Every object is tried; the error lists the ones that failed.
    pub async fn delete_objects(&self, objs: &[AppliedObject]) -> Result<(), K8sError> {
        let params = DeleteParams::background();
        let mut failures = Vec::new();
        for obj in objs.iter().rev() {
            let api: Api<DynamicObject> = match &obj.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &obj.resource),
                None => Api::all_with(self.client.clone(), &obj.resource),
            };
            match api.delete(&obj.name, &params).await {
                Ok(_) => tracing::info!("deleted {obj}"),
                Err(e) if api_code(&e) == Some(404) => tracing::debug!("{obj} was already gone"),
                Err(e) => failures.push(format!("{obj}: {}", api_message(&e))),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(K8sError::Delete { failures })
        }
    }
}
