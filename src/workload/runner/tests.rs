//! Unit tests of the open-loop runner against the simulated engine over real HTTP.
use super::*;
use crate::client::test_support::sim_config;
use crate::client::ClientConfig;
use crate::record::{Prompt, RequestSpec};
use crate::sim::{spawn_local, SimConfig, SimMode};

/// `n` independent requests, one every `gap_s`; each answered request from the first half
/// is followed by one more turn, due at once (as multi-round workloads do).
struct Paced {
    n: u64,
    gap_s: f64,
    next: u64,
    follow_ups: u64,
}

impl Paced {
    fn spec(id: u64, due_s: f64, round: u32) -> RequestSpec {
        RequestSpec {
            id,
            user_id: Some(id),
            round,
            due_s,
            slot_s: None,
            prompt: Prompt::Text(format!("question {id} about the runner")),
            max_tokens: 4,
            client_prompt_tokens: 5,
            warmup: false,
            extra: Default::default(),
        }
    }
}

impl Workload for Paced {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        (self.next < self.n).then(|| {
            self.next += 1;
            Paced::spec(self.next - 1, (self.next - 1) as f64 * self.gap_s, 1)
        })
    }

    fn on_complete(&mut self, done: &Completed, now_s: f64) -> Vec<RequestSpec> {
        if done.record.round == 1 && done.record.id < self.n / 2 {
            self.follow_ups += 1;
            vec![Paced::spec(1000 + done.record.id, now_s, 2)]
        } else {
            Vec::new()
        }
    }

    fn window(&self) -> Option<(f64, f64)> {
        None
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({"follow_ups": self.follow_ups})
    }
}

/// Independent requests due at the given times (seconds).
struct At {
    due: Vec<f64>,
    next: usize,
}

impl Workload for At {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        let due = *self.due.get(self.next)?;
        self.next += 1;
        Some(Paced::spec(self.next as u64 - 1, due, 1))
    }

    fn on_complete(&mut self, _: &Completed, _: f64) -> Vec<RequestSpec> {
        Vec::new()
    }

    fn window(&self) -> Option<(f64, f64)> {
        None
    }
}

/// One request, and one turn that waits for its answer, due at once: built ahead
/// ([`Workload::turn_ahead`]) if `ahead`, else from the answer.
struct AheadOnce {
    sent: bool,
    ahead: bool,
}

impl Workload for AheadOnce {
    fn next_scheduled(&mut self) -> Option<RequestSpec> {
        (!std::mem::replace(&mut self.sent, true)).then(|| Paced::spec(0, 0.0, 1))
    }

    fn turn_ahead(&mut self, after: &RequestSpec) -> Option<super::super::TurnAhead> {
        (self.ahead && after.id == 0).then(|| super::super::TurnAhead {
            spec: Paced::spec(1, 0.0, 2),
            answer: None,
        })
    }

    fn on_complete(&mut self, done: &Completed, now_s: f64) -> Vec<RequestSpec> {
        if done.record.id == 0 && done.follow_up.is_none() {
            vec![Paced::spec(1, now_s, 2)]
        } else {
            Vec::new()
        }
    }

    fn window(&self) -> Option<(f64, f64)> {
        None
    }
}

/// A turn due when its answer arrives leaves at once, on another connection, even when the
/// server ends the answer's body 300 ms after its `[DONE]` (with the body read to its end
/// first, it left 200 ms late: the longest lmbench waits for it); whether the turn was built
/// ahead or is built from the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_turn_does_not_wait_for_the_end_of_its_answer_body() {
    let url = crate::client::test_support::late_end_server(
        Duration::from_millis(100),
        Duration::from_millis(300),
    )
    .await;
    for ahead in [true, false] {
        due_turn_after_late_end(&url, ahead).await;
    }
}

async fn due_turn_after_late_end(url: &str, ahead: bool) {
    let client = Client::new(sim_config(url)).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let wl = AheadOnce { sent: false, ahead };
    let done = run_with(Box::new(wl), &client, &cancel, tx, 1).await;
    assert_eq!(done.stats.finished, 2);
    let mut records = Vec::new();
    while let Some(r) = rx.recv().await {
        records.push(r);
    }
    records.sort_by_key(|r| r.id);
    let [answer, turn] = &records[..] else {
        panic!("{records:?}")
    };
    assert!(answer.ok() && turn.ok(), "{records:?}");
    // Due when the answer's `[DONE]` came; sent ahead, its slot kept.
    assert_eq!(turn.due_s, answer.end_s, "{turn:?}");
    assert_eq!(turn.slot_s, ahead.then_some(0.0), "{turn:?}");
    let lag_ms = (turn.sent_s - turn.due_s) * 1000.0;
    assert!(
        lag_ms < 100.0,
        "the turn (built ahead: {ahead}) left {lag_ms:.1} ms after it was due"
    );
}

fn ttft_ms(r: &RequestRecord) -> f64 {
    (r.first_token_s.expect("a first token") - r.sent_s) * 1000.0
}

/// Opening a connection takes 200 ms here (a TLS handshake held back) and the engine's
/// TTFT is 300 ms. Requests 5 s apart go out on connections opened before the clock
/// started, so none waits for a connect (with idle connections dropped after 3 s and no
/// warm-up, each of them opened one inside its TTFT). When more requests are in flight than
/// connections are open, the one that opens a connection records the set-up as its connect
/// time, which its TTFT includes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_seconds_apart_go_out_on_warm_connections() {
    let sim = spawn_local(SimConfig {
        mode: SimMode::Fixed,
        ttft_ms: 300.0,
        itl_ms: 5.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let connect = Duration::from_millis(200);
    let front = crate::client::test_support::slow_tls_front(sim.addr, connect).await;
    let client = Client::new(ClientConfig {
        ca_cert: Some(front.ca.path().to_path_buf()),
        ..sim_config(&front.base_url)
    })
    .unwrap();
    let mut due = vec![0.0, 5.0, 10.0];
    due.extend(std::iter::repeat_n(10.5, WARM_CONNECTIONS + 1));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let wl = At { due, next: 0 };
    let done = run_with(Box::new(wl), &client, &cancel, tx, 1).await;
    assert_eq!(done.stats.finished, 3 + WARM_CONNECTIONS as u64 + 1);
    let mut records = Vec::new();
    while let Some(r) = rx.recv().await {
        records.push(r);
    }
    records.sort_by_key(|r| r.id);
    for r in &records {
        assert!(r.ok(), "{:?}", r.error);
    }

    // 5 s apart: warm connections, no connect inside the TTFT.
    for r in &records[..3] {
        assert_eq!(
            (r.new_connection, r.connect_ms),
            (Some(false), None),
            "request {} due at {} s",
            r.id,
            r.due_s
        );
        let t = ttft_ms(r);
        assert!((295.0..480.0).contains(&t), "request {}: TTFT {t} ms", r.id);
        assert!(r.sent_s - r.due_s < 0.1, "request {} left late", r.id);
    }

    // One more at once than connections were warmed: exactly one opens a connection, and
    // its record says how long that took.
    let burst = &records[3..];
    let opened: Vec<&RequestRecord> = burst
        .iter()
        .filter(|r| r.new_connection == Some(true))
        .collect();
    assert_eq!(opened.len(), 1, "{burst:?}");
    let r = opened[0];
    let c = r.connect_ms.expect("connect time of a new connection");
    let t = ttft_ms(r);
    eprintln!(
        "5 s apart: TTFT {:.1} / {:.1} / {:.1} ms on warm connections; burst: request {} \
         opened a connection: connect {c:.1} ms, TTFT {t:.1} ms",
        ttft_ms(&records[0]),
        ttft_ms(&records[1]),
        ttft_ms(&records[2]),
        r.id
    );
    assert!((200.0..1000.0).contains(&c), "connect {c} ms");
    assert!(t >= c + 295.0, "TTFT {t} ms includes the connect {c} ms");
    for r in burst.iter().filter(|r| r.new_connection != Some(true)) {
        assert_eq!((r.new_connection, r.connect_ms), (Some(false), None));
        assert!(ttft_ms(r) < 480.0, "TTFT {} ms", ttft_ms(r));
    }
    sim.shutdown().await.unwrap();
}

/// Requests dealt to several send threads (each with its own connection pool) all complete,
/// each exactly once, with follow-up turns, and the run leaves no request behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_send_threads_complete_every_request() {
    let sim = spawn_local(SimConfig {
        mode: SimMode::Fixed,
        ttft_ms: 2.0,
        itl_ms: 1.0,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let client = Client::new(sim_config(&sim.base_url())).unwrap();
    for threads in [1, 3] {
        let wl = Paced {
            n: 60,
            gap_s: 0.004,
            next: 0,
            follow_ups: 0,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let done = run_with(Box::new(wl), &client, &cancel, tx, threads).await;
        let stats = done.stats;
        let mut records = Vec::new();
        while let Some(r) = rx.recv().await {
            records.push(r);
        }
        assert_eq!(done.workload.stats()["follow_ups"], 30);
        assert_eq!((stats.sent, stats.finished), (90, 90), "{threads} threads");
        assert!(!stats.cancelled);
        let mut ids: Vec<u64> = records.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 90);
        for r in &records {
            assert!(r.ok(), "{threads} threads: {:?}", r.error);
            assert_eq!(r.completion_tokens, Some(4));
            assert_eq!(r.chunk_times_s.len(), 4);
            assert!(r.sent_s >= r.due_s && r.end_s >= r.sent_s);
        }
    }
    sim.shutdown().await.unwrap();
}
