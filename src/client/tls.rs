//! TLS for `https://` endpoints: rustls with the `ring` crypto provider, the same provider
//! kube-rs uses, so one provider serves every client in the process (two compiled-in
//! providers make rustls refuse to choose at run time).
//!
//! Every HTTP client lmbench builds comes from [`builder`], which installs `ring` as the
//! process's provider first. Server certificates are checked against the system's trust store
//! (rustls-platform-verifier) plus, where a baseline sets `caCert`, the certificate
//! authorities of that PEM file — for an endpoint with a private or self-signed certificate.
//! Code that builds a `reqwest` client by other means (a test) calls [`install_provider`]
//! first.

use std::path::Path;

/// Make `ring` the process's rustls crypto provider (once; later calls do nothing).
pub fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only when a provider is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The certificate authorities of a PEM file, for trusting an endpoint's private
/// certificate. Errors name the file.
pub fn ca_certificates(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{} is not a PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A `reqwest` client builder that can speak `https://`, trusting the system's certificate
/// authorities and those in `ca_cert` (a PEM file), if given.
pub fn builder(ca_cert: Option<&Path>) -> Result<reqwest::ClientBuilder, String> {
    install_provider();
    let b = reqwest::Client::builder();
    Ok(match ca_cert {
        Some(p) => b.tls_certs_merge(ca_certificates(p)?),
        None => b,
    })
}
