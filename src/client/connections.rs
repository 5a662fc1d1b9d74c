//! Which requests waited for a new connection, and how long setting it up took.
//!
//! reqwest hides its connection pool, so the client learns about connections in two places:
//! a layer around the pool's connector ([`TrackLayer`]) sees every connection being opened and
//! notes, by the connection's local address, when opening started and when it was ready; and
//! every response carries the local address of the connection it came on (hyper-util's
//! `HttpInfo`). The first response on a connection claims its note: if the connection became
//! ready after that request was sent, the request waited for it, and the wait is its connect
//! time. Later responses on the same connection find no note: the connection was reused.
//!
//! A connection the pool opened for a request that then went out on another one (the pool
//! races a checkout against the connect) is first used later by some other request; it was
//! ready before that request was sent, so that request did not wait and is not counted.
//!
//! Port-forwarded baselines: the local TCP connect completes at once (the kernel accepts it);
//! the forwarded stream to the pod is opened when lmbench's port-forward accepts the
//! connection, and the request waits for it behind the connect. The port-forward reports that
//! set-up here ([`relay_ready`]), keyed by the client's address, and the client adds it to the
//! connect time of the request that waited for it.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::client::legacy::connect::{Connection, HttpInfo};

/// When opening a connection started and when it was ready.
#[derive(Debug, Clone, Copy)]
pub(super) struct Opened {
    started: Instant,
    ready: Instant,
}

/// The connections one pool opened that no response has come back on yet, by local address.
#[derive(Debug, Default)]
pub(super) struct Registry {
    /// How many are held: the common case (no new connection since the last claim) needs no
    /// lock.
    held: AtomicUsize,
    opened: Mutex<HashMap<SocketAddr, Opened>>,
}

/// Notes older than this are dropped when a new one comes in: their connection failed before
/// any response, or never carried a request.
const STALE_NOTE: Duration = Duration::from_secs(600);

impl Registry {
    fn note(&self, local: SocketAddr, opened: Opened) {
        let mut map = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= 64 {
            map.retain(|_, o| opened.ready.duration_since(o.ready) < STALE_NOTE);
        }
        // A local port reused by a newer connection replaces the older note.
        map.insert(local, opened);
        self.held.store(map.len(), Ordering::Release);
    }

    /// The note of the connection at `local`, taken, if no response has claimed it yet.
    fn claim(&self, local: SocketAddr) -> Option<Opened> {
        if self.held.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut map = self.opened.lock().unwrap_or_else(|e| e.into_inner());
        let got = map.remove(&local);
        self.held.store(map.len(), Ordering::Release);
        got
    }

    /// What a response on the connection at `local` (from its `HttpInfo`; `None` where the
    /// response carried none) says about its request, sent at `sent`: whether it waited for a
    /// new connection, and if so for how many milliseconds.
    pub(super) fn connection_of(
        &self,
        local: Option<SocketAddr>,
        sent: Instant,
    ) -> (Option<bool>, Option<f64>) {
        let Some(local) = local else {
            return (None, None);
        };
        match self.claim(local) {
            Some(o) if o.ready > sent => {
                let mut wait = o.ready.duration_since(o.started.max(sent));
                if let Some(relay) = take_relay(local) {
                    wait += relay;
                }
                (Some(true), Some(wait.as_secs_f64() * 1000.0))
            }
            _ => {
                // A port-forward note of a reused connection is of no further use.
                if relays_held() {
                    let _ = take_relay(local);
                }
                (Some(false), None)
            }
        }
    }
}

/// The connector layer that notes every connection a pool opens into its [`Registry`].
#[derive(Debug, Clone)]
pub(super) struct TrackLayer(pub(super) Arc<Registry>);

impl<S> tower_layer::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            registry: self.0.clone(),
        }
    }
}

/// [`TrackLayer`]'s service: the connector, timed.
#[derive(Debug, Clone)]
pub(super) struct Track<S> {
    inner: S,
    registry: Arc<Registry>,
}

impl<S, R> tower_service::Service<R> for Track<S>
where
    S: tower_service::Service<R>,
    S::Response: Connection + Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let started = Instant::now();
        let connecting = self.inner.call(req);
        let registry = self.registry.clone();
        // One allocation per new connection, none per request.
        Box::pin(async move {
            let conn = connecting.await?;
            let ready = Instant::now();
            let mut extras = http::Extensions::new();
            conn.connected().get_extras(&mut extras);
            if let Some(info) = extras.get::<HttpInfo>() {
                registry.note(info.local_addr(), Opened { started, ready });
            }
            Ok(conn)
        })
    }
}

/// Set-up times of forwarded streams, by the address of the client whose connection they
/// carry: process-wide, since the port-forward and the client share nothing else.
fn relays() -> &'static Mutex<HashMap<SocketAddr, Duration>> {
    static RELAYS: OnceLock<Mutex<HashMap<SocketAddr, Duration>>> = OnceLock::new();
    RELAYS.get_or_init(Default::default)
}

/// How many set-up notes are held (no lock needed where there is no port-forward).
static RELAYS_HELD: AtomicUsize = AtomicUsize::new(0);

fn relays_held() -> bool {
    RELAYS_HELD.load(Ordering::Acquire) > 0
}

fn take_relay(client: SocketAddr) -> Option<Duration> {
    let mut map = relays().lock().unwrap_or_else(|e| e.into_inner());
    let got = map.remove(&client);
    RELAYS_HELD.store(map.len(), Ordering::Release);
    got
}

/// A port-forward accepted the connection from `client` and took `took` to open its stream
/// to the pod: the first request on that connection waited for it behind the TCP connect.
pub fn relay_ready(client: SocketAddr, took: Duration) {
    let mut map = relays().lock().unwrap_or_else(|e| e.into_inner());
    map.insert(client, took);
    RELAYS_HELD.store(map.len(), Ordering::Release);
}

/// The forwarded connection from `client` ended: its note, if no request claimed it, goes.
pub fn relay_closed(client: SocketAddr) {
    if relays_held() {
        let _ = take_relay(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The first response on a connection opened after its request was sent claims the
    /// connect time; later responses on it, and responses on unknown connections, are reuses.
    #[test]
    fn the_first_response_claims_the_connect() {
        let reg = Registry::default();
        let t0 = Instant::now();
        let sent = t0 + Duration::from_millis(5);
        reg.note(
            addr(1),
            Opened {
                started: t0 + Duration::from_millis(6),
                ready: t0 + Duration::from_millis(206),
            },
        );
        let (new, ms) = reg.connection_of(Some(addr(1)), sent);
        assert_eq!(new, Some(true));
        assert!((ms.unwrap() - 200.0).abs() < 1e-6, "{ms:?}");
        assert_eq!(reg.connection_of(Some(addr(1)), sent), (Some(false), None));
        assert_eq!(reg.connection_of(Some(addr(2)), sent), (Some(false), None));
        assert_eq!(reg.connection_of(None, sent), (None, None));
        assert_eq!(reg.held.load(Ordering::Relaxed), 0);
    }

    /// A connection opened before the request was sent (in the background, or for another
    /// request) cost it nothing; one whose connect started before the send counts from the send.
    #[test]
    fn only_the_wait_after_the_send_counts() {
        let reg = Registry::default();
        let t0 = Instant::now();
        reg.note(
            addr(3),
            Opened {
                started: t0,
                ready: t0 + Duration::from_millis(10),
            },
        );
        let late = t0 + Duration::from_millis(50);
        assert_eq!(reg.connection_of(Some(addr(3)), late), (Some(false), None));
        reg.note(
            addr(4),
            Opened {
                started: t0,
                ready: t0 + Duration::from_millis(100),
            },
        );
        let (new, ms) = reg.connection_of(Some(addr(4)), t0 + Duration::from_millis(40));
        assert_eq!(new, Some(true));
        assert!((ms.unwrap() - 60.0).abs() < 1e-6, "{ms:?}");
    }

    /// A forwarded stream's set-up is added to the connect time of the request that waited
    /// for it, once; a reused connection drops the note.
    #[test]
    fn a_relay_set_up_adds_to_the_connect() {
        let reg = Registry::default();
        let t0 = Instant::now();
        // The notes are process-wide: addresses no real connection of the tests uses.
        let (a, b) = (
            SocketAddr::from(([127, 0, 0, 2], 1)),
            SocketAddr::from(([127, 0, 0, 2], 2)),
        );
        reg.note(
            a,
            Opened {
                started: t0,
                ready: t0 + Duration::from_millis(1),
            },
        );
        relay_ready(a, Duration::from_millis(30));
        relay_ready(b, Duration::from_millis(30));
        let (new, ms) = reg.connection_of(Some(a), t0);
        assert_eq!(new, Some(true));
        assert!((ms.unwrap() - 31.0).abs() < 1e-6, "{ms:?}");
        assert_eq!(take_relay(a), None);
        assert_eq!(reg.connection_of(Some(b), t0), (Some(false), None));
        assert_eq!(take_relay(b), None);
        relay_ready(b, Duration::from_millis(1));
        relay_closed(b);
        assert_eq!(take_relay(b), None);
    }
}
