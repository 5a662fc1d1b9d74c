//! Unit tests of the cache state: the reset through the simulated engine's vLLM-style endpoint
//! (real HTTP), a failed reset reported, and the state and warnings a point records.

use super::*;
use crate::client::test_support::sim_config;
use crate::client::Client;
use crate::record::{Prompt, RequestSpec};
use crate::sim::{spawn_local, SimConfig, SimMode};
use tokio_util::sync::CancellationToken;

fn spec(id: u64, text: &str) -> RequestSpec {
    RequestSpec {
        id,
        user_id: None,
        round: 0,
        due_s: 0.0,
        slot_s: None,
        prompt: Prompt::Text(text.into()),
        max_tokens: 2,
        client_prompt_tokens: 0,
        warmup: false,
        extra: Default::default(),
    }
}

/// The same prompt twice hits the simulated engine's prefix cache; after a reset through
/// `cacheReset: vllm` it does not, and the outcome says what was called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vllm_reset_empties_the_simulated_engines_prefix_cache() {
    let sim = spawn_local(SimConfig {
        mode: SimMode::Engine,
        prefix_caching: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let client = Client::new(sim_config(&sim.base_url())).unwrap();
    let text = "word ".repeat(400);
    let cancel = CancellationToken::new();
    let epoch = tokio::time::Instant::now();
    let first = client.send(&spec(0, &text), epoch, &cancel).await.record;
    let again = client.send(&spec(1, &text), epoch, &cancel).await.record;
    assert_eq!(first.cached_tokens, Some(0));
    assert!(
        again.cached_tokens.unwrap() > 300,
        "{:?}",
        again.cached_tokens
    );

    let r = reset(CacheReset::Vllm, &sim.base_url(), None, None).await;
    assert!(r.ok, "{}", r.detail);
    assert!(r.detail.contains("POST") && r.detail.contains("/reset_prefix_cache → 200"));
    let after = client.send(&spec(2, &text), epoch, &cancel).await.record;
    assert_eq!(after.cached_tokens, Some(0), "the reset emptied the cache");

    // The engine has no SGLang endpoint: the failure is reported with what was called.
    let bad = reset(CacheReset::Sglang, &sim.base_url(), None, None).await;
    assert!(!bad.ok);
    assert!(
        bad.detail.contains("/flush_cache") && bad.detail.contains("404"),
        "{}",
        bad.detail
    );
    sim.shutdown().await.unwrap();
}

fn first(prompt: u64, cached: u64) -> FirstSent {
    FirstSent {
        sent_s: 0.0,
        prompt_tokens: prompt,
        cached_tokens: Some(cached),
    }
}

#[test]
fn the_state_names_how_a_point_started_and_warns_about_carried_over_hits() {
    let ok = ResetOutcome {
        via: CacheReset::Llamacpp,
        ok: true,
        detail: "GET /slots → 200".into(),
    };
    let failed = ResetOutcome {
        ok: false,
        detail: "connection refused".into(),
        ..ok.clone()
    };
    let s = CacheState::new(PromptReuse::PerPoint, None, Some(10), Some(&first(100, 0)));
    assert_eq!(s.start, "salted");
    assert!(s.warnings().is_empty());
    let s = CacheState::new(PromptReuse::Shared, Some(ok.clone()), None, None);
    assert_eq!(s.start, "reset");
    let s = CacheState::new(PromptReuse::PerPoint, Some(ok), None, Some(&first(100, 5)));
    assert_eq!(s.start, "salted+reset");
    assert!(
        s.warnings().is_empty(),
        "a few tokens (BOS, a label) are no carry-over"
    );
    // Meant to start cold, yet the first request found most of its prompt cached.
    let s = CacheState::new(PromptReuse::PerPoint, None, None, Some(&first(1000, 992)));
    let w = s.warnings();
    assert_eq!(w.len(), 1);
    assert!(
        w[0].contains("992 of its 1000") && w[0].contains("earlier point"),
        "{w:?}"
    );
    // A warm start says so in `start` and draws no carry-over warning.
    let s = CacheState::new(
        PromptReuse::Shared,
        Some(failed),
        None,
        Some(&first(1000, 992)),
    );
    assert_eq!(s.start, "warm");
    let w = s.warnings();
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("reset before this point failed") && w[0].contains("refused"));
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["reset"]["via"], "llamacpp");
    assert_eq!(v["prompts"], "shared");
}
