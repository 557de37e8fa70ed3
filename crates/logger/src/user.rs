//! Resolving the container's user, who should own its log files.
//!
//! The agent runs as root and writes the files itself, so it hands them to the user afterwards
//! (`fchown`) rather than running a helper as that user. Names are looked up in the host's
//! `/etc/passwd` and `/etc/group` (plain files: no NSS, no unsafe code).

use std::fs;

use crate::error::LoggerError;

/// A numeric owner for files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Resolves `user` given as `name`, `uid`, `name:group`, `uid:gid` (or any mix) against the host's
/// account files. A user without a group gets its primary group from `/etc/passwd`, or group 0 for
/// a numeric uid that has no entry (as Docker does).
pub fn resolve(user: &str) -> Result<Owner, LoggerError> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    resolve_in(user, &passwd, &group)
}

pub(crate) fn resolve_in(user: &str, passwd: &str, group: &str) -> Result<Owner, LoggerError> {
    let unknown = |reason: String| LoggerError::UnknownUser {
        user: user.to_owned(),
        reason,
    };
    let (name, grp) = match user.split_once(':') {
        Some((n, g)) => (n, Some(g)),
        None => (user, None),
    };
    if name.is_empty() {
        return Err(unknown("empty user name".into()));
    }
    // name:x:uid:gid:...
    let entries = || {
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(|f| f.len() >= 4)
    };
    let (uid, primary_gid) = match name.parse::<u32>() {
        Ok(uid) => {
            let gid = entries()
                .find(|f| f[2].parse() == Ok(uid))
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(0);
            (uid, gid)
        }
        Err(_) => {
            let f = entries()
                .find(|f| f[0] == name)
                .ok_or_else(|| unknown("no such user in /etc/passwd".into()))?;
            let uid = f[2]
                .parse()
                .map_err(|_| unknown(format!("bad uid `{}` in /etc/passwd", f[2])))?;
            let gid = f[3]
                .parse()
                .map_err(|_| unknown(format!("bad gid `{}` in /etc/passwd", f[3])))?;
            (uid, gid)
        }
    };
    let gid = match grp {
        None => primary_gid,
        Some("") => return Err(unknown("empty group name".into())),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| unknown(format!("no such group `{g}` in /etc/group")))?,
        },
    };
    Ok(Owner { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nalice:x:1000:1001::/home/alice:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\nnogroup:x:65534:\n";

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(
            resolve_in("alice", PASSWD, GROUP).unwrap(),
            Owner {
                uid: 1000,
                gid: 1001
            }
        );
        assert_eq!(
            resolve_in("alice:staff", PASSWD, GROUP).unwrap(),
            Owner { uid: 1000, gid: 50 }
        );
        assert_eq!(
            resolve_in("65534", PASSWD, GROUP).unwrap(),
            Owner {
                uid: 65534,
                gid: 65534
            }
        );
        assert_eq!(
            resolve_in("4242", PASSWD, GROUP).unwrap(),
            Owner { uid: 4242, gid: 0 }
        );
        assert_eq!(
            resolve_in("4242:7", PASSWD, GROUP).unwrap(),
            Owner { uid: 4242, gid: 7 }
        );
    }

    #[test]
    fn unknown_names_are_errors_that_say_so() {
        let e = resolve_in("bob", PASSWD, GROUP).unwrap_err().to_string();
        assert!(e.contains("`bob`") && e.contains("/etc/passwd"), "{e}");
        let e = resolve_in("alice:wheel", PASSWD, GROUP)
            .unwrap_err()
            .to_string();
        assert!(e.contains("wheel") && e.contains("/etc/group"), "{e}");
        assert!(resolve_in("", PASSWD, GROUP).is_err());
        assert!(resolve_in("alice:", PASSWD, GROUP).is_err());
    }

    #[test]
    fn the_host_root_user_resolves() {
        assert_eq!(resolve("root").unwrap(), Owner { uid: 0, gid: 0 });
    }
}
