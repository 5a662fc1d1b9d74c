//! `Flat`: a local engine started by a launch script under `2-serving-engines/flat/`, run with
//! `bash` as a supervised process group (the script should `exec` its server).

use super::{
    check_selected, Baseline, BaselineKind, BaselineType, CheckEnv, Hosting, KeyRule,
    LaunchContext, RawBaseline, Selection, LOCAL,
};
use crate::config::{Checked, Item, O};
use crate::deploy::Launch;

/// The row of the baseline table.
pub const TYPE: BaselineType = BaselineType {
    name: "Flat",
    selection: Some(Selection {
        key: "configSelection",
        dir: "2-serving-engines/flat",
    }),
    locations: LOCAL,
    hosting: Hosting::LocalProcess,
    token_required: false,
    deploy_estimate_s: 60.0,
    key: KeyRule::Selection {
        prefix: "flat_",
        ext: ".sh",
        underscore: &['/', '-'],
    },
};

baseline_keys! {
    /// `Flat`'s keys.
    pub struct Raw {
        /// Script under `2-serving-engines/flat/`.
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
        check_selected(self, ty, &self.config_selection, c, env, Flat)
    }
}

/// A validated Flat baseline: `bash <script>`.
#[derive(Debug, Clone, Copy)]
pub struct Flat;

impl BaselineKind for Flat {
    fn launch(&self, b: &Baseline, ctx: &LaunchContext) -> Result<Launch, String> {
        let script = b.selected_file();
        Ok(ctx.process(b, "bash", vec![script.into_os_string()]))
    }
}
