//! How far a container's output has been consumed, in terms Docker's `since` understands.
//!
//! Docker replays a container's log from a `since` time: every entry whose timestamp is at or
//! after it, in the order the entries sit in its log file. Entries of one stream carry
//! non-decreasing timestamps (one reader per stream stamps them), but stdout and stderr entries can
//! be slightly out of order with each other. Resuming at the newest timestamp written could
//! therefore skip an entry of the other stream that was stamped a little earlier but not yet
//! received, and resuming there would also repeat entries stamped exactly then.
//!
//! So the position is an *anchor* one whole second before the newest second written, and, per
//! stream, the number of bytes written from entries stamped at or after the anchor. A replay from
//! `since = anchor` yields exactly those bytes first (per stream, in order), then new ones: the
//! logger skips the counted bytes and writes the rest. Nothing is lost or repeated provided no
//! entry reaches Docker's log file more than a second after an entry of the other stream that was
//! stamped later, and the host clock does not step back. Only two one-second buckets are kept,
//! so the position is a few dozen bytes however fast the container writes.
//!
//! A live source without timestamps (Docker's attach stream, read from before the container
//! starts) gives no anchor. For it the position also counts, per stream, the bytes consumed since
//! the output's first byte (`offsets`): while no chunk had a timestamp, a replay from the start
//! begins with exactly those bytes. Timestamps of the bytes such a replay skips are recorded
//! ([`Position::record_replayed`]), so once it has gone past them the anchor is valid again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::OutputStream;

/// Bytes written per stream from entries stamped within one whole second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Bucket {
    /// Unix second.
    pub sec: u64,
    /// Bytes of stdout stamped in that second.
    pub stdout: u64,
    /// Bytes of stderr stamped in that second.
    pub stderr: u64,
}

impl Bucket {
    fn add(&mut self, stream: OutputStream, n: u64) {
        match stream {
            OutputStream::Stdout => self.stdout += n,
            OutputStream::Stderr => self.stderr += n,
        }
    }
}

/// A time written in a checkpoint, exact to the nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct UnixTime {
    /// Whole seconds since the Unix epoch.
    pub secs: u64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl UnixTime {
    pub fn from_system(t: SystemTime) -> Option<UnixTime> {
        let d = t.duration_since(UNIX_EPOCH).ok()?;
        Some(UnixTime {
            secs: d.as_secs(),
            nanos: d.subsec_nanos(),
        })
    }

    pub fn to_system(self) -> SystemTime {
        UNIX_EPOCH + Duration::new(self.secs, self.nanos.min(999_999_999))
    }
}

/// The consumed position of a container's output (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// Buckets for the seconds at or after the anchor, oldest first (at most two).
    buckets: Vec<Bucket>,
    /// The newest timestamp written, per stream (indexed by [`OutputStream::index`]).
    newest: [Option<UnixTime>; 2],
    /// Bytes consumed per stream since the output's first byte (absent in checkpoints of
    /// earlier versions, which resumed by timestamp only).
    #[serde(default)]
    offsets: [u64; 2],
    /// The first [`PREFIX_LEN`] bytes of each stream: a replay from the start must begin with
    /// them, else the source no longer has the output's beginning.
    #[serde(default)]
    prefix: [Vec<u8>; 2],
    /// Whether the offsets count from the output's first byte (false once a resume had to give
    /// them up, see [`Position::give_up_offsets`]).
    #[serde(default = "yes")]
    from_start: bool,
}

impl Default for Position {
    fn default() -> Position {
        Position {
            buckets: Vec::new(),
            newest: [None, None],
            offsets: [0, 0],
            prefix: [Vec::new(), Vec::new()],
            from_start: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// How many of each stream's first bytes a position keeps.
pub(crate) const PREFIX_LEN: usize = 32;

impl Position {
    /// Accounts for `n` bytes of `stream` stamped `timestamp` that were consumed (written, or
    /// deliberately dropped).
    pub fn record(&mut self, stream: OutputStream, timestamp: Option<SystemTime>, data: &[u8]) {
        let i = stream.index();
        if self.from_start && self.offsets[i] < PREFIX_LEN as u64 {
            let want = PREFIX_LEN - self.prefix[i].len();
            self.prefix[i].extend_from_slice(&data[..want.min(data.len())]);
        }
        self.offsets[i] += data.len() as u64;
        self.record_time(stream, timestamp, data.len() as u64);
    }

    /// The first bytes of each stream consumed, when a replay is to start at the output's first
    /// byte (see [`Self::resumes_from_start`]) and has bytes to skip.
    pub fn start_prefixes(&self) -> Option<[&[u8]; 2]> {
        (self.resumes_from_start() && self.offsets.iter().any(|&n| n > 0))
            .then(|| [&self.prefix[0][..], &self.prefix[1][..]])
    }

    /// The source no longer starts at the output's first byte: resume by timestamp from now on
    /// (the caller picks the `since`), never again by offsets.
    pub fn give_up_offsets(&mut self) {
        self.from_start = false;
    }

    /// Accounts for `n` bytes of `stream` stamped `timestamp` that a replay from the start
    /// delivered again and that were already consumed (counted in the offsets): only their
    /// timestamp moves the anchor.
    pub fn record_replayed(&mut self, stream: OutputStream, timestamp: Option<SystemTime>, n: u64) {
        self.record_time(stream, timestamp, n);
    }

    fn record_time(&mut self, stream: OutputStream, timestamp: Option<SystemTime>, n: u64) {
        let Some(t) = timestamp.and_then(UnixTime::from_system) else {
            return;
        };
        let newest = &mut self.newest[stream.index()];
        if newest.is_none_or(|n| t > n) {
            *newest = Some(t);
        }
        let anchor = self.anchor_sec().expect("newest is set");
        self.buckets.retain(|b| b.sec >= anchor);
        if t.secs < anchor {
            // Stamped before the anchor: a replay from the anchor will not contain it.
            return;
        }
        match self.buckets.iter_mut().find(|b| b.sec == t.secs) {
            Some(b) => b.add(stream, n),
            None => {
                let mut b = Bucket {
                    sec: t.secs,
                    stdout: 0,
                    stderr: 0,
                };
                b.add(stream, n);
                self.buckets.push(b);
                self.buckets.sort_by_key(|b| b.sec);
            }
        }
    }

    fn newest_overall(&self) -> Option<UnixTime> {
        self.newest[0].max(self.newest[1])
    }

    fn anchor_sec(&self) -> Option<u64> {
        self.newest_overall().map(|n| n.secs.saturating_sub(1))
    }

    /// The `since` a replay must start from, or `None` to replay from the beginning.
    pub fn resume_since(&self) -> Option<SystemTime> {
        if self.resumes_from_start() {
            return None;
        }
        self.anchor_sec()
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }

    /// Bytes per stream (indexed by [`OutputStream::index`]) that a replay from
    /// [`Self::resume_since`] starts with and that were already consumed: the counts of the
    /// anchor's buckets, or, while no timestamp was ever consumed (a replay from the start), the
    /// offsets.
    pub fn replayed_bytes(&self) -> [u64; 2] {
        if self.resumes_from_start() {
            return self.offsets;
        }
        self.buckets
            .iter()
            .fold([0, 0], |[o, e], b| [o + b.stdout, e + b.stderr])
    }

    /// Whether a replay must start at the output's first byte, skipping [`Self::offsets`]: no
    /// timestamp was consumed yet, or a stream's consumed bytes all came untimed (its bytes
    /// are then not placed in time, and the anchor would miss or repeat them). Once every
    /// stream with consumed bytes has a timestamp, the anchor is used.
    pub fn resumes_from_start(&self) -> bool {
        self.from_start
            && (self.newest_overall().is_none()
                || (0..2).any(|i| self.offsets[i] > 0 && self.newest[i].is_none()))
    }

    /// Bytes consumed per stream since the output's first byte.
    pub fn offsets(&self) -> [u64; 2] {
        self.offsets
    }

    /// The newest timestamp consumed.
    pub fn newest(&self) -> Option<SystemTime> {
        self.newest_overall().map(UnixTime::to_system)
    }

    /// Whether a chunk of `stream` is stamped strictly before bytes already consumed from that
    /// stream. Docker stamps one stream's entries in order, so this means the source repeated
    /// output (or the clock stepped back).
    pub fn is_older(&self, stream: OutputStream, timestamp: Option<SystemTime>) -> bool {
        match (
            timestamp.and_then(UnixTime::from_system),
            self.newest[stream.index()],
        ) {
            (Some(t), Some(n)) => t < n,
            _ => false,
        }
    }

    /// Whether a chunk of `stream` stamped `timestamp` is certainly new: stamped after everything
    /// consumed from that stream, so it cannot be part of a replay.
    pub fn is_new(&self, stream: OutputStream, timestamp: Option<SystemTime>) -> bool {
        match (
            timestamp.and_then(UnixTime::from_system),
            self.newest[stream.index()],
        ) {
            (Some(t), Some(n)) => t > n,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::new(secs, nanos))
    }

    #[test]
    fn fresh_position_replays_everything() {
        let p = Position::default();
        assert_eq!(p.resume_since(), None);
        assert_eq!(p.replayed_bytes(), [0, 0]);
    }

    #[test]
    fn anchor_is_one_second_before_the_newest_second() {
        let mut p = Position::default();
        p.record(OutputStream::Stdout, at(100, 5), &[b'x'; 10]);
        p.record(OutputStream::Stderr, at(100, 900_000_000), &[b'x'; 3]);
        assert_eq!(p.resume_since(), at(99, 0));
        assert_eq!(p.replayed_bytes(), [10, 3]);
        p.record(OutputStream::Stdout, at(101, 1), &[b'x'; 7]);
        assert_eq!(p.resume_since(), at(100, 0));
        assert_eq!(p.replayed_bytes(), [17, 3]);
        p.record(OutputStream::Stdout, at(102, 0), &[b'x'; 1]);
        assert_eq!(p.resume_since(), at(101, 0));
        assert_eq!(p.replayed_bytes(), [8, 0]);
        assert_eq!(p.newest(), at(102, 0));
    }

    #[test]
    fn slightly_late_entries_of_the_other_stream_are_counted() {
        let mut p = Position::default();
        p.record(OutputStream::Stdout, at(200, 10), &[b'x'; 4]);
        // stderr stamped earlier, arriving later, still inside the anchor window
        p.record(OutputStream::Stderr, at(199, 999_999_999), &[b'x'; 5]);
        assert_eq!(p.replayed_bytes(), [4, 5]);
        // stamped before the anchor: Docker will not replay it, so it is not counted
        p.record(OutputStream::Stderr, at(198, 0), &[b'x'; 6]);
        assert_eq!(p.replayed_bytes(), [4, 5]);
        assert_eq!(p.newest(), at(200, 10));
    }

    #[test]
    fn only_chunks_newer_than_their_stream_are_certainly_new() {
        let mut p = Position::default();
        assert!(p.is_new(OutputStream::Stdout, at(1, 0)));
        assert!(!p.is_new(OutputStream::Stdout, None));
        p.record(OutputStream::Stdout, at(100, 5), &[b'x'; 1]);
        assert!(!p.is_new(OutputStream::Stdout, at(100, 5)));
        assert!(p.is_new(OutputStream::Stdout, at(100, 6)));
        assert!(p.is_new(OutputStream::Stderr, at(50, 0)));
        assert!(p.is_older(OutputStream::Stdout, at(100, 4)));
        assert!(!p.is_older(OutputStream::Stdout, at(100, 5)));
        assert!(!p.is_older(OutputStream::Stdout, None));
        assert!(!p.is_older(OutputStream::Stderr, at(1, 0)));
    }

    #[test]
    fn untimed_bytes_only_move_the_offsets() {
        let mut p = Position::default();
        p.record(OutputStream::Stdout, None, &[b'x'; 4]);
        p.record(OutputStream::Stderr, None, &[b'x'; 2]);
        assert_eq!(p.resume_since(), None);
        assert_eq!(p.offsets(), [4, 2]);
        assert_eq!(
            p.replayed_bytes(),
            [4, 2],
            "a replay from the start skips them"
        );
    }

    #[test]
    fn a_replay_from_the_start_makes_the_anchor_valid() {
        let mut p = Position::default();
        p.record(OutputStream::Stdout, None, &[b'x'; 10]);
        // The replay from the start: the first 10 bytes are skipped, then 3 new ones.
        p.record_replayed(OutputStream::Stdout, at(100, 1), 6);
        p.record_replayed(OutputStream::Stdout, at(101, 1), 4);
        p.record(OutputStream::Stdout, at(101, 2), &[b'x'; 3]);
        assert_eq!(p.offsets(), [13, 0]);
        assert_eq!(p.resume_since(), at(100, 0));
        assert_eq!(p.replayed_bytes(), [13, 0]);
    }

    #[test]
    fn a_stream_still_untimed_keeps_the_replay_at_the_start() {
        let mut p = Position::default();
        p.record(OutputStream::Stdout, None, &[b'x'; 10]);
        p.record(OutputStream::Stderr, None, &[b'x'; 5]);
        // The replay from the start has passed stdout's bytes but not stderr's yet (Docker
        // holds a partial line back until its newline or the exit).
        p.record_replayed(OutputStream::Stdout, at(100, 1), 10);
        p.record(OutputStream::Stdout, at(100, 2), &[b'x'; 3]);
        assert!(p.resumes_from_start());
        assert_eq!(p.resume_since(), None);
        assert_eq!(p.replayed_bytes(), [13, 5]);
        p.record_replayed(OutputStream::Stderr, at(103, 0), 5);
        assert!(!p.resumes_from_start());
        assert_eq!(p.resume_since(), at(102, 0));
        assert_eq!(p.replayed_bytes(), [0, 5]);
    }

    #[test]
    fn the_first_bytes_are_kept_for_a_replay_from_the_start() {
        let mut p = Position::default();
        assert_eq!(p.start_prefixes(), None, "nothing to skip");
        p.record(OutputStream::Stdout, None, b"hello ");
        p.record(OutputStream::Stdout, None, &[b'w'; 40]);
        let [out, err] = p.start_prefixes().unwrap();
        assert_eq!(out.len(), PREFIX_LEN);
        assert!(out.starts_with(b"hello www"));
        assert!(err.is_empty());
        p.give_up_offsets();
        assert_eq!(p.start_prefixes(), None);
        assert!(!p.resumes_from_start());
        assert_eq!(
            p.replayed_bytes(),
            [0, 0],
            "nothing to skip by count any more"
        );
        let back: Position = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn checkpoints_without_offsets_still_parse() {
        let old =
            r#"{"buckets":[{"sec":5,"stdout":1,"stderr":0}],"newest":[{"secs":5,"nanos":0},null]}"#;
        let p: Position = serde_json::from_str(old).unwrap();
        assert_eq!(p.offsets(), [0, 0]);
        assert_eq!(p.replayed_bytes(), [1, 0]);
    }

    #[test]
    fn round_trips_through_json() {
        let mut p = Position::default();
        p.record(OutputStream::Stdout, at(300, 123_456_789), &[b'x'; 4]);
        let back: Position = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
