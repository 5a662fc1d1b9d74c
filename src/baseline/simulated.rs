//! `Simulated`: lmbench's own simulated engine (no GPU), started as `lmbench sim` in a
//! supervised process group. Its keys are `modelURL`, `apiType`, `extraBody`, an optional
//! `name` (the key is `sim_<name or modelURL>`) and any setting of [`crate::sim::SimConfig`]
//! (camelCase), each checked against the engine's own settings.

use super::{
    Baseline, BaselineKind, BaselineType, CheckEnv, Hosting, KeyRule, LaunchContext, RawBaseline,
    LOCAL,
};
use crate::cache::CacheReset;
use crate::config::{Checked, Invalid, Item};
use crate::deploy::Launch;
use crate::record::ApiType;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The row of the baseline table.
pub const TYPE: BaselineType = BaselineType {
    name: "Simulated",
    selection: None,
    locations: LOCAL,
    hosting: Hosting::LocalProcess,
    token_required: false,
    deploy_estimate_s: 2.0,
    key: KeyRule::Name { prefix: "sim_" },
};

/// `Simulated`'s keys: a free map, checked key by key against the engine's settings.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct Raw(pub Map<String, Value>);

impl RawBaseline for Raw {
    fn validate(
        &self,
        ty: &'static BaselineType,
        c: &mut Item<'_, '_>,
        _env: &CheckEnv<'_>,
    ) -> Checked<Baseline> {
        let mut params = self.0.clone();
        let mut ok = true;
        let model = match params.remove("modelURL") {
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                c.push(None, "modelURL", "expected a string");
                None
            }
            None => {
                c.push(None, "modelURL", "missing required key");
                None
            }
        };
        let api = match params.remove("apiType") {
            None => ApiType::Completions,
            Some(v) => match serde_json::from_value::<ApiType>(v.clone()) {
                Ok(a) => a,
                Err(_) => {
                    ok = false;
                    c.push(
                        None,
                        "apiType",
                        format!("expected `completions` or `chat`, got {v}"),
                    );
                    ApiType::Completions
                }
            },
        };
        params.remove("hf_token");
        let extra_body = match params.remove("extraBody") {
            None => Map::new(),
            Some(Value::Object(m)) => m,
            Some(v) => {
                ok = false;
                c.push(
                    None,
                    "extraBody",
                    format!("expected a map of request fields, got {v}"),
                );
                Map::new()
            }
        };
        let cache_reset = match params.remove("cacheReset") {
            None => None,
            Some(v) => match serde_json::from_value::<CacheReset>(v.clone()) {
                Ok(r) => Some(r),
                Err(_) => {
                    ok = false;
                    c.push(
                        None,
                        "cacheReset",
                        format!("expected `vllm`, `sglang` or `llamacpp`, got {v}"),
                    );
                    None
                }
            },
        };
        let metrics_url = match params.remove("metricsURL") {
            None => None,
            Some(Value::String(s)) if s.starts_with("http://") || s.starts_with("https://") => {
                Some(s)
            }
            Some(v) => {
                ok = false;
                c.push(
                    None,
                    "metricsURL",
                    format!("expected an http:// or https:// URL, got {v}"),
                );
                None
            }
        };
        let name = match params.remove("name") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(v) => {
                ok = false;
                c.push(None, "name", format!("expected a string, got {v}"));
                None
            }
        };
        if let Some(m) = &model {
            params.insert("model".into(), Value::String(m.clone()));
        }
        // Check each setting on its own first, so a wrong value is reported under its key.
        let mut each_ok = true;
        for (k, v) in &params {
            let one = Map::from_iter([(k.clone(), v.clone())]);
            if let Err(e) = serde_json::from_value::<crate::sim::SimConfig>(Value::Object(one)) {
                each_ok = false;
                c.push(None, k, format!("invalid simulated-engine setting: {e}"));
            }
        }
        if each_ok {
            match serde_json::from_value::<crate::sim::SimConfig>(Value::Object(params.clone())) {
                Err(e) => {
                    ok = false;
                    c.push_item(format!("invalid simulated-engine setting: {e}"));
                }
                Ok(cfg) => {
                    if let Err(e) = cfg.validate() {
                        ok = false;
                        c.push_item(format!("invalid simulated-engine setting: {e:#}"));
                    }
                }
            }
        }
        let (Some(model_url), true, true) = (model, ok, each_ok) else {
            return Err(Invalid);
        };
        let mut written = self.0.clone();
        written.remove("hf_token");
        Ok(Baseline {
            ty,
            selection: None,
            model_url,
            api_type: api,
            hf_token: None,
            extra_body,
            cache_reset,
            metrics_url,
            config_json: Value::Object(written),
            line: crate::config::check::line_of(&c.at()).0,
            kind: Arc::new(Simulated { name, params }),
        })
    }
}

/// A validated Simulated baseline.
#[derive(Debug, Clone)]
pub struct Simulated {
    /// Optional `name`, used in the key (`sim_<name>`).
    pub name: Option<String>,
    /// The engine settings (`model` filled in from `modelURL`).
    pub params: Map<String, Value>,
}

impl BaselineKind for Simulated {
    fn launch(&self, b: &Baseline, ctx: &LaunchContext) -> Result<Launch, String> {
        let args = vec![
            "sim".into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            ctx.port.to_string().into(),
            "--config-json".into(),
            Value::Object(self.params.clone()).to_string().into(),
        ];
        Ok(ctx.process(b, ctx.exe.clone(), args))
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}
