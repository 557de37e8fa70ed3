//! One pass over a source's bytes: receive, hash, and hand them to a blocking worker that writes
//! files, extracts archives, and tees into the cache, all at once.
//!
//! The async side owns the network (or file) reads and the digest; the worker runs on a blocking
//! thread fed through a bounded channel, so memory stays flat whatever the size, and hashing and
//! decompression use two cores.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use berth_safe_fs::Dir;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::checksum::{Checksum, Hasher};
use crate::cleanup::Cleanup;
use crate::error::{FetchError, Result};
use crate::extract::{self, Compression, ExtractLimits, Extractor};
use crate::local::LocalPolicy;
use crate::net::{self, NetPolicy};
use crate::progress::Phase;
use crate::uri::Source;

/// Stall detection: fewer than `min_bytes_per_sec * window` bytes in `window` aborts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StallPolicy {
    pub(crate) window: Duration,
    pub(crate) min_bytes_per_sec: u64,
}

/// An opened source, ready to yield bytes.
pub(crate) enum Body {
    Http(reqwest::Response),
    File(tokio::fs::File),
}

/// The result of opening a source: its body and, when known, its length.
pub(crate) struct Opened {
    pub(crate) body: Body,
    pub(crate) len: Option<u64>,
}

/// Turns a reqwest error into ours, deciding whether it is worth a retry.
fn http_error(uri: &str, e: reqwest::Error) -> FetchError {
    if let Some(d) = net::denied_in(&e) {
        return FetchError::NetworkRefused {
            uri: uri.to_string(),
            reason: d.to_string(),
        };
    }
    let mut message = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        message.push_str(": ");
        message.push_str(&s.to_string());
        src = s.source();
    }
    // Builder errors (bad URL, bad header), redirect loops and certificate rejections will fail
    // the same way again. rustls's verdict is only visible in the message chain.
    let transient =
        !(e.is_builder() || e.is_redirect() || message.contains("invalid peer certificate"));
    FetchError::Http {
        uri: uri.to_string(),
        message,
        transient,
    }
}

/// Opens `source`: sends the request and waits for a 200 within the stall window, or opens the
/// local file if `local` allows it and it is a regular file.
pub(crate) async fn open(
    client: &reqwest::Client,
    local: &Arc<LocalPolicy>,
    network: &NetPolicy,
    uri: &str,
    source: &Source,
    stall: StallPolicy,
) -> Result<Opened> {
    match source {
        Source::Http(url) => {
            // The resolver checks names; a literal address never reaches it.
            if let Some(host) = url.host() {
                network
                    .check_literal(&host)
                    .map_err(|d| FetchError::NetworkRefused {
                        uri: uri.to_string(),
                        reason: d.to_string(),
                    })?;
            }
            let send = client.get(url.clone()).send();
            let resp = match tokio::time::timeout(stall.window, send).await {
                Ok(r) => r.map_err(|e| http_error(uri, e))?,
                Err(_) => {
                    return Err(FetchError::Stalled {
                        uri: uri.to_string(),
                        window: stall.window,
                        min_bytes: stall_floor(stall),
                    })
                }
            };
            let status = resp.status().as_u16();
            if status != 200 {
                return Err(FetchError::HttpStatus {
                    uri: uri.to_string(),
                    status,
                });
            }
            let len = resp.content_length();
            Ok(Opened {
                body: Body::Http(resp),
                len,
            })
        }
        Source::File(path) => {
            // Resolving and checking is a few syscalls, but on a network file system any of
            // them can wait: off the runtime's threads.
            let (policy, u, p) = (local.clone(), uri.to_string(), path.clone());
            let opened = tokio::task::spawn_blocking(move || policy.open(&u, &p))
                .await
                .map_err(|e| FetchError::Internal {
                    uri: uri.to_string(),
                    reason: format!("opening the local source failed: {e}"),
                })??;
            Ok(Opened {
                body: Body::File(tokio::fs::File::from_std(opened.file)),
                len: Some(opened.len),
            })
        }
    }
}

fn stall_floor(stall: StallPolicy) -> u64 {
    (stall.min_bytes_per_sec as f64 * stall.window.as_secs_f64()).ceil() as u64
}

impl Body {
    async fn next_chunk(&mut self, uri: &str, path: Option<&PathBuf>) -> Result<Option<Bytes>> {
        match self {
            Body::Http(resp) => resp.chunk().await.map_err(|e| http_error(uri, e)),
            Body::File(f) => {
                let mut buf = BytesMut::with_capacity(256 * 1024);
                let n = f.read_buf(&mut buf).await.map_err(|e| FetchError::Source {
                    uri: uri.to_string(),
                    path: path.cloned().unwrap_or_default(),
                    source: e,
                })?;
                Ok((n > 0).then(|| buf.freeze()))
            }
        }
    }
}

/// What the worker does with the bytes besides hashing.
#[derive(Debug)]
pub(crate) enum Target {
    /// Write them unchanged to this (new, empty) file.
    File(File),
    /// Decompress a bare gzip stream into this (new, empty) file.
    Gunzip(File),
    /// Extract a tar stream into this (empty) directory.
    Tar(Compression, Dir),
    /// Nothing: the cache file is the only destination.
    Discard,
}

/// Everything the worker writes during one attempt.
pub(crate) struct Sinks {
    pub(crate) target: Target,
    /// A cache file to receive an exact copy of the bytes.
    pub(crate) cache_file: Option<PathBuf>,
    pub(crate) limits: ExtractLimits,
    /// Guards kept alive until the worker is done, so cleanup never races its writes.
    pub(crate) keep_alive: Vec<Arc<Cleanup>>,
}

/// What a finished transfer learned.
pub(crate) struct Transferred {
    pub(crate) digest: Checksum,
    pub(crate) bytes: u64,
}

enum Msg {
    Data(Bytes),
    End,
}

/// A `Read` over chunks arriving from the async side. A closed channel without `End` means the
/// transfer was abandoned (checksum mismatch, error, or the future was dropped).
struct ChannelReader {
    rx: mpsc::Receiver<Msg>,
    cur: Bytes,
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(b)) => self.cur = b,
                Some(Msg::End) => self.ended = true,
                None => return Err(io::Error::other("transfer abandoned")),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

/// Copies everything read into a second file (the cache copy).
struct Tee<R> {
    inner: R,
    copy: Option<(File, PathBuf)>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some((f, path)) = &mut self.copy {
            f.write_all(&buf[..n]).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot write cache file '{}': {e}", path.display()),
                )
            })?;
        }
        Ok(n)
    }
}

fn run_worker(rx: mpsc::Receiver<Msg>, sinks: Sinks) -> std::result::Result<(), String> {
    let copy = match &sinks.cache_file {
        Some(p) => Some((
            File::create(p)
                .map_err(|e| format!("cannot create cache file '{}': {e}", p.display()))?,
            p.clone(),
        )),
        None => None,
    };
    let mut reader = Tee {
        inner: ChannelReader {
            rx,
            cur: Bytes::new(),
            ended: false,
        },
        copy,
    };
    let res = match sinks.target {
        Target::File(mut f) => io::copy(&mut reader, &mut f)
            .map(|_| ())
            .map_err(|e| format!("cannot write the downloaded file: {e}")),
        Target::Gunzip(mut f) => extract::gunzip(&mut reader, &mut f, sinks.limits),
        Target::Tar(c, dir) => {
            extract::extract_tar(&mut reader, c, Extractor::new(dir, sinks.limits))
        }
        Target::Discard => io::copy(&mut reader, &mut io::sink())
            .map(|_| ())
            .map_err(|e| e.to_string()),
    };
    drop(sinks.keep_alive);
    res
}

/// Per-attempt progress reporting, throttled so callbacks stay cheap.
pub(crate) trait Report: Send {
    fn report(&mut self, phase: Phase, done: u64, total: Option<u64>);
}

/// The fixed parameters of one transfer.
pub(crate) struct Pass<'a> {
    pub(crate) uri: &'a str,
    pub(crate) source: &'a Source,
    pub(crate) expected: Option<&'a Checksum>,
    pub(crate) stall: StallPolicy,
    /// Counts bytes received, for metrics.
    pub(crate) counter: &'a std::sync::atomic::AtomicU64,
    /// The most bytes this source may have.
    pub(crate) max_size: u64,
    /// How to raise it, for the message.
    pub(crate) size_hint: String,
}

/// Streams `opened` through the hasher into `sinks`. Fails with a checksum mismatch before the
/// worker is told the stream ended, so it never finishes with unverified data.
pub(crate) async fn run(
    pass: Pass<'_>,
    opened: Opened,
    sinks: Sinks,
    progress: &mut dyn Report,
) -> Result<Transferred> {
    let Pass {
        uri,
        source,
        expected,
        stall,
        counter,
        max_size,
        size_hint,
    } = pass;
    let Opened { mut body, len } = opened;
    let (tx, rx) = mpsc::channel::<Msg>(16);
    let worker = tokio::task::spawn_blocking(move || run_worker(rx, sinks));
    let path = match source {
        Source::File(p) => Some(p),
        Source::Http(_) => None,
    };

    let mut hasher = match expected {
        Some(c) => c.hasher(),
        None => Hasher::sha256(),
    };
    let mut done = 0u64;
    let floor = stall_floor(stall);
    let mut window_start = Instant::now();
    let mut window_bytes = 0u64;
    let mut last_report = 0u64;
    progress.report(Phase::Downloading, 0, len);
    // Ok(true): all bytes sent; Ok(false): the worker stopped early (its error explains why).
    let pumped: Result<bool> = loop {
        let deadline = window_start + stall.window;
        let next = tokio::time::timeout_at(deadline.into(), body.next_chunk(uri, path)).await;
        let now = Instant::now();
        if now >= deadline {
            // The window is over: judge its rate, then start a new one.
            if window_bytes < floor {
                break Err(FetchError::Stalled {
                    uri: uri.to_string(),
                    window: stall.window,
                    min_bytes: floor,
                });
            }
            window_start = now;
            window_bytes = 0;
        }
        let chunk = match next {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => break Ok(true),
            Ok(Err(e)) => break Err(e),
            Err(_) => continue,
        };
        if chunk.is_empty() {
            continue;
        }
        let n = chunk.len() as u64;
        if done + n > max_size {
            // A source without end (or bigger than announced) stops here, not at a full disk.
            break Err(FetchError::TooLarge {
                uri: uri.to_string(),
                what: format!("more than {max_size} bytes arrived, over"),
                limit: max_size,
                hint: size_hint,
            });
        }
        hasher.update(&chunk);
        done += n;
        window_bytes += n;
        counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        if done - last_report >= 1 << 20 {
            progress.report(Phase::Downloading, done, len);
            last_report = done;
        }
        if tx.send(Msg::Data(chunk)).await.is_err() {
            break Ok(false);
        }
    };
    match pumped {
        Ok(true) => {}
        Ok(false) => {
            drop(tx);
            return Err(worker_result(uri, worker.await).err().unwrap_or_else(|| {
                FetchError::Internal {
                    uri: uri.to_string(),
                    reason: "worker stopped early without an error".into(),
                }
            }));
        }
        Err(e) => {
            // Wait for the worker to see the abandoned stream, so its partial files are gone
            // by the time the caller hears of the failure.
            drop(tx);
            let _ = worker.await;
            return Err(e);
        }
    }
    progress.report(Phase::Verifying, done, len);
    let digest = hasher.finish();
    if let Some(exp) = expected {
        if *exp != digest {
            drop(tx); // the worker sees an abandoned stream and stops
            let _ = worker.await;
            return Err(FetchError::ChecksumMismatch {
                uri: uri.to_string(),
                expected: exp.to_string(),
                actual: digest.to_string(),
            });
        }
    }
    if let Some(total) = len {
        if total != done {
            drop(tx);
            let _ = worker.await;
            return Err(FetchError::Http {
                uri: uri.to_string(),
                message: format!("expected {total} bytes, received {done}"),
                transient: true,
            });
        }
    }
    let _ = tx.send(Msg::End).await;
    worker_result(uri, worker.await)?;
    Ok(Transferred {
        digest,
        bytes: done,
    })
}

fn worker_result(
    uri: &str,
    joined: std::result::Result<std::result::Result<(), String>, tokio::task::JoinError>,
) -> Result<()> {
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(FetchError::Extract {
            uri: uri.to_string(),
            reason,
        }),
        Err(e) => Err(FetchError::Internal {
            uri: uri.to_string(),
            reason: format!("worker failed: {e}"),
        }),
    }
}
