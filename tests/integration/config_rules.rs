//! Configuration: the every-key fixtures under `tests/fixtures/every-key/` validate and plan the
//! way LMBench would run them, the templates validate as shipped, and every validation rule has
//! a failing configuration that makes `lmbench` exit 2 with a message naming the file, the line,
//! the key and what was expected, having started nothing.
//!
//! Every case runs the `lmbench` binary on files in a fresh temporary folder (or on the
//! fixtures, read-only); none starts a server.

use assert_cmd::Command;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tempfile::TempDir;

/// The HF_TOKEN value the child process gets where a case needs one.
const TOKEN: &str = "hf_lmbenchConfigRulesEnvToken";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn every_key() -> PathBuf {
    repo().join("tests/fixtures/every-key")
}

/// The variable the every-key fixture's Endpoint reads its API key from, and its value.
const FIXTURE_KEY_ENV: (&str, &str) = ("LMBENCH_FIXTURE_API_KEY", "sk-fixture-key-value");

/// The `lmbench` binary with a predictable environment: no backtraces, no log filter,
/// HF_TOKEN set to `hf_token` or removed, and the fixture's API key variable set.
fn lmbench(hf_token: Option<&str>) -> Command {
    let mut c = Command::cargo_bin("lmbench").expect("the lmbench binary is built");
    c.env(FIXTURE_KEY_ENV.0, FIXTURE_KEY_ENV.1)
        .env_remove("RUST_BACKTRACE")
        .env("RUST_LIB_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .env_remove("LMBENCH_LOG")
        .timeout(Duration::from_secs(60));
    match hf_token {
        Some(t) => c.env("HF_TOKEN", t),
        None => c.env_remove("HF_TOKEN"),
    };
    c
}

/// What a finished `lmbench` reported.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn of(cmd: &mut Command) -> Out {
        let o = cmd.output().expect("lmbench runs");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The problems of a configuration error: one block per `  - ` item, continuation lines
    /// (source snippets) included.
    fn issues(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for line in self.stderr.lines() {
            if let Some(rest) = line.strip_prefix("  - ") {
                out.push(rest.to_string());
            } else if let Some(last) = out.last_mut() {
                if line.starts_with("    ") {
                    last.push('\n');
                    last.push_str(line);
                }
            }
        }
        out
    }
}

/// A temporary tree laid out like LMBench's repository: run-bench.yaml, 0-bench-specs/,
/// 2-serving-engines/, 3-workloads/, data files.
struct Tree {
    dir: TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A tree with run-bench.yaml listing `specs` at `location` (which may carry more
    /// 1-infrastructure lines, indented by two spaces).
    fn with(location: &str, specs: &[&str]) -> Tree {
        let t = Tree::new();
        t.write("run-bench.yaml", &run_bench(location, specs));
        // ShareGPT's default dataset, so a ShareGPT item without DATASET_PATH is complete.
        t.write(
            "3-workloads/sharegpt/ShareGPT_V3_unfiltered_cleaned_split.json",
            "[]\n",
        );
        t
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) -> &Tree {
        let p = self.root().join(rel);
        fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        fs::write(&p, text).expect("write");
        self
    }

    fn spec(&self, name: &str, text: &str) -> &Tree {
        self.write(&format!("0-bench-specs/{name}"), text)
    }

    /// Every file and folder under the tree, relative, sorted.
    fn listing(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        list_rec(self.root(), self.root(), &mut out);
        out.sort();
        out
    }

    fn cmd(&self, args: &[&str], hf_token: Option<&str>) -> Out {
        Out::of(lmbench(hf_token).current_dir(self.root()).args(args))
    }

    fn validate(&self, hf_token: Option<&str>) -> Out {
        self.cmd(&["validate", "-c", "run-bench.yaml"], hf_token)
    }

    fn plan_json(&self, hf_token: Option<&str>) -> Value {
        let out = self.cmd(&["plan", "--json", "-c", "run-bench.yaml"], hf_token);
        assert_eq!(out.code, 0, "plan failed\n{}", out.show());
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("plan JSON: {e}\n{}", out.show()))
    }

    /// Validate and expect exactly `wants`, with nothing started or written.
    fn rejects(&self, hf_token: Option<&str>, wants: &[Want]) -> Out {
        let before = self.listing();
        let out = self.validate(hf_token);
        assert_rejected(&out, wants);
        assert_eq!(
            before,
            self.listing(),
            "validate wrote files\n{}",
            out.show()
        );
        out
    }
}

fn list_rec(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        out.push(p.strip_prefix(root).expect("under root").to_path_buf());
        if p.is_dir() {
            list_rec(root, &p, out);
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read_dir").flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            fs::copy(&p, &dest).expect("copy");
        }
    }
}

fn run_bench(location: &str, specs: &[&str]) -> String {
    let mut s = String::from("0-bench-specs:\n");
    for sp in specs {
        s.push_str(&format!("  - {sp}\n"));
    }
    s.push_str(&format!("1-infrastructure:\n  Location: {location}\n"));
    s
}

/// A spec named `rules` with these Serving items and Workload entries (both already indented
/// by two spaces).
fn spec(serving: &str, workload: &str) -> String {
    format!("Name: rules\nServing:\n{serving}Workload:\n{workload}")
}

const SIM: &str = "  - Simulated:\n      modelURL: sim-model\n";
const RANDOM: &str = "  Random:\n    - NUM_USERS: 1\n      NUM_ROUNDS: 1\n      PROMPT_LEN: 8\n      ANSWER_LEN: 4\n      QPS: [1]\n";

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in\n{text}"))
        + 1
}

/// One expected problem: the file (relative to the tree root), its line where the rule has
/// one, the key, and text saying what was expected.
struct Want<'a> {
    file: &'a str,
    line: Option<usize>,
    key: &'a str,
    expected: &'a str,
}

fn want<'a>(file: &'a str, line: Option<usize>, key: &'a str, expected: &'a str) -> Want<'a> {
    Want {
        file,
        line,
        key,
        expected,
    }
}

/// Exit 2, nothing on stdout, no panic, and exactly the `wants` problems.
fn assert_rejected(out: &Out, wants: &[Want]) {
    assert_eq!(out.code, 2, "expected exit 2\n{}", out.show());
    assert!(
        out.stdout.trim().is_empty(),
        "stdout must stay empty\n{}",
        out.show()
    );
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("stack backtrace"),
        "{}",
        out.show()
    );
    let issues = out.issues();
    let n = wants.len();
    let header = format!(
        "invalid configuration: {n} problem{}",
        if n == 1 { "" } else { "s" }
    );
    assert!(
        out.stderr.contains(&header),
        "expected `{header}`\n{}",
        out.show()
    );
    assert_eq!(issues.len(), n, "problem count\n{}", out.show());
    for w in wants {
        let loc = match w.line {
            Some(l) => format!("{}:{l}:", w.file),
            None => format!("{}: ", w.file),
        };
        let hit = issues.iter().any(|i| {
            let first = i.lines().next().unwrap_or("");
            first.contains(&loc) && i.contains(w.key) && i.contains(w.expected)
        });
        assert!(
            hit,
            "no problem at `{loc}` naming `{}` with `{}`\n{}",
            w.key,
            w.expected,
            out.show()
        );
    }
}

fn runs(plan: &Value) -> &Vec<Value> {
    plan["runs"].as_array().expect("runs")
}

fn strs(plan: &Value, list: &str, field: &str) -> Vec<String> {
    plan[list]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r[field].as_str().expect("string").to_string())
        .collect()
}

fn fixture_plan(run_bench: &str) -> Value {
    let out = Out::of(
        lmbench(Some(TOKEN))
            .current_dir(every_key())
            .args(["plan", "--json", "-c", run_bench]),
    );
    assert_eq!(out.code, 0, "{}", out.show());
    serde_json::from_str(&out.stdout).expect("plan JSON")
}

// ------------------------------------------------------------------------------------------
// The every-key fixtures
// ------------------------------------------------------------------------------------------

#[test]
fn every_key_fixtures_validate() {
    for (rb, summary) in [
        ("run-bench.yaml", "valid (2 suite(s), 24 run(s))"),
        ("run-bench-minikube.yaml", "valid (2 suite(s), 3 run(s))"),
        ("run-bench-gke.yaml", "valid (1 suite(s), 2 run(s))"),
        ("run-bench-nobench.yaml", "valid (4 suite(s), 27 run(s))"),
        ("run-bench-added.yaml", "valid (1 suite(s), 6 run(s))"),
    ] {
        let out = Out::of(
            lmbench(Some(TOKEN))
                .current_dir(every_key())
                .args(["validate", "-c", rb]),
        );
        assert_eq!(out.code, 0, "{rb}\n{}", out.show());
        assert!(out.stdout.contains(summary), "{rb}\n{}", out.show());
        assert!(!out.stderr.contains(TOKEN), "{}", out.show());
    }
}

#[test]
fn every_key_local_flat_plan_matches_lmbench() {
    let plan = fixture_plan("run-bench.yaml");
    assert_eq!(plan["location"], "Local-Flat");
    // The folder entry expands to both specs, sorted; TEMPLATE-skipped.yaml is left out.
    assert_eq!(
        strs(&plan, "baselines", "baseline_key"),
        [
            "flat_basic_vllm_run_llama8B",
            "sglang_comparison_baseline",
            "rayserve_comparison_baseline_h100",
            "dynamo_comparison-baseline",
            "sim_every_knob",
            "sim_org_sim_model_2",
            "sim_workloads",
        ]
    );
    assert_eq!(
        strs(&plan, "baselines", "baseline_type"),
        [
            "Flat",
            "SGLang",
            "RayServe",
            "Dynamo",
            "Simulated",
            "Simulated",
            "Simulated"
        ]
    );
    let runs = runs(&plan);
    assert_eq!(runs.len(), 24);
    let workloads: Vec<&Value> = runs
        .iter()
        .filter(|r| r["suite"] == "every-key-local-flat-workloads")
        .collect();
    let names: Vec<&str> = workloads
        .iter()
        .map(|r| r["workload_name"].as_str().unwrap())
        .collect();
    // The spec lists the types in reverse; they run in LMBench's fixed order.
    assert_eq!(
        names,
        [
            "sharegpt",
            "sharegpt",
            "synthetic",
            "synthetic",
            "trace_replayer",
            "trace_replayer",
            "trace_replayer",
            "agentic",
            "agentic",
            "random",
            "vllm_random",
            "vllm_random",
            "vllm_sonnet",
            "vllm_sharegpt",
            "vllm_custom",
            "vllm_hf_data_mt-bench.jsonl",
            "strict_synthetic",
            "strict_synthetic",
        ]
    );
    // Timed trace replay: one run, no QPS, `unknown` in the file name.
    let timed = workloads[4];
    assert_eq!(timed["workload"], "TraceReplayer");
    assert!(timed["qps"].is_null(), "{timed}");
    assert_eq!(timed["sweep"]["key"], "MODE");
    assert_eq!(timed["qps_label"], "unknown");
    // QPS-mode trace replay: one run per QPS.
    assert_eq!(workloads[5]["qps"], 1);
    assert_eq!(workloads[6]["qps"], 2);
    // Agentic sweeps NEW_USER_INTERVAL and has no target QPS.
    assert!(workloads[7]["qps"].is_null());
    assert_eq!(workloads[7]["sweep"]["key"], "NEW_USER_INTERVAL");
    // StrictSynthetic: QPS = users / T, labelled with two decimals.
    assert_eq!(workloads[16]["qps"].as_f64(), Some(0.5));
    assert_eq!(workloads[16]["qps_label"], "0.50");
    assert_eq!(workloads[17]["qps"].as_f64(), Some(2.0));
    // Labels keep the written form: 0.5 and 1 for synthetic, 1.0 for the default vLLM rate.
    assert_eq!(workloads[2]["qps_label"], "0.5");
    assert_eq!(workloads[3]["qps_label"], "1");
    assert_eq!(workloads[13]["qps_label"], "1.0");
}

#[test]
fn every_key_added_types_plan() {
    let plan = fixture_plan("run-bench-added.yaml");
    assert_eq!(
        strs(&plan, "baselines", "baseline_key"),
        ["sim_added", "endpoint_remote"]
    );
    assert_eq!(
        strs(&plan, "baselines", "baseline_type"),
        ["Simulated", "Endpoint"]
    );
    let runs = runs(&plan);
    assert_eq!(runs.len(), 6);
    // An endpoint is not deployed: the estimate is the runs' alone, two repeats of each point
    // of the first item; the search's is its probe budget at its lowest load: 6 × (40
    // requests at 1 req/s + 10 s).
    assert_eq!(
        plan["estimated_total_s"],
        2.0 + 2.0 * (2.0 * (30.0 + 20.0) + 6.0 * 50.0)
    );
    for (r, label) in runs.iter().zip(["2", "4.0", "1.0", "2", "4.0", "1.0"]) {
        assert_eq!(r["workload"], "PrefixRepetition");
        assert_eq!(r["workload_name"], "prefix_repetition");
        assert_eq!(r["sweep"]["key"], "QPS");
        assert_eq!(r["qps_label"], label);
    }
    // ⌊40 / 4⌋ · 4 = 40 requests at 2 and 4 req/s, plus 10 s each for the drain; twice.
    assert_eq!(runs[0]["estimated_s"], 60.0);
    assert_eq!(runs[1]["estimated_s"], 40.0);
    assert_eq!(runs[0]["repeats"], 2);
    assert_eq!(runs[2].get("repeats"), None);
    assert_eq!(runs[0].get("search"), None);
    assert_eq!(
        runs[2]["search"],
        serde_json::json!({
            "over": "QPS", "low": 1.0, "high": 8.0, "precision": 0.1, "max_probes": 6,
            "sla": {"ttft_p99_ms": 500.0, "tpot_p90_ms": 50.0, "max_error_rate": 0.01},
        })
    );
    // The same stream at a load whichever baseline: the search's seed is its first probe's.
    assert_eq!(runs[2]["seed"], runs[5]["seed"]);
}

#[test]
fn sla_search_keys_are_checked() {
    let t = Tree::new();
    t.write("run-bench.yaml", &run_bench("Local-Flat", &["s.yaml"]));
    let random = |extra: &str| RANDOM.replace("      QPS: [1]\n", extra);
    // (workload items, [(line needle, key, expected)])
    type Case = (String, Vec<(&'static str, &'static str, &'static str)>);
    let cases: Vec<Case> = vec![
        (
            random("      QPS: [1]\n      SLA: {ttft_p97_ms: 5}\n      SEARCH: {low: 1, high: 0.5, precision: 2, max_probes: 1, step: 1}\n"),
            vec![
                ("QPS: [1]", "Workload.Random[0].QPS", "given beside SEARCH"),
                ("SLA:", "Workload.Random[0].SLA.ttft_p97_ms", "expected <metric>_<stat>_ms"),
                ("SEARCH:", "Workload.Random[0].SEARCH.precision", "from 0.001 to 1"),
                ("SEARCH:", "Workload.Random[0].SEARCH.max_probes", "at least 2"),
                ("SEARCH:", "Workload.Random[0].SEARCH.step", "expected low, high, precision, over or max_probes"),
            ],
        ),
        (
            random("      SEARCH: {low: 4, high: 2}\n"),
            vec![("NUM_USERS", "Workload.Random[0]", "SEARCH needs SLA")],
        ),
        (
            random("      SLA: {ttft_p99_ms: 500}\n      SEARCH: {low: 4, high: 2}\n"),
            vec![("SEARCH:", "Workload.Random[0].SEARCH.high", "expected more than low (4)")],
        ),
        (
            random("      SLA: {ttft_p99_ms: 500}\n      SEARCH: {low: 1, high: 8, over: MAX_CONCURRENCY}\n"),
            vec![("SEARCH:", "Workload.Random[0].SEARCH", "searches QPS only, not MAX_CONCURRENCY")],
        ),
        (
            "  VLLMBenchmark:\n    - DATASET_NAME: random\n      MAX_CONCURRENCY: 4\n      SLA: {e2el_p90_ms: 900}\n      SEARCH: {low: 1, high: 8.5, over: MAX_CONCURRENCY}\n".into(),
            vec![
                ("SEARCH:", "Workload.VLLMBenchmark[0].SEARCH", "MAX_CONCURRENCY is a whole number"),
            ],
        ),
        (
            "  VLLMBenchmark:\n    - DATASET_NAME: random\n      MAX_CONCURRENCY: 4\n      SLA: {e2el_p90_ms: 900}\n      SEARCH: {low: 1, high: 8, over: MAX_CONCURRENCY}\n".into(),
            vec![(
                "SEARCH:",
                "Workload.VLLMBenchmark[0].SEARCH",
                "MAX_CONCURRENCY is given: a MAX_CONCURRENCY search sets it itself",
            )],
        ),
    ];
    for (workload, wants) in cases {
        let text = spec(SIM, &workload);
        t.write("0-bench-specs/s.yaml", &text);
        let out = t.cmd(&["validate", "-c", "run-bench.yaml"], None);
        let wants: Vec<Want> = wants
            .iter()
            .map(|(at, key, expected)| {
                want(
                    "0-bench-specs/s.yaml",
                    Some(line_of(&text, at)),
                    key,
                    expected,
                )
            })
            .collect();
        assert_rejected(&out, &wants);
    }
}

#[test]
fn every_key_k8s_plans_match_lmbench() {
    let mk = fixture_plan("run-bench-minikube.yaml");
    assert_eq!(mk["location"], "LocalMinikube");
    assert_eq!(
        strs(&mk, "baselines", "baseline_key"),
        [
            "helm_basic_llama-3.1-8b-basic",
            "routing_lmcache_roundrobin",
            "llmd_debug-deployment"
        ]
    );
    assert_eq!(
        strs(&mk, "runs", "workload_name"),
        ["synthetic", "synthetic", "random"]
    );
    let gke = fixture_plan("run-bench-gke.yaml");
    assert_eq!(gke["location"], "LMCacheGKE");
    assert_eq!(
        strs(&gke, "baselines", "baseline_key"),
        [
            "helm_basic_llama-3.1-8b-basic",
            "routing_lmcache_roundrobin"
        ]
    );
    assert_eq!(runs(&gke).len(), 2);
    let nb = fixture_plan("run-bench-nobench.yaml");
    assert_eq!(nb["location"], "NoBench");
    assert_eq!(runs(&nb).len(), 27);
    assert_eq!(nb["estimated_total_s"].as_f64(), Some(0.0));
}

#[test]
fn legacy_infrastructure_in_a_spec_is_ignored_with_a_warning() {
    let out = Out::of(lmbench(Some(TOKEN)).current_dir(every_key()).args([
        "validate",
        "-c",
        "run-bench-minikube.yaml",
    ]));
    assert_eq!(out.code, 0, "{}", out.show());
    assert!(
        out.stderr.contains("llm-d.yaml")
            && out.stderr.contains("`Infrastructure` in a spec is ignored"),
        "{}",
        out.show()
    );
}

/// Keys the configuration accepts (run-bench.yaml's, a spec's, and every registered workload
/// and baseline type's, as lmbench itself lists them) and the simulated engine's settings
/// (src/sim/mod.rs `SimConfig`, camelCase, parsed from the source), so a key added to a type
/// must be added to the fixtures and the templates.
fn model_keys() -> (Vec<String>, Vec<String>) {
    let mut keys: Vec<String> = lmbench::suite::every_key()
        .into_iter()
        .map(str::to_string)
        .collect();
    keys.sort();
    keys.dedup();
    let sim = fs::read_to_string(repo().join("src/sim/mod.rs")).expect("sim/mod.rs");
    let body = sim
        .split("pub struct SimConfig {")
        .nth(1)
        .and_then(|s| s.split("\n}").next())
        .expect("SimConfig in src/sim/mod.rs");
    let mut sim_keys = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.trim().strip_prefix("pub ") {
            if let Some((name, _)) = rest.split_once(':') {
                let mut camel = String::new();
                let mut up = false;
                for c in name.chars() {
                    if c == '_' {
                        up = true;
                    } else if up {
                        camel.push(c.to_ascii_uppercase());
                        up = false;
                    } else {
                        camel.push(c);
                    }
                }
                sim_keys.push(camel);
            }
        }
    }
    // Sanity: the parse found the model (over eighty keys) and the engine's settings.
    assert!(
        keys.len() >= 75,
        "parsed only {} model keys: {keys:?}",
        keys.len()
    );
    assert!(keys.contains(&"KV_REUSE_RATIO".to_string()) && keys.contains(&"modelURL".to_string()));
    assert!(sim_keys.len() >= 20, "parsed only {sim_keys:?}");
    (keys, sim_keys)
}

fn yaml_texts(dir: &Path, out: &mut String) {
    for e in fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_texts(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push_str(&fs::read_to_string(&p).expect("read"));
            out.push('\n');
        }
    }
}

fn missing_keys(text: &str, keys: &[String]) -> Vec<String> {
    keys.iter()
        // `model` is filled from modelURL; a `model` setting would be overridden.
        .filter(|k| k.as_str() != "model")
        .filter(|k| !text.contains(&format!("{k}:")))
        .cloned()
        .collect()
}

#[test]
fn fixtures_and_templates_use_every_key() {
    let (keys, sim_keys) = model_keys();
    let mut fixtures = String::new();
    for e in fs::read_dir(every_key()).expect("fixture").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("run-bench") {
            fixtures.push_str(&fs::read_to_string(e.path()).expect("read"));
        }
    }
    let specs = every_key().join("0-bench-specs");
    let mut spec_text = String::new();
    yaml_texts(&specs.join("local-flat"), &mut spec_text);
    yaml_texts(&specs.join("k8s"), &mut spec_text);
    yaml_texts(&specs.join("added"), &mut spec_text);
    // TEMPLATE-skipped.yaml is not read by lmbench, so it must not count.
    let skipped = fs::read_to_string(specs.join("local-flat/TEMPLATE-skipped.yaml")).expect("read");
    let spec_text = spec_text.replace(&skipped, "");
    fixtures.push_str(&spec_text);
    assert_eq!(
        missing_keys(&fixtures, &keys),
        Vec::<String>::new(),
        "keys the fixtures never use"
    );
    assert_eq!(
        missing_keys(&fixtures, &sim_keys),
        Vec::<String>::new(),
        "Simulated settings the fixtures never use"
    );
    let mut templates =
        fs::read_to_string(repo().join("TEMPLATE-run-bench.yaml")).expect("template");
    templates.push_str(
        &fs::read_to_string(repo().join("0-bench-specs/TEMPLATE-spec.yaml")).expect("template"),
    );
    assert_eq!(
        missing_keys(&templates, &keys),
        Vec::<String>::new(),
        "keys the templates never document"
    );
    assert_eq!(
        missing_keys(&templates, &sim_keys),
        Vec::<String>::new(),
        "Simulated settings the templates never document"
    );
}

// ------------------------------------------------------------------------------------------
// Plan semantics
// ------------------------------------------------------------------------------------------

#[test]
fn workloads_run_in_lmbench_order_whatever_the_yaml_order() {
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.write("3-workloads/trace-replayer/traces/gmi_trace.jsonl", "{}\n");
    t.write("data/sharegpt.json", "[]\n");
    t.spec(
        "a.yaml",
        &spec(
            SIM,
            "  VLLMBenchmark:\n    - DATASET_NAME: random\n\
             \x20 Random:\n    - {NUM_USERS: 1, NUM_ROUNDS: 1, PROMPT_LEN: 8, ANSWER_LEN: 4, QPS: [1]}\n\
             \x20 TraceReplayer:\n    - PRESERVE_TIMING: true\n\
             \x20 StrictSynthetic:\n    - {NUM_CONCURRENT_USERS: 1, NUM_ROUNDS_PER_USER: 1, SHARED_SYSTEM_PROMPT_LEN: 0, FIRST_PROMPT_LEN: 8, FOLLOW_UP_PROMPTS_LEN: 8, ANSWER_LEN: 4}\n\
             \x20 ShareGPT:\n    - {QPS: [1], DATASET_PATH: data/sharegpt.json}\n\
             \x20 Agentic:\n    - {NUM_AGENTS: 1, NUM_ROUNDS: 1, SYSTEM_PROMPT: 0, CHAT_HISTORY: 8, ANSWER_LEN: 4}\n\
             \x20 LMCacheSynthetic:\n    - {NUM_USERS: 1, NUM_ROUNDS: 1, SYSTEM_PROMPT: 0, CHAT_HISTORY: 8, ANSWER_LEN: 4, QPS: [1]}\n",
        ),
    );
    let plan = t.plan_json(None);
    assert_eq!(
        strs(&plan, "runs", "workload"),
        [
            "ShareGPT",
            "LMCacheSynthetic",
            "TraceReplayer",
            "Agentic",
            "Random",
            "VLLMBenchmark",
            "StrictSynthetic"
        ]
    );
    assert_eq!(
        strs(&plan, "runs", "workload_name"),
        [
            "sharegpt",
            "synthetic",
            "trace_replayer",
            "agentic",
            "random",
            "vllm_random",
            "strict_synthetic"
        ]
    );
}

#[test]
fn workload_key_takes_a_list_of_items() {
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec(
        "a.yaml",
        &spec(
            SIM,
            "  Random:\n    - {NUM_USERS: 1, NUM_ROUNDS: 1, PROMPT_LEN: 8, ANSWER_LEN: 4, QPS: [1, 2]}\n    - {NUM_USERS: 2, NUM_ROUNDS: 1, PROMPT_LEN: 8, ANSWER_LEN: 4, QPS: 3}\n",
        ),
    );
    let plan = t.plan_json(None);
    let qps: Vec<f64> = runs(&plan)
        .iter()
        .map(|r| r["qps"].as_f64().unwrap())
        .collect();
    assert_eq!(qps, [1.0, 2.0, 3.0]);
}

#[test]
fn workload_key_takes_a_single_item() {
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec(
        "a.yaml",
        &spec(
            SIM,
            "  Random:\n    NUM_USERS: 1\n    NUM_ROUNDS: 1\n    PROMPT_LEN: 8\n    ANSWER_LEN: 4\n    QPS: [1, 2]\n\
             \x20 LMCacheSynthetic:\n    - {NUM_USERS: 1, NUM_ROUNDS: 1, SYSTEM_PROMPT: 0, CHAT_HISTORY: 8, ANSWER_LEN: 4, QPS: [1]}\n",
        ),
    );
    let out = t.validate(None);
    assert_eq!(out.code, 0, "{}", out.show());
    let plan = t.plan_json(None);
    assert_eq!(
        strs(&plan, "runs", "workload_name"),
        ["synthetic", "random", "random"]
    );
    // A problem in a single item still names its line.
    let text = spec(
        SIM,
        "  Random:\n    NUM_USERS: 1\n    PROMPT_LEN: 8\n    ANSWER_LEN: 4\n    QPS: [1]\n",
    );
    t.spec("a.yaml", &text);
    t.rejects(
        None,
        &[want(
            A,
            Some(line_of(&text, "NUM_USERS")),
            "Workload.Random[0].NUM_ROUNDS",
            "missing required key",
        )],
    );
}

#[test]
fn duplicate_baseline_keys_get_a_suffix_and_a_warning() {
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.write(
        "2-serving-engines/flat/basic-vllm/run-llama8B.sh",
        "exit 1\n",
    );
    let flat = "  - Flat:\n      configSelection: basic-vllm/run-llama8B.sh\n      modelURL: m\n";
    let sim = "  - Simulated:\n      name: same\n      modelURL: sim-model\n";
    t.spec(
        "a.yaml",
        &spec(&format!("{flat}{sim}{flat}{sim}{sim}"), RANDOM),
    );
    let plan = t.plan_json(None);
    assert_eq!(
        strs(&plan, "baselines", "baseline_key"),
        [
            "flat_basic_vllm_run_llama8B",
            "sim_same",
            "flat_basic_vllm_run_llama8B_2",
            "sim_same_2",
            "sim_same_3"
        ]
    );
    let warnings = strs_of(&plan["warnings"]);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings[0].contains("flat_basic_vllm_run_llama8B_2"),
        "{warnings:?}"
    );
    // The table shows the warnings too.
    let out = t.cmd(&["plan", "-c", "run-bench.yaml"], None);
    assert_eq!(out.code, 0, "{}", out.show());
    assert!(
        out.stdout.contains("warning:") && out.stdout.contains("sim_same_3"),
        "{}",
        out.show()
    );
}

fn strs_of(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn plan_table_prints_run_count_and_estimate() {
    let out = Out::of(lmbench(Some(TOKEN)).current_dir(every_key()).args([
        "plan",
        "-c",
        "run-bench.yaml",
    ]));
    assert_eq!(out.code, 0, "{}", out.show());
    let head = out.stdout.lines().next().unwrap_or("");
    assert!(head.contains("location Local-Flat"), "{}", out.show());
    assert!(
        head.contains("7 baseline(s), 24 run(s), estimated "),
        "{}",
        out.show()
    );
    let est = head.rsplit("estimated ").next().unwrap_or("");
    assert!(
        est.ends_with('s') || est.ends_with('m'),
        "estimate `{est}`\n{}",
        out.show()
    );
    assert_ne!(est, "0s", "{}", out.show());
    // One table row per run after the header lines.
    assert!(
        out.stdout.lines().any(|l| l.starts_with("24 ")),
        "{}",
        out.show()
    );
}

#[test]
fn run_with_nobench_deploys_nothing() {
    let tmp = tempfile::tempdir().expect("temp");
    copy_tree(&every_key(), tmp.path());
    let t = Tree { dir: tmp };
    let listing = t.listing();
    let out = t.cmd(&["run", "-c", "run-bench-nobench.yaml"], Some(TOKEN));
    assert_eq!(out.code, 0, "{}", out.show());
    assert!(out.stderr.contains("NoBench"), "{}", out.show());
    assert_eq!(
        listing,
        t.listing(),
        "run with NoBench wrote files\n{}",
        out.show()
    );
    assert!(!t.root().join("4-latest-results").exists());
    assert!(!out.stderr.contains(TOKEN) && !out.stdout.contains(TOKEN));
}

#[test]
fn run_with_an_invalid_config_exits_2_and_deploys_nothing() {
    let tmp = tempfile::tempdir().expect("temp");
    copy_tree(&every_key(), tmp.path());
    let t = Tree { dir: tmp };
    // Valid Flat and Simulated baselines, and one bad workload key in the same spec.
    let text =
        fs::read_to_string(t.root().join("0-bench-specs/local-flat/baselines.yaml")).expect("read");
    t.spec(
        "local-flat/baselines.yaml",
        &text.replace("QPS: [1]", "QPS: []"),
    );
    let before = t.listing();
    let out = t.cmd(&["run", "-c", "run-bench.yaml"], Some(TOKEN));
    assert_rejected(
        &out,
        &[want(
            "0-bench-specs/local-flat/baselines.yaml",
            Some(line_of(&text, "QPS: [1]")),
            "Workload.Random[0].QPS",
            "expected a non-empty list",
        )],
    );
    assert_eq!(
        before,
        t.listing(),
        "a rejected run wrote files\n{}",
        out.show()
    );
}

// ------------------------------------------------------------------------------------------
// The repository's own configurations
// ------------------------------------------------------------------------------------------

#[test]
fn repo_run_bench_and_template_validate() {
    for rb in ["run-bench.yaml", "TEMPLATE-run-bench.yaml"] {
        let path = repo().join(rb);
        let out = Out::of(
            lmbench(None)
                .current_dir(repo())
                .arg("validate")
                .arg("-c")
                .arg(&path),
        );
        assert_eq!(out.code, 0, "{rb}\n{}", out.show());
        assert!(out.stdout.contains(": valid ("), "{rb}\n{}", out.show());
    }
}

#[test]
fn template_spec_and_examples_validate_on_local_flat() {
    // A root whose 0-bench-specs/, 2-serving-engines/ and 3-workloads/ are the repository's own.
    let t = Tree::new();
    for dir in ["0-bench-specs", "2-serving-engines", "3-workloads"] {
        std::os::unix::fs::symlink(repo().join(dir), t.root().join(dir)).expect("symlink");
    }
    t.write(
        "run-bench.yaml",
        &run_bench("Local-Flat", &["TEMPLATE-spec.yaml", "examples/"]),
    );
    let out = t.validate(None);
    assert_eq!(out.code, 0, "{}", out.show());
    let plan = t.plan_json(None);
    let suites = strs(&plan, "runs", "suite");
    assert!(suites.iter().any(|s| s == "template-suite"), "{suites:?}");
    assert!(
        suites.iter().filter(|s| s.starts_with("example-")).count() >= 3,
        "{suites:?}"
    );
}

// ------------------------------------------------------------------------------------------
// One failing configuration per rule
// ------------------------------------------------------------------------------------------

const A: &str = "0-bench-specs/a.yaml";
const RB: &str = "run-bench.yaml";

#[test]
fn rule_unknown_key() {
    // An unknown workload key, baseline key, workload type, baseline type, top-level spec key
    // and run-bench key.
    let cases: [(&str, &str, &str); 5] = [
        (
            "  Random:\n    - NUM_USERS: 1\n      NUM_ROUNDS: 1\n      PROMPT_LEN: 8\n      ANSWER_LEN: 4\n      QSP: [1]\n",
            "QSP",
            "expected one of NUM_USERS",
        ),
        ("  Sharegpt:\n    - QPS: [1]\n", "Sharegpt", "expected one of ShareGPT"),
        (RANDOM, "modelUrl", "expected one of"),
        (RANDOM, "Bogus", "unknown variant `Bogus`"),
        (RANDOM, "Workloads", "unknown field `Workloads`"),
    ];
    for (workload, key, expected) in cases {
        let serving = match key {
            "modelUrl" => "  - Flat:\n      configSelection: x.sh\n      modelUrl: m\n",
            "Bogus" => "  - Bogus:\n      modelURL: m\n",
            _ => SIM,
        };
        let mut text = spec(serving, workload);
        if key == "Workloads" {
            text.push_str("Workloads: {}\n");
        }
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.write("2-serving-engines/flat/x.sh", "exit 1\n");
        t.spec("a.yaml", &text);
        let line = line_of(&text, key);
        t.rejects(None, &[want(A, Some(line), key, expected)]);
    }
    let t = Tree::new();
    let rb = "0-bench-specs:\n  - a.yaml\n1-infrastructure:\n  Location: Local-Flat\n  numClusterGPU: 2\n";
    t.write(RB, rb).spec("a.yaml", &spec(SIM, RANDOM));
    t.rejects(
        None,
        &[want(
            RB,
            Some(5),
            "numClusterGPU",
            "expected one of Location, numClusterGPUs",
        )],
    );
}

#[test]
fn rule_wrong_type() {
    let cases = [
        ("DURATION: ten", "DURATION", "expected a number"),
        ("QPS: {a: 1}", "QPS", "expected a number"),
        ("NUM_USERS: many", "NUM_USERS", "i64"),
        ("NUM_ROUNDS: 1.5", "NUM_ROUNDS", "i64"),
    ];
    for (bad, key, expected) in cases {
        let good = format!("{key}: ");
        let mut lines: Vec<String> = RANDOM
            .lines()
            .filter(|l| !l.contains(&good))
            .map(str::to_string)
            .collect();
        lines.push(format!("      {bad}"));
        let workload = lines.join("\n") + "\n";
        // Keep the list item start: if the first key was removed, re-add it as the item.
        let workload = if workload.contains("    - ") {
            workload
        } else {
            workload.replacen("      NUM_ROUNDS", "    - NUM_ROUNDS", 1)
        };
        let text = spec(SIM, &workload);
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.spec("a.yaml", &text);
        t.rejects(None, &[want(A, Some(line_of(&text, bad)), key, expected)]);
    }
    // A simulated-engine setting of the wrong type (checked against the engine's settings).
    let text = spec(
        "  - Simulated:\n      modelURL: m\n      ttftMs: fast\n",
        RANDOM,
    );
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", &text);
    t.rejects(
        None,
        &[want(A, Some(3), "Serving[0].Simulated", "expected f64")],
    );
    // A run-bench value of the wrong type.
    let t = Tree::new();
    t.write(RB, "0-bench-specs: [a.yaml]\n1-infrastructure:\n  Location: LMCacheGKE\n  numClusterGPUs: two\n")
        .spec("a.yaml", &spec(SIM, RANDOM));
    t.rejects(None, &[want(RB, Some(4), "numClusterGPUs", "i64")]);
}

/// Every workload type with a complete minimal item: (type, [(key, value, required)]).
/// A setting of a minimal item: (key, value, required).
type Field = (&'static str, &'static str, bool);

fn workload_items() -> Vec<(&'static str, Vec<Field>)> {
    vec![
        (
            "ShareGPT",
            vec![("LIMIT", "10", false), ("QPS", "[1]", true)],
        ),
        (
            "LMCacheSynthetic",
            vec![
                ("NUM_USERS_WARMUP", "0", false),
                ("NUM_USERS", "2", true),
                ("NUM_ROUNDS", "2", true),
                ("SYSTEM_PROMPT", "0", true),
                ("CHAT_HISTORY", "8", true),
                ("ANSWER_LEN", "4", true),
                ("QPS", "[1]", true),
            ],
        ),
        (
            "Agentic",
            vec![
                ("NUM_USERS_WARMUP", "0", false),
                ("NUM_AGENTS", "2", true),
                ("NUM_ROUNDS", "2", true),
                ("SYSTEM_PROMPT", "0", true),
                ("CHAT_HISTORY", "8", true),
                ("ANSWER_LEN", "4", true),
            ],
        ),
        (
            "Random",
            vec![
                ("NUM_USERS", "1", true),
                ("NUM_ROUNDS", "1", true),
                ("PROMPT_LEN", "8", true),
                ("ANSWER_LEN", "4", true),
                ("QPS", "[1]", true),
            ],
        ),
        (
            "StrictSynthetic",
            vec![
                ("NUM_CONCURRENT_USERS", "2", true),
                ("NUM_ROUNDS_PER_USER", "2", true),
                ("SHARED_SYSTEM_PROMPT_LEN", "0", true),
                ("FIRST_PROMPT_LEN", "8", true),
                ("FOLLOW_UP_PROMPTS_LEN", "8", true),
                ("ANSWER_LEN", "4", true),
            ],
        ),
        (
            "VLLMBenchmark",
            vec![
                ("DATASET_NAME", "sonnet", false),
                ("DATASET_PATH", "data/sonnet.txt", true),
            ],
        ),
        (
            "TraceReplayer",
            vec![
                ("TRACE_FILE", "traces/t.jsonl", true),
                ("PRESERVE_TIMING", "true", false),
            ],
        ),
        (
            "PrefixRepetition",
            vec![
                ("NUM_PREFIXES", "2", false),
                ("NUM_PROMPTS", "4", false),
                ("QPS", "[1]", true),
            ],
        ),
    ]
}

fn item_yaml(ty: &str, fields: &[Field], skip: Option<&str>) -> String {
    let mut s = format!("  {ty}:\n");
    let mut first = true;
    for (k, v, _) in fields {
        if Some(*k) == skip {
            continue;
        }
        s.push_str(if first { "    - " } else { "      " });
        s.push_str(&format!("{k}: {v}\n"));
        first = false;
    }
    s
}

#[test]
fn rule_missing_required_key_per_workload_type() {
    for (ty, fields) in workload_items() {
        // The complete item is valid.
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.write("data/sonnet.txt", "a sonnet\n")
            .write("3-workloads/trace-replayer/traces/t.jsonl", "{}\n");
        t.spec("a.yaml", &spec(SIM, &item_yaml(ty, &fields, None)));
        let out = t.validate(None);
        assert_eq!(out.code, 0, "{ty} complete\n{}", out.show());
        for (key, _, required) in &fields {
            if !required {
                continue;
            }
            let text = spec(SIM, &item_yaml(ty, &fields, Some(key)));
            t.spec("a.yaml", &text);
            let full = format!("Workload.{ty}[0].{key}");
            let expected = match (ty, *key) {
                ("VLLMBenchmark", _) => "missing required key for DATASET_NAME sonnet",
                // Without TRACE_FILE the default trace is used, and it does not exist here.
                ("TraceReplayer", _) => "the default trace does not exist",
                _ => "missing required key",
            };
            t.rejects(
                None,
                &[want(A, Some(line_of(&text, "    - ")), &full, expected)],
            );
        }
    }
}

/// Every baseline type with a complete setting list, where it can run, and its selection
/// folder: (type, location, folder, [(key, value, required)]).
fn baseline_items() -> Vec<(&'static str, &'static str, &'static str, Vec<Field>)> {
    let common = |sel: (&'static str, &'static str), token_required: bool| {
        vec![
            (sel.0, sel.1, true),
            ("modelURL", "m", true),
            ("apiType", "chat", false),
            ("hf_token", "<YOUR_HF_TOKEN>", token_required),
        ]
    };
    let mut ray = common(("scriptName", "s.py"), false);
    ray.push(("acceleratorType", "H100", true));
    vec![
        (
            "Helm-ProductionStack",
            "LocalMinikube",
            "2-serving-engines/helm-production-stack/helm_configurations",
            common(("helmConfigSelection", "s.yaml"), true),
        ),
        (
            "Direct-ProductionStack",
            "LocalMinikube",
            "2-serving-engines/direct-production-stack/kubernetes_configurations",
            common(("kubernetesConfigSelection", "s.yaml"), true),
        ),
        (
            "LLM-D",
            "LocalMinikube",
            "2-serving-engines/llm-d/llmd_configurations",
            common(("configSelection", "s.yaml"), true),
        ),
        (
            "SGLang",
            "Local-Flat",
            "2-serving-engines/sglang",
            common(("scriptName", "s.sh"), false),
        ),
        ("RayServe", "Local-Flat", "2-serving-engines/rayserve", ray),
        (
            "Dynamo",
            "Local-Flat",
            "2-serving-engines/dynamo/dynamo_configurations",
            common(("configSelection", "s.yaml"), false),
        ),
        (
            "Flat",
            "Local-Flat",
            "2-serving-engines/flat",
            common(("configSelection", "s.sh"), false),
        ),
        (
            "Simulated",
            "Local-Flat",
            "",
            vec![("modelURL", "m", true), ("name", "sim-name", false)],
        ),
        (
            "Endpoint",
            "LocalMinikube",
            "",
            vec![
                ("baseURL", "https://api.example.com/v1", true),
                ("modelURL", "m", true),
                ("apiType", "chat", false),
                ("name", "remote", false),
            ],
        ),
    ]
}

fn baseline_yaml(
    ty: &str,
    fields: &[Field],
    skip: Option<&str>,
    replace: Option<(&str, &str)>,
) -> String {
    let mut s = format!("  - {ty}:\n");
    for (k, v, _) in fields {
        if Some(*k) == skip {
            continue;
        }
        let v = match replace {
            Some((rk, rv)) if rk == *k => rv,
            _ => v,
        };
        s.push_str(&format!("      {k}: {v}\n"));
    }
    s
}

/// A tree for one baseline type with its selected file in place.
fn baseline_tree(location: &str, dir: &str, fields: &[Field]) -> Tree {
    let t = Tree::with(location, &["a.yaml"]);
    if !dir.is_empty() {
        t.write(&format!("{dir}/{}", fields[0].1), "# placeholder\n");
    }
    t
}

#[test]
fn rule_missing_required_key_per_baseline_type() {
    for (ty, location, dir, fields) in baseline_items() {
        let t = baseline_tree(location, dir, &fields);
        t.spec(
            "a.yaml",
            &spec(&baseline_yaml(ty, &fields, None, None), RANDOM),
        );
        let out = t.validate(Some(TOKEN));
        assert_eq!(out.code, 0, "{ty} complete\n{}", out.show());
        for (key, _, required) in &fields {
            if !required {
                continue;
            }
            t.spec(
                "a.yaml",
                &spec(&baseline_yaml(ty, &fields, Some(key), None), RANDOM),
            );
            let full = format!("Serving[0].{ty}.{key}");
            t.rejects(
                Some(TOKEN),
                &[want(A, Some(3), &full, "missing required key")],
            );
        }
    }
}

#[test]
fn rule_empty_qps_list() {
    for (ty, key) in [
        ("Random", "QPS"),
        ("LMCacheSynthetic", "QPS"),
        ("ShareGPT", "QPS"),
        ("TraceReplayer", "QPS"),
        ("Agentic", "NEW_USER_INTERVALS"),
        ("StrictSynthetic", "TIME_BETWEEN_REQUESTS_PER_USER"),
        ("VLLMBenchmark", "REQUEST_RATES"),
    ] {
        let (_, mut fields) = workload_items()
            .into_iter()
            .find(|(t, _)| *t == ty)
            .expect("type");
        fields.retain(|f| f.0 != key);
        fields.push((key, "[]", false));
        let text = spec(SIM, &item_yaml(ty, &fields, None));
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.write("data/sonnet.txt", "a sonnet\n")
            .write("3-workloads/trace-replayer/traces/t.jsonl", "{}\n");
        t.spec("a.yaml", &text);
        let full = format!("Workload.{ty}[0].{key}");
        t.rejects(
            None,
            &[want(
                A,
                Some(line_of(&text, "[]")),
                &full,
                "expected a non-empty list",
            )],
        );
    }
}

#[test]
fn rule_non_positive_qps() {
    let text = spec(SIM, &RANDOM.replace("QPS: [1]", "QPS: [1, 0, -2]"));
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", &text);
    let l = Some(line_of(&text, "QPS:"));
    t.rejects(
        None,
        &[
            want(
                A,
                l,
                "Workload.Random[0].QPS[1]",
                "expected a positive finite number, got 0",
            ),
            want(
                A,
                l,
                "Workload.Random[0].QPS[2]",
                "expected a positive finite number, got -2",
            ),
        ],
    );
    // The same rule for the other swept keys.
    for (ty, key) in [
        ("Agentic", "NEW_USER_INTERVALS"),
        ("StrictSynthetic", "TIME_BETWEEN_REQUESTS_PER_USER"),
        ("VLLMBenchmark", "REQUEST_RATES"),
        ("LMCacheSynthetic", "QPS"),
        ("PrefixRepetition", "QPS"),
    ] {
        let (_, mut fields) = workload_items()
            .into_iter()
            .find(|(t, _)| *t == ty)
            .expect("type");
        fields.retain(|f| f.0 != key);
        fields.push((key, "[0]", false));
        let text = spec(SIM, &item_yaml(ty, &fields, None));
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.write("data/sonnet.txt", "a sonnet\n");
        t.spec("a.yaml", &text);
        let full = format!("Workload.{ty}[0].{key}[0]");
        t.rejects(
            None,
            &[want(
                A,
                Some(line_of(&text, "[0]")),
                &full,
                "expected a positive",
            )],
        );
    }
}

#[test]
fn rule_ratio_outside_unit_interval() {
    let strict = workload_items()
        .into_iter()
        .find(|(t, _)| *t == "StrictSynthetic")
        .expect("strict")
        .1;
    for bad in ["1.5", "-0.1"] {
        let mut fields = strict.clone();
        fields.push(("KV_REUSE_RATIO", bad, false));
        let text = spec(SIM, &item_yaml("StrictSynthetic", &fields, None));
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.spec("a.yaml", &text);
        t.rejects(
            None,
            &[want(
                A,
                Some(line_of(&text, "KV_REUSE_RATIO")),
                "Workload.StrictSynthetic[0].KV_REUSE_RATIO",
                "expected a number in [0, 1]",
            )],
        );
    }
    // RANDOM_RANGE_RATIO is half-open: 1.0 itself is out.
    for bad in ["1.0", "-0.5"] {
        let text = spec(
            SIM,
            &format!(
                "  VLLMBenchmark:\n    - DATASET_NAME: random\n      RANDOM_RANGE_RATIO: {bad}\n"
            ),
        );
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.spec("a.yaml", &text);
        t.rejects(
            None,
            &[want(
                A,
                Some(line_of(&text, "RANDOM_RANGE_RATIO")),
                "Workload.VLLMBenchmark[0].RANDOM_RANGE_RATIO",
                "expected a number in [0, 1)",
            )],
        );
    }
    // The other bounded VLLMBenchmark number.
    let text = spec(
        SIM,
        "  VLLMBenchmark:\n    - DATASET_NAME: random\n      TOP_P: 1.5\n",
    );
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", &text);
    t.rejects(
        None,
        &[want(
            A,
            Some(line_of(&text, "TOP_P")),
            "TOP_P",
            "expected a number in [0, 1]",
        )],
    );
}

#[test]
fn rule_selected_file_does_not_exist() {
    for (ty, location, dir, fields) in baseline_items() {
        if dir.is_empty() {
            continue;
        }
        let t = baseline_tree(location, dir, &fields);
        let (sel, _, _) = fields[0];
        let text = spec(
            &baseline_yaml(ty, &fields, None, Some((sel, "missing/file.yaml"))),
            RANDOM,
        );
        t.spec("a.yaml", &text);
        let full = format!("Serving[0].{ty}.{sel}");
        let expected = format!("selected file does not exist: ./{dir}/missing/file.yaml");
        t.rejects(
            Some(TOKEN),
            &[want(
                A,
                Some(line_of(&text, "missing/file.yaml")),
                &full,
                &expected,
            )],
        );
    }
    // TRACE_FILE, relative to 3-workloads/trace-replayer/.
    let text = spec(
        SIM,
        "  TraceReplayer:\n    - TRACE_FILE: traces/missing.jsonl\n",
    );
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", &text);
    t.rejects(
        None,
        &[want(
            A,
            Some(line_of(&text, "missing.jsonl")),
            "Workload.TraceReplayer[0].TRACE_FILE",
            "selected file does not exist: ./3-workloads/trace-replayer/traces/missing.jsonl",
        )],
    );
    // DATASET_PATH, relative to the folder of run-bench.yaml, for ShareGPT and VLLMBenchmark.
    for (ty, item) in [
        ("ShareGPT", "  ShareGPT:\n    - QPS: [1]\n      DATASET_PATH: data/missing.json\n"),
        (
            "VLLMBenchmark",
            "  VLLMBenchmark:\n    - DATASET_NAME: sharegpt\n      DATASET_PATH: data/missing.json\n",
        ),
    ] {
        let text = spec(SIM, item);
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.spec("a.yaml", &text);
        let full = format!("Workload.{ty}[0].DATASET_PATH");
        t.rejects(
            None,
            &[want(
                A,
                Some(line_of(&text, "missing.json")),
                &full,
                "selected file does not exist: ./data/missing.json",
            )],
        );
    }
}

#[test]
fn rule_baseline_the_location_cannot_host() {
    let gke = "LMCacheGKE\n  numClusterGPUs: 1";
    for (ty, location, needs) in [
        ("Flat", "LocalMinikube", "it needs Local-Flat"),
        ("Flat", gke, "it needs Local-Flat"),
        ("SGLang", "LocalMinikube", "it needs Local-Flat"),
        ("RayServe", gke, "it needs Local-Flat"),
        ("Dynamo", "LocalMinikube", "it needs Local-Flat"),
        ("Simulated", gke, "it needs Local-Flat"),
        (
            "Helm-ProductionStack",
            "Local-Flat",
            "it needs LocalMinikube or LMCacheGKE",
        ),
        (
            "Direct-ProductionStack",
            "Local-Flat",
            "it needs LocalMinikube or LMCacheGKE",
        ),
        ("LLM-D", gke, "it needs LocalMinikube"),
        ("LLM-D", "Local-Flat", "it needs LocalMinikube"),
    ] {
        let (_, _, dir, fields) = baseline_items()
            .into_iter()
            .find(|b| b.0 == ty)
            .expect("type");
        let t = baseline_tree(location, dir, &fields);
        t.spec(
            "a.yaml",
            &spec(&baseline_yaml(ty, &fields, None, None), RANDOM),
        );
        let loc_name = location.lines().next().unwrap_or(location);
        let expected = format!("{ty} cannot run on Location {loc_name}: {needs}");
        let key = format!("Serving[0].{ty}");
        t.rejects(Some(TOKEN), &[want(A, Some(3), &key, &expected)]);
    }
}

#[test]
fn rule_endpoint_runs_on_every_location_and_checks_its_url_key_and_certificate() {
    let gke = "LMCacheGKE\n  numClusterGPUs: 1";
    let endpoint = |extra: &str| {
        format!("  - Endpoint:\n      baseURL: https://api.example.com\n      modelURL: m\n{extra}")
    };
    for location in ["Local-Flat", "LocalMinikube", gke] {
        let t = Tree::with(location, &["a.yaml"]);
        t.spec("a.yaml", &spec(&endpoint(""), RANDOM));
        let out = t.validate(None);
        assert_eq!(out.code, 0, "{location}\n{}", out.show());
    }
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.write("certs/empty.pem", "no certificate here\n");
    let text = spec(
        "  - Endpoint:\n      baseURL: ftp://h\n      modelURL: m\n      apiKeyEnv: LMBENCH_NO_SUCH_VARIABLE\n      caCert: certs/empty.pem\n  - Endpoint:\n      modelURL: m\n      caCert: certs/missing.pem\n",
        RANDOM,
    );
    t.spec("a.yaml", &text);
    let out = t.rejects(
        None,
        &[
            want(
                A,
                Some(line_of(&text, "ftp://")),
                "Serving[0].Endpoint.baseURL",
                "expected an http:// or https:// URL, got `ftp://h`",
            ),
            want(
                A,
                Some(line_of(&text, "apiKeyEnv")),
                "Serving[0].Endpoint.apiKeyEnv",
                "the environment variable LMBENCH_NO_SUCH_VARIABLE (which should hold the API key) is not set",
            ),
            want(
                A,
                Some(line_of(&text, "empty.pem")),
                "Serving[0].Endpoint.caCert",
                "holds no certificate",
            ),
            want(
                A,
                // The second entry starts two lines above its caCert.
                Some(line_of(&text, "missing.pem") - 2),
                "Serving[1].Endpoint.baseURL",
                "missing required key",
            ),
            want(
                A,
                Some(line_of(&text, "missing.pem")),
                "Serving[1].Endpoint.caCert",
                "selected file does not exist",
            ),
        ],
    );
    assert!(!out.stderr.contains(FIXTURE_KEY_ENV.1), "{}", out.show());
}

#[test]
fn rule_gke_needs_num_cluster_gpus() {
    let t = Tree::with("LMCacheGKE", &["a.yaml"]);
    t.write(
        "2-serving-engines/helm-production-stack/helm_configurations/s.yaml",
        "# placeholder\n",
    );
    let helm = "  - Helm-ProductionStack:\n      helmConfigSelection: s.yaml\n      modelURL: m\n      hf_token: <YOUR_HF_TOKEN>\n";
    t.spec("a.yaml", &spec(helm, RANDOM));
    t.rejects(
        Some(TOKEN),
        &[want(
            RB,
            Some(4),
            "1-infrastructure.numClusterGPUs",
            "missing required key for LMCacheGKE: expected 1, 2, 4 or 8",
        )],
    );
    // Each allowed count is accepted.
    for n in [1, 2, 4, 8] {
        t.write(
            RB,
            &run_bench(&format!("LMCacheGKE\n  numClusterGPUs: {n}"), &["a.yaml"]),
        );
        let out = t.validate(Some(TOKEN));
        assert_eq!(out.code, 0, "numClusterGPUs {n}\n{}", out.show());
    }
}

#[test]
fn rule_num_cluster_gpus_must_be_1_2_4_or_8() {
    let t = Tree::with("LMCacheGKE\n  numClusterGPUs: 3", &["a.yaml"]);
    t.write(
        "2-serving-engines/helm-production-stack/helm_configurations/s.yaml",
        "# placeholder\n",
    );
    let helm = "  - Helm-ProductionStack:\n      helmConfigSelection: s.yaml\n      modelURL: m\n      hf_token: <YOUR_HF_TOKEN>\n";
    t.spec("a.yaml", &spec(helm, RANDOM));
    t.rejects(
        Some(TOKEN),
        &[want(
            RB,
            Some(5),
            "1-infrastructure.numClusterGPUs",
            "expected 1, 2, 4 or 8, got 3",
        )],
    );
}

#[test]
fn rule_a100_vram_must_be_40_or_80() {
    let t = Tree::with(
        "LMCacheGKE\n  numClusterGPUs: 2\n  A100_VRAM: 50",
        &["a.yaml"],
    );
    t.write(
        "2-serving-engines/helm-production-stack/helm_configurations/s.yaml",
        "# placeholder\n",
    );
    let helm = "  - Helm-ProductionStack:\n      helmConfigSelection: s.yaml\n      modelURL: m\n      hf_token: <YOUR_HF_TOKEN>\n";
    t.spec("a.yaml", &spec(helm, RANDOM));
    t.rejects(
        Some(TOKEN),
        &[want(
            RB,
            Some(6),
            "1-infrastructure.A100_VRAM",
            "expected 40 or 80, got 50",
        )],
    );
}

#[test]
fn rule_unknown_location() {
    let t = Tree::with("Moon", &["a.yaml"]);
    t.spec("a.yaml", &spec(SIM, RANDOM));
    t.rejects(
        None,
        &[want(
            RB,
            Some(4),
            "1-infrastructure.Location",
            "unknown Location `Moon`: expected one of NoBench, LocalMinikube, LMCacheGKE, Local-Flat",
        )],
    );
    // Location and 1-infrastructure themselves are required.
    let t = Tree::new();
    t.write(RB, "0-bench-specs: [a.yaml]\n1-infrastructure: {}\n")
        .spec("a.yaml", &spec(SIM, RANDOM));
    t.rejects(
        None,
        &[want(
            RB,
            Some(2),
            "1-infrastructure.Location",
            "missing required key",
        )],
    );
    t.write(RB, "0-bench-specs: [a.yaml]\n");
    t.rejects(
        None,
        &[want(RB, None, "1-infrastructure", "missing required key")],
    );
}

#[test]
fn rule_hf_token_placeholder_needs_the_environment() {
    // Two baselines: one with the placeholder, one with a literal token that must never be
    // echoed.
    let literal = "hf_LiteralTokenInTheSpecFile0123";
    let serving = format!(
        "  - Helm-ProductionStack:\n      helmConfigSelection: s.yaml\n      modelURL: m\n      hf_token: <YOUR_HF_TOKEN>\n\
         \x20 - LLM-D:\n      configSelection: s.yaml\n      modelURL: m\n      hf_token: {literal}\n"
    );
    let text = spec(&serving, RANDOM);
    let t = Tree::with("LocalMinikube", &["a.yaml"]);
    t.write(
        "2-serving-engines/helm-production-stack/helm_configurations/s.yaml",
        "# placeholder\n",
    )
    .write(
        "2-serving-engines/llm-d/llmd_configurations/s.yaml",
        "# placeholder\n",
    );
    t.spec("a.yaml", &text);
    for env in [None, Some("")] {
        let out = t.rejects(
            env,
            &[want(
                A,
                Some(line_of(&text, "<YOUR_HF_TOKEN>")),
                "Serving[0].Helm-ProductionStack.hf_token",
                "<YOUR_HF_TOKEN> needs the HF_TOKEN environment variable, which is not set",
            )],
        );
        assert!(
            !out.stderr.contains(literal),
            "token leaked\n{}",
            out.show()
        );
    }
    // With HF_TOKEN set the same config is valid, and neither token is printed.
    let out = t.validate(Some(TOKEN));
    assert_eq!(out.code, 0, "{}", out.show());
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !all.contains(literal) && !all.contains(TOKEN),
        "{}",
        out.show()
    );
}

#[test]
fn rule_tokens_never_appear_next_to_a_syntax_error() {
    let literal = "hf_RealLookingSecretToken9876543210";
    // The token line itself is quoted in the error's source snippet.
    for broken in [
        format!("  - Flat:\n      modelURL: m\n      hf_token: {literal}\n      configSelection: [x.sh\n"),
        format!("  - Flat: {{modelURL: m, hf_token: {literal}, configSelection: [x.sh}}\n"),
        format!("  - Flat:\n      modelURL: m\n      hf_token: \"{literal}\n      configSelection: x.sh\n"),
    ] {
        let text = spec(&broken, RANDOM);
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.spec("a.yaml", &text);
        // HF_TOKEN is set to the same value: it must not appear either.
        for env in [None, Some(literal)] {
            let out = t.validate(env);
            assert_eq!(out.code, 2, "{}", out.show());
            assert_eq!(out.issues().len(), 1, "{}", out.show());
            assert!(out.issues()[0].starts_with("./0-bench-specs/a.yaml:"), "{}", out.show());
            assert!(!out.stderr.contains(literal), "token leaked\n{}", out.show());
            assert!(!out.stderr.contains("RealLooking"), "token part leaked\n{}", out.show());
        }
    }
    // A token from the environment that happens to appear in the file outside hf_token.
    let env_token = "hf_EnvironmentTokenValue5555";
    let text = spec(
        &format!("  - Simulated:\n      modelURL: {env_token}\n      mode: [fixed\n"),
        RANDOM,
    );
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", &text);
    let out = t.validate(Some(env_token));
    assert_eq!(out.code, 2, "{}", out.show());
    assert!(
        !out.stderr.contains(env_token),
        "token leaked\n{}",
        out.show()
    );
}

#[test]
fn rule_token_on_a_continuation_line_is_hidden() {
    let literal = "hf_ContinuationLineToken24680";
    for form in ["", ">-"] {
        let text = spec(
            &format!("  - Flat:\n      modelURL: m\n      hf_token: {form}\n        {literal}\n      configSelection: [x.sh\n"),
            RANDOM,
        );
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.spec("a.yaml", &text);
        let out = t.validate(None);
        assert_eq!(out.code, 2, "{}", out.show());
        assert!(
            !out.stderr.contains(literal),
            "token leaked\n{}",
            out.show()
        );
    }
}

#[test]
fn rule_yaml_syntax_error() {
    // In a spec.
    let text = spec(SIM, "  Random:\n    - NUM_USERS: 1\n     NUM_ROUNDS: 1\n");
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", &text);
    t.rejects(
        None,
        &[want(
            A,
            Some(line_of(&text, "     NUM_ROUNDS")),
            "NUM_ROUNDS",
            "did not find expected",
        )],
    );
    // In run-bench.yaml.
    let t = Tree::new();
    t.write(
        RB,
        "0-bench-specs: [a.yaml\n1-infrastructure:\n  Location: Local-Flat\n",
    )
    .spec("a.yaml", &spec(SIM, RANDOM));
    t.rejects(
        None,
        &[want(
            RB,
            Some(2),
            "1-infrastructure",
            "illegal placement of ':'",
        )],
    );
    // A key written twice (LMBench's template has four `Location:` keys).
    let t = Tree::new();
    t.write(
        RB,
        "0-bench-specs: [a.yaml]\n1-infrastructure:\n  Location: NoBench\n  Location: Local-Flat\n",
    )
    .spec("a.yaml", &spec(SIM, RANDOM));
    t.rejects(
        None,
        &[want(RB, Some(4), "Location", "duplicate mapping key")],
    );
}

#[test]
fn rule_empty_bench_specs() {
    let infra = "1-infrastructure:\n  Location: Local-Flat\n";
    let t = Tree::new();
    t.write(RB, &format!("0-bench-specs: []\n{infra}"));
    t.rejects(
        None,
        &[want(
            RB,
            Some(1),
            "0-bench-specs",
            "expected a non-empty list of spec files or folders",
        )],
    );
    // Null (the key with nothing under it, as in LMBench's template) and absent.
    // The line is not asserted for these: see the report on `Option<Spanned<Option<_>>>`.
    for text in [format!("0-bench-specs:\n{infra}"), infra.to_string()] {
        t.write(RB, &text);
        t.rejects(
            None,
            &[want(
                RB,
                None,
                "0-bench-specs",
                "expected a non-empty list of spec files or folders",
            )],
        );
    }
}

#[test]
fn rule_spec_path_does_not_exist() {
    let t = Tree::with("Local-Flat", &["a.yaml", "missing.yaml", "empty/"]);
    t.spec("a.yaml", &spec(SIM, RANDOM));
    fs::create_dir_all(t.root().join("0-bench-specs/empty")).expect("mkdir");
    t.write("0-bench-specs/empty/TEMPLATE-x.yaml", "not read\n");
    t.rejects(
        None,
        &[
            want(
                RB,
                Some(3),
                "0-bench-specs[1]",
                "no such spec file or folder: ./0-bench-specs/missing.yaml",
            ),
            want(
                RB,
                Some(4),
                "0-bench-specs[2]",
                "folder holds no .yaml spec files",
            ),
        ],
    );
}

#[test]
fn rule_missing_name() {
    let text = format!("Serving:\n{SIM}Workload:\n{RANDOM}");
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", &text);
    t.rejects(None, &[want(A, None, "Name", "missing required key")]);
}

#[test]
fn rule_name_must_be_a_folder_name() {
    for bad in ["a/b", "a\\\\b", "..", "\"\""] {
        let text = spec(SIM, RANDOM).replace("Name: rules", &format!("Name: {bad}"));
        let t = Tree::with("Local-Flat", &["a.yaml"]);
        t.spec("a.yaml", &text);
        t.rejects(
            None,
            &[want(
                A,
                Some(1),
                "Name",
                "expected a suite name usable as a folder name (no slashes)",
            )],
        );
    }
}

#[test]
fn rule_missing_serving() {
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", &format!("Name: rules\nWorkload:\n{RANDOM}"));
    t.rejects(
        None,
        &[want(
            A,
            None,
            "Serving",
            "expected a non-empty list of serving baselines",
        )],
    );
    t.spec(
        "a.yaml",
        &format!("Name: rules\nServing: []\nWorkload:\n{RANDOM}"),
    );
    t.rejects(
        None,
        &[want(
            A,
            Some(2),
            "Serving",
            "expected a non-empty list of serving baselines",
        )],
    );
    t.spec(
        "a.yaml",
        &format!("Name: rules\nServing:\nWorkload:\n{RANDOM}"),
    );
    t.rejects(None, &[want(A, None, "Serving", "serving baselines")]);
}

#[test]
fn rule_missing_workload() {
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", &format!("Name: rules\nServing:\n{SIM}"));
    t.rejects(
        None,
        &[want(
            A,
            None,
            "Workload",
            "expected a map of workload types",
        )],
    );
    t.spec(
        "a.yaml",
        &format!("Name: rules\nServing:\n{SIM}Workload: {{}}\n"),
    );
    t.rejects(
        None,
        &[want(
            A,
            Some(5),
            "Workload",
            "expected at least one workload",
        )],
    );
    t.spec(
        "a.yaml",
        &format!("Name: rules\nServing:\n{SIM}Workload:\n"),
    );
    t.rejects(None, &[want(A, None, "Workload", "workload")]);
}

#[test]
fn all_errors_are_reported_together() {
    let t = Tree::with("Local-Flat", &["a.yaml", "b.yaml", "missing.yaml"]);
    let a = spec(
        "  - Flat:\n      configSelection: nope.sh\n      modelURL: m\n  - Helm-ProductionStack:\n      helmConfigSelection: h.yaml\n      modelURL: m\n      hf_token: <YOUR_HF_TOKEN>\n",
        "  Random:\n    - NUM_USERS: 0\n      NUM_ROUNDS: 1\n      PROMPT_LEN: 8\n      ANSWER_LEN: 4\n      QPS: []\n",
    );
    let b = spec(
        SIM,
        "  StrictSynthetic:\n    - NUM_CONCURRENT_USERS: 1\n      KV_REUSE_RATIO: 2\n",
    )
    .replace("Name: rules", "Name: b/c");
    t.write(
        "2-serving-engines/helm-production-stack/helm_configurations/h.yaml",
        "# placeholder\n",
    );
    t.spec("a.yaml", &a).spec("b.yaml", &b);
    const B: &str = "0-bench-specs/b.yaml";
    let item_b = Some(line_of(&b, "    - "));
    t.rejects(
        None,
        &[
            want(
                RB,
                Some(4),
                "0-bench-specs[2]",
                "no such spec file or folder",
            ),
            want(
                A,
                Some(line_of(&a, "nope.sh")),
                "Serving[0].Flat.configSelection",
                "selected file does not exist",
            ),
            want(
                A,
                Some(line_of(&a, "- Helm")),
                "Serving[1].Helm-ProductionStack",
                "cannot run on Location Local-Flat",
            ),
            want(
                A,
                Some(line_of(&a, "<YOUR_HF_TOKEN>")),
                "Serving[1].Helm-ProductionStack.hf_token",
                "needs the HF_TOKEN environment variable",
            ),
            want(
                A,
                Some(line_of(&a, "NUM_USERS: 0")),
                "Workload.Random[0].NUM_USERS",
                "expected a positive integer, got 0",
            ),
            want(
                A,
                Some(line_of(&a, "QPS: []")),
                "Workload.Random[0].QPS",
                "expected a non-empty list",
            ),
            want(B, Some(1), "Name", "no slashes"),
            want(
                B,
                item_b,
                "Workload.StrictSynthetic[0].NUM_ROUNDS_PER_USER",
                "missing required key",
            ),
            want(
                B,
                item_b,
                "Workload.StrictSynthetic[0].SHARED_SYSTEM_PROMPT_LEN",
                "missing required key",
            ),
            want(
                B,
                item_b,
                "Workload.StrictSynthetic[0].FIRST_PROMPT_LEN",
                "missing required key",
            ),
            want(
                B,
                item_b,
                "Workload.StrictSynthetic[0].FOLLOW_UP_PROMPTS_LEN",
                "missing required key",
            ),
            want(
                B,
                item_b,
                "Workload.StrictSynthetic[0].ANSWER_LEN",
                "missing required key",
            ),
            want(
                B,
                Some(line_of(&b, "KV_REUSE_RATIO")),
                "Workload.StrictSynthetic[0].KV_REUSE_RATIO",
                "expected a number in [0, 1], got 2",
            ),
        ],
    );
}

/// `lmbench::run` in-process: the same exit codes as the binary, for a good and a bad
/// configuration (and `plan --json` on the embedded-free repository configuration).
#[tokio::test]
async fn lmbench_run_in_process_returns_the_exit_code() {
    use clap::Parser;
    let cli = |args: &[&str]| lmbench::cli::Cli::try_parse_from(args).expect("arguments");
    let rb = repo().join("run-bench.yaml");
    let good = cli(&["lmbench", "validate", "-c", rb.to_str().unwrap()]);
    assert_eq!(lmbench::run(good).await.unwrap(), lmbench::ExitCode::Ok);
    let t = Tree::with("Local-Flat", &["a.yaml"]);
    t.spec("a.yaml", "Name: x\n");
    let path = t.root().join("run-bench.yaml");
    let bad = cli(&["lmbench", "plan", "-c", path.to_str().unwrap()]);
    let code = lmbench::run(bad).await.unwrap();
    assert_eq!(code, lmbench::ExitCode::BadInput);
    assert_eq!(code.code(), 2);
}
