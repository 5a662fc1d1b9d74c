//! PrefixRepetition end to end: `lmbench run` against the simulated engine in engine mode, prefix
//! cache on and off. The engine's own cached-token counts must show exactly the reuse the
//! workload is built for: nothing for the first request of each prefix (also at the second
//! rate, whose prefixes are new), the whole prefix for every request that arrives after an
//! earlier request of its prefix has finished, and nothing at all without the cache.

use crate::util::*;
use std::collections::HashMap;

#[test]
fn prefix_repetition_reuses_exactly_the_shared_prefixes() {
    let out = tempfile::tempdir().unwrap();
    let files = run_e2e_spec(
        "prefix-repetition.yaml",
        "e2e-prefix-repetition",
        out.path(),
    );
    assert_eq!(files.len(), 4, "2 baselines x 2 rates: {files:?}");
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let v = read_json(file);
        assert_lmbench_shape(&v);
        assert_eq!(v["workload"]["WORKLOAD"], "prefix_repetition");
        assert_eq!(v["workload"]["NUM_PREFIXES"], 3);
        assert!(
            v["workload"]["QPS"] == 6 || v["workload"]["QPS"] == 12,
            "{name}"
        );
        let r = &v["results"];
        assert_eq!(r["successful_requests"], 12, "{name}: {r}");
        assert_eq!(
            r["total_input_tokens"],
            12 * 80,
            "{name}: prompt lengths are exact"
        );
        let recs = records(file);
        assert_eq!(recs.len(), 12);
        let cache_on = name.starts_with("sim_cache_");
        let mut by_prefix: HashMap<u64, Vec<&lmbench::record::RequestRecord>> = HashMap::new();
        for rec in &recs {
            by_prefix.entry(rec.user_id.unwrap()).or_default().push(rec);
        }
        assert_eq!(by_prefix.len(), 3, "{name}: three prefixes");
        let mut hits = 0;
        for group in by_prefix.values() {
            assert_eq!(group.len(), 4, "{name}: four prompts per prefix");
            for rec in group {
                let cached = rec.cached_tokens.unwrap_or(0);
                let earlier_done = group.iter().any(|o| o.end_s < rec.sent_s);
                let first = group.iter().all(|o| o.sent_s >= rec.sent_s);
                if !cache_on || first {
                    assert_eq!(cached, 0, "{name}: request {} cached {cached}", rec.id);
                } else if earlier_done {
                    assert_eq!(cached, 64, "{name}: request {} cached {cached}", rec.id);
                    hits += 1;
                } else {
                    // Sent while its prefix was still being prefilled: none or all of it.
                    assert!(cached == 0 || cached == 64, "{name}: {cached}");
                }
            }
        }
        if cache_on {
            assert!(
                hits >= 6,
                "{name}: only {hits} requests found their prefix cached"
            );
            assert!(r["cache_hit_ratio"].as_f64().unwrap() > 0.4, "{name}: {r}");
        } else {
            assert_eq!(r["total_cached_tokens"].as_u64().unwrap_or(0), 0, "{name}");
        }
        eprintln!(
            "{name}: cached {} of {} prompt tokens (hit ratio {}), TTFT p50 {} ms",
            r["total_cached_tokens"],
            r["total_input_tokens"],
            r["cache_hit_ratio"],
            r["ttft_ms"]["median"]
        );
    }
}
