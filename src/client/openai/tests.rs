//! Unit tests of the streaming client against real local servers: bodies, timing, errors, the
//! stale-connection resend.

use super::*;
use crate::client::body::{build_body, render_completions_prompt, write_body};
use crate::record::{Message, Prompt};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

fn spec(prompt: Prompt) -> RequestSpec {
    RequestSpec {
        id: 7,
        user_id: Some(42),
        round: 2,
        due_s: 1.5,
        slot_s: None,
        prompt,
        max_tokens: 16,
        client_prompt_tokens: 11,
        warmup: false,
        extra: Map::new(),
    }
}

fn cfg(base_url: &str, api: ApiType) -> ClientConfig {
    ClientConfig {
        base_url: base_url.to_string(),
        model: "m".to_string(),
        api,
        request_timeout: Duration::from_secs(10),
        api_key: None,
        extra_body: Map::new(),
        ca_cert: None,
    }
}

fn conversation() -> Vec<Message> {
    vec![
        Message::new("system", "Be brief."),
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello."),
        Message::new("user", "Bye"),
    ]
}

// ---- bodies -------------------------------------------------------------------------

#[test]
fn renders_lmbench_prompt() {
    assert_eq!(
        render_completions_prompt(&conversation()),
        "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant: "
    );
    assert_eq!(render_completions_prompt(&[]), "Assistant: ");
    assert_eq!(
        render_completions_prompt(&[Message::new("tool", "x")]),
        "Tool: x\nAssistant: "
    );
}

#[test]
fn completions_body() {
    let c = cfg("http://h", ApiType::Completions);
    let body = build_body(&c, &spec(Prompt::Text("hello".into())));
    assert_eq!(
        body,
        json!({
            "model": "m", "prompt": "hello", "max_tokens": 16, "temperature": 0,
            "stream": true, "stream_options": {"include_usage": true}
        })
    );
    let body = build_body(&c, &spec(Prompt::Messages(conversation())));
    assert_eq!(
        body["prompt"],
        "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Bye\nAssistant: "
    );
    assert!(body.get("messages").is_none());
}

#[test]
fn chat_body() {
    let c = cfg("http://h", ApiType::Chat);
    let body = build_body(&c, &spec(Prompt::Text("hello".into())));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "hello"}])
    );
    assert!(body.get("prompt").is_none());
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    let body = build_body(&c, &spec(Prompt::Messages(conversation())));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Bye"},
        ])
    );
}

#[test]
fn extra_merged_and_overrides() {
    let mut s = spec(Prompt::Text("x".into()));
    s.extra.insert("ignore_eos".into(), json!(true));
    s.extra.insert("temperature".into(), json!(0.7));
    for api in [ApiType::Completions, ApiType::Chat] {
        let body = build_body(&cfg("http://h", api), &s);
        assert_eq!(body["ignore_eos"], json!(true));
        assert_eq!(body["temperature"], json!(0.7));
        assert_eq!(body["stream"], json!(true));
    }
}

/// The body sent on the wire is the same JSON object, key order included, as `build_body`
/// for every prompt shape, API and combination of extra fields (new keys, overrides of
/// standard keys, a request overriding its config).
#[test]
fn written_body_equals_built_body() {
    let odd = "quote \" backslash \\ newline \n tab \t unicode é 🙂 \u{1}";
    let prompts = [
        Prompt::Text("hello".into()),
        Prompt::Text(odd.into()),
        Prompt::Messages(conversation()),
        Prompt::Messages(vec![Message::new("user", odd)]),
    ];
    let cfg_extras = [
        json!({}),
        json!({"ignore_eos": true}),
        json!({"temperature": 0.5, "top_k": 3, "model": "other", "stream": false}),
        json!({"messages": [], "prompt": "p", "min_tokens": 2}),
    ];
    let spec_extras = [
        json!({}),
        json!({"top_p": 0.9}),
        json!({"top_k": 9, "max_tokens": 3, "ignore_eos": false, "x\"y": [1, {"a": null}]}),
        json!({"stream_options": {"include_usage": false}, "min_tokens": 5}),
    ];
    let mut checked = 0;
    for api in [ApiType::Completions, ApiType::Chat] {
        for ce in &cfg_extras {
            for se in &spec_extras {
                for p in &prompts {
                    let mut c = cfg("http://h", api);
                    c.model = format!("m/{odd}");
                    c.extra_body = ce.as_object().unwrap().clone();
                    let mut s = spec(p.clone());
                    s.extra = se.as_object().unwrap().clone();
                    let mut out = Vec::new();
                    write_body(&c, &s, &mut out);
                    let written: Value = serde_json::from_slice(&out)
                        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                    let built = build_body(&c, &s);
                    assert_eq!(
                        String::from_utf8_lossy(&out),
                        serde_json::to_string(&built).unwrap(),
                        "the same bytes as serde_json writes"
                    );
                    assert_eq!(written, built);
                    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect();
                    let (kw, kb): (Vec<String>, Vec<String>) = (keys(&written), keys(&built));
                    assert_eq!(kw, kb);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 128);
}

/// A body written before its answer and filled in later is byte for byte the body written with
/// the answer in place, on both APIs, wherever the answer sits; a prompt the body does not
/// carry (replaced by `extraBody`) has no hole.
#[test]
fn filled_body_equals_written_body() {
    let answer = "quote \" backslash \\ newline \n unicode é 🙂 \u{1}";
    for api in [ApiType::Completions, ApiType::Chat] {
        let writer = Client::new(cfg("http://h", api)).unwrap().body_writer();
        for hole in 0..4 {
            let mut with_hole = conversation();
            with_hole[hole].content.clear();
            let mut answered = conversation();
            answered[hole].content = answer.into();
            let filled = writer
                .body_with_hole(&spec(Prompt::Messages(with_hole)), hole)
                .unwrap()
                .fill(answer);
            assert_eq!(filled, writer.body(&spec(Prompt::Messages(answered))));
        }
        assert!(writer
            .body_with_hole(&spec(Prompt::Messages(conversation())), 4)
            .is_none());
        assert!(writer
            .body_with_hole(&spec(Prompt::Text("x".into())), 0)
            .is_none());
        let mut c = cfg("http://h", api);
        c.extra_body = json!({"prompt": "p", "messages": []})
            .as_object()
            .unwrap()
            .clone();
        let replaced = Client::new(c).unwrap().body_writer();
        assert!(replaced
            .body_with_hole(&spec(Prompt::Messages(conversation())), 1)
            .is_none());
    }
}

#[test]
fn endpoint_urls() {
    let c = ApiType::Completions;
    assert_eq!(endpoint_url("http://h:1", c), "http://h:1/v1/completions");
    assert_eq!(endpoint_url("http://h:1/", c), "http://h:1/v1/completions");
    assert_eq!(
        endpoint_url("http://h:1/v1/", c),
        "http://h:1/v1/completions"
    );
    assert_eq!(
        endpoint_url("http://h:1/x", ApiType::Chat),
        "http://h:1/x/v1/chat/completions"
    );
}

#[test]
fn rejects_bad_urls_and_hides_key() {
    // https:// is served (rustls); other schemes are not.
    assert!(Client::new(cfg("https://h", ApiType::Chat)).is_ok());
    assert!(Client::new(cfg("ftp://h", ApiType::Chat)).is_err());
    let mut bad_ca = cfg("https://h", ApiType::Chat);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
    bad_ca.ca_cert = Some(dir.path().join("ca.pem"));
    let err = Client::new(bad_ca).unwrap_err().to_string();
    assert!(
        err.contains("ca.pem") && err.contains("no certificate"),
        "{err}"
    );
    assert!(Client::new(cfg("not a url", ApiType::Chat)).is_err());
    let mut c = cfg("http://h", ApiType::Chat);
    c.api_key = Some("sk-secret".into());
    assert!(!format!("{c:?}").contains("sk-secret"));
    let client = Client::new(c).unwrap();
    assert!(!format!("{client:?}").contains("sk-secret"));
}

#[test]
fn truncation_respects_char_boundaries() {
    assert_eq!(truncate_chars("héllo", 2), "hé…");
    assert_eq!(truncate_chars("hé", 2), "hé");
}

#[test]
fn chunk_text_with_escapes_and_extra_choices() {
    let s = spec(Prompt::Text("x".into()));
    let mut ex = Exchange::new(&s, Instant::now());
    for data in [
        r#"{"choices":[{"text":"a\nb \"q\" \u00e9"},{"text":"ignored"}]}"#,
        r#"{"choices":[{"delta":{"content":"plain"}}],"object":"text_completion"}"#,
        r#"{"choices":[{"delta":{"reasoning_content":"r\tr"}}]}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3,"prompt_tokens_details":{"cached_tokens":1}}}"#,
    ] {
        ex.on_event(SseEventRef::Message { event: None, data }, 1.0)
            .unwrap();
    }
    assert_eq!(ex.text, "a\nb \"q\" éplain");
    assert_eq!(ex.reasoning, "r\tr");
    let r = &ex.record;
    assert_eq!(r.chunk_times_s, vec![1.0; 3]);
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
        (Some(3), Some(3), Some(1))
    );
    // Without a token counter, the client counts content chunks.
    ex.done = true;
    let r = ex.finish(Ok(()), None).record;
    assert_eq!((r.client_completion_tokens, r.content_chunks), (3, 3));
    assert_eq!(r.error, None);
}

#[test]
fn odd_chunks_never_panic() {
    let s = spec(Prompt::Text("x".into()));
    for data in [
        "null",
        "[]",
        "42",
        "{}",
        r#"{"choices":null}"#,
        r#"{"choices":[]}"#,
        r#"{"choices":[{}]}"#,
        r#"{"choices":[{"text":null,"delta":null}]}"#,
        r#"{"choices":[{"delta":{"content":5}}]}"#,
        r#"{"usage":null}"#,
        r#"{"usage":{"prompt_tokens":-1}}"#,
        r#"{"error":"x"}"#,
        r#"{"object":"error","message":"y"}"#,
    ] {
        let mut ex = Exchange::new(&s, Instant::now());
        let _ = ex.on_event(SseEventRef::Message { event: None, data }, 0.0);
    }
}

// ---- a scripted SSE server --------------------------------------------------------

#[derive(Clone)]
struct Script {
    status: StatusCode,
    /// Written one by one, each after `delay`.
    pieces: Vec<String>,
    delay: Duration,
    /// Break the connection (no terminating chunk) after the pieces.
    abort: bool,
}

impl Script {
    fn ok(pieces: Vec<String>, delay: Duration) -> Self {
        Script {
            status: StatusCode::OK,
            pieces,
            delay,
            abort: false,
        }
    }
}

struct Seen {
    path: String,
    headers: HeaderMap,
    body: Value,
    peer: SocketAddr,
}

struct ServerState {
    script: Script,
    seen: Mutex<Vec<Seen>>,
    /// When each piece was handed to the connection.
    sent: Arc<Mutex<Vec<Instant>>>,
}

async fn handler(
    State(st): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.seen.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        peer,
    });
    let script = st.script.clone();
    if script.status != StatusCode::OK {
        return (script.status, script.pieces.concat()).into_response();
    }
    let sent = st.sent.clone();
    let pieces = script
        .pieces
        .into_iter()
        .map(Some)
        .chain(std::iter::once(None));
    let stream = futures_util::stream::unfold(
        (pieces, sent, script.delay, script.abort),
        |(mut pieces, sent, delay, abort)| async move {
            let item = match pieces.next()? {
                Some(piece) => {
                    tokio::time::sleep(delay).await;
                    sent.lock().unwrap().push(Instant::now());
                    Ok(Bytes::from(piece))
                }
                None if abort => {
                    // Give the last piece time to leave before the connection breaks.
                    tokio::time::sleep(delay).await;
                    Err(std::io::Error::other("abort"))
                }
                None => return None,
            };
            Some((item, (pieces, sent, delay, abort)))
        },
    );
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn serve(script: Script) -> (String, Arc<ServerState>) {
    let state = Arc::new(ServerState {
        script,
        seen: Mutex::new(Vec::new()),
        sent: Arc::new(Mutex::new(Vec::new())),
    });
    let app = axum::Router::new()
        .fallback(handler)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    (format!("http://{addr}"), state)
}

fn sse(v: Value) -> String {
    format!("data: {v}\n\n")
}

fn completion_piece(text: &str) -> String {
    sse(json!({"id": "c", "object": "text_completion",
                   "choices": [{"index": 0, "text": text, "finish_reason": null}]}))
}

fn chat_piece(delta: Value) -> String {
    sse(json!({"id": "c", "object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": null}]}))
}

fn usage_piece() -> String {
    sse(json!({"id": "c", "choices": [], "usage": {
            "prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16,
            "prompt_tokens_details": {"cached_tokens": 8}}}))
}

const DONE: &str = "data: [DONE]\n\n";

fn at(epoch: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(epoch).as_secs_f64()
}

async fn run(c: ClientConfig, s: &RequestSpec) -> Completed {
    let client = Client::new(c).unwrap();
    client
        .send(s, Instant::now(), &CancellationToken::new())
        .await
}

fn kind(done: &Completed) -> Option<ErrorKind> {
    done.record.error.as_ref().map(|e| e.kind)
}

// ---- real HTTP -------------------------------------------------------------------

#[tokio::test]
async fn completions_stream_timed_and_usage_parsed() {
    let delay = Duration::from_millis(40);
    let tokens = ["a", "b", "c", "d", "e"];
    let mut pieces: Vec<String> = tokens.iter().map(|t| completion_piece(t)).collect();
    pieces.push(usage_piece());
    pieces.push(DONE.to_string());
    let (base, st) = serve(Script::ok(pieces, delay)).await;

    let mut c = cfg(&base, ApiType::Completions);
    c.api_key = Some("sk-test".into());
    let client = Client::new(c).unwrap();
    let s = spec(Prompt::Messages(conversation()));
    let epoch = Instant::now();
    let done = client.send(&s, epoch, &CancellationToken::new()).await;
    let r = &done.record;

    assert_eq!(r.error, None);
    assert_eq!(r.status, Some(200));
    assert_eq!(done.text, "abcde");
    assert_eq!((r.id, r.user_id, r.round, r.due_s), (7, Some(42), 2, 1.5));
    assert_eq!((r.client_prompt_tokens, r.max_tokens), (11, 16));
    assert_eq!(r.client_completion_tokens, 5);
    assert_eq!(r.prompt_tokens, Some(11));
    assert_eq!(r.completion_tokens, Some(5));
    assert_eq!(r.cached_tokens, Some(8));

    // Causality against the server's own clock: every content chunk is stamped after
    // the server wrote it (and not absurdly later), and never before the request left.
    let sent = st.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 7);
    assert_eq!(r.chunk_times_s.len(), 5);
    assert_eq!(r.first_token_s, Some(r.chunk_times_s[0]));
    let d = delay.as_secs_f64();
    assert!(r.first_token_s.unwrap() - r.sent_s >= d);
    for (k, t) in r.chunk_times_s.iter().enumerate() {
        let written = at(epoch, sent[k]);
        assert!(*t >= written, "chunk {k}: {t} < {written}");
        assert!(*t - written < 2.0);
    }
    for w in r.chunk_times_s.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= d / 2.0 && gap < 2.0, "gap {gap}");
    }
    let span = r.chunk_times_s[4] - r.chunk_times_s[0];
    assert!(span >= 3.5 * d, "span {span}");
    assert!(r.end_s >= at(epoch, sent[6]));
    assert!(r.end_s >= r.chunk_times_s[4] && r.end_s - r.sent_s < 5.0);

    let seen = st.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.path, "/v1/completions");
    assert_eq!(req.headers["x-user-id"], "42");
    assert_eq!(req.headers["authorization"], "Bearer sk-test");
    assert_eq!(req.body, build_body(client.config(), &s));
}

#[tokio::test]
async fn chat_role_chunk_is_not_a_token_but_reasoning_is() {
    let delay = Duration::from_millis(30);
    let pieces = vec![
        chat_piece(json!({"role": "assistant", "content": ""})),
        chat_piece(json!({"reasoning_content": "hmm"})),
        chat_piece(json!({"content": "Hel"})),
        chat_piece(json!({"content": "lo"})),
        chat_piece(json!({})),
        usage_piece(),
        DONE.to_string(),
    ];
    let (base, st) = serve(Script::ok(pieces, delay)).await;
    let mut s = spec(Prompt::Text("hi".into()));
    s.user_id = None;
    let epoch = Instant::now();
    let client = Client::new(cfg(&base, ApiType::Chat)).unwrap();
    let done = client.send(&s, epoch, &CancellationToken::new()).await;
    let r = &done.record;
    assert_eq!(r.error, None);
    assert_eq!(done.text, "Hello");
    assert_eq!(r.client_completion_tokens, 3);
    let sent = st.sent.lock().unwrap().clone();
    // The first token is the reasoning chunk (the second piece), not the role chunk.
    assert!(r.first_token_s.unwrap() >= at(epoch, sent[1]));
    assert!(r.first_token_s.unwrap() - r.sent_s >= 2.0 * delay.as_secs_f64());
    let seen = st.seen.lock().unwrap();
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert!(seen[0].headers.get("x-user-id").is_none());
    assert!(seen[0].headers.get("authorization").is_none());
    assert_eq!(seen[0].body["messages"][0]["content"], "hi");
}

#[tokio::test]
async fn events_of_one_network_chunk_share_a_timestamp() {
    let piece = ["x", "y", "z"]
        .iter()
        .map(|t| completion_piece(t))
        .chain([usage_piece(), "data: [DONE]".to_string()])
        .collect::<String>();
    // `[DONE]` without its closing blank line still completes the stream.
    let (base, _) = serve(Script::ok(vec![piece], Duration::ZERO)).await;
    let done = run(
        cfg(&base, ApiType::Completions),
        &spec(Prompt::Text("p".into())),
    )
    .await;
    let r = &done.record;
    assert_eq!(r.error, None);
    assert_eq!(r.chunk_times_s.len(), 3);
    assert!(r.chunk_times_s.iter().all(|t| *t == r.chunk_times_s[0]));
}

#[tokio::test]
async fn missing_usage_is_fine() {
    let mut pieces: Vec<String> = (0..4).map(|_| completion_piece("t")).collect();
    pieces.push(DONE.to_string());
    let (base, _) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
    let done = run(
        cfg(&base, ApiType::Completions),
        &spec(Prompt::Text("p".into())),
    )
    .await;
    let r = &done.record;
    assert_eq!(r.error, None);
    assert_eq!(
        (r.prompt_tokens, r.completion_tokens, r.cached_tokens),
        (None, None, None)
    );
    assert_eq!(r.client_completion_tokens, 4);
    assert_eq!(r.completion_tokens_best(), 4);
    assert_eq!(r.prompt_tokens_best(), 11);
}

#[tokio::test]
async fn http_500_is_http_status() {
    let script = Script {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        pieces: vec!["engine overloaded".to_string()],
        delay: Duration::ZERO,
        abort: false,
    };
    let (base, _) = serve(script).await;
    let done = run(cfg(&base, ApiType::Chat), &spec(Prompt::Text("p".into()))).await;
    let r = &done.record;
    assert_eq!(kind(&done), Some(ErrorKind::HttpStatus));
    assert_eq!(r.status, Some(500));
    let msg = &r.error.as_ref().unwrap().message;
    assert!(
        msg.contains("500") && msg.contains("engine overloaded"),
        "{msg}"
    );
    assert_eq!(r.first_token_s, None);
    assert!(r.end_s >= r.sent_s);
    assert!(done.text.is_empty());
}

#[tokio::test]
async fn stream_cut_before_done_is_stream_broken() {
    let pieces = vec![completion_piece("a"), completion_piece("b")];
    let (base, _) = serve(Script::ok(pieces, Duration::from_millis(10))).await;
    let done = run(
        cfg(&base, ApiType::Completions),
        &spec(Prompt::Text("p".into())),
    )
    .await;
    let r = &done.record;
    assert_eq!(kind(&done), Some(ErrorKind::StreamBroken));
    assert_eq!(r.status, Some(200));
    assert_eq!(r.chunk_times_s.len(), 2);
    assert_eq!(r.client_completion_tokens, 2);
    assert!(r.first_token_s.is_some());
    assert!(r.end_s >= r.chunk_times_s[1]);
    assert!(done.text.is_empty());
}

#[tokio::test]
async fn connection_broken_mid_body_is_stream_broken() {
    let mut script = Script::ok(vec![completion_piece("a")], Duration::from_millis(10));
    script.abort = true;
    let (base, _) = serve(script).await;
    let done = run(
        cfg(&base, ApiType::Completions),
        &spec(Prompt::Text("p".into())),
    )
    .await;
    assert_eq!(kind(&done), Some(ErrorKind::StreamBroken));
    assert_eq!(done.record.chunk_times_s.len(), 1);
}

#[tokio::test]
async fn invalid_json_is_bad_response() {
    let pieces = vec![
        completion_piece("a"),
        "data: {not json\n\n".to_string(),
        DONE.to_string(),
    ];
    let (base, _) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
    let done = run(
        cfg(&base, ApiType::Completions),
        &spec(Prompt::Text("p".into())),
    )
    .await;
    assert_eq!(kind(&done), Some(ErrorKind::BadResponse));
    assert_eq!(done.record.status, Some(200));
    assert_eq!(done.record.chunk_times_s.len(), 1);
}

#[tokio::test]
async fn error_object_is_bad_response() {
    let pieces = vec![
        chat_piece(json!({"content": "a"})),
        sse(json!({"error": {"message": "boom", "type": "InternalError"}})),
        DONE.to_string(),
    ];
    let (base, _) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
    let done = run(cfg(&base, ApiType::Chat), &spec(Prompt::Text("p".into()))).await;
    assert_eq!(kind(&done), Some(ErrorKind::BadResponse));
    assert!(done.record.error.unwrap().message.contains("boom"));
}

#[tokio::test]
async fn slow_server_times_out() {
    let pieces = vec![completion_piece("a"), DONE.to_string()];
    let (base, _) = serve(Script::ok(pieces, Duration::from_secs(3))).await;
    let mut c = cfg(&base, ApiType::Completions);
    c.request_timeout = Duration::from_millis(300);
    let done = run(c, &spec(Prompt::Text("p".into()))).await;
    let r = &done.record;
    assert_eq!(kind(&done), Some(ErrorKind::Timeout));
    let took = r.end_s - r.sent_s;
    assert!((0.29..2.5).contains(&took), "took {took}");
    assert_eq!(r.first_token_s, None);
}

#[tokio::test]
async fn timeout_covers_the_stream_not_just_the_head() {
    let pieces: Vec<String> = (0..20).map(|_| completion_piece("t")).collect();
    let (base, _) = serve(Script::ok(pieces, Duration::from_millis(50))).await;
    let mut c = cfg(&base, ApiType::Completions);
    c.request_timeout = Duration::from_millis(300);
    let done = run(c, &spec(Prompt::Text("p".into()))).await;
    assert_eq!(kind(&done), Some(ErrorKind::Timeout));
    assert_eq!(done.record.status, Some(200));
    assert!(!done.record.chunk_times_s.is_empty());
}

#[tokio::test]
async fn cancellation_is_cancelled() {
    let pieces: Vec<String> = (0..20).map(|_| completion_piece("t")).collect();
    let (base, _) = serve(Script::ok(pieces, Duration::from_millis(50))).await;
    let client = Client::new(cfg(&base, ApiType::Completions)).unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let done = client
        .send(&spec(Prompt::Text("p".into())), Instant::now(), &cancel)
        .await;
    assert_eq!(kind(&done), Some(ErrorKind::Cancelled));
    assert!(done.record.chunk_times_s.len() < 20);

    // Already cancelled: nothing is waited for.
    let done = client
        .send(&spec(Prompt::Text("p".into())), Instant::now(), &cancel)
        .await;
    assert_eq!(kind(&done), Some(ErrorKind::Cancelled));
}

#[tokio::test]
async fn refused_connection_is_connect() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let done = run(
        cfg(&format!("http://{addr}"), ApiType::Completions),
        &spec(Prompt::Text("p".into())),
    )
    .await;
    assert_eq!(kind(&done), Some(ErrorKind::Connect));
    assert_eq!(done.record.status, None);
    assert!(done.record.end_s >= done.record.sent_s);
}

#[tokio::test]
async fn connection_reused_after_done() {
    let pieces = vec![completion_piece("a"), usage_piece(), DONE.to_string()];
    let (base, st) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
    let client = Client::new(cfg(&base, ApiType::Completions)).unwrap();
    let s = spec(Prompt::Text("p".into()));
    for _ in 0..3 {
        let done = client
            .send(&s, Instant::now(), &CancellationToken::new())
            .await;
        assert_eq!(done.record.error, None);
    }
    let seen = st.seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|r| r.peer == seen[0].peer));
}

#[tokio::test]
async fn concurrent_requests_share_one_client() {
    let pieces = vec![
        completion_piece("a"),
        completion_piece("b"),
        DONE.to_string(),
    ];
    let (base, st) = serve(Script::ok(pieces, Duration::from_millis(20))).await;
    let client = Client::new(cfg(&base, ApiType::Completions)).unwrap();
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = client.clone();
        let mut s = spec(Prompt::Text("p".into()));
        s.id = i;
        tasks.push(tokio::spawn(async move {
            client.send(&s, epoch, &CancellationToken::new()).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let done = task.await.unwrap();
        assert_eq!(done.record.error, None);
        assert_eq!(done.record.id, i as u64);
        assert_eq!(done.text, "ab");
    }
    assert_eq!(st.seen.lock().unwrap().len(), 16);
}

/// A server that answers the first request of a connection with a complete stream, keeps
/// the connection open, and closes it without answering when a second request arrives on
/// it (as llama.cpp's HTTP server does at its per-connection request limit).
async fn closing_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut answered = false;
                loop {
                    // One read holds one small request here (loopback, tiny body).
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    if answered {
                        return; // close without a response
                    }
                    answered = true;
                    let body = format!(
                        "{}{}data: [DONE]\n\n",
                        completion_piece("hi"),
                        usage_piece()
                    );
                    let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                    if sock.write_all(head.as_bytes()).await.is_err()
                        || sock.write_all(body.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), requests)
}

#[tokio::test]
async fn a_reused_connection_closed_by_the_server_is_resent_once() {
    let (base, requests) = closing_server().await;
    let client = Client::new(cfg(&base, ApiType::Completions)).unwrap();
    let s = spec(Prompt::Text("x".into()));
    let epoch = Instant::now();
    let cancel = CancellationToken::new();
    let first = client.send(&s, epoch, &cancel).await;
    assert!(first.record.ok(), "{:?}", first.record.error);
    let second = client.send(&s, epoch, &cancel).await;
    assert!(second.record.ok(), "{:?}", second.record.error);
    assert_eq!(second.text, "hi");
    // The second request reached the closing connection, then a fresh one.
    assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 3);
}

// ---- empty completions, token counts --------------------------------------------------

/// A 200 stream that ends with `[DONE]` having carried no content at all (only a role chunk,
/// an empty text and usage) is a failure, not a completion; one that asked for no tokens is
/// not.
#[tokio::test]
async fn done_without_any_content_is_bad_response() {
    let pieces = vec![
        chat_piece(json!({"role": "assistant", "content": ""})),
        chat_piece(json!({"content": ""})),
        sse(json!({"id": "c", "choices": [], "usage": {
            "prompt_tokens": 11, "completion_tokens": 0, "total_tokens": 11}})),
        DONE.to_string(),
    ];
    let (base, _) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
    let done = run(cfg(&base, ApiType::Chat), &spec(Prompt::Text("p".into()))).await;
    let r = &done.record;
    assert_eq!(kind(&done), Some(ErrorKind::BadResponse));
    let msg = &r.error.as_ref().unwrap().message;
    assert!(
        msg.contains("[DONE] without any generated content"),
        "{msg}"
    );
    assert_eq!(
        (r.status, r.first_token_s, r.content_chunks),
        (Some(200), None, 0)
    );
    assert!(r.end_s >= r.sent_s);

    let mut none_asked = spec(Prompt::Text("p".into()));
    none_asked.max_tokens = 0;
    let done = run(cfg(&base, ApiType::Chat), &none_asked).await;
    assert_eq!(done.record.error, None);
}

/// Counts the words of a text: a stand-in tokenizer whose count differs from the chunk count.
struct Words;

impl TokenCounter for Words {
    fn count(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

/// Without usage from the server, the client's completion count is the generated text (answer
/// and reasoning) counted with the run's tokenizer, not the number of chunks; the chunk count
/// is recorded beside it. Without a counter, chunks are counted as before.
#[tokio::test]
async fn generated_text_is_counted_with_the_token_counter() {
    let pieces = vec![
        chat_piece(json!({"reasoning_content": "think about it"})),
        chat_piece(json!({"content": "one two"})),
        chat_piece(json!({"content": " three four five"})),
        DONE.to_string(),
    ];
    let (base, _) = serve(Script::ok(pieces, Duration::from_millis(5))).await;
    let s = spec(Prompt::Text("p".into()));
    let client = Client::new(cfg(&base, ApiType::Chat)).unwrap();
    let counted = client.with_token_counter(Arc::new(Words));
    let done = counted
        .send(&s, Instant::now(), &CancellationToken::new())
        .await;
    let r = &done.record;
    assert_eq!(r.error, None);
    assert_eq!(done.text, "one two three four five");
    assert_eq!((r.content_chunks, r.chunk_times_s.len()), (3, 3));
    assert_eq!(r.client_completion_tokens, 3 + 5);
    assert_eq!(r.completion_tokens, None);
    assert_eq!(r.completion_tokens_best(), 8);

    // The real tokenizer, as `lmbench run` passes it.
    let tiktoken = crate::workload::prompt::PromptBuilder::global();
    let done = client
        .with_token_counter(tiktoken.clone())
        .send(&s, Instant::now(), &CancellationToken::new())
        .await;
    let want = tiktoken.count("think about it") + tiktoken.count("one two three four five");
    assert_eq!(done.record.client_completion_tokens, want as u64);

    let done = client
        .send(&s, Instant::now(), &CancellationToken::new())
        .await;
    assert_eq!(done.record.client_completion_tokens, 3);
    assert_eq!(done.record.content_chunks, 3);
}

// ---- connections ------------------------------------------------------------------------

/// Through an endpoint whose connections take 200 ms to open (a TLS handshake held back), the
/// first request waits for its connection and records that wait as connect time, inside its
/// TTFT; the next one goes out on the same connection and records none. A warmed-up client's
/// first request waits for nothing.
#[tokio::test]
async fn a_new_connection_is_recorded_with_its_connect_time() {
    let delay = Duration::from_millis(200);
    let pieces = vec![completion_piece("a"), usage_piece(), DONE.to_string()];
    let (plain, _) = serve(Script::ok(pieces, Duration::from_millis(20))).await;
    let backend: SocketAddr = plain.trim_start_matches("http://").parse().unwrap();
    let front = crate::client::test_support::slow_tls_front(backend, delay).await;
    let mut c = cfg(&front.base_url, ApiType::Completions);
    c.ca_cert = Some(front.ca.path().to_path_buf());
    let client = Client::new(c.clone()).unwrap();
    let s = spec(Prompt::Text("p".into()));
    let cancel = CancellationToken::new();
    let epoch = Instant::now();

    let first = client.send(&s, epoch, &cancel).await.record;
    assert_eq!(first.error, None);
    assert_eq!(first.new_connection, Some(true));
    let connect = first.connect_ms.unwrap();
    let ttft_ms = (first.first_token_s.unwrap() - first.sent_s) * 1000.0;
    eprintln!("first request: connect {connect:.1} ms, TTFT {ttft_ms:.1} ms");
    assert!((200.0..1500.0).contains(&connect), "connect {connect} ms");
    assert!(
        ttft_ms >= connect + 15.0,
        "TTFT {ttft_ms} ms, connect {connect} ms"
    );

    let second = client.send(&s, epoch, &cancel).await.record;
    assert_eq!(second.error, None);
    assert_eq!(
        (second.new_connection, second.connect_ms),
        (Some(false), None)
    );
    let ttft_ms = (second.first_token_s.unwrap() - second.sent_s) * 1000.0;
    assert!(ttft_ms < 190.0, "TTFT {ttft_ms} ms on a reused connection");

    let warmed = Client::new(c).unwrap();
    assert_eq!(warmed.warm_up(2, Duration::from_secs(10)).await, 2);
    let r = warmed.send(&s, epoch, &cancel).await.record;
    assert_eq!((r.new_connection, r.connect_ms), (Some(false), None));
}
