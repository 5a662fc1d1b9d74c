//! Incremental decoder for `text/event-stream` bodies (server-sent events), as streamed by
//! OpenAI-compatible servers.
//!
//! Bytes go in as they arrive from the network, in pieces cut anywhere; complete events come
//! out. The rules follow the WHATWG event-stream format: lines end in `\n`, `\r\n` or `\r`;
//! `data:` lines of one event are joined with `\n`; lines starting with `:` are comments;
//! `event:` names the event; `id:`, `retry:` and unknown fields are accepted and ignored; one
//! space after the colon is dropped; a blank line dispatches the event. The OpenAI end marker
//! `data: [DONE]` comes out as [`SseEvent::Done`].

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// An event carrying data.
    Message {
        /// The `event:` field, if the event had a non-empty one.
        event: Option<String>,
        /// The `data:` lines joined with `\n`.
        data: String,
    },
    /// The OpenAI end-of-stream marker (`data: [DONE]`).
    Done,
}

/// A dispatched event borrowed from the decoder (see [`SseDecoder::push_with`]): no copy of
/// its data is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseEventRef<'a> {
    /// An event carrying data.
    Message {
        /// The `event:` field, if the event had a non-empty one.
        event: Option<&'a str>,
        /// The `data:` lines joined with `\n`.
        data: &'a str,
    },
    /// The OpenAI end-of-stream marker (`data: [DONE]`).
    Done,
}

impl SseEventRef<'_> {
    /// An owned copy.
    pub fn to_owned(self) -> SseEvent {
        match self {
            SseEventRef::Message { event, data } => SseEvent::Message {
                event: event.map(str::to_string),
                data: data.to_string(),
            },
            SseEventRef::Done => SseEvent::Done,
        }
    }
}

impl SseEvent {
    /// A borrowed view.
    pub fn as_ref(&self) -> SseEventRef<'_> {
        match self {
            SseEvent::Message { event, data } => SseEventRef::Message {
                event: event.as_deref(),
                data,
            },
            SseEvent::Done => SseEventRef::Done,
        }
    }
}

/// What was left in the decoder when the stream ended (see [`SseDecoder::finish`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseTail {
    /// An event whose data had arrived but that no blank line closed; dispatched anyway, so a
    /// server that omits the final blank line still delivers its last event.
    pub event: Option<SseEvent>,
    /// True if the stream stopped inside an event: an unterminated line, or fields without the
    /// closing blank line.
    pub truncated: bool,
}

/// Incremental server-sent-events decoder; feed it with [`push`](Self::push) and end it with
/// [`finish`](Self::finish). Invalid UTF-8 is replaced (U+FFFD), never an error.
#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the line being received (no terminator yet).
    line: Vec<u8>,
    /// The previous piece ended in `\r`: a `\n` at the start of the next piece belongs to it.
    after_cr: bool,
    /// Whether the first line has been seen (a UTF-8 BOM may only open the stream).
    started: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseDecoder {
    /// Feeds the next bytes of the stream; returns the events they completed, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        self.push_into(bytes, &mut out);
        out
    }

    /// Like [`push`](Self::push), appending the completed events to `out`.
    pub fn push_into(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) {
        let _ = self.push_with(bytes, |e| {
            out.push(e.to_owned());
            Ok::<(), std::convert::Infallible>(())
        });
    }

    /// Feeds the next bytes of the stream and hands each event they complete to `on_event`,
    /// in order, borrowed from the decoder (no copy per event). If `on_event` fails, decoding
    /// stops there and the error is returned; the rest of `bytes` is dropped, so the decoder
    /// should not be fed again.
    pub fn push_with<E>(
        &mut self,
        bytes: &[u8],
        mut on_event: impl FnMut(SseEventRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = bytes;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = line_end(rest) {
            let mut consumed = pos + 1;
            if rest[pos] == b'\r' {
                match rest.get(pos + 1) {
                    Some(b'\n') => consumed += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.line.is_empty() {
                self.process_line(&rest[..pos], &mut on_event)?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..pos]);
                let r = self.process_line(&line, &mut on_event);
                line.clear();
                self.line = line;
                r?;
            }
            rest = &rest[consumed..];
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// Ends the stream: an unterminated last line is taken as a line, and an event with data
    /// but no closing blank line is dispatched. The decoder is reset for a new stream.
    pub fn finish(&mut self) -> SseTail {
        let mut out = Vec::new();
        let mut truncated = self.has_data || self.event.is_some();
        let mut collect = |e: SseEventRef<'_>| {
            out.push(e.to_owned());
            Ok::<(), std::convert::Infallible>(())
        };
        if !self.line.is_empty() {
            truncated = true;
            let line = std::mem::take(&mut self.line);
            let _ = self.process_line(&line, &mut collect);
        }
        let _ = self.dispatch(&mut collect);
        *self = SseDecoder::default();
        SseTail {
            event: out.pop(),
            truncated,
        }
    }

    fn process_line<E>(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(SseEventRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut line = line;
        if !self.started {
            self.started = true;
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            return self.dispatch(on_event);
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                push_lossy(&mut self.data, value);
                self.has_data = true;
            }
            b"event" => {
                self.event = if value.is_empty() {
                    None
                } else {
                    Some(String::from_utf8_lossy(value).into_owned())
                };
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch<E>(
        &mut self,
        on_event: &mut impl FnMut(SseEventRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let event = self.event.take();
        if !self.has_data {
            return Ok(());
        }
        self.has_data = false;
        let r = if self.data.trim() == "[DONE]" {
            on_event(SseEventRef::Done)
        } else {
            on_event(SseEventRef::Message {
                event: event.as_deref(),
                data: &self.data,
            })
        };
        // Keeps the allocation for the next event.
        self.data.clear();
        r
    }
}

/// Position of the first line terminator (`\n` or `\r`) in `bytes`. Eight bytes at a time:
/// a byte-by-byte search was the largest single cost of reading a stream.
fn line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Non-zero exactly when some byte of `x` is zero (the classic test: no false positives
    // for "is there one", though not which one, so the byte is then found one by one).
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut start = 0;
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
        if has_zero(word ^ (ONES * u64::from(b'\n'))) | has_zero(word ^ (ONES * u64::from(b'\r')))
            != 0
        {
            break;
        }
        start += 8;
    }
    bytes[start..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map(|i| start + i)
}

/// Appends `bytes` as text, invalid UTF-8 replaced by U+FFFD (valid text, the usual case, is
/// checked by the standard library's fast validator and copied as is).
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
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
        let (ev, _) =
            decode_all(b"event: delta\nid: 7\nretry: 100\nfoo: bar\nnocolon\ndata: x\n\n");
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
}
