//! Unit tests of the tool runner: deadlines, process groups, redaction, logs.

use super::*;

fn env(dir: &Path) -> ToolEnv {
    ToolEnv::from_env(dir.join("logs").join("infra.log")).with_install_dir(None)
}

fn sh(script: &str) -> Vec<String> {
    vec!["-c".to_string(), script.to_string()]
}

fn log_of(t: &ToolEnv) -> String {
    std::fs::read_to_string(t.log_path()).unwrap_or_default()
}

#[tokio::test]
async fn runs_a_command_and_logs_it_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let t = env(dir.path());
    let out = t
        .run(
            "sh",
            &sh("echo hello; echo oops >&2; echo \"$GREETING\""),
            RunOpts::new().env("GREETING", "hi there"),
        )
        .await
        .unwrap();
    assert!(out.success());
    assert_eq!(out.stdout, "hello\nhi there\n");
    assert_eq!(out.stderr, "oops\n");
    let log = log_of(&t);
    assert!(log.contains("$ sh -c 'echo hello;"), "{log}");
    assert!(log.contains("  out| hello\n"), "{log}");
    assert!(log.contains("  err| oops\n"), "{log}");
    assert!(log.contains("exit status: 0 after"), "{log}");
}

#[tokio::test]
async fn stdin_input_reaches_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let t = env(dir.path());
    let out = t
        .run("cat", &[], RunOpts::new().input("line one\nline two\n"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "line one\nline two\n");
}

#[tokio::test]
async fn failure_names_program_args_status_and_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let t = env(dir.path());
    let script = "for i in $(seq 1 40); do echo line$i >&2; done; exit 3";
    let err = t.run("sh", &sh(script), RunOpts::new()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ToolError::Failed { .. }), "{err:?}");
    assert_eq!(err.program(), "sh");
    assert!(msg.starts_with("`sh -c 'for i in"), "{msg}");
    assert!(msg.contains("exit status: 3"), "{msg}");
    assert!(msg.contains("line40"), "{msg}");
    assert!(!msg.contains("line20\n"), "tail is bounded: {msg}");
    // `output` returns the same call as data.
    let out = t.output("sh", &sh("exit 3"), RunOpts::new()).await.unwrap();
    assert_eq!(out.status.code(), Some(3));
}

/// Is `pid` alive (a zombie counts as dead)?
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let t = env(dir.path());
    let start = Instant::now();
    let err = t
        .run(
            "sh",
            &sh("sleep 30 & echo bg=$!; echo waiting >&2; sleep 30"),
            RunOpts::new().timeout(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let msg = err.to_string();
    assert!(matches!(err, ToolError::Timeout { .. }), "{err:?}");
    assert!(msg.contains("did not finish within 0.5s"), "{msg}");
    assert!(msg.contains("waiting"), "{msg}");
    let log = log_of(&t);
    assert!(log.contains("killed: no exit within 0.5s"), "{log}");
    let bg: u32 = log
        .split("out| bg=")
        .nth(1)
        .and_then(|s| s.lines().next())
        .and_then(|s| s.trim().parse().ok())
        .expect("background pid in log");
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(bg) {
        assert!(Instant::now() < deadline, "background sleep {bg} survived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn cancel_stops_the_tool() {
    let dir = tempfile::tempdir().unwrap();
    let t = env(dir.path());
    let token = CancellationToken::new();
    let c = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.cancel();
    });
    let start = Instant::now();
    let err = t
        .run("sh", &sh("sleep 30"), RunOpts::new().cancel(&token))
        .await
        .unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(log_of(&t).contains("killed: interrupted"));
}

#[tokio::test]
async fn secrets_never_reach_the_log_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hf_SuperSecretToken123";
    let extra = "aGZfU3VwZXJTZWNyZXQ="; // a base64 form, redacted per call
    let t = env(dir.path()).redacting(secret);
    let script = format!("echo token={secret}; echo b64={extra}; echo bad {secret} >&2; exit 1");
    let err = t
        .run("sh", &sh(&script), RunOpts::new().redact(extra.to_string()))
        .await
        .unwrap_err();
    let msg = err.to_string();
    let log = log_of(&t);
    for text in [&msg, &log] {
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains(extra), "{text}");
        assert!(text.contains("***"), "{text}");
    }
    assert!(log.contains("  out| token=***"), "{log}");
    assert!(msg.contains("bad ***"), "{msg}");
    // The caller still gets the real output to parse.
    let out = t
        .output("sh", &sh(&format!("echo {secret}")), RunOpts::new())
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), secret);
    assert!(!log_of(&t).contains(secret));
    t.note(&format!("a note mentioning {secret}"));
    assert!(!log_of(&t).contains(secret));
    assert!(!format!("{t:?}").contains(secret));
}

#[tokio::test]
async fn missing_program_is_not_found_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let t = env(dir.path()).with_path(&bin);
    assert_eq!(t.find("sh"), None);
    let err = t.run("kubectl", &[], RunOpts::new()).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ToolError::NotFound { .. }), "{err:?}");
    assert!(msg.contains("`kubectl` not found"), "{msg}");
    assert!(msg.contains("install-kubectl.sh"), "{msg}");
    assert!(msg.contains(&bin.display().to_string()), "{msg}");
}

#[test]
fn find_uses_the_override_path_then_the_install_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, inst) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("inst"),
    );
    for d in [&a, &b, &inst] {
        std::fs::create_dir(d).unwrap();
    }
    let make = |p: &Path, mode: u32| {
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    make(&a.join("tool"), 0o644); // not executable: skipped
    make(&b.join("tool"), 0o755);
    make(&inst.join("other"), 0o755);
    let path = std::env::join_paths([&a, &b]).unwrap();
    let t = env(dir.path())
        .with_path(path)
        .with_install_dir(Some(inst.clone()));
    assert_eq!(t.find("tool"), Some(b.join("tool")));
    assert_eq!(t.find("other"), Some(inst.join("other")));
    assert_eq!(t.find("missing"), None);
    let abs = b.join("tool");
    assert_eq!(t.find(abs.to_str().unwrap()), Some(abs.clone()));
    assert_eq!(t.find(a.join("tool").to_str().unwrap()), None);
    let sp = t.search_path();
    assert_eq!(
        std::env::split_paths(&sp).collect::<Vec<_>>(),
        vec![a, b, inst]
    );
}

#[test]
fn commands_are_quoted_and_redacted() {
    let args: Vec<String> = [
        "get",
        "nodes",
        "-o",
        r"jsonpath={..allocatable.nvidia\.com/gpu}",
        "it's",
        "tok=abc",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        display_command("kubectl", &args, &["abc".to_string()]),
        r"kubectl get nodes -o 'jsonpath={..allocatable.nvidia\.com/gpu}' 'it'\''s' tok=***"
    );
}
