//! `SGLang`: a launch script under `2-serving-engines/sglang/`, run with `bash` in the
//! foreground as a supervised process group, like Flat (LMBench nohup'ed it and grepped its log
//! for readiness).

use super::{
    check_selected, Baseline, BaselineKind, BaselineType, CheckEnv, Hosting, KeyRule,
    LaunchContext, RawBaseline, Selection, LOCAL,
};
use crate::config::{Checked, Item, O};
use crate::deploy::Launch;

/// The row of the baseline table.
pub const TYPE: BaselineType = BaselineType {
    name: "SGLang",
    selection: Some(Selection {
        key: "scriptName",
        dir: "2-serving-engines/sglang",
    }),
    locations: LOCAL,
    hosting: Hosting::LocalProcess,
    token_required: false,
    deploy_estimate_s: 300.0,
    key: KeyRule::Selection {
        prefix: "sglang_",
        ext: ".sh",
        underscore: &['-'],
    },
};

baseline_keys! {
    /// `SGLang`'s keys.
    pub struct Raw {
        /// Script under `2-serving-engines/sglang/`.
        #[serde(rename = "scriptName")]
        pub script_name: O<String>,
    }
}

impl RawBaseline for Raw {
    fn validate(
        &self,
        ty: &'static BaselineType,
        c: &mut Item<'_, '_>,
        env: &CheckEnv<'_>,
    ) -> Checked<Baseline> {
        check_selected(self, ty, &self.script_name, c, env, SGLang)
    }
}

/// A validated SGLang baseline: `bash <script>`.
#[derive(Debug, Clone, Copy)]
pub struct SGLang;

impl BaselineKind for SGLang {
    fn launch(&self, b: &Baseline, ctx: &LaunchContext) -> Result<Launch, String> {
        let script = b.selected_file();
        Ok(ctx.process(b, "bash", vec![script.into_os_string()]))
    }
}
