//! Pod port-forwarding over WebSocket, framed the way the API server and kubelet frame it:
//! subprotocol `v4.channel.k8s.io`; every binary message starts with its channel byte; each
//! requested port has a data channel (2i) and an error channel (2i+1); the server's first
//! message on every channel is the port number as two little-endian bytes. Data for a port is
//! relayed to a fresh TCP connection to the fake's backend. When the backend closes (or cannot
//! be reached: the error channel says why) on every port, the server closes the WebSocket; when
//! the client closes it, the backend connections are dropped.

use super::api::{self, ApiError};
use super::controllers;
use super::server::Shared;
use super::store::Key;
use super::PortForwardStats;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The only subprotocol the port-forward endpoint speaks.
pub const PROTOCOL: &str = "v4.channel.k8s.io";

fn error(e: ApiError) -> Response {
    (
        axum::http::StatusCode::from_u16(e.code).unwrap_or(axum::http::StatusCode::BAD_REQUEST),
        [(header::CONTENT_TYPE, "application/json")],
        e.status().to_string(),
    )
        .into_response()
}

fn refused(port: u16, pod: &str, ns: &str) -> String {
    format!(
        "error forwarding port {port} to pod {pod}, uid : failed to connect to localhost:{port} inside namespace \"{ns}\": dial tcp4 127.0.0.1:{port}: connect: connection refused"
    )
}

/// Answers `GET .../pods/{name}/portforward?ports=...`: checks the pod, then upgrades.
pub async fn handle(
    sh: Arc<Shared>,
    parts: &mut Parts,
    ns: &str,
    name: &str,
    port_params: &[&str],
) -> Response {
    let pods = api::find("", "v1", "pods").expect("served");
    let (declared, crash) = {
        let s = sh.store();
        let Some(stored) = s.get(&Key::new(pods, ns, name)) else {
            return error(ApiError::not_found(pods, name));
        };
        let pod = &stored.obj;
        if pod["spec"]["nodeName"].is_null() {
            return error(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("Unknown");
        if phase != "Running" {
            return error(ApiError::bad_request(format!(
                "unable to upgrade connection: pod {name} in namespace {ns} is not running (phase {phase})"
            )));
        }
        let declared: Vec<u16> = pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .filter_map(|p| {
                p["containerPort"]
                    .as_u64()
                    .and_then(|n| u16::try_from(n).ok())
            })
            .collect();
        let crash = stored
            .sim
            .as_ref()
            .is_some_and(|sim| sim.crash && controllers::started(&s, sim, Instant::now()));
        (declared, crash)
    };
    let mut ports = Vec::new();
    for p in port_params.iter().flat_map(|v| v.split(',')) {
        match p.trim().parse::<u16>() {
            Ok(n) if n > 0 => ports.push(n),
            _ => {
                return error(ApiError::bad_request(format!(
                    "invalid port {p:?} in ports query parameter"
                )))
            }
        }
    }
    if ports.is_empty() {
        return error(ApiError::bad_request("at least 1 port must be specified"));
    }
    tokio::time::sleep(sh.forward_delay).await;
    let Ok(ws) = WebSocketUpgrade::from_request_parts(parts, &()).await else {
        return error(ApiError::bad_request("Upgrade request required"));
    };
    let backend = *sh.backend.lock().unwrap_or_else(|e| e.into_inner());
    let mut targets = Vec::new();
    let mut stats = Vec::new();
    for &p in &ports {
        // A port no container declares, or a crashed container, has nothing listening.
        let target = if crash || (!declared.is_empty() && !declared.contains(&p)) {
            Err(refused(p, name, ns))
        } else {
            backend.ok_or_else(|| refused(p, name, ns))
        };
        targets.push(target);
        let st = Arc::new(PortForwardStats::new(ns, name, p));
        sh.forwards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&st));
        stats.push(st);
    }
    let shutdown = sh.shutdown.clone();
    ws.protocols([PROTOCOL])
        .on_upgrade(move |socket| relay(socket, ports, targets, stats, shutdown))
}

enum Out {
    Frame(Vec<u8>),
    Done,
}

fn frame(channel: usize, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(data.len() + 1);
    f.push(channel as u8);
    f.extend_from_slice(data);
    f
}

async fn port_task(
    i: usize,
    target: Result<SocketAddr, String>,
    mut from_client: mpsc::UnboundedReceiver<Bytes>,
    out: mpsc::Sender<Out>,
    stats: Arc<PortForwardStats>,
) {
    let conn = match target {
        Ok(addr) => TcpStream::connect(addr).await.map_err(|e| {
            format!(
                "error forwarding port {} to backend {addr}: {e}",
                stats.port
            )
        }),
        Err(e) => Err(e),
    };
    let conn = match conn {
        Ok(c) => c,
        Err(msg) => {
            *stats.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.clone());
            let _ = out.send(Out::Frame(frame(2 * i + 1, msg.as_bytes()))).await;
            let _ = out.send(Out::Done).await;
            return;
        }
    };
    let _ = conn.set_nodelay(true);
    let (mut rd, mut wr) = conn.into_split();
    let st = Arc::clone(&stats);
    let writer = tokio::spawn(async move {
        while let Some(b) = from_client.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
            st.bytes_to_pod.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        let _ = wr.shutdown().await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                stats.bytes_from_pod.fetch_add(n as u64, Ordering::Relaxed);
                if out.send(Out::Frame(frame(2 * i, &buf[..n]))).await.is_err() {
                    break;
                }
            }
        }
    }
    writer.abort();
    let _ = out.send(Out::Done).await;
}

async fn relay(
    mut socket: WebSocket,
    ports: Vec<u16>,
    targets: Vec<Result<SocketAddr, String>>,
    stats: Vec<Arc<PortForwardStats>>,
    shutdown: CancellationToken,
) {
    for (i, p) in ports.iter().enumerate() {
        for ch in [2 * i, 2 * i + 1] {
            if socket
                .send(Message::Binary(frame(ch, &p.to_le_bytes()).into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let mut to_backend = Vec::new();
    let mut tasks = Vec::new();
    for (i, (target, st)) in targets.into_iter().zip(stats).enumerate() {
        // Unbounded, so a slow backend never stops this loop from sending its answers back.
        let (tx, rx) = mpsc::unbounded_channel();
        to_backend.push(tx);
        tasks.push(tokio::spawn(port_task(i, target, rx, out_tx.clone(), st)));
    }
    drop(out_tx);
    let mut done = 0;
    loop {
        tokio::select! {
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let ch = usize::from(b[0]);
                    // Data goes on even channels; anything on an error channel is ignored.
                    if ch % 2 == 0 && ch / 2 < to_backend.len() {
                        let _ = to_backend[ch / 2].send(b.slice(1..));
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // The WebSocket queued its close reply; send it before hanging up.
                    let _ = futures_util::SinkExt::flush(&mut socket).await;
                    break;
                }
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            out = out_rx.recv() => match out {
                Some(Out::Frame(f)) => {
                    if socket.send(Message::Binary(f.into())).await.is_err() {
                        break;
                    }
                }
                Some(Out::Done) => {
                    done += 1;
                    if done == ports.len() {
                        let _ = socket.send(Message::Close(None)).await;
                        // Give the client a moment to answer the close handshake.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while let Some(Ok(m)) = socket.recv().await {
                                if matches!(m, Message::Close(_)) {
                                    break;
                                }
                            }
                        })
                        .await;
                        break;
                    }
                }
                None => break,
            },
            _ = shutdown.cancelled() => break,
        }
    }
    for t in tasks {
        t.abort();
    }
}
