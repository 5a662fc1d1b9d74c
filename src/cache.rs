//! The engine's prefix cache between sweep points: every point starts from a declared,
//! recorded cache state.
//!
//! Two things decide what a point can find in the cache from before it:
//! - its prompts ([`PromptReuse`], from the workload item): drawn or salted per point (the
//!   default for every workload type; within a point shared prefixes stay shared), or the same
//!   at every point (`SALT_PER_POINT: false` on VLLMBenchmark and TraceReplayer, where carrying
//!   the cache over is what a user wants to measure);
//! - an optional reset before the point ([`CacheReset`], a baseline's `cacheReset` key),
//!   through the engine's own interface: vLLM's `POST /reset_prefix_cache`, SGLang's
//!   `POST /flush_cache`, llama.cpp's slot erase (`GET /slots`, then
//!   `POST /slots/{id}?action=erase` for each slot). The simulated engine answers vLLM's.
//!   A failed reset is a warning in the result, never a silent pass.
//!
//! [`CacheState`] is what the result records under `cache_state`: how the point started
//! (`salted`, `reset`, `salted+reset` or `warm`), what was done, and the cached tokens the
//! server reported during the point. A point meant to start cold whose first request (the
//! earliest sent, warmup included) already finds more than [`COLD_HIT_LIMIT`] of its prompt in
//! the cache has hits from an earlier point, and gets a warning.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::measure::FirstSent;

/// An engine's interface for emptying its prefix cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheReset {
    /// vLLM's `POST /reset_prefix_cache` (also the simulated engine's).
    Vllm,
    /// SGLang's `POST /flush_cache`.
    Sglang,
    /// llama.cpp's `llama-server`: `GET /slots`, then `POST /slots/{id}?action=erase` for each
    /// slot. llama-server answers slot actions only when started with `--slot-save-path`
    /// (otherwise 501, reported as a failed reset), and the erase leaves its host-memory prompt
    /// cache (`--cache-ram`) alone: run it with `--cache-ram 0` for a complete reset.
    Llamacpp,
}

impl CacheReset {
    /// The value as written in spec files.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheReset::Vllm => "vllm",
            CacheReset::Sglang => "sglang",
            CacheReset::Llamacpp => "llamacpp",
        }
    }
}

/// Whether a point's prompts can repeat an earlier point's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptReuse {
    /// Drawn or salted per point: nothing of an earlier point's prompts is repeated, beyond
    /// what the workload shares on purpose (LMCacheSynthetic's system prompt, which its warmup
    /// caches in every point anyway).
    PerPoint,
    /// The same prompts at every point (salting turned off): the cache carries over.
    Shared,
}

/// How a reset went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResetOutcome {
    /// The interface used.
    pub via: CacheReset,
    /// True when the engine accepted every call.
    pub ok: bool,
    /// What was called and what came back.
    pub detail: String,
}

/// The `cache_state` of a result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheState {
    /// How the point started: `salted` (prompts of its own), `reset` (cache emptied before
    /// it), `salted+reset`, or `warm` (neither: earlier points' prompts may be cached).
    pub start: &'static str,
    /// The point's prompts.
    pub prompts: PromptReuse,
    /// The reset before the point, if the baseline asks for one.
    pub reset: Option<ResetOutcome>,
    /// Σ cached tokens the server reported over the point's measured requests (`null` when it
    /// reported none).
    pub cached_tokens: Option<u64>,
    /// Cached tokens the server reported for the point's first request (earliest sent, warmup
    /// included): what the point found from before it.
    pub first_request_cached_tokens: Option<u64>,
    /// Prompt tokens of that first request.
    pub first_request_prompt_tokens: Option<u64>,
}

/// A first request finding more than this share of its prompt cached, in a point meant to
/// start cold, draws a warning. Above zero because llama.cpp reports the common prefix with
/// whatever its slot last held (a BOS token and a role label match any prompt).
pub const COLD_HIT_LIMIT: f64 = 0.10;

impl CacheState {
    /// The state of a point from its prompts, the reset before it and what the server said.
    pub fn new(
        prompts: PromptReuse,
        reset: Option<ResetOutcome>,
        cached_tokens: Option<u64>,
        first: Option<&FirstSent>,
    ) -> CacheState {
        let reset_ok = reset.as_ref().is_some_and(|r| r.ok);
        let start = match (prompts, reset_ok) {
            (PromptReuse::PerPoint, true) => "salted+reset",
            (PromptReuse::PerPoint, false) => "salted",
            (PromptReuse::Shared, true) => "reset",
            (PromptReuse::Shared, false) => "warm",
        };
        CacheState {
            start,
            prompts,
            reset,
            cached_tokens,
            first_request_cached_tokens: first.and_then(|f| f.cached_tokens),
            first_request_prompt_tokens: first.map(|f| f.prompt_tokens),
        }
    }

    /// Warnings for the result: a failed reset, and hits from an earlier point in a point meant
    /// to start cold.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(r) = self.reset.as_ref().filter(|r| !r.ok) {
            out.push(format!(
                "the cache reset before this point failed ({}: {}); the point may start with an \
                 earlier point's prompts cached",
                r.via.as_str(),
                r.detail
            ));
        }
        if self.start != "warm" {
            if let (Some(cached), Some(prompt)) = (
                self.first_request_cached_tokens,
                self.first_request_prompt_tokens,
            ) {
                if prompt > 0 && cached as f64 / prompt as f64 > COLD_HIT_LIMIT {
                    out.push(format!(
                        "this point was meant to start cold ({}) but its first request found \
                         {cached} of its {prompt} prompt tokens cached: hits from an earlier point",
                        self.start
                    ));
                }
            }
        }
        out
    }
}

/// How long one reset call may take.
const RESET_TIMEOUT: Duration = Duration::from_secs(30);

/// Empties the prefix cache of the engine behind `base_url` through `via`. Never fails: a
/// problem is reported in the outcome.
pub async fn reset(
    via: CacheReset,
    base_url: &str,
    api_key: Option<&str>,
    ca_cert: Option<&Path>,
) -> ResetOutcome {
    let (ok, detail) =
        match reset_calls(via, base_url.trim_end_matches('/'), api_key, ca_cert).await {
            Ok(d) => (true, d),
            Err(e) => (false, e),
        };
    ResetOutcome { via, ok, detail }
}

async fn reset_calls(
    via: CacheReset,
    base: &str,
    api_key: Option<&str>,
    ca_cert: Option<&Path>,
) -> Result<String, String> {
    let http = crate::client::tls::builder(ca_cert)?
        .timeout(RESET_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let auth = |r: reqwest::RequestBuilder| match api_key {
        Some(k) => r.bearer_auth(k),
        None => r,
    };
    let call = |r: reqwest::RequestBuilder, what: String| async move {
        let resp = auth(r)
            .send()
            .await
            .map_err(|e| format!("{what}: {}", crate::deploy::readiness::error_chain(&e)))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() {
            Ok((format!("{what} → {}", status.as_u16()), body))
        } else {
            let body: String = body.chars().take(200).collect();
            Err(format!("{what} → {status}: {body}"))
        }
    };
    match via {
        CacheReset::Vllm => {
            let url = format!("{base}/reset_prefix_cache");
            call(http.post(&url), format!("POST {url}"))
                .await
                .map(|(d, _)| d)
        }
        CacheReset::Sglang => {
            let url = format!("{base}/flush_cache");
            call(http.post(&url), format!("POST {url}"))
                .await
                .map(|(d, _)| d)
        }
        CacheReset::Llamacpp => {
            let url = format!("{base}/slots");
            let (listed, body) = call(http.get(&url), format!("GET {url}")).await?;
            let slots: Vec<serde_json::Value> = serde_json::from_str(&body)
                .map_err(|e| format!("{listed}: not a list of slots ({e})"))?;
            let mut done = vec![listed];
            for s in &slots {
                let Some(id) = s.get("id").and_then(serde_json::Value::as_u64) else {
                    return Err(format!("GET {url}: a slot without an id: {s}"));
                };
                let erase = format!("{base}/slots/{id}?action=erase");
                done.push(call(http.post(&erase), format!("POST {erase}")).await?.0);
            }
            Ok(done.join("; "))
        }
    }
}

#[cfg(test)]
mod tests;
