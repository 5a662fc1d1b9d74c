//! `RayServe`: a Ray Serve LLM script under `2-serving-engines/rayserve/`, run as `python3
//! <script> <acceleratorType>` in the foreground as a supervised process group.

use super::{
    check_common, check_selection, typed, Baseline, BaselineKind, BaselineType, CheckEnv, Hosting,
    KeyRule, LaunchContext, RawBaseline, Selection, LOCAL,
};
use crate::config::{Checked, Item, O};
use crate::deploy::Launch;

/// The row of the baseline table.
pub const TYPE: BaselineType = BaselineType {
    name: "RayServe",
    selection: Some(Selection {
        key: "scriptName",
        dir: "2-serving-engines/rayserve",
    }),
    locations: LOCAL,
    hosting: Hosting::LocalProcess,
    token_required: false,
    deploy_estimate_s: 300.0,
    // Plus `_<acceleratorType, lower-cased>` (RayServe::key_suffix).
    key: KeyRule::Selection {
        prefix: "rayserve_",
        ext: ".py",
        underscore: &['-'],
    },
};

baseline_keys! {
    /// `RayServe`'s keys.
    pub struct Raw {
        /// Script under `2-serving-engines/rayserve/`.
        #[serde(rename = "scriptName")]
        pub script_name: O<String>,
        /// H100, A100, V100 or T4.
        #[serde(rename = "acceleratorType")]
        pub accelerator_type: O<String>,
    }
}

impl RawBaseline for Raw {
    fn validate(
        &self,
        ty: &'static BaselineType,
        c: &mut Item<'_, '_>,
        env: &CheckEnv<'_>,
    ) -> Checked<Baseline> {
        let sel = check_selection(c, ty, &self.script_name);
        let accelerator = c
            .req(&self.accelerator_type, "acceleratorType")
            .map(|a| a.value.clone());
        let common = check_common(self, c, ty.token_required, env);
        let kind = RayServe {
            accelerator: accelerator?,
        };
        Ok(typed(self, ty, c, Some(sel?), common?, kind))
    }
}

/// A validated RayServe baseline.
#[derive(Debug, Clone)]
pub struct RayServe {
    /// `acceleratorType`.
    pub accelerator: String,
}

impl BaselineKind for RayServe {
    fn launch(&self, b: &Baseline, ctx: &LaunchContext) -> Result<Launch, String> {
        let script = b.selected_file();
        let args = vec![script.into_os_string(), self.accelerator.clone().into()];
        Ok(ctx.process(b, "python3", args))
    }

    fn key_suffix(&self) -> Option<String> {
        Some(self.accelerator.to_lowercase())
    }
}
