//! Mesos's RecordIO framing (`application/recordio`): each record is its length in bytes as
//! ASCII decimal, a newline, then the record's bytes. Streaming requests and answers of the v1
//! API are sequences of such records, each a message in the `Message-Content-Type` /
//! `Message-Accept` media.
//!
//! [`RecordIo`] is a [`tokio_util::codec`] codec, so a body becomes a `Stream` of records with
//! `FramedRead` and a `Stream` of messages becomes a body with `FramedWrite`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The largest record Berth reads unless told otherwise: a record is one message, and the
/// API's messages are far smaller than its 1 MiB request limit.
pub const DEFAULT_MAX_RECORD: usize = 1 << 20;

/// Why a RecordIO stream could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordIoError {
    /// The length prefix is not a decimal number followed by a newline.
    #[error("record {index}: the length prefix {prefix:?} is not a decimal number of bytes")]
    BadLength {
        /// Which record (0 is the first).
        index: u64,
        /// What was there instead, as text.
        prefix: String,
    },
    /// A record is longer than the limit.
    #[error("record {index}: {length} bytes is more than the limit of {max} bytes")]
    TooLong {
        /// Which record.
        index: u64,
        /// Its declared length.
        length: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a record.
    #[error("record {index}: the stream ended {missing} bytes before the end of the record")]
    Truncated {
        /// Which record.
        index: u64,
        /// Bytes the record still lacked.
        missing: usize,
    },
    /// Reading the stream failed.
    #[error("reading the stream: {0}")]
    Io(String),
}

impl From<std::io::Error> for RecordIoError {
    fn from(e: std::io::Error) -> Self {
        RecordIoError::Io(e.to_string())
    }
}

/// The RecordIO codec: decodes records (with a size limit) and encodes them.
///
/// ```
/// use berth::api::recordio::RecordIo;
/// use bytes::{Bytes, BytesMut};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec = RecordIo::default();
/// let mut wire = BytesMut::new();
/// codec.encode(Bytes::from_static(b"{\"type\":\"GET_HEALTH\"}"), &mut wire).unwrap();
/// assert_eq!(&wire[..], b"21\n{\"type\":\"GET_HEALTH\"}");
/// let record = codec.decode(&mut wire).unwrap().unwrap();
/// assert_eq!(&record[..], b"{\"type\":\"GET_HEALTH\"}");
/// ```
#[derive(Debug, Clone)]
pub struct RecordIo {
    max: usize,
    /// The record being read: its length, once the prefix is in.
    pending: Option<usize>,
    index: u64,
}

impl Default for RecordIo {
    fn default() -> Self {
        RecordIo::with_max_record(DEFAULT_MAX_RECORD)
    }
}

impl RecordIo {
    /// A codec that refuses records longer than `max` bytes.
    pub fn with_max_record(max: usize) -> Self {
        RecordIo {
            max,
            pending: None,
            index: 0,
        }
    }
}

/// The longest length prefix worth waiting for (`u64::MAX` has 20 digits).
const MAX_PREFIX: usize = 20;

impl Decoder for RecordIo {
    type Item = Bytes;
    type Error = RecordIoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, RecordIoError> {
        let length = match self.pending {
            Some(l) => l,
            None => {
                let Some(newline) = src.iter().take(MAX_PREFIX + 1).position(|b| *b == b'\n')
                else {
                    if src.len() > MAX_PREFIX {
                        return Err(self.bad_length(&src[..MAX_PREFIX + 1]));
                    }
                    return Ok(None);
                };
                let prefix = &src[..newline];
                let length = std::str::from_utf8(prefix)
                    .ok()
                    .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|p| p.parse::<u64>().ok())
                    .ok_or_else(|| self.bad_length(prefix))?;
                if length > self.max as u64 {
                    return Err(RecordIoError::TooLong {
                        index: self.index,
                        length,
                        max: self.max,
                    });
                }
                src.advance(newline + 1);
                let length = length as usize;
                self.pending = Some(length);
                length
            }
        };
        if src.len() < length {
            src.reserve(length - src.len());
            return Ok(None);
        }
        self.pending = None;
        self.index += 1;
        Ok(Some(src.split_to(length).freeze()))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, RecordIoError> {
        match self.decode(src)? {
            Some(record) => Ok(Some(record)),
            None if src.is_empty() && self.pending.is_none() => Ok(None),
            None => Err(RecordIoError::Truncated {
                index: self.index,
                missing: match self.pending {
                    Some(l) => l - src.len(),
                    None => 1,
                },
            }),
        }
    }
}

impl RecordIo {
    fn bad_length(&self, prefix: &[u8]) -> RecordIoError {
        RecordIoError::BadLength {
            index: self.index,
            prefix: String::from_utf8_lossy(prefix).into_owned(),
        }
    }
}

impl Encoder<Bytes> for RecordIo {
    type Error = RecordIoError;

    fn encode(&mut self, record: Bytes, dst: &mut BytesMut) -> Result<(), RecordIoError> {
        dst.extend_from_slice(&frame(&record));
        Ok(())
    }
}

/// `record` framed as one RecordIO record.
///
/// ```
/// assert_eq!(&berth::api::recordio::frame(b"abc")[..], b"3\nabc");
/// ```
pub fn frame(record: &[u8]) -> Bytes {
    let prefix = format!("{}\n", record.len());
    let mut framed = BytesMut::with_capacity(prefix.len() + record.len());
    framed.put_slice(prefix.as_bytes());
    framed.put_slice(record);
    framed.freeze()
}

/// One record of a streaming answer: `value`, the protobuf-JSON of Mesos message `message`,
/// in `media` (JSON, or binary protobuf), framed.
pub fn answer_record(
    message: &'static str,
    value: &serde_json::Value,
    media: super::negotiate::Media,
) -> Result<Bytes, super::proto::EncodeError> {
    Ok(match media {
        super::negotiate::Media::Protobuf => frame(&super::proto::encode(message, value)?),
        _ => frame(value.to_string().as_bytes()),
    })
}

/// The first record of a whole RecordIO body (a streaming request's first record is its
/// `Call`).
pub fn first_record(body: &[u8]) -> Result<Bytes, RecordIoError> {
    let mut buf = BytesMut::from(body);
    let mut codec = RecordIo::default();
    match codec.decode(&mut buf)? {
        Some(r) => Ok(r),
        None => codec.decode_eof(&mut buf)?.ok_or(RecordIoError::Truncated {
            index: 0,
            missing: 1,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        codec: &mut RecordIo,
        wire: &[u8],
        chunk: usize,
    ) -> Result<Vec<Bytes>, RecordIoError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in wire.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            while let Some(r) = codec.decode(&mut buf)? {
                out.push(r);
            }
        }
        while let Some(r) = codec.decode_eof(&mut buf)? {
            out.push(r);
        }
        Ok(out)
    }

    #[test]
    fn records_survive_any_split_of_the_stream() {
        let records: Vec<Bytes> = vec![
            Bytes::from_static(b"{\"type\":\"GET_HEALTH\"}"),
            Bytes::new(),
            Bytes::from(vec![b'\n'; 300]),
            Bytes::from((0..=255u8).collect::<Vec<_>>()),
        ];
        let mut wire = BytesMut::new();
        for r in &records {
            RecordIo::default().encode(r.clone(), &mut wire).unwrap();
        }
        for chunk in [1, 2, 3, 7, 64, wire.len()] {
            let got = decode_all(&mut RecordIo::default(), &wire, chunk).unwrap();
            assert_eq!(got, records, "chunk {chunk}");
        }
    }

    #[test]
    fn malformed_streams_are_named() {
        let e = decode_all(&mut RecordIo::default(), b"x1\nab", 100).unwrap_err();
        assert!(
            matches!(e, RecordIoError::BadLength { index: 0, .. }),
            "{e}"
        );
        let e = decode_all(&mut RecordIo::default(), b"2\nab-1\n", 100).unwrap_err();
        assert!(
            matches!(e, RecordIoError::BadLength { index: 1, .. }),
            "{e}"
        );
        let e = decode_all(&mut RecordIo::default(), b"\nab", 100).unwrap_err();
        assert!(matches!(e, RecordIoError::BadLength { .. }), "{e}");
        // A prefix that never ends is refused once it is longer than any length.
        let e = decode_all(&mut RecordIo::default(), &[b'1'; 40], 1).unwrap_err();
        assert!(matches!(e, RecordIoError::BadLength { .. }), "{e}");
        let e = decode_all(&mut RecordIo::with_max_record(4), b"5\nabcde", 100).unwrap_err();
        assert_eq!(
            e,
            RecordIoError::TooLong {
                index: 0,
                length: 5,
                max: 4
            }
        );
        let e = decode_all(&mut RecordIo::default(), b"5\nabc", 100).unwrap_err();
        assert_eq!(
            e,
            RecordIoError::Truncated {
                index: 0,
                missing: 2
            }
        );
        let e = decode_all(&mut RecordIo::default(), b"5", 100).unwrap_err();
        assert!(matches!(e, RecordIoError::Truncated { .. }), "{e}");
        assert!(first_record(b"").is_err());
        assert_eq!(&first_record(b"3\nabc4\nrest").unwrap()[..], b"abc");
    }
}
