//! `berth-fetch`: fetch URIs into a sandbox directory from the command line.
//!
//! Progress and results go to stdout (bars on a terminal, plain lines otherwise); errors go to
//! stderr, one line per failed URI. Exit status 0 means every URI is in place.

use std::collections::HashMap;
use std::io::{IsTerminal, Read};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_fetcher::{Checksum, FetchRequest, Fetcher, LocalSources, Phase, ProgressEvent, UriSpec};
use clap::{ArgGroup, Parser};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Fetch a URI (or a JSON list of URIs) into a sandbox: verified, extracted, cached.
#[derive(Parser, Debug)]
#[command(name = "berth-fetch", version)]
#[command(group(ArgGroup::new("what").required(true).args(["uri", "info"])))]
struct Args {
    /// Directory to fetch into; it and its missing parents are created (mode 755), as Mesos's
    /// fetcher creates them.
    #[arg(long, value_name = "DIR")]
    sandbox: PathBuf,
    /// Cache directory; with it the URI is cached (with --info, each entry's `cache` decides).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Cache size limit, e.g. 2G, 512M, 1048576 (default 2G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    cache_size: Option<u64>,
    /// Do not extract archives.
    #[arg(long, conflicts_with = "info")]
    no_extract: bool,
    /// Make the result executable (mode 755); implies --no-extract.
    #[arg(long, conflicts_with = "info")]
    executable: bool,
    /// Name of the result inside the sandbox (relative).
    #[arg(long, value_name = "PATH", conflicts_with = "info")]
    output_file: Option<String>,
    /// Expected digest, sha256:<64 hex>.
    #[arg(long, value_name = "sha256:HEX", conflicts_with = "info")]
    checksum: Option<Checksum>,
    /// User the files are for (when run as root they are given to this user).
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// Read local sources (paths, file:// URIs) only beneath this directory, following no
    /// link below it (repeatable). Without it, local sources are read anywhere when
    /// berth-fetch runs as an ordinary user (the kernel's permissions apply) and refused when
    /// it runs as root.
    #[arg(long = "allowed-fetch-path", value_name = "DIR")]
    allowed_fetch_paths: Vec<PathBuf>,
    /// The most bytes one URI may have, e.g. 4G (default 4G).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,
    /// JSON list of URIs with the fields value, executable, extract, cache, output_file,
    /// checksum; `-` reads it from stdin.
    #[arg(long, value_name = "FILE")]
    info: Option<String>,
    /// The URI to fetch.
    uri: Option<String>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 2G, 512M, 1048576)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown size unit '{other}' in '{s}' (use K, M, G or T)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn load_specs(args: &Args) -> Result<Vec<UriSpec>, String> {
    if let Some(info) = &args.info {
        let text = if info == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("cannot read --info from stdin: {e}"))?;
            s
        } else {
            std::fs::read_to_string(info)
                .map_err(|e| format!("cannot read --info file '{info}': {e}"))?
        };
        return serde_json::from_str::<Vec<UriSpec>>(&text)
            .map_err(|e| format!("invalid --info JSON (expected a list of URI objects): {e}"));
    }
    let uri = args.uri.clone().unwrap_or_default();
    let mut spec = UriSpec::new(uri)
        .extract(!args.no_extract)
        .executable(args.executable)
        .cache(args.cache_dir.is_some());
    spec.output_file = args.output_file.clone();
    spec.checksum = args.checksum.clone();
    Ok(vec![spec])
}

/// Shows progress: one bar per URI on a terminal, plain lines (at most every 2 s per URI, and
/// at every phase change) otherwise.
enum Display {
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<usize, ProgressBar>>,
    },
    Lines {
        last: Mutex<HashMap<usize, (Phase, Instant)>>,
    },
}

impl Display {
    fn new() -> Display {
        if std::io::stdout().is_terminal() {
            Display::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stdout()),
                bars: Mutex::new(HashMap::new()),
            }
        } else {
            Display::Lines {
                last: Mutex::new(HashMap::new()),
            }
        }
    }

    fn event(&self, ev: &ProgressEvent) {
        match self {
            Display::Bars { multi, bars } => {
                let mut bars = bars.lock().unwrap_or_else(|p| p.into_inner());
                let bar = bars.entry(ev.index).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(0));
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix:.bold} {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b.set_prefix(ev.uri.to_string());
                    b
                });
                if let Some(t) = ev.bytes_total {
                    bar.set_length(t);
                }
                bar.set_position(ev.bytes_done);
                bar.set_message(ev.phase.as_str());
                if ev.phase == Phase::Done {
                    bar.finish();
                }
            }
            Display::Lines { last } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let show = match last.get(&ev.index) {
                    Some((p, t)) => {
                        *p != ev.phase || now.duration_since(*t) >= Duration::from_secs(2)
                    }
                    None => true,
                };
                if !show {
                    return;
                }
                last.insert(ev.index, (ev.phase, now));
                let total = ev
                    .bytes_total
                    .map(|t| format!(" / {}", human(t as f64)))
                    .unwrap_or_default();
                let eta = ev
                    .eta()
                    .filter(|_| ev.phase == Phase::Downloading)
                    .map(|d| format!(", ETA {}s", d.as_secs()))
                    .unwrap_or_default();
                println!(
                    "{}: {} {}{} ({}/s{})",
                    ev.uri,
                    ev.phase.as_str(),
                    human(ev.bytes_done as f64),
                    total,
                    human(ev.rate()),
                    eta
                );
            }
        }
    }
}

/// Creates the sandbox and its missing parents, as Mesos's fetcher does (a recursive
/// `os::mkdir` of the output's directory). The existing part of the path is the caller's and is
/// resolved as usual; each missing component is made with `mkdirat` beneath the one before and
/// entered without following a link, so a name swapped for a link meanwhile is refused, never
/// followed somewhere else.
fn create_sandbox(path: &Path) -> Result<(), String> {
    let fail =
        |e: &dyn std::fmt::Display| format!("cannot create sandbox '{}': {e}", path.display());
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| fail(&format!("cannot read the current directory: {e}")))?
            .join(path)
    };
    let mut existing = abs.as_path();
    let mut missing = Vec::new();
    loop {
        match std::fs::symlink_metadata(existing) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(&format!("'{}': {e}", existing.display()))),
        }
        match existing.components().next_back() {
            Some(Component::Normal(name)) => missing.push(name),
            _ => {
                return Err(fail(
                    &"a missing component is `.` or `..`; give a plain path",
                ))
            }
        }
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut dir = berth_safe_fs::Dir::open(existing)
        .map_err(|e| fail(&format!("'{}': {e}", existing.display())))?;
    for name in missing.into_iter().rev() {
        match dir.create_dir(name, 0o755) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(&format!("'{}': {e}", dir.path().join(name).display()))),
        }
        dir = dir
            .open_dir(name)
            .map_err(|e| fail(&format!("'{}': {e}", dir.path().join(name).display())))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let specs = match load_specs(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-fetch: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = create_sandbox(&args.sandbox) {
        eprintln!("berth-fetch: {e}");
        return ExitCode::FAILURE;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-fetch: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut builder = Fetcher::builder();
    builder = if !args.allowed_fetch_paths.is_empty() {
        builder
            .local_sources(LocalSources::Within(args.allowed_fetch_paths.clone()))
            .local_sources_hint("allow another directory with --allowed-fetch-path DIR")
    } else if rustix::process::geteuid().is_root() {
        // Root reads every file: a URI list written by someone else must not choose which.
        builder.local_sources_hint(
            "berth-fetch runs as root, so local sources need --allowed-fetch-path DIR",
        )
    } else {
        builder.local_sources(LocalSources::Anywhere)
    };
    builder = builder.max_size_hint("raise it with --max-size SIZE if it is expected");
    if let Some(max) = args.max_size {
        builder = builder.max_size(max);
    }
    if let Some(dir) = &args.cache_dir {
        builder = builder.cache_dir(dir);
    }
    if let Some(size) = args.cache_size {
        builder = builder.cache_size(size);
    }
    let fetcher = match builder.build() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("berth-fetch: {e}");
            return ExitCode::FAILURE;
        }
    };
    let display = Arc::new(Display::new());
    let d = display.clone();
    let mut request = FetchRequest::new(&args.sandbox)
        .uris(specs)
        .on_progress(move |ev| d.event(ev));
    if let Some(u) = &args.user {
        request = request.user(u);
    }
    let result = rt.block_on(fetcher.fetch(request));
    if let Display::Bars { multi, .. } = &*display {
        let _ = multi.clear();
    }
    let (fetched, failures) = match result {
        Ok(r) => (r.fetched, Vec::new()),
        Err(f) => (f.fetched, f.failures),
    };
    for f in &fetched {
        println!(
            "fetched {} -> {} ({}{})",
            f.uri,
            f.path.display(),
            f.digest,
            match f.cache {
                berth_fetcher::CacheUse::Hit => ", from cache",
                _ => "",
            }
        );
    }
    for f in &failures {
        eprintln!("berth-fetch: failed to fetch '{}': {}", f.uri, f.error);
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
