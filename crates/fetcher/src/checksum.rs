//! Expected digests (`sha256:<hex>`) and the streaming hasher that checks them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::FetchError;

/// An expected digest of a URI's bytes, written `<algorithm>:<hex>`.
///
/// Only SHA-256 exists today; the enum leaves room for more algorithms without changing the
/// textual form.
///
/// ```
/// use berth_fetcher::Checksum;
/// let c: Checksum = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().unwrap();
/// assert_eq!(c.algorithm(), "sha256");
/// assert!("md5:abcd".parse::<Checksum>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Checksum {
    /// A SHA-256 digest.
    Sha256([u8; 32]),
}

impl Checksum {
    /// The algorithm's name as used in the textual form.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "sha256",
        }
    }

    /// The raw digest bytes.
    pub fn digest(&self) -> &[u8] {
        match self {
            Checksum::Sha256(d) => d,
        }
    }

    /// A hasher for this checksum's algorithm.
    pub(crate) fn hasher(&self) -> Hasher {
        match self {
            Checksum::Sha256(_) => Hasher::sha256(),
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm(), hex::encode(self.digest()))
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Checksum {
    type Err = FetchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| FetchError::InvalidChecksum {
            value: s.to_string(),
            reason,
        };
        let (algo, hex_part) = s
            .split_once(':')
            .ok_or_else(|| err("expected '<algorithm>:<hex digest>', e.g. 'sha256:…'".into()))?;
        match algo.to_ascii_lowercase().as_str() {
            "sha256" => {
                if hex_part.len() != 64 {
                    return Err(err(format!(
                        "a sha256 digest has 64 hex digits, this one has {}",
                        hex_part.len()
                    )));
                }
                let mut out = [0u8; 32];
                hex::decode_to_slice(hex_part, &mut out)
                    .map_err(|e| err(format!("not hexadecimal: {e}")))?;
                Ok(Checksum::Sha256(out))
            }
            other => Err(err(format!(
                "unknown algorithm '{other}' (supported: sha256)"
            ))),
        }
    }
}

impl Serialize for Checksum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Checksum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Streaming digest state, fed chunk by chunk as bytes arrive.
pub(crate) enum Hasher {
    Sha256(Box<Sha256>),
}

impl Hasher {
    pub(crate) fn sha256() -> Self {
        Hasher::Sha256(Box::default())
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub(crate) fn finish(self) -> Checksum {
        match self {
            Hasher::Sha256(h) => Checksum::Sha256(h.finalize().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_input() {
        let text = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let c: Checksum = text.parse().unwrap();
        assert_eq!(c.to_string(), text);
        let upper: Checksum = text
            .to_uppercase()
            .replacen("SHA256", "sha256", 1)
            .parse()
            .unwrap();
        assert_eq!(upper, c);
        let mut h = c.hasher();
        h.update(b"");
        assert_eq!(h.finish(), c);

        let e = "sha256:abc".parse::<Checksum>().unwrap_err().to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        let e = "md5:abc".parse::<Checksum>().unwrap_err().to_string();
        assert!(e.contains("unknown algorithm 'md5'"), "{e}");
        let e = "e3b0".parse::<Checksum>().unwrap_err().to_string();
        assert!(e.contains("<algorithm>:<hex digest>"), "{e}");
        let bad = format!("sha256:{}", "zz".repeat(32));
        assert!(bad
            .parse::<Checksum>()
            .unwrap_err()
            .to_string()
            .contains("not hexadecimal"));
    }
}
