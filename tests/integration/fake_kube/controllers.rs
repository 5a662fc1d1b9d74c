//! The fake's controllers and kubelet, run before every request is answered: Deployments make
//! ReplicaSets, ReplicaSets/StatefulSets/DaemonSets make Pods, pods' status follows the clock
//! (ContainerCreating → Running/Ready after `ready_after`, or CrashLoopBackOff, or unschedulable
//! with a FailedScheduling event), workload status counts ready pods, and Services get
//! Endpoints.

use super::store::{template_hash, Key, PodSim, Store, NODE};
use serde_json::{json, Value};
use std::time::Instant;

/// Why an unschedulable pod cannot be placed (the scheduler's message on a one-node cluster).
pub const UNSCHEDULABLE_MSG: &str = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.";

fn key(group: &str, plural: &str, ns: &str, name: &str) -> Key {
    Key {
        group: group.into(),
        plural: plural.into(),
        namespace: ns.into(),
        name: name.into(),
    }
}

fn owner_ref(obj: &Value) -> Value {
    json!({
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn owned_by(obj: &Value, uid: &Value) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| &r["uid"] == uid))
}

/// Pods in `ns` owned by `uid`, oldest first.
fn owned_pods(s: &Store, ns: &str, uid: &Value) -> Vec<Key> {
    let mut pods: Vec<(Instant, Key)> = s
        .items
        .iter()
        .filter(|(k, _)| k.plural == "pods" && k.group.is_empty() && k.namespace == ns)
        .filter(|(_, st)| owned_by(&st.obj, uid))
        .map(|(k, st)| {
            (
                st.sim.as_ref().map_or(Instant::now(), |x| x.created),
                k.clone(),
            )
        })
        .collect();
    pods.sort();
    pods.into_iter().map(|(_, k)| k).collect()
}

fn pod_from_template(
    tpl: &Value,
    name: &str,
    ns: &str,
    owner: Value,
    extra_labels: &[(&str, String)],
) -> Value {
    let mut labels = tpl["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, v) in extra_labels {
        labels[*k] = json!(v);
    }
    let mut spec = tpl["spec"].clone();
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("schedulerName", json!("default-scheduler")),
        ("serviceAccountName", json!("default")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("enableServiceLinks", json!(true)),
    ] {
        if spec[k].is_null() {
            spec[k] = v;
        }
    }
    let mut meta =
        json!({"name": name, "namespace": ns, "labels": labels, "ownerReferences": [owner]});
    if tpl["metadata"]["annotations"].is_object() {
        meta["annotations"] = tpl["metadata"]["annotations"].clone();
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
}

fn deployments(s: &mut Store, now: Instant) {
    for dk in s.keys_of("apps", "deployments") {
        let d = s.items[&dk].obj.clone();
        let uid = d["metadata"]["uid"].clone();
        let tpl = d["spec"]["template"].clone();
        let hash = template_hash(&tpl);
        let rs_name = format!("{}-{hash}", dk.name);
        let ns = dk.namespace.clone();
        let stale: Vec<Key> = s
            .keys_of("apps", "replicasets")
            .into_iter()
            .filter(|k| k.namespace == ns && k.name != rs_name && owned_by(&s.items[k].obj, &uid))
            .collect();
        for k in stale {
            s.remove(&k);
        }
        let mut tpl = tpl;
        tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut sel = d["spec"]["selector"].clone();
        sel["matchLabels"]["pod-template-hash"] = json!(hash);
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": ns,
                "labels": tpl["metadata"]["labels"],
                "annotations": {"deployment.kubernetes.io/desired-replicas": d["spec"]["replicas"].to_string()},
                "ownerReferences": [owner_ref(&d)],
            },
            "spec": {"replicas": d["spec"]["replicas"].as_i64().unwrap_or(1), "selector": sel, "template": tpl},
        });
        s.put_controller(key("apps", "replicasets", &ns, &rs_name), rs, now);
    }
    s.collect_garbage();
}

fn replicasets(s: &mut Store, now: Instant) {
    for rk in s.keys_of("apps", "replicasets") {
        let rs = s.items[&rk].obj.clone();
        let uid = rs["metadata"]["uid"].clone();
        let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        let pods = owned_pods(s, &rk.namespace, &uid);
        for extra in pods.iter().skip(want).rev() {
            s.remove(extra);
        }
        for _ in pods.len()..want {
            let name = format!("{}-{}", rk.name, s.new_suffix());
            let pod = pod_from_template(
                &rs["spec"]["template"],
                &name,
                &rk.namespace,
                owner_ref(&rs),
                &[],
            );
            s.put_controller(key("", "pods", &rk.namespace, &name), pod, now);
        }
    }
}

fn statefulsets(s: &mut Store, now: Instant) {
    for sk in s.keys_of("apps", "statefulsets") {
        let sts = s.items[&sk].obj.clone();
        let uid = sts["metadata"]["uid"].clone();
        let n = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        let rev = format!("{}-{}", sk.name, template_hash(&sts["spec"]["template"]));
        for pk in owned_pods(s, &sk.namespace, &uid) {
            let ordinal = pk
                .name
                .rsplit('-')
                .next()
                .and_then(|o| o.parse::<usize>().ok());
            let stale =
                s.items[&pk].obj["metadata"]["labels"]["controller-revision-hash"] != rev.as_str();
            if ordinal.is_none_or(|o| o >= n) || stale {
                s.remove(&pk);
            }
        }
        for i in 0..n {
            let name = format!("{}-{i}", sk.name);
            let pk = key("", "pods", &sk.namespace, &name);
            if s.items.contains_key(&pk) {
                continue;
            }
            let mut pod = pod_from_template(
                &sts["spec"]["template"],
                &name,
                &sk.namespace,
                owner_ref(&sts),
                &[
                    ("controller-revision-hash", rev.clone()),
                    ("statefulset.kubernetes.io/pod-name", name.clone()),
                    ("apps.kubernetes.io/pod-index", i.to_string()),
                ],
            );
            pod["spec"]["hostname"] = json!(name);
            if let Some(svc) = sts["spec"]["serviceName"].as_str() {
                pod["spec"]["subdomain"] = json!(svc);
            }
            s.put_controller(pk, pod, now);
        }
    }
}

fn daemonsets(s: &mut Store, now: Instant) {
    for dk in s.keys_of("apps", "daemonsets") {
        let ds = s.items[&dk].obj.clone();
        let uid = ds["metadata"]["uid"].clone();
        let rev = template_hash(&ds["spec"]["template"]);
        let pods = owned_pods(s, &dk.namespace, &uid);
        let mut have = 0;
        for pk in pods {
            if have == 0
                && s.items[&pk].obj["metadata"]["labels"]["controller-revision-hash"]
                    == rev.as_str()
            {
                have = 1;
            } else {
                s.remove(&pk);
            }
        }
        if have == 0 {
            let name = format!("{}-{}", dk.name, s.new_suffix());
            let pod = pod_from_template(
                &ds["spec"]["template"],
                &name,
                &dk.namespace,
                owner_ref(&ds),
                &[
                    ("controller-revision-hash", rev.clone()),
                    ("pod-template-generation", "1".into()),
                ],
            );
            s.put_controller(key("", "pods", &dk.namespace, &name), pod, now);
        }
    }
}

fn container_id(pod: &Value, container: &str) -> String {
    let seed = format!("{}/{container}", pod["metadata"]["uid"]);
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in seed.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("docker://{h:016x}{:016x}", h.rotate_left(17) ^ 0x5bd1_e995)
}

fn condition(t: &str, ok: bool, reason: Option<&str>, message: Option<String>, at: &str) -> Value {
    let mut c = json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": at});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

/// True once the pod's containers have started (they may still crash).
pub fn started(s: &Store, sim: &PodSim, now: Instant) -> bool {
    !sim.pending && now >= sim.created + s.opts.ready_after
}

/// The status the fake kubelet reports for `pod` at `now`.
fn pod_status(s: &Store, pod: &Value, sim: &PodSim, now: Instant) -> Value {
    let created = s.ts(sim.created);
    if sim.pending {
        return json!({
            "phase": "Pending",
            "qosClass": "BestEffort",
            "conditions": [condition("PodScheduled", false, Some("Unschedulable"), Some(UNSCHEDULABLE_MSG.into()), &created)],
        });
    }
    let containers: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let start = sim.created + s.opts.ready_after;
    let start_ts = s.ts(start);
    let mut st = json!({
        "hostIP": "192.168.49.2",
        "hostIPs": [{"ip": "192.168.49.2"}],
        "startTime": created,
        "qosClass": "BestEffort",
    });
    let base = |c: &Value| {
        json!({
            "name": c["name"],
            "image": c["image"],
            "imageID": "",
            "ready": false,
            "restartCount": 0,
            "started": false,
            "lastState": {},
        })
    };
    if !started(s, sim, now) {
        st["phase"] = json!("Pending");
        let unready = format!("containers with unready status: [{}]", names.join(" "));
        st["conditions"] = json!([
            condition("PodReadyToStartContainers", false, None, None, &created),
            condition("Initialized", true, None, None, &created),
            condition(
                "Ready",
                false,
                Some("ContainersNotReady"),
                Some(unready.clone()),
                &created
            ),
            condition(
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some(unready),
                &created
            ),
            condition("PodScheduled", true, None, None, &created),
        ]);
        st["containerStatuses"] = containers
            .iter()
            .map(|c| {
                let mut cs = base(c);
                cs["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
                cs
            })
            .collect();
        return st;
    }
    st["phase"] = json!("Running");
    st["podIP"] = json!(sim.ip);
    st["podIPs"] = json!([{"ip": sim.ip}]);
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let restarts = 1 + now.saturating_duration_since(start).as_secs() / 5;
    let mut statuses = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let mut cs = base(c);
        cs["imageID"] = json!(format!(
            "docker-pullable://{}",
            c["image"].as_str().unwrap_or("")
        ));
        cs["containerID"] = json!(container_id(pod, names.get(i).copied().unwrap_or("")));
        if sim.crash && i == 0 {
            cs["restartCount"] = json!(restarts);
            cs["state"] = json!({"waiting": {
                "reason": "CrashLoopBackOff",
                "message": format!("back-off 10s restarting failed container={} pod={pod_name}_{ns}({uid})", names[0]),
            }});
            cs["lastState"] = json!({"terminated": {
                "exitCode": 1,
                "reason": "Error",
                "startedAt": start_ts,
                "finishedAt": start_ts,
                "containerID": cs["containerID"],
            }});
        } else {
            cs["ready"] = json!(true);
            cs["started"] = json!(true);
            cs["state"] = json!({"running": {"startedAt": start_ts}});
        }
        statuses.push(cs);
    }
    st["containerStatuses"] = json!(statuses);
    let ready = !sim.crash;
    let (reason, msg) = if ready {
        (None, None)
    } else {
        (
            Some("ContainersNotReady"),
            Some(format!("containers with unready status: [{}]", names[0])),
        )
    };
    st["conditions"] = json!([
        condition("PodReadyToStartContainers", true, None, None, &start_ts),
        condition("Initialized", true, None, None, &created),
        condition("Ready", ready, reason, msg.clone(), &start_ts),
        condition("ContainersReady", ready, reason, msg, &start_ts),
        condition("PodScheduled", true, None, None, &created),
    ]);
    st
}

/// True if the pod's status says Ready=True.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn emit_event(
    s: &mut Store,
    pod: &Value,
    reason: &'static str,
    ty: &str,
    message: String,
    component: &str,
    at: Instant,
) {
    let ns = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_string();
    let pod_name = pod["metadata"]["name"].as_str().unwrap_or("");
    let name = format!("{pod_name}.{:016x}", {
        let suffix = s.new_suffix();
        suffix.bytes().fold(0x1234_5678u64, |h, b| {
            h.wrapping_mul(31).wrapping_add(u64::from(b))
        })
    });
    let ts = s.ts(at);
    let ev = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod_name,
            "namespace": ns,
            "uid": pod["metadata"]["uid"],
            "resourceVersion": pod["metadata"]["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "type": ty,
        "source": {"component": component},
        "firstTimestamp": ts,
        "lastTimestamp": ts,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    s.put_controller(key("", "events", &ns, &name), ev, at);
}

fn kubelet(s: &mut Store, now: Instant) {
    for pk in s.keys_of("", "pods") {
        let Some(stored) = s.items.get(&pk) else {
            continue;
        };
        let pod = stored.obj.clone();
        let sim = match stored.sim.clone() {
            Some(sim) => sim,
            None => {
                let sim = s.new_pod_sim(&pod, now);
                s.items.get_mut(&pk).expect("present").sim = Some(sim.clone());
                sim
            }
        };
        if !sim.pending && pod["spec"]["nodeName"].is_null() {
            let entry = s.items.get_mut(&pk).expect("present");
            entry.obj["spec"]["nodeName"] = json!(NODE);
        }
        let status = pod_status(s, &pod, &sim, now);
        s.set_status(&pk, status);
        let pod = s.items[&pk].obj.clone();
        let first = pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let mut due: Vec<(&'static str, &str, String, &str, Instant)> = Vec::new();
        if sim.pending {
            due.push((
                "FailedScheduling",
                "Warning",
                UNSCHEDULABLE_MSG.to_string(),
                "default-scheduler",
                sim.created,
            ));
        } else {
            due.push((
                "Scheduled",
                "Normal",
                format!(
                    "Successfully assigned {}/{} to {NODE}",
                    pk.namespace, pk.name
                ),
                "default-scheduler",
                sim.created,
            ));
            if started(s, &sim, now) {
                let start = sim.created + s.opts.ready_after;
                due.push((
                    "Started",
                    "Normal",
                    format!("Started container {first}"),
                    "kubelet",
                    start,
                ));
                if sim.crash {
                    due.push((
                        "BackOff",
                        "Warning",
                        format!(
                            "Back-off restarting failed container {first} in pod {}_{}({})",
                            pk.name,
                            pk.namespace,
                            pod["metadata"]["uid"].as_str().unwrap_or("")
                        ),
                        "kubelet",
                        start,
                    ));
                }
            }
        }
        for (reason, ty, msg, component, at) in due {
            if sim.events.contains(&reason) {
                continue;
            }
            emit_event(s, &pod, reason, ty, msg, component, at);
            if let Some(st) = s.items.get_mut(&pk).and_then(|x| x.sim.as_mut()) {
                st.events.push(reason);
            }
        }
    }
}

/// Keeps a condition's lastTransitionTime while its status stays the same.
fn keep_transition(old: &Value, mut c: Value) -> Value {
    if let Some(prev) = old["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|x| x["type"] == c["type"]))
    {
        if prev["status"] == c["status"] {
            c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
            c["lastUpdateTime"] = prev["lastUpdateTime"].clone();
        }
    }
    c
}

fn counts(s: &Store, ns: &str, uid: &Value) -> (i64, i64) {
    let pods = owned_pods(s, ns, uid);
    let ready = pods.iter().filter(|k| pod_ready(&s.items[*k].obj)).count() as i64;
    (pods.len() as i64, ready)
}

fn nonzero(st: &mut Value, k: &str, n: i64) {
    if n != 0 {
        st[k] = json!(n);
    }
}

fn workload_status(s: &mut Store, now: Instant) {
    let ts = s.ts(now);
    for rk in s.keys_of("apps", "replicasets") {
        let rs = &s.items[&rk].obj;
        let (n, ready) = counts(s, &rk.namespace, &rs["metadata"]["uid"]);
        let mut st = json!({"replicas": n, "observedGeneration": rs["metadata"]["generation"]});
        nonzero(&mut st, "fullyLabeledReplicas", n);
        nonzero(&mut st, "readyReplicas", ready);
        nonzero(&mut st, "availableReplicas", ready);
        s.set_status(&rk, st);
    }
    for dk in s.keys_of("apps", "deployments") {
        let d = s.items[&dk].obj.clone();
        let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let rs_name = format!("{}-{}", dk.name, template_hash(&d["spec"]["template"]));
        let rs = s
            .items
            .get(&key("apps", "replicasets", &dk.namespace, &rs_name))
            .map(|x| x.obj.clone());
        let (n, ready) = rs.map_or((0, 0), |rs| {
            counts(s, &dk.namespace, &rs["metadata"]["uid"])
        });
        let old = d["status"].clone();
        let available = ready >= want;
        let mut st = json!({"observedGeneration": d["metadata"]["generation"]});
        nonzero(&mut st, "replicas", n);
        nonzero(&mut st, "updatedReplicas", n);
        nonzero(&mut st, "readyReplicas", ready);
        nonzero(&mut st, "availableReplicas", ready);
        nonzero(&mut st, "unavailableReplicas", (want - ready).max(0));
        let mut avail = condition(
            "Available",
            available,
            Some(if available {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            }),
            Some(if available {
                "Deployment has minimum availability.".into()
            } else {
                "Deployment does not have minimum availability.".into()
            }),
            &ts,
        );
        avail["lastUpdateTime"] = json!(ts);
        let mut prog = condition(
            "Progressing",
            true,
            Some(if available {
                "NewReplicaSetAvailable"
            } else {
                "ReplicaSetUpdated"
            }),
            Some(format!(
                "ReplicaSet \"{rs_name}\" {}",
                if available {
                    "has successfully progressed."
                } else {
                    "is progressing."
                }
            )),
            &ts,
        );
        prog["lastUpdateTime"] = json!(ts);
        for c in [&mut avail, &mut prog] {
            c.as_object_mut().expect("object").remove("lastProbeTime");
        }
        st["conditions"] = json!([keep_transition(&old, avail), keep_transition(&old, prog)]);
        s.set_status(&dk, st);
    }
    for sk in s.keys_of("apps", "statefulsets") {
        let sts = s.items[&sk].obj.clone();
        let (n, ready) = counts(s, &sk.namespace, &sts["metadata"]["uid"]);
        let rev = format!("{}-{}", sk.name, template_hash(&sts["spec"]["template"]));
        let mut st = json!({
            "observedGeneration": sts["metadata"]["generation"],
            "replicas": n,
            "currentRevision": rev,
            "updateRevision": rev,
            "collisionCount": 0,
        });
        nonzero(&mut st, "currentReplicas", n);
        nonzero(&mut st, "updatedReplicas", n);
        nonzero(&mut st, "readyReplicas", ready);
        nonzero(&mut st, "availableReplicas", ready);
        s.set_status(&sk, st);
    }
    for dk in s.keys_of("apps", "daemonsets") {
        let ds = s.items[&dk].obj.clone();
        let (n, ready) = counts(s, &dk.namespace, &ds["metadata"]["uid"]);
        let st = json!({
            "observedGeneration": ds["metadata"]["generation"],
            "currentNumberScheduled": n,
            "desiredNumberScheduled": 1,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": n,
        });
        s.set_status(&dk, st);
    }
}

fn endpoints(s: &mut Store, now: Instant) {
    const TRIGGER: &str = "endpoints.kubernetes.io/last-change-trigger-time";
    let services = s.keys_of("", "services");
    for ek in s.keys_of("", "endpoints") {
        let managed = !s.items[&ek].obj["metadata"]["annotations"][TRIGGER].is_null();
        if managed
            && !services
                .iter()
                .any(|k| k.namespace == ek.namespace && k.name == ek.name)
        {
            s.remove(&ek);
        }
    }
    for sk in services {
        let svc = s.items[&sk].obj.clone();
        let selector = &svc["spec"]["selector"];
        if selector.as_object().is_none_or(|m| m.is_empty()) {
            continue;
        }
        let sel = super::select::LabelSelector::from_match_labels(selector);
        let pods: Vec<Value> = s
            .items
            .iter()
            .filter(|(k, _)| {
                k.group.is_empty() && k.plural == "pods" && k.namespace == sk.namespace
            })
            .map(|(_, st)| st.obj.clone())
            .filter(|p| sel.matches(p) && p["status"]["podIP"].is_string())
            .collect();
        let addr = |p: &Value| {
            json!({
                "ip": p["status"]["podIP"],
                "nodeName": NODE,
                "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": sk.namespace, "uid": p["metadata"]["uid"]},
            })
        };
        let ready: Vec<Value> = pods.iter().filter(|p| pod_ready(p)).map(addr).collect();
        let unready: Vec<Value> = pods.iter().filter(|p| !pod_ready(p)).map(addr).collect();
        let mut ports = Vec::new();
        for p in svc["spec"]["ports"].as_array().cloned().unwrap_or_default() {
            let target = match &p["targetPort"] {
                Value::String(named) => pods.iter().find_map(|pod| {
                    pod["spec"]["containers"].as_array()?.iter().find_map(|c| {
                        c["ports"]
                            .as_array()?
                            .iter()
                            .find(|cp| cp["name"] == named.as_str())
                            .map(|cp| cp["containerPort"].clone())
                    })
                }),
                other => Some(other.clone()),
            };
            if let Some(t) = target {
                let mut ep = json!({"port": t, "protocol": p["protocol"]});
                if p["name"].is_string() {
                    ep["name"] = p["name"].clone();
                }
                ports.push(ep);
            }
        }
        let mut obj = json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": sk.name, "namespace": sk.namespace, "labels": svc["metadata"]["labels"], "annotations": {TRIGGER: svc["metadata"]["creationTimestamp"]}},
        });
        if !pods.is_empty() && !ports.is_empty() {
            let mut subset = json!({"ports": ports});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !unready.is_empty() {
                subset["notReadyAddresses"] = json!(unready);
            }
            obj["subsets"] = json!([subset]);
        }
        if obj["metadata"]["labels"].is_null() {
            obj["metadata"]
                .as_object_mut()
                .expect("object")
                .remove("labels");
        }
        s.put_controller(key("", "endpoints", &sk.namespace, &sk.name), obj, now);
    }
}

/// Runs every controller once: the cluster as it is at `now`.
pub fn reconcile(s: &mut Store, now: Instant) {
    deployments(s, now);
    replicasets(s, now);
    statefulsets(s, now);
    daemonsets(s, now);
    s.collect_garbage();
    kubelet(s, now);
    workload_status(s, now);
    endpoints(s, now);
}
