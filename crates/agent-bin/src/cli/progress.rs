//! `berth run`'s launch progress, from the container's `GET_CONTAINERS` `berth` object: a bar
//! per URI being fetched and one for the image pull on a terminal ([`Bars`]), plain lines
//! otherwise ([`Lines`]: a line when something starts or finishes, and at most every
//! [`LINE_INTERVAL`] per URI or pull while bytes flow).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

/// The least time between two plain lines about the same URI or pull.
pub const LINE_INTERVAL: Duration = Duration::from_secs(2);

/// Shows a launch's progress.
pub trait Display: Send {
    /// Shows the latest `berth` object of the container (taken at `now`).
    fn show(&mut self, berth: &Value, now: Instant);
    /// The launch is over: take the display down.
    fn finish(&mut self);
}

/// One URI of `berth.fetch`.
#[derive(Debug, Clone, PartialEq)]
struct Fetch {
    index: u64,
    uri: String,
    phase: String,
    done: u64,
    total: Option<u64>,
    rate: f64,
    eta: Option<f64>,
}

fn fetches(berth: &Value) -> Vec<Fetch> {
    let Some(list) = berth["fetch"].as_array() else {
        return Vec::new();
    };
    list.iter()
        .map(|f| Fetch {
            index: f["index"].as_u64().unwrap_or(0),
            uri: f["uri"].as_str().unwrap_or("?").to_owned(),
            phase: f["phase"].as_str().unwrap_or("").to_owned(),
            done: f["done_bytes"].as_u64().unwrap_or(0),
            total: f["total_bytes"].as_u64(),
            rate: f["rate_bytes_per_sec"].as_f64().unwrap_or(0.0),
            eta: f["eta_secs"].as_f64(),
        })
        .collect()
}

impl Fetch {
    fn finished(&self) -> bool {
        matches!(self.phase.as_str(), "done" | "cached")
    }

    /// E.g. `downloading 1.00 MiB of 4.00 MiB, 512.00 KiB/s, 6s left`.
    fn describe(&self) -> String {
        if self.finished() {
            return format!("{} ({})", self.phase, HumanBytes(self.done));
        }
        let mut s = format!("{} {}", self.phase, HumanBytes(self.done));
        if let Some(t) = self.total {
            s.push_str(&format!(" of {}", HumanBytes(t)));
        }
        if self.rate > 0.0 {
            s.push_str(&format!(", {}/s", HumanBytes(self.rate as u64)));
        }
        if let Some(eta) = self.eta {
            s.push_str(&format!(
                ", {} left",
                HumanDuration(Duration::from_secs_f64(eta))
            ));
        }
        s
    }
}

/// `berth.pull`, with a rate measured between samples.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pull {
    downloaded: u64,
    total: u64,
    extracting: bool,
}

fn pull(berth: &Value) -> Option<Pull> {
    let p = berth.get("pull")?;
    Some(Pull {
        downloaded: p["downloaded_bytes"].as_u64().unwrap_or(0),
        total: p["download_total_bytes"].as_u64().unwrap_or(0),
        extracting: p["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("Extracting")),
    })
}

/// Bytes per second between two samples of a pull.
#[derive(Debug, Default)]
struct Rate {
    last: Option<(Instant, u64)>,
    per_sec: f64,
}

impl Rate {
    fn sample(&mut self, now: Instant, bytes: u64) -> f64 {
        if let Some((t, b)) = self.last {
            let secs = now.saturating_duration_since(t).as_secs_f64();
            if secs >= 0.5 {
                // A little smoothing: samples come every 200 ms and bytes arrive in bursts.
                let r = bytes.saturating_sub(b) as f64 / secs;
                self.per_sec = if self.per_sec == 0.0 {
                    r
                } else {
                    0.5 * self.per_sec + 0.5 * r
                };
                self.last = Some((now, bytes));
            }
        } else {
            self.last = Some((now, bytes));
        }
        self.per_sec
    }
}

fn image_name(berth: &Value) -> String {
    let image = berth["image"].as_str().unwrap_or("the image");
    image.rsplit('/').next().unwrap_or(image).to_owned()
}

/// Plain lines, for when stderr is not a terminal.
pub struct Lines<W> {
    out: W,
    state: Option<String>,
    /// Per URI index: when it was last reported, and whether it was reported finished.
    fetch: HashMap<u64, (Instant, bool)>,
    /// The URIs as last seen while fetching.
    fetching: Vec<Fetch>,
    pull_at: Option<Instant>,
    pull_rate: Rate,
    extracting: bool,
}

impl<W: Write + Send> Lines<W> {
    /// Lines into `out`.
    pub fn new(out: W) -> Lines<W> {
        Lines {
            out,
            state: None,
            fetch: HashMap::new(),
            fetching: Vec::new(),
            pull_at: None,
            pull_rate: Rate::default(),
            extracting: false,
        }
    }

    /// The writer (for tests).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn line(&mut self, text: String) {
        // Progress is best effort: a closed stderr must not fail the run.
        let _ = writeln!(self.out, "berth: {text}");
    }
}

impl<W: Write + Send> Display for Lines<W> {
    fn show(&mut self, berth: &Value, now: Instant) {
        let state = berth["state"].as_str().unwrap_or("").to_owned();
        let entered = self.state.as_deref() != Some(state.as_str());
        let left_fetching = entered && self.state.as_deref() == Some("FETCHING");
        self.state = Some(state.clone());
        if left_fetching && matches!(state.as_str(), "PULLING" | "MOUNTING" | "RUNNING") {
            // The launch moved on, so every URI is in place; the last poll may have missed it.
            for mut f in std::mem::take(&mut self.fetching) {
                if self
                    .fetch
                    .get(&f.index)
                    .is_some_and(|(_, finished)| *finished)
                {
                    continue;
                }
                f.phase = "done".into();
                f.done = f.total.unwrap_or(f.done);
                self.fetch.insert(f.index, (now, true));
                self.line(format!("fetch {}: {}", f.uri, f.describe()));
            }
        }
        match state.as_str() {
            "FETCHING" => {
                self.fetching = fetches(berth);
                for f in self.fetching.clone() {
                    let due = match self.fetch.get(&f.index) {
                        None => true,
                        Some((_, true)) => false,
                        Some((at, false)) => {
                            f.finished() || now.saturating_duration_since(*at) >= LINE_INTERVAL
                        }
                    };
                    if due {
                        self.fetch.insert(f.index, (now, f.finished()));
                        self.line(format!("fetch {}: {}", f.uri, f.describe()));
                    }
                }
            }
            "PULLING" => {
                let Some(p) = pull(berth) else { return };
                let rate = self.pull_rate.sample(now, p.downloaded);
                let name = image_name(berth);
                if entered {
                    self.line(format!("pulling {name}"));
                }
                if p.extracting && !self.extracting {
                    self.extracting = true;
                    self.line(format!("extracting {name}"));
                    return;
                }
                let due = self
                    .pull_at
                    .is_none_or(|at| now.saturating_duration_since(at) >= LINE_INTERVAL);
                if due && p.total > 0 && !p.extracting {
                    self.pull_at = Some(now);
                    let mut text = format!(
                        "pull {name}: {} of {}",
                        HumanBytes(p.downloaded),
                        HumanBytes(p.total)
                    );
                    if rate > 0.0 {
                        let left = p.total.saturating_sub(p.downloaded) as f64 / rate;
                        text.push_str(&format!(
                            ", {}/s, {} left",
                            HumanBytes(rate as u64),
                            HumanDuration(Duration::from_secs_f64(left))
                        ));
                    }
                    self.line(text);
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        let _ = self.out.flush();
    }
}

/// Bars on a terminal: a line for the launch's state, a bar per URI being fetched, one for the
/// pull.
pub struct Bars {
    multi: MultiProgress,
    status: ProgressBar,
    fetch: HashMap<u64, ProgressBar>,
    pull: Option<ProgressBar>,
}

fn bytes_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "  {msg:30!} [{bar:20}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Bars {
    /// Bars on stderr.
    pub fn new() -> Bars {
        let multi = MultiProgress::new();
        let status = multi.add(
            ProgressBar::new_spinner()
                .with_style(spinner_style())
                .with_message("launching"),
        );
        status.enable_steady_tick(Duration::from_millis(120));
        Bars {
            multi,
            status,
            fetch: HashMap::new(),
            pull: None,
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Display for Bars {
    fn show(&mut self, berth: &Value, _now: Instant) {
        match berth["state"].as_str() {
            Some("FETCHING") => {
                self.status.set_message("fetching URIs");
                for f in fetches(berth) {
                    let bar = self.fetch.entry(f.index).or_insert_with(|| {
                        let b = self
                            .multi
                            .add(ProgressBar::new(0).with_style(bytes_style()));
                        let short = f.uri.rsplit('/').next().unwrap_or(&f.uri).to_owned();
                        b.set_message(short);
                        b
                    });
                    bar.set_length(f.total.unwrap_or(f.done));
                    bar.set_position(f.done);
                    if f.finished() && !bar.is_finished() {
                        bar.finish();
                    }
                }
            }
            Some("PULLING") => {
                for b in self.fetch.values().filter(|b| !b.is_finished()) {
                    b.finish();
                }
                let Some(p) = pull(berth) else { return };
                let name = image_name(berth);
                self.status.set_message(format!(
                    "{} {name}",
                    if p.extracting {
                        "extracting"
                    } else {
                        "pulling"
                    }
                ));
                if p.total > 0 {
                    let bar = self.pull.get_or_insert_with(|| {
                        let b = self
                            .multi
                            .add(ProgressBar::new(0).with_style(bytes_style()));
                        b.set_message(name.clone());
                        b
                    });
                    bar.set_length(p.total);
                    bar.set_position(p.downloaded);
                }
            }
            Some("MOUNTING") => self.status.set_message("preparing volumes"),
            _ => {}
        }
    }

    fn finish(&mut self) {
        for b in self.fetch.values().chain(self.pull.iter()) {
            b.finish_and_clear();
        }
        self.status.finish_and_clear();
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fetching(done: u64, phase: &str) -> Value {
        json!({"state": "FETCHING", "fetch": [{
            "index": 0, "uri": "http://h/big.bin", "phase": phase, "done_bytes": done,
            "total_bytes": 4u64 << 20, "rate_bytes_per_sec": 524288.0, "eta_secs": 6.0
        }]})
    }

    fn text(lines: Lines<Vec<u8>>) -> Vec<String> {
        String::from_utf8(lines.into_inner())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn plain_lines_report_fetches_at_most_every_interval_and_once_done() {
        let t0 = Instant::now();
        let mut l = Lines::new(Vec::new());
        l.show(&fetching(1 << 20, "downloading"), t0);
        l.show(
            &fetching(2 << 20, "downloading"),
            t0 + Duration::from_millis(500),
        );
        l.show(&fetching(3 << 20, "downloading"), t0 + LINE_INTERVAL);
        l.show(
            &fetching(4 << 20, "done"),
            t0 + LINE_INTERVAL + Duration::from_millis(200),
        );
        l.show(&fetching(4 << 20, "done"), t0 + 3 * LINE_INTERVAL);
        l.finish();
        let lines = text(l);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(
            lines[0],
            "berth: fetch http://h/big.bin: downloading 1.00 MiB of 4.00 MiB, 512.00 KiB/s, 6 seconds left"
        );
        assert!(lines[1].contains("3.00 MiB of 4.00 MiB"), "{lines:?}");
        assert_eq!(lines[2], "berth: fetch http://h/big.bin: done (4.00 MiB)");
    }

    #[test]
    fn plain_lines_report_the_pull_with_a_measured_rate() {
        let t0 = Instant::now();
        let pulling = |downloaded: u64, status: &str| {
            json!({"state": "PULLING", "image": "127.0.0.1:5301/berth-test/large:latest",
                   "pull": {"downloaded_bytes": downloaded, "download_total_bytes": 10u64 << 20,
                            "status": status}})
        };
        let mut l = Lines::new(Vec::new());
        l.show(&pulling(0, "Downloading"), t0);
        l.show(
            &pulling(1 << 20, "Downloading"),
            t0 + Duration::from_secs(1),
        );
        l.show(&pulling(2 << 20, "Downloading"), t0 + LINE_INTERVAL);
        l.show(&pulling(10 << 20, "Extracting"), t0 + 2 * LINE_INTERVAL);
        l.show(&pulling(10 << 20, "Extracting"), t0 + 3 * LINE_INTERVAL);
        let lines = text(l);
        assert_eq!(lines[0], "berth: pulling large:latest");
        assert_eq!(lines[1], "berth: pull large:latest: 0 B of 10.00 MiB");
        assert_eq!(
            lines[2],
            "berth: pull large:latest: 2.00 MiB of 10.00 MiB, 1.00 MiB/s, 8 seconds left"
        );
        assert_eq!(lines[3], "berth: extracting large:latest");
        assert_eq!(lines.len(), 4, "{lines:?}");
    }

    #[test]
    fn leaving_fetching_reports_the_uris_not_yet_seen_done() {
        let t0 = Instant::now();
        let mut l = Lines::new(Vec::new());
        l.show(&fetching(1 << 20, "downloading"), t0);
        l.show(
            &json!({"state": "RUNNING"}),
            t0 + Duration::from_millis(200),
        );
        let lines = text(l);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1], "berth: fetch http://h/big.bin: done (4.00 MiB)");
        // A launch that failed while fetching claims nothing.
        let mut l = Lines::new(Vec::new());
        l.show(&fetching(1 << 20, "downloading"), t0);
        l.show(
            &json!({"state": "TERMINATED"}),
            t0 + Duration::from_millis(200),
        );
        assert_eq!(text(l).len(), 1);
    }

    #[test]
    fn nothing_is_printed_for_a_launch_without_fetch_or_pull() {
        let mut l = Lines::new(Vec::new());
        l.show(&json!({"state": "MOUNTING"}), Instant::now());
        l.show(&json!({"state": "RUNNING"}), Instant::now());
        assert!(text(l).is_empty());
    }
}
