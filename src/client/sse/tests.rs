//! Unit tests of the SSE decoder, including a property test that cutting the byte stream anywhere
//! changes nothing.

use super::*;
use proptest::prelude::*;

fn msg(data: &str) -> SseEvent {
    SseEvent::Message {
        event: None,
        data: data.to_string(),
    }
}

fn decode_all(bytes: &[u8]) -> (Vec<SseEvent>, SseTail) {
    let mut d = SseDecoder::default();
    let ev = d.push(bytes);
    (ev, d.finish())
}

#[test]
fn lf_lines() {
    let (ev, tail) = decode_all(b"data: a\n\ndata: b\n\n");
    assert_eq!(ev, vec![msg("a"), msg("b")]);
    assert_eq!(tail, SseTail::default());
}

#[test]
fn crlf_lines() {
    let (ev, tail) = decode_all(b"data: a\r\n\r\ndata: b\r\n\r\n");
    assert_eq!(ev, vec![msg("a"), msg("b")]);
    assert!(!tail.truncated);
}

#[test]
fn cr_lines() {
    let (ev, _) = decode_all(b"data: a\r\rdata: b\r\r");
    assert_eq!(ev, vec![msg("a"), msg("b")]);
}

#[test]
fn crlf_split_between_pushes() {
    let mut d = SseDecoder::default();
    assert!(d.push(b"data: a\r").is_empty());
    // The `\n` completes the CRLF begun above; it is not a blank line.
    assert!(d.push(b"\n").is_empty());
    assert_eq!(d.push(b"\r"), vec![msg("a")]);
    assert!(d.push(b"\n").is_empty());
    assert!(d.push(b"data: b\n\n").len() == 1);
}

#[test]
fn multi_line_data_joined() {
    let (ev, _) = decode_all(b"data: one\ndata: two\ndata:\ndata: three\n\n");
    assert_eq!(ev, vec![msg("one\ntwo\n\nthree")]);
}

#[test]
fn comments_skipped() {
    let (ev, _) = decode_all(b": keep-alive\n\n:x\ndata: a\n: mid\n\n");
    assert_eq!(ev, vec![msg("a")]);
}

#[test]
fn event_id_retry_and_unknown_fields_tolerated() {
    let (ev, _) = decode_all(b"event: delta\nid: 7\nretry: 100\nfoo: bar\nnocolon\ndata: x\n\n");
    assert_eq!(
        ev,
        vec![SseEvent::Message {
            event: Some("delta".into()),
            data: "x".into()
        }]
    );
    // The event name applies to one event only.
    let (ev, _) = decode_all(b"event: a\ndata: 1\n\ndata: 2\n\n");
    assert_eq!(ev[1], msg("2"));
}

#[test]
fn only_one_space_after_colon_dropped() {
    let (ev, _) = decode_all(b"data:a\n\ndata:  b\n\ndata: \n\n");
    assert_eq!(ev, vec![msg("a"), msg(" b"), msg("")]);
}

#[test]
fn blank_line_without_data_dispatches_nothing() {
    let (ev, _) = decode_all(b"\n\n\r\n: c\n\nevent: x\n\nid: 1\n\n");
    assert!(ev.is_empty());
}

#[test]
fn done_is_distinct() {
    let (ev, _) = decode_all(b"data: {\"a\":1}\n\ndata: [DONE]\n\n");
    assert_eq!(ev, vec![msg("{\"a\":1}"), SseEvent::Done]);
    let (ev, _) = decode_all(b"data:[DONE]\r\n\r\n");
    assert_eq!(ev, vec![SseEvent::Done]);
}

#[test]
fn bom_stripped_at_start_only() {
    let (ev, _) = decode_all(b"\xEF\xBB\xBFdata: a\n\n");
    assert_eq!(ev, vec![msg("a")]);
    let mut d = SseDecoder::default();
    assert!(d.push(b"\xEF\xBB").is_empty());
    assert_eq!(d.push(b"\xBFdata: a\n\n"), vec![msg("a")]);
}

#[test]
fn utf8_split_across_pushes() {
    let bytes = "data: héllo €😀\n\n".as_bytes();
    let mut d = SseDecoder::default();
    let mut ev = Vec::new();
    for b in bytes {
        d.push_into(std::slice::from_ref(b), &mut ev);
    }
    assert_eq!(ev, vec![msg("héllo €😀")]);
}

#[test]
fn invalid_utf8_replaced() {
    let (ev, _) = decode_all(b"data: a\xFFb\n\n");
    assert_eq!(ev, vec![msg("a\u{FFFD}b")]);
}

#[test]
fn finish_reports_unterminated_event() {
    let (ev, tail) = decode_all(b"data: a\n\ndata: [DONE]");
    assert_eq!(ev, vec![msg("a")]);
    assert_eq!(
        tail,
        SseTail {
            event: Some(SseEvent::Done),
            truncated: true
        }
    );
    let (_, tail) = decode_all(b"data: a\n");
    assert_eq!(tail.event, Some(msg("a")));
    assert!(tail.truncated);
    let (_, tail) = decode_all(b"data: a\n\n: partial comm");
    assert_eq!(tail.event, None);
    assert!(tail.truncated);
    let (_, tail) = decode_all(b"data: a\r\r");
    assert_eq!(tail, SseTail::default());
}

#[test]
fn finish_resets() {
    let mut d = SseDecoder::default();
    d.push(b"data: a");
    d.finish();
    assert_eq!(d.push(b"data: b\n\n"), vec![msg("b")]);
}

#[test]
fn line_end_finds_the_first_terminator_anywhere() {
    for len in 0..40 {
        for pos in 0..=len {
            for t in [b'\n', b'\r'] {
                let mut v: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                // Bytes that differ from a terminator in one bit must not match.
                v.iter_mut().step_by(3).for_each(|b| *b = 0x0b);
                let want = (pos < len).then(|| {
                    v[pos] = t;
                    pos
                });
                if pos + 2 < len {
                    v[pos + 2] = b'\n';
                }
                assert_eq!(line_end(&v), want, "len {len} pos {pos}");
            }
        }
    }
    assert_eq!(line_end(&[0x8a; 20]), None);
}

#[test]
fn push_with_borrows_the_same_events_and_stops_on_error() {
    let bytes = b"event: e\ndata: a\ndata: b\n\ndata: c\n\ndata: [DONE]\n\ndata: d\n\n";
    let mut seen = Vec::new();
    let mut d = SseDecoder::default();
    d.push_with(bytes, |e| {
        seen.push(e.to_owned());
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(seen, SseDecoder::default().push(bytes));
    assert_eq!(seen[0].as_ref(), seen[0].clone().as_ref());

    let mut n = 0;
    let mut d = SseDecoder::default();
    let r = d.push_with(bytes, |e| {
        n += 1;
        if e == SseEventRef::Done {
            Err("stop")
        } else {
            Ok(())
        }
    });
    assert_eq!((r, n), (Err("stop"), 3));
}

#[derive(Debug, Clone)]
enum Field {
    Data(String),
    Comment(String),
    Event(String),
    Id(String),
    Retry(u32),
}

#[derive(Debug, Clone)]
struct GenEvent {
    fields: Vec<(Field, bool)>,
    eol: &'static str,
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 :{}\"\\[\\]é€😀ß]{0,10}"
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        4 => text().prop_map(Field::Data),
        1 => Just(Field::Data("[DONE]".to_string())),
        1 => text().prop_map(Field::Comment),
        1 => text().prop_map(Field::Event),
        1 => text().prop_map(Field::Id),
        1 => any::<u32>().prop_map(Field::Retry),
    ]
}

fn gen_event() -> impl Strategy<Value = GenEvent> {
    (
        prop::collection::vec((field(), any::<bool>()), 0..5),
        prop::sample::select(vec!["\n", "\r\n", "\r"]),
    )
        .prop_map(|(fields, eol)| GenEvent { fields, eol })
}

fn serialize(events: &[GenEvent]) -> Vec<u8> {
    let mut s = String::new();
    for e in events {
        for (f, space) in &e.fields {
            let (name, value) = match f {
                Field::Comment(c) => {
                    s.push(':');
                    s.push_str(c);
                    s.push_str(e.eol);
                    continue;
                }
                Field::Data(v) => ("data", v.clone()),
                Field::Event(v) => ("event", v.clone()),
                Field::Id(v) => ("id", v.clone()),
                Field::Retry(n) => ("retry", n.to_string()),
            };
            s.push_str(name);
            s.push(':');
            if *space || value.starts_with(' ') {
                s.push(' ');
            }
            s.push_str(&value);
            s.push_str(e.eol);
        }
        s.push_str(e.eol);
    }
    s.into_bytes()
}

fn model(events: &[GenEvent]) -> Vec<SseEvent> {
    let mut out = Vec::new();
    for e in events {
        let mut data: Option<String> = None;
        let mut name = None;
        for (f, _) in &e.fields {
            match f {
                Field::Data(v) => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(v);
                    }
                    None => data = Some(v.clone()),
                },
                Field::Event(v) => name = (!v.is_empty()).then(|| v.clone()),
                _ => {}
            }
        }
        match data {
            Some(d) if d.trim() == "[DONE]" => out.push(SseEvent::Done),
            Some(d) => out.push(SseEvent::Message {
                event: name,
                data: d,
            }),
            None => {}
        }
    }
    out
}

proptest! {
    #[test]
    fn cutting_anywhere_gives_same_events(
        events in prop::collection::vec(gen_event(), 0..8),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let bytes = serialize(&events);
        let expected = model(&events);

        let (whole, tail) = decode_all(&bytes);
        prop_assert_eq!(&whole, &expected);
        prop_assert_eq!(tail, SseTail::default());

        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut d = SseDecoder::default();
        let mut pieces = Vec::new();
        let mut start = 0;
        for p in points.into_iter().chain(std::iter::once(bytes.len())) {
            d.push_into(&bytes[start..p], &mut pieces);
            start = p;
        }
        prop_assert_eq!(&pieces, &expected);
        prop_assert_eq!(d.finish(), SseTail::default());

        let mut d = SseDecoder::default();
        let mut bytewise = Vec::new();
        for b in &bytes {
            d.push_into(std::slice::from_ref(b), &mut bytewise);
        }
        prop_assert_eq!(&bytewise, &expected);
    }
}
