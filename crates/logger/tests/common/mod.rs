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
