//! `Dynamo`: NVIDIA Dynamo from a config under `2-serving-engines/dynamo/dynamo_configurations/`,
//! run as `bash 2-serving-engines/dynamo/launch.sh <config>` in the foreground as a supervised
//! process group.

use super::{
    check_selected, Baseline, BaselineKind, BaselineType, CheckEnv, Hosting, KeyRule,
    LaunchContext, RawBaseline, Selection, LOCAL,
};
use crate::config::{Checked, Item, O};
use crate::deploy::Launch;

/// The row of the baseline table.
pub const TYPE: BaselineType = BaselineType {
    name: "Dynamo",
    selection: Some(Selection {
        key: "configSelection",
        dir: "2-serving-engines/dynamo/dynamo_configurations",
    }),
    locations: LOCAL,
    hosting: Hosting::LocalProcess,
    token_required: false,
    deploy_estimate_s: 300.0,
    key: KeyRule::Selection {
        prefix: "dynamo_",
        ext: ".yaml",
        underscore: &['/'],
    },
};

/// The launcher every Dynamo config is run with, relative to the folder of run-bench.yaml.
const LAUNCHER: &str = "2-serving-engines/dynamo/launch.sh";

baseline_keys! {
    /// `Dynamo`'s keys.
    pub struct Raw {
        /// Config under `2-serving-engines/dynamo/dynamo_configurations/`.
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
        check_selected(self, ty, &self.config_selection, c, env, Dynamo)
    }
}

/// A validated Dynamo baseline.
#[derive(Debug, Clone, Copy)]
pub struct Dynamo;

impl BaselineKind for Dynamo {
    fn launch(&self, b: &Baseline, ctx: &LaunchContext) -> Result<Launch, String> {
        let config = b.selected_file();
        let launcher = ctx.root.join(LAUNCHER);
        let args = vec![launcher.into_os_string(), config.into_os_string()];
        Ok(ctx.process(b, "bash", args))
    }
}
