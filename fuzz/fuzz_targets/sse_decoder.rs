//! Fuzz the incremental SSE decoder: any bytes, cut at any points, must decode exactly as when
//! fed in one piece, and never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lmbench::client::SseDecoder;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    // The first byte picks the cut points; the rest is the stream.
    let step = (data[0] as usize % 7) + 1;
    let stream = &data[1..];
    let mut whole = SseDecoder::default();
    let mut expected = whole.push(stream);
    let expected_tail = whole.finish();
    let mut pieces = SseDecoder::default();
    let mut got = Vec::new();
    let mut i = 0;
    let mut k = 0;
    while i < stream.len() {
        let n = ((k * 31 + step) % 13 + 1).min(stream.len() - i);
        got.extend(pieces.push(&stream[i..i + n]));
        i += n;
        k += 1;
    }
    let got_tail = pieces.finish();
    assert_eq!(got, expected);
    assert_eq!(format!("{got_tail:?}"), format!("{expected_tail:?}"));
    expected.clear();
});
