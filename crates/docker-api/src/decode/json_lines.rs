//! Newline-delimited JSON (events, pull/push progress, streamed stats).

use bytes::{Buf, Bytes, BytesMut};

/// Splits a byte stream into JSON lines. Docker ends lines with `\n` or `\r\n`; blank lines are
/// skipped. The decoder does not parse JSON: it yields each line's bytes, trimmed.
#[derive(Debug, Default)]
pub struct JsonLinesDecoder {
    buf: BytesMut,
    /// How far `buf` is known to hold no newline, so long lines are not rescanned per chunk.
    scanned: usize,
}

impl JsonLinesDecoder {
    /// An empty decoder.
    pub fn new() -> JsonLinesDecoder {
        JsonLinesDecoder::default()
    }

    /// Appends a chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete, non-blank line, or `None` until more bytes arrive.
    pub fn next_line(&mut self) -> Option<Bytes> {
        loop {
            let newline = self.buf[self.scanned..].iter().position(|&c| c == b'\n');
            let Some(pos) = newline else {
                self.scanned = self.buf.len();
                return None;
            };
            let line = self.buf.split_to(self.scanned + pos + 1).freeze();
            self.scanned = 0;
            if let Some(line) = trimmed(line) {
                return Some(line);
            }
        }
    }

    /// At the end of the body: the last line if it lacked a newline.
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = self.buf.split().freeze();
        self.scanned = 0;
        trimmed(rest)
    }

    /// Bytes held that do not yet form a line.
    pub fn buffered(&self) -> usize {
        self.buf.remaining()
    }
}

fn trimmed(line: Bytes) -> Option<Bytes> {
    let start = line.iter().position(|c| !c.is_ascii_whitespace())?;
    let end = line.iter().rposition(|c| !c.is_ascii_whitespace())? + 1;
    Some(line.slice(start..end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(chunks: &[&[u8]]) -> Vec<Bytes> {
        let mut d = JsonLinesDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(line) = d.next_line() {
                out.push(line);
            }
        }
        out.extend(d.finish());
        out
    }

    #[test]
    fn handles_crlf_blank_lines_and_a_missing_final_newline() {
        let lines = run(&[b"{\"a\":1}\r\n\r\n", b"  \n{\"b\":", b"2}\n{\"c\":3}"]);
        assert_eq!(
            lines,
            vec![
                Bytes::from_static(b"{\"a\":1}"),
                Bytes::from_static(b"{\"b\":2}"),
                Bytes::from_static(b"{\"c\":3}")
            ]
        );
    }

    #[test]
    fn holds_partial_lines() {
        let mut d = JsonLinesDecoder::new();
        d.push(b"{\"status\":\"Down");
        assert!(d.next_line().is_none());
        assert_eq!(d.buffered(), 15);
        d.push(b"loading\"}\r\n");
        assert_eq!(
            d.next_line().unwrap(),
            Bytes::from_static(b"{\"status\":\"Downloading\"}")
        );
        assert!(d.finish().is_none());
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_lines(
            values in proptest::collection::vec(("[a-z ]{0,20}", any::<i64>()), 0..20),
            crlf in any::<bool>(),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            let mut expected = Vec::new();
            for (s, n) in &values {
                let line = serde_json::json!({"s": s, "n": n}).to_string();
                text.push_str(&line);
                text.push_str(eol);
                expected.push(Bytes::from(line));
            }
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points {
                chunks.push(&bytes[last..p]);
                last = p;
            }
            chunks.push(&bytes[last..]);
            prop_assert_eq!(run(&chunks), expected);
        }
    }
}
