//! For tests: the client configuration the unit tests use against the simulated engine, an
//! `https://` front whose TLS handshake takes a known time, so that opening a connection
//! through it is slow by a known amount (a TCP connect on loopback cannot be made slow: the
//! kernel completes it before the server accepts), and a streaming server that ends each
//! response body a known time after its `[DONE]`.

use std::net::SocketAddr;

use crate::client::ClientConfig;
use crate::record::ApiType;

/// A client configuration for the simulated engine at `base_url`: its default model, the
/// completions API, a 20 s limit per request, nothing else set.
pub(crate) fn sim_config(base_url: &str) -> ClientConfig {
    ClientConfig {
        base_url: base_url.to_string(),
        model: crate::sim::SimConfig::default().model,
        api: ApiType::Completions,
        request_timeout: Duration::from_secs(20),
        api_key: None,
        extra_body: Default::default(),
        ca_cert: None,
    }
}
use std::sync::Arc;
use std::time::Duration;

/// A TLS terminator in front of a plain-TCP backend; its certificate is signed by a CA generated
/// for it, whose PEM file the client trusts through `ca_cert`.
pub(crate) struct SlowTls {
    /// `https://127.0.0.1:<port>`.
    pub(crate) base_url: String,
    /// The CA's PEM file.
    pub(crate) ca: tempfile::NamedTempFile,
}

/// Serves TLS on a free loopback port and relays to `backend`; each connection's handshake
/// starts `delay` after it was accepted.
pub(crate) async fn slow_tls_front(backend: SocketAddr, delay: Duration) -> SlowTls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    use tokio_rustls::rustls;
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "lmbench test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let mut ca_file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut ca_file, ca.pem().as_bytes()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().to_vec().into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                    let _ = plain.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    SlowTls {
        base_url: format!("https://127.0.0.1:{port}"),
        ca: ca_file,
    }
}

/// An OpenAI-compatible completions server (HTTP/1.1, keep-alive) that answers every request
/// with one streamed token `first_token` after reading it, then `[DONE]`, and ends the chunked
/// body `end_after` later. Returns its base URL.
pub(crate) async fn late_end_server(first_token: Duration, end_after: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                // Reads more of the connection into `buf`; false once it is closed.
                async fn more(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
                    let mut chunk = [0u8; 8192];
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => false,
                        Ok(n) => {
                            buf.extend_from_slice(&chunk[..n]);
                            true
                        }
                    }
                }
                loop {
                    // One request: its head, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        if !more(&mut tcp, &mut buf).await {
                            return;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < head_end + len {
                        if !more(&mut tcp, &mut buf).await {
                            return;
                        }
                    }
                    buf.drain(..head_end + len);
                    let chunk = |data: &str| {
                        let event = format!("data: {data}\n\n");
                        format!("{:x}\r\n{event}\r\n", event.len())
                    };
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                                transfer-encoding: chunked\r\n\r\n";
                    let token = chunk(concat!(
                        r#"{"choices":[{"index":0,"text":"hi","finish_reason":"length"}],"#,
                        r#""usage":{"prompt_tokens":5,"completion_tokens":1}}"#
                    ));
                    tokio::time::sleep(first_token).await;
                    let done = format!("{head}{token}{}", chunk("[DONE]"));
                    if tcp.write_all(done.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(end_after).await;
                    if tcp.write_all(b"0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}
