//! Unit tests of LMCacheSynthetic: client counts that match a whole count of what is sent,
//! turns that count only their new messages, slots that advance whatever the answers do, and
//! measured users built one by one after a lead.

use super::*;
use crate::workload::spec_from_yaml;
use crate::workload::test_support::{by_user, ctx, drive, drive_ahead, run};

fn config(warmup: u64, users: u64, history: usize, duration: f64) -> Config {
    spec_from_yaml::<Raw>(&format!(
        "{{NUM_USERS_WARMUP: {warmup}, NUM_USERS: {users}, NUM_ROUNDS: 4, SYSTEM_PROMPT: 300, \
         CHAT_HISTORY: {history}, ANSWER_LEN: 6, QPS: [2], DURATION: {duration}}}"
    ))
}

fn workload(cfg: &Config, api: ApiType, prompt: std::sync::Arc<PromptBuilder>) -> Synthetic {
    let mut c = ctx(11);
    c.api = api;
    c.prompt = prompt;
    Synthetic::new(cfg, &run("synthetic", "QPS", 2.0, Some(2.0)), &c).unwrap()
}

/// Every request's client count is the whole count of the prompt as sent (the rendered prompt
/// on the completions API, the contents on the chat API), though turns are counted
/// incrementally and first messages in pieces.
#[test]
fn counts_equal_a_whole_count_of_every_prompt_sent() {
    let b = PromptBuilder::global();
    for api in [ApiType::Completions, ApiType::Chat] {
        for (warmup, history) in [(2, 120), (0, 0)] {
            let cfg = config(warmup, 4, history, 12.0);
            let mut w = workload(&cfg, api, b.clone());
            let sent = drive(&mut w, |_| 0.7, |s| s.id == 9);
            assert!(sent.len() > 20, "{}", sent.len());
            assert!(sent.iter().any(|s| s.spec.round > 1));
            for s in &sent {
                assert_eq!(
                    s.spec.client_prompt_tokens,
                    b.prompt_tokens(api, &s.spec.prompt) as u64,
                    "{api:?}, history {history}, request {} round {}",
                    s.spec.id,
                    s.spec.round
                );
            }
            assert_eq!(w.pieces_add_up, Some(true), "{api:?}, history {history}");
        }
    }
}

/// A follow-up turn of a user with a 20,000-token history tokenizes only the new answer and
/// question, not the history (a whole count reads about 130 kB).
#[test]
fn a_turn_counts_only_its_new_messages() {
    let b = PromptBuilder::private_copy();
    let cfg = config(0, 2, 20_000, 30.0);
    let mut w = workload(&cfg, ApiType::Completions, b.clone());
    // The first message built is counted whole once, to check that its pieces add up.
    let _ = w.next_scheduled().unwrap();
    assert_eq!(w.pieces_add_up, Some(true));
    let before = b.counted_bytes();
    let first = w.next_scheduled().unwrap();
    let history_bytes = match &first.prompt {
        Prompt::Messages(ms) => ms.iter().map(|m| m.content.len()).sum::<usize>(),
        Prompt::Text(t) => t.len(),
    };
    assert!(history_bytes > 100_000, "{history_bytes}");
    let read = b.counted_bytes() - before;
    assert!(
        read < 2_000,
        "the first message was counted whole: {read} bytes"
    );
    let done = crate::workload::test_support::completed_for(&first, 0.6);
    let before = b.counted_bytes();
    let next = w.on_complete(&done, 0.6);
    assert_eq!(next.len(), 1);
    assert!(next[0].round > first.round);
    let read = b.counted_bytes() - before;
    assert!(read < 500, "a turn tokenized {read} bytes");
    assert_eq!(
        next[0].client_prompt_tokens,
        PromptBuilder::global().prompt_tokens(ApiType::Completions, &next[0].prompt) as u64
    );
}

/// With answers slower than the per-user gap, every turn is held back, yet its slot is the
/// previous slot plus the gap: the latency from the slot includes the wait, and the slots keep
/// the intended rate.
#[test]
fn slots_advance_by_the_gap_whatever_the_answers_do() {
    let cfg = config(0, 4, 50, 20.0);
    let mut w = workload(&cfg, ApiType::Completions, PromptBuilder::global());
    let gap = w.gap;
    // Each answer takes 1.5 gaps.
    let sent = drive(&mut w, |_| 3.0, |_| false);
    let by_user = by_user(&sent);
    let mut follow_ups = 0;
    for specs in by_user.values() {
        for pair in specs.windows(2) {
            let (prev, next) = (pair[0], pair[1]);
            let prev_slot = prev.slot_s.unwrap_or(prev.due_s);
            let slot = next.slot_s.expect("a follow-up records its slot");
            assert!(
                (slot - (prev_slot + gap)).abs() < 1e-9,
                "{slot} vs {prev_slot} + {gap}"
            );
            assert!(
                next.due_s > slot,
                "held back: due {} slot {slot}",
                next.due_s
            );
            follow_ups += 1;
        }
    }
    assert!(follow_ups >= 8, "{follow_ups}");
    // Every turn after a user's first (its own or a new user's in the same slot) was held.
    let held = sent
        .iter()
        .filter(|s| s.spec.slot_s.is_some_and(|slot| s.spec.due_s > slot))
        .count();
    assert!(held >= follow_ups);
    assert_eq!(w.stats()["turns_held_back_by_answer"], held);
    // The last slot is inside the window; the sends run past it.
    let last_slot = sent
        .iter()
        .map(|s| s.spec.slot_s.unwrap_or(s.spec.due_s))
        .fold(0.0, f64::max);
    assert!(last_slot < 20.0);
}

/// The measured users start a lead after the last warmup answer, and are built one at a time
/// as the schedule asks for them, not all at once when that answer arrives.
#[test]
fn measured_users_start_a_lead_after_warmup_and_are_built_lazily() {
    let cfg = config(1, 6, 50, 10.0);
    let mut w = workload(&cfg, ApiType::Completions, PromptBuilder::global());
    let warm = w.next_scheduled().unwrap();
    assert!(warm.warmup);
    assert!(
        w.next_scheduled().is_none(),
        "nothing measured before the warmup answer"
    );
    let mut done = crate::workload::test_support::completed_for(&warm, 0.8);
    done.record.warmup = true;
    assert!(w.on_complete(&done, 0.8).is_empty());
    assert_eq!(
        w.users_started, 0,
        "no measured user is built when the warmup ends"
    );
    let first = w.next_scheduled().unwrap();
    assert!((first.due_s - (0.8 + MEASURED_START_LEAD_S)).abs() < 1e-9);
    assert_eq!(w.users_started, 1);
    assert_eq!(w.window().unwrap().0, first.due_s);
}

/// Turns built ahead of their answers (`turn_ahead`, filled in and sent by the runner) are the
/// turns the workload builds from the answers: the same users, rounds, due times, slots,
/// prompts and counts, whether answers come before their turn's slot (the turn waits for it) or
/// after (sent on arrival), with new users taking over finished conversations.
#[test]
fn turns_built_ahead_equal_turns_built_from_answers() {
    let b = PromptBuilder::global();
    for api in [ApiType::Completions, ApiType::Chat] {
        for latency in [0.3, 5.0] {
            let cfg = config(1, 4, 120, 30.0);
            let built = drive(&mut workload(&cfg, api, b.clone()), |_| latency, |_| false);
            let mut w = workload(&cfg, api, b.clone());
            let ahead = drive_ahead(&mut w, |_| latency, |_| false);
            let key = |s: &crate::workload::test_support::Sent| {
                let s = &s.spec;
                let prompt = serde_json::to_string(&s.prompt).unwrap();
                (
                    s.user_id,
                    s.round,
                    s.due_s,
                    s.slot_s,
                    prompt,
                    s.client_prompt_tokens,
                )
            };
            assert!(built.len() > 40, "{}", built.len());
            assert_eq!(built.len(), ahead.len());
            for (a, b) in built.iter().zip(&ahead) {
                assert_eq!(key(a), key(b), "{api:?} latency {latency}");
            }
            // All but the warmup user and the 4 first users were built ahead of their answers.
            assert_eq!(ahead.iter().filter(|s| s.ahead).count(), ahead.len() - 5);
            let held = ahead
                .iter()
                .filter(|s| s.spec.due_s > s.spec.slot_s.unwrap_or(f64::MAX))
                .count();
            assert_eq!(
                held > 0,
                latency > 2.0,
                "held-back turns at latency {latency}"
            );
        }
    }
}
