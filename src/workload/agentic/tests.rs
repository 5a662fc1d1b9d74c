//! Unit tests of Agentic: joins, hand-offs between agents, timing, failures, reproducibility.

use super::*;
use crate::workload::test_support::*;

fn cfg(yaml: &str) -> Config {
    crate::workload::spec_from_yaml::<Raw>(yaml)
}

const BASE: &str = "NUM_AGENTS: 3\nNUM_ROUNDS: 4\nSYSTEM_PROMPT: 200\nCHAT_HISTORY: 100\nANSWER_LEN: 8\nDURATION: 10\n";

fn build(yaml: &str, interval: f64, seed: u64) -> Agentic {
    let run = run("Agentic", "NEW_USER_INTERVAL", interval, None);
    Agentic::new(&cfg(yaml), &run, &ctx(seed)).unwrap()
}

#[test]
fn users_join_at_multiples_of_the_interval_and_send_all_rounds() {
    let mut w = build(BASE, 1.5, 1);
    let sent = drive(&mut w, |_| 0.2, |_| false);
    let firsts: Vec<f64> = sent
        .iter()
        .filter(|s| s.spec.round == 1)
        .map(|s| s.spec.due_s)
        .collect();
    // 10 s window, one user every 1.5 s: joins at 0, 1.5, … 9.
    assert_eq!(firsts.len(), 7);
    for (j, d) in firsts.iter().enumerate() {
        assert!((d - j as f64 * 1.5).abs() < 1e-9, "{firsts:?}");
    }
    let by_user = by_user(&sent);
    for reqs in by_user.values() {
        assert!(reqs.len() <= 4);
        for (k, r) in reqs.iter().enumerate() {
            assert_eq!(r.round, k as u32 + 1);
            assert!(r.due_s < 10.0);
            let last = messages(r).last().unwrap();
            assert!(
                last.content
                    .contains(&format!("Agent {}: Here's question #{}", k % 3, k + 1)),
                "{}",
                last.content
            );
        }
        // A fast server: exactly 1 s apart.
        for p in reqs.windows(2) {
            assert!((p[1].due_s - p[0].due_s - 1.0).abs() < 1e-9);
        }
    }
    // Users that joined early enough made all four requests.
    assert_eq!(by_user.values().filter(|r| r.len() == 4).count(), 5);
    assert_eq!(w.stats()["requests_held_back_by_answer"], 0);
    assert_eq!(w.stats()["requests"], sent.len() as u64);
}

#[test]
fn a_slow_answer_holds_the_next_request_back() {
    let mut w = build(BASE, 2.0, 1);
    let sent = drive(&mut w, |_| 1.7, |_| false);
    let mut by_user: HashMap<u64, Vec<&Sent>> = HashMap::new();
    for s in &sent {
        by_user.entry(s.spec.user_id.unwrap()).or_default().push(s);
    }
    for reqs in by_user.values() {
        for p in reqs.windows(2) {
            assert!(p[1].spec.due_s >= p[0].spec.due_s + 1.0 - 1e-9);
            assert!(p[1].spec.due_s >= p[0].end - 1e-9, "sent before the answer");
            assert!((p[1].spec.due_s - p[0].end).abs() < 1e-9);
            // The slot chain goes on 1 s at a time: the latency from the slot counts the wait.
            let prev_slot = p[0].spec.slot_s.unwrap_or(p[0].spec.due_s);
            let slot = p[1].spec.slot_s.expect("a later request records its slot");
            assert!(
                (slot - prev_slot - 1.0).abs() < 1e-9,
                "{slot} after {prev_slot}"
            );
            assert!(slot < p[1].spec.due_s);
        }
    }
    let held = w.stats()["requests_held_back_by_answer"].as_u64().unwrap();
    assert!(held > 0);
    assert_eq!(
        held,
        sent.iter().filter(|s| s.spec.round > 1).count() as u64
    );
}

#[test]
fn first_request_has_exact_lengths_and_later_ones_carry_the_previous_answer() {
    let mut w = build(BASE, 5.0, 1);
    let sent = drive(&mut w, |_| 0.1, |_| false);
    let b = PromptBuilder::global();
    let first = &sent[0].spec;
    let text = &messages(first)[0].content;
    let uid = first.user_id.unwrap();
    let sys = text.split("For user").next().unwrap();
    let sys_filler = sys.strip_suffix('.').unwrap();
    assert_eq!(
        b.count(sys_filler),
        b.count("Hi, here's some system prompt:") + 200
    );
    // Every user's first request starts with the same system prompt.
    let other = sent
        .iter()
        .find(|s| s.spec.round == 1 && s.spec.user_id != Some(uid))
        .unwrap();
    assert!(messages(&other.spec)[0].content.starts_with(sys));
    let second = sent
        .iter()
        .find(|s| s.spec.user_id == Some(uid) && s.spec.round == 2)
        .unwrap();
    let ms = messages(&second.spec);
    assert_eq!(ms.len(), 2);
    assert_eq!(ms[0].role, "assistant");
    assert!(ms[0].content.starts_with("Agent 0: answer0"));
    assert!(ms[1].content.starts_with("Agent 1: Here's question #2"));
    assert_eq!(first.max_tokens, 8);
}

#[test]
fn a_failed_request_keeps_the_session_going() {
    let mut w = build(BASE, 5.0, 1);
    let sent = drive(&mut w, |_| 0.1, |s| s.round == 2);
    let uid = sent[0].spec.user_id.unwrap();
    let third = sent
        .iter()
        .find(|s| s.spec.user_id == Some(uid) && s.spec.round == 3)
        .expect("the session went on after its failed request");
    let ms = messages(&third.spec);
    assert_eq!(ms.len(), 1, "no answer to carry after a failure");
    assert!(ms[0].content.starts_with("Agent 2: Here's question #3"));
    assert!(sent
        .iter()
        .any(|s| s.spec.user_id == Some(uid) && s.spec.round == 4));
    assert_eq!(
        w.stats()["requests_failed"].as_u64().unwrap(),
        sent.iter().filter(|s| !s.ok).count() as u64
    );
}

#[test]
fn warmup_users_have_their_own_ids_and_come_first() {
    let yaml = format!("{BASE}NUM_USERS_WARMUP: 2\n");
    let mut w = build(&yaml, 2.0, 1);
    let sent = drive(&mut w, |_| 0.3, |_| false);
    let warm: Vec<&Sent> = sent.iter().filter(|s| s.spec.warmup).collect();
    assert_eq!(warm.len(), 2);
    let warm_end = warm.iter().map(|s| s.end).fold(0.0, f64::max);
    for s in &sent {
        let uid = s.spec.user_id.unwrap();
        if s.spec.warmup {
            assert!(uid >= 5_000_000 + WARMUP_ID_OFFSET);
        } else {
            assert!(uid < 5_000_000 + WARMUP_ID_OFFSET);
            assert!(s.spec.due_s >= warm_end - 1e-9);
        }
    }
    let (a, b) = w.window().unwrap();
    // The measured users start a lead after the last warmup answer (built before they are due).
    assert!((a - warm_end - MEASURED_START_LEAD_S).abs() < 1e-9 && (b - a - 10.0).abs() < 1e-9);
}

#[test]
fn the_same_seed_gives_the_same_stream() {
    let one = stream_json(&drive(&mut build(BASE, 1.0, 3), |_| 0.4, |s| s.id % 5 == 0));
    let two = stream_json(&drive(&mut build(BASE, 1.0, 3), |_| 0.4, |s| s.id % 5 == 0));
    assert_eq!(one, two);
    let other = stream_json(&drive(&mut build(BASE, 1.0, 4), |_| 0.4, |s| s.id % 5 == 0));
    assert_ne!(one, other);
}
