//! Docker Engine API versions and their negotiation.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A Docker Engine API version such as `1.41`.
///
/// Versions order numerically (`1.9 < 1.41`), which string comparison would get wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// The major number (always 1 so far).
    pub major: u16,
    /// The minor number.
    pub minor: u16,
}

impl ApiVersion {
    /// The newest API version this client speaks (Docker 27.x/28.x understand it).
    pub const CLIENT: ApiVersion = ApiVersion::new(1, 47);
    /// The oldest daemon API version this client accepts (Docker 19.03).
    pub const MINIMUM: ApiVersion = ApiVersion::new(1, 40);

    /// Builds a version from its two numbers.
    pub const fn new(major: u16, minor: u16) -> ApiVersion {
        ApiVersion { major, minor }
    }

    /// The version to use with a daemon that speaks `daemon`: the lower of the daemon's and
    /// [`ApiVersion::CLIENT`]. Fails when the daemon is older than [`ApiVersion::MINIMUM`].
    pub fn negotiate(daemon: ApiVersion) -> Result<ApiVersion, Error> {
        if daemon < ApiVersion::MINIMUM {
            return Err(Error::UnsupportedApiVersion {
                daemon,
                minimum: ApiVersion::MINIMUM,
            });
        }
        Ok(daemon.min(ApiVersion::CLIENT))
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ApiVersion {
    type Err = Error;

    fn from_str(s: &str) -> Result<ApiVersion, Error> {
        let invalid = |reason: &str| Error::InvalidInput {
            what: "API version",
            value: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (major, minor) = s
            .trim()
            .split_once('.')
            .ok_or_else(|| invalid("expected MAJOR.MINOR, e.g. 1.41"))?;
        let major = major
            .parse()
            .map_err(|_| invalid("the major number is not an integer"))?;
        let minor = minor
            .parse()
            .map_err(|_| invalid("the minor number is not an integer"))?;
        Ok(ApiVersion { major, minor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_numerically_not_lexically() {
        let v19: ApiVersion = "1.9".parse().unwrap();
        let v41: ApiVersion = "1.41".parse().unwrap();
        assert!(v19 < v41);
        assert_eq!(v41.to_string(), "1.41");
    }

    #[test]
    fn negotiation_takes_the_lower_and_refuses_old_daemons() {
        assert_eq!(
            ApiVersion::negotiate(ApiVersion::new(1, 41)).unwrap(),
            ApiVersion::new(1, 41)
        );
        assert_eq!(
            ApiVersion::negotiate(ApiVersion::new(1, 50)).unwrap(),
            ApiVersion::CLIENT
        );
        let err = ApiVersion::negotiate(ApiVersion::new(1, 39)).unwrap_err();
        assert!(matches!(err, Error::UnsupportedApiVersion { .. }));
        let text = err.to_string();
        assert!(text.contains("1.39") && text.contains("1.40"), "{text}");
    }

    #[test]
    fn rejects_garbage_with_the_offending_text() {
        let err = "one.two".parse::<ApiVersion>().unwrap_err();
        assert!(err.to_string().contains("one.two"), "{err}");
        assert!("141".parse::<ApiVersion>().is_err());
    }
}
