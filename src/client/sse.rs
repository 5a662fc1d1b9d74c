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
mod tests;
