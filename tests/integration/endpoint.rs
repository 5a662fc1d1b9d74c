//! The `Endpoint` baseline end to end: `lmbench run` against an OpenAI-compatible server that
//! is already running — lmbench's simulated engine, requiring an API key, behind a TLS
//! terminator with a certificate from a private CA generated here (rcgen). lmbench must trust
//! the CA only through `caCert`, send the key it reads from the variable `apiKeyEnv` names,
//! write that key nowhere, and leave the server running.

use crate::util::*;
use std::path::Path;
use std::sync::Arc;

/// A private CA and a server certificate it signed for `localhost` and 127.0.0.1: (CA PEM,
/// server certificate DER, server key DER).
fn certificates() -> (String, Vec<u8>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "lmbench endpoint test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), cert.der().to_vec(), key.serialize_der())
}

/// A TLS terminator on a free port of 127.0.0.1 in front of `backend` (plain TCP), serving
/// `cert`/`key`. Returns its port.
async fn tls_front(backend: std::net::SocketAddr, cert: Vec<u8>, key: Vec<u8>) -> u16 {
    use tokio_rustls::rustls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that rejects the certificate ends the handshake: nothing to forward.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    port
}

const KEY_ENV: &str = "LMBENCH_TEST_ENDPOINT_KEY";
const API_KEY: &str = "sk-endpoint-test-4f1c9a7e2b";

/// A suite with one Endpoint baseline at `base_url` (`extra` adds keys), in `root`.
fn write_suite(root: &Path, base_url: &str, extra: &str) {
    std::fs::create_dir_all(root.join("0-bench-specs")).unwrap();
    std::fs::write(
        root.join("run-bench.yaml"),
        "0-bench-specs:\n  - endpoint.yaml\n1-infrastructure:\n  Location: Local-Flat\n",
    )
    .unwrap();
    std::fs::write(
        root.join("0-bench-specs/endpoint.yaml"),
        format!(
            "Name: e2e-endpoint\nServing:\n  - Endpoint:\n      name: remote\n      baseURL: {base_url}\n      modelURL: sim-model\n      apiKeyEnv: {KEY_ENV}\n{extra}Workload:\n  Random:\n    - NUM_USERS: 2\n      NUM_ROUNDS: 2\n      PROMPT_LEN: 16\n      ANSWER_LEN: 4\n      QPS: [4]\n      DURATION: 1\n"
        ),
    )
    .unwrap();
}

/// Every file under `dir`, read as text (lossily).
fn all_text(dir: &Path, out: &mut String) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            all_text(&p, out);
        } else {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
}

#[test]
fn endpoint_over_https_with_a_private_ca_and_a_key_from_the_environment() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ca_pem, cert, key) = certificates();
    let sim = rt
        .block_on(lmbench::sim::spawn_local(lmbench::sim::SimConfig {
            mode: lmbench::sim::SimMode::Fixed,
            ttft_ms: 20.0,
            itl_ms: 2.0,
            api_key: Some(API_KEY.into()),
            ..lmbench::sim::SimConfig::default()
        }))
        .unwrap();
    let port = rt.block_on(tls_front(sim.addr, cert, key));
    let url = format!("https://localhost:{port}/v1");

    // Trusting the CA through caCert, with the key: every request succeeds.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(root.join("ca.pem"), &ca_pem).unwrap();
    write_suite(root, &url, "      caCert: ca.pem\n");
    let results = root.join("results");
    let out = lmbench()
        .current_dir(root)
        .env(KEY_ENV, API_KEY)
        .args(["run", "--results-dir"])
        .arg(&results)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let files = result_files(&results.join("e2e-endpoint"));
    assert_eq!(files.len(), 1, "{files:?}");
    let v = read_json(&files[0]);
    assert_lmbench_shape(&v);
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("endpoint_remote_random_4_"));
    assert_eq!(v["serving"]["baseline_type"], "Endpoint");
    assert_eq!(v["serving"]["config"]["apiKeyEnv"], KEY_ENV);
    assert_eq!(v["lmbench"]["run"]["endpoint"], url);
    let r = &v["results"];
    assert!(r["successful_requests"].as_u64().unwrap() >= 3, "{r}");
    assert_eq!(r["failed_requests"], 0, "{r}");
    // Nothing was deployed: no engine log, and the server is still there afterwards.
    assert!(!results
        .join("e2e-endpoint/pod-logs/endpoint_remote.log")
        .exists());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    // The key is in no file lmbench wrote, nor in its output.
    let mut written = String::new();
    all_text(&results, &mut written);
    assert!(!written.is_empty());
    assert!(
        !written.contains(API_KEY),
        "the API key reached a result file"
    );
    assert!(!stderr.contains(API_KEY) && !stdout.contains(API_KEY));

    // Without caCert the private CA is not trusted: the readiness check fails (exit 1) and
    // says why; nothing is left behind to tear down.
    let tmp = tempfile::tempdir().unwrap();
    write_suite(tmp.path(), &url, "");
    let out = lmbench()
        .current_dir(tmp.path())
        .env(KEY_ENV, API_KEY)
        .args(["run", "--ready-timeout", "2", "--results-dir"])
        .arg(tmp.path().join("results"))
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("did not become ready") && stderr.to_lowercase().contains("certificate"),
        "{stderr}"
    );
    assert!(!stderr.contains(API_KEY));

    // With the wrong key, the server's 401 is what the readiness check reports.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ca.pem"), &ca_pem).unwrap();
    write_suite(tmp.path(), &url, "      caCert: ca.pem\n");
    let out = lmbench()
        .current_dir(tmp.path())
        .env(KEY_ENV, "sk-wrong")
        .args(["run", "--ready-timeout", "2", "--results-dir"])
        .arg(tmp.path().join("results"))
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");

    // The variable apiKeyEnv names is not set: bad input, exit 2, before anything runs.
    let out = lmbench()
        .current_dir(tmp.path())
        .env_remove(KEY_ENV)
        .arg("run")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(KEY_ENV) && stderr.contains("apiKeyEnv"),
        "{stderr}"
    );
    rt.block_on(sim.shutdown()).unwrap();
}
