//! End-to-end tests of the simulator over real HTTP (reqwest against [`spawn_local`]).
//!
//! Timing assertions are lower bounds (the sim sleeps at least as long as configured) plus
//! generous upper bounds, because the test host may be busy.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::tokens::VOCAB;
use super::*;

/// An HTTP client for the tests (lmbench's TLS provider installed first, as every client of
/// the process needs).
fn http() -> reqwest::Client {
    crate::client::tls::install_provider();
    reqwest::Client::new()
}

fn fixed(ttft_ms: f64, itl_ms: f64) -> SimConfig {
    SimConfig {
        mode: SimMode::Fixed,
        ttft_ms,
        itl_ms,
        ..SimConfig::default()
    }
}

fn engine(prefill_us: f64, base_us: f64, per_seq_us: f64) -> SimConfig {
    SimConfig {
        mode: SimMode::Engine,
        prefill_us_per_token: prefill_us,
        decode_base_us: base_us,
        decode_us_per_seq: per_seq_us,
        ..SimConfig::default()
    }
}

/// `n` distinct words tagged so different tags give different prompts.
fn words(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{tag}{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn completion(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "model": "sim-model",
        "prompt": prompt,
        "max_tokens": max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
        "ignore_eos": true,
        "temperature": 0.0,
    })
}

/// A streamed response as the client saw it.
#[derive(Debug, Default)]
struct Streamed {
    status: u16,
    /// (time since send, data payload) of every SSE event.
    events: Vec<(Duration, String)>,
    done: bool,
    stalled: bool,
    error: Option<String>,
    /// When the request was sent.
    sent_at: Option<Instant>,
}

impl Streamed {
    fn json(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter_map(|(_, d)| serde_json::from_str(d).ok())
            .collect()
    }

    /// (time, text) of events carrying generated text.
    fn tokens(&self) -> Vec<(Duration, String)> {
        self.events
            .iter()
            .filter_map(|(t, d)| {
                let v: Value = serde_json::from_str(d).ok()?;
                let c = v["choices"].get(0)?;
                let text = c["text"].as_str().or(c["delta"]["content"].as_str())?;
                (!text.is_empty()).then(|| (*t, text.to_string()))
            })
            .collect()
    }

    fn text(&self) -> String {
        self.tokens().into_iter().map(|(_, t)| t).collect()
    }

    fn ttft(&self) -> Duration {
        self.tokens()[0].0
    }

    fn usage(&self) -> Value {
        self.json()
            .into_iter()
            .find(|v| v.get("usage").is_some())
            .map(|v| v["usage"].clone())
            .unwrap_or(Value::Null)
    }

    fn cached(&self) -> u64 {
        self.usage()["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap()
    }

    /// Mean gap between token chunks.
    fn mean_itl(&self) -> Duration {
        let t = self.tokens();
        (t[t.len() - 1].0 - t[0].0) / (t.len() as u32 - 1)
    }
}

async fn stream_idle(url: &str, path: &str, body: &Value, idle: Duration) -> Streamed {
    let client = http();
    let sent = Instant::now();
    let resp = client
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let mut out = Streamed {
        status: resp.status().as_u16(),
        sent_at: Some(sent),
        ..Streamed::default()
    };
    let mut bytes = resp.bytes_stream();
    let mut buf = String::new();
    loop {
        let chunk = match tokio::time::timeout(idle, bytes.next()).await {
            Err(_) => {
                out.stalled = true;
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                out.error = Some(e.to_string());
                break;
            }
            Ok(Some(Ok(c))) => c,
        };
        let at = sent.elapsed();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let data = event.trim_end().strip_prefix("data: ").unwrap().to_string();
            assert!(!out.done, "event after [DONE]: {data}");
            if data == "[DONE]" {
                out.done = true;
            } else {
                out.events.push((at, data));
            }
        }
    }
    out
}

async fn stream(url: &str, path: &str, body: &Value) -> Streamed {
    stream_idle(url, path, body, Duration::from_secs(20)).await
}

async fn post(url: &str, path: &str, body: &Value) -> (u16, Value) {
    let resp = http()
        .post(format!("{url}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str, path: &str) -> (u16, String) {
    let resp = http().get(format!("{url}{path}")).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn metric(url: &str, name: &str) -> u64 {
    let (_, text) = get(url, "/metrics").await;
    let prefix = format!("lmbench_sim:{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

const MS: Duration = Duration::from_millis(1);
const SLACK: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_mode_completions_stream() {
    let sim = spawn_local(fixed(100.0, 20.0)).await.unwrap();
    let url = sim.base_url();
    let r = stream(
        &url,
        "/v1/completions",
        &completion("one two three four five", 6),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.done && r.error.is_none());
    let tokens = r.tokens();
    assert_eq!(tokens.len(), 6);
    for (_, t) in &tokens {
        let w = t.strip_prefix(' ').expect("leading space");
        assert!(VOCAB.contains(&w), "{t:?}");
    }
    let ttft = r.ttft();
    assert!(ttft >= 100 * MS && ttft < 100 * MS + SLACK, "ttft {ttft:?}");
    let last = tokens[5].0;
    assert!(last >= 200 * MS && last < 200 * MS + SLACK, "last {last:?}");

    let chunks = r.json();
    assert_eq!(chunks.len(), 7, "6 tokens + usage");
    for (i, c) in chunks[..6].iter().enumerate() {
        assert_eq!(c["object"], "text_completion");
        assert_eq!(c["model"], "sim-model");
        assert!(c["id"].as_str().unwrap().starts_with("cmpl-"));
        let finish = &c["choices"][0]["finish_reason"];
        if i == 5 {
            assert_eq!(finish, "length");
        } else {
            assert!(finish.is_null());
        }
    }
    assert_eq!(chunks[6]["choices"], json!([]));
    assert_eq!(
        r.usage(),
        json!({"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11,
               "prompt_tokens_details": {"cached_tokens": 0}})
    );

    // Without include_usage there is no usage chunk.
    let mut body = completion("one two", 2);
    body.as_object_mut().unwrap().remove("stream_options");
    let r = stream(&url, "/v1/completions", &body).await;
    assert_eq!(r.json().len(), 2);
    assert!(r.done);
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_mode_reports_cached_tokens_without_changing_timing() {
    let sim = spawn_local(fixed(50.0, 1.0)).await.unwrap();
    let url = sim.base_url();
    let prompt = words("w", 40);
    let a = stream(&url, "/v1/completions", &completion(&prompt, 2)).await;
    let b = stream(&url, "/v1/completions", &completion(&prompt, 2)).await;
    assert_eq!(a.cached(), 0);
    // 40 tokens: two full 16-token blocks.
    assert_eq!(b.cached(), 32);
    assert!(b.ttft() >= 50 * MS);
    assert_eq!(metric(&url, "prefix_cache_hits_total").await, 32);
    assert_eq!(metric(&url, "prefix_cache_queries_total").await, 80);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_format() {
    let sim = spawn_local(fixed(10.0, 5.0)).await.unwrap();
    let body = json!({
        "model": "sim-model",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello there friend"}]},
        ],
        "max_completion_tokens": 4,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let r = stream(&sim.base_url(), "/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200);
    assert!(r.done);
    let chunks = r.json();
    assert_eq!(chunks.len(), 6, "role + 4 tokens + usage");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant"})
    );
    for c in &chunks[..5] {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert!(c["id"].as_str().unwrap().starts_with("chatcmpl-"));
    }
    assert_eq!(r.tokens().len(), 4);
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[5]["choices"], json!([]));
    assert_eq!(r.usage()["prompt_tokens"], 5);
    assert_eq!(r.usage()["completion_tokens"], 4);
}

#[tokio::test]
async fn non_streaming_bodies() {
    let sim = spawn_local(fixed(0.0, 0.0)).await.unwrap();
    let url = sim.base_url();
    let (status, v) = post(
        &url,
        "/v1/completions",
        &json!({"model": "sim-model", "prompt": ["a b c", "ignored"], "max_tokens": 7}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["object"], "text_completion");
    let text = v["choices"][0]["text"].as_str().unwrap();
    assert_eq!(text.split_whitespace().count(), 7);
    assert!(text.starts_with(' '));
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(v["usage"]["total_tokens"], 10);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);

    let (_, v) = post(&url, "/v1/completions", &json!({"prompt": [1, 2, 3, 4]})).await;
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 16, "default max_tokens");

    let (status, v) = post(
        &url,
        "/v1/chat/completions",
        &json!({"model": "sim-model", "messages": [{"role": "user", "content": "hi you"}],
                "max_tokens": 3, "stream": false}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(content.split_whitespace().count(), 3);
    assert_eq!(v["usage"]["prompt_tokens"], 2);
}

#[tokio::test]
async fn errors_and_info_endpoints() {
    let cfg = SimConfig {
        max_model_len: 12,
        ..fixed(0.0, 0.0)
    };
    let sim = spawn_local(cfg).await.unwrap();
    let url = sim.base_url();
    let (status, body) = get(&url, "/v1/models").await;
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "sim-model");
    assert_eq!(models["data"][0]["object"], "model");
    assert_eq!(get(&url, "/health").await.0, 200);

    let (status, v) = post(
        &url,
        "/v1/completions",
        &json!({"model": "other", "prompt": "x"}),
    )
    .await;
    assert_eq!(status, 404);
    assert!(v["error"]["message"].as_str().unwrap().contains("other"));

    let resp = http()
        .post(format!("{url}/v1/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], 400);

    for (path, body) in [
        ("/v1/completions", json!({"max_tokens": 3})),
        ("/v1/completions", json!({"prompt": "   "})),
        ("/v1/completions", json!({"prompt": "a", "max_tokens": 0})),
        ("/v1/completions", json!({"prompt": "a", "max_tokens": -1})),
        (
            "/v1/completions",
            json!({"prompt": "a b c", "max_tokens": 10}),
        ),
        ("/v1/chat/completions", json!({"prompt": "a"})),
        ("/v1/chat/completions", json!({"messages": []})),
    ] {
        let (status, v) = post(&url, path, &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(v["error"]["message"].is_string(), "{body}");
    }
    assert_eq!(metric(&url, "requests_total").await, 9);
    assert_eq!(metric(&url, "request_errors_total").await, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_prefix_cache_lowers_ttft() {
    let prompt = words("p", 1000);
    let cfg = engine(300.0, 1000.0, 100.0);
    let sim = spawn_local(cfg.clone()).await.unwrap();
    let url = sim.base_url();
    let first = stream(&url, "/v1/completions", &completion(&prompt, 2)).await;
    let second = stream(&url, "/v1/completions", &completion(&prompt, 2)).await;
    assert_eq!(first.cached(), 0);
    // 999 tokens may hit (one is always computed): 62 whole blocks.
    assert_eq!(second.cached(), 992);
    assert_eq!(second.usage()["prompt_tokens"], 1000);
    assert!(first.ttft() >= 300 * MS, "first {:?}", first.ttft());
    assert!(
        second.ttft() < first.ttft() - 150 * MS,
        "first {:?} second {:?}",
        first.ttft(),
        second.ttft()
    );
    assert_eq!(metric(&url, "prefix_cache_queries_total").await, 2000);
    assert_eq!(metric(&url, "prefix_cache_hits_total").await, 992);
    assert_eq!(metric(&url, "prefix_cache_tokens").await, 992);
    assert_eq!(metric(&url, "prompt_tokens_total").await, 2000);
    assert_eq!(metric(&url, "generation_tokens_total").await, 4);
    assert_eq!(metric(&url, "requests_finished_total").await, 2);

    let off = spawn_local(SimConfig {
        prefix_caching: false,
        ..cfg
    })
    .await
    .unwrap();
    let url = off.base_url();
    stream(&url, "/v1/completions", &completion(&prompt, 2)).await;
    let again = stream(&url, "/v1/completions", &completion(&prompt, 2)).await;
    assert_eq!(again.cached(), 0);
    assert!(again.ttft() >= 300 * MS, "uncached {:?}", again.ttft());
    assert_eq!(metric(&url, "prefix_cache_hits_total").await, 0);
}

async fn hit_rate(capacity: u64) -> f64 {
    let sim = spawn_local(SimConfig {
        cache_capacity_tokens: capacity,
        ..engine(1.0, 500.0, 10.0)
    })
    .await
    .unwrap();
    let url = sim.base_url();
    let prompts = [words("a", 192), words("b", 192), words("c", 192)];
    for _ in 0..3 {
        for p in &prompts {
            let (status, _) = post(
                &url,
                "/v1/completions",
                &json!({"prompt": p, "max_tokens": 1}),
            )
            .await;
            assert_eq!(status, 200);
        }
    }
    let hits = metric(&url, "prefix_cache_hits_total").await as f64;
    hits / metric(&url, "prefix_cache_queries_total").await as f64
}

#[tokio::test]
async fn too_small_cache_thrashes() {
    // Working set: 3 prompts × 12 blocks; the small cache holds 16 blocks.
    let small = hit_rate(256).await;
    let big = hit_rate(10_000).await;
    assert!(small < 0.1, "small cache hit rate {small}");
    assert!(big > 0.5, "big cache hit rate {big}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_slows_decode() {
    let sim = spawn_local(engine(1.0, 2000.0, 3000.0)).await.unwrap();
    let url = sim.base_url();
    let one = stream(&url, "/v1/completions", &completion("solo prompt", 12)).await;
    let many = futures_util::future::join_all((0..8).map(|i| {
        let url = url.clone();
        async move {
            let body = completion(&words(&format!("c{i}_"), 10), 12);
            stream(&url, "/v1/completions", &body).await
        }
    }))
    .await;
    let solo = one.mean_itl();
    let batched = many.iter().map(Streamed::mean_itl).sum::<Duration>() / 8;
    assert!(solo >= 4 * MS, "solo {solo:?}");
    assert!(batched > solo * 2, "batched {batched:?} vs solo {solo:?}");
    for r in &many {
        assert_eq!(r.tokens().len(), 12);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_forms_beyond_max_batch() {
    let sim = spawn_local(SimConfig {
        max_batch: 2,
        ..engine(1.0, 5000.0, 0.0)
    })
    .await
    .unwrap();
    let url = sim.base_url();
    let watcher = {
        let url = url.clone();
        tokio::spawn(async move {
            let mut most = 0;
            for _ in 0..60 {
                most = most.max(metric(&url, "num_requests_waiting").await);
                tokio::time::sleep(5 * MS).await;
            }
            most
        })
    };
    let batch_start = Instant::now();
    let all = futures_util::future::join_all((0..6).map(|i| {
        let url = url.clone();
        async move {
            let body = completion(&words(&format!("q{i}_"), 8), 20);
            stream(&url, "/v1/completions", &body).await
        }
    }))
    .await;
    let most_waiting = watcher.await.unwrap();
    assert!(most_waiting >= 1, "waiting gauge never rose");
    // The last pair waits for two earlier pairs of 20 steps of 5 ms each. Timed from the
    // batch's start: each request's own send is later by its client's set-up, which a loaded
    // machine stretches.
    let latest = all
        .iter()
        .map(|s| s.sent_at.unwrap() + s.ttft() - batch_start)
        .max()
        .unwrap();
    assert!(latest >= 190 * MS, "latest ttft {latest:?}");
    assert_eq!(metric(&url, "num_requests_running").await, 0);
    assert_eq!(metric(&url, "num_requests_waiting").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_frees_engine_slot() {
    let sim = spawn_local(engine(1.0, 5000.0, 0.0)).await.unwrap();
    let url = sim.base_url();
    let resp = http()
        .post(format!("{url}/v1/completions"))
        .json(&completion("a b", 1000))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    assert_eq!(metric(&url, "num_requests_running").await, 1);
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if metric(&url, "num_requests_running").await == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "sequence still running");
        tokio::time::sleep(10 * MS).await;
    }
    assert!(metric(&url, "generation_tokens_total").await < 1000);
}

#[tokio::test]
async fn injected_failures_are_seeded() {
    let run = || async {
        let sim = spawn_local(SimConfig {
            fail_probability: 0.5,
            seed: 9,
            ..fixed(0.0, 0.0)
        })
        .await
        .unwrap();
        let mut statuses = Vec::new();
        for _ in 0..20 {
            let (status, v) = post(
                &sim.base_url(),
                "/v1/completions",
                &json!({"prompt": "x", "max_tokens": 1}),
            )
            .await;
            if status == 500 {
                assert!(v["error"]["message"].is_string());
            }
            statuses.push(status);
        }
        statuses
    };
    let a = run().await;
    assert_eq!(a, run().await);
    assert!(a.contains(&200) && a.contains(&500), "{a:?}");

    let sim = spawn_local(SimConfig {
        fail_probability: 1.0,
        ..fixed(0.0, 0.0)
    })
    .await
    .unwrap();
    let r = stream(&sim.base_url(), "/v1/completions", &completion("x", 3)).await;
    assert_eq!(r.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_keeps_connection_open_until_shutdown() {
    let sim = spawn_local(SimConfig {
        stall_after_tokens: Some(2),
        ..fixed(0.0, 5.0)
    })
    .await
    .unwrap();
    let url = sim.base_url();
    let r = stream_idle(
        &url,
        "/v1/completions",
        &completion("x", 10),
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(r.tokens().len(), 2);
    assert!(r.stalled && !r.done && r.error.is_none());

    // A stalled non-streamed request gets no answer; shutdown still completes promptly.
    let pending = tokio::spawn(async move {
        post(
            &url,
            "/v1/completions",
            &json!({"prompt": "x", "max_tokens": 5}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished());
    tokio::time::timeout(Duration::from_secs(3), sim.shutdown())
        .await
        .expect("shutdown hung")
        .unwrap();
    let _ = pending.await;
}

#[tokio::test]
async fn malformed_chunk_then_carry_on() {
    let sim = spawn_local(SimConfig {
        malformed_after_tokens: Some(1),
        ..fixed(0.0, 1.0)
    })
    .await
    .unwrap();
    let r = stream(&sim.base_url(), "/v1/completions", &completion("x", 3)).await;
    assert_eq!(r.tokens().len(), 3);
    assert!(r.done);
    let bad: Vec<_> = r
        .events
        .iter()
        .enumerate()
        .filter(|(_, (_, d))| serde_json::from_str::<Value>(d).is_err())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(bad, vec![1], "garbage after the first token");

    let resp = http()
        .post(format!("{}/v1/completions", sim.base_url()))
        .json(&json!({"prompt": "x", "max_tokens": 3}))
        .send()
        .await
        .unwrap();
    assert!(resp.json::<Value>().await.is_err());
}

#[tokio::test]
async fn reset_drops_connection_mid_stream() {
    let sim = spawn_local(SimConfig {
        reset_after_tokens: Some(2),
        ..fixed(0.0, 1.0)
    })
    .await
    .unwrap();
    let r = stream(
        &sim.base_url(),
        "/v1/chat/completions",
        &json!({
            "messages": [{"role": "user", "content": "x"}], "max_tokens": 10, "stream": true
        }),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.tokens().len(), 2);
    assert!(r.error.is_some() && !r.done, "{r:?}");

    let resp = http()
        .post(format!("{}/v1/completions", sim.base_url()))
        .json(&json!({"prompt": "x", "max_tokens": 3}))
        .send()
        .await;
    let body = match resp {
        Ok(r) => r.bytes().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(body.is_err(), "non-streamed reset must fail");

    // With streamFaultProbability 0 the fault never applies.
    let calm = spawn_local(SimConfig {
        reset_after_tokens: Some(2),
        stream_fault_probability: 0.0,
        ..fixed(0.0, 1.0)
    })
    .await
    .unwrap();
    let r = stream(&calm.base_url(), "/v1/completions", &completion("x", 4)).await;
    assert!(r.done && r.tokens().len() == 4);
}

#[tokio::test]
async fn ready_delay_answers_503_first() {
    let sim = spawn_local(SimConfig {
        ready_delay_ms: 400,
        ..fixed(0.0, 0.0)
    })
    .await
    .unwrap();
    let url = sim.base_url();
    assert_eq!(get(&url, "/health").await.0, 503);
    assert_eq!(get(&url, "/v1/models").await.0, 503);
    assert_eq!(get(&url, "/metrics").await.0, 200);
    let (status, _) = post(&url, "/v1/completions", &json!({"prompt": "x"})).await;
    assert_eq!(status, 503);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(get(&url, "/health").await.0, 200);
    assert_eq!(get(&url, "/v1/models").await.0, 200);
}

#[tokio::test]
async fn output_is_deterministic_for_a_seed() {
    let texts = |seed: u64, eos: f64| async move {
        let sim = spawn_local(SimConfig {
            seed,
            eos_probability: eos,
            ..engine(1.0, 200.0, 1.0)
        })
        .await
        .unwrap();
        let mut out = Vec::new();
        for p in ["alpha beta", "gamma delta epsilon", "alpha beta"] {
            let body = json!({"prompt": p, "max_tokens": 30, "stream": true,
                              "stream_options": {"include_usage": true}});
            let r = stream(&sim.base_url(), "/v1/completions", &body).await;
            assert_eq!(
                r.tokens().len() as u64,
                r.usage()["completion_tokens"].as_u64().unwrap()
            );
            out.push(r.text());
        }
        out
    };
    let a = texts(42, 0.0).await;
    assert_eq!(a, texts(42, 0.0).await);
    assert_eq!(a[0], a[2], "same prompt, same text");
    assert_eq!(a[0].split_whitespace().count(), 30);
    assert_ne!(a, texts(43, 0.0).await);
    // With an EOS chance, lengths vary but stay reproducible.
    let e = texts(42, 0.2).await;
    assert_eq!(e, texts(42, 0.2).await);
    assert!(e.iter().any(|t| t.split_whitespace().count() < 30), "{e:?}");
}

#[test]
fn config_serde_and_validation() {
    let cfg: SimConfig = serde_json::from_value(json!({
        "mode": "fixed", "ttftMs": 5, "stallAfterTokens": 3, "cacheCapacityTokens": 0
    }))
    .unwrap();
    assert_eq!(cfg.mode, SimMode::Fixed);
    assert_eq!(cfg.ttft_ms, 5.0);
    assert_eq!(cfg.stall_after_tokens, Some(3));
    assert_eq!(cfg.model, "sim-model");
    cfg.validate().unwrap();
    let back: SimConfig = serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
    assert_eq!(back, cfg);
    assert!(serde_json::from_value::<SimConfig>(json!({"ttftMS": 5})).is_err());
    SimConfig::default().validate().unwrap();
    for bad in [
        SimConfig {
            fail_probability: 1.5,
            ..SimConfig::default()
        },
        SimConfig {
            max_batch: 0,
            ..SimConfig::default()
        },
        SimConfig {
            max_batch: 8,
            max_batched_tokens: 4,
            ..SimConfig::default()
        },
        SimConfig {
            itl_ms: f64::NAN,
            ..SimConfig::default()
        },
        SimConfig {
            block_size: 0,
            ..SimConfig::default()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}
