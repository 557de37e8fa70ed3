//! Attached streams: a container's (or exec's) output, and its stdin, over one hijacked
//! connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, WriteHalf};
use tokio_util::io::ReaderStream;

use crate::client::{Call, Docker};
use crate::decode::frames::FrameMode;
use crate::error::{Error, Result};
use crate::stream::{ByteSource, LogFrames};

/// Options of [`Containers::attach`](crate::Containers::attach).
#[derive(Debug, Clone, Copy)]
pub struct AttachOptions {
    /// Attach stdin (the container must have `OpenStdin`).
    pub stdin: bool,
    /// Attach stdout. Default: true.
    pub stdout: bool,
    /// Attach stderr. Default: true.
    pub stderr: bool,
    /// Replay the output logged so far before the live output.
    pub logs: bool,
    /// The container's `Config.Tty` when the caller knows it (from the create body), which
    /// saves the inspect otherwise made first to learn how the output is framed.
    pub tty: Option<bool>,
}

impl Default for AttachOptions {
    fn default() -> AttachOptions {
        AttachOptions {
            stdin: false,
            stdout: true,
            stderr: true,
            logs: false,
            tty: None,
        }
    }
}

/// A live attachment: output frames in, stdin out. Dropping both halves closes the connection.
#[derive(Debug)]
pub struct Attached {
    /// The output. Ends when the process exits (or the attachment is closed).
    pub output: LogFrames,
    /// The process's stdin (writes go nowhere when stdin was not attached).
    pub input: AttachInput,
}

/// The stdin side of an [`Attached`]; `shutdown` sends end-of-file.
pub struct AttachInput {
    inner: WriteHalf<TokioIo<Upgraded>>,
}

impl std::fmt::Debug for AttachInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttachInput")
    }
}

impl AsyncWrite for AttachInput {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Sends an attach-like call (attach, exec start) and splits the upgraded connection.
pub(crate) async fn hijack(docker: &Docker, call: Call, mode: FrameMode) -> Result<Attached> {
    let (response, request) = docker.open_upgradable(call).await?;
    if response.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        return Err(Error::Decode {
            request: request.to_string(),
            expected: "a connection upgrade (101)",
            reason: format!("the daemon answered {}", response.status()),
            text: String::new(),
        });
    }
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(|e| Error::ConnectionLost {
            request: request.to_string(),
            reason: crate::transport::error_chain(&e),
        })?;
    let (read, write) = tokio::io::split(TokioIo::new(upgraded));
    let source = ByteSource::Upgraded(
        ReaderStream::with_capacity(read, 32 * 1024),
        Arc::clone(&request),
    );
    Ok(Attached {
        output: LogFrames::open(source, mode, request),
        input: AttachInput { inner: write },
    })
}
