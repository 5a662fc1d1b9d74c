//! `Endpoint`: an OpenAI-compatible server that is already running, anywhere (a managed API,
//! a cluster lmbench did not deploy, a colleague's box). Nothing is deployed or torn down; the
//! endpoint must still answer `GET /v1/models` before the runs start. `https://` works, with
//! the system's certificate authorities or those of `caCert`. The API key is read from the
//! environment variable `apiKeyEnv` names: the spec, the result files and the logs only ever
//! hold that variable's name.

use super::{
    check_common, typed, Baseline, BaselineKind, BaselineType, CheckEnv, Hosting, KeyRule,
    LaunchContext, RawBaseline,
};
use crate::config::{Checked, Invalid, Item, Secret, O};
use crate::deploy::{Endpoint as Target, Launch};
use std::path::PathBuf;

/// The row of the baseline table.
pub const TYPE: BaselineType = BaselineType {
    name: "Endpoint",
    selection: None,
    // Every Location: nothing of it runs there.
    locations: &[],
    hosting: Hosting::External,
    token_required: false,
    deploy_estimate_s: 0.0,
    key: KeyRule::Name {
        prefix: "endpoint_",
    },
};

baseline_keys! {
    /// `Endpoint`'s keys.
    pub struct Raw {
        /// The server's root, `http://…` or `https://…` (a trailing `/v1` is accepted).
        #[serde(rename = "baseURL")]
        pub base_url: O<String>,
        /// The environment variable holding the API key (sent as `Authorization: Bearer …`).
        #[serde(rename = "apiKeyEnv")]
        pub api_key_env: O<String>,
        /// A PEM file of certificate authorities to trust besides the system's, relative to
        /// the folder of run-bench.yaml (a private or self-signed certificate).
        #[serde(rename = "caCert")]
        pub ca_cert: O<String>,
        /// The key is `endpoint_<name>` (default: `endpoint_<modelURL>`).
        pub name: O<String>,
    }
}

impl RawBaseline for Raw {
    fn validate(
        &self,
        ty: &'static BaselineType,
        c: &mut Item<'_, '_>,
        env: &CheckEnv<'_>,
    ) -> Checked<Baseline> {
        let base_url = c.req(&self.base_url, "baseURL").and_then(|u| {
            let ok = reqwest::Url::parse(u.value.trim())
                .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.has_host());
            if ok {
                Ok(u.value.trim().trim_end_matches('/').to_string())
            } else {
                c.push(
                    Some(&u.referenced),
                    "baseURL",
                    format!("expected an http:// or https:// URL, got `{}`", u.value),
                );
                Err(Invalid)
            }
        });
        let api_key = match &self.api_key_env {
            None => Ok(None),
            Some(var) => match std::env::var(var.value.trim()) {
                Ok(key) if !key.is_empty() => Ok(Some(Secret::new(key))),
                _ => {
                    c.push(
                        Some(&var.referenced),
                        "apiKeyEnv",
                        format!(
                            "the environment variable {} (which should hold the API key) is not set",
                            var.value
                        ),
                    );
                    Err(Invalid)
                }
            },
        };
        let ca_cert = c.root_file(&self.ca_cert, "caCert").and_then(|p| match p {
            None => Ok(None),
            Some(path) => match crate::client::tls::ca_certificates(&path) {
                Ok(_) => Ok(Some(path)),
                Err(e) => {
                    let at = self.ca_cert.as_ref().map(|v| v.referenced);
                    c.push(at.as_ref(), "caCert", e);
                    Err(Invalid)
                }
            },
        });
        let common = check_common(self, c, ty.token_required, env);
        let kind = Endpoint {
            base_url: base_url?,
            ca_cert: ca_cert?,
            api_key: api_key?,
            name: self.name.as_ref().map(|n| n.value.clone()),
        };
        Ok(typed(self, ty, c, None, common?, kind))
    }
}

/// A validated Endpoint baseline.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `baseURL`.
    pub base_url: String,
    /// `caCert`, resolved.
    pub ca_cert: Option<PathBuf>,
    /// The key from `apiKeyEnv`'s variable.
    pub api_key: Option<Secret>,
    /// `name`.
    pub name: Option<String>,
}

impl BaselineKind for Endpoint {
    fn launch(&self, _b: &Baseline, _ctx: &LaunchContext) -> Result<Launch, String> {
        Ok(Launch::External(Target {
            base_url: self.base_url.clone(),
            ca_cert: self.ca_cert.clone(),
            api_key: self.api_key.clone(),
        }))
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
}
