//! Target users: name resolution, read-permission checks for local sources, and chown.
//!
//! Users are read from `/etc/passwd` and `/etc/group` (no NSS), or given as `uid[:gid]`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{FetchError, Result};

/// A resolved account the fetched files are for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Supplementary groups, plus the primary one.
    pub(crate) groups: Vec<u32>,
}

impl Account {
    /// Resolves a user name (or `uid[:gid]`).
    pub(crate) fn lookup(user: &str) -> Result<Account> {
        Self::lookup_in(user, Path::new("/etc/passwd"), Path::new("/etc/group"))
    }

    fn lookup_in(user: &str, passwd: &Path, group: &Path) -> Result<Account> {
        let err = |reason: String| FetchError::User {
            user: user.to_string(),
            reason,
        };
        let passwd_text = fs::read_to_string(passwd)
            .map_err(|e| err(format!("cannot read {}: {e}", passwd.display())))?;
        let mut found = None;
        for line in passwd_text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 4 && f[0] == user {
                let uid = f[2].parse().map_err(|_| err("bad uid in passwd".into()))?;
                let gid = f[3].parse().map_err(|_| err("bad gid in passwd".into()))?;
                found = Some((user.to_string(), uid, gid));
                break;
            }
        }
        let (name, uid, gid) = match found {
            Some(f) => f,
            None => {
                let (u, g) = match user.split_once(':') {
                    Some((u, g)) => (u, Some(g)),
                    None => (user, None),
                };
                let uid: u32 = u
                    .parse()
                    .map_err(|_| err("no such user in /etc/passwd".into()))?;
                let gid: u32 = match g {
                    Some(g) => g.parse().map_err(|_| err("bad gid".into()))?,
                    None => uid,
                };
                (user.to_string(), uid, gid)
            }
        };
        let mut groups = vec![gid];
        if let Ok(text) = fs::read_to_string(group) {
            for line in text.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                    if let Ok(g) = f[2].parse() {
                        groups.push(g);
                    }
                }
            }
        }
        Ok(Account {
            name,
            uid,
            gid,
            groups,
        })
    }

    fn allowed(&self, meta: &fs::Metadata, bit: u32) -> bool {
        if self.uid == 0 {
            return true;
        }
        let mode = meta.mode();
        if meta.uid() == self.uid {
            mode & (bit << 6) != 0
        } else if self.groups.contains(&meta.gid()) {
            mode & (bit << 3) != 0
        } else {
            mode & bit != 0
        }
    }

    /// Whether this account could open `path` for reading: search permission on every
    /// directory above it and read permission on the file (mode bits only; ACLs are not read).
    pub(crate) fn can_read(&self, path: &Path) -> bool {
        let mut cur = PathBuf::new();
        let comps: Vec<_> = path.components().collect();
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            let Ok(meta) = fs::metadata(&cur) else {
                return true; // let the open report "not found"
            };
            let last = i + 1 == comps.len();
            let bit = if last { 0o4 } else { 0o1 };
            if !self.allowed(&meta, bit) {
                return false;
            }
        }
        true
    }
}

/// Who the fetched files should belong to, if anyone in particular.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Whether this process may give files away (it runs as root).
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        fs::write(
            &passwd,
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/h:/bin/sh\n",
        )
        .unwrap();
        fs::write(&group, "staff:x:50:alice,bob\nother:x:60:bob\n").unwrap();
        let a = Account::lookup_in("alice", &passwd, &group).unwrap();
        assert_eq!((a.uid, a.gid), (1000, 1000));
        assert_eq!(a.groups, vec![1000, 50]);
        let n = Account::lookup_in("123:45", &passwd, &group).unwrap();
        assert_eq!((n.uid, n.gid), (123, 45));
        let e = Account::lookup_in("nosuchuser", &passwd, &group)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such user"), "{e}");
    }
}
