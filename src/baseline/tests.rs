//! Unit tests of the baseline table: LMBench's keys, and every type's row.

use super::*;
use std::path::PathBuf;

/// A baseline of `ty` selecting `selection`, with a kind that adds `suffix` to its key.
fn baseline(ty: &'static BaselineType, selection: &str, kind: Arc<dyn BaselineKind>) -> Baseline {
    Baseline {
        ty,
        selection: Some((selection.into(), PathBuf::new())),
        model_url: "m".into(),
        api_type: ApiType::Completions,
        hf_token: None,
        extra_body: Map::new(),
        cache_reset: None,
        metrics_url: None,
        config_json: Value::Null,
        line: None,
        kind,
    }
}

#[test]
fn baseline_keys_match_lmbench() {
    let cases: [(&'static BaselineType, &str, Arc<dyn BaselineKind>, &str); 8] = [
        (
            &sglang::TYPE,
            "comparison-baseline.sh",
            Arc::new(sglang::SGLang),
            "sglang_comparison_baseline",
        ),
        (
            &rayserve::TYPE,
            "comparison-baseline.py",
            Arc::new(rayserve::RayServe {
                accelerator: "H100".into(),
            }),
            "rayserve_comparison_baseline_h100",
        ),
        (
            &helm_production_stack::TYPE,
            "routing/4-roundrobin.yaml",
            Arc::new(helm_production_stack::HelmProductionStack),
            "helm_routing_4-roundrobin",
        ),
        (
            &helm_production_stack::TYPE,
            "basic/llama-3.1-8b-basic.yaml",
            Arc::new(helm_production_stack::HelmProductionStack),
            "helm_basic_llama-3.1-8b-basic",
        ),
        (
            &direct_production_stack::TYPE,
            "routing/lmcache_roundrobin.yaml",
            Arc::new(direct_production_stack::DirectProductionStack),
            "routing_lmcache_roundrobin",
        ),
        (
            &llm_d::TYPE,
            "debug-deployment.yaml",
            Arc::new(llm_d::LlmD),
            "llmd_debug-deployment",
        ),
        (
            &dynamo::TYPE,
            "comparison-baseline.yaml",
            Arc::new(dynamo::Dynamo),
            "dynamo_comparison-baseline",
        ),
        (
            &flat::TYPE,
            "basic-vllm/run-llama8B.sh",
            Arc::new(flat::Flat),
            "flat_basic_vllm_run_llama8B",
        ),
    ];
    for (ty, sel, kind, want) in cases {
        assert_eq!(baseline(ty, sel, kind).key(), want);
    }
    let mut sim = baseline(
        &simulated::TYPE,
        "",
        Arc::new(simulated::Simulated {
            name: None,
            params: Map::new(),
        }),
    );
    sim.model_url = "org/model-1".into();
    assert_eq!(sim.key(), "sim_org_model_1");
}

#[test]
fn the_table_has_one_row_per_type_and_says_where_each_runs() {
    let mut names: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), TYPES.len(), "a type registered twice");
    for t in TYPES {
        assert_eq!(BaselineType::named(t.name), Some(*t));
        // Local processes and clusters bind the local port; their Locations are fixed.
        if t.hosting != Hosting::External {
            assert!(!t.locations.is_empty(), "{}", t.name);
        }
        if t.selection.is_some() {
            assert!(matches!(t.key, KeyRule::Selection { .. }), "{}", t.name);
        }
    }
    let cluster: Vec<&str> = TYPES
        .iter()
        .filter(|t| t.hosting == Hosting::Cluster)
        .map(|t| t.name)
        .collect();
    assert_eq!(
        cluster,
        ["Helm-ProductionStack", "Direct-ProductionStack", "LLM-D"]
    );
    assert!(flat::TYPE.allows(Location::LocalFlat));
    assert!(!flat::TYPE.allows(Location::LocalMinikube));
    assert!(llm_d::TYPE.allows(Location::LocalMinikube));
    assert!(!llm_d::TYPE.allows(Location::LmcacheGke));
}

#[test]
fn every_registered_type_lists_its_keys() {
    let keys = type_keys();
    assert_eq!(keys.len(), TYPES.len());
    let helm = &keys
        .iter()
        .find(|(n, _)| *n == "Helm-ProductionStack")
        .unwrap()
        .1;
    for k in [
        "helmConfigSelection",
        "modelURL",
        "apiType",
        "extraBody",
        "hf_token",
    ] {
        assert!(helm.contains(&k), "{k}: {helm:?}");
    }
}

#[test]
fn an_endpoint_runs_anywhere_and_is_keyed_by_its_name() {
    assert_eq!(endpoint::TYPE.hosting, Hosting::External);
    for l in [
        Location::LocalFlat,
        Location::LocalMinikube,
        Location::LmcacheGke,
    ] {
        assert!(endpoint::TYPE.allows(l));
    }
    let kind = |name: Option<&str>| {
        Arc::new(endpoint::Endpoint {
            base_url: "https://h".into(),
            ca_cert: None,
            api_key: Some(Secret::new("sk-key")),
            name: name.map(str::to_string),
        })
    };
    let mut b = baseline(&endpoint::TYPE, "", kind(Some("remote-vllm")));
    b.selection = None;
    assert_eq!(b.key(), "endpoint_remote_vllm");
    b.kind = kind(None);
    b.model_url = "meta-llama/Llama-3.1-8B".into();
    assert_eq!(b.key(), "endpoint_meta_llama_Llama_3_1_8B");
    // The key never shows in debug output.
    assert!(!format!("{b:?}").contains("sk-key"));
}
