//! Upload of result files to a dashboard, with LMBench's protocol (`upload_to_api.py`):
//! `GET <url without /upload>/health` (10 s), then one `multipart/form-data` POST per result
//! JSON with the single field `file` = (basename, bytes, `application/json`), 30 s each; a file
//! is accepted iff the answer is HTTP 200. The answer's `parsed_data.suite_name`,
//! `baseline_key` and `workload_type` are logged when present.
//!
//! Differences from LMBench: an optional `Authorization: Bearer` token (never logged, never in
//! an error message); `*_PROXY` variables and redirects are not followed; every file is tried
//! and all failures are reported together; a folder's `*_comparison.json` files are skipped.
//! Uploads go to `http://` URLs only (a dashboard behind TLS is reached through a local
//! TLS-terminating proxy or an SSH tunnel).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{StatusCode, Url};

/// Limit of the health check, as in LMBench.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit of one file's POST, as in LMBench.
pub const POST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of a failing answer's body goes into the error.
const BODY_EXCERPT_CHARS: usize = 300;

/// What an upload did.
#[derive(Debug, Clone, Default)]
pub struct UploadSummary {
    /// Files accepted by the server, in upload order.
    pub uploaded: Vec<PathBuf>,
}

/// Upload one result file, or every result JSON in a folder, to `url` (LMBench's protocol:
/// `GET <base>/health`, then a multipart POST with field `file` per JSON). Any failure is an
/// error; with a folder every file is tried first and the error names each one that failed.
pub async fn upload_path(
    path: &Path,
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<UploadSummary> {
    let upload_url = parse_upload_url(url)?;
    let health = health_url(&upload_url);
    let auth = auth_header(token)?;
    let files = files_to_upload(path)?;
    let client = crate::client::tls::builder(None)
        .map_err(anyhow::Error::msg)?
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot build the HTTP client")?;

    check_health(&client, &health).await?;

    let mut summary = UploadSummary::default();
    let mut failures = Vec::new();
    for file in &files {
        match upload_file(&client, &upload_url, auth.as_ref(), file, token).await {
            Ok(()) => summary.uploaded.push(file.clone()),
            Err(e) => {
                tracing::debug!("upload of {} failed: {e}", file.display());
                failures.push(format!("{}: {e}", file.display()));
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} file(s) not accepted by {}:\n  {}",
            failures.len(),
            files.len(),
            display_url(&upload_url),
            failures.join("\n  ")
        );
    }
    Ok(summary)
}

/// Parse and check an upload URL: `http://` only.
pub fn parse_upload_url(url: &str) -> anyhow::Result<Url> {
    let parsed = Url::parse(url.trim()).with_context(|| format!("invalid upload URL {url:?}"))?;
    match parsed.scheme() {
        "http" => {}
        "https" => bail!(
            "upload URL {}: https is not supported for uploads yet; use an http:// URL (for \
             example through a local TLS-terminating proxy or an SSH tunnel)",
            display_url(&parsed)
        ),
        other => bail!(
            "upload URL {}: scheme {other:?} is not supported; use http://",
            display_url(&parsed)
        ),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        bail!("upload URL {}: no host", display_url(&parsed));
    }
    Ok(parsed)
}

/// The health-check URL of an upload URL, as LMBench derives it: the path without trailing
/// slashes and without a final `/upload`, then `/health` (query and fragment dropped).
pub fn health_url(upload_url: &Url) -> Url {
    let mut u = upload_url.clone();
    let path = u.path().trim_end_matches('/');
    let base = path.strip_suffix("/upload").unwrap_or(path);
    let base = base.trim_end_matches('/').to_string();
    u.set_path(&format!("{base}/health"));
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// The URL for logs and errors: user name and password removed.
pub fn display_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// The result files `path` stands for: the file itself, or every `*.json` directly in the
/// folder except `*_comparison.json` and hidden files, sorted.
pub fn files_to_upload(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        if path.extension().is_none_or(|e| e != "json") {
            bail!("{} is not a result JSON (.json)", path.display());
        }
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?
    {
        let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
        let p = entry.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".json") || name.ends_with("_comparison.json") {
            continue;
        }
        if p.is_file() {
            files.push(p);
        }
    }
    if files.is_empty() {
        bail!(
            "no result JSON in {} (give a suite folder such as 4-latest-results/<suite Name>, \
             or one result file)",
            path.display()
        );
    }
    files.sort();
    Ok(files)
}

fn auth_header(token: Option<&str>) -> anyhow::Result<Option<HeaderValue>> {
    // An unset CI secret arrives as an empty string: that means no token, not `Bearer `.
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        anyhow::anyhow!("the upload token contains characters not allowed in an HTTP header")
    })?;
    v.set_sensitive(true);
    Ok(Some(v))
}

async fn check_health(client: &reqwest::Client, health: &Url) -> anyhow::Result<()> {
    let shown = display_url(health);
    let resp = client
        .get(health.clone())
        .timeout(HEALTH_TIMEOUT)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("health check GET {shown} failed: {}", describe(&e)))?;
    let status = resp.status();
    if status != StatusCode::OK {
        let body = excerpt(&resp.text().await.unwrap_or_default(), None);
        bail!("health check GET {shown} answered {status}{body}");
    }
    tracing::debug!("{shown} is healthy");
    Ok(())
}

async fn upload_file(
    client: &reqwest::Client,
    url: &Url,
    auth: Option<&HeaderValue>,
    file: &Path,
    token: Option<&str>,
) -> Result<(), String> {
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| format!("cannot read the file: {e}"))?;
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        return Err(format!("not valid JSON, not sent: {e}"));
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name)
        .mime_str("application/json")
        .map_err(|e| e.to_string())?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let mut req = client
        .post(url.clone())
        .timeout(POST_TIMEOUT)
        .multipart(form);
    if let Some(a) = auth {
        req = req.header(AUTHORIZATION, a.clone());
    }
    let resp = req.send().await.map_err(|e| describe(&e))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    let body = resp
        .text()
        .await
        .map_err(|e| format!("HTTP {status}, body unreadable: {}", describe(&e)))?;
    if status != StatusCode::OK {
        let mut msg = format!("HTTP {status}{}", excerpt(&body, token));
        if let Some(l) = location.filter(|_| status.is_redirection()) {
            msg.push_str(&format!(
                " (redirect to {l}: redirects are not followed, give the final URL)"
            ));
        }
        return Err(msg);
    }
    log_accepted(file, &body);
    Ok(())
}

fn log_accepted(file: &Path, body: &str) {
    let parsed = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("parsed_data").cloned())
        .filter(|p| p.is_object());
    match parsed {
        Some(p) => {
            let field = |k: &str| match p.get(k) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => "?".to_string(),
            };
            tracing::info!(
                "uploaded {}: suite {}, baseline {}, workload {}",
                file.display(),
                field("suite_name"),
                field("baseline_key"),
                field("workload_type")
            );
        }
        None => tracing::info!("uploaded {}", file.display()),
    }
}

/// `reqwest::Error` without its URL (which could carry credentials) and with its causes.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// `: <body>` on one line, cut to [`BODY_EXCERPT_CHARS`], the token (if the server echoed it)
/// replaced; empty for an empty body.
fn excerpt(body: &str, token: Option<&str>) -> String {
    let mut text = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
        text = text.replace(t, "<redacted>");
    }
    if text.is_empty() {
        return String::new();
    }
    let total = text.chars().count();
    if total > BODY_EXCERPT_CHARS {
        let cut: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
        format!(": {cut}… ({total} characters)")
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(u: &str) -> String {
        health_url(&parse_upload_url(u).unwrap()).to_string()
    }

    #[test]
    fn health_url_drops_a_final_upload_segment() {
        assert_eq!(
            health("http://localhost:3001/upload"),
            "http://localhost:3001/health"
        );
        assert_eq!(
            health("http://localhost:3001/upload/"),
            "http://localhost:3001/health"
        );
        assert_eq!(
            health("http://localhost:3001/upload//"),
            "http://localhost:3001/health"
        );
        assert_eq!(
            health("http://10.0.0.5:3001/api/upload?x=1"),
            "http://10.0.0.5:3001/api/health"
        );
    }

    #[test]
    fn health_url_without_upload_appends_health() {
        assert_eq!(health("http://h:8080"), "http://h:8080/health");
        assert_eq!(health("http://h:8080/"), "http://h:8080/health");
        assert_eq!(health("http://h/api/"), "http://h/api/health");
        // Only a whole `/upload` segment is dropped.
        assert_eq!(health("http://h/uploads"), "http://h/uploads/health");
        assert_eq!(health("http://h/my-upload"), "http://h/my-upload/health");
    }

    #[test]
    fn https_is_rejected_with_the_reason() {
        let e = parse_upload_url("https://dash.example.com/upload")
            .unwrap_err()
            .to_string();
        assert!(e.contains("https is not supported"), "{e}");
        assert!(e.contains("for uploads yet"), "{e}");
        assert!(e.contains("http://"), "{e}");
        let e = parse_upload_url("HTTPS://dash.example.com/upload")
            .unwrap_err()
            .to_string();
        assert!(e.contains("for uploads yet"), "{e}");
    }

    #[test]
    fn other_bad_urls_are_rejected() {
        assert!(parse_upload_url("ftp://h/upload")
            .unwrap_err()
            .to_string()
            .contains("\"ftp\""));
        assert!(parse_upload_url("localhost:3001/upload").is_err());
        assert!(parse_upload_url("not a url").is_err());
        assert!(parse_upload_url(" http://h:1/upload ").is_ok());
    }

    #[test]
    fn credentials_in_the_url_are_not_displayed() {
        let u = parse_upload_url("http://me:hunter2@h:1/upload").unwrap();
        let shown = display_url(&u);
        assert!(
            !shown.contains("hunter2") && !shown.contains("me@"),
            "{shown}"
        );
        assert_eq!(health_url(&u).password(), Some("hunter2"));
    }

    #[test]
    fn empty_token_means_no_header_and_bad_token_is_not_echoed() {
        assert!(auth_header(None).unwrap().is_none());
        assert!(auth_header(Some("")).unwrap().is_none());
        assert!(auth_header(Some("  ")).unwrap().is_none());
        let h = auth_header(Some(" abc ")).unwrap().unwrap();
        assert_eq!(h.to_str().unwrap(), "Bearer abc");
        assert!(h.is_sensitive());
        let e = auth_header(Some("sec\nret")).unwrap_err().to_string();
        assert!(!e.contains("sec"), "{e}");
    }

    #[test]
    fn body_excerpt_is_one_line_cut_and_redacted() {
        assert_eq!(excerpt("", None), "");
        assert_eq!(excerpt("bad\n  thing", None), ": bad thing");
        assert_eq!(
            excerpt("token tok123 rejected", Some("tok123")),
            ": token <redacted> rejected"
        );
        let long = "é".repeat(1000);
        let e = excerpt(&long, None);
        assert!(e.ends_with("… (1000 characters)"), "{e}");
        assert_eq!(e.chars().filter(|c| *c == 'é').count(), BODY_EXCERPT_CHARS);
    }

    #[test]
    fn a_folder_means_its_result_jsons_only() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "b_random_4_20250101-1200.json",
            "a_synthetic_2_20250101-1200.json",
            "a_synthetic_2_20250101-1200.requests.jsonl",
            "synthetic_comparison.json",
            "report.html",
            ".a.json.1.0.tmp",
            ".hidden.json",
        ] {
            std::fs::write(dir.path().join(n), "{}").unwrap();
        }
        std::fs::create_dir(dir.path().join("pod-logs.json")).unwrap();
        let files = files_to_upload(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "a_synthetic_2_20250101-1200.json",
                "b_random_4_20250101-1200.json"
            ]
        );
        let one = dir.path().join("b_random_4_20250101-1200.json");
        assert_eq!(files_to_upload(&one).unwrap(), [one]);
        let jsonl = dir
            .path()
            .join("a_synthetic_2_20250101-1200.requests.jsonl");
        assert!(files_to_upload(&jsonl).is_err());
        let empty = tempfile::tempdir().unwrap();
        assert!(files_to_upload(empty.path())
            .unwrap_err()
            .to_string()
            .contains("no result JSON"));
        assert!(files_to_upload(&dir.path().join("missing")).is_err());
    }
}
