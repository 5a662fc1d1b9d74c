//! The name mapping against exposition text of each engine: vLLM's and SGLang's (fixtures in
//! their formats), llama.cpp's (captured from `llama-server --metrics`), and the simulated
//! engine's own rendering.

use super::*;

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/metrics")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn common(s: &Scrape, name: &str) -> Option<(f64, String)> {
    s.common(COMMON.iter().find(|c| c.name == name).unwrap())
}

#[test]
fn vllm_names_map_and_label_sets_add_up() {
    let s = parse(&fixture("vllm.txt"), 1.0).unwrap();
    assert_eq!(s.engine(), "vllm");
    // Two engines (data parallel) each running 6 and 5.
    assert_eq!(
        common(&s, "requests_running"),
        Some((11.0, "vllm:num_requests_running".into()))
    );
    assert_eq!(common(&s, "requests_waiting").unwrap().0, 3.0);
    assert_eq!(common(&s, "kv_cache_usage").unwrap().0, 0.42);
    assert_eq!(common(&s, "prompt_tokens_total").unwrap().0, 51200.0);
    assert_eq!(common(&s, "prefix_cache_hits_total").unwrap().0, 30720.0);
    assert_eq!(common(&s, "preemptions_total").unwrap().0, 2.0);
    // Finish reasons add up.
    assert_eq!(common(&s, "requests_finished_total").unwrap().0, 100.0);
    // Histograms and creation times are not scalars.
    assert!(!s
        .raw
        .keys()
        .any(|k| k.contains("time_to_first_token") || k.ends_with("_created")));
}

#[test]
fn sglang_names_map() {
    let s = parse(&fixture("sglang.txt"), 1.0).unwrap();
    assert_eq!(s.engine(), "sglang");
    assert_eq!(
        common(&s, "requests_running").unwrap(),
        (162.0, "sglang:num_running_reqs".into())
    );
    assert_eq!(common(&s, "requests_waiting").unwrap().0, 2826.0);
    assert_eq!(common(&s, "kv_cache_usage").unwrap().0, 0.28);
    assert_eq!(common(&s, "prefix_cache_hit_rate").unwrap().0, 0.0075);
    assert_eq!(common(&s, "generation_tokens_total").unwrap().0, 7557572.0);
}

#[test]
fn llamacpp_prompt_tokens_include_the_cached_ones() {
    let s = parse(&fixture("llamacpp.txt"), 1.0).unwrap();
    assert_eq!(s.engine(), "llamacpp");
    // 3 processed + 40 reused from the cache.
    let (v, from) = common(&s, "prompt_tokens_total").unwrap();
    assert_eq!(v, 43.0);
    assert_eq!(
        from,
        "llamacpp:prompt_tokens_total + llamacpp:prompt_tokens_cached_total"
    );
    assert_eq!(common(&s, "prefix_cache_hits_total").unwrap().0, 40.0);
    assert_eq!(common(&s, "generation_tokens_total").unwrap().0, 4.0);
    assert_eq!(common(&s, "requests_running").unwrap().0, 1.0);
    assert_eq!(common(&s, "kv_cache_usage"), None);
}

#[test]
fn the_simulated_engines_rendering_maps() {
    let m = crate::sim::metrics::Metrics::default();
    crate::sim::metrics::add(&m.prompt_tokens, 640);
    crate::sim::metrics::add(&m.prefix_cache_queries, 640);
    crate::sim::metrics::add(&m.prefix_cache_hits, 320);
    let s = parse(&m.render(), 0.0).unwrap();
    assert_eq!(s.engine(), "lmbench_sim");
    assert_eq!(common(&s, "prompt_tokens_total").unwrap().0, 640.0);
    assert_eq!(common(&s, "prefix_cache_hits_total").unwrap().0, 320.0);
    assert_eq!(common(&s, "requests_waiting").unwrap().0, 0.0);
}

#[test]
fn a_summary_has_levels_increases_and_the_comparison() {
    let scrape = |t: f64, running: f64, prompt: f64, hits: f64, queries: f64| Scrape {
        t,
        raw: BTreeMap::from([
            ("vllm:num_requests_running".to_string(), running),
            ("vllm:prompt_tokens_total".to_string(), prompt),
            ("vllm:prefix_cache_hits_total".to_string(), hits),
            ("vllm:prefix_cache_queries_total".to_string(), queries),
        ]),
    };
    let scrapes = [
        scrape(0.0, 0.0, 1000.0, 100.0, 1000.0),
        scrape(1.0, 4.0, 1500.0, 300.0, 1500.0),
        scrape(2.0, 2.0, 2000.0, 500.0, 2000.0),
    ];
    let client = ClientTotals {
        prompt_tokens: Some(950),
        generation_tokens: None,
        cached_tokens: Some(400),
    };
    let v = summarize(
        "http://x/metrics",
        &scrapes,
        1,
        Some("GET timed out"),
        client,
    );
    assert_eq!(v["engine"], "vllm");
    assert_eq!(v["scrapes"], 3);
    assert_eq!(v["failed_scrapes"], 1);
    assert_eq!(v["error"], "GET timed out");
    assert_eq!(v["window_s"], json!([0.0, 2.0]));
    let m = &v["metrics"];
    assert_eq!(m["requests_running"], json!({"peak": 4.0, "mean": 2.0}));
    assert_eq!(m["prompt_tokens_total"], 1000.0);
    assert_eq!(m["prefix_cache_hits_total"], 400.0);
    assert_eq!(m["prefix_cache_hit_rate_over_point"], 0.4);
    let c = &v["server_vs_client"];
    assert_eq!(c["prompt_tokens"]["server"], 1000.0);
    assert_eq!(c["prompt_tokens"]["client"], 950);
    assert_eq!(c["prompt_tokens"]["server_minus_client_pct"], 5.2632);
    assert_eq!(c["cached_tokens"]["server_minus_client_pct"], 0.0);
    assert!(c.get("generation_tokens").is_none());
    assert_eq!(
        v["raw_names"]["requests_running"],
        "vllm:num_requests_running"
    );
    // Nothing scraped: the URL and why.
    let v = summarize("http://x/metrics", &[], 3, Some("answered 404"), client);
    assert_eq!(v["scrapes"], 0);
    assert!(v.get("metrics").is_none());
}

#[test]
fn the_default_url_is_at_the_endpoints_root() {
    assert_eq!(
        scrape::default_url("http://127.0.0.1:30080/v1"),
        "http://127.0.0.1:30080/metrics"
    );
    assert_eq!(scrape::default_url("http://h:1/v1/"), "http://h:1/metrics");
    assert_eq!(
        scrape::default_url("https://api.example.com"),
        "https://api.example.com/metrics"
    );
}

#[test]
fn declared_empty_families_free_comments_and_a_missing_last_newline_are_read() {
    let text = "# HELP a_total declared, no sample yet\n# TYPE a_total counter\n# HELP b level\n\
                # TYPE b gauge\nb{x=\"1\"} 2\n# a free comment\n\nb{x=\"2\"} 1.5\nc_total 3";
    let s = parse(text, 0.0).unwrap();
    assert_eq!(
        s.raw,
        BTreeMap::from([("b".to_string(), 3.5), ("c_total".to_string(), 3.0)])
    );
    assert!(parse("<html>not metrics</html>", 0.0).is_err());
}

#[test]
fn engine_pods_add_up_scrape_by_scrape() {
    let part = |url: &str, values: &[f64]| scrape::Collected {
        url: url.into(),
        scrapes: values
            .iter()
            .enumerate()
            .map(|(i, v)| Scrape {
                t: i as f64,
                raw: BTreeMap::from([("vllm:num_requests_running".to_string(), *v)]),
            })
            .collect(),
        failed: 0,
        error: None,
    };
    let down = scrape::Collected {
        url: "http://c/metrics".into(),
        failed: 3,
        error: Some("answered 404".into()),
        ..Default::default()
    };
    let (a, b) = (
        part("http://a/metrics", &[1.0, 3.0, 2.0]),
        part("http://b/metrics", &[2.0, 4.0]),
    );
    let c = combine(&[&a, &b, &down]);
    let running: Vec<f64> = c
        .scrapes
        .iter()
        .map(|s| s.raw["vllm:num_requests_running"])
        .collect();
    assert_eq!(
        running,
        [3.0, 7.0],
        "matched by order, as far as every pod that answered has"
    );
    assert_eq!((c.failed, c.error.as_deref()), (3, Some("answered 404")));
    let dir = tempfile::tempdir().unwrap();
    let parts = vec![
        (Some("pod-a".to_string()), a),
        (Some("pod-b".to_string()), b),
    ];
    let v = keep(
        &dir.path().join("x.metrics.jsonl"),
        &parts,
        ClientTotals::default(),
    );
    assert_eq!(v["metrics"]["requests_running"]["peak"], 7.0);
    assert_eq!(v["pods"][0]["pod"], "pod-a");
    assert_eq!(v["pods"][1]["metrics"]["requests_running"]["peak"], 4.0);
    assert_eq!(v["file"], "x.metrics.jsonl");
}
