//! `Helm-ProductionStack`: vLLM's production-stack through its Helm chart. The values file under
//! `2-serving-engines/helm-production-stack/helm_configurations/` gets `<YOUR_HF_TOKEN>`
//! substituted into a private temporary copy, `helm upgrade --install vllm <chart>` installs
//! it into the context's namespace, and the router's Service is forwarded to the local port.
//! The chart is `LMBENCH_PS_CHART` or `vllm/vllm-stack` from the production-stack repository.

use super::{
    check_common, check_selection, typed, Baseline, BaselineKind, BaselineType, CheckEnv, Hosting,
    KeyRule, LaunchContext, RawBaseline, Selection, K8S,
};
use crate::config::{Checked, Item, O};
use crate::deploy::cluster::{Chart, ClusterPlan, HelmRelease};
use crate::deploy::Launch;

/// The row of the baseline table.
pub const TYPE: BaselineType = BaselineType {
    name: "Helm-ProductionStack",
    selection: Some(Selection {
        key: "helmConfigSelection",
        dir: "2-serving-engines/helm-production-stack/helm_configurations",
    }),
    locations: K8S,
    hosting: Hosting::Cluster,
    token_required: true,
    deploy_estimate_s: 600.0,
    key: KeyRule::Selection {
        prefix: "helm_",
        ext: ".yaml",
        underscore: &['/'],
    },
};

/// The production-stack router's Service and port, which the endpoint is forwarded from.
pub const ROUTER_SERVICE: (&str, u16) = ("vllm-router-service", 80);

/// The production-stack chart.
pub const CHART: Chart = Chart {
    env: "LMBENCH_PS_CHART",
    default: "vllm/vllm-stack",
    repo: ("vllm", "https://vllm-project.github.io/production-stack"),
};

baseline_keys! {
    /// `Helm-ProductionStack`'s keys.
    pub struct Raw {
        /// Values file under `2-serving-engines/helm-production-stack/helm_configurations/`.
        #[serde(rename = "helmConfigSelection")]
        pub helm_config_selection: O<String>,
    }
}

impl RawBaseline for Raw {
    fn validate(
        &self,
        ty: &'static BaselineType,
        c: &mut Item<'_, '_>,
        env: &CheckEnv<'_>,
    ) -> Checked<Baseline> {
        let sel = check_selection(c, ty, &self.helm_config_selection);
        let common = check_common(self, c, ty.token_required, env);
        Ok(typed(
            self,
            &TYPE,
            c,
            Some(sel?),
            common?,
            HelmProductionStack,
        ))
    }
}

/// A validated Helm-ProductionStack baseline.
#[derive(Debug, Clone, Copy)]
pub struct HelmProductionStack;

impl BaselineKind for HelmProductionStack {
    fn launch(&self, b: &Baseline, _ctx: &LaunchContext) -> Result<Launch, String> {
        let (selection, path) = b.selection.clone().unwrap_or_default();
        Ok(Launch::Cluster(ClusterPlan {
            label: "helm-production-stack",
            namespace: None,
            manifests: None,
            release: Some(HelmRelease {
                name: "vllm",
                chart: CHART,
                values: path,
                what: selection,
                substitute_token: true,
            }),
            service: ROUTER_SERVICE,
        }))
    }
}
