//! Serving baselines: what each baseline type of a spec's `Serving` list is, and how it is
//! brought up.
//!
//! Every baseline type lives in its own file, which holds:
//! - its row of the table, `TYPE` ([`BaselineType`]): its name in spec files, the key and folder
//!   of the file it selects, the Locations that can host it, how it is hosted, how long it takes
//!   to come up, and how LMBench derives its key;
//! - its keys as written (`Raw`, a serde struct implementing [`RawBaseline`]) and their rules;
//! - what it deploys ([`BaselineKind::launch`]: a process, a cluster plan or an external
//!   endpoint).
//!
//! [`TYPES`] is the table of every type, in the order of [`baseline_types!`] below. A new
//! baseline type is one new file plus one line there.

/// Defines a baseline type's `Raw` struct: its own keys plus `modelURL`, `apiType`,
/// `extraBody`, `hf_token` and `cacheReset`, every key an optional located value (so all problems are
/// reported together), unknown keys rejected. It serializes back (absent keys and `hf_token`
/// left out) into the `serving.config` of a result: the baseline as the user wrote it.
macro_rules! baseline_keys {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, serde::Deserialize, serde::Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fm])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $f: $t,)*
            /// The model name sent in every request.
            #[serde(rename = "modelURL", default, skip_serializing_if = "Option::is_none")]
            pub model_url: $crate::config::O<String>,
            /// `completions` (default) or `chat`.
            #[serde(rename = "apiType", default, skip_serializing_if = "Option::is_none")]
            pub api_type: $crate::config::O<$crate::record::ApiType>,
            /// Fields merged into every request body (lmbench addition), e.g. `{ignore_eos: true}`.
            #[serde(rename = "extraBody", default, skip_serializing_if = "Option::is_none")]
            pub extra_body: $crate::config::O<serde_json::Map<String, serde_json::Value>>,
            /// Hugging Face token, normally the placeholder `<YOUR_HF_TOKEN>`. Never serialized.
            #[serde(rename = "hf_token", default, skip_serializing)]
            pub hf_token: $crate::config::O<String>,
            /// Empty the engine's prefix cache before every point, through this interface
            /// (`vllm`, `sglang`, `llamacpp`; lmbench addition).
            #[serde(rename = "cacheReset", default, skip_serializing_if = "Option::is_none")]
            pub cache_reset: $crate::config::O<$crate::cache::CacheReset>,
            /// Where the engine's Prometheus metrics are scraped during every point (lmbench
            /// addition; default `/metrics` at the endpoint's root).
            #[serde(rename = "metricsURL", default, skip_serializing_if = "Option::is_none")]
            pub metrics_url: $crate::config::O<String>,
        }

        impl $crate::baseline::CommonKeys for $name {
            fn model_url(&self) -> &$crate::config::O<String> {
                &self.model_url
            }
            fn api_type(&self) -> &$crate::config::O<$crate::record::ApiType> {
                &self.api_type
            }
            fn extra_body(&self) -> &$crate::config::O<serde_json::Map<String, serde_json::Value>> {
                &self.extra_body
            }
            fn hf_token(&self) -> &$crate::config::O<String> {
                &self.hf_token
            }
            fn cache_reset(&self) -> &$crate::config::O<$crate::cache::CacheReset> {
                &self.cache_reset
            }
            fn metrics_url(&self) -> &$crate::config::O<String> {
                &self.metrics_url
            }
        }
    };
}

pub mod direct_production_stack;
pub mod dynamo;
pub mod endpoint;
pub mod flat;
pub mod helm_production_stack;
pub mod llm_d;
pub mod rayserve;
pub mod sglang;
pub mod simulated;

use crate::config::values::KnownName;
use crate::config::{Checked, Infra, Invalid, Item, Location, Secret, HF_TOKEN_PLACEHOLDER, O, S};
use crate::deploy::Launch;
use crate::record::ApiType;
use serde::de::{self, Deserializer, EnumAccess, VariantAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a baseline is hosted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosting {
    /// A supervised process group on this machine, serving on the local port.
    LocalProcess,
    /// Objects on the infrastructure's Kubernetes cluster, port-forwarded to the local port.
    Cluster,
    /// A server that is already running somewhere; lmbench deploys nothing.
    External,
}

/// Where a type's selected file is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// The key that names the file (`helmConfigSelection`).
    pub key: &'static str,
    /// The folder, relative to the folder of run-bench.yaml.
    pub dir: &'static str,
}

/// How LMBench derives a baseline's key (the first part of its result file names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRule {
    /// `prefix` + the selected file with `ext` dropped and each of `underscore` turned into
    /// `_` (plus the type's suffix, e.g. RayServe's accelerator).
    Selection {
        /// Prepended.
        prefix: &'static str,
        /// Dropped wherever it appears.
        ext: &'static str,
        /// Characters replaced by `_`.
        underscore: &'static [char],
    },
    /// `prefix` + the baseline's `name` (or its `modelURL`), every character that is not ASCII
    /// alphanumeric turned into `_`.
    Name {
        /// Prepended.
        prefix: &'static str,
    },
}

/// One row of the baseline table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BaselineType {
    /// The type's name in spec files (`Helm-ProductionStack`).
    pub name: &'static str,
    /// The file the type selects, if any.
    pub selection: Option<Selection>,
    /// The Locations that can host it; empty for every Location.
    pub locations: &'static [Location],
    /// How it is hosted.
    pub hosting: Hosting,
    /// Whether `hf_token` is required (LMBench's Kubernetes types).
    pub token_required: bool,
    /// Rough seconds to deploy and tear it down, for the plan's estimate.
    pub deploy_estimate_s: f64,
    /// How its key is derived.
    pub key: KeyRule,
}

impl BaselineType {
    /// Whether `location` can host this type.
    pub fn allows(&self, location: Location) -> bool {
        self.locations.is_empty() || self.locations.contains(&location)
    }

    /// The row of the type named `name`.
    pub fn named(name: &str) -> Option<&'static BaselineType> {
        TYPES.iter().copied().find(|t| t.name == name)
    }
}

/// What a validated baseline of one type deploys.
pub trait BaselineKind: Send + Sync + fmt::Debug {
    /// What to bring up.
    fn launch(&self, b: &Baseline, ctx: &LaunchContext) -> Result<Launch, String>;

    /// Appended to a [`KeyRule::Selection`] key (RayServe's `_<accelerator>`).
    fn key_suffix(&self) -> Option<String> {
        None
    }

    /// The `name` a [`KeyRule::Name`] key is made of, if set.
    fn name(&self) -> Option<&str> {
        None
    }
}

/// What a launch needs to know about where it runs.
#[derive(Debug, Clone)]
pub struct LaunchContext {
    /// The folder of run-bench.yaml (a process's working directory).
    pub root: PathBuf,
    /// The local port the baseline serves on.
    pub port: u16,
    /// The baseline's key.
    pub key: String,
    /// lmbench's own executable (the simulated engine, `LMBENCH_BIN`).
    pub exe: PathBuf,
    /// Where a local process's output goes.
    pub log_path: PathBuf,
}

impl LaunchContext {
    /// The environment of a launch script: `LMBENCH_PORT`, `LMBENCH_ROOT`, `LMBENCH_BIN`,
    /// `LMBENCH_BASELINE_KEY`, `LMBENCH_MODEL`, and `HF_TOKEN` when the baseline has one.
    pub fn env(&self, b: &Baseline) -> Vec<(String, String)> {
        let mut env = vec![
            ("LMBENCH_PORT".to_string(), self.port.to_string()),
            ("LMBENCH_ROOT".to_string(), self.root.display().to_string()),
            ("LMBENCH_BIN".to_string(), self.exe.display().to_string()),
            ("LMBENCH_BASELINE_KEY".to_string(), self.key.clone()),
            ("LMBENCH_MODEL".to_string(), b.model_url.clone()),
        ];
        if let Some(t) = &b.hf_token {
            env.push(("HF_TOKEN".to_string(), t.expose().to_string()));
        }
        env
    }

    /// A supervised process group: `program args…` in the root, with [`Self::env`].
    pub fn process(
        &self,
        b: &Baseline,
        program: impl Into<PathBuf>,
        args: Vec<std::ffi::OsString>,
    ) -> Launch {
        crate::deploy::process(
            program,
            args,
            &self.root,
            self.env(b),
            self.log_path.clone(),
        )
    }
}

/// A validated serving baseline.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// Its row of the table.
    pub ty: &'static BaselineType,
    /// The selected file as written, and where it is.
    pub selection: Option<(String, PathBuf)>,
    /// Model name sent in requests.
    pub model_url: String,
    /// Endpoint used for requests.
    pub api_type: ApiType,
    /// The token, with the placeholder already replaced. Never printed.
    pub hf_token: Option<Secret>,
    /// `extraBody`: fields merged into every request body.
    pub extra_body: Map<String, Value>,
    /// `cacheReset`: how to empty the engine's prefix cache before each point, if at all.
    pub cache_reset: Option<crate::cache::CacheReset>,
    /// `metricsURL`: where to scrape the engine's metrics (default: `/metrics` at the
    /// endpoint's root).
    pub metrics_url: Option<String>,
    /// The baseline as written, without `hf_token` (the result files' `serving.config`).
    pub config_json: Value,
    /// The spec line where the baseline starts.
    pub line: Option<u64>,
    /// What the type deploys.
    pub kind: Arc<dyn BaselineKind>,
}

impl Baseline {
    /// The type name as written in spec files.
    pub fn type_name(&self) -> &'static str {
        self.ty.name
    }

    /// LMBench's key for this baseline (before duplicates get a suffix).
    pub fn key(&self) -> String {
        match self.ty.key {
            KeyRule::Selection {
                prefix,
                ext,
                underscore,
            } => {
                let sel = self.selection.as_ref().map_or("", |(s, _)| s.as_str());
                let mut key = format!("{prefix}{}", sel.replace(ext, "").replace(underscore, "_"));
                if let Some(suffix) = self.kind.key_suffix() {
                    key.push('_');
                    key.push_str(&suffix);
                }
                key
            }
            KeyRule::Name { prefix } => {
                let name = self.kind.name().unwrap_or(&self.model_url);
                let clean: String = name
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                format!("{prefix}{clean}")
            }
        }
    }

    /// The selected file, resolved (empty for a type without one).
    pub fn selected_file(&self) -> PathBuf {
        self.selection
            .as_ref()
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }

    /// What to bring up.
    pub fn launch(&self, ctx: &LaunchContext) -> Result<Launch, String> {
        self.kind.launch(self, ctx)
    }
}

/// The keys every typed baseline has, checked: `modelURL`, `apiType`, `extraBody`,
/// `hf_token`, `cacheReset`, `metricsURL`.
#[derive(Debug, Clone)]
pub struct Common {
    /// `modelURL`.
    pub model_url: String,
    /// `apiType`.
    pub api_type: ApiType,
    /// `hf_token`, the placeholder replaced.
    pub hf_token: Option<Secret>,
    /// `extraBody`.
    pub extra_body: Map<String, Value>,
    /// `cacheReset`.
    pub cache_reset: Option<crate::cache::CacheReset>,
    /// `metricsURL`.
    pub metrics_url: Option<String>,
}

/// What checking a baseline needs beyond the item itself.
#[derive(Debug, Clone, Copy)]
pub struct CheckEnv<'a> {
    /// The infrastructure, when it is valid.
    pub infra: Option<&'a Infra>,
    /// The `HF_TOKEN` environment variable.
    pub hf_token: Option<&'a str>,
}

/// A baseline type's keys as written in a spec file.
pub trait RawBaseline: fmt::Debug + Send + Sync {
    /// Check every rule of the type (`ty`, its row of the table), reporting each problem into
    /// `c`; the validated baseline (the Location is checked before this).
    fn validate(
        &self,
        ty: &'static BaselineType,
        c: &mut Item<'_, '_>,
        env: &CheckEnv<'_>,
    ) -> Checked<Baseline>;
}

/// The keys every typed baseline has, as serde fields.
pub trait CommonKeys: serde::Serialize {
    /// `modelURL`.
    fn model_url(&self) -> &O<String>;
    /// `apiType`.
    fn api_type(&self) -> &O<ApiType>;
    /// `extraBody`.
    fn extra_body(&self) -> &O<Map<String, Value>>;
    /// `hf_token`.
    fn hf_token(&self) -> &O<String>;
    /// `cacheReset`.
    fn cache_reset(&self) -> &O<crate::cache::CacheReset>;
    /// `metricsURL`.
    fn metrics_url(&self) -> &O<String>;
}

/// The selected file of a type with a [`Selection`]: required, and it must exist in the
/// type's folder.
pub fn check_selection(
    c: &mut Item<'_, '_>,
    ty: &BaselineType,
    v: &O<String>,
) -> Checked<(String, PathBuf)> {
    let Some(sel) = ty.selection else {
        return Err(Invalid);
    };
    let s = c.req(v, sel.key)?;
    let dir = c.root().join(sel.dir);
    let path = c.file_in(s, sel.key, &dir)?;
    Ok((s.value.clone(), path))
}

/// Check the keys every typed baseline has.
pub fn check_common<R: CommonKeys>(
    raw: &R,
    c: &mut Item<'_, '_>,
    token_required: bool,
    env: &CheckEnv<'_>,
) -> Checked<Common> {
    let model = c.req(raw.model_url(), "modelURL").map(|m| m.value.clone());
    let api = raw.api_type().as_ref().map(|a| a.value).unwrap_or_default();
    let token = hf_token(c, raw.hf_token(), token_required, env.hf_token);
    let extra = raw
        .extra_body()
        .as_ref()
        .map(|e| e.value.clone())
        .unwrap_or_default();
    let metrics = match raw.metrics_url() {
        Some(m) if !(m.value.starts_with("http://") || m.value.starts_with("https://")) => {
            c.push(
                Some(&m.referenced),
                "metricsURL",
                format!("expected an http:// or https:// URL, got `{}`", m.value),
            );
            Err(Invalid)
        }
        m => Ok(m.as_ref().map(|m| m.value.clone())),
    };
    Ok(Common {
        model_url: model?,
        api_type: api,
        hf_token: token?,
        extra_body: extra,
        cache_reset: raw.cache_reset().as_ref().map(|r| r.value),
        metrics_url: metrics?,
    })
}

/// `hf_token`: `<YOUR_HF_TOKEN>` is replaced from the environment, which must then be set.
fn hf_token(
    c: &mut Item<'_, '_>,
    v: &O<String>,
    required: bool,
    env: Option<&str>,
) -> Checked<Option<Secret>> {
    let s = if required {
        c.req(v, "hf_token")?
    } else {
        match v.as_ref() {
            Some(s) => s,
            None => return Ok(None),
        }
    };
    if s.value.trim() == HF_TOKEN_PLACEHOLDER {
        match env.filter(|t| !t.is_empty()) {
            Some(t) => Ok(Some(Secret::new(t))),
            None => {
                c.push(
                    Some(&s.referenced),
                    "hf_token",
                    format!("{HF_TOKEN_PLACEHOLDER} needs the HF_TOKEN environment variable, which is not set"),
                );
                Err(Invalid)
            }
        }
    } else {
        Ok(Some(Secret::new(s.value.clone())))
    }
}

/// The whole validation of a type whose own key is only its selected file (`sel`): the file,
/// the keys every type has, and the type's validated part.
pub fn check_selected<R: CommonKeys>(
    raw: &R,
    ty: &'static BaselineType,
    sel: &O<String>,
    c: &mut Item<'_, '_>,
    env: &CheckEnv<'_>,
    kind: impl BaselineKind + 'static,
) -> Checked<Baseline> {
    let sel = check_selection(c, ty, sel);
    let common = check_common(raw, c, ty.token_required, env);
    Ok(typed(raw, ty, c, Some(sel?), common?, kind))
}

/// A typed baseline, validated: its table row, the keys every type has, the type's own
/// validated part.
pub fn typed<R: CommonKeys>(
    raw: &R,
    ty: &'static BaselineType,
    c: &mut Item<'_, '_>,
    selection: Option<(String, PathBuf)>,
    common: Common,
    kind: impl BaselineKind + 'static,
) -> Baseline {
    Baseline {
        ty,
        selection,
        model_url: common.model_url,
        api_type: common.api_type,
        hf_token: common.hf_token,
        extra_body: common.extra_body,
        cache_reset: common.cache_reset,
        metrics_url: common.metrics_url,
        config_json: serde_json::to_value(raw).unwrap_or(Value::Null),
        line: crate::config::check::line_of(&c.at()).0,
        kind: Arc::new(kind),
    }
}

/// One entry of a spec's `Serving` list: a one-key map `{<Type>: {...}}` read as the type's
/// `Raw`, with the type's row of the table.
#[derive(Debug)]
pub struct BaselineEntry {
    /// The type's row of the table.
    pub ty: &'static BaselineType,
    /// Its keys as written.
    pub raw: Box<dyn RawBaseline>,
}

/// Check one entry of `Serving`: the Location can host its type, then the type's own rules.
pub fn check_entry(
    entry: &S<BaselineEntry>,
    index: usize,
    c: &mut crate::config::Checker<'_>,
    root: &Path,
    env: &CheckEnv<'_>,
) -> Checked<Baseline> {
    let ty = entry.value.ty;
    let mut item = c.item(
        format!("Serving[{index}].{}", ty.name),
        entry.referenced,
        root,
    );
    let mut located = Ok(());
    if let Some(infra) = env.infra {
        if infra.location != Location::NoBench && !ty.allows(infra.location) {
            let names: Vec<&str> = ty.locations.iter().map(|l| l.as_str()).collect();
            item.push_item(format!(
                "{} cannot run on Location {}: it needs {}",
                ty.name,
                infra.location.as_str(),
                names.join(" or ")
            ));
            located = Err(Invalid);
        }
    }
    let b = entry.value.raw.validate(ty, &mut item, env);
    located?;
    b
}

/// Registers the baseline types: one module per line, each holding `TYPE` (its row of the
/// table) and `Raw` ([`RawBaseline`]). Generates [`TYPES`] and the reading of a `Serving`
/// entry, in the order given.
macro_rules! baseline_types {
    ($($module:ident),* $(,)?) => {
        /// The baseline table: every type's row, in registration order.
        pub static TYPES: &[&BaselineType] = &[$(&$module::TYPE),*];

        /// Every type's name in spec files.
        const TYPE_NAMES: &[&str] = &[$($module::TYPE.name),*];

        /// The keys of each type (for documentation checks); Simulated's settings are
        /// `sim::SimConfig`'s.
        pub fn type_keys() -> Vec<(&'static str, Vec<&'static str>)> {
            vec![$(($module::TYPE.name, crate::config::values::field_names::<$module::Raw>())),*]
        }

        impl<'de> Deserialize<'de> for BaselineEntry {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = BaselineEntry;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a one-key map {<baseline type>: {...}}")
                    }
                    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<BaselineEntry, A::Error> {
                        let (name, variant) = data.variant_seed(KnownName { names: TYPE_NAMES, as_variant: true })?;
                        $(if name == $module::TYPE.name {
                            let raw: $module::Raw = variant.newtype_variant()?;
                            return Ok(BaselineEntry { ty: &$module::TYPE, raw: Box::new(raw) });
                        })*
                        Err(de::Error::unknown_variant(name, TYPE_NAMES))
                    }
                }
                d.deserialize_enum("BaselineEntry", TYPE_NAMES, V)
            }
        }
    };
}

baseline_types! {
    helm_production_stack,
    direct_production_stack,
    sglang,
    rayserve,
    dynamo,
    llm_d,
    flat,
    simulated,
    endpoint,
}

/// Locations of the production-stack types.
pub const K8S: &[Location] = &[Location::LocalMinikube, Location::LmcacheGke];
/// Locations of the local process types.
pub const LOCAL: &[Location] = &[Location::LocalFlat];

#[cfg(test)]
mod tests;
