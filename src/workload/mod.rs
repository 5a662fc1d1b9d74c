//! Workloads: what to send and when.
//!
//! Each workload type lives in its own file and gives two things:
//! - a spec side: its keys as written in a spec file (`Raw`, a serde struct implementing
//!   [`RawWorkload`], with its validation rules), and the validated item ([`WorkloadSpec`]):
//!   its sweep points with a time estimate, the request stream of one point, the keys it adds
//!   to LMBench's `workload` block and the fields it adds to the result;
//! - a run side: a [`Workload`], which yields [`RequestSpec`]s with due times. Open-loop
//!   arrivals come from [`Workload::next_scheduled`] in due order; requests that depend on an
//!   answer (the next turn of a conversation) come from [`Workload::on_complete`]. The
//!   [`runner`] sends each spec at its due time, whatever earlier requests are doing.
//!
//! A new workload type is one new file plus one line in [`workload_types!`] below; nothing
//! else in lmbench names workload types.

/// Defines a workload type's `Raw` struct: its keys as optional located values (so missing
/// required keys are reported together with every other problem), unknown keys rejected, and
/// the `TOKENIZER` key every type has. The same struct serializes back (absent keys skipped)
/// into the `workload` object of a result: the item as the user wrote it.
macro_rules! workload_keys {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, serde::Deserialize, serde::Serialize, Clone)]
        #[serde(deny_unknown_fields)]
        #[allow(non_snake_case)]
        pub struct $name {
            $($(#[$fm])* #[serde(default, skip_serializing_if = "Option::is_none")] pub $f: $t,)*
            /// A local `tokenizer.json` to count and build prompts with, relative to the folder
            /// of run-bench.yaml (lmbench addition; default tiktoken cl100k_base).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub TOKENIZER: $crate::config::O<String>,
            /// The limits a load must meet (lmbench addition; see `measure::sla`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub SLA: $crate::config::O<serde_json::Map<String, serde_json::Value>>,
            /// Search for the highest load meeting `SLA` instead of running a list of points
            /// (lmbench addition; see `workload::search`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub SEARCH: $crate::config::O<serde_json::Map<String, serde_json::Value>>,
            /// Runs of every point (lmbench addition; see `measure::repeats`).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub REPEATS: $crate::config::O<i64>,
        }

        impl $crate::workload::CommonKeys for $name {
            fn common(&self) -> $crate::workload::Common<'_> {
                $crate::workload::Common {
                    tokenizer: &self.TOKENIZER,
                    sla: &self.SLA,
                    search: &self.SEARCH,
                    repeats: &self.REPEATS,
                }
            }
        }
    };
}

pub mod agentic;
pub mod arrivals;
pub mod builder;
pub mod prefix_repetition;
pub mod prompt;
pub mod random;
pub mod runner;
pub mod search;
pub mod sharegpt;
pub mod strict;
pub mod synthetic;
#[cfg(test)]
pub(crate) mod test_support;
pub mod trace;
pub mod vllm;

use crate::config::values::KnownName;
#[cfg(test)]
use crate::config::Invalid;
use crate::config::{Checked, Checker, Item, Items, Num, O, S};
use crate::record::{ApiType, Completed, Prompt, RequestSpec};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How long after the answer that ends a warmup the measured part of a run starts. Its first
/// requests are built when that answer arrives; starting them this much later lets the builder
/// have them ready when they are due, so the first measured requests carry no send lag of
/// lmbench's own making. Nothing measured depends on where the measured part starts.
pub const MEASURED_START_LEAD_S: f64 = 0.05;

/// A source of requests for one run.
pub trait Workload: Send {
    /// The next request of the open-loop schedule, in due order; `None` when there are no more
    /// (requests may still come from `on_complete`).
    fn next_scheduled(&mut self) -> Option<RequestSpec>;

    /// A request finished at `now_s` (seconds since the run's start). Returns the requests that
    /// were waiting for it (each due no earlier than `now_s`).
    fn on_complete(&mut self, done: &Completed, now_s: f64) -> Vec<RequestSpec>;

    /// The seconds-since-start at which the measured send window closed or will close, once
    /// known (after warmup). Used to report the window; requests are not generated past it.
    fn window(&self) -> Option<(f64, f64)>;

    /// Most requests in flight at once (VLLMBenchmark's MAX_CONCURRENCY); `None` is a pure open
    /// loop. A request due while the cap is reached waits, and the wait shows as send lag.
    fn max_in_flight(&self) -> Option<usize> {
        None
    }

    /// The turn that will follow `after` (a request just built, given without its prompt: the
    /// workload's own state holds the conversation) if its answer comes back
    /// successfully, built ahead less that answer: its prompt holds an empty message at
    /// [`AnswerSlot::at`] where the answer goes (if it carries the answer), and it is due
    /// at its slot. The runner
    /// fills it in and sends it the moment the answer arrives (or queues it for its slot), so a
    /// turn held back by a slow answer leaves without waiting for the builder; the workload
    /// then learns of it through [`Completed::follow_up`] in [`Workload::on_complete`] and
    /// records it instead of building it. `None` (the default): the next turn, if any, is
    /// built by `on_complete` as usual. Must not change what later requests are, except for
    /// taking the turn's id.
    fn turn_ahead(&mut self, _after: &RequestSpec) -> Option<TurnAhead> {
        None
    }

    /// Called by the builder when it has nothing else to do: build ahead whatever makes a later
    /// request cheaper to build when it is due (the next new user's first message). Returns
    /// whether it did anything (it is called again until it returns false). Each call should
    /// be short (one request's worth of work): an answer that comes in meanwhile waits for it.
    fn prepare(&mut self) -> bool {
        false
    }

    /// Workload-specific counters for the result file (e.g. turns held back by a slow answer).
    fn stats(&self) -> Value {
        Value::Null
    }
}

/// A dependent turn built before the answer it waits for ([`Workload::turn_ahead`]).
pub struct TurnAhead {
    /// The turn, due at its slot; with an [`AnswerSlot`], that message of its prompt is the
    /// empty answer.
    pub spec: RequestSpec,
    /// Where the answer goes; `None`: the turn does not carry the answer, only waits for it (a
    /// new user taking over the slot of a finished conversation).
    pub answer: Option<AnswerSlot>,
}

/// Where a turn built ahead carries the answer it waits for.
pub struct AnswerSlot {
    /// The message of the prompt that is the answer.
    pub at: usize,
    /// The client-side tokens the answer adds to the turn's `client_prompt_tokens`.
    pub tokens: Box<dyn Fn(&str) -> u64 + Send + Sync>,
}

impl TurnAhead {
    /// The turn's spec with `answer` put in (its prompt and client-side tokens), due at its
    /// slot.
    pub fn fill(self, answer: &str) -> RequestSpec {
        let mut spec = self.spec;
        if let Some(slot) = self.answer {
            if let Prompt::Messages(m) = &mut spec.prompt {
                if let Some(message) = m.get_mut(slot.at) {
                    message.content = answer.to_string();
                }
            }
            spec.client_prompt_tokens += (slot.tokens)(answer);
        }
        spec
    }
}

/// The variable a workload sweeps, and its value at one point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// LMBench's name of the swept key for this run (`QPS`, `NEW_USER_INTERVAL`,
    /// `TIME_BETWEEN_REQUESTS_PER_USER`, `REQUEST_RATE`, or `MODE` for timed replay).
    pub key: &'static str,
    /// The value, as written.
    #[serde(serialize_with = "ser_num_opt")]
    pub value: Option<Num>,
}

fn ser_num_opt<S: serde::Serializer>(v: &Option<Num>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => n.serialize(s),
        None => s.serialize_none(),
    }
}

/// One point of a workload item's sweep: what the plan shows and a run is built for.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The swept key and value.
    pub sweep: SweepPoint,
    /// Target QPS; `None` where the point has none (timed trace replay, Agentic).
    pub qps: Option<Num>,
    /// The QPS part of the result file name (`0.5`, `2`, `unknown`).
    pub qps_label: String,
    /// Rough expected seconds (sending + drain), for the plan's estimate.
    pub estimated_s: f64,
}

impl Point {
    /// A point of a workload swept over `QPS`.
    pub fn qps(q: Num, estimated_s: f64) -> Point {
        Point {
            sweep: SweepPoint {
                key: "QPS",
                value: Some(q),
            },
            qps: Some(q),
            qps_label: q.label(),
            estimated_s,
        }
    }

    /// The target rate, if the point has one.
    pub fn target_qps(&self) -> Option<f64> {
        self.qps.map(|q| q.value)
    }

    /// `KEY=value`, or `timed` for a point without a value.
    pub fn label(&self) -> String {
        self.sweep
            .value
            .map(|v| format!("{}={}", self.sweep.key, v.label()))
            .unwrap_or_else(|| "timed".into())
    }
}

/// The measurements of a point that a workload type may add to or re-judge, once it has run.
pub struct PointResults<'a> {
    /// The result's `results` object.
    pub results: &'a mut Map<String, Value>,
    /// LMBench's `workload` object of the result.
    pub workload: &'a mut Map<String, Value>,
    /// The workload's own counters ([`Workload::stats`]).
    pub stats: &'a Value,
}

/// A validated workload item: what the plan, the runner and the result need of its type.
pub trait WorkloadSpec: Send + Sync + fmt::Debug {
    /// LMBench's WORKLOAD name of the item (`synthetic`, `random`, `vllm_random`, …).
    fn workload_name(&self) -> String;

    /// The points the item runs at, in order, each with its time estimate.
    fn points(&self) -> Vec<Point>;

    /// The request source of one point.
    fn build(&self, point: &Point, ctx: &RunContext) -> Result<Box<dyn Workload>, WorkloadError>;

    /// Whether a point's prompts can repeat an earlier point's (see [`crate::cache`]): every
    /// type draws or salts its prompts per point unless told otherwise.
    fn prompt_reuse(&self) -> crate::cache::PromptReuse {
        crate::cache::PromptReuse::PerPoint
    }

    /// Keys the type adds to LMBench's `workload` object after the swept key (defaults LMBench
    /// fills in, the API type).
    fn extra_params(&self, _block: &mut Map<String, Value>, _api: ApiType) {}

    /// Fields the type adds to the result, and judgements it makes differently, once the point
    /// has run.
    fn finish_result(&self, _r: &mut PointResults<'_>) {}

    /// The point at `value` of the searched key, for an SLA search ([`search`]); why not where
    /// the item cannot vary that key (the default: no search).
    fn search_point(&self, axis: search::Axis, _value: Num) -> Result<Point, String> {
        Err(format!(
            "this workload type cannot be searched over {}",
            axis.key()
        ))
    }
}

/// The keys every workload type has (generated by `workload_keys!`).
pub struct Common<'a> {
    /// `TOKENIZER`.
    pub tokenizer: &'a O<String>,
    /// `SLA`.
    pub sla: &'a O<Map<String, Value>>,
    /// `SEARCH`.
    pub search: &'a O<Map<String, Value>>,
    /// `REPEATS`.
    pub repeats: &'a O<i64>,
}

/// Access to the keys every workload type has.
pub trait CommonKeys {
    /// Those keys.
    fn common(&self) -> Common<'_>;
}

/// A workload type's keys as written in a spec file: a serde struct (unknown keys rejected,
/// values located) that checks its own rules.
pub trait RawWorkload: DeserializeOwned + Serialize + CommonKeys {
    /// The type's key under `Workload:` (`LMCacheSynthetic`).
    const NAME: &'static str;

    /// The validated item.
    type Spec: WorkloadSpec + 'static;

    /// Check every rule of the item, reporting each problem into `c`; the validated item. An
    /// item that searches (`c.searching()`) leaves out its list of points.
    fn validate(&self, c: &mut Item<'_, '_>) -> Checked<Self::Spec>;
}

/// Registers the workload types: one module name per line, each module holding a `Raw`
/// ([`RawWorkload`]). Generates the `Workload` map of a spec file ([`WorkloadsFile`]) and the
/// list of type names, in the order given (LMBench's run order).
macro_rules! workload_types {
    ($($module:ident),* $(,)?) => {
        /// Every workload type's name in spec files, in run order.
        pub const TYPE_NAMES: &[&str] = &[$(<$module::Raw as RawWorkload>::NAME),*];

        /// The key of each item of every type, in run order (for documentation checks).
        pub fn type_keys() -> Vec<(&'static str, Vec<&'static str>)> {
            vec![$((<$module::Raw as RawWorkload>::NAME, crate::config::values::field_names::<$module::Raw>())),*]
        }

        impl<'de> Deserialize<'de> for WorkloadsFile {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = WorkloadsFile;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a map of workload types")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WorkloadsFile, A::Error> {
                        let mut out = WorkloadsFile::default();
                        while let Some(name) = map.next_key_seed(KnownName { names: TYPE_NAMES, as_variant: false })? {
                            if out.entries.iter().any(|e| e.name == name) {
                                return Err(de::Error::duplicate_field(name));
                            }
                            $(if name == <$module::Raw as RawWorkload>::NAME {
                                let items: S<Items<$module::Raw>> = map.next_value()?;
                                out.entries.push(Entry::of(items));
                                continue;
                            })*
                        }
                        // Run order, whatever the YAML order.
                        out.entries.sort_by_key(|e| TYPE_NAMES.iter().position(|n| *n == e.name));
                        Ok(out)
                    }
                }
                d.deserialize_struct("Workload", TYPE_NAMES, V)
            }
        }
    };
}
workload_types! {
    // LMBench's fixed run order: items run type by type in this order, whatever the YAML order.
    sharegpt,
    synthetic,
    trace,
    agentic,
    random,
    vllm,
    strict,
    prefix_repetition,
}

/// The checks of every item of one type, type-erased so one list holds every type.
type CheckItems = Box<dyn Fn(&mut Checker<'_>, &Path, &mut Vec<WorkloadItem>) + Send + Sync>;

/// The items of one type under `Workload:`.
struct Entry {
    name: &'static str,
    check: CheckItems,
}

impl Entry {
    fn of<R: RawWorkload + Send + Sync + 'static>(items: S<Items<R>>) -> Entry {
        Entry {
            name: R::NAME,
            check: Box::new(move |c, root, out| check_items(&items, c, root, out)),
        }
    }
}

/// The `Workload` map of a spec file: the items of each type given, in run order.
#[derive(Default)]
pub struct WorkloadsFile {
    entries: Vec<Entry>,
}

impl fmt::Debug for WorkloadsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|e| e.name).collect();
        f.debug_struct("WorkloadsFile")
            .field("types", &names)
            .finish()
    }
}

impl WorkloadsFile {
    /// True when no workload type is given.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Check every item of every type, in run order; the valid ones. Problems go into `c`.
    pub fn validate(&self, c: &mut Checker<'_>, root: &Path) -> Vec<WorkloadItem> {
        let mut out = Vec::new();
        for e in &self.entries {
            (e.check)(c, root, &mut out);
        }
        out
    }
}

fn check_items<R: RawWorkload>(
    items: &S<Items<R>>,
    c: &mut Checker<'_>,
    root: &Path,
    out: &mut Vec<WorkloadItem>,
) {
    for (index, s) in items.value.0.iter().enumerate() {
        // A single item written as a map has no location of its own: use the type's key.
        let at = if s.referenced.line() == 0 {
            items.referenced
        } else {
            s.referenced
        };
        let common = s.value.common();
        let mut item = c.item(format!("Workload.{}[{index}]", R::NAME), at, root);
        item.set_searching(common.search.is_some());
        let spec = s.value.validate(&mut item);
        let tokenizer = item.root_file(common.tokenizer, "TOKENIZER");
        let search = search::SearchSpec::check(common.sla, common.search, &mut item);
        let repeats = match (item.int(common.repeats, "REPEATS", 1), common.search) {
            (Ok(Some(_)), Some(_)) => {
                item.push(
                    common.repeats.as_ref().map(|r| &r.referenced),
                    "REPEATS",
                    "given beside SEARCH: a search's probes run once each",
                );
                Err(crate::config::Invalid)
            }
            (r, _) => r.map(|r| r.map_or(1, |n| n as u32)),
        };
        let (Ok(spec), Ok(tokenizer), Ok(search), Ok(repeats)) = (spec, tokenizer, search, repeats)
        else {
            continue;
        };
        if let Some(s) = &search {
            if let Err(why) = spec.search_point(s.axis, Num::float(s.low)) {
                item.push(common.search.as_ref().map(|s| &s.referenced), "SEARCH", why);
                continue;
            }
        }
        let written = match serde_json::to_value(&s.value) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        out.push(WorkloadItem {
            type_name: R::NAME,
            index,
            line: crate::config::check::line_of(&at).0,
            written,
            tokenizer,
            spec: Arc::new(spec),
            search: search.map(Arc::new),
            repeats,
        });
    }
}

/// A validated workload item of a suite.
#[derive(Debug, Clone)]
pub struct WorkloadItem {
    /// The workload type as written in spec files.
    pub type_name: &'static str,
    /// Index of the item within its type's list.
    pub index: usize,
    /// Spec line where the item starts.
    pub line: Option<u64>,
    /// The item's keys as written (absent keys left out).
    pub written: Map<String, Value>,
    /// The `TOKENIZER` file, resolved.
    pub tokenizer: Option<PathBuf>,
    /// What the type makes of it.
    pub spec: Arc<dyn WorkloadSpec>,
    /// Its SLA search, if it searches instead of running a list of points.
    pub search: Option<Arc<search::SearchSpec>>,
    /// `REPEATS`: runs of each point (1 unless given).
    pub repeats: u32,
}

/// Keys of a `workload` object that hold the whole sweep list of an item; a result holds one
/// point instead.
const SWEEP_LISTS: &[&str] = &[
    "QPS",
    "NEW_USER_INTERVALS",
    "TIME_BETWEEN_REQUESTS_PER_USER",
    "REQUEST_RATES",
];

impl WorkloadItem {
    /// LMBench's WORKLOAD name.
    pub fn workload_name(&self) -> String {
        self.spec.workload_name()
    }

    /// The counting tokenizer: the item's `TOKENIZER` file, or tiktoken.
    pub fn prompt_builder(&self) -> Result<Arc<prompt::PromptBuilder>, WorkloadError> {
        match &self.tokenizer {
            None => Ok(prompt::PromptBuilder::global()),
            Some(p) => prompt::PromptBuilder::from_tokenizer_file(p).map_err(WorkloadError::Other),
        }
    }

    /// LMBench's `workload` object of a result: WORKLOAD, the item's keys as written (the
    /// swept list replaced by this point's value), what the type adds, and the QPS.
    pub fn result_params(&self, point: &Point, api: ApiType) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("WORKLOAD".into(), json!(self.workload_name()));
        for (k, v) in &self.written {
            if !SWEEP_LISTS.contains(&k.as_str()) {
                m.insert(k.clone(), v.clone());
            }
        }
        match point.sweep.value {
            Some(v) if point.sweep.key != "QPS" => {
                m.insert(point.sweep.key.into(), v.to_json());
            }
            None if point.sweep.key == "MODE" => {
                m.insert("MODE".into(), json!("timed"));
            }
            _ => {}
        }
        self.spec.extra_params(&mut m, api);
        // A timed trace replay has no QPS: LMBench leaves the key out (its file name says
        // `unknown`), and readers default it.
        if let Some(q) = point.qps {
            m.insert("QPS".into(), q.to_json());
        }
        m
    }
}

/// Everything a workload needs to build its requests for one run.
#[derive(Clone)]
pub struct RunContext {
    /// Counts tokens and builds exact-length prompt text.
    pub prompt: Arc<prompt::PromptBuilder>,
    /// The folder of run-bench.yaml: data paths resolve against it.
    pub root: PathBuf,
    /// The endpoint the requests go to.
    pub api: ApiType,
    /// The run's seed.
    pub seed: u64,
    /// First user id of this run (user ids never repeat between the runs of a baseline).
    pub user_id_base: u64,
    /// Scales every configured send duration (tests use it to keep runs short).
    pub duration_override_s: Option<f64>,
    /// Which repeat of its point the run is (1 for the first; see `crate::repeats`).
    pub repeat: u32,
}

impl RunContext {
    /// A workload's own seed (a `SEED` key, which sets a stream whatever the point, as vLLM's
    /// does) for this run: itself for the first repeat, mixed with the repeat's number for the
    /// others, so that repeats draw their own arrivals.
    pub fn per_repeat(&self, seed: u64) -> u64 {
        repeat_seed(seed, self.repeat)
    }
}

/// The seed of repeat `n` (1 for the first) of a stream seeded with `seed`: `seed` itself for
/// the first, mixed with `n` for the others.
pub fn repeat_seed(seed: u64, n: u32) -> u64 {
    match n {
        0 | 1 => seed,
        n => prompt::mix_seed(&[seed, u64::from(n)]),
    }
}

/// Errors building a workload (bad data found when it is read).
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// Validate one item of type `R` from YAML, for unit tests: the validated item (a panic
/// listing every problem when it is invalid). Paths resolve against the repository.
#[cfg(test)]
pub(crate) fn spec_from_yaml<R: RawWorkload>(yaml: &str) -> R::Spec {
    spec_from_yaml_in::<R>(yaml, Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// [`spec_from_yaml`] with paths resolving against `root`.
#[cfg(test)]
pub(crate) fn spec_from_yaml_in<R: RawWorkload>(yaml: &str, root: &Path) -> R::Spec {
    let raw: R = serde_saphyr::from_str(yaml).expect("workload keys");
    validate_for_test(&raw, root)
}

/// Validate `raw` for a unit test (a panic listing every problem when it is invalid).
#[cfg(test)]
pub(crate) fn validate_for_test<R: RawWorkload>(raw: &R, root: &Path) -> R::Spec {
    let mut issues = Vec::new();
    let mut c = Checker::new(Path::new("unit.yaml"), &mut issues);
    let at = serde_saphyr::Location::UNKNOWN;
    let spec = raw.validate(&mut c.item(format!("Workload.{}[0]", R::NAME), at, root));
    match spec {
        Ok(s) => s,
        Err(Invalid) => panic!("invalid {} item: {issues:?}", R::NAME),
    }
}
