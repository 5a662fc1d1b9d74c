//! Unit tests of StrictSynthetic: joins, recorded users, history scrambling, the end of a run.

use super::*;
use crate::workload::test_support::*;
use std::collections::BTreeMap;

fn cfg(yaml: &str) -> Config {
    crate::workload::spec_from_yaml::<Raw>(yaml)
}

const BASE: &str = "NUM_CONCURRENT_USERS: 4\nNUM_ROUNDS_PER_USER: 3\nSHARED_SYSTEM_PROMPT_LEN: 100\nFIRST_PROMPT_LEN: 50\nFOLLOW_UP_PROMPTS_LEN: 20\nANSWER_LEN: 10\n";

fn build_with(yaml: &str, t: f64, c: &RunContext) -> Strict {
    let run = run("StrictSynthetic", "TIME_BETWEEN_REQUESTS_PER_USER", t, None);
    Strict::new(&cfg(yaml), &run, c).unwrap()
}

fn build(yaml: &str, t: f64, seed: u64) -> Strict {
    build_with(yaml, t, &ctx(seed))
}

fn by_user(sent: &[Sent]) -> BTreeMap<u64, Vec<&RequestSpec>> {
    let mut m: BTreeMap<u64, Vec<&RequestSpec>> = BTreeMap::new();
    for s in sent {
        m.entry(s.spec.user_id.unwrap()).or_default().push(&s.spec);
    }
    m
}

#[test]
fn users_send_every_t_and_join_every_rt_over_n() {
    // N = 4, R = 3, T = 2.5: a user joins every 1.875 s; the recorded users are 5…8.
    let mut w = build(BASE, 2.5, 1);
    let sent = drive(&mut w, |_| 0.7, |_| false);
    let users = by_user(&sent);
    let base = 5_000_000;
    let gap = 3.0 * 2.5 / 4.0;
    let end = 7.0 * gap + 2.0 * 2.5;
    for (&uid, reqs) in &users {
        let ordinal = uid - base;
        let join = (ordinal - 1) as f64 * gap;
        assert!((reqs[0].due_s - join).abs() < 1e-9, "user {ordinal}");
        for (k, r) in reqs.iter().enumerate() {
            assert_eq!(r.round, k as u32 + 1);
            assert!((r.due_s - (join + k as f64 * 2.5)).abs() < 1e-9);
            assert!(r.due_s <= end + 1e-9);
            assert_eq!(r.warmup, !(5..=8).contains(&ordinal), "user {ordinal}");
        }
        if (5..=8).contains(&ordinal) {
            assert_eq!(reqs.len(), 3, "a recorded user sends every round");
        }
    }
    // Users keep joining until the recorded users' last round; none joins later.
    let last_ordinal = users.keys().max().unwrap() - base;
    assert_eq!(last_ordinal, (end / gap).floor() as u64 + 1);
    assert_eq!(sent.iter().filter(|s| !s.spec.warmup).count(), 12);
    // Sorted by due time, as the runner needs.
    assert!(sent.windows(2).all(|p| p[0].spec.due_s <= p[1].spec.due_s));
    let st = w.stats();
    assert_eq!(st["configured_qps"], 4.0 / 2.5);
    assert!(st["max_users_sending_at_join"].as_u64().unwrap() < 4);
    assert_eq!(
        st["recorded_users"],
        serde_json::json!([base + 5, base + 8])
    );
    let (a, b) = w.window().unwrap();
    assert!((a - 4.0 * gap).abs() < 1e-9 && (b - end).abs() < 1e-9);
    // Offered load inside the recorded window: N/T.
    let in_window = sent
        .iter()
        .filter(|s| s.spec.due_s >= a - 1e-9 && s.spec.due_s < b - 1e-9)
        .count() as f64;
    assert!((in_window / (b - a) - 1.6).abs() < 0.35, "{in_window}");
}

#[test]
fn messages_follow_lmbench_and_full_reuse_keeps_the_history() {
    let mut w = build(BASE, 1.0, 1);
    let sent = drive(&mut w, |_| 3.0, |_| false);
    let b = PromptBuilder::global();
    for reqs in by_user(&sent).values() {
        let uid = reqs[0].user_id.unwrap();
        let first = messages(reqs[0]);
        assert_eq!(first.len(), 2);
        assert_eq!(b.count(&first[0].content), b.count("System Prompt:") + 100);
        let tail = ", write a very long story please.";
        let prompt = first[1].content.strip_suffix(tail).unwrap();
        assert_eq!(b.count(prompt), b.count(&format!("{uid}:")) + 50);
        for k in 1..reqs.len() {
            let prev = messages(reqs[k - 1]);
            let ms = messages(reqs[k]);
            assert_eq!(&ms[..prev.len()], prev, "the history is kept as sent");
            assert_eq!(ms.len(), prev.len() + 2);
            assert_eq!(ms[prev.len()].role, "assistant");
            let ans = ms[prev.len()]
                .content
                .strip_prefix("System Answer:")
                .unwrap();
            assert_eq!(b.count(ans), 10);
            let follow = ms[prev.len() + 1].content.strip_suffix(tail).unwrap();
            assert_eq!(b.count(follow), b.count(&format!("{uid}:")) + 20);
        }
    }
    // Every user shares the system prompt.
    let sys: std::collections::HashSet<&str> = sent
        .iter()
        .map(|s| messages(&s.spec)[0].content.as_str())
        .collect();
    assert_eq!(sys.len(), 1);
}

#[test]
fn partial_reuse_scrambles_the_tail_of_the_history() {
    let yaml = format!("{BASE}KV_REUSE_RATIO: 0.5\n");
    let mut w = build(&yaml, 1.0, 1);
    let sent = drive(&mut w, |_| 0.3, |_| false);
    for reqs in by_user(&sent).values() {
        for k in 1..reqs.len() {
            let prev = messages(reqs[k - 1]);
            let ms = messages(reqs[k]);
            let total: usize = ms.iter().map(|m| m.content.len()).sum();
            assert_ne!(&ms[..prev.len()], prev, "the tail changed");
            assert!(ms.last().unwrap().content.ends_with(SCRAMBLE_SUFFIX));
            // Half the characters are shuffled: what stays equal between two consecutive
            // requests is about the first half of the earlier one.
            let flat = |m: &[Message]| m.iter().map(|x| x.content.clone()).collect::<String>();
            let before = flat(prev).len();
            let same = flat(ms)
                .chars()
                .zip(flat(prev).chars())
                .take_while(|(a, b)| a == b)
                .count();
            assert!(same >= before * 4 / 10, "{same} of {before}");
            assert!(same < total * 6 / 10, "{same} of {total}");
        }
    }
}

#[test]
fn the_scramble_is_lmbench_s() {
    let h = vec![
        Message::new("user", "abcdefghij"),
        Message::new("assistant", "klmnopqrst"),
        Message::new("user", "uvwxyz"),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    assert_eq!(scrambled(&h, 1.0, &mut rng), h);
    // 26 characters, ratio 0.5: 13 scrambled — all of the last message, 7 of the one before.
    let s = scrambled(&h, 0.5, &mut rng);
    assert_eq!(s[0], h[0]);
    assert_eq!(&s[1].content[..3], "klm");
    let mut tail: Vec<char> = s[1].content[3..].chars().collect();
    tail.sort_unstable();
    assert_eq!(tail.iter().collect::<String>(), "nopqrst");
    let last = s[2].content.strip_suffix(SCRAMBLE_SUFFIX).unwrap();
    let mut chars: Vec<char> = last.chars().collect();
    chars.sort_unstable();
    assert_eq!(chars.iter().collect::<String>(), "uvwxyz");
    // A ratio so close to 1 that nothing is scrambled still appends LMBench's suffix.
    let s = scrambled(&h, 0.99, &mut rng);
    assert_eq!(s[2].content, format!("uvwxyz{SCRAMBLE_SUFFIX}"));
    assert_eq!(s[..2], h[..2]);
}

#[test]
fn the_same_seed_gives_a_byte_identical_stream() {
    let yaml = format!("{BASE}KV_REUSE_RATIO: 0.5\n");
    let one = stream_json(&drive(&mut build(&yaml, 1.5, 9), |_| 0.4, |_| false));
    let two = stream_json(&drive(
        &mut build(&yaml, 1.5, 9),
        |_| 2.0,
        |s| s.id % 3 == 0,
    ));
    assert_eq!(one, two, "answers and failures do not change what is sent");
    let other = stream_json(&drive(&mut build(&yaml, 1.5, 10), |_| 0.4, |_| false));
    assert_ne!(one, other);
}

#[test]
fn failures_never_hold_the_run_and_are_counted() {
    let mut w = build(BASE, 1.0, 1);
    let sent = drive(&mut w, |_| 5.0, |_| true);
    assert_eq!(sent.iter().filter(|s| !s.spec.warmup).count(), 12);
    let st = w.stats();
    assert_eq!(st["recorded_failed"], 12);
    assert_eq!(
        st["load_requests_failed"].as_u64().unwrap(),
        sent.iter().filter(|s| s.spec.warmup).count() as u64
    );
}

#[test]
fn fractional_t_and_the_duration_cap_is_not_applied() {
    let mut c = ctx(1);
    // Uncapped, T = 0.5 s ends at 7·0.375 + 2·0.5 = 3.625 s.
    c.duration_override_s = Some(2.0);
    let mut w = build_with(BASE, 0.5, &c);
    let sent = drive(&mut w, |_| 0.1, |_| false);
    // The measured users (who start at 1.5 s) still send all their rounds.
    assert_eq!(sent.iter().filter(|s| !s.spec.warmup).count(), 12);
    assert!(sent.iter().all(|s| s.spec.due_s < 3.7));
    assert_eq!(w.stats()["duration_override_ignored_s"], 2.0);
}
