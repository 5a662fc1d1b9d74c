//! `lmbench upload` and `lmbench run --upload-url` against a real HTTP dashboard stand-in on
//! loopback that records every request: the health check comes first, each result JSON arrives
//! as the multipart field `file` with its basename and exact bytes, the bearer token is sent
//! but never printed, and failures give exit 1 naming the file.

use crate::util::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "secret123";

/// One part of a multipart/form-data body.
#[derive(Debug, Clone)]
struct FormPart {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

/// What the server received, in order.
#[derive(Debug, Clone)]
enum Seen {
    Health,
    Upload {
        auth: Option<String>,
        parts: Vec<FormPart>,
    },
}

#[derive(Clone)]
struct ServerState {
    health_status: StatusCode,
    upload_status: StatusCode,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// A dashboard stand-in on 127.0.0.1:0; its runtime lives as long as this value.
struct Dashboard {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    _rt: tokio::runtime::Runtime,
}

impl Dashboard {
    fn start(health_status: StatusCode, upload_status: StatusCode) -> Dashboard {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = ServerState {
            health_status,
            upload_status,
            seen: seen.clone(),
        };
        let app = Router::new()
            .route("/health", get(health))
            .route("/upload", post(upload))
            .with_state(state);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move { axum::serve(listener, app).await });
        Dashboard {
            port,
            seen,
            _rt: rt,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/upload", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn uploads(&self) -> Vec<(Option<String>, Vec<FormPart>)> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Upload { auth, parts } => Some((auth, parts)),
                Seen::Health => None,
            })
            .collect()
    }
}

async fn health(State(s): State<ServerState>) -> (StatusCode, &'static str) {
    s.seen.lock().unwrap().push(Seen::Health);
    (s.health_status, "{\"status\": \"ok\"}")
}

async fn upload(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let parts = parse_multipart(&content_type, &body);
    let suite = parts
        .first()
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(&p.data).ok())
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    s.seen.lock().unwrap().push(Seen::Upload {
        auth: auth.clone(),
        parts,
    });
    if s.upload_status == StatusCode::OK {
        let answer = serde_json::json!({
            "success": true,
            "parsed_data": {
                "suite_name": suite,
                "baseline_key": "from-server",
                "workload_type": "synthetic",
            }
        });
        (StatusCode::OK, answer.to_string())
    } else {
        // Echo the credentials, as careless servers do: lmbench must not print them.
        (
            s.upload_status,
            format!("database unavailable (auth was {auth:?})"),
        )
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A strict RFC 7578 reader: the body must be well-formed or the test fails.
fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<FormPart> {
    assert!(
        content_type.starts_with("multipart/form-data"),
        "content type {content_type}"
    );
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("a boundary")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let inner = format!("\r\n{delim}");
    let start = find(body, delim.as_bytes()).expect("first boundary");
    let mut rest = &body[start + delim.len()..];
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            break;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after a boundary");
        let end = find(rest, inner.as_bytes()).expect("closing boundary");
        let part = &rest[..end];
        let head_end = find(part, b"\r\n\r\n").expect("part headers");
        let head = std::str::from_utf8(&part[..head_end]).unwrap();
        let mut fp = FormPart {
            name: String::new(),
            filename: None,
            content_type: None,
            data: part[head_end + 4..].to_vec(),
        };
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':').expect("header line");
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    for param in v.split(';').map(str::trim) {
                        if let Some(n) = param.strip_prefix("name=") {
                            fp.name = n.trim_matches('"').to_string();
                        } else if let Some(f) = param.strip_prefix("filename=") {
                            fp.filename = Some(f.trim_matches('"').to_string());
                        }
                    }
                }
                "content-type" => fp.content_type = Some(v.trim().to_string()),
                _ => {}
            }
        }
        parts.push(fp);
        rest = &rest[end + inner.len()..];
    }
    parts
}

/// A result folder: two result JSONs and the files beside them that must not be uploaded.
fn result_folder() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("sim_a_synthetic_2_20250101-1200.json");
    let b = dir.path().join("sim_b_random_4_20250101-1200.json");
    std::fs::write(
        &a,
        "{\n  \"name\": \"suite-ü\",\n  \"results\": {\"successful_requests\": 3}\n}\n",
    )
    .unwrap();
    std::fs::write(&b, "{\"name\":\"suite-ü\",\"results\":{}}").unwrap();
    for (n, body) in [
        ("synthetic_comparison.json", "{\"comparison\": true}"),
        ("report.html", "<html></html>"),
        ("sim_a_synthetic_2_20250101-1200.requests.jsonl", "{}\n{}\n"),
    ] {
        std::fs::write(dir.path().join(n), body).unwrap();
    }
    (dir, vec![a, b])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_no_token(stdout: &str, stderr: &str) {
    assert!(!stdout.contains(TOKEN), "token on stdout: {stdout}");
    assert!(!stderr.contains(TOKEN), "token on stderr: {stderr}");
}

/// Every upload is one `file` part carrying one of `files` byte for byte.
fn assert_uploads_match(d: &Dashboard, files: &[PathBuf], auth: Option<&str>) {
    let uploads = d.uploads();
    let mut names = Vec::new();
    for (got_auth, parts) in &uploads {
        assert_eq!(got_auth.as_deref(), auth);
        assert_eq!(parts.len(), 1, "a single field: {parts:?}");
        let p = &parts[0];
        assert_eq!(p.name, "file");
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        let name = p.filename.clone().expect("a filename");
        let local = files
            .iter()
            .find(|f| f.file_name().unwrap().to_str() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} is not one of {files:?}"));
        assert_eq!(p.data, std::fs::read(local).unwrap(), "bytes of {name}");
        names.push(name);
    }
    let mut want: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    names.sort();
    want.sort();
    assert_eq!(names, want, "each result file exactly once");
}

fn upload_cmd(path: &Path, url: &str) -> assert_cmd::Command {
    let mut c = lmbench();
    c.env_remove("LMBENCH_UPLOAD_TOKEN")
        .arg("upload")
        .arg(path)
        .args(["--url", url])
        .timeout(Duration::from_secs(60));
    c
}

#[test]
fn upload_sends_only_the_result_jsons_after_a_health_check() {
    let d = Dashboard::start(StatusCode::OK, StatusCode::OK);
    let (dir, files) = result_folder();
    let out = upload_cmd(dir.path(), &d.url())
        .args(["--token", TOKEN])
        .assert()
        .code(0)
        .get_output()
        .clone();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    let seen = d.seen();
    assert!(matches!(seen.first(), Some(Seen::Health)), "{seen:?}");
    assert_eq!(seen.len(), 3, "one health check, two uploads: {seen:?}");
    assert_uploads_match(&d, &files, Some("Bearer secret123"));
    let listed: Vec<&str> = stdout.lines().collect();
    let want: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    assert_eq!(listed, want, "stdout lists the uploaded files, sorted");
    assert!(
        stderr.contains("suite suite-ü") && stderr.contains("baseline from-server"),
        "the server's parsed_data is logged: {stderr}"
    );
    assert_no_token(&stdout, &stderr);
}

#[test]
fn upload_of_one_file_without_a_token_sends_no_authorization() {
    let d = Dashboard::start(StatusCode::OK, StatusCode::OK);
    let (_dir, files) = result_folder();
    let out = upload_cmd(&files[1], &d.url())
        .assert()
        .code(0)
        .get_output()
        .clone();
    assert_uploads_match(&d, &files[1..], None);
    assert_eq!(text(&out.stdout).trim(), files[1].display().to_string());
}

#[test]
fn a_rejected_upload_exits_1_naming_every_file() {
    let d = Dashboard::start(StatusCode::OK, StatusCode::INTERNAL_SERVER_ERROR);
    let (dir, files) = result_folder();
    let out = upload_cmd(dir.path(), &d.url())
        .args(["--token", TOKEN])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(d.uploads().len(), 2, "every file is tried");
    for f in &files {
        assert!(
            stderr.contains(&f.display().to_string()),
            "{} named: {stderr}",
            f.display()
        );
    }
    assert!(stderr.contains("500"), "{stderr}");
    assert!(
        stderr.contains("database unavailable"),
        "body excerpt: {stderr}"
    );
    assert!(stdout.trim().is_empty(), "nothing was uploaded: {stdout}");
    assert_no_token(&stdout, &stderr);
}

#[test]
fn a_failing_health_check_stops_before_any_upload() {
    let d = Dashboard::start(StatusCode::SERVICE_UNAVAILABLE, StatusCode::OK);
    let (dir, _files) = result_folder();
    let out = upload_cmd(dir.path(), &d.url())
        .args(["--token", TOKEN])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = text(&out.stderr);
    assert!(d.uploads().is_empty(), "nothing POSTed: {:?}", d.seen());
    let health = format!("http://127.0.0.1:{}/health", d.port);
    assert!(
        stderr.contains(&health) && stderr.contains("503"),
        "{stderr}"
    );
    assert_no_token(&text(&out.stdout), &stderr);

    // Nothing listening at all.
    let port = free_port();
    let out = upload_cmd(dir.path(), &format!("http://127.0.0.1:{port}/upload"))
        .args(["--token", TOKEN])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/health")),
        "{stderr}"
    );
    assert_no_token(&text(&out.stdout), &stderr);
}

#[test]
fn an_https_url_is_refused_with_the_reason() {
    let (dir, _files) = result_folder();
    let out = upload_cmd(dir.path(), "https://127.0.0.1:1/upload")
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("https is not supported") && stderr.contains("http://"),
        "{stderr}"
    );
}

/// The suite's result JSONs: what `util::result_files` lists, less the report's comparisons.
fn suite_results(results: &Path) -> Vec<PathBuf> {
    result_files(&results.join("default-simulated-demo"))
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with("_comparison.json"))
        .collect()
}

fn run_with_upload(d: &Dashboard, results: &Path) -> std::process::Output {
    lmbench()
        .env("LMBENCH_UPLOAD_TOKEN", TOKEN)
        .args(["run", "-c"])
        .arg(repo().join("run-bench.yaml"))
        .arg("--results-dir")
        .arg(results)
        .args(["--port", &free_port().to_string(), "--duration", "2"])
        .args(["--upload-url", &d.url()])
        .timeout(Duration::from_secs(240))
        .output()
        .unwrap()
}

#[test]
fn run_uploads_every_result_file() {
    let d = Dashboard::start(StatusCode::OK, StatusCode::OK);
    let results = tempfile::tempdir().unwrap();
    let out = run_with_upload(&d, results.path());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let files = suite_results(results.path());
    assert_eq!(files.len(), 6, "{files:?}");
    assert!(matches!(d.seen().first(), Some(Seen::Health)));
    assert_uploads_match(&d, &files, Some("Bearer secret123"));
    assert_no_token(&stdout, &stderr);
}

#[test]
fn run_with_a_failing_dashboard_exits_1_and_keeps_the_results() {
    let d = Dashboard::start(StatusCode::OK, StatusCode::BAD_GATEWAY);
    let results = tempfile::tempdir().unwrap();
    let out = run_with_upload(&d, results.path());
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let files = suite_results(results.path());
    assert_eq!(files.len(), 6, "results stay on disk: {files:?}");
    assert_eq!(stdout.lines().count(), 6, "still listed: {stdout}");
    assert_eq!(d.uploads().len(), 6, "every file was tried");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(stderr.contains(name), "{name} named: {stderr}");
    }
    assert_no_token(&stdout, &stderr);
}
