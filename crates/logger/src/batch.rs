//! Output gathered while the writer is busy, handed to it in one piece.
//!
//! Two batches take turns: one is being written on a blocking thread while the other fills.
//! When the filling one reaches its limit the logger stops reading the stream, so memory stays at
//! two batches however fast the container writes.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use crate::OutputStream;

/// A run of bytes of one stream, stamped within one whole second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The stream.
    pub stream: OutputStream,
    /// The newest timestamp among the merged chunks.
    pub timestamp: Option<SystemTime>,
    /// Length in bytes.
    pub len: usize,
    /// Bytes of this stream, stamped within the same second, that a replay delivered again and
    /// that are already in the files: not written, only accounted for in the position.
    pub replayed: u64,
}

/// Bytes and the segments that describe them.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub data: BytesMut,
    pub segments: Vec<Segment>,
}

fn second(t: Option<SystemTime>) -> Option<u64> {
    t.map(|t| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

impl Batch {
    pub fn with_capacity(bytes: usize) -> Self {
        Batch {
            data: BytesMut::with_capacity(bytes),
            segments: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether there is nothing to write and nothing to account for.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.segments.is_empty()
    }

    /// Appends bytes. Consecutive bytes of one stream stamped in the same second share a segment:
    /// the position only counts bytes per second, so nothing finer is needed.
    pub fn push(&mut self, stream: OutputStream, timestamp: Option<SystemTime>, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.data.extend_from_slice(bytes);
        if let Some(last) = self.segments.last_mut() {
            if last.stream == stream && second(last.timestamp) == second(timestamp) {
                last.len += bytes.len();
                last.timestamp = last.timestamp.max(timestamp);
                return;
            }
        }
        self.segments.push(Segment {
            stream,
            timestamp,
            len: bytes.len(),
            replayed: 0,
        });
    }

    /// Notes `n` bytes of `stream` stamped `timestamp` that a replay delivered again and that are
    /// already in the files, so the writer's position accounts for their timestamp.
    pub fn push_replayed(&mut self, stream: OutputStream, timestamp: Option<SystemTime>, n: u64) {
        if n == 0 || timestamp.is_none() {
            return;
        }
        if let Some(last) = self.segments.last_mut() {
            if last.stream == stream && second(last.timestamp) == second(timestamp) {
                last.replayed += n;
                last.timestamp = last.timestamp.max(timestamp);
                return;
            }
        }
        self.segments.push(Segment {
            stream,
            timestamp,
            len: 0,
            replayed: n,
        });
    }

    /// Empties the batch, keeping its memory for reuse.
    pub fn clear(&mut self) {
        self.data.clear();
        self.segments.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn merges_runs_of_one_stream_within_a_second() {
        let t = |s, n| Some(UNIX_EPOCH + Duration::new(s, n));
        let mut b = Batch::with_capacity(16);
        b.push(OutputStream::Stdout, t(5, 1), b"ab");
        b.push(OutputStream::Stdout, t(5, 9), b"c");
        b.push(OutputStream::Stderr, t(5, 9), b"d");
        b.push(OutputStream::Stderr, t(6, 0), b"e");
        b.push(OutputStream::Stderr, None, b"f");
        b.push(OutputStream::Stderr, None, b"");
        assert_eq!(&b.data[..], b"abcdef");
        assert_eq!(
            b.segments,
            vec![
                Segment {
                    stream: OutputStream::Stdout,
                    timestamp: t(5, 9),
                    len: 3,
                    replayed: 0
                },
                Segment {
                    stream: OutputStream::Stderr,
                    timestamp: t(5, 9),
                    len: 1,
                    replayed: 0
                },
                Segment {
                    stream: OutputStream::Stderr,
                    timestamp: t(6, 0),
                    len: 1,
                    replayed: 0
                },
                Segment {
                    stream: OutputStream::Stderr,
                    timestamp: None,
                    len: 1,
                    replayed: 0
                },
            ]
        );
        b.clear();
        assert!(b.is_empty() && b.segments.is_empty());
    }

    #[test]
    fn replayed_bytes_are_accounted_without_data() {
        let t = |s, n| Some(UNIX_EPOCH + Duration::new(s, n));
        let mut b = Batch::with_capacity(16);
        b.push_replayed(OutputStream::Stdout, None, 5);
        assert!(b.is_empty(), "untimed replayed bytes need no accounting");
        b.push_replayed(OutputStream::Stdout, t(5, 1), 4);
        assert!(!b.is_empty() && b.data.is_empty());
        b.push(OutputStream::Stdout, t(5, 2), b"xy");
        assert_eq!(
            b.segments,
            vec![Segment {
                stream: OutputStream::Stdout,
                timestamp: t(5, 2),
                len: 2,
                replayed: 4
            }]
        );
    }
}
