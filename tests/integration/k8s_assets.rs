//! The configuration files the non-Flat baselines select, checked without a cluster: every
//! Helm values file renders with a stand-in production-stack chart (tests/fixtures/charts/)
//! that fails on a missing or misspelt key, every llm-d values file renders with a stand-in
//! llm-d chart, and the rendered objects, the Direct manifests and the device-plugin manifests
//! pass `kubernetes-validate --strict` against Kubernetes 1.33; on top of the schemas, the
//! labels, selectors, Services and models must agree with each other and with the READMEs.
//! Launch scripts must parse (`bash -n`, `py_compile`), name their model, serve on
//! `LMBENCH_PORT` and stay in the foreground; Dynamo's launch.sh is run against a fake Dynamo.
//!
//! helm and kubernetes-validate come from `scripts/install-k8s-tools.sh`; the tests find them
//! through `LMBENCH_K8S_TOOLS` (their bin folder) or in that script's cache folder.

use crate::util::repo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The cache folder scripts/install-k8s-tools.sh installs into (its KEY); change both together.
const TOOLS_KEY: &str = "k8s-tools-layer2.2.2-kv1.37.0";
/// The Kubernetes version manifests are validated against (the k8s-openapi feature in use).
const KUBE_VERSION: &str = "1.33.0";
/// What lmbench substitutes for `<YOUR_HF_TOKEN>` in these tests.
const DUMMY_TOKEN: &str = "hf_lmbench_test_token";

/// The folder holding helm, kubectl and kubernetes-validate; panics with the way to get them.
fn tools() -> PathBuf {
    let dir = match std::env::var_os("LMBENCH_K8S_TOOLS") {
        Some(d) => PathBuf::from(d),
        None => {
            let cache = std::env::var_os("LMBENCH_CACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
                        .join(".cache/lmbench")
                });
            cache.join(TOOLS_KEY).join("bin")
        }
    };
    for tool in ["helm", "kubernetes-validate"] {
        assert!(
            dir.join(tool).is_file(),
            "{tool} not found in {}: run `bash scripts/install-k8s-tools.sh` (or set LMBENCH_K8S_TOOLS to the bin folder it prints)",
            dir.display()
        );
    }
    dir
}

/// Run a command to completion, with a deadline so that a hung tool fails the test.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let deadline = Instant::now() + limit;
    // Read the pipes on other threads so that a chatty tool cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).ok();
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).ok();
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("{shown} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir` (recursively) whose name ends with one of `exts`, sorted.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if exts
                .iter()
                .any(|x| p.to_string_lossy().ends_with(&format!(".{x}")))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo())
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The non-empty documents of a (multi-document) YAML text.
fn yaml_docs(src: &str, what: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(src)
        .unwrap_or_else(|e| panic!("{what} is not YAML: {e}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn yaml_one(p: &Path) -> Value {
    serde_saphyr::from_str::<Value>(&read(p))
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", rel(p)))
}

/// `helm <args> <chart> -f <values>`, with one of the stand-in charts under tests/fixtures.
fn helm_with_values(args: &[&str], chart: &str, values: &Path) -> Output {
    run(
        Command::new(tools().join("helm"))
            .args(args)
            .arg(repo().join("tests/fixtures/charts").join(chart))
            .arg("-f")
            .arg(values),
        Duration::from_secs(60),
    )
}

/// `helm template` of `chart` with `values`: the rendered YAML, or helm's error output.
fn helm_template(chart: &str, values: &Path) -> Result<String, String> {
    let o = helm_with_values(&["template", "vllm"], chart, values);
    if o.status.success() {
        Ok(String::from_utf8(o.stdout).unwrap())
    } else {
        Err(text(&o))
    }
}

fn helm_lint(chart: &str, values: &Path) {
    let o = helm_with_values(&["lint", "--strict"], chart, values);
    assert!(
        o.status.success(),
        "helm lint of chart {chart} with {} failed:\n{}",
        values.display(),
        text(&o)
    );
}

/// `kubernetes-validate --strict` of one file: Ok, or its report.
fn kube_validate(file: &Path) -> Result<(), String> {
    let o = run(
        Command::new(tools().join("kubernetes-validate"))
            .args(["--strict", "--quiet", "-k", KUBE_VERSION])
            .arg(file),
        Duration::from_secs(120),
    );
    if o.status.success() {
        Ok(())
    } else {
        Err(text(&o))
    }
}

/// A copy of `src` in `dir` with each (placeholder, value) pair substituted, as lmbench does.
fn substituted(src: &Path, dir: &Path, subs: &[(&str, &str)]) -> PathBuf {
    let mut t = read(src);
    for (from, to) in subs {
        t = t.replace(from, to);
    }
    let out = dir.join(src.file_name().unwrap());
    std::fs::write(&out, t).unwrap();
    out
}

/// `helm lint` and `helm template` of `chart` with `values`, then kubernetes-validate of what
/// rendered (written to `tmp`); returns the rendered YAML. `what` names the values file.
fn render_valid(chart: &str, values: &Path, tmp: &Path, what: &str) -> String {
    helm_lint(chart, values);
    let rendered = helm_template(chart, values)
        .unwrap_or_else(|e| panic!("{what}: helm template failed:\n{e}"));
    let out = tmp.join("rendered.yaml");
    std::fs::write(&out, &rendered).unwrap();
    if let Err(e) = kube_validate(&out) {
        panic!("{what}: the rendered objects fail kubernetes-validate:\n{e}\n{rendered}");
    }
    rendered
}

/// `helm template` of `chart` with `values` (written to `tmp/name`), which must fail; returns
/// helm's error output. `why` says what rendered when it should not have.
fn render_error(chart: &str, tmp: &Path, name: &str, values: &str, why: &str) -> String {
    let p = tmp.join(name);
    std::fs::write(&p, values).unwrap();
    helm_template(chart, &p).expect_err(why)
}

/// `text` without the lines that contain `needle`.
fn without_lines(text: &str, needle: &str) -> String {
    text.lines()
        .filter(|l| !l.contains(needle))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The string at a JSON pointer, or a panic naming the object.
fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{ptr} missing or not a string in {v}"))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn labels(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, x)| (k.clone(), x.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// True if every label of `selector` is on `target` with the same value.
fn selects(selector: &BTreeMap<String, String>, target: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| target.get(k) == Some(v))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} named {name}"))
}

/// Command and arguments of a Deployment's first container, as one list.
fn command_line(dep: &Value) -> Vec<String> {
    let c = &dep["spec"]["template"]["spec"]["containers"][0];
    let mut all = strings(c.get("command"));
    all.extend(strings(c.get("args")));
    all
}

/// Structural checks the schemas cannot make, for any set of rendered or shipped objects:
/// each Deployment's selector matches its own pods, each Service selects some Deployment's
/// pods, and every Secret a pod reads is in the set (unless `external_secrets` names it).
fn assert_wiring(docs: &[Value], what: &str, external_secrets: &[&str]) {
    let pods: Vec<(String, BTreeMap<String, String>)> = of_kind(docs, "Deployment")
        .into_iter()
        .map(|d| {
            let name = s(d, "/metadata/name").to_owned();
            let pod = labels(d.pointer("/spec/template/metadata/labels"));
            let sel = labels(d.pointer("/spec/selector/matchLabels"));
            assert!(
                selects(&sel, &pod),
                "{what}: Deployment {name}'s selector {sel:?} does not match its pod labels {pod:?}"
            );
            (name, pod)
        })
        .collect();
    assert!(!pods.is_empty(), "{what}: no Deployment");
    for svc in of_kind(docs, "Service") {
        let sel = labels(svc.pointer("/spec/selector"));
        assert!(
            pods.iter().any(|(_, p)| selects(&sel, p)),
            "{what}: Service {} selects {sel:?}, which no Deployment's pods carry",
            s(svc, "/metadata/name")
        );
    }
    let secrets: BTreeSet<&str> = of_kind(docs, "Secret")
        .into_iter()
        .map(|d| s(d, "/metadata/name"))
        .collect();
    let claims: BTreeSet<&str> = of_kind(docs, "PersistentVolumeClaim")
        .into_iter()
        .map(|d| s(d, "/metadata/name"))
        .collect();
    for d in of_kind(docs, "Deployment") {
        let spec = &d["spec"]["template"]["spec"];
        for c in spec["containers"].as_array().unwrap() {
            for e in c["env"].as_array().into_iter().flatten() {
                if let Some(name) = e
                    .pointer("/valueFrom/secretKeyRef/name")
                    .and_then(Value::as_str)
                {
                    assert!(
                        secrets.contains(name) || external_secrets.contains(&name),
                        "{what}: {} reads Secret {name}, which is not defined",
                        s(d, "/metadata/name")
                    );
                }
            }
        }
        for v in spec["volumes"].as_array().into_iter().flatten() {
            if let Some(claim) = v
                .pointer("/persistentVolumeClaim/claimName")
                .and_then(Value::as_str)
            {
                assert!(
                    claims.contains(claim),
                    "{what}: {} mounts claim {claim}, which is not defined",
                    s(d, "/metadata/name")
                );
            }
        }
    }
}

/// The router's `--flag value` argument.
fn flag<'a>(cmd: &'a [String], flag: &str) -> Option<&'a str> {
    cmd.iter()
        .position(|a| a == flag)
        .and_then(|i| cmd.get(i + 1))
        .map(String::as_str)
}

/// Rows of a README table whose first cell is a file name in backquotes: (file, cells).
/// The router's `--k8s-label-selector` (`k=v,k=v`) as a map; `what` names the file.
fn router_selector(router_cmd: &[String], what: &str) -> BTreeMap<String, String> {
    flag(router_cmd, "--k8s-label-selector")
        .unwrap_or_else(|| panic!("{what}: router has no --k8s-label-selector"))
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn readme_rows(readme: &Path) -> BTreeMap<String, Vec<String>> {
    read(readme)
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect();
            (cells[0].trim_matches('`').to_owned(), cells)
        })
        .collect()
}

fn helm_dir() -> PathBuf {
    repo().join("2-serving-engines/helm-production-stack/helm_configurations")
}

fn direct_dir() -> PathBuf {
    repo().join("2-serving-engines/direct-production-stack/kubernetes_configurations")
}

fn llmd_dir() -> PathBuf {
    repo().join("2-serving-engines/llm-d/llmd_configurations")
}

fn assert_present(dir: &Path, names: &[&str]) {
    for n in names {
        assert!(dir.join(n).is_file(), "{} is missing", rel(&dir.join(n)));
    }
}

#[test]
fn helm_values_render_with_the_chart_shape_and_validate() {
    let dir = helm_dir();
    assert_present(
        &dir,
        &[
            "basic/llama-3.1-8b-basic.yaml",
            "routing/1-roundrobin.yaml",
            "routing/1-session.yaml",
            "routing/1-prefixaware.yaml",
            "routing/1-kvaware.yaml",
            "routing/1-no-lmcache.yaml",
            "routing/1-no-lmcache-no-prefix.yaml",
            "routing/4-session.yaml",
            "layerwise/vllm-only.yaml",
            "layerwise/w.yaml",
            "layerwise/wo.yaml",
            "lmcache/cpu-offload.yaml",
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let all = files(&dir, &["yaml", "yml"]);
    for f in &all {
        let what = rel(f);
        let src = read(f);
        assert!(
            src.contains("hf_token: <YOUR_HF_TOKEN>"),
            "{what}: has no `hf_token: <YOUR_HF_TOKEN>` for lmbench to substitute"
        );
        assert!(
            !src.contains(DUMMY_TOKEN),
            "{what} already holds the test token"
        );
        let values = yaml_one(f);
        let copy = substituted(f, tmp.path(), &[("<YOUR_HF_TOKEN>", DUMMY_TOKEN)]);
        let rendered = render_valid("production-stack", &copy, tmp.path(), &what);
        let docs = yaml_docs(&rendered, &what);
        assert_wiring(&docs, &what, &[]);

        // What lmbench relies on: the router Service on port 80, every engine serving the
        // model its entry names, with its replica count, found by the router's selector.
        let router = named(&docs, "Service", "vllm-router-service");
        assert_eq!(router["spec"]["ports"][0]["port"], 80, "{what}: {router}");
        assert_eq!(router["spec"]["ports"][0]["targetPort"], 8000, "{what}");
        let router_cmd = command_line(named(&docs, "Deployment", "vllm-deployment-router"));
        let engine_selector = router_selector(&router_cmd, &what);
        let specs = values["servingEngineSpec"]["modelSpec"].as_array().unwrap();
        for m in specs {
            let name = m["name"].as_str().unwrap();
            let dep = named(&docs, "Deployment", &format!("vllm-{name}-deployment-vllm"));
            let cmd = command_line(dep);
            let model = m["modelURL"].as_str().unwrap();
            assert!(
                cmd.iter().any(|a| a == model),
                "{what}: engine {name} does not serve {model}: {cmd:?}"
            );
            assert_eq!(dep["spec"]["replicas"], m["replicaCount"], "{what}: {name}");
            let pod = labels(dep.pointer("/spec/template/metadata/labels"));
            assert!(
                selects(&engine_selector, &pod),
                "{what}: the router's selector {engine_selector:?} misses engine {name}'s pods {pod:?}"
            );
            assert_eq!(
                pod.get("app.kubernetes.io/part-of").map(String::as_str),
                Some("lmbench"),
                "{what}: engine pods are not labelled for lmbench"
            );
            let lmcache = m["lmcacheConfig"]["enabled"] == true;
            assert_eq!(
                cmd.iter().any(|a| a.contains("LMCacheConnectorV1")),
                lmcache,
                "{what}: LMCache enabled={lmcache} but the engine command is {cmd:?}"
            );
        }
        // The substituted token reaches the Secret, i.e. the placeholder sits where the chart
        // reads the token.
        let secret = named(&docs, "Secret", "vllm-secrets");
        assert!(
            secret.to_string().contains(DUMMY_TOKEN),
            "{what}: the token did not reach the Secret"
        );
    }
}

#[test]
fn helm_readme_table_matches_the_values_files() {
    let rows = readme_rows(&repo().join("2-serving-engines/helm-production-stack/README.md"));
    let all = files(&helm_dir(), &["yaml", "yml"]);
    let names: BTreeSet<String> = all
        .iter()
        .map(|f| {
            f.strip_prefix(helm_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let documented: BTreeSet<String> = rows.keys().cloned().collect();
    assert_eq!(
        documented, names,
        "README table rows vs. helm_configurations files"
    );
    for (name, cells) in &rows {
        let v = yaml_one(&helm_dir().join(name));
        let m = &v["servingEngineSpec"]["modelSpec"][0];
        let vc = &m["vllmConfig"];
        assert_eq!(cells[1], m["modelURL"].as_str().unwrap(), "{name}: model");
        assert_eq!(
            cells[2],
            format!("{} × {}", m["replicaCount"], m["requestGPU"]),
            "{name}: engines × GPUs"
        );
        let prefix = if vc["enablePrefixCaching"] == true {
            "on"
        } else {
            "off"
        };
        assert_eq!(cells[3], prefix, "{name}: prefix cache");
        let lm = &m["lmcacheConfig"];
        if lm["enabled"] == true {
            let gb = lm["cpuOffloadingBufferSize"].as_str().unwrap();
            assert!(
                cells[4].starts_with(&format!("{gb} GB")),
                "{name}: LMCache {cells:?}"
            );
        } else {
            assert_eq!(cells[4], "off", "{name}: LMCache");
        }
        let logic = v["routerSpec"]["routingLogic"].as_str().unwrap();
        assert!(
            cells[5].starts_with(logic),
            "{name}: router logic {cells:?}"
        );
        assert_eq!(
            cells[6],
            vc["maxModelLen"].to_string(),
            "{name}: maxModelLen"
        );
    }
}

#[test]
fn the_stand_in_chart_rejects_values_of_the_wrong_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let good = read(&helm_dir().join("routing/1-session.yaml"));
    let rejected = |name: &str, values: &str, why: &str| {
        render_error("production-stack", tmp.path(), name, values, why)
    };
    // A values file without modelURL: the error names the key and the entry.
    let err = rejected(
        "no-model.yaml",
        &without_lines(&good, "modelURL"),
        "a values file without modelURL rendered",
    );
    assert!(
        err.contains("servingEngineSpec.modelSpec[0].modelURL is required"),
        "{err}"
    );
    // A misspelt key, which the real chart would ignore.
    let typo = good.replace("enablePrefixCaching", "enablePrefixCashing");
    let err = rejected("typo.yaml", &typo, "a misspelt key rendered");
    assert!(err.contains("enablePrefixCashing"), "{err}");
    // Session routing without the header to route on.
    let err = rejected(
        "no-key.yaml",
        &without_lines(&good, "sessionKey"),
        "session routing without sessionKey rendered",
    );
    assert!(err.contains("routerSpec.sessionKey is required"), "{err}");
    // A wrong type.
    let bad_len = good.replace("maxModelLen: 16384", "maxModelLen: \"long\"");
    let err = rejected("bad-len.yaml", &bad_len, "a string maxModelLen rendered");
    assert!(err.contains("maxModelLen"), "{err}");
}

#[test]
fn direct_manifests_validate_and_are_wired() {
    let dir = direct_dir();
    assert_present(
        &dir,
        &[
            "basic/llama8B_vllm.yaml",
            "basic/llama8B_lmcache.yaml",
            "routing/lmcache_roundrobin.yaml",
            "routing/lmcache_session.yaml",
        ],
    );
    let rows = readme_rows(&repo().join("2-serving-engines/direct-production-stack/README.md"));
    let tmp = tempfile::tempdir().unwrap();
    for f in files(&dir, &["yaml", "yml"]) {
        let what = rel(&f);
        let name = f.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
        let original = yaml_docs(&read(&f), &what);
        let secret = named(&original, "Secret", "vllm-secrets");
        assert_eq!(
            s(secret, "/data/hf_token"),
            "<YOUR_HF_TOKEN_BASE64>",
            "{what}: the Secret must hold the placeholder lmbench substitutes"
        );
        let copy = substituted(
            &f,
            tmp.path(),
            &[
                ("<YOUR_HF_TOKEN_BASE64>", &base64(DUMMY_TOKEN)),
                ("<YOUR_HF_TOKEN>", DUMMY_TOKEN),
            ],
        );
        if let Err(e) = kube_validate(&copy) {
            panic!("{what}: kubernetes-validate failed:\n{e}");
        }
        let docs = yaml_docs(&read(&copy), &what);
        for kind in [
            "ServiceAccount",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
        ] {
            assert!(!of_kind(&docs, kind).is_empty(), "{what}: no {kind}");
        }
        for d in &docs {
            assert_eq!(
                d.pointer("/metadata/labels/app.kubernetes.io~1part-of"),
                Some(&Value::from("lmbench")),
                "{what}: {} {} lacks app.kubernetes.io/part-of: lmbench",
                d["kind"],
                d["metadata"]["name"]
            );
        }
        assert_wiring(&docs, &what, &[]);
        let svc = named(&docs, "Service", "vllm-router-service");
        assert_eq!(svc["spec"]["ports"][0]["port"], 80, "{what}");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8000, "{what}");

        let router = of_kind(&docs, "Deployment")
            .into_iter()
            .find(|d| d["spec"]["template"]["metadata"]["labels"]["app"] == "vllm-router")
            .unwrap_or_else(|| panic!("{what}: no Deployment with pods app: vllm-router"));
        let engine = of_kind(&docs, "Deployment")
            .into_iter()
            .find(|d| d["spec"]["template"]["metadata"]["labels"]["app"] == "vllm-engine")
            .unwrap_or_else(|| panic!("{what}: no Deployment with pods app: vllm-engine"));
        let router_cmd = command_line(router);
        let selector = router_selector(&router_cmd, &what);
        let engine_pods = labels(engine.pointer("/spec/template/metadata/labels"));
        assert!(
            selects(&selector, &engine_pods),
            "{what}: the router's selector {selector:?} misses the engine pods {engine_pods:?}"
        );
        let cmd = command_line(engine);
        let serve = cmd
            .iter()
            .position(|a| a == "serve")
            .unwrap_or_else(|| panic!("{what}: the engine does not run `vllm serve`: {cmd:?}"));
        let model = &cmd[serve + 1];

        let cells = rows
            .get(&name)
            .unwrap_or_else(|| panic!("README has no table row for {name}"));
        assert_eq!(&cells[1], model, "{name}: README model");
        assert_eq!(
            cells[2],
            format!("{} × 1", engine["spec"]["replicas"]),
            "{name}: README engines"
        );
        let lmcache = cmd.iter().any(|a| a.contains("LMCacheConnectorV1"));
        assert_eq!(cells[4] != "off", lmcache, "{name}: README LMCache column");
        let logic = flag(&router_cmd, "--routing-logic").unwrap();
        assert!(cells[5].starts_with(logic), "{name}: README router logic");
        if logic == "session" {
            assert!(
                flag(&router_cmd, "--session-key").is_some(),
                "{what}: no --session-key"
            );
        }
        assert_eq!(
            Some(cells[6].as_str()),
            flag(&cmd, "--max-model-len"),
            "{name}: README max model len"
        );
    }
    assert_eq!(
        rows.len(),
        files(&dir, &["yaml", "yml"]).len(),
        "README table rows vs. kubernetes_configurations files"
    );
}

#[test]
fn an_invalid_manifest_fails_kubernetes_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let good = read(&direct_dir().join("basic/llama8B_vllm.yaml"))
        .replace("<YOUR_HF_TOKEN_BASE64>", &base64(DUMMY_TOKEN));
    let bad = tmp.path().join("bad-replicas.yaml");
    std::fs::write(&bad, good.replacen("replicas: 1", "replicas: \"x\"", 1)).unwrap();
    let err = kube_validate(&bad).expect_err("replicas: \"x\" passed kubernetes-validate");
    assert!(err.contains("replicas"), "{err}");
    // --strict: a misspelt optional field is an error, not silently dropped (without --strict
    // this file passes, which is why every check here uses it).
    let typo = tmp.path().join("typo.yaml");
    let typo_text = good.replacen(
        "imagePullPolicy: IfNotPresent",
        "imagepullpolicy: IfNotPresent",
        1,
    );
    assert_ne!(typo_text, good);
    std::fs::write(&typo, typo_text).unwrap();
    let err = kube_validate(&typo).expect_err("a misspelt field passed kubernetes-validate");
    assert!(err.contains("imagepullpolicy"), "{err}");
    let lax = run(
        Command::new(tools().join("kubernetes-validate"))
            .args(["--quiet", "-k", KUBE_VERSION])
            .arg(&typo),
        Duration::from_secs(120),
    );
    assert!(lax.status.success(), "{}", text(&lax));
}

#[test]
fn llmd_values_render_with_the_chart_shape_and_validate() {
    let dir = llmd_dir();
    assert_present(&dir, &["debug-deployment.yaml", "comparison-baseline.yaml"]);
    let tmp = tempfile::tempdir().unwrap();
    for f in files(&dir, &["yaml", "yml"]) {
        let what = rel(&f);
        let values = yaml_one(&f);
        let rendered = render_valid("llm-d", &f, tmp.path(), &what);
        let docs = yaml_docs(&rendered, &what);
        // The token Secret is created by the installer, outside the chart.
        let secret = s(&values, "/sampleApplication/model/auth/hfToken/name");
        assert_wiring(&docs, &what, &[secret]);
        let model = s(&values, "/sampleApplication/model/modelName");
        let decode = of_kind(&docs, "Deployment")
            .into_iter()
            .find(|d| s(d, "/metadata/name").ends_with("-decode"))
            .unwrap_or_else(|| panic!("{what}: no decode Deployment"));
        let cmd = command_line(decode);
        assert_eq!(
            flag(&cmd, "--served-model-name"),
            Some(model),
            "{what}: {cmd:?}"
        );
        assert_eq!(
            decode["spec"]["replicas"], values["sampleApplication"]["decode"]["replicas"],
            "{what}"
        );
    }
    // Shape errors name the key.
    let good = read(&dir.join("debug-deployment.yaml"));
    let rejected =
        |name: &str, values: &str, why: &str| render_error("llm-d", tmp.path(), name, values, why);
    let err = rejected(
        "no-model.yaml",
        &without_lines(&good, "modelName"),
        "no modelName rendered",
    );
    assert!(
        err.contains("sampleApplication.model.modelName is required"),
        "{err}"
    );
    let tp = good.replace(
        "- \"--max-model-len\"",
        "- \"--tensor-parallel-size\"\n      - \"2\"\n      - \"--max-model-len\"",
    );
    let err = rejected("tp.yaml", &tp, "TP 2 on 1 GPU rendered");
    assert!(
        err.contains("--tensor-parallel-size 2 needs 2 GPUs"),
        "{err}"
    );
    let kv = good.replacen(
        "name: ENABLE_KVCACHE_AWARE_SCORER\n        value: \"false\"",
        "name: ENABLE_KVCACHE_AWARE_SCORER\n        value: \"true\"",
        1,
    );
    let err = rejected("kv.yaml", &kv, "KV scorer without Redis rendered");
    assert!(err.contains("redis.enabled"), "{err}");
}

#[test]
fn device_plugin_manifests_validate() {
    for loc in ["lmcache-gke", "local-minikube"] {
        let f = repo()
            .join("1-infrastructure")
            .join(loc)
            .join("nvidia-device-plugin.yml");
        let what = rel(&f);
        if let Err(e) = kube_validate(&f) {
            panic!("{what}: kubernetes-validate failed:\n{e}");
        }
        let docs = yaml_docs(&read(&f), &what);
        assert_eq!(docs.len(), 1, "{what}");
        let ds = &docs[0];
        assert_eq!(ds["kind"], "DaemonSet", "{what}");
        assert_eq!(ds["metadata"]["namespace"], "kube-system", "{what}");
        let pod = &ds["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["image"], "nvcr.io/nvidia/k8s-device-plugin:v0.14.4",
            "{what}"
        );
        assert!(
            pod["tolerations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == "nvidia.com/gpu"),
            "{what}: no nvidia.com/gpu toleration"
        );
        assert!(
            pod["containers"][0]["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "FAIL_ON_INIT_ERROR" && e["value"] == "false"),
            "{what}: FAIL_ON_INIT_ERROR is not false"
        );
        assert!(
            selects(
                &labels(ds.pointer("/spec/selector/matchLabels")),
                &labels(ds.pointer("/spec/template/metadata/labels"))
            ),
            "{what}: selector does not match the pod labels"
        );
    }
}

/// The module the RayServe launch scripts import their serving code from (not a launch script).
const RAYSERVE_SHARED: &str = "rayserve/_serve_llm.py";

/// The RayServe launch scripts: the folder's Python files but the shared module.
fn rayserve_scripts() -> Vec<PathBuf> {
    let shared = repo().join("2-serving-engines").join(RAYSERVE_SHARED);
    let mut out = files(shared.parent().unwrap(), &["py"]);
    out.retain(|f| *f != shared);
    assert!(out.len() >= 2, "{out:?}");
    out
}

/// A launch file (or what it sources) neither leaves processes behind nor installs packages.
fn assert_no_background_or_install(what: &str, src: &str) {
    for banned in ["nohup", "pkill", "killall", "disown"] {
        assert!(!src.contains(banned), "{what} uses {banned}");
    }
    // Installing at run time would change what is measured from run to run.
    for line in src.lines().map(str::trim_start) {
        assert!(
            !(line.starts_with("pip ") || line.contains("-m pip install")),
            "{what} installs packages at run time: {line}"
        );
    }
}

/// Every launch file of the local baselines, with the model it must name.
fn launch_files() -> Vec<(PathBuf, &'static str)> {
    let e = repo().join("2-serving-engines");
    vec![
        (e.join("sglang/comparison-baseline.sh"), "Qwen/Qwen3-32B"),
        (
            e.join("sglang/debug-llama8B.sh"),
            "meta-llama/Llama-3.1-8B-Instruct",
        ),
        (e.join("rayserve/comparison-baseline.py"), "Qwen/Qwen3-32B"),
        (
            e.join("rayserve/debug-deployment.py"),
            "meta-llama/Llama-3.1-8B-Instruct",
        ),
        (
            e.join("dynamo/dynamo_configurations/comparison-baseline.yaml"),
            "Qwen/Qwen3-14B",
        ),
        (
            e.join("dynamo/dynamo_configurations/debug-baseline.yaml"),
            "meta-llama/Llama-3.1-8B-Instruct",
        ),
        (
            e.join("flat/basic-lmcache/run-llama8B.sh"),
            "meta-llama/Llama-3.1-8B-Instruct",
        ),
    ]
}

#[test]
fn launch_scripts_parse_name_their_model_and_stay_in_the_foreground() {
    let e = repo().join("2-serving-engines");
    let mut shells = files(&e.join("sglang"), &["sh"]);
    shells.extend(files(&e.join("dynamo"), &["sh"]));
    shells.extend(files(&e.join("flat/basic-lmcache"), &["sh"]));
    shells.push(repo().join("scripts/install-k8s-tools.sh"));
    assert!(shells.len() >= 5, "{shells:?}");
    for f in &shells {
        let o = run(
            Command::new("bash").arg("-n").arg(f),
            Duration::from_secs(20),
        );
        assert!(o.status.success(), "bash -n {}:\n{}", rel(f), text(&o));
    }
    let pycache = tempfile::tempdir().unwrap();
    for f in files(&e.join("rayserve"), &["py"]) {
        let o = run(
            Command::new("python3")
                .args(["-m", "py_compile"])
                .arg(&f)
                .env("PYTHONPYCACHEPREFIX", pycache.path()),
            Duration::from_secs(20),
        );
        assert!(o.status.success(), "py_compile {}:\n{}", rel(&f), text(&o));
    }
    // What the launch files of a folder share (sourced or imported) is held to the same rules.
    let shared = [e.join("sglang/_launch-common.sh"), e.join(RAYSERVE_SHARED)];
    for f in &shared {
        assert_no_background_or_install(&rel(f), &read(f));
    }
    for (f, model) in launch_files() {
        let what = rel(&f);
        let src = read(&f);
        assert!(src.contains(model), "{what} does not name {model}");
        assert_no_background_or_install(&what, &src);
        if f.extension().is_some_and(|x| x == "sh") {
            assert!(src.contains("${LMBENCH_PORT:-30080}"), "{what}: port");
            // The server replaces the shell, so stopping the process group stops it.
            assert!(src.contains("\nexec "), "{what} does not exec its server");
        } else if f.extension().is_some_and(|x| x == "py") {
            // The RayServe scripts serve through their shared module; the port and the
            // foreground run are checked there.
            assert!(
                src.contains("from _serve_llm import serve"),
                "{what} does not serve through {RAYSERVE_SHARED}"
            );
            let serving = read(&e.join(RAYSERVE_SHARED));
            assert!(serving.contains("LMBENCH_PORT"), "{what}: port");
            assert!(
                serving.contains("blocking=True"),
                "{what}: not in the foreground"
            );
        }
    }
    // The Flat LMCache baseline really enables LMCache (LMBench's copy lost this line).
    let lmcache = read(&e.join("flat/basic-lmcache/run-llama8B.sh"));
    for needed in [
        "--kv-transfer-config",
        "LMCacheConnectorV1",
        "LMCACHE_LOCAL_CPU=True",
        "LMCACHE_MAX_LOCAL_CPU_SIZE",
        "exec vllm serve",
    ] {
        assert!(
            lmcache.contains(needed),
            "flat/basic-lmcache/run-llama8B.sh lacks {needed}"
        );
    }
    let dynamo = read(&e.join("dynamo/launch.sh"));
    assert!(
        dynamo.contains("${LMBENCH_PORT:-30080}"),
        "dynamo/launch.sh: port"
    );
}

#[test]
fn launch_scripts_refuse_a_spec_naming_another_model() {
    let e = repo().join("2-serving-engines");
    let cases: Vec<(PathBuf, Vec<String>)> = vec![
        (e.join("sglang/debug-llama8B.sh"), vec![]),
        (e.join("sglang/comparison-baseline.sh"), vec![]),
        (
            e.join("dynamo/launch.sh"),
            vec!["debug-baseline.yaml".into()],
        ),
    ];
    for (f, args) in cases {
        let o = run(
            Command::new("bash")
                .arg(&f)
                .args(&args)
                .env("LMBENCH_MODEL", "some/other-model")
                .env("LMBENCH_DRY_RUN", "1"),
            Duration::from_secs(20),
        );
        assert_eq!(o.status.code(), Some(2), "{}:\n{}", rel(&f), text(&o));
        assert!(
            text(&o).contains("some/other-model"),
            "{}: {}",
            rel(&f),
            text(&o)
        );
    }
    for f in rayserve_scripts() {
        let o = run(
            Command::new("python3")
                .arg(&f)
                .arg("H100")
                .env("LMBENCH_MODEL", "some/other-model"),
            Duration::from_secs(20),
        );
        assert_eq!(o.status.code(), Some(2), "{}:\n{}", rel(&f), text(&o));
        assert!(text(&o).contains("some/other-model"), "{}", text(&o));
        let o = run(Command::new("python3").arg(&f), Duration::from_secs(20));
        assert_eq!(
            o.status.code(),
            Some(2),
            "{} without an accelerator",
            rel(&f)
        );
        assert!(text(&o).contains("acceleratorType"), "{}", text(&o));
    }
}

/// `bash dynamo/launch.sh <config>` with the environment under test's control.
fn dynamo_launch(config: &str) -> Command {
    let mut c = Command::new("bash");
    c.arg(repo().join("2-serving-engines/dynamo/launch.sh"))
        .arg(config)
        .env_remove("CUDA_VISIBLE_DEVICES")
        .env_remove("LMBENCH_MODEL")
        .env_remove("LMBENCH_DRY_RUN");
    c
}

#[test]
fn dynamo_launch_starts_one_frontend_and_the_configured_workers() {
    for (config, model, workers, router) in [
        ("comparison-baseline.yaml", "Qwen/Qwen3-14B", 4, "kv"),
        (
            "debug-baseline.yaml",
            "meta-llama/Llama-3.1-8B-Instruct",
            1,
            "round-robin",
        ),
    ] {
        let o = run(
            dynamo_launch(config)
                .env("LMBENCH_DRY_RUN", "1")
                .env("LMBENCH_PORT", "31234")
                .env("LMBENCH_MODEL", model),
            Duration::from_secs(20),
        );
        assert!(o.status.success(), "{config}:\n{}", text(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + workers, "{config}:\n{out}");
        assert!(
            lines[0].starts_with("frontend: python3 -m dynamo.frontend --http-port 31234")
                && lines[0].ends_with(&format!("--router-mode {router}")),
            "{config}: {}",
            lines[0]
        );
        let mut gpus = BTreeSet::new();
        for (i, l) in lines[1..].iter().enumerate() {
            assert!(l.starts_with(&format!("worker{i}: ")), "{config}: {l}");
            assert!(l.contains(&format!("--model {model} ")), "{config}: {l}");
            let dev = l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("CUDA_VISIBLE_DEVICES="))
                .unwrap_or_else(|| panic!("{config}: no GPU for {l}"));
            assert!(
                gpus.insert(dev.to_owned()),
                "{config}: GPU {dev} given twice"
            );
            assert_eq!(
                l.contains("--kv-events-config"),
                router == "kv",
                "{config}: {l}"
            );
        }
    }
}

/// A stand-in `dynamo` Python package: each module records its pid, arguments and GPUs in
/// `dir`; the workers then run until killed, and the frontend too, unless `frontend_exits`,
/// in which case it exits with status 3 once both workers have recorded themselves.
fn fake_dynamo(dir: &Path, frontend_exits: bool) {
    let pkg = dir.join("dynamo");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join("__init__.py"), "").unwrap();
    let d = dir.to_str().unwrap();
    let record = format!(
        "import glob, os, sys, time\n\
         open(os.path.join({d:?}, '%s-' + str(os.getpid())), 'w').write(\
         ' '.join(sys.argv[1:]) + '\\n' + os.environ.get('CUDA_VISIBLE_DEVICES', ''))\n"
    );
    let frontend = if frontend_exits {
        format!(
            "end = time.time() + 60\n\
             while len(glob.glob(os.path.join({d:?}, 'worker-*'))) < 2 and time.time() < end:\n    \
             time.sleep(0.05)\n\
             time.sleep(2)\n\
             sys.exit(3)\n"
        )
    } else {
        "time.sleep(120)\n".to_owned()
    };
    std::fs::write(
        pkg.join("frontend.py"),
        record.replace("%s", "frontend") + &frontend,
    )
    .unwrap();
    std::fs::write(
        pkg.join("vllm.py"),
        record.replace("%s", "worker") + "time.sleep(120)\n",
    )
    .unwrap();
}

/// Pids recorded by the fake Dynamo modules whose name starts with `prefix`.
fn recorded(dir: &Path, prefix: &str) -> Vec<i32> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(prefix))
                .and_then(|p| p.parse().ok())
        })
        .collect()
}

/// Kills, when dropped, the launch.sh processes and every process the fake Dynamo recorded, so
/// that a failing assertion leaves nothing running.
struct Reaper {
    dirs: Vec<PathBuf>,
    children: Vec<std::process::Child>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.children {
            c.kill().ok();
            c.wait().ok();
        }
        for d in &self.dirs {
            if !d.is_dir() {
                continue;
            }
            for pid in recorded(d, "worker-")
                .into_iter()
                .chain(recorded(d, "frontend-"))
            {
                if alive(pid) {
                    nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    )
                    .ok();
                }
            }
        }
    }
}

/// True while the process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// launch.sh against a fake Dynamo, with etcd and NATS stood in for by listening sockets:
/// it starts the frontend and both workers, stays up while they run, and when one exits it
/// exits with that status and stops the others; on SIGTERM it stops them all.
#[test]
fn dynamo_launch_supervises_its_processes() {
    let etcd = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nats = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("two-workers.yaml");
    std::fs::write(
        &config,
        "model: test/model\nrouterMode: kv\nworkers: 2\nmaxModelLen: 1024\n",
    )
    .unwrap();
    let start = |dir: &Path| {
        dynamo_launch(config.to_str().unwrap())
            .current_dir(dir)
            .env("PYTHONPATH", dir)
            .env("LMBENCH_PORT", "31235")
            .env("CUDA_VISIBLE_DEVICES", "5,7")
            .env(
                "ETCD_ENDPOINTS",
                format!("http://{}", etcd.local_addr().unwrap()),
            )
            .env(
                "NATS_SERVER",
                format!("nats://{}", nats.local_addr().unwrap()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };

    // 1. The frontend exits: launch.sh returns its status and stops the workers.
    let run1 = tmp.path().join("exit");
    let run2 = tmp.path().join("term");
    let mut reaper = Reaper {
        dirs: vec![run1.clone(), run2.clone()],
        children: Vec::new(),
    };
    fake_dynamo(&run1, true);
    reaper.children.push(start(&run1));
    let child = &mut reaper.children[0];
    wait_until("the fake workers", Duration::from_secs(30), || {
        recorded(&run1, "worker-").len() == 2
    });
    assert!(
        child.try_wait().unwrap().is_none(),
        "launch.sh returned while its processes run"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "launch.sh did not exit after the frontend did"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status.code(),
        Some(3),
        "launch.sh should exit with the frontend's status"
    );
    let workers = recorded(&run1, "worker-");
    wait_until("the workers to be stopped", Duration::from_secs(10), || {
        workers.iter().all(|p| !alive(*p))
    });
    // Each worker got the model and its own GPU from CUDA_VISIBLE_DEVICES.
    let mut devs = BTreeSet::new();
    for p in &workers {
        let rec = read(&run1.join(format!("worker-{p}")));
        let (args, dev) = rec.split_once('\n').unwrap();
        assert!(
            args.contains("--model test/model --max-model-len 1024"),
            "{args}"
        );
        devs.insert(dev.to_owned());
    }
    assert_eq!(devs, BTreeSet::from(["5".to_owned(), "7".to_owned()]));
    let frontend = recorded(&run1, "frontend-");
    assert_eq!(frontend.len(), 1);
    let rec = read(&run1.join(format!("frontend-{}", frontend[0])));
    assert_eq!(
        rec.lines().next(),
        Some("--http-port 31235 --router-mode kv")
    );

    // 2. SIGTERM to launch.sh alone (as when run by hand): every child is stopped.
    fake_dynamo(&run2, false);
    reaper.children.push(start(&run2));
    let child = &mut reaper.children[1];
    wait_until("the fake processes", Duration::from_secs(30), || {
        recorded(&run2, "worker-").len() == 2 && recorded(&run2, "frontend-").len() == 1
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "launch.sh ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut all = recorded(&run2, "worker-");
    all.extend(recorded(&run2, "frontend-"));
    wait_until("every child to stop", Duration::from_secs(10), || {
        all.iter().all(|p| !alive(*p))
    });
}
