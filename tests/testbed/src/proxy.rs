//! A TCP proxy that slows the server-to-client direction down to a chosen rate.
//!
//! Tests put it in front of a registry to catch a pull in flight: the daemon sees an ordinary
//! registry on 127.0.0.1 (an insecure registry by default), only a slow one.
//!
//! It counts what it moves ([`ThrottledProxy::delivered`], [`ThrottledProxy::requested`],
//! [`ThrottledProxy::connections`]): whether a pull is still running, or ever started, is read
//! off the wire, not guessed from what the daemon shows afterwards.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running throttling proxy; dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct ThrottledProxy {
    addr: SocketAddr,
    rate: Arc<AtomicU64>,
    counts: Arc<Counts>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// Bytes moved per write; small enough that a low rate still flows smoothly.
const CHUNK: usize = 16 * 1024;

/// What the proxy has moved since it started, over all connections.
#[derive(Debug, Default)]
struct Counts {
    /// Upstream to client (the registry's answers: manifests, layers).
    delivered: AtomicU64,
    /// Client to upstream (the daemon's requests).
    requested: AtomicU64,
    /// Connections accepted.
    connections: AtomicU64,
}

impl ThrottledProxy {
    /// Listens on an ephemeral 127.0.0.1 port and forwards to `upstream`, delivering at most
    /// `bytes_per_sec` bytes per second per connection from upstream to the client.
    ///
    /// # Panics
    /// When no port can be bound or no thread started: the test cannot go on without its proxy.
    pub fn start(upstream: SocketAddr, bytes_per_sec: u64) -> ThrottledProxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("throttled proxy: cannot bind 127.0.0.1:0: {e}"));
        std_listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = std_listener.local_addr().expect("listener address");
        let rate = Arc::new(AtomicU64::new(bytes_per_sec.max(1)));
        let (stop, stopped) = watch::channel(false);
        let thread_rate = rate.clone();
        let counts = Arc::new(Counts::default());
        let thread_counts = counts.clone();
        let thread = std::thread::Builder::new()
            .name(format!("throttled-proxy-{addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                rt.block_on(serve(
                    std_listener,
                    upstream,
                    thread_rate,
                    thread_counts,
                    stopped,
                ));
            })
            .unwrap_or_else(|e| panic!("throttled proxy: cannot start thread: {e}"));
        ThrottledProxy {
            addr,
            rate,
            counts,
            stop,
            thread: Some(thread),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the rate for every open and future connection (e.g. to let a caught pull finish).
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec.max(1), Ordering::Relaxed);
    }

    /// Delivers nothing more from upstream on open and future connections until the next
    /// [`set_rate`](Self::set_rate): requests reach upstream, answers wait. A daemon pull
    /// through a held proxy hangs on its first connection until its own timeouts give up.
    pub fn hold(&self) {
        self.rate.store(0, Ordering::Relaxed);
    }

    /// Bytes delivered from upstream to clients so far: a pull that goes on after it should have
    /// been aborted shows here as a count that keeps growing.
    pub fn delivered(&self) -> u64 {
        self.counts.delivered.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from clients to upstream so far (requests).
    pub fn requested(&self) -> u64 {
        self.counts.requested.load(Ordering::SeqCst)
    }

    /// Connections accepted so far: zero means no client (no daemon pull) ever came.
    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::SeqCst)
    }

    /// Asserts that the download through this proxy stopped for good (an aborted pull), and
    /// returns the bytes delivered in all.
    ///
    /// The throttle is lifted first: a download still going would now move megabytes a second.
    /// After two seconds for the cancellation to reach the daemon, nothing may move for five
    /// more; and the total must be far below `image_bytes` (the image's download size), since a
    /// pull that went on at full speed could have finished within those two seconds.
    ///
    /// # Panics
    /// When bytes still flow or nearly the whole image went through.
    pub async fn assert_download_stopped(&self, image_bytes: u64) -> u64 {
        self.set_rate(u64::MAX / 4);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = self.delivered();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = self.delivered();
        assert!(
            after - before < 256 * 1024,
            "the download went on after the abort: {} bytes in 5 s ({after} in all)",
            after - before
        );
        assert!(
            after < image_bytes / 4,
            "most of the image went through: {after} of {image_bytes} bytes"
        );
        after
    }
}

impl Drop for ThrottledProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    rate: Arc<AtomicU64>,
    counts: Arc<Counts>,
    mut stopped: watch::Receiver<bool>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                counts.connections.fetch_add(1, Ordering::SeqCst);
                conns.spawn(relay(client, upstream, rate.clone(), counts.clone()));
            }
        }
    }
    // Dropping the set aborts every relay, which closes both sockets of each connection.
    conns.abort_all();
}

async fn relay(client: TcpStream, upstream: SocketAddr, rate: Arc<AtomicU64>, counts: Arc<Counts>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if server_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
            counts.requested.fetch_add(n as u64, Ordering::SeqCst);
        }
        let _ = server_wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let rate = rate.load(Ordering::Relaxed);
            if rate == 0 {
                // Held: upstream's answer waits in the socket.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let want = (rate as usize / 10).clamp(1, CHUNK);
            let n = match server_rd.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if client_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
            counts.delivered.fetch_add(n as u64, Ordering::SeqCst);
            let secs = n as f64 / rate as f64;
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        }
        let _ = client_wr.shutdown().await;
    };
    tokio::join!(up, down);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    /// A 64 KiB answer through a 128 KiB/s proxy takes about half a second; unthrottled it is instant.
    #[test]
    fn limits_the_download_rate() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in server.incoming().take(1) {
                let mut s = stream.unwrap();
                let mut req = [0u8; 4];
                s.read_exact(&mut req).unwrap();
                s.write_all(&vec![7u8; 64 * 1024]).unwrap();
            }
        });
        let proxy = ThrottledProxy::start(upstream, 128 * 1024);
        let start = Instant::now();
        let mut c = std::net::TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(b"ping").unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        let took = start.elapsed();
        assert_eq!(got.len(), 64 * 1024);
        assert!(got.iter().all(|b| *b == 7));
        assert_eq!(proxy.delivered(), 64 * 1024);
        assert_eq!(proxy.requested(), 4);
        assert_eq!(proxy.connections(), 1);
        assert!(
            took >= Duration::from_millis(350),
            "proxy did not throttle: {took:?}"
        );
    }

    /// A held proxy passes the request on and delivers nothing until its rate is set again.
    #[test]
    fn holds_answers_until_released() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in server.incoming().take(1) {
                let mut s = stream.unwrap();
                let mut req = [0u8; 4];
                s.read_exact(&mut req).unwrap();
                s.write_all(b"pong").unwrap();
            }
        });
        let proxy = ThrottledProxy::start(upstream, 1 << 20);
        proxy.hold();
        let mut c = std::net::TcpStream::connect(proxy.addr()).unwrap();
        c.write_all(b"ping").unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut got = [0u8; 4];
        assert!(c.read(&mut got).is_err(), "a held proxy delivered");
        assert_eq!((proxy.requested(), proxy.delivered()), (4, 0));
        proxy.set_rate(1 << 20);
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
        // Counted just after the write the client already read.
        let counted = Instant::now();
        while proxy.delivered() < 4 && counted.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(proxy.delivered(), 4);
        assert_eq!(proxy.connections(), 1);
    }
}
