//! The logger's input: chunks of a container's output, tagged with the stream they came from.
//!
//! The logger knows nothing of Docker. The containerizer maps the Engine API's decoded log frames
//! onto [`OutputChunk`]s and hands the logger a `Stream` of them.

use std::fmt;
use std::time::SystemTime;

use bytes::Bytes;

/// Which of a container's two output streams a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputStream {
    /// The container's standard output (also everything a TTY container prints).
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl OutputStream {
    /// Both streams, in a fixed order (stdout first).
    pub const ALL: [OutputStream; 2] = [OutputStream::Stdout, OutputStream::Stderr];

    /// The file name of this stream's current log file in the sandbox: `stdout` or `stderr`.
    pub fn file_name(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }

    /// A small index (stdout 0, stderr 1) for per-stream arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            OutputStream::Stdout => 0,
            OutputStream::Stderr => 1,
        }
    }
}

impl fmt::Display for OutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file_name())
    }
}

/// A piece of a container's output.
///
/// `timestamp` is the time Docker recorded for the log entry this chunk came from (the
/// `timestamps=true` prefix of the logs endpoint). The logger needs it to checkpoint how far it
/// has written and so to resume without loss or duplication after an agent restart; chunks
/// without one are written all the same but cannot be accounted for on resume (see
/// [`ContainerLog::resume_since`](crate::ContainerLog::resume_since)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// The stream the bytes were written to.
    pub stream: OutputStream,
    /// When Docker recorded the entry, if the source asked for timestamps.
    pub timestamp: Option<SystemTime>,
    /// The bytes, exactly as the container wrote them.
    pub data: Bytes,
}

impl OutputChunk {
    /// A chunk of `stream` with an optional Docker timestamp.
    pub fn new(
        stream: OutputStream,
        timestamp: Option<SystemTime>,
        data: impl Into<Bytes>,
    ) -> Self {
        OutputChunk {
            stream,
            timestamp,
            data: data.into(),
        }
    }
}
