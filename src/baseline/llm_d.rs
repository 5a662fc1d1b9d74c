//! `LLM-D`: llm-d on minikube. The namespace `llm-d` and the Secret `llm-d-hf-token` its chart
//! reads the token from are applied first (the namespace is left in place at teardown), then
//! `helm upgrade --install llm-d <chart>` with the values file under
//! `2-serving-engines/llm-d/llmd_configurations/`, and the inference gateway's Service is
//! forwarded to the local port. The chart is `LMBENCH_LLMD_CHART` or `llm-d/llm-d`.

use super::{
    check_selected, Baseline, BaselineKind, BaselineType, CheckEnv, Hosting, KeyRule,
    LaunchContext, RawBaseline, Selection,
};
use crate::config::{Checked, Item, Location, Secret, O};
use crate::deploy::cluster::{Chart, ClusterPlan, HelmRelease, Manifests};
use crate::deploy::Launch;
use base64::Engine as _;
use std::path::PathBuf;

/// The row of the baseline table.
pub const TYPE: BaselineType = BaselineType {
    name: "LLM-D",
    selection: Some(Selection {
        key: "configSelection",
        dir: "2-serving-engines/llm-d/llmd_configurations",
    }),
    locations: &[Location::LocalMinikube],
    hosting: Hosting::Cluster,
    token_required: true,
    deploy_estimate_s: 600.0,
    key: KeyRule::Selection {
        prefix: "llmd_",
        ext: ".yaml",
        underscore: &['/'],
    },
};

/// llm-d's gateway Service and port.
pub const GATEWAY_SERVICE: (&str, u16) = ("llm-d-inference-gateway-istio", 80);
/// The namespace llm-d is installed into.
pub const NAMESPACE: &str = "llm-d";

/// The llm-d chart.
pub const CHART: Chart = Chart {
    env: "LMBENCH_LLMD_CHART",
    default: "llm-d/llm-d",
    repo: ("llm-d", "https://llm-d.ai/llm-d-deployer"),
};

baseline_keys! {
    /// `LLM-D`'s keys.
    pub struct Raw {
        /// Values file under `2-serving-engines/llm-d/llmd_configurations/`.
        #[serde(rename = "configSelection")]
        pub config_selection: O<String>,
    }
}

impl RawBaseline for Raw {
    fn validate(
        &self,
        ty: &'static BaselineType,
        c: &mut Item<'_, '_>,
        env: &CheckEnv<'_>,
    ) -> Checked<Baseline> {
        check_selected(self, ty, &self.config_selection, c, env, LlmD)
    }
}

/// A validated LLM-D baseline.
#[derive(Debug, Clone, Copy)]
pub struct LlmD;

impl BaselineKind for LlmD {
    fn launch(&self, b: &Baseline, _ctx: &LaunchContext) -> Result<Launch, String> {
        let (selection, path) = b.selection.clone().unwrap_or_default();
        let token = b.hf_token.as_ref().map(Secret::expose).unwrap_or("");
        Ok(Launch::Cluster(ClusterPlan {
            label: "llm-d",
            namespace: Some(NAMESPACE),
            manifests: Some(Manifests {
                text: Secret::new(prelude(token)),
                origin: PathBuf::from("<llm-d namespace and token secret>"),
                what: "llm-d namespace and token secret".into(),
                keep_kinds: &["Namespace"],
                note: false,
            }),
            release: Some(HelmRelease {
                name: "llm-d",
                chart: CHART,
                values: path,
                what: selection,
                substitute_token: false,
            }),
            service: GATEWAY_SERVICE,
        }))
    }
}

/// llm-d's namespace and the Secret its chart reads the Hugging Face token from.
fn prelude(token: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(token);
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: llm-d-hf-token\n  namespace: {NAMESPACE}\n\
         type: Opaque\ndata:\n  HF_TOKEN: {b64}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelude_holds_the_token_only_in_base64() {
        let text = prelude("hf_secret");
        assert!(!text.contains("hf_secret"));
        assert!(text.contains("HF_TOKEN: aGZfc2VjcmV0"));
        assert!(text.contains("kind: Namespace"));
    }
}
