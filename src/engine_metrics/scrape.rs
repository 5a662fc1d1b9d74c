//! The scraper of one point: a task that GETs the engine's metrics URL once a second from the
//! point's start (before the first request) until it is told to finish, when it takes one last
//! scrape so the totals cover every request. It runs on the caller's runtime beside the load
//! (one small request a second) and never delays a request: the runner does not wait for it.
//!
//! An engine without metrics (its first [`GIVE_UP_AFTER`] attempts all fail, e.g. 404) is
//! not asked again during the point; the error is kept for the summary.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{parse, Scrape};

/// Time between scrapes.
pub const EVERY: Duration = Duration::from_secs(1);
/// One scrape's limit.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Failed attempts, with none succeeding, after which the scraper stops asking.
pub const GIVE_UP_AFTER: u64 = 3;

/// Where and how to scrape.
#[derive(Debug, Clone)]
pub struct Target {
    /// The metrics URL.
    pub url: String,
    /// Bearer token, if the endpoint wants one.
    pub api_key: Option<String>,
    /// CA certificate for an https URL with a private CA.
    pub ca_cert: Option<PathBuf>,
}

impl Target {
    /// What to scrape for the engine(s) behind `cfg`'s endpoint: the baseline's `metricsURL`
    /// if given; else each engine pod of a cluster baseline through its own port-forward
    /// (`pods`: `(pod, metrics URL)`, named); else `/metrics` at the endpoint's root. With the
    /// endpoint's credentials.
    pub fn all(
        metrics_url: Option<&str>,
        pods: &[(String, String)],
        cfg: &crate::client::ClientConfig,
    ) -> Vec<(Option<String>, Target)> {
        let target = |url: String| Target {
            url,
            api_key: cfg.api_key.clone(),
            ca_cert: cfg.ca_cert.clone(),
        };
        match (metrics_url, pods) {
            (Some(u), _) => vec![(None, target(u.to_string()))],
            (None, []) => vec![(None, target(default_url(&cfg.base_url)))],
            (None, pods) => pods
                .iter()
                .map(|(pod, url)| (Some(pod.clone()), target(url.clone())))
                .collect(),
        }
    }
}

/// What a point's scrapes gave.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// The URL scraped.
    pub url: String,
    /// Each successful scrape, in order.
    pub scrapes: Vec<Scrape>,
    /// Attempts that failed.
    pub failed: u64,
    /// The first failure, if any.
    pub error: Option<String>,
}

/// A running scraper.
pub struct Scraper {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Collected>,
}

impl Scraper {
    /// Starts scraping `target` now; times count from `start`.
    pub fn start(target: Target, start: Instant) -> Scraper {
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(target, start, stop.clone()));
        Scraper { stop, task }
    }

    /// Takes a last scrape, stops, and hands over what was collected.
    pub async fn finish(self) -> Collected {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

async fn run(target: Target, start: Instant, stop: CancellationToken) -> Collected {
    let mut out = Collected {
        url: target.url.clone(),
        ..Collected::default()
    };
    let http = match crate::client::tls::builder(target.ca_cert.as_deref())
        .and_then(|b| b.timeout(TIMEOUT).build().map_err(|e| e.to_string()))
    {
        Ok(h) => h,
        Err(e) => {
            out.error = Some(format!("cannot build an HTTP client: {e}"));
            return out;
        }
    };
    let mut tick = tokio::time::interval_at(start, EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        let gave_up = out.scrapes.is_empty() && out.failed >= GIVE_UP_AFTER;
        if !gave_up {
            match once(&http, &target, start.elapsed().as_secs_f64()).await {
                Ok(s) => out.scrapes.push(s),
                Err(e) => {
                    out.failed += 1;
                    out.error.get_or_insert(e);
                }
            }
        }
        if last {
            return out;
        }
    }
}

/// One scrape, `t` seconds into the point.
async fn once(http: &reqwest::Client, target: &Target, t: f64) -> Result<Scrape, String> {
    let mut req = http.get(&target.url);
    if let Some(k) = &target.api_key {
        req = req.bearer_auth(k);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| crate::deploy::readiness::error_chain(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("GET {} answered {status}", target.url));
    }
    let text = resp.text().await.map_err(|e| e.to_string())?;
    let scrape = parse(&text, t)?;
    if scrape.raw.is_empty() {
        return Err(format!("GET {} gave no samples", target.url));
    }
    Ok(scrape)
}

/// The default metrics URL of an OpenAI-compatible base URL: `/metrics` at its root
/// (`http://host:port/v1` → `http://host:port/metrics`).
pub fn default_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    let root = base.strip_suffix("/v1").unwrap_or(base);
    format!("{root}/metrics")
}
