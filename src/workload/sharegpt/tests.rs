//! Unit tests of ShareGPT: selection, rounds, warmup, bad datasets, reproducibility.

use super::*;
use crate::workload::test_support::*;
use crate::workload::MEASURED_START_LEAD_S;

const SAMPLE: &str = "3-workloads/sharegpt/sample.json";

/// The item, validated against the context's root (where its dataset is).
fn build_at(yaml: &str, c: &RunContext) -> Result<ShareGpt, WorkloadError> {
    let cfg = crate::workload::spec_from_yaml_in::<Raw>(yaml, &c.root);
    build_cfg(&cfg, c)
}

fn build_cfg(cfg: &Config, c: &RunContext) -> Result<ShareGpt, WorkloadError> {
    let run = run("ShareGPT", "QPS", 4.0, Some(4.0));
    ShareGpt::new(cfg, &run, c)
}

fn build(yaml: &str) -> ShareGpt {
    build_at(&format!("DATASET_PATH: {SAMPLE}\n{yaml}"), &ctx(1)).unwrap()
}

#[test]
fn defaults_replay_rounds_three_to_five_after_a_warmup_of_round_two() {
    let mut w = build("QPS: [4]\n");
    let sent = drive(&mut w, |_| 0.5, |_| false);
    // The sample has 30 conversations; one has only 4 human turns.
    let convs = 29;
    let warm: Vec<&Sent> = sent.iter().filter(|s| s.spec.warmup).collect();
    let measured: Vec<&Sent> = sent.iter().filter(|s| !s.spec.warmup).collect();
    assert_eq!(warm.len(), convs);
    assert!(warm.iter().all(|s| s.spec.round == 2));
    assert_eq!(measured.len(), convs * 3);
    // The measured requests start a lead after the last warmup answer.
    let warm_end = warm.iter().map(|s| s.end).fold(0.0, f64::max) + MEASURED_START_LEAD_S;
    for (k, s) in measured.iter().enumerate() {
        // Conversation order, rounds 3, 4, 5, one request every 1/QPS.
        assert_eq!(s.spec.round, 3 + (k % 3) as u32);
        assert_eq!(s.spec.user_id, Some(5_000_000 + (k / 3) as u64));
        assert!((s.spec.due_s - (warm_end + k as f64 / 4.0)).abs() < 1e-9);
    }
    for (k, s) in warm.iter().enumerate() {
        assert!((s.spec.due_s - k as f64 / 4.0).abs() < 1e-9);
    }
    let (a, b) = w.window().unwrap();
    assert!((a - warm_end).abs() < 1e-9);
    assert!((b - a - 87.0 / 4.0).abs() < 1e-9);
    assert_eq!(w.stats()["conversations_replayed"], convs);
}

#[test]
fn warmup_exists_from_start_round_two_and_not_below() {
    let two = build("QPS: 4\nSTART_ROUND: 2\n");
    assert_eq!(two.warmup_plan.len(), 29);
    assert!(two.warmup_plan.iter().all(|&(_, r)| r == 1));
    assert_eq!(two.measured_plan.len(), 29 * 4);
    for s in [1, 0] {
        let w = build(&format!("QPS: 4\nSTART_ROUND: {s}\n"));
        assert!(w.warmup_plan.is_empty());
        assert_eq!(w.measured_plan.len(), 29 * 5);
        assert_eq!(w.t0, Some(0.0));
    }
    let mut one = build("QPS: 4\nSTART_ROUND: 1\n");
    assert!(!one.next_scheduled().unwrap().warmup);
}

#[test]
fn each_round_extends_the_previous_prompt_with_the_recorded_answer() {
    let mut w = build("QPS: 4\nSTART_ROUND: 1\nMIN_ROUNDS: 6\n");
    let sent = drive(&mut w, |_| 0.1, |_| false);
    let data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(SAMPLE).unwrap()).unwrap();
    let b = PromptBuilder::global();
    let by_user = by_user(&sent);
    assert!(!by_user.is_empty());
    for reqs in by_user.values() {
        assert_eq!(reqs.len(), 6);
        for (k, r) in reqs.iter().enumerate() {
            let ms = messages(r);
            assert_eq!(r.round, k as u32 + 1);
            assert_eq!(ms[0].role, "system");
            assert!(ms[0].content.starts_with("You are a helpful assistant."));
            // System, then k + 1 questions and k answers, alternating.
            assert_eq!(ms.len(), 2 * k + 2);
            for (i, m) in ms[1..].iter().enumerate() {
                assert_eq!(m.role, if i % 2 == 0 { "user" } else { "assistant" });
            }
            let texts: std::collections::HashSet<&str> =
                ms.iter().map(|m| m.content.as_str()).collect();
            assert_eq!(texts.len(), ms.len(), "no text is sent twice");
            if k > 0 {
                assert_eq!(&ms[..ms.len() - 2], messages(reqs[k - 1]));
            }
        }
    }
    // The answers are the dataset's, and max_tokens is the next answer's length (≤ 256).
    let first = &sent[0].spec;
    let conv = &data[0]["conversations"];
    assert_eq!(
        messages(first)[1].content,
        conv[0]["value"].as_str().unwrap()
    );
    let answer = conv[1]["value"].as_str().unwrap();
    assert_eq!(first.max_tokens, b.count(answer).min(256) as u32);
    // The client counts the prompt as sent: rendered for the completions API.
    assert_eq!(
        first.client_prompt_tokens,
        b.count(&crate::client::render_completions_prompt(messages(first))) as u64
    );
}

#[test]
fn limit_and_min_rounds_select_conversations() {
    let w = build("QPS: 4\nLIMIT: 5\nMIN_ROUNDS: 6\n");
    // Of the first five conversations, those with at least six human turns: #0, #1, #3, #4.
    assert_eq!(w.conversations.len(), 4);
    assert_eq!(w.stats()["conversations_loaded"], 5);
    assert_eq!(w.stats()["conversations_in_file"], 30);
    let none = build_at(
        &format!("DATASET_PATH: {SAMPLE}\nQPS: 4\nMIN_ROUNDS: 9\n"),
        &ctx(1),
    );
    assert!(matches!(none, Err(WorkloadError::Other(m)) if m.contains("MIN_ROUNDS")));
}

#[test]
fn bad_datasets_are_errors_naming_the_file_and_odd_conversations_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ctx(1);
    c.root = dir.path().to_path_buf();
    for (name, body) in [
        ("object.json", r#"{"not": "a list"}"#),
        (
            "novalue.json",
            r#"[{"id": "a", "conversations": [{"from": "human"}]}]"#,
        ),
        ("truncated.json", r#"[{"id": "a", "conversations": ["#),
    ] {
        std::fs::write(dir.path().join(name), body).unwrap();
        let err = build_at(&format!("DATASET_PATH: {name}\nQPS: 1\n"), &c)
            .err()
            .expect("a malformed dataset is an error");
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains("malformed"), "{msg}");
    }
    // A dataset that is gone by the time the run starts.
    let mut gone =
        crate::workload::spec_from_yaml_in::<Raw>("DATASET_PATH: odd.json\nQPS: 1\n", &{
            std::fs::write(dir.path().join("odd.json"), "[]").unwrap();
            dir.path().to_path_buf()
        });
    gone.dataset_path = "missing.json".into();
    let err = build_cfg(&gone, &c).err().unwrap();
    assert!(err.to_string().contains("missing.json"));
    let turns = |n: usize, twice: bool| {
        let mut v: Vec<serde_json::Value> = (0..n)
            .flat_map(|i| {
                [
                    serde_json::json!({"from": "human", "value": format!("q{i}")}),
                    serde_json::json!({"from": "gpt", "value": format!("a{i}")}),
                ]
            })
            .collect();
        if twice {
            v.insert(1, serde_json::json!({"from": "human", "value": "again"}));
        }
        serde_json::json!({"id": "x", "conversations": v})
    };
    let data = serde_json::json!([turns(5, true), turns(5, false), turns(5, false)]);
    std::fs::write(dir.path().join("odd.json"), data.to_string()).unwrap();
    let w = build_at("DATASET_PATH: odd.json\nQPS: 1\n", &c).unwrap();
    assert_eq!(w.conversations.len(), 2);
    assert_eq!(w.stats()["conversations_skipped_malformed"], 1);
}

#[test]
fn duration_caps_both_phases_and_the_stream_is_reproducible() {
    let mut c = ctx(1);
    c.duration_override_s = Some(2.0);
    let yaml = format!("DATASET_PATH: {SAMPLE}\nQPS: 4\n");
    let mut w = build_at(&yaml, &c).unwrap();
    let sent = drive(&mut w, |_| 0.2, |_| false);
    assert_eq!(sent.iter().filter(|s| s.spec.warmup).count(), 8);
    assert_eq!(sent.iter().filter(|s| !s.spec.warmup).count(), 8);
    let again = drive(&mut build_at(&yaml, &c).unwrap(), |_| 0.2, |_| false);
    assert_eq!(stream_json(&sent), stream_json(&again));
    // Another run (another seed) tags its conversations differently: no cache carry-over.
    let other = drive(&mut build_at(&yaml, &ctx(2)).unwrap(), |_| 0.2, |_| false);
    assert_ne!(messages(&sent[0].spec)[0], messages(&other[0].spec)[0]);
}
