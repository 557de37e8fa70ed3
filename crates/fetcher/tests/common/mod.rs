//! Test support: a small HTTP/1.1 server on a real TCP socket, whose behaviour per path the test
//! controls (stalls, failures, chunked bodies, slow bodies), plus archive builders.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the server answers one path.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 with a Content-Length.
    Ok(Vec<u8>),
    /// 200 with chunked encoding (no length known up front).
    Chunked(Vec<u8>),
    /// This status and a short body.
    Status(u16),
    /// `fails` answers with `status`, then 200 with the body.
    FailThenOk {
        fails: usize,
        status: u16,
        body: Vec<u8>,
    },
    /// Headers for the whole body, then `after` bytes, then silence (the connection stays open).
    Stall { body: Vec<u8>, after: usize },
    /// The body in `chunk`-sized pieces with `delay` between them.
    Slow {
        body: Vec<u8>,
        chunk: usize,
        delay: Duration,
    },
    /// For the first `times` requests: headers, `after` bytes, then the connection is closed.
    Truncate {
        body: Vec<u8>,
        after: usize,
        times: usize,
    },
    /// 302 to this location.
    Redirect(String),
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Behavior>>,
    hits: Mutex<HashMap<String, usize>>,
    /// Responses whose body write failed because the client went away.
    aborted: AtomicUsize,
    /// Connections currently being served.
    open: AtomicUsize,
}

/// A running server; it stops with the test's runtime.
#[derive(Clone)]
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    tls: bool,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_on("127.0.0.1").await
    }

    /// A plain HTTP server on another loopback address (e.g. `127.0.0.2`).
    pub async fn start_on(ip: &str) -> Server {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    st.open.fetch_add(1, Ordering::SeqCst);
                    serve(sock, &st).await;
                    st.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            addr,
            state,
            tls: false,
        }
    }

    /// A server speaking HTTPS with a fresh self-signed certificate for 127.0.0.1; returns it
    /// with the certificate's PEM, for the client to trust.
    pub async fn start_tls() -> (Server, String) {
        use tokio_rustls::rustls;
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let pem = ck.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (st, acceptor) = (st.clone(), acceptor.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(sock).await {
                        serve(tls, &st).await;
                    }
                });
            }
        });
        (
            Server {
                addr,
                state,
                tls: true,
            },
            pem,
        )
    }

    pub fn route(&self, path: &str, b: Behavior) -> String {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), b);
        self.url(path)
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// Requests received for a path (query strings ignored).
    pub fn hits(&self, path: &str) -> usize {
        *self.state.hits.lock().unwrap().get(path).unwrap_or(&0)
    }

    pub fn aborted(&self) -> usize {
        self.state.aborted.load(Ordering::SeqCst)
    }

    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut sock: S, st: &State) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut tmp).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    let path = target.split('?').next().unwrap_or("/").to_string();
    let n = {
        let mut hits = st.hits.lock().unwrap();
        let h = hits.entry(path.clone()).or_insert(0);
        *h += 1;
        *h
    };
    let behavior = st.routes.lock().unwrap().get(&path).cloned();
    let ok_head = |len: Option<usize>| match len {
        Some(l) => format!("HTTP/1.1 200 OK\r\nContent-Length: {l}\r\nConnection: close\r\n\r\n"),
        None => {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_string()
        }
    };
    let status = |code: u16| {
        format!("HTTP/1.1 {code} Status\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!")
    };
    let res: std::io::Result<()> = async {
        match behavior {
            None => sock.write_all(status(404).as_bytes()).await?,
            Some(Behavior::Status(c)) => sock.write_all(status(c).as_bytes()).await?,
            Some(Behavior::Redirect(to)) => {
                let head = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                sock.write_all(head.as_bytes()).await?
            }
            Some(Behavior::Ok(body)) => {
                sock.write_all(ok_head(Some(body.len())).as_bytes()).await?;
                for c in body.chunks(64 * 1024) {
                    sock.write_all(c).await?;
                }
            }
            Some(Behavior::Chunked(body)) => {
                sock.write_all(ok_head(None).as_bytes()).await?;
                for c in body.chunks(7777) {
                    sock.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                        .await?;
                    sock.write_all(c).await?;
                    sock.write_all(b"\r\n").await?;
                }
                sock.write_all(b"0\r\n\r\n").await?;
            }
            Some(Behavior::FailThenOk {
                fails,
                status: code,
                body,
            }) => {
                if n <= fails {
                    sock.write_all(status(code).as_bytes()).await?;
                } else {
                    sock.write_all(ok_head(Some(body.len())).as_bytes()).await?;
                    sock.write_all(&body).await?;
                }
            }
            Some(Behavior::Stall { body, after }) => {
                sock.write_all(ok_head(Some(body.len())).as_bytes()).await?;
                sock.write_all(&body[..after]).await?;
                sock.flush().await?;
                // Hold the connection open until the client gives up.
                let mut sink = [0u8; 16];
                let _ = sock.read(&mut sink).await;
                return Err(std::io::Error::other("client went away"));
            }
            Some(Behavior::Slow { body, chunk, delay }) => {
                sock.write_all(ok_head(Some(body.len())).as_bytes()).await?;
                for c in body.chunks(chunk) {
                    sock.write_all(c).await?;
                    sock.flush().await?;
                    tokio::time::sleep(delay).await;
                }
            }
            Some(Behavior::Truncate { body, after, times }) => {
                sock.write_all(ok_head(Some(body.len())).as_bytes()).await?;
                if n <= times {
                    sock.write_all(&body[..after]).await?;
                    sock.flush().await?;
                    return Ok(());
                }
                sock.write_all(&body).await?;
            }
        }
        sock.flush().await
    }
    .await;
    if res.is_err() {
        st.aborted.fetch_add(1, Ordering::SeqCst);
    }
    let _ = sock.shutdown().await;
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// An entry for [`tar_bytes`].
pub enum TarEntry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDevice(&'a str),
}

/// Builds a tar archive, writing names raw into the header so tests can make hostile ones.
pub fn tar_bytes(entries: &[TarEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_old();
        let (name, data): (&str, &[u8]) = match e {
            TarEntry::File(n, d, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(d.len() as u64);
                (n, d)
            }
            TarEntry::Dir(n) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                (n, &[])
            }
            TarEntry::Symlink(n, t) | TarEntry::HardLink(n, t) => {
                h.set_entry_type(if matches!(e, TarEntry::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.set_mode(0o777);
                h.set_size(0);
                let lb = t.as_bytes();
                h.as_old_mut().linkname[..lb.len()].copy_from_slice(lb);
                (n, &[])
            }
            TarEntry::CharDevice(n) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_size(0);
                (n, &[])
            }
        };
        let nb = name.as_bytes();
        h.as_old_mut().name[..nb.len()].copy_from_slice(nb);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

/// A zip with the given (name, content) entries, duplicates allowed.
pub fn zip_bytes(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    for (name, data) in entries {
        w.start_file(*name, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A zip with two entries of the same name; the second (last) holds `second`.
pub fn zip_with_duplicate(name: &str, first: &[u8], second: &[u8]) -> Vec<u8> {
    assert!(name.len() >= 2);
    let mut other = name.to_string();
    other.replace_range(0..1, if name.starts_with('Q') { "R" } else { "Q" });
    let mut bytes = zip_bytes(&[(name, first), (&other, second)]);
    // Rename every occurrence (local header and central directory) of the placeholder.
    let (from, to) = (other.as_bytes().to_vec(), name.as_bytes().to_vec());
    let mut i = 0;
    while i + from.len() <= bytes.len() {
        if bytes[i..i + from.len()] == from[..] {
            bytes[i..i + from.len()].copy_from_slice(&to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    bytes
}

/// A fresh sandbox directory.
pub fn sandbox() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Everything under `dir`, as sorted relative paths (hidden staging dirs included). A
/// subdirectory removed while it is walked (a staging directory being cleaned up) is listed
/// without its contents.
pub fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != root => return,
            Err(e) => panic!("cannot list {}: {e}", dir.display()),
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}
