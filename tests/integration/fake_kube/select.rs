//! Label selectors (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`) and field selectors
//! (`involvedObject.name=x`, `status.phase!=Running`, …) as the real API server parses them,
//! including its refusal of field labels a resource does not index.

use super::api::{ApiError, Resource};
use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector (all requirements must hold).
#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<LabelReq>);

fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_set(key: &str, rest: &str, term: &str) -> Result<(String, Vec<String>), ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unable to parse requirement: found '{rest}', expected: '(' in {term:?}"
            ))
        })?;
    let values = inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    Ok((key.trim().to_string(), values))
}

impl LabelSelector {
    /// Parses `labelSelector`; an empty string selects everything.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = Vec::new();
        if s.trim().is_empty() {
            return Ok(LabelSelector(reqs));
        }
        for term in split_top_level(s) {
            let t = term.trim();
            if t.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: empty term in label selector {s:?}"
                )));
            }
            let req = if let Some(k) = t.strip_prefix('!') {
                LabelReq::NotExists(k.trim().to_string())
            } else if let Some((k, rest)) = t.split_once(" notin ") {
                let (k, v) = parse_set(k, rest, t)?;
                LabelReq::NotIn(k, v)
            } else if let Some((k, rest)) = t.split_once(" in ") {
                let (k, v) = parse_set(k, rest, t)?;
                LabelReq::In(k, v)
            } else if let Some((k, v)) = t.split_once("!=") {
                LabelReq::NotEq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = t.split_once("==") {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else if let Some((k, v)) = t.split_once('=') {
                LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
            } else {
                LabelReq::Exists(t.to_string())
            };
            let key = match &req {
                LabelReq::Eq(k, _)
                | LabelReq::NotEq(k, _)
                | LabelReq::In(k, _)
                | LabelReq::NotIn(k, _)
                | LabelReq::Exists(k)
                | LabelReq::NotExists(k) => k,
            };
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: invalid label key {key:?} in {s:?}"
                )));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// The selector `metadata.labels` must satisfy, from a `matchLabels` map.
    pub fn from_match_labels(m: &Value) -> Self {
        let reqs = m
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| LabelReq::Eq(k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        LabelSelector(reqs)
    }

    /// True if `obj`'s labels satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| vs.iter().all(|v| v != x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector (all terms must hold).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Field labels the real server indexes per kind, besides `metadata.name`/`metadata.namespace`.
fn supported_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Secret" => &["type"],
        "Namespace" => &["status.phase"],
        "Node" => &["spec.unschedulable"],
        "ReplicaSet" | "StatefulSet" => &["status.replicas"],
        _ => &[],
    }
}

impl FieldSelector {
    /// Parses `fieldSelector` for resource `r`; unknown field labels are a 400, as on a real
    /// server.
    pub fn parse(s: &str, r: &Resource) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        if s.trim().is_empty() {
            return Ok(FieldSelector(terms));
        }
        for term in s.split(',') {
            let t = term.trim();
            let (k, eq, v) = if let Some((k, v)) = t.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = t.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = t.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{t}'"
                )));
            };
            let k = k.trim();
            if k != "metadata.name"
                && k != "metadata.namespace"
                && !supported_fields(r.kind).contains(&k)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            terms.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    /// True if every term holds for `obj`.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(k, eq, v)| {
            let path = if k == "source" { "source.component" } else { k };
            let mut cur = obj;
            for part in path.split('.') {
                cur = &cur[part];
            }
            let actual = match cur {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (actual == *v) == *eq
        })
    }
}

#[test]
fn label_selectors_parse_like_the_api_server() {
    let obj = serde_json::json!({"metadata": {"labels": {"app": "router", "tier": "web"}}});
    let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&obj);
    assert!(m(""));
    assert!(m("app=router"));
    assert!(m("app==router,tier=web"));
    assert!(!m("app=router,tier=db"));
    assert!(m("app in (router, engine)"));
    assert!(!m("app notin (router)"));
    assert!(m("tier,!missing"));
    assert!(!m("!tier"));
    assert!(m("app!=engine"));
    assert!(LabelSelector::parse("app in router").is_err());
}
