//! Unit tests of TraceReplayer: trace formats and units, windows, both schedules, prompts from hash
//! ids.

use super::*;
use crate::record::ApiType;

fn ctx(seed: u64) -> RunContext {
    RunContext {
        prompt: PromptBuilder::global(),
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        api: ApiType::Completions,
        seed,
        user_id_base: 1000,
        duration_override_s: None,
        repeat: 1,
    }
}

/// The validated item; these tests hand the trace in themselves, so the file the item
/// names only has to exist (the shipped sample when none is named).
fn cfg(yaml: &str) -> Config {
    let mut raw: Raw = serde_saphyr::from_str(yaml).unwrap();
    if raw.TRACE_FILE.is_none() {
        let at = serde_saphyr::Location::UNKNOWN;
        raw.TRACE_FILE = Some(serde_saphyr::Spanned::new(
            "traces/sample_trace.jsonl".into(),
            at,
            at,
        ));
    }
    crate::workload::validate_for_test(&raw, Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// A trace of ms offsets, one line per `(offset_ms, input, output, hash_ids)`.
fn trace_text(rows: &[(u64, u64, u64, &[u64])]) -> String {
    rows.iter()
            .map(|(t, i, o, h)| {
                format!(
                    "{}\n",
                    serde_json::json!({"timestamp": t, "input_length": i, "output_length": o, "hash_ids": h})
                )
            })
            .collect()
}

fn replay(text: &str, yaml: &str, qps: Option<f64>, c: &RunContext) -> TraceReplayer {
    let t = parse(text, "t.jsonl").unwrap();
    TraceReplayer::new(&cfg(yaml), &t, "t.jsonl", qps, c).unwrap()
}

fn drain(w: &mut TraceReplayer) -> Vec<RequestSpec> {
    std::iter::from_fn(|| w.next_scheduled()).collect()
}

fn dues(w: &mut TraceReplayer) -> Vec<f64> {
    drain(w).iter().map(|s| s.due_s).collect()
}

fn prompt_of(s: &RequestSpec) -> &str {
    match &s.prompt {
        Prompt::Text(t) => t,
        Prompt::Messages(_) => panic!("expected a text prompt"),
    }
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-9, "{a:?} vs {b:?}");
    }
}

/// Every second from 0 to 10 s, 8 tokens in, 4 out, no hash ids.
fn every_second() -> String {
    let rows: Vec<(u64, u64, u64, &[u64])> = (0..=10).map(|s| (s * 1000, 8, 4, &[][..])).collect();
    trace_text(&rows)
}

#[test]
fn detects_ms_offsets() {
    let t = parse(&trace_text(&[(0, 1, 1, &[]), (1500, 1, 1, &[])]), "m").unwrap();
    assert_eq!(t.unit, TimeUnit::MsOffsets);
    assert_eq!(t.span_s, 1.5);
}

#[test]
fn detects_unix_ns_strings_exactly() {
    let text = concat!(
        r#"{"timestamp": "1753694362340138614", "input_length": 5, "output_length": 2, "hash_ids": [7]}"#,
        "\n",
        r#"{"timestamp": "1753694363340138615", "input_length": 5, "output_length": 2, "hash_ids": [7]}"#,
        "\n"
    );
    let t = parse(text, "g").unwrap();
    assert_eq!(t.unit, TimeUnit::UnixNs);
    // One nanosecond survives: the difference is taken in integers.
    assert_eq!(t.entries[1].offset_s, 1_000_000_001.0 / 1e9);
}

#[test]
fn detects_unix_ms() {
    let t = parse(
        &trace_text(&[
            (1_753_694_362_340, 1, 1, &[]),
            (1_753_694_362_840, 1, 1, &[]),
        ]),
        "u",
    )
    .unwrap();
    assert_eq!(t.unit, TimeUnit::UnixMs);
    assert_eq!(t.span_s, 0.5);
}

#[test]
fn sorts_by_time_keeping_file_order_for_ties() {
    let t = parse(
        &trace_text(&[(3000, 1, 1, &[]), (1000, 2, 1, &[]), (1000, 3, 1, &[])]),
        "s",
    )
    .unwrap();
    let lines: Vec<usize> = t.entries.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 1]);
    assert_eq!(t.entries[0].offset_s, 0.0);
    assert_eq!(t.entries[2].offset_s, 2.0);
}

#[test]
fn window_is_inclusive_and_rebased_to_start_time() {
    let mut w = replay(
        &every_second(),
        "{START_TIME: 3, DURATION: 4, PRESERVE_TIMING: true}",
        None,
        &ctx(1),
    );
    assert_eq!(w.stats()["requests_in_window"], 5);
    assert_eq!(w.window(), Some((0.0, 4.0)));
    close(&dues(&mut w), &[0.0, 1.0, 2.0, 3.0, 4.0]);
    // `full` is the whole trace.
    let mut w = replay(
        &every_second(),
        "{START_TIME: 8.5, DURATION: full, PRESERVE_TIMING: true}",
        None,
        &ctx(1),
    );
    close(&dues(&mut w), &[0.5, 1.5]);
}

#[test]
fn timed_due_times_are_offsets_over_speed_up() {
    let text = trace_text(&[
        (0, 1, 1, &[]),
        (1000, 1, 1, &[]),
        (3000, 1, 1, &[]),
        (7000, 1, 1, &[]),
    ]);
    let want = [0.0, 0.5, 1.5, 3.5];
    let mut w = replay(&text, "{PRESERVE_TIMING: true, SPEED_UP: 2}", None, &ctx(1));
    close(&dues(&mut w), &want);
    // TIME_SCALE multiplies when SPEED_UP is absent, and SPEED_UP wins when both are set.
    let mut w = replay(
        &text,
        "{PRESERVE_TIMING: true, TIME_SCALE: 0.5}",
        None,
        &ctx(1),
    );
    close(&dues(&mut w), &want);
    let mut w = replay(
        &text,
        "{PRESERVE_TIMING: 'True', SPEED_UP: 2, TIME_SCALE: 10}",
        None,
        &ctx(1),
    );
    close(&dues(&mut w), &want);
}

#[test]
fn max_delay_caps_each_gap_not_the_offset() {
    let text = trace_text(&[
        (0, 1, 1, &[]),
        (1000, 1, 1, &[]),
        (101_000, 1, 1, &[]),
        (102_000, 1, 1, &[]),
        (103_500, 1, 1, &[]),
    ]);
    let mut w = replay(
        &text,
        "{PRESERVE_TIMING: true, MAX_DELAY: 2}",
        None,
        &ctx(1),
    );
    assert_eq!(w.stats()["gaps_capped_by_max_delay"], 1);
    // The 100 s gap becomes 2 s; the later gaps are unchanged.
    close(&dues(&mut w), &[0.0, 1.0, 3.0, 4.0, 5.5]);
}

#[test]
fn qps_mode_is_an_open_loop_in_trace_order() {
    let mut w = replay(
        &every_second(),
        "{START_TIME: 2, DURATION: 5, QPS: [4]}",
        Some(4.0),
        &ctx(1),
    );
    assert_eq!(w.window(), Some((0.0, 1.5)));
    assert_eq!(w.stats()["mode"], "qps");
    close(&dues(&mut w), &[0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
}

#[test]
fn duration_override_caps_the_replay() {
    let mut w = replay(
        &every_second(),
        "{PRESERVE_TIMING: true, SPEED_UP: 2}",
        None,
        &{
            let mut c = ctx(1);
            c.duration_override_s = Some(2.0);
            c
        },
    );
    assert_eq!(w.window(), Some((0.0, 2.0)));
    assert_eq!(w.stats()["beyond_duration_override"], 7);
    close(&dues(&mut w), &[0.0, 0.5, 1.0, 1.5]);
    let mut w = replay(&every_second(), "{QPS: [10]}", Some(10.0), &{
        let mut c = ctx(1);
        c.duration_override_s = Some(0.5);
        c
    });
    assert_eq!(dues(&mut w).len(), 5);
}

#[test]
fn shared_leading_hash_ids_share_exactly_that_prefix() {
    let bs = DEFAULT_BLOCK_SIZE as u64;
    let text = trace_text(&[(0, 3 * bs, 1, &[1, 2, 3]), (10, 3 * bs, 1, &[1, 2, 4])]);
    let mut w = replay(&text, "{PRESERVE_TIMING: true}", None, &ctx(1));
    let specs = drain(&mut w);
    let a: Vec<&str> = prompt_of(&specs[0]).split(' ').skip(1).collect();
    let b: Vec<&str> = prompt_of(&specs[1]).split(' ').skip(1).collect();
    assert_eq!(a.len(), 3 * bs as usize);
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    assert_eq!(common, 2 * bs as usize);
    assert_ne!(a[2 * bs as usize..], b[2 * bs as usize..]);
}

/// Blocks are salted with the point's seed by default (a point never finds the previous
/// point's blocks cached), and the same at every point with `SALT_PER_POINT: false`.
#[test]
fn block_text_depends_on_the_point_unless_salting_is_off() {
    let text = trace_text(&[(0, 64, 1, &[5, 6])]);
    let yaml = "{PRESERVE_TIMING: true, BLOCK_SIZE: 32}";
    let a = drain(&mut replay(&text, yaml, None, &ctx(1)));
    let b = drain(&mut replay(&text, yaml, None, &ctx(2)));
    assert_ne!(prompt_of(&a[0]), prompt_of(&b[0]));
    let yaml = "{PRESERVE_TIMING: true, BLOCK_SIZE: 32, SALT_PER_POINT: false}";
    let a = drain(&mut replay(&text, yaml, None, &ctx(1)));
    let b = drain(&mut replay(&text, yaml, None, &ctx(2)));
    assert_eq!(prompt_of(&a[0]), prompt_of(&b[0]));
}

#[test]
fn prompts_have_exactly_input_length_tokens() {
    let text = trace_text(&[
        (0, 0, 1, &[1]),
        (1, 1, 1, &[1, 2]),
        (2, 100, 1, &[]),
        (3, 512, 1, &[1]),
        (4, 513, 1, &[1]),
        (5, 1500, 1, &[1, 2]),
        (6, 700, 1, &[1, 2, 3, 4]),
    ]);
    let mut w = replay(&text, "{PRESERVE_TIMING: true}", None, &ctx(3));
    let b = PromptBuilder::global();
    let specs = drain(&mut w);
    let want = [1, 1, 100, 512, 513, 1500, 700];
    for (s, n) in specs.iter().zip(want) {
        assert_eq!(s.client_prompt_tokens, n);
        assert_eq!(b.count(prompt_of(s)), n as usize, "request {}", s.id);
    }
}

#[test]
fn overlong_requests_are_clipped_or_skipped_and_counted() {
    let text = trace_text(&[
        (0, 100, 10, &[1]),
        (1000, 300, 10, &[1]),
        (2000, 100, 50, &[1]),
        (3000, 300, 50, &[1]),
    ]);
    let limits = "MAX_INPUT_TOKENS: 200, MAX_OUTPUT_TOKENS: 20, BLOCK_SIZE: 64";
    let mut w = replay(
        &text,
        &format!("{{PRESERVE_TIMING: true, {limits}}}"),
        None,
        &ctx(1),
    );
    let st = w.stats();
    assert_eq!(
        (
            &st["clipped_requests"],
            &st["clipped_inputs"],
            &st["clipped_outputs"],
            &st["skipped_overlong"]
        ),
        (&3.into(), &2.into(), &2.into(), &0.into())
    );
    let specs = drain(&mut w);
    let lens: Vec<(u64, u32)> = specs
        .iter()
        .map(|s| (s.client_prompt_tokens, s.max_tokens))
        .collect();
    assert_eq!(lens, [(100, 10), (200, 10), (100, 20), (200, 20)]);
    let mut w = replay(
        &text,
        &format!("{{PRESERVE_TIMING: true, OVERLONG: skip, {limits}}}"),
        None,
        &ctx(1),
    );
    assert_eq!(w.stats()["skipped_overlong"], 3);
    assert_eq!(w.stats()["clipped_requests"], 0);
    let specs = drain(&mut w);
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].due_s, 0.0);
}

#[test]
fn a_malformed_line_is_an_error_naming_file_and_line() {
    for bad in [
        "{not json",
        r#"{"timestamp": 5, "output_length": 2}"#,
        r#"{"timestamp": "soon", "input_length": 1, "output_length": 2}"#,
        r#"{"timestamp": 5, "input_length": -1, "output_length": 2}"#,
        r#"{"timestamp": 5, "input_length": 1, "output_length": 2, "hash_ids": [1.5]}"#,
    ] {
        let text = format!(
            "{}\n{}\n{bad}\n",
            every_second().lines().next().unwrap(),
            ""
        );
        let e = parse(&text, "traces/x.jsonl").unwrap_err().to_string();
        assert!(e.starts_with("traces/x.jsonl: line 3: "), "{e}");
    }
}

#[test]
fn an_empty_window_is_an_error() {
    let t = parse(&every_second(), "t.jsonl").unwrap();
    let Err(e) = TraceReplayer::new(&cfg("{START_TIME: 60}"), &t, "t.jsonl", Some(1.0), &ctx(1))
    else {
        panic!("expected an error");
    };
    assert!(e.to_string().contains("no requests between 60 s"), "{e}");
}

#[test]
fn the_same_seed_gives_a_byte_identical_request_stream() {
    let text = trace_text(&[
        (0, 600, 5, &[1, 2]),
        (200, 2000, 7, &[1, 2, 3]),
        (900, 50, 9, &[9]),
    ]);
    let yaml = "{PRESERVE_TIMING: true, SPEED_UP: 3, MAX_DELAY: 0.1}";
    let stream =
        |seed| serde_json::to_string(&drain(&mut replay(&text, yaml, None, &ctx(seed)))).unwrap();
    assert_eq!(stream(11), stream(11));
    // Only the padding after the blocks depends on the seed.
    assert_ne!(stream(11), stream(12));
}

#[test]
fn user_ids_follow_the_trace_lines() {
    let text = trace_text(&[(500, 1, 1, &[]), (0, 1, 1, &[])]);
    let mut w = replay(&text, "{}", Some(1.0), &ctx(1));
    let ids: Vec<Option<u64>> = drain(&mut w).iter().map(|s| s.user_id).collect();
    assert_eq!(ids, [Some(1001), Some(1000)]);
}

/// A tiny deterministic generator, independent of any crate's stream.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The shipped sample trace: mooncake's format (ms offsets, 512-token blocks), 200 requests
/// of conversations that share one of four system prompts and grow turn by turn.
fn sample_trace() -> String {
    let mut rng = SplitMix(0x7361_6d70_6c65);
    let mut next_hash = 0u64;
    let mut fresh = |n: u64| -> Vec<u64> {
        let ids = (next_hash..next_hash + n).collect();
        next_hash += n;
        ids
    };
    let systems: Vec<Vec<u64>> = [2, 3, 1, 4].into_iter().map(&mut fresh).collect();
    let mut reqs = Vec::new();
    let mut start = 0.0f64;
    for session in 0..110u64 {
        let mut ids = systems[rng.below(4) as usize].clone();
        ids.extend(fresh(1 + rng.below(3)));
        let mut at = start;
        for turn in 0..1 + rng.below(4) {
            if turn > 0 {
                ids.extend(fresh(1 + rng.below(2)));
                at += 8.0 + 22.0 * rng.unit();
            }
            let input = ids.len() as u64 * 512 - rng.below(384);
            let output = 16 + rng.below(113);
            let ms = (at * 1000.0).round() as u64;
            reqs.push((ms, session, turn, input, output, ids.clone()));
        }
        start += -2.5 * (1.0 - rng.unit()).ln();
    }
    reqs.sort_by_key(|r| (r.0, r.1, r.2));
    reqs.truncate(200);
    reqs.iter()
            .map(|(ms, _, _, input, output, ids)| {
                let ids: Vec<String> = ids.iter().map(|h| h.to_string()).collect();
                format!(
                    "{{\"timestamp\": {ms}, \"input_length\": {input}, \"output_length\": {output}, \"hash_ids\": [{}]}}\n",
                    ids.join(", ")
                )
            })
            .collect()
}

#[test]
fn the_sample_trace_is_its_generators_output() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(TRACE_DIR)
        .join("traces/sample_trace.jsonl");
    let want = sample_trace();
    if std::env::var_os("LMBENCH_WRITE_SAMPLE_TRACE").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap();
    assert!(
        have == want,
        "{} differs from its generator; LMBENCH_WRITE_SAMPLE_TRACE=1 rewrites it",
        path.display()
    );
    let t = load(&path).unwrap();
    assert_eq!(t.entries.len(), 200);
    assert_eq!(t.unit, TimeUnit::MsOffsets);
    assert!((120.0..300.0).contains(&t.span_s), "span {}", t.span_s);
}
