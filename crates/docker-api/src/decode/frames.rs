//! Container output: Docker's multiplexed frames (non-TTY) or raw bytes (TTY).
//!
//! Without a TTY, the daemon wraps each write of the container in a frame: an 8-byte header
//! `[stream, 0, 0, 0, len (u32 big-endian)]` then `len` bytes. With a TTY there is one merged
//! stream and no framing. The body does not say which it is; the caller decides from the
//! container's `Config.Tty`.

use std::time::SystemTime;

use bytes::{Buf, Bytes, BytesMut};

use crate::time::split_log_timestamp;

const HEADER_LEN: usize = 8;

/// Which stream a frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// Standard input (echoed back by attach when the TTY is off).
    Stdin,
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// The single merged stream of a container with a TTY.
    Console,
}

/// One piece of container output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFrame {
    /// The stream it came from.
    pub stream: LogStream,
    /// When Docker logged it, parsed from the RFC 3339 prefix when `timestamps` was requested
    /// (the prefix is then removed from `data`).
    pub timestamp: Option<SystemTime>,
    /// The bytes.
    pub data: Bytes,
}

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameMode {
    /// 8-byte headers (container without a TTY).
    Multiplexed,
    /// No framing (container with a TTY).
    Raw,
}

/// Why a body could not be decoded into frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A header named a stream other than 0-3: the body is not multiplexed, or is corrupt.
    #[error("frame header {header:02x?} names unknown stream {byte} (is the container's TTY setting right?)")]
    UnknownStream {
        /// The stream byte.
        byte: u8,
        /// The whole header.
        header: [u8; HEADER_LEN],
    },
    /// The daemon sent an error frame (stream 3) in place of output.
    #[error("{0}")]
    Daemon(String),
    /// The body ended inside a frame.
    #[error("the stream ended inside a frame ({held} bytes held, {needed} needed)")]
    Truncated {
        /// Bytes received of the unfinished frame (header included).
        held: usize,
        /// Bytes that frame needed (header included), or 8 when the header itself was cut.
        needed: usize,
    },
}

/// Decodes container output from chunks of any size.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    mode: FrameMode,
    timestamps: bool,
}

impl FrameDecoder {
    /// A decoder for bodies framed as `mode`; `timestamps` says whether each entry starts with
    /// an RFC 3339 time and a space (the `timestamps=true` of the logs call).
    pub fn new(mode: FrameMode, timestamps: bool) -> FrameDecoder {
        FrameDecoder {
            buf: BytesMut::new(),
            mode,
            timestamps,
        }
    }

    /// Appends a chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole frame, or `Ok(None)` until more bytes arrive.
    ///
    /// In raw mode without timestamps every pushed byte is returned at once; with timestamps,
    /// whole lines are (each line carries its own time).
    pub fn next_frame(&mut self) -> Result<Option<LogFrame>, FrameError> {
        match self.mode {
            FrameMode::Multiplexed => self.next_multiplexed(),
            FrameMode::Raw if self.timestamps => {
                let Some(pos) = self.buf.iter().position(|&c| c == b'\n') else {
                    return Ok(None);
                };
                let line = self.buf.split_to(pos + 1).freeze();
                Ok(Some(self.frame(LogStream::Console, line)))
            }
            FrameMode::Raw if self.buf.is_empty() => Ok(None),
            FrameMode::Raw => {
                let data = self.buf.split().freeze();
                Ok(Some(self.frame(LogStream::Console, data)))
            }
        }
    }

    /// At the end of the body: the remaining raw bytes, or an error if a frame was cut off.
    pub fn finish(&mut self) -> Result<Option<LogFrame>, FrameError> {
        if let Some(frame) = self.next_frame()? {
            return Ok(Some(frame));
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        match self.mode {
            FrameMode::Raw => {
                let data = self.buf.split().freeze();
                Ok(Some(self.frame(LogStream::Console, data)))
            }
            FrameMode::Multiplexed => {
                let held = self.buf.len();
                let needed = if held < HEADER_LEN {
                    HEADER_LEN
                } else {
                    HEADER_LEN + frame_len(&self.buf)
                };
                self.buf.clear();
                Err(FrameError::Truncated { held, needed })
            }
        }
    }

    fn next_multiplexed(&mut self) -> Result<Option<LogFrame>, FrameError> {
        if self.buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buf[..HEADER_LEN]);
        let stream = match header[0] {
            0 => Some(LogStream::Stdin),
            1 => Some(LogStream::Stdout),
            2 => Some(LogStream::Stderr),
            3 => None,
            byte => return Err(FrameError::UnknownStream { byte, header }),
        };
        let len = frame_len(&self.buf);
        if self.buf.len() < HEADER_LEN + len {
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let data = self.buf.split_to(len).freeze();
        match stream {
            Some(stream) => Ok(Some(self.frame(stream, data))),
            None => Err(FrameError::Daemon(
                String::from_utf8_lossy(&data).trim_end().to_owned(),
            )),
        }
    }

    fn frame(&self, stream: LogStream, data: Bytes) -> LogFrame {
        if self.timestamps {
            if let Some((time, skip)) = split_log_timestamp(&data) {
                return LogFrame {
                    stream,
                    timestamp: Some(time),
                    data: data.slice(skip..),
                };
            }
        }
        LogFrame {
            stream,
            timestamp: None,
            data,
        }
    }
}

fn frame_len(buf: &[u8]) -> usize {
    u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn encode(stream: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(data);
        out
    }

    fn decode_all(
        mode: FrameMode,
        timestamps: bool,
        chunks: &[&[u8]],
    ) -> Result<Vec<LogFrame>, FrameError> {
        let mut d = FrameDecoder::new(mode, timestamps);
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(f) = d.next_frame()? {
                out.push(f);
            }
        }
        while let Some(f) = d.finish()? {
            out.push(f);
        }
        Ok(out)
    }

    fn chunk_at<'a>(bytes: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&bytes[last..p]);
            last = p;
        }
        chunks.push(&bytes[last..]);
        chunks
    }

    #[test]
    fn decodes_stdout_and_stderr_frames() {
        let mut body = encode(1, b"out\n");
        body.extend(encode(2, b"err\n"));
        let frames = decode_all(FrameMode::Multiplexed, false, &[&body]).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (frames[0].stream, &frames[0].data[..]),
            (LogStream::Stdout, &b"out\n"[..])
        );
        assert_eq!(
            (frames[1].stream, &frames[1].data[..]),
            (LogStream::Stderr, &b"err\n"[..])
        );
    }

    #[test]
    fn strips_and_parses_timestamps() {
        let body = encode(1, b"2024-05-01T12:00:00.000000007Z hello\n");
        let frames = decode_all(FrameMode::Multiplexed, true, &[&body]).unwrap();
        assert_eq!(&frames[0].data[..], b"hello\n");
        assert_eq!(
            frames[0].timestamp,
            Some(UNIX_EPOCH + Duration::new(1_714_564_800, 7))
        );
        // Without timestamps requested, the same bytes are data.
        let frames = decode_all(FrameMode::Multiplexed, false, &[&body]).unwrap();
        assert!(frames[0].timestamp.is_none() && frames[0].data.starts_with(b"2024"));
    }

    #[test]
    fn raw_mode_passes_bytes_and_splits_timestamped_lines() {
        let frames = decode_all(FrameMode::Raw, false, &[b"\x01abc", b"def"]).unwrap();
        let data: Vec<u8> = frames.iter().flat_map(|f| f.data.to_vec()).collect();
        assert_eq!(data, b"\x01abcdef");
        assert!(frames.iter().all(|f| f.stream == LogStream::Console));

        let body = b"2024-05-01T12:00:00Z one\r\n2024-05-01T12:00:01Z two";
        let frames = decode_all(FrameMode::Raw, true, &[&body[..10], &body[10..]]).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0].data[..], b"one\r\n");
        assert_eq!(&frames[1].data[..], b"two");
        assert_eq!(
            frames[1].timestamp,
            Some(UNIX_EPOCH + Duration::from_secs(1_714_564_801))
        );
    }

    #[test]
    fn error_frames_unknown_streams_and_truncation() {
        let err = decode_all(
            FrameMode::Multiplexed,
            false,
            &[&encode(3, b"log driver failed\n")],
        )
        .unwrap_err();
        assert_eq!(err, FrameError::Daemon("log driver failed".into()));
        let err =
            decode_all(FrameMode::Multiplexed, false, &[b"hello world, not framed"]).unwrap_err();
        assert!(matches!(err, FrameError::UnknownStream { byte: b'h', .. }));
        assert!(err.to_string().contains("TTY"));
        let body = encode(1, b"0123456789");
        let err = decode_all(FrameMode::Multiplexed, false, &[&body[..12]]).unwrap_err();
        assert_eq!(
            err,
            FrameError::Truncated {
                held: 12,
                needed: 18
            }
        );
        let err = decode_all(FrameMode::Multiplexed, false, &[&body[..3]]).unwrap_err();
        assert_eq!(err, FrameError::Truncated { held: 3, needed: 8 });
    }

    #[test]
    fn large_frames_cross_many_chunks() {
        let payload = vec![b'x'; 100_000];
        let body = encode(2, &payload);
        let chunks: Vec<&[u8]> = body.chunks(4096).collect();
        let frames = decode_all(FrameMode::Multiplexed, false, &chunks).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].data.len(), 100_000);
    }

    proptest! {
        #[test]
        fn multiplexed_frames_survive_any_chunking(
            frames in proptest::collection::vec((0u8..3, proptest::collection::vec(any::<u8>(), 0..200)), 0..12),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            let body: Vec<u8> = frames.iter().flat_map(|(s, d)| encode(*s, d)).collect();
            let decoded = decode_all(FrameMode::Multiplexed, false, &chunk_at(&body, &cuts)).unwrap();
            let got: Vec<(u8, Vec<u8>)> = decoded.iter().map(|f| (match f.stream {
                LogStream::Stdin => 0, LogStream::Stdout => 1, LogStream::Stderr => 2, LogStream::Console => 9,
            }, f.data.to_vec())).collect();
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn timestamped_frames_survive_any_chunking(
            lines in proptest::collection::vec(("[a-z]{0,30}", 0u64..4_000_000_000, 0u32..1_000_000_000), 1..10),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
            tty in any::<bool>(),
        ) {
            let mut body = Vec::new();
            for (text, secs, nanos) in &lines {
                let t = UNIX_EPOCH + Duration::new(*secs, *nanos);
                let entry = format!("{} {text}\n", crate::time::format_rfc3339(t));
                if tty { body.extend_from_slice(entry.as_bytes()) } else { body.extend(encode(1, entry.as_bytes())) }
            }
            let mode = if tty { FrameMode::Raw } else { FrameMode::Multiplexed };
            let decoded = decode_all(mode, true, &chunk_at(&body, &cuts)).unwrap();
            prop_assert_eq!(decoded.len(), lines.len());
            for (frame, (text, secs, nanos)) in decoded.iter().zip(&lines) {
                prop_assert_eq!(frame.timestamp, Some(UNIX_EPOCH + Duration::new(*secs, *nanos)));
                let expected = format!("{text}\n");
                prop_assert_eq!(&frame.data[..], expected.as_bytes());
            }
        }

        #[test]
        fn raw_bytes_survive_any_chunking(
            body in proptest::collection::vec(any::<u8>(), 0..500),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            let decoded = decode_all(FrameMode::Raw, false, &chunk_at(&body, &cuts)).unwrap();
            let joined: Vec<u8> = decoded.iter().flat_map(|f| f.data.to_vec()).collect();
            prop_assert_eq!(joined, body);
        }
    }
}
