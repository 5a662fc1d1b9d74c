//! Unit tests of VLLMBenchmark: datasets, arrivals, sampling options, goodput, vLLM's names.

use super::*;
use crate::record::RequestRecord;
use std::path::{Path, PathBuf};

/// The item, validated with paths resolving against the repository.
fn cfg(yaml: &str) -> Config {
    crate::workload::spec_from_yaml::<Raw>(yaml)
}

fn run(rate: f64) -> Point {
    Point {
        sweep: SweepPoint {
            key: "REQUEST_RATE",
            value: Some(Num::float(rate)),
        },
        qps: Some(Num::float(rate)),
        qps_label: format!("{rate}"),
        estimated_s: 1.0,
    }
}

fn ctx(_rate: f64, root: &Path) -> RunContext {
    RunContext {
        prompt: PromptBuilder::global(),
        root: root.to_path_buf(),
        api: crate::record::ApiType::Completions,
        seed: 7,
        user_id_base: 3_000_000,
        duration_override_s: None,
        repeat: 1,
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The item validated against `root` (where its dataset is), built at `rate`.
/// vLLM's own prompts (no per-point salt) unless the item sets `SALT_PER_POINT`: these tests
/// check vLLM's sampling.
fn build_in(yaml: &str, rate: f64, root: &Path) -> Result<VllmBench, WorkloadError> {
    let mut cfg = crate::workload::spec_from_yaml_in::<Raw>(yaml, root);
    if !yaml.contains("SALT_PER_POINT") {
        cfg.salt_per_point = false;
    }
    VllmBench::new(&cfg, &run(rate), &ctx(rate, root))
}

/// By default every point gets prompts of its own (the point's seed is the run's): the random
/// dataset keeps its exact lengths and shared prefix within a point, with different text at
/// another point; other datasets' prompts start with the point's words; `SALT_PER_POINT: false`
/// gives the same prompts at every point.
#[test]
fn prompts_are_salted_per_point_unless_turned_off() {
    let at = |yaml: &str, seed: u64| {
        let cfg = crate::workload::spec_from_yaml_in::<Raw>(yaml, &repo());
        let mut c = ctx(2.0, &repo());
        c.seed = seed;
        let mut w = VllmBench::new(&cfg, &run(2.0), &c).unwrap();
        all_specs(&mut w)
    };
    let b = PromptBuilder::global();
    let (p1, p2) = (at(RANDOM, 7), at(RANDOM, 8));
    let unsalted = at(&format!("{RANDOM}SALT_PER_POINT: false\n"), 7);
    for ((a, c), u) in p1.iter().zip(&p2).zip(&unsalted) {
        assert_eq!(b.count(text(a)), b.count(text(u)), "exact lengths kept");
        assert_eq!(b.count(text(c)), b.count(text(u)));
        assert_ne!(text(a), text(c), "another point, other text");
        assert_ne!(text(a), text(u));
    }
    // The shared prefix is shared within the point (16 tokens), not across points.
    let words = |s: &RequestSpec, n: usize| -> Vec<String> {
        text(s).split(' ').take(n + 1).map(str::to_string).collect()
    };
    assert!(p1.iter().all(|s| words(s, 16) == words(&p1[0], 16)));
    assert_ne!(words(&p1[0], 16), words(&p2[0], 16));
    assert_eq!(
        unsalted.iter().map(text).collect::<Vec<_>>(),
        at(&format!("{RANDOM}SALT_PER_POINT: false\n"), 8)
            .iter()
            .map(text)
            .collect::<Vec<_>>(),
        "unsalted: the same prompts at every point"
    );
    let sonnet =
        "DATASET_NAME: sonnet\nDATASET_PATH: 3-workloads/vllm-benchmark-serving/verses.txt\n\
                  NUM_PROMPTS: 5\nSONNET_INPUT_LEN: 120\nSONNET_PREFIX_LEN: 40\n";
    let (s1, s2) = (at(sonnet, 7), at(sonnet, 8));
    let tag = text(&s1[0]).split_once('\n').unwrap().0.to_string();
    assert_eq!(tag.split(' ').count(), 4, "{tag}");
    assert!(s1
        .iter()
        .all(|s| text(s).starts_with(&format!("{tag}\n{SONNET_INSTRUCTION}"))));
    assert!(!text(&s2[0]).starts_with(&tag));
    for s in &s1 {
        assert_eq!(s.client_prompt_tokens, b.count(text(s)) as u64);
    }
}

fn all_specs(w: &mut VllmBench) -> Vec<RequestSpec> {
    std::iter::from_fn(|| w.next_scheduled()).collect()
}

fn text(s: &RequestSpec) -> &str {
    match &s.prompt {
        Prompt::Text(t) => t,
        Prompt::Messages(_) => panic!("expected a text prompt"),
    }
}

const RANDOM: &str = "DATASET_NAME: random\nNUM_PROMPTS: 200\nRANDOM_INPUT_LEN: 100\n\
        RANDOM_OUTPUT_LEN: 20\nRANDOM_RANGE_RATIO: 0.25\nRANDOM_PREFIX_LEN: 16\nSEED: 5\n";

#[test]
fn random_lengths_are_exact_and_within_the_range() {
    let mut w = build_in(RANDOM, 4.0, &repo()).unwrap();
    let specs = all_specs(&mut w);
    assert_eq!(specs.len(), 200);
    let b = PromptBuilder::global();
    let prefix = b.filler_seeded(16, mix_seed(&[5, STREAM_PREFIX]));
    let (mut ins, mut outs) = (Vec::new(), Vec::new());
    for (i, s) in specs.iter().enumerate() {
        let n = b.count(text(s));
        assert_eq!(n as u64, s.client_prompt_tokens);
        assert!((16 + 75..=16 + 125).contains(&n), "prompt {i}: {n} tokens");
        assert!(text(s).starts_with(&prefix));
        assert!((15..=25).contains(&s.max_tokens), "{}", s.max_tokens);
        assert_eq!(s.user_id, Some(3_000_000 + i as u64));
        assert_eq!(s.id, i as u64);
        ins.push(n);
        outs.push(s.max_tokens);
    }
    // The lengths really vary over the range.
    assert_eq!(*ins.iter().min().unwrap(), 16 + 75);
    assert_eq!(*ins.iter().max().unwrap(), 16 + 125);
    assert!(outs.contains(&15) && outs.contains(&25));
    // Without a range ratio every length is the configured one; MAX_TOKENS fills in.
    let mut w = build_in(
        "DATASET_NAME: random\nNUM_PROMPTS: 5\nRANDOM_INPUT_LEN: 40\nMAX_TOKENS: 9\n",
        1.0,
        &repo(),
    )
    .unwrap();
    for s in all_specs(&mut w) {
        assert_eq!(s.client_prompt_tokens, 40);
        assert_eq!(s.max_tokens, 9);
    }
}

#[test]
fn same_seed_gives_a_byte_identical_stream_and_other_seeds_differ() {
    let stream = |yaml: &str| {
        let mut w = build_in(yaml, 3.0, &repo()).unwrap();
        serde_json::to_string(&all_specs(&mut w)).unwrap()
    };
    let a = stream(RANDOM);
    assert_eq!(a, stream(RANDOM));
    let other = RANDOM.replace("SEED: 5", "SEED: 6");
    let b = stream(&other);
    assert_ne!(a, b);
    // Due times and prompts both change.
    let due = |s: &str| -> Vec<f64> {
        let v: Vec<RequestSpec> = serde_json::from_str(s).unwrap();
        v.iter().map(|x| x.due_s).collect()
    };
    assert_ne!(due(&a), due(&b));
}

#[test]
fn infinite_rate_puts_every_request_at_zero() {
    let mut w = build_in(RANDOM, f64::INFINITY, &repo()).unwrap();
    let specs = all_specs(&mut w);
    assert!(specs.iter().all(|s| s.due_s == 0.0));
    let st = w.stats();
    assert_eq!(st["request_rate"], "inf");
    assert!(st["schedule_rate"].is_null());
}

#[test]
fn schedule_follows_the_rate_and_stats_say_so() {
    let y = "DATASET_NAME: random\nNUM_PROMPTS: 2000\nRANDOM_INPUT_LEN: 4\nBURSTINESS: 2.0\n\
                 MAX_CONCURRENCY: 3\nSEED: 1\n";
    let mut w = build_in(y, 20.0, &repo()).unwrap();
    assert_eq!(w.max_in_flight(), Some(3));
    let specs = all_specs(&mut w);
    let last = specs.last().unwrap().due_s;
    // Mean gap 1/20 s; the sum of 1999 gaps has a relative sd of 1/sqrt(1999·2) ≈ 1.6 %.
    assert!((last / (1999.0 / 20.0) - 1.0).abs() < 0.08, "{last}");
    let st = w.stats();
    assert_eq!(st["dataset"], "random");
    assert_eq!(st["num_prompts"], 2000);
    assert_eq!(st["requests_scheduled"], 2000);
    assert_eq!(st["burstiness"], 2.0);
    assert_eq!(st["seed"], 1);
    assert_eq!(st["max_concurrency"], 3);
    let sr = st["schedule_rate"].as_f64().unwrap();
    assert!((sr / 20.0 - 1.0).abs() < 0.08, "{sr}");
    assert_eq!(w.window(), Some((0.0, 100.0)));
}

#[test]
fn sampling_options_go_into_the_body_only_when_set() {
    let mut w = build_in(RANDOM, 1.0, &repo()).unwrap();
    assert!(w.next_scheduled().unwrap().extra.is_empty());
    let y = format!("{RANDOM}TEMPERATURE: 0.7\nTOP_P: 0.9\nTOP_K: 20\nIGNORE_EOS: true\n");
    let mut w = build_in(&y, 1.0, &repo()).unwrap();
    let e = w.next_scheduled().unwrap().extra;
    assert_eq!(
        Value::Object(e),
        json!({"temperature": 0.7, "top_p": 0.9, "top_k": 20, "ignore_eos": true})
    );
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    std::fs::write(dir.join(name), body).unwrap();
    name.to_string()
}

#[test]
fn sonnet_shares_its_prefix_and_reaches_the_input_length() {
    let y = "DATASET_NAME: sonnet\nDATASET_PATH: 3-workloads/vllm-benchmark-serving/verses.txt\n\
                 NUM_PROMPTS: 30\nSONNET_INPUT_LEN: 300\nSONNET_PREFIX_LEN: 100\n";
    let mut w = build_in(y, 2.0, &repo()).unwrap();
    let specs = all_specs(&mut w);
    let st = w.stats();
    let prefix_lines = st["prefix_lines"].as_u64().unwrap() as usize;
    assert!(prefix_lines >= 2, "{st}");
    let lines: Vec<String> =
        std::fs::read_to_string(repo().join("3-workloads/vllm-benchmark-serving/verses.txt"))
            .unwrap()
            .lines()
            .map(|l| format!("{l}\n"))
            .collect();
    let head = format!("{SONNET_INSTRUCTION}{}", lines[..prefix_lines].concat());
    let mut distinct = std::collections::HashSet::new();
    for s in &specs {
        let t = text(s);
        assert!(t.starts_with(&head), "shared prefix");
        assert_eq!(s.max_tokens, 150, "SONNET_OUTPUT_LEN default");
        let n = s.client_prompt_tokens as f64;
        assert!((n / 300.0 - 1.0).abs() < 0.25, "{n} tokens");
        distinct.insert(t.to_string());
    }
    assert!(distinct.len() > 25, "prompts differ after the prefix");
}

#[test]
fn sonnet_with_the_reference_file_matches_the_default_lengths() {
    let p = repo().join("../shared/data/sonnet.txt");
    if !p.is_file() {
        return;
    }
    let y = format!(
        "DATASET_NAME: sonnet\nDATASET_PATH: {}\nNUM_PROMPTS: 50\nMAX_TOKENS: 33\n",
        p.display()
    );
    let mut w = build_in(&y, 2.0, Path::new("/")).unwrap();
    let specs = all_specs(&mut w);
    let mean =
        specs.iter().map(|s| s.client_prompt_tokens).sum::<u64>() as f64 / specs.len() as f64;
    eprintln!("sonnet.txt: mean prompt {mean:.1} tokens, {}", w.stats());
    assert!((mean / 550.0 - 1.0).abs() < 0.1, "{mean}");
    assert!(specs.iter().all(|s| s.max_tokens == 33), "MAX_TOKENS maps");
    assert!(specs.iter().all(|s| text(s).starts_with(
        "Pick as many lines as you can from these poem lines:\nShall I compare thee"
    )));
}

#[test]
fn sharegpt_takes_the_first_answered_human_turn_and_its_answer_length() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "s.json",
        r#"[
  {"id": "a", "conversations": [
    {"from": "system", "value": "be brief"},
    {"from": "human", "value": "one two three four five"},
    {"from": "gpt", "value": "six seven eight nine ten eleven"}]},
  {"id": "b", "conversations": [{"from": "human", "value": "lonely question without answer"}]},
  {"id": "c", "conversations": [
    {"from": "human", "value": "hi"}, {"from": "gpt", "value": "too short a prompt to pass"}]}
]"#,
    );
    let y = format!("DATASET_NAME: sharegpt\nDATASET_PATH: {f}\nNUM_PROMPTS: 6\n");
    let mut w = build_in(&y, 1.0, dir.path()).unwrap();
    let specs = all_specs(&mut w);
    assert_eq!(specs.len(), 6, "oversampled to NUM_PROMPTS");
    for s in &specs {
        assert_eq!(text(s), "one two three four five");
        assert_eq!(s.max_tokens, 6, "the answer's token count");
    }
    let st = w.stats();
    assert_eq!(st["dataset_entries"], 2);
    assert_eq!(st["filtered_out"], 1);
    assert_eq!(st["entries_used"], 1);
    assert_eq!(st["oversampled"], 5);
    // A configured length replaces the answer's, and lets short answers through.
    let y = format!("{y}SHAREGPT_OUTPUT_LEN: 3\n");
    let mut w = build_in(&y, 1.0, dir.path()).unwrap();
    assert!(all_specs(&mut w).iter().all(|s| s.max_tokens == 3));
}

#[test]
fn custom_and_hf_lengths_follow_keys_then_lines_then_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let c = write(
        dir.path(),
        "c.jsonl",
        "{\"prompt\": \"alpha\", \"output_len\": 7}\n\n{\"prompt\": \"beta\"}\n",
    );
    let lens = |yaml: String| {
        let mut w = build_in(&yaml, 1.0, dir.path()).unwrap();
        let mut v: Vec<(String, u32)> = all_specs(&mut w)
            .iter()
            .map(|s| (text(s).to_string(), s.max_tokens))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let base = format!("DATASET_NAME: custom\nDATASET_PATH: {c}\nNUM_PROMPTS: 10\n");
    assert_eq!(
        lens(base.clone()),
        vec![("alpha".into(), 7), ("beta".into(), 256)]
    );
    assert_eq!(
        lens(format!("{base}MAX_TOKENS: 11\n")),
        vec![("alpha".into(), 11), ("beta".into(), 11)]
    );
    assert_eq!(
        lens(format!("{base}MAX_TOKENS: 11\nCUSTOM_OUTPUT_LEN: 4\n")),
        vec![("alpha".into(), 4), ("beta".into(), 4)]
    );
    let h = write(
            dir.path(),
            "h.jsonl",
            concat!(
                "{\"turns\": [\"mt bench question\", \"follow up\"]}\n",
                "{\"conversations\": [{\"from\": \"human\", \"value\": \"conv q\"}, {\"from\": \"gpt\", \"value\": \"a b c\"}]}\n",
                "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"parts q\"}]}]}\n",
                "{\"prompt\": \"plain\", \"output_len\": 5}\n",
            ),
        );
    let base = format!("DATASET_NAME: hf\nDATASET_PATH: {h}\nNUM_PROMPTS: 12\n");
    assert_eq!(
        lens(base.clone()),
        vec![
            ("conv q".into(), 3),
            ("mt bench question".into(), 256),
            ("parts q".into(), 256),
            ("plain".into(), 5)
        ]
    );
    assert!(lens(format!("{base}HF_OUTPUT_LEN: 2\n"))
        .iter()
        .all(|(_, n)| *n == 2));
}

#[test]
fn a_bad_dataset_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "custom",
            "c.jsonl",
            "{\"prompt\": \"ok\"}\n{\"prompt\": 3}\n",
            "line 2",
        ),
        (
            "custom",
            "d.jsonl",
            "{\"prompt\": \"ok\"}\n\nnot json\n",
            "line 3",
        ),
        (
            "custom",
            "e.jsonl",
            "{\"prompt\": \"ok\", \"output_len\": 0}\n",
            "line 1",
        ),
        (
            "hf",
            "h.jsonl",
            "{\"prompt\": \"ok\"}\n{\"turns\": 5}\n",
            "line 2",
        ),
        (
            "sharegpt",
            "s.json",
            "[\n  {\"conversations\": [\n    {\"from\": \"human\"}\n  ]}\n]\n",
            "line 3",
        ),
    ];
    for (ds, name, body, want) in cases {
        let f = write(dir.path(), name, body);
        let y = format!("DATASET_NAME: {ds}\nDATASET_PATH: {f}\nNUM_PROMPTS: 2\n");
        let e = build_in(&y, 1.0, dir.path()).err().unwrap().to_string();
        assert!(e.contains(name) && e.contains(want), "{ds}: {e}");
    }
    // A dataset that is gone by the time the run starts.
    write(dir.path(), "missing.jsonl", "{\"prompt\": \"ok\"}\n");
    let gone = crate::workload::spec_from_yaml_in::<Raw>(
        "DATASET_NAME: custom\nDATASET_PATH: missing.jsonl\n",
        dir.path(),
    );
    std::fs::remove_file(dir.path().join("missing.jsonl")).unwrap();
    let e = VllmBench::new(&gone, &run(1.0), &ctx(1.0, dir.path()))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("cannot read") && e.contains("missing.jsonl"),
        "{e}"
    );
}

fn completed(sent: f64, first: f64, end: f64, tokens: u64, ok: bool) -> Completed {
    Completed {
        record: RequestRecord {
            id: 0,
            user_id: None,
            round: 1,
            warmup: false,
            due_s: 0.0,
            slot_s: None,
            sent_s: sent,
            new_connection: None,
            connect_ms: None,
            first_token_s: Some(first),
            end_s: end,
            chunk_times_s: Vec::new(),
            prompt_tokens: Some(10),
            completion_tokens: Some(tokens),
            cached_tokens: None,
            client_prompt_tokens: 10,
            client_completion_tokens: tokens,
            content_chunks: tokens,
            max_tokens: tokens as u32,
            status: Some(200),
            error: (!ok).then(|| crate::record::RequestError {
                kind: crate::record::ErrorKind::HttpStatus,
                message: "500".into(),
            }),
        },
        text: String::new(),
        follow_up: None,
    }
}

#[test]
fn goodput_counts_requests_meeting_every_slo() {
    let y = format!("{RANDOM}GOODPUT: {{ttft_ms: 100, tpot_ms: 10, e2el_ms: 1000}}\n");
    let mut w = build_in(&y, 1.0, &repo()).unwrap();
    // good: ttft 50 ms, tpot 450 ms / 50 = 9 ms, e2el 500 ms
    w.on_complete(&completed(1.0, 1.05, 1.5, 51, true), 2.0);
    // ttft 200 ms misses
    w.on_complete(&completed(1.0, 1.2, 1.25, 11, true), 2.0);
    // tpot 20 ms and e2el 1.05 s miss
    w.on_complete(&completed(0.0, 0.05, 1.05, 51, true), 2.0);
    // one token: tpot counts as 0 (vLLM), good
    w.on_complete(&completed(0.0, 0.05, 0.05, 1, true), 2.0);
    // failed: not counted at all
    w.on_complete(&completed(0.0, 0.01, 0.02, 2, false), 2.0);
    let g = &w.stats()["goodput"];
    assert_eq!(g["requests_checked"], 4);
    assert_eq!(g["good_requests"], 2);
    assert_eq!(
        g["missed"],
        json!({"ttft_ms": 1, "tpot_ms": 1, "e2el_ms": 1})
    );
    assert_eq!(g["slo_ms"]["tpot_ms"], 10.0);
    // Without GOODPUT there are no counters and no request_goodput.
    let w = build_in(RANDOM, 1.0, &repo()).unwrap();
    assert!(w.stats()["goodput"].is_null());
    let f = vllm_result_fields(&json!({"benchmark_duration_s": 2.0}), &w.stats());
    assert!(!f.contains_key("request_goodput"));
}

#[test]
fn vllm_names_come_from_the_results_object() {
    let results = json!({
        "successful_requests": 40, "benchmark_duration_s": 8.0,
        "total_input_tokens": 4000, "total_generated_tokens": 640,
        "request_throughput_req_per_s": 5.0, "output_token_throughput_tok_per_s": 80.0,
        "input_token_throughput_tok_per_s": 500.0, "total_token_throughput_tok_per_s": 580.0,
        "ttft_ms": {"mean": 50.0, "median": 49.0, "p99": 70.0, "std": 3.0},
        "tpot_ms": {"mean": 5.0, "median": 5.0, "p99": 6.0, "std": 0.1},
        "itl_ms": {"mean": 9.0, "median": 9.0, "p99": 9.5, "std": 0.2},
        "failed_requests": 1,
        "e2e_latency_ms": {"mean": 130.0, "median": 128.0, "p99": 160.0, "std": 4.0},
        "inter_token_latency_ms": {"mean": 5.1, "median": 5.0, "p99": 7.0, "max": 9.0},
    });
    let stats = json!({"backend": "vllm", "num_prompts": 41, "request_rate": 5.0,
            "burstiness": 1.0, "max_concurrency": null,
            "goodput": {"good_requests": 30}});
    let f = Value::Object(vllm_result_fields(&results, &stats));
    let want = json!({
        "backend": "vllm", "num_prompts": 41, "request_rate": 5.0, "burstiness": 1.0,
        "max_concurrency": null, "duration": 8.0, "completed": 40, "failed": 1,
        "total_input_tokens": 4000, "total_output_tokens": 640,
        "request_throughput": 5.0, "request_goodput": 3.75,
        "output_throughput": 80.0, "total_token_throughput": 580.0,
        "mean_ttft_ms": 50.0, "median_ttft_ms": 49.0, "std_ttft_ms": 3.0, "p99_ttft_ms": 70.0,
        "mean_tpot_ms": 5.0, "median_tpot_ms": 5.0, "std_tpot_ms": 0.1, "p99_tpot_ms": 6.0,
        "mean_itl_ms": 5.1, "median_itl_ms": 5.0, "p99_itl_ms": 7.0,
        "mean_e2el_ms": 130.0, "median_e2el_ms": 128.0, "std_e2el_ms": 4.0,
        "p99_e2el_ms": 160.0,
    });
    assert_eq!(f, want);
    // LMBench's error object (nothing succeeded): completed 0, the rest null.
    let f = vllm_result_fields(
        &json!({"error": "No successful requests completed", "failed_requests": 3}),
        &stats,
    );
    assert_eq!(f["completed"], 0);
    assert_eq!(f["failed"], 3);
    assert!(f["mean_ttft_ms"].is_null() && f["request_goodput"].is_null());
}

#[test]
fn duration_override_cuts_the_schedule() {
    let mut c = ctx(10.0, &repo());
    c.duration_override_s = Some(2.0);
    let mut w = VllmBench::new(&cfg(RANDOM), &run(10.0), &c).unwrap();
    let specs = all_specs(&mut w);
    assert!(specs.len() < 200 && specs.len() > 5, "{}", specs.len());
    assert!(specs.iter().all(|s| s.due_s < 2.0));
    assert_eq!(w.window(), Some((0.0, 2.0)));
}
