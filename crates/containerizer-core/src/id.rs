//! Validated identifiers: [`ContainerId`] and [`AgentId`].
//!
//! Both end up in Docker container names (`<prefix>-<container id>`) and labels, so they are
//! restricted to the characters a Docker name accepts. Validation happens once, at the edge; the
//! rest of the crate can rely on a `ContainerId` being safe to put in a name, a label and a path.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::IdError;

/// Longest identifier accepted (the API's limit; it also keeps `<prefix>-<id>` Docker names and
/// the checkpoint directory's name well under file systems' 255-byte component limit).
pub const MAX_ID_LEN: usize = 128;

/// The one id rule: 1 to [`MAX_ID_LEN`] of `[A-Za-z0-9_.-]`, but not `.` or `..`.
///
/// A leading `-`, `.` or `_` is fine: the Docker name is `<prefix>-<id>` and the prefix starts
/// with a letter or digit, and every other use (label values, directory names) accepts them.
/// Only `.` and `..` would name the wrong directory.
fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    let fail = |reason: String| IdError {
        kind,
        value: value.to_owned(),
        reason,
    };
    if value.is_empty() {
        return Err(fail(format!(
            "it is empty (use 1 to {MAX_ID_LEN} of A-Z a-z 0-9 _ . -)"
        )));
    }
    if value.len() > MAX_ID_LEN {
        return Err(fail(format!(
            "it is {} bytes long; at most {MAX_ID_LEN} are allowed",
            value.len()
        )));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(fail(format!(
            "it contains {bad:?}; only A-Z a-z 0-9 _ . - are allowed"
        )));
    }
    if value == "." || value == ".." {
        return Err(fail(format!(
            "{value:?} is not allowed (it names a directory)"
        )));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value`: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `_`, `.` or `-`,
            /// and not `.` or `..`.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok($name(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A fresh random identifier in UUID v4 form.
            pub fn random() -> Self {
                $name(random_uuid())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                $name::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A Mesos `ContainerID` value, validated so it can name a Docker container and a directory.
    ContainerId,
    "container id"
);

id_type!(
    /// The id of the agent that owns containers; Berth decides ownership by this label, never by
    /// a name prefix alone, so several agents can share one Docker daemon.
    AgentId,
    "agent id"
);

/// A random UUID v4 in its canonical 8-4-4-4-12 lowercase hex form.
fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_uuid_and_mesos_style_ids() {
        for ok in [
            "2b8e7a1c-59f4-4c55-9a0d-5b1f1d0f3e7a",
            "a",
            "task.1_x-y",
            "20240101-S0",
        ] {
            ContainerId::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn boundaries_of_the_rule() {
        // Length: 1 and 128 are in, 0 and 129 are out.
        let max = "x".repeat(MAX_ID_LEN);
        for ok in ["x", max.as_str()] {
            ContainerId::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            AgentId::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let err = ContainerId::new("x".repeat(MAX_ID_LEN + 1)).unwrap_err();
        assert!(
            err.to_string().contains("129 bytes long; at most 128"),
            "{err}"
        );
        // Any first character of the alphabet, and dots other than exactly "." and "..".
        for ok in [".a", "-", "_", "-x", "_x", "...", ".hidden", "..x"] {
            ContainerId::new(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [".", ".."] {
            let err = ContainerId::new(bad).unwrap_err();
            assert!(err.to_string().contains("is not allowed"), "{err}");
        }
    }

    #[test]
    fn rejects_bad_ids_with_the_reason() {
        let cases = [
            ("", "it is empty"),
            ("a/b", "it contains '/'"),
            ("a:b", "it contains ':'"),
            ("a b", "it contains ' '"),
            ("é", "it contains 'é'"),
            ("a\0", "it contains '\\0'"),
            (".", "\".\" is not allowed"),
            ("..", "\"..\" is not allowed"),
        ];
        for (bad, reason) in cases {
            let err = ContainerId::new(bad).unwrap_err();
            assert!(err.to_string().contains(reason), "{bad:?}: {err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("invalid container id {bad:?}: ")),
                "{err}"
            );
        }
        let err = AgentId::new("a/b").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid agent id \"a/b\""),
            "{err}"
        );
    }

    #[test]
    fn random_ids_are_valid_uuids_and_distinct() {
        let a = ContainerId::random();
        let b = ContainerId::random();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 36);
        assert_eq!(&a.as_str()[14..15], "4");
        ContainerId::new(a.as_str()).unwrap();
    }

    #[test]
    fn serde_validates() {
        let id: ContainerId = serde_json::from_str("\"abc\"").unwrap();
        assert_eq!(id.as_str(), "abc");
        let err = serde_json::from_str::<ContainerId>("\"a/b\"").unwrap_err();
        assert!(err.to_string().contains("it contains '/'"), "{err}");
    }
}
