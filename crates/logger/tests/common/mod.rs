//! Helpers shared by the logger's file-level tests (included with `mod`).
#![allow(dead_code)]

use std::fs;
use std::path::Path;

/// The rotated files oldest first, then the current one, concatenated; and how many rotated
/// files exist.
pub fn stream_contents(dir: &Path, name: &str) -> (Vec<u8>, usize) {
    let mut rotated = Vec::new();
    for i in 1.. {
        let p = dir.join(format!("{name}.{i}"));
        if !p.exists() {
            break;
        }
        rotated.push(p);
    }
    let n = rotated.len();
    let mut out = Vec::new();
    for p in rotated.iter().rev() {
        out.extend(fs::read(p).unwrap());
    }
    let cur = dir.join(name);
    if cur.exists() {
        out.extend(fs::read(cur).unwrap());
    }
    (out, n)
}

/// Sizes of `name.1`, `name.2`, ... that exist.
pub fn rotated_sizes(dir: &Path, name: &str) -> Vec<u64> {
    (1..)
        .map(|i| dir.join(format!("{name}.{i}")))
        .take_while(|p| p.exists())
        .map(|p| fs::metadata(p).unwrap().len())
        .collect()
}

/// The names of the entries of `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The checkpoints in the logger's journal in `state_dir`, by container id. Only call it once
/// the logger and its logs are dropped: it opens the journal itself.
pub fn journal_checkpoints(
    state_dir: &Path,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let (_journal, replay) =
        berth_journal::Journal::open(state_dir.join("checkpoints.journal")).unwrap();
    replay
        .entries
        .into_iter()
        .map(|(id, json)| (id, serde_json::from_slice(&json).unwrap()))
        .collect()
}
