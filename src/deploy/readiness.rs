//! When can a baseline take load, and is its port free for the next one?
//!
//! Ready means `GET {base}/v1/models` answers 200 with at least one model in `data`. An open
//! TCP port is not enough: vLLM binds before the weights are loaded, and llama-server
//! answers 503 while loading.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use super::{DeployError, Endpoint};

/// Default time between two readiness probes.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Upper bound for one probe; a slow answer should not eat the whole deadline.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often [`wait_port_free`] checks the port.
const PORT_POLL: Duration = Duration::from_millis(100);

/// A baseline that answered its readiness probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyInfo {
    /// Time from the start of waiting until the successful probe.
    pub elapsed: Duration,
    /// The `id`s listed by `/v1/models`.
    pub models: Vec<String>,
    /// How many probes were sent, the successful one included.
    pub probes: u32,
}

/// Poll `GET {base_url}/v1/models` every [`DEFAULT_POLL_INTERVAL`] until it lists a model.
///
/// Fails early with [`DeployError::ExitedEarly`] as soon as `is_dead` returns a reason (the
/// supervised process exited), and with [`DeployError::ReadyTimeout`], carrying the last
/// error seen, once `timeout` has passed. At least one probe is always sent.
pub async fn wait_ready(
    endpoint: &Endpoint,
    timeout: Duration,
    is_dead: impl FnMut() -> Option<String>,
) -> Result<ReadyInfo, DeployError> {
    wait_ready_every(endpoint, timeout, DEFAULT_POLL_INTERVAL, is_dead).await
}

/// [`wait_ready`] with a chosen time between probes.
pub async fn wait_ready_every(
    endpoint: &Endpoint,
    timeout: Duration,
    interval: Duration,
    mut is_dead: impl FnMut() -> Option<String>,
) -> Result<ReadyInfo, DeployError> {
    let base = endpoint.base_url.trim_end_matches('/');
    let base = base.strip_suffix("/v1").unwrap_or(base);
    let url = format!("{base}/v1/models");
    let client = probe_client(endpoint).map_err(|e| DeployError::ReadyTimeout {
        url: url.clone(),
        waited: Duration::ZERO,
        last_error: format!("cannot build HTTP client: {e}"),
    })?;
    let start = Instant::now();
    let deadline = start + timeout;
    let mut probes = 0u32;
    loop {
        if let Some(reason) = is_dead() {
            return Err(DeployError::ExitedEarly { reason });
        }
        let sent = Instant::now();
        let budget = deadline
            .saturating_duration_since(sent)
            .clamp(Duration::from_millis(50), PROBE_TIMEOUT);
        probes += 1;
        let last_error = match probe(&client, &url, budget).await {
            Ok(models) => {
                let info = ReadyInfo {
                    elapsed: start.elapsed(),
                    models,
                    probes,
                };
                tracing::info!(
                    url,
                    elapsed_ms = info.elapsed.as_millis() as u64,
                    models = ?info.models,
                    "engine ready"
                );
                return Ok(info);
            }
            Err(e) => e,
        };
        tracing::trace!(url, probes, last_error, "engine not ready yet");
        if Instant::now() >= deadline {
            if let Some(reason) = is_dead() {
                return Err(DeployError::ExitedEarly { reason });
            }
            return Err(DeployError::ReadyTimeout {
                url,
                waited: start.elapsed(),
                last_error,
            });
        }
        tokio::time::sleep_until((deadline.min(sent + interval)).into()).await;
    }
}

/// The probing client: the endpoint's TLS trust and API key (as a default, sensitive header).
fn probe_client(endpoint: &Endpoint) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = &endpoint.api_key {
        let mut v = reqwest::header::HeaderValue::try_from(format!("Bearer {}", key.expose()))
            .map_err(|_| "the API key is not a valid header value".to_string())?;
        v.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, v);
    }
    crate::client::tls::builder(endpoint.ca_cert.as_deref())?
        .no_proxy()
        .connect_timeout(PROBE_TIMEOUT)
        .default_headers(headers)
        .build()
        .map_err(|e| error_chain(&e))
}

/// One probe: the served model ids, or why the engine is not ready.
async fn probe(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let resp = client
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| error_chain(&e))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}: {}", snippet(&body)));
    }
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| format!("HTTP 200 but not JSON ({e}): {}", snippet(&body)))?;
    match json.get("data").and_then(|d| d.as_array()) {
        Some(data) if !data.is_empty() => Ok(data
            .iter()
            .filter_map(|m| m.get("id").and_then(|id| id.as_str()).map(str::to_owned))
            .collect()),
        Some(_) => Err("HTTP 200 but no model listed yet (empty `data`)".to_owned()),
        None => Err(format!(
            "HTTP 200 without a `data` list: {}",
            snippet(&body)
        )),
    }
}

/// An error and its sources on one line; reqwest's own message hides the cause.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Whether a server could listen on `port` now: binding it on 127.0.0.1 and 0.0.0.0 (and on
/// `[::]`, where IPv6 exists) succeeds.
pub fn port_is_free(port: u16) -> bool {
    let v4 = [Ipv4Addr::LOCALHOST, Ipv4Addr::UNSPECIFIED];
    if !v4
        .iter()
        .all(|ip| TcpListener::bind(SocketAddr::from((*ip, port))).is_ok())
    {
        return false;
    }
    // A host without IPv6 cannot have the port taken there.
    !matches!(
        TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
    )
}

/// Wait until [`port_is_free`] says yes, or fail with [`DeployError::PortBusy`].
pub async fn wait_port_free(port: u16, timeout: Duration) -> Result<(), DeployError> {
    let start = Instant::now();
    loop {
        if port_is_free(port) {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(DeployError::PortBusy {
                port,
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(PORT_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::deploy::local::{LaunchSpec, LocalProcess};

    /// A `/v1/models` endpoint that answers 503 for the first `fail_first` calls.
    async fn serve_models(fail_first: u32) -> (String, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/v1/models",
            get(move || {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    if n < fail_first {
                        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "loading"})))
                    } else {
                        (
                            StatusCode::OK,
                            Json(json!({"object": "list", "data": [{"id": "m1", "object": "model"}]})),
                        )
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}/"), calls)
    }

    /// A port nobody listens on (bound, then released).
    fn ep(base: &str) -> Endpoint {
        Endpoint {
            base_url: base.to_string(),
            ca_cert: None,
            api_key: None,
        }
    }

    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn ready_after_some_503s() {
        let (base, calls) = serve_models(3).await;
        let info = wait_ready_every(
            &ep(&base),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || None,
        )
        .await
        .unwrap();
        assert_eq!(info.models, vec!["m1".to_owned()]);
        assert_eq!(info.probes, 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn empty_model_list_is_not_ready() {
        let app = Router::new().route(
            "/v1/models",
            get(|| async { Json(json!({"object": "list", "data": []})) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let err = wait_ready_every(
            &ep(&format!("http://{addr}")),
            Duration::from_millis(300),
            Duration::from_millis(20),
            || None,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("empty `data`"), "{err}");
    }

    #[tokio::test]
    async fn deadline_gives_timeout_with_last_error() {
        let base = format!("http://127.0.0.1:{}", closed_port());
        let start = Instant::now();
        let err = wait_ready_every(
            &ep(&base),
            Duration::from_millis(500),
            Duration::from_millis(50),
            || None,
        )
        .await
        .unwrap_err();
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(500), "{waited:?}");
        assert!(waited < Duration::from_secs(3), "{waited:?}");
        match &err {
            DeployError::ReadyTimeout {
                last_error, url, ..
            } => {
                assert!(url.ends_with("/v1/models"));
                assert!(!last_error.is_empty());
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(err.to_string().contains("not ready after"), "{err}");
    }

    #[tokio::test]
    async fn process_that_exits_fails_early_with_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = LocalProcess::spawn(&LaunchSpec {
            program: "bash".into(),
            args: vec![
                "-c".into(),
                "echo 'error: unknown model gemma-9000' >&2; exit 1".into(),
            ],
            cwd: dir.path().to_path_buf(),
            env: vec![],
            log_path: dir.path().join("engine.log"),
        })
        .unwrap();
        let base = format!("http://127.0.0.1:{}", closed_port());
        let start = Instant::now();
        let err = wait_ready(&ep(&base), Duration::from_secs(60), || p.exit_reason())
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(err, DeployError::ExitedEarly { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("exit status: 1"), "{text}");
        assert!(text.contains("unknown model gemma-9000"), "{text}");
        p.teardown(Duration::from_secs(1)).await.unwrap();
    }

    #[tokio::test]
    async fn port_free_and_busy() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!port_is_free(port));
        let err = wait_port_free(port, Duration::from_millis(250))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DeployError::PortBusy { port: p, .. } if p == port),
            "{err:?}"
        );
        drop(listener);
        assert!(port_is_free(port));
        wait_port_free(port, Duration::from_secs(1)).await.unwrap();

        let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        assert!(!port_is_free(any.local_addr().unwrap().port()));
    }
}
