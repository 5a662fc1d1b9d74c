//! `Direct-ProductionStack`: vLLM's production-stack from rendered Kubernetes manifests under
//! `2-serving-engines/direct-production-stack/kubernetes_configurations/`. Both token
//! placeholders (`<YOUR_HF_TOKEN>`, `<YOUR_HF_TOKEN_BASE64>`) are substituted in memory, never on
//! disk; the objects are server-side applied into the context's namespace, and the router's
//! Service is forwarded to the local port.

use super::helm_production_stack::ROUTER_SERVICE;
use super::{
    check_common, check_selection, typed, Baseline, BaselineKind, BaselineType, CheckEnv, Hosting,
    KeyRule, LaunchContext, RawBaseline, Selection, K8S,
};
use crate::config::{Checked, Item, Secret, O};
use crate::deploy::cluster::{ClusterPlan, Manifests};
use crate::deploy::Launch;
use base64::Engine as _;

/// The row of the baseline table.
pub const TYPE: BaselineType = BaselineType {
    name: "Direct-ProductionStack",
    selection: Some(Selection {
        key: "kubernetesConfigSelection",
        dir: "2-serving-engines/direct-production-stack/kubernetes_configurations",
    }),
    locations: K8S,
    hosting: Hosting::Cluster,
    token_required: true,
    deploy_estimate_s: 600.0,
    key: KeyRule::Selection {
        prefix: "",
        ext: ".yaml",
        underscore: &['/'],
    },
};

baseline_keys! {
    /// `Direct-ProductionStack`'s keys.
    pub struct Raw {
        /// Manifest under `2-serving-engines/direct-production-stack/kubernetes_configurations/`.
        #[serde(rename = "kubernetesConfigSelection")]
        pub kubernetes_config_selection: O<String>,
    }
}

impl RawBaseline for Raw {
    fn validate(
        &self,
        ty: &'static BaselineType,
        c: &mut Item<'_, '_>,
        env: &CheckEnv<'_>,
    ) -> Checked<Baseline> {
        let sel = check_selection(c, ty, &self.kubernetes_config_selection);
        let common = check_common(self, c, ty.token_required, env);
        Ok(typed(
            self,
            &TYPE,
            c,
            Some(sel?),
            common?,
            DirectProductionStack,
        ))
    }
}

/// A validated Direct-ProductionStack baseline.
#[derive(Debug, Clone, Copy)]
pub struct DirectProductionStack;

impl BaselineKind for DirectProductionStack {
    fn launch(&self, b: &Baseline, _ctx: &LaunchContext) -> Result<Launch, String> {
        let (selection, path) = b.selection.clone().unwrap_or_default();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let token = b.hf_token.as_ref().map(Secret::expose).unwrap_or("");
        let b64 = base64::engine::general_purpose::STANDARD.encode(token);
        let text = text
            .replace("<YOUR_HF_TOKEN_BASE64>", &b64)
            .replace("<YOUR_HF_TOKEN>", token);
        Ok(Launch::Cluster(ClusterPlan {
            label: "direct-production-stack",
            namespace: None,
            manifests: Some(Manifests {
                text: Secret::new(text),
                origin: path,
                what: selection,
                keep_kinds: &[],
                note: true,
            }),
            release: None,
            service: ROUTER_SERVICE,
        }))
    }
}
