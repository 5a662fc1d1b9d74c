//! Loading and validation: every rule is checked in every file, and all problems are returned
//! together. Nothing here touches the network or deploys anything.

use super::model::{self, BaselineEntry, RunBenchFile, SpecFile, O, S};
use super::values::{Num, OneOrMany, Secret};
use super::*;
use serde_saphyr::Location as YLoc;

/// Parse YAML with lmbench's options: non-finite numbers reach the value (validation decides
/// where `.inf` is allowed, e.g. VLLMBenchmark's REQUEST_RATES).
fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_saphyr::Error> {
    let mut opts = serde_saphyr::Options::default();
    opts.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    serde_saphyr::from_str_with_options(text, opts)
}

/// Values written under `hf_token` keys in `source`, on the key's line or on the more indented
/// lines that continue it, so they can be hidden from messages that quote the source.
fn token_literals(source: &str) -> Vec<String> {
    let lines: Vec<&str> = source.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(pos) = l.find("hf_token") else {
            continue;
        };
        let Some(colon) = l[pos..].find(':') else {
            continue;
        };
        let first = l[pos + colon + 1..].trim().trim_matches(['"', '\'', ' ']);
        let is_block = first.is_empty() || first.starts_with('|') || first.starts_with('>');
        if !is_block {
            out.push(first.to_string());
            continue;
        }
        let base = indent(l);
        for next in &lines[i + 1..] {
            if next.trim().is_empty() {
                continue;
            }
            if indent(next) <= base {
                break;
            }
            out.push(next.trim().trim_matches(['"', '\'']).to_string());
        }
    }
    out.retain(|t| t.len() >= 4 && t != HF_TOKEN_PLACEHOLDER);
    out
}

/// Collects issues for one file.
struct Ctx<'a> {
    file: PathBuf,
    issues: &'a mut Vec<ConfigIssue>,
}

fn line_of(loc: &YLoc) -> (Option<u64>, Option<u64>) {
    if loc.line() == 0 {
        (None, None)
    } else {
        (Some(loc.line()), Some(loc.column()))
    }
}

/// Hide anything that looks like a token in text that may quote the source (error snippets).
pub(crate) fn redact(text: &str, hf_token: Option<&str>) -> String {
    let mut out: String = text
        .lines()
        .map(|l| {
            if let Some(pos) = l.find("hf_token") {
                let after = &l[pos..];
                match after.find(':') {
                    Some(c) => format!("{}: ***", &l[..pos + c]),
                    None => l.to_string(),
                }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    if let Some(t) = hf_token.filter(|t| t.len() >= 4) {
        out = out.replace(t, "***");
    }
    out
}

impl Ctx<'_> {
    fn push(&mut self, at: Option<&YLoc>, key: &str, message: impl Into<String>) {
        let (line, column) = at.map(line_of).unwrap_or((None, None));
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn serde_error(&mut self, e: &serde_saphyr::Error, hf_token: Option<&str>, source: &str) {
        let (line, column) = e.location().map(|l| line_of(&l)).unwrap_or((None, None));
        let mut message = redact(&e.to_string(), hf_token);
        for t in token_literals(source) {
            message = message.replace(&t, "***");
        }
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            line,
            column,
            key: String::new(),
            message,
        });
    }

    /// A required key: reports it missing (at the enclosing item's location).
    fn req<'v, T>(&mut self, v: &'v O<T>, key: &str, at: &YLoc) -> Option<&'v S<T>> {
        if v.is_none() {
            self.push(Some(at), key, "missing required key");
        }
        v.as_ref()
    }

    /// An integer with a minimum.
    fn int(&mut self, v: &O<i64>, key: &str, min: i64, required: bool, at: &YLoc) -> Option<i64> {
        let s = if required {
            self.req(v, key, at)?
        } else {
            v.as_ref()?
        };
        if s.value < min {
            let what = match min {
                0 => "a non-negative integer".to_string(),
                1 => "a positive integer".to_string(),
                m => format!("an integer >= {m}"),
            };
            self.push(
                Some(&s.referenced),
                key,
                format!("expected {what}, got {}", s.value),
            );
            return None;
        }
        Some(s.value)
    }

    /// A list of positive finite numbers (QPS, rates, intervals).
    fn positive_list(
        &mut self,
        v: &O<OneOrMany<Num>>,
        key: &str,
        required: bool,
        allow_inf: bool,
        at: &YLoc,
    ) -> Option<Vec<Num>> {
        let s = if required {
            self.req(v, key, at)?
        } else {
            v.as_ref()?
        };
        if s.value.0.is_empty() {
            self.push(
                Some(&s.referenced),
                key,
                "expected a non-empty list of positive numbers",
            );
            return None;
        }
        let mut ok = true;
        for (i, n) in s.value.0.iter().enumerate() {
            let bad = n.value.is_nan() || n.value <= 0.0 || (!allow_inf && n.value.is_infinite());
            if bad {
                self.push(
                    Some(&s.referenced),
                    &format!("{key}[{i}]"),
                    format!(
                        "expected a positive{} number, got {}",
                        if allow_inf { "" } else { " finite" },
                        n.value
                    ),
                );
                ok = false;
            }
        }
        ok.then(|| s.value.0.clone())
    }

    /// A number within [lo, hi] (or [lo, hi) when `hi_open`).
    fn num_in(&mut self, v: &O<Num>, key: &str, lo: f64, hi: f64, hi_open: bool) -> Option<f64> {
        let s = v.as_ref()?;
        let x = s.value.value;
        let ok = x.is_finite() && x >= lo && if hi_open { x < hi } else { x <= hi };
        if !ok {
            let close = if hi_open { ")" } else { "]" };
            self.push(
                Some(&s.referenced),
                key,
                format!("expected a number in [{lo}, {hi}{close}, got {x}"),
            );
            return None;
        }
        Some(x)
    }

    /// A positive finite number.
    fn positive(&mut self, v: &O<Num>, key: &str) -> Option<f64> {
        let s = v.as_ref()?;
        if !(s.value.value.is_finite() && s.value.value > 0.0) {
            self.push(
                Some(&s.referenced),
                key,
                format!("expected a positive number, got {}", s.value.value),
            );
            return None;
        }
        Some(s.value.value)
    }

    /// A selected file that must exist under `dir`.
    fn existing_file(&mut self, v: &S<String>, key: &str, dir: &Path) -> Option<PathBuf> {
        if v.value.trim().is_empty() {
            self.push(
                Some(&v.referenced),
                key,
                "expected a file name, got an empty string",
            );
            return None;
        }
        let p = dir.join(&v.value);
        if !p.is_file() {
            self.push(
                Some(&v.referenced),
                key,
                format!("selected file does not exist: {}", p.display()),
            );
            return None;
        }
        Some(p)
    }
}

/// Load run-bench.yaml from disk and validate everything it names.
pub fn load(
    path: &Path,
    hf_token: Option<&str>,
    spec_override: Option<&[String]>,
) -> Result<LoadedConfig, ConfigErrors> {
    let mut issues = Vec::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            issues.push(ConfigIssue {
                file: path.to_path_buf(),
                line: None,
                column: None,
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            });
            return Err(ConfigErrors { issues });
        }
    };
    let root = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut warnings = Vec::new();
    let mut ctx = Ctx {
        file: path.to_path_buf(),
        issues: &mut issues,
    };
    let rb: RunBenchFile = match parse(&text) {
        Ok(rb) => rb,
        Err(e) => {
            ctx.serde_error(&e, hf_token, &text);
            return Err(ConfigErrors { issues });
        }
    };
    let top = YLoc::UNKNOWN;
    let infra = check_infra(&mut ctx, &rb.infrastructure, &top);
    let spec_files = match spec_override {
        Some(list) => override_paths(&mut ctx, list, &root),
        None => spec_paths(&mut ctx, &rb, &root),
    };
    let mut suites = Vec::new();
    for f in spec_files {
        if let Some(s) = load_spec(
            &f,
            &root,
            infra.as_ref(),
            hf_token,
            &mut issues,
            &mut warnings,
        ) {
            suites.push(s);
        }
    }
    if !issues.is_empty() {
        return Err(ConfigErrors { issues });
    }
    let infra = infra.expect("infra is valid when there are no issues");
    Ok(LoadedConfig {
        path: path.to_path_buf(),
        root,
        infra,
        suites,
        warnings,
    })
}

fn check_infra(ctx: &mut Ctx, v: &O<model::InfraFile>, top: &YLoc) -> Option<Infra> {
    let s = ctx.req(v, "1-infrastructure", top)?;
    let f = &s.value;
    let at = s.referenced;
    let loc_s = ctx.req(&f.location, "1-infrastructure.Location", &at)?;
    let Some(location) = Location::parse(loc_s.value.trim()) else {
        ctx.push(
            Some(&loc_s.referenced),
            "1-infrastructure.Location",
            format!(
                "unknown Location `{}`: expected one of NoBench, LocalMinikube, LMCacheGKE, Local-Flat",
                loc_s.value
            ),
        );
        return None;
    };
    let mut num_cluster_gpus = None;
    let mut a100_vram = 40;
    if location == Location::LmcacheGke {
        match &f.num_cluster_gpus {
            None => ctx.push(
                Some(&at),
                "1-infrastructure.numClusterGPUs",
                "missing required key for LMCacheGKE: expected 1, 2, 4 or 8",
            ),
            Some(n) if ![1, 2, 4, 8].contains(&n.value) => ctx.push(
                Some(&n.referenced),
                "1-infrastructure.numClusterGPUs",
                format!("expected 1, 2, 4 or 8, got {}", n.value),
            ),
            Some(n) => num_cluster_gpus = Some(n.value as u32),
        }
        if let Some(v) = &f.a100_vram {
            if v.value != 40 && v.value != 80 {
                ctx.push(
                    Some(&v.referenced),
                    "1-infrastructure.A100_VRAM",
                    format!("expected 40 or 80, got {}", v.value),
                );
            } else {
                a100_vram = v.value as u32;
            }
        }
    }
    let json = serde_json::to_value(f).unwrap_or(serde_json::Value::Null);
    Some(Infra {
        location,
        num_cluster_gpus,
        a100_vram,
        json,
    })
}

fn spec_paths(ctx: &mut Ctx, rb: &RunBenchFile, root: &Path) -> Vec<PathBuf> {
    let top = YLoc::UNKNOWN;
    let Some(list) = &rb.specs else {
        ctx.push(
            Some(&top),
            "0-bench-specs",
            "missing or empty: expected a non-empty list of spec files or folders under 0-bench-specs/",
        );
        return Vec::new();
    };
    let Some(entries) = &list.value else {
        ctx.push(
            Some(&list.referenced),
            "0-bench-specs",
            "expected a non-empty list of spec files or folders, got nothing",
        );
        return Vec::new();
    };
    if entries.is_empty() {
        ctx.push(
            Some(&list.referenced),
            "0-bench-specs",
            "expected a non-empty list of spec files or folders",
        );
    }
    let base = root.join("0-bench-specs");
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let key = format!("0-bench-specs[{i}]");
        let p = base.join(e.value.trim());
        if p.is_file() {
            out.push(p);
        } else if p.is_dir() {
            let mut found = Vec::new();
            collect_yaml(&p, &mut found);
            found.sort();
            if found.is_empty() {
                ctx.push(
                    Some(&e.referenced),
                    &key,
                    format!("folder holds no .yaml spec files: {}", p.display()),
                );
            }
            out.extend(found);
        } else {
            ctx.push(
                Some(&e.referenced),
                &key,
                format!("no such spec file or folder: {}", p.display()),
            );
        }
    }
    out
}

fn override_paths(ctx: &mut Ctx, list: &[String], root: &Path) -> Vec<PathBuf> {
    let base = root.join("0-bench-specs");
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let p = base.join(e);
        if p.is_file() {
            out.push(p);
        } else if p.is_dir() {
            let mut found = Vec::new();
            collect_yaml(&p, &mut found);
            found.sort();
            out.extend(found);
        } else {
            ctx.push(
                None,
                &format!("--spec[{i}]"),
                format!("no such spec file or folder: {}", p.display()),
            );
        }
    }
    out
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_yaml(&p, out);
        } else {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            if yaml && !name.starts_with("TEMPLATE") {
                out.push(p);
            }
        }
    }
}

fn load_spec(
    file: &Path,
    root: &Path,
    infra: Option<&Infra>,
    hf_token: Option<&str>,
    issues: &mut Vec<ConfigIssue>,
    warnings: &mut Vec<String>,
) -> Option<Suite> {
    let mut ctx = Ctx {
        file: file.to_path_buf(),
        issues,
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            ctx.push(None, "", format!("cannot read the file: {e}"));
            return None;
        }
    };
    let spec: SpecFile = match parse(&text) {
        Ok(s) => s,
        Err(e) => {
            ctx.serde_error(&e, hf_token, &text);
            return None;
        }
    };
    let top = YLoc::UNKNOWN;
    if spec.legacy_infrastructure.is_some() {
        warnings.push(format!(
            "{}: `Infrastructure` in a spec is ignored; run-bench.yaml's 1-infrastructure is used",
            file.display()
        ));
    }
    let name = ctx.req(&spec.name, "Name", &top).and_then(|n| {
        let v = n.value.trim();
        if v.is_empty() || v.contains('/') || v.contains('\\') || v == "." || v == ".." {
            ctx.push(
                Some(&n.referenced),
                "Name",
                format!(
                    "expected a suite name usable as a folder name (no slashes), got `{}`",
                    n.value
                ),
            );
            None
        } else {
            Some(v.to_string())
        }
    });
    let mut baselines = Vec::new();
    match &spec.serving {
        None => ctx.push(
            Some(&top),
            "Serving",
            "missing or empty: expected a non-empty list of serving baselines",
        ),
        Some(s) => match &s.value {
            Some(list) if !list.is_empty() => {
                for (i, b) in list.iter().enumerate() {
                    if let Some(b) = baseline(&mut ctx, b, i, root, infra, hf_token) {
                        baselines.push(b);
                    }
                }
            }
            _ => ctx.push(
                Some(&s.referenced),
                "Serving",
                "expected a non-empty list of serving baselines",
            ),
        },
    }
    let mut workloads = Vec::new();
    match &spec.workload {
        None => ctx.push(
            Some(&top),
            "Workload",
            "missing or empty: expected a map of workload types",
        ),
        Some(w) => match &w.value {
            None => ctx.push(
                Some(&w.referenced),
                "Workload",
                "expected at least one workload",
            ),
            Some(wf) => {
                workloads = check_workloads(&mut ctx, wf, root);
                if workloads.is_empty() && !has_any_workload(wf) {
                    ctx.push(
                        Some(&w.referenced),
                        "Workload",
                        "expected at least one workload",
                    );
                }
            }
        },
    }
    Some(Suite {
        name: name?,
        file: file.to_path_buf(),
        baselines,
        workloads,
    })
}

fn has_any_workload(w: &model::WorkloadsFile) -> bool {
    w.share_gpt.is_some()
        || w.lmcache_synthetic.is_some()
        || w.agentic.is_some()
        || w.random.is_some()
        || w.strict_synthetic.is_some()
        || w.trace_replayer.is_some()
        || w.vllm_benchmark.is_some()
}

/// Which Locations can host a baseline type.
pub fn allowed_locations(type_name: &str) -> &'static [Location] {
    match type_name {
        "Helm-ProductionStack" | "Direct-ProductionStack" => {
            &[Location::LocalMinikube, Location::LmcacheGke]
        }
        "LLM-D" => &[Location::LocalMinikube],
        _ => &[Location::LocalFlat],
    }
}

fn baseline(
    ctx: &mut Ctx,
    entry: &S<BaselineEntry>,
    i: usize,
    root: &Path,
    infra: Option<&Infra>,
    hf_env: Option<&str>,
) -> Option<Baseline> {
    let at = entry.referenced;
    let type_name = match &entry.value {
        BaselineEntry::HelmProductionStack(_) => "Helm-ProductionStack",
        BaselineEntry::DirectProductionStack(_) => "Direct-ProductionStack",
        BaselineEntry::SGLang(_) => "SGLang",
        BaselineEntry::RayServe(_) => "RayServe",
        BaselineEntry::Dynamo(_) => "Dynamo",
        BaselineEntry::LlmD(_) => "LLM-D",
        BaselineEntry::Flat(_) => "Flat",
        BaselineEntry::Simulated(_) => "Simulated",
    };
    let p = format!("Serving[{i}].{type_name}");
    if let Some(infra) = infra {
        let allowed = allowed_locations(type_name);
        if infra.location != Location::NoBench && !allowed.contains(&infra.location) {
            let names: Vec<&str> = allowed.iter().map(|l| l.as_str()).collect();
            ctx.push(
                Some(&at),
                &p,
                format!(
                    "{type_name} cannot run on Location {}: it needs {}",
                    infra.location.as_str(),
                    names.join(" or ")
                ),
            );
        }
    }
    let dir = root.join(selection_dir(type_name));
    // (model_url, api_type, hf_token, required_token) common to the typed variants.
    macro_rules! common {
        ($b:expr, $token_required:expr) => {{
            let model = ctx
                .req(&$b.model_url, &format!("{p}.modelURL"), &at)
                .map(|m| m.value.clone());
            let api = $b.api_type.as_ref().map(|a| a.value).unwrap_or_default();
            let token = hf_token(
                ctx,
                &$b.hf_token,
                &format!("{p}.hf_token"),
                $token_required,
                &at,
                hf_env,
            );
            let json = serde_json::to_value(&$b).unwrap_or(serde_json::Value::Null);
            let extra = $b
                .extra_body
                .as_ref()
                .map(|e| e.value.clone())
                .unwrap_or_default();
            (model, api, token, json, extra)
        }};
    }
    let sel = |ctx: &mut Ctx, v: &O<String>, key: &str| -> Option<(String, PathBuf)> {
        let s = ctx.req(v, &format!("{p}.{key}"), &at)?;
        let path = ctx.existing_file(s, &format!("{p}.{key}"), &dir)?;
        Some((s.value.clone(), path))
    };
    let (kind, model, api, token, json, extra_body) = match &entry.value {
        BaselineEntry::HelmProductionStack(b) => {
            let s = sel(ctx, &b.helm_config_selection, "helmConfigSelection");
            let (m, a, t, j, x) = common!(b, true);
            let s = s?;
            (
                BaselineKind::HelmProductionStack {
                    selection: s.0,
                    path: s.1,
                },
                m,
                a,
                t,
                j,
                x,
            )
        }
        BaselineEntry::DirectProductionStack(b) => {
            let s = sel(
                ctx,
                &b.kubernetes_config_selection,
                "kubernetesConfigSelection",
            );
            let (m, a, t, j, x) = common!(b, true);
            let s = s?;
            (
                BaselineKind::DirectProductionStack {
                    selection: s.0,
                    path: s.1,
                },
                m,
                a,
                t,
                j,
                x,
            )
        }
        BaselineEntry::SGLang(b) => {
            let s = sel(ctx, &b.script_name, "scriptName");
            let (m, a, t, j, x) = common!(b, false);
            let s = s?;
            (
                BaselineKind::SGLang {
                    script: s.0,
                    path: s.1,
                },
                m,
                a,
                t,
                j,
                x,
            )
        }
        BaselineEntry::RayServe(b) => {
            let s = sel(ctx, &b.script_name, "scriptName");
            let acc = ctx
                .req(&b.accelerator_type, &format!("{p}.acceleratorType"), &at)
                .map(|a| a.value.clone());
            let (m, a, t, j, x) = common!(b, false);
            let s = s?;
            (
                BaselineKind::RayServe {
                    script: s.0,
                    accelerator: acc?,
                    path: s.1,
                },
                m,
                a,
                t,
                j,
                x,
            )
        }
        BaselineEntry::Dynamo(b) => {
            let s = sel(ctx, &b.config_selection, "configSelection");
            let (m, a, t, j, x) = common!(b, false);
            let s = s?;
            (
                BaselineKind::Dynamo {
                    selection: s.0,
                    path: s.1,
                },
                m,
                a,
                t,
                j,
                x,
            )
        }
        BaselineEntry::LlmD(b) => {
            let s = sel(ctx, &b.config_selection, "configSelection");
            let (m, a, t, j, x) = common!(b, true);
            let s = s?;
            (
                BaselineKind::LlmD {
                    selection: s.0,
                    path: s.1,
                },
                m,
                a,
                t,
                j,
                x,
            )
        }
        BaselineEntry::Flat(b) => {
            let s = sel(ctx, &b.config_selection, "configSelection");
            let (m, a, t, j, x) = common!(b, false);
            let s = s?;
            (
                BaselineKind::Flat {
                    selection: s.0,
                    path: s.1,
                },
                m,
                a,
                t,
                j,
                x,
            )
        }
        BaselineEntry::Simulated(map) => {
            let mut params = map.clone();
            let model = match params.remove("modelURL") {
                Some(serde_json::Value::String(s)) => Some(s),
                Some(_) => {
                    ctx.push(Some(&at), &format!("{p}.modelURL"), "expected a string");
                    None
                }
                None => {
                    ctx.push(Some(&at), &format!("{p}.modelURL"), "missing required key");
                    None
                }
            };
            let api = match params.remove("apiType") {
                None => ApiType::Completions,
                Some(v) => match serde_json::from_value::<ApiType>(v.clone()) {
                    Ok(a) => a,
                    Err(_) => {
                        ctx.push(
                            Some(&at),
                            &format!("{p}.apiType"),
                            format!("expected `completions` or `chat`, got {v}"),
                        );
                        ApiType::Completions
                    }
                },
            };
            params.remove("hf_token");
            let extra = match params.remove("extraBody") {
                None => serde_json::Map::new(),
                Some(serde_json::Value::Object(m)) => m,
                Some(v) => {
                    ctx.push(
                        Some(&at),
                        &format!("{p}.extraBody"),
                        format!("expected a map of request fields, got {v}"),
                    );
                    serde_json::Map::new()
                }
            };
            let name = match params.remove("name") {
                None => None,
                Some(serde_json::Value::String(s)) => Some(s),
                Some(v) => {
                    ctx.push(
                        Some(&at),
                        &format!("{p}.name"),
                        format!("expected a string, got {v}"),
                    );
                    None
                }
            };
            if let Some(m) = &model {
                params.insert("model".into(), serde_json::Value::String(m.clone()));
            }
            // Check each setting on its own first, so a wrong value is reported under its key.
            let mut each_ok = true;
            for (k, v) in &params {
                let one = serde_json::Map::from_iter([(k.clone(), v.clone())]);
                if let Err(e) =
                    serde_json::from_value::<crate::sim::SimConfig>(serde_json::Value::Object(one))
                {
                    each_ok = false;
                    ctx.push(
                        Some(&at),
                        &format!("{p}.{k}"),
                        format!("invalid simulated-engine setting: {e}"),
                    );
                }
            }
            if each_ok {
                match serde_json::from_value::<crate::sim::SimConfig>(serde_json::Value::Object(
                    params.clone(),
                )) {
                    Err(e) => ctx.push(
                        Some(&at),
                        &p,
                        format!("invalid simulated-engine setting: {e}"),
                    ),
                    Ok(c) => {
                        if let Err(e) = c.validate() {
                            ctx.push(
                                Some(&at),
                                &p,
                                format!("invalid simulated-engine setting: {e:#}"),
                            );
                        }
                    }
                }
            }
            let mut json = map.clone();
            json.remove("hf_token");
            (
                BaselineKind::Simulated { name, params },
                model,
                api,
                None,
                serde_json::Value::Object(json),
                extra,
            )
        }
    };
    Some(Baseline {
        kind,
        model_url: model?,
        api_type: api,
        hf_token: token,
        extra_body,
        config_json: json,
        line: line_of(&at).0,
    })
}

fn hf_token(
    ctx: &mut Ctx,
    v: &O<String>,
    key: &str,
    required: bool,
    at: &YLoc,
    env: Option<&str>,
) -> Option<Secret> {
    let s = if required {
        ctx.req(v, key, at)?
    } else {
        v.as_ref()?
    };
    if s.value.trim() == HF_TOKEN_PLACEHOLDER {
        match env.filter(|t| !t.is_empty()) {
            Some(t) => Some(Secret::new(t)),
            None => {
                ctx.push(
                    Some(&s.referenced),
                    key,
                    format!("{HF_TOKEN_PLACEHOLDER} needs the HF_TOKEN environment variable, which is not set"),
                );
                None
            }
        }
    } else {
        Some(Secret::new(s.value.clone()))
    }
}

fn check_workloads(ctx: &mut Ctx, w: &model::WorkloadsFile, root: &Path) -> Vec<WorkloadItem> {
    let mut out = Vec::new();
    fn items<T: Clone>(v: &Option<S<super::values::Items<T>>>) -> Vec<(usize, &S<T>, YLoc)> {
        let Some(list) = v else { return Vec::new() };
        list.value
            .0
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let at = if s.referenced.line() == 0 {
                    list.referenced
                } else {
                    s.referenced
                };
                (i, s, at)
            })
            .collect()
    }

    // LMBench's fixed order: ShareGPT, LMCacheSynthetic, TraceReplayer, Agentic, Random,
    // VLLMBenchmark, StrictSynthetic.
    for (i, s, at) in items(&w.share_gpt) {
        let k = format!("Workload.ShareGPT[{i}]");
        let x = &s.value;
        ctx.int(&x.LIMIT, &format!("{k}.LIMIT"), 1, false, &at);
        ctx.int(&x.MIN_ROUNDS, &format!("{k}.MIN_ROUNDS"), 1, false, &at);
        ctx.int(&x.START_ROUND, &format!("{k}.START_ROUND"), 0, false, &at);
        ctx.positive_list(&x.QPS, &format!("{k}.QPS"), true, false, &at);
        match &x.DATASET_PATH {
            Some(p) => {
                ctx.existing_file(p, &format!("{k}.DATASET_PATH"), root);
            }
            None => {
                let p = root.join(SHAREGPT_DEFAULT_PATH);
                if !p.is_file() {
                    ctx.push(
                        Some(&at),
                        &format!("{k}.DATASET_PATH"),
                        format!("not set, and the default dataset does not exist: {} (lmbench never downloads datasets; 3-workloads/sharegpt/sample.json is a small one)", p.display()),
                    );
                }
            }
        }
        if let Some(t) = &x.TOKENIZER {
            ctx.existing_file(t, &format!("{k}.TOKENIZER"), root);
        }
        out.push(WorkloadItem {
            workload: Workload::ShareGpt(x.clone()),
            index: i,
            line: line_of(&at).0,
        });
    }
    for (i, s, at) in items(&w.lmcache_synthetic) {
        let k = format!("Workload.LMCacheSynthetic[{i}]");
        let x = &s.value;
        ctx.int(
            &x.NUM_USERS_WARMUP,
            &format!("{k}.NUM_USERS_WARMUP"),
            0,
            false,
            &at,
        );
        ctx.int(&x.NUM_USERS, &format!("{k}.NUM_USERS"), 1, true, &at);
        ctx.int(&x.NUM_ROUNDS, &format!("{k}.NUM_ROUNDS"), 1, true, &at);
        ctx.int(
            &x.SYSTEM_PROMPT,
            &format!("{k}.SYSTEM_PROMPT"),
            0,
            true,
            &at,
        );
        ctx.int(&x.CHAT_HISTORY, &format!("{k}.CHAT_HISTORY"), 0, true, &at);
        ctx.int(&x.ANSWER_LEN, &format!("{k}.ANSWER_LEN"), 1, true, &at);
        ctx.positive_list(&x.QPS, &format!("{k}.QPS"), true, false, &at);
        ctx.positive(&x.DURATION, &format!("{k}.DURATION"));
        if let Some(t) = &x.TOKENIZER {
            ctx.existing_file(t, &format!("{k}.TOKENIZER"), root);
        }
        out.push(WorkloadItem {
            workload: Workload::Synthetic(x.clone()),
            index: i,
            line: line_of(&at).0,
        });
    }
    for (i, s, at) in items(&w.trace_replayer) {
        let k = format!("Workload.TraceReplayer[{i}]");
        let x = &s.value;
        let dir = root.join(TRACE_DIR);
        match &x.TRACE_FILE {
            Some(f) => {
                ctx.existing_file(f, &format!("{k}.TRACE_FILE"), &dir);
            }
            None => {
                let p = dir.join("traces/gmi_trace.jsonl");
                if !p.is_file() {
                    ctx.push(
                        Some(&at),
                        &format!("{k}.TRACE_FILE"),
                        format!(
                            "not set, and the default trace does not exist: {}",
                            p.display()
                        ),
                    );
                }
            }
        }
        if let Some(st) = &x.START_TIME {
            if !(st.value.value.is_finite() && st.value.value >= 0.0) {
                ctx.push(
                    Some(&st.referenced),
                    &format!("{k}.START_TIME"),
                    format!(
                        "expected a non-negative number of seconds, got {}",
                        st.value.value
                    ),
                );
            }
        }
        if let Some(d) = &x.DURATION {
            if let TraceDuration::Seconds(v) = d.value {
                if !(v.is_finite() && v > 0.0) {
                    ctx.push(
                        Some(&d.referenced),
                        &format!("{k}.DURATION"),
                        format!("expected a positive number of seconds or `full`, got {v}"),
                    );
                }
            }
        }
        ctx.positive(&x.SPEED_UP, &format!("{k}.SPEED_UP"));
        ctx.positive(&x.TIME_SCALE, &format!("{k}.TIME_SCALE"));
        ctx.positive(&x.MAX_DELAY, &format!("{k}.MAX_DELAY"));
        ctx.positive_list(&x.QPS, &format!("{k}.QPS"), false, false, &at);
        ctx.int(&x.BLOCK_SIZE, &format!("{k}.BLOCK_SIZE"), 1, false, &at);
        ctx.int(
            &x.MAX_INPUT_TOKENS,
            &format!("{k}.MAX_INPUT_TOKENS"),
            1,
            false,
            &at,
        );
        ctx.int(
            &x.MAX_OUTPUT_TOKENS,
            &format!("{k}.MAX_OUTPUT_TOKENS"),
            1,
            false,
            &at,
        );
        if let Some(o) = &x.OVERLONG {
            if o.value != "clip" && o.value != "skip" {
                ctx.push(
                    Some(&o.referenced),
                    &format!("{k}.OVERLONG"),
                    format!("expected `clip` or `skip`, got `{}`", o.value),
                );
            }
        }
        if let Some(t) = &x.TOKENIZER {
            ctx.existing_file(t, &format!("{k}.TOKENIZER"), root);
        }
        out.push(WorkloadItem {
            workload: Workload::Trace(x.clone()),
            index: i,
            line: line_of(&at).0,
        });
    }
    for (i, s, at) in items(&w.agentic) {
        let k = format!("Workload.Agentic[{i}]");
        let x = &s.value;
        ctx.int(
            &x.NUM_USERS_WARMUP,
            &format!("{k}.NUM_USERS_WARMUP"),
            0,
            false,
            &at,
        );
        ctx.int(&x.NUM_AGENTS, &format!("{k}.NUM_AGENTS"), 1, true, &at);
        ctx.int(&x.NUM_ROUNDS, &format!("{k}.NUM_ROUNDS"), 1, true, &at);
        ctx.int(
            &x.SYSTEM_PROMPT,
            &format!("{k}.SYSTEM_PROMPT"),
            0,
            true,
            &at,
        );
        ctx.int(&x.CHAT_HISTORY, &format!("{k}.CHAT_HISTORY"), 0, true, &at);
        ctx.int(&x.ANSWER_LEN, &format!("{k}.ANSWER_LEN"), 1, true, &at);
        ctx.positive_list(
            &x.NEW_USER_INTERVALS,
            &format!("{k}.NEW_USER_INTERVALS"),
            false,
            false,
            &at,
        );
        ctx.positive(&x.DURATION, &format!("{k}.DURATION"));
        if let Some(t) = &x.TOKENIZER {
            ctx.existing_file(t, &format!("{k}.TOKENIZER"), root);
        }
        out.push(WorkloadItem {
            workload: Workload::Agentic(x.clone()),
            index: i,
            line: line_of(&at).0,
        });
    }
    for (i, s, at) in items(&w.random) {
        let k = format!("Workload.Random[{i}]");
        let x = &s.value;
        ctx.int(&x.NUM_USERS, &format!("{k}.NUM_USERS"), 1, true, &at);
        ctx.int(&x.NUM_ROUNDS, &format!("{k}.NUM_ROUNDS"), 1, true, &at);
        ctx.int(&x.PROMPT_LEN, &format!("{k}.PROMPT_LEN"), 1, true, &at);
        ctx.int(&x.ANSWER_LEN, &format!("{k}.ANSWER_LEN"), 1, true, &at);
        ctx.positive_list(&x.QPS, &format!("{k}.QPS"), true, false, &at);
        ctx.positive(&x.DURATION, &format!("{k}.DURATION"));
        if let Some(t) = &x.TOKENIZER {
            ctx.existing_file(t, &format!("{k}.TOKENIZER"), root);
        }
        out.push(WorkloadItem {
            workload: Workload::Random(x.clone()),
            index: i,
            line: line_of(&at).0,
        });
    }
    for (i, s, at) in items(&w.vllm_benchmark) {
        let k = format!("Workload.VLLMBenchmark[{i}]");
        let x = &s.value;
        let ds = x
            .DATASET_NAME
            .as_ref()
            .map(|d| d.value.as_str())
            .unwrap_or("sharegpt");
        if !["random", "sonnet", "sharegpt", "custom", "hf"].contains(&ds) {
            let loc = x.DATASET_NAME.as_ref().map(|d| d.referenced).unwrap_or(at);
            ctx.push(
                Some(&loc),
                &format!("{k}.DATASET_NAME"),
                format!("expected one of random, sonnet, sharegpt, custom, hf; got `{ds}`"),
            );
        }
        match &x.DATASET_PATH {
            Some(p) => {
                ctx.existing_file(p, &format!("{k}.DATASET_PATH"), root);
            }
            None if ["sonnet", "sharegpt", "custom", "hf"].contains(&ds) => ctx.push(
                Some(&at),
                &format!("{k}.DATASET_PATH"),
                format!("missing required key for DATASET_NAME {ds}: expected a local file (lmbench never downloads datasets)"),
            ),
            None => {}
        }
        ctx.int(&x.NUM_PROMPTS, &format!("{k}.NUM_PROMPTS"), 1, false, &at);
        ctx.positive_list(
            &x.REQUEST_RATES,
            &format!("{k}.REQUEST_RATES"),
            false,
            true,
            &at,
        );
        ctx.num_in(
            &x.TEMPERATURE,
            &format!("{k}.TEMPERATURE"),
            0.0,
            f64::MAX,
            false,
        );
        ctx.num_in(&x.TOP_P, &format!("{k}.TOP_P"), 0.0, 1.0, false);
        ctx.int(&x.TOP_K, &format!("{k}.TOP_K"), -1, false, &at);
        ctx.positive(&x.BURSTINESS, &format!("{k}.BURSTINESS"));
        ctx.int(&x.MAX_TOKENS, &format!("{k}.MAX_TOKENS"), 1, false, &at);
        for (key, v) in [
            ("SHAREGPT_OUTPUT_LEN", &x.SHAREGPT_OUTPUT_LEN),
            ("RANDOM_INPUT_LEN", &x.RANDOM_INPUT_LEN),
            ("RANDOM_OUTPUT_LEN", &x.RANDOM_OUTPUT_LEN),
            ("SONNET_INPUT_LEN", &x.SONNET_INPUT_LEN),
            ("SONNET_OUTPUT_LEN", &x.SONNET_OUTPUT_LEN),
            ("HF_OUTPUT_LEN", &x.HF_OUTPUT_LEN),
            ("CUSTOM_OUTPUT_LEN", &x.CUSTOM_OUTPUT_LEN),
            ("MAX_CONCURRENCY", &x.MAX_CONCURRENCY),
        ] {
            ctx.int(v, &format!("{k}.{key}"), 1, false, &at);
        }
        ctx.int(
            &x.SONNET_PREFIX_LEN,
            &format!("{k}.SONNET_PREFIX_LEN"),
            0,
            false,
            &at,
        );
        ctx.int(
            &x.RANDOM_PREFIX_LEN,
            &format!("{k}.RANDOM_PREFIX_LEN"),
            0,
            false,
            &at,
        );
        if let Some(g) = &x.GOODPUT {
            for (name, v) in &g.value {
                let ok = matches!(name.as_str(), "ttft_ms" | "tpot_ms" | "e2el_ms")
                    && v.as_f64().is_some_and(|x| x.is_finite() && x > 0.0);
                if !ok {
                    ctx.push(
                        Some(&g.referenced),
                        &format!("{k}.GOODPUT.{name}"),
                        format!("expected ttft_ms, tpot_ms or e2el_ms with a positive number of milliseconds, got {name}: {v}"),
                    );
                }
            }
        }
        ctx.num_in(
            &x.RANDOM_RANGE_RATIO,
            &format!("{k}.RANDOM_RANGE_RATIO"),
            0.0,
            1.0,
            true,
        );
        if let Some(t) = &x.TOKENIZER {
            ctx.existing_file(t, &format!("{k}.TOKENIZER"), root);
        }
        out.push(WorkloadItem {
            workload: Workload::Vllm(x.clone()),
            index: i,
            line: line_of(&at).0,
        });
    }
    for (i, s, at) in items(&w.strict_synthetic) {
        let k = format!("Workload.StrictSynthetic[{i}]");
        let x = &s.value;
        ctx.int(
            &x.NUM_CONCURRENT_USERS,
            &format!("{k}.NUM_CONCURRENT_USERS"),
            1,
            true,
            &at,
        );
        ctx.int(
            &x.NUM_ROUNDS_PER_USER,
            &format!("{k}.NUM_ROUNDS_PER_USER"),
            1,
            true,
            &at,
        );
        ctx.positive_list(
            &x.TIME_BETWEEN_REQUESTS_PER_USER,
            &format!("{k}.TIME_BETWEEN_REQUESTS_PER_USER"),
            false,
            false,
            &at,
        );
        ctx.int(
            &x.SHARED_SYSTEM_PROMPT_LEN,
            &format!("{k}.SHARED_SYSTEM_PROMPT_LEN"),
            0,
            true,
            &at,
        );
        ctx.int(
            &x.FIRST_PROMPT_LEN,
            &format!("{k}.FIRST_PROMPT_LEN"),
            0,
            true,
            &at,
        );
        ctx.int(
            &x.FOLLOW_UP_PROMPTS_LEN,
            &format!("{k}.FOLLOW_UP_PROMPTS_LEN"),
            0,
            true,
            &at,
        );
        ctx.int(&x.ANSWER_LEN, &format!("{k}.ANSWER_LEN"), 1, true, &at);
        ctx.num_in(
            &x.KV_REUSE_RATIO,
            &format!("{k}.KV_REUSE_RATIO"),
            0.0,
            1.0,
            false,
        );
        if let Some(t) = &x.TOKENIZER {
            ctx.existing_file(t, &format!("{k}.TOKENIZER"), root);
        }
        out.push(WorkloadItem {
            workload: Workload::Strict(x.clone()),
            index: i,
            line: line_of(&at).0,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_token_lines_and_values() {
        let s = "  3 |   hf_token: hf_secretvalue\n  4 | modelURL: x hf_secretvalue";
        let r = redact(s, Some("hf_secretvalue"));
        assert!(!r.contains("hf_secretvalue"), "{r}");
        assert!(r.contains("modelURL"));
    }
}
