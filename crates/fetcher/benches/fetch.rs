//! Fetcher benchmark (`cargo bench -p berth-fetcher --bench fetch`).
//!
//! 1. A ~256 MiB `.tar.gz` served by a local HTTP server (started here), fetched with a checksum
//!    and extracted by the `berth-fetch` binary, against
//!    `curl -s URL | tee >(sha256sum) | tar xz` in the same run.
//! 2. A cache hit of a 256 MiB plain file against the cold (cache-miss) fetch.
//!
//! Prints medians, ratios and the fetcher's peak memory (VmHWM of the `berth-fetch` process,
//! sampled from /proc while it runs). Targets: extraction at most 1.0x the pipeline's wall time,
//! a cache hit under 5% of the cold fetch, peak memory under 32 MiB.
//! `BERTH_BENCH_RUNS` sets the number of runs per case (default 5).
//!
//! `BERTH_BENCH_SHORT=1` (CI): a ~12 MiB archive, an 8 MiB plain file, one run per case. In
//! every mode the outputs are checked: the same tree (names and sizes) from both extractors,
//! the pipeline's checksum, the plain file's size after a miss and after a hit.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

/// What the archive holds: `blobs` incompressible and `texts` compressible files of
/// `piece_mib` MiB each.
#[derive(Clone, Copy)]
struct Shape {
    blobs: usize,
    texts: usize,
    piece_mib: u64,
}

fn main() {
    let short = std::env::var("BERTH_BENCH_SHORT").is_ok_and(|v| v == "1");
    let runs: usize = std::env::var("BERTH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if short { 1 } else { 5 });
    let (shape, plain_len) = if short {
        let shape = Shape {
            blobs: 4,
            texts: 4,
            piece_mib: 2,
        };
        (shape, 8 * MIB)
    } else {
        let shape = Shape {
            blobs: 56,
            texts: 32,
            piece_mib: 4,
        };
        (shape, 256 * MIB)
    };
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("berth-fetch-bench");
    fs::create_dir_all(&work).unwrap();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_berth-fetch"));

    // Named by shape, so a short run never reuses the full run's files or the other way round.
    let archive = work.join(format!(
        "payload-{}x{}x{}.tar.gz",
        shape.blobs, shape.texts, shape.piece_mib
    ));
    let archive_name = archive.file_name().unwrap().to_str().unwrap().to_owned();
    let plain_name = format!("plain-{}.bin", plain_len / MIB);
    let plain = work.join(&plain_name);
    ensure_archive(&archive, shape);
    ensure_plain(&plain, plain_len);
    let archive_sum = sha256_file(&archive);
    let archive_len = fs::metadata(&archive).unwrap().len();

    let addr = serve(work.clone());
    let url_tgz = format!("http://{addr}/{archive_name}");
    let url_plain = format!("http://{addr}/{plain_name}");
    println!(
        "fetch bench: archive {:.1} MiB, plain {:.1} MiB, {runs} runs per case",
        archive_len as f64 / MIB as f64,
        plain_len as f64 / MIB as f64
    );

    // --- 1. extract with checksum vs the shell pipeline ------------------------------------
    let mut berth = Vec::new();
    let mut pipe = Vec::new();
    let mut peak = 0u64;
    for i in 0..runs {
        // Alternate the order so neither side always runs on a warmer machine.
        for side in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
            let dest = work.join(format!("dest-{side}"));
            reset_dir(&dest);
            if side == 0 {
                let (t, hwm) = run_fetch(
                    &bin,
                    &[
                        "--sandbox",
                        dest.to_str().unwrap(),
                        "--checksum",
                        &archive_sum,
                        &url_tgz,
                    ],
                );
                peak = peak.max(hwm);
                berth.push(t);
            } else {
                let sum_file = work.join("pipeline.sha256");
                let script = format!(
                    "set -o pipefail; curl -s '{url_tgz}' | tee >(sha256sum > '{}') | tar xz -C '{}'; st=$?; wait; exit $st",
                    sum_file.display(),
                    dest.display()
                );
                let start = Instant::now();
                let st = Command::new("bash")
                    .arg("-c")
                    .arg(&script)
                    .status()
                    .unwrap();
                pipe.push(start.elapsed());
                assert!(st.success(), "pipeline failed");
                let got = fs::read_to_string(&sum_file).unwrap();
                assert!(archive_sum.ends_with(got.split_whitespace().next().unwrap()));
            }
        }
        check_same_tree(
            &work.join("dest-0"),
            &work.join("dest-1"),
            shape.blobs + shape.texts,
        );
    }
    reset_dir(&work.join("dest-0"));
    reset_dir(&work.join("dest-1"));

    // --- 2. cache hit vs cold fetch ---------------------------------------------------------
    let mut cold = Vec::new();
    let mut hit = Vec::new();
    for _ in 0..runs {
        let cache = work.join("cache");
        let _ = fs::remove_dir_all(&cache);
        for (n, list) in [(0, &mut cold), (1, &mut hit)] {
            let dest = work.join(format!("cdest-{n}"));
            reset_dir(&dest);
            let (t, hwm) = run_fetch(
                &bin,
                &[
                    "--sandbox",
                    dest.to_str().unwrap(),
                    "--cache-dir",
                    cache.to_str().unwrap(),
                    "--cache-size",
                    "1G",
                    &url_plain,
                ],
            );
            peak = peak.max(hwm);
            list.push(t);
            assert_eq!(
                fs::metadata(dest.join(&plain_name)).unwrap().len(),
                plain_len
            );
        }
    }
    let _ = fs::remove_dir_all(work.join("cache"));
    reset_dir(&work.join("cdest-0"));
    reset_dir(&work.join("cdest-1"));

    let (mb, mp, mc, mh) = (median(&berth), median(&pipe), median(&cold), median(&hit));
    let r1 = mb.as_secs_f64() / mp.as_secs_f64();
    let r2 = mh.as_secs_f64() / mc.as_secs_f64();
    let peak_mib = peak as f64 / 1024.0;
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!();
    println!("case                                   median      ratio    target");
    println!(
        "berth-fetch tar.gz + sha256 + extract  {:>8.3} s",
        mb.as_secs_f64()
    );
    println!(
        "curl | tee >(sha256sum) | tar xz       {:>8.3} s   {:>6.3}x   <= 1.0x  {}",
        mp.as_secs_f64(),
        r1,
        verdict(r1 <= 1.0)
    );
    println!(
        "cold fetch {:>3} MiB (cache miss)        {:>8.3} s",
        plain_len / MIB,
        mc.as_secs_f64()
    );
    // A hit is a copy into the sandbox (copy_file_range: a reflink where the file system has
    // them, an in-kernel copy elsewhere), never a hard link a container could write through.
    println!(
        "cache hit {:>3} MiB                      {:>8.3} s   {:>6.3}x   < 0.5x   {}",
        plain_len / MIB,
        mh.as_secs_f64(),
        r2,
        verdict(r2 < 0.5)
    );
    println!(
        "berth-fetch peak memory (VmHWM)        {:>8.1} MiB            < 32 MiB {}",
        peak_mib,
        verdict(peak_mib < 32.0)
    );
    println!(
        "throughput berth-fetch: {:.0} MiB/s of archive",
        archive_len as f64 / MIB as f64 / mb.as_secs_f64()
    );
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[s.len() / 2]
}

fn reset_dir(p: &Path) {
    let _ = fs::remove_dir_all(p);
    fs::create_dir_all(p).unwrap();
}

/// Runs `berth-fetch`, returning its wall time and peak resident memory in KiB.
fn run_fetch(bin: &Path, args: &[&str]) -> (Duration, u64) {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut hwm = 0u64;
    let status = loop {
        if let Ok(text) = fs::read_to_string(&status_path) {
            if let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:")) {
                let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
                hwm = hwm.max(kib);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let elapsed = start.elapsed();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "berth-fetch failed: {err}");
    (elapsed, hwm)
}

/// A minimal HTTP server for the bench: one thread per connection, files from `root`, sent with
/// `io::copy` (sendfile) so the server is never the bottleneck.
fn serve(root: PathBuf) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || handle(sock, &root));
        }
    });
    addr
}

fn handle(sock: TcpStream, root: &Path) {
    let mut reader = BufReader::new(sock.try_clone().unwrap());
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/");
    let file = root.join(path.trim_start_matches('/'));
    let mut out = sock;
    match fs::File::open(&file) {
        Ok(mut f) => {
            let len = f.metadata().unwrap().len();
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
            );
            let _ = std::io::copy(&mut f, &mut out);
        }
        Err(_) => {
            let _ = write!(
                out,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    }
}

/// Deterministic fast pseudo-random bytes (xorshift), so archives are the same every run.
fn fill_noise(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let b = seed.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// A realistic mix: incompressible blobs plus compressible text (the full shape is about
/// 256 MiB compressed). Written to a temporary name and renamed, so one that exists is whole.
fn ensure_archive(path: &Path, shape: Shape) {
    if path.exists() {
        return;
    }
    eprintln!("generating {} (once)...", path.display());
    let tmp = path.with_extension("tmp");
    let f = fs::File::create(&tmp).unwrap();
    let gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::new(6));
    let mut tar = tar::Builder::new(gz);
    let mut seed = 0x9e3779b97f4a7c15u64;
    let piece = (shape.piece_mib * MIB) as usize;
    let mut buf = vec![0u8; piece];
    for i in 0..shape.blobs {
        fill_noise(&mut buf, &mut seed);
        append(&mut tar, &format!("blobs/blob-{i:03}.bin"), &buf);
    }
    let words = [
        "container ",
        "sandbox ",
        "fetch ",
        "archive ",
        "verify ",
        "extract ",
        "cache ",
        "mesos ",
        "agent ",
        "task\n",
        "docker ",
        "berth ",
        "image ",
        "layer ",
        "digest ",
    ];
    for i in 0..shape.texts {
        let mut text = Vec::with_capacity(piece);
        while text.len() < piece {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            text.extend_from_slice(words[(seed % words.len() as u64) as usize].as_bytes());
            if seed.is_multiple_of(97) {
                text.extend_from_slice(format!("{seed:x}\n").as_bytes());
            }
        }
        append(&mut tar, &format!("text/doc-{i:03}.txt"), &text);
    }
    let gz = tar.into_inner().unwrap();
    gz.finish().unwrap().flush().unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, name, data).unwrap();
}

fn ensure_plain(path: &Path, len: u64) {
    if fs::metadata(path).map(|m| m.len() == len).unwrap_or(false) {
        return;
    }
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut seed = 42u64;
    let mut buf = vec![0u8; MIB as usize];
    for _ in 0..len / MIB {
        fill_noise(&mut buf, &mut seed);
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
}

fn sha256_file(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; MIB as usize];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Both tools must produce the same files, `files` of them.
fn check_same_tree(a: &Path, b: &Path, files: usize) {
    fn sizes(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                sizes(root, &p, out);
            } else {
                out.push((p.strip_prefix(root).unwrap().display().to_string(), m.len()));
            }
        }
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    sizes(a, a, &mut x);
    sizes(b, b, &mut y);
    x.sort();
    y.sort();
    assert_eq!(x.len(), files, "files extracted by berth-fetch");
    assert_eq!(
        x, y,
        "berth-fetch and the pipeline extracted different trees"
    );
}
