//! Where the daemon listens: `DOCKER_HOST` parsing and the default socket.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The socket Docker listens on when `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// The port assumed for `tcp://host` without one (Docker's plain-HTTP port).
const DEFAULT_TCP_PORT: u16 = 2375;

/// A Docker daemon endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (`unix:///var/run/docker.sock`).
    Unix(PathBuf),
    /// Plain HTTP over TCP (`tcp://host:port` or `http://host:port`). TLS is not supported.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// Port.
        port: u16,
    },
}

impl Endpoint {
    /// The endpoint `DOCKER_HOST` names, or the default socket when it is unset or empty.
    pub fn from_env() -> Result<Endpoint> {
        match std::env::var("DOCKER_HOST") {
            Ok(value) if !value.trim().is_empty() => Endpoint::parse(&value),
            _ => Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET))),
        }
    }

    /// Parses a `DOCKER_HOST`-style address: `unix:///path`, `tcp://host[:port]`,
    /// `http://host[:port]`, or a bare absolute socket path.
    pub fn parse(value: &str) -> Result<Endpoint> {
        let invalid = |reason: &str| Error::InvalidInput {
            what: "Docker endpoint",
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let value_trimmed = value.trim();
        if let Some(path) = value_trimmed.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(invalid(
                    "a unix:// endpoint needs an absolute path, e.g. unix:///var/run/docker.sock",
                ));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if value_trimmed.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(value_trimmed)));
        }
        let rest = value_trimmed
            .strip_prefix("tcp://")
            .or_else(|| value_trimmed.strip_prefix("http://"))
            .ok_or_else(|| {
                if value_trimmed.starts_with("https://") || value_trimmed.starts_with("ssh://") {
                    invalid(
                        "TLS and SSH endpoints are not supported; use unix://, tcp:// or http://",
                    )
                } else {
                    invalid("expected unix:///path, tcp://host:port or http://host:port")
                }
            })?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(invalid(
                "expected host[:port] after the scheme, without a path",
            ));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| invalid("the port is not a number"))?;
        if host.is_empty() {
            return Err(invalid("the host is empty"));
        }
        Ok(Endpoint::Tcp {
            host: host.to_owned(),
            port: port.unwrap_or(DEFAULT_TCP_PORT),
        })
    }

    /// The value of the `Host` header for requests to this endpoint.
    pub(crate) fn host_header(&self) -> String {
        match self {
            // Docker ignores the Host of socket requests; a fixed name keeps requests small.
            Endpoint::Unix(_) => "docker".to_owned(),
            Endpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
        }
    }
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]`; `None` when the port is not a number.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, Some(port.parse().ok()?))),
            None if after.is_empty() => Some((host, None)),
            None => None,
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp { .. } => write!(f, "tcp://{}", self.host_header()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_and_bare_paths() {
        assert_eq!(
            Endpoint::parse("unix:///var/run/docker.sock").unwrap(),
            Endpoint::Unix("/var/run/docker.sock".into())
        );
        assert_eq!(
            Endpoint::parse("/tmp/d.sock").unwrap(),
            Endpoint::Unix("/tmp/d.sock".into())
        );
        assert!(Endpoint::parse("unix://relative.sock").is_err());
    }

    #[test]
    fn parses_tcp_and_http() {
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.1:2376").unwrap(),
            Endpoint::Tcp {
                host: "10.0.0.1".into(),
                port: 2376
            }
        );
        assert_eq!(
            Endpoint::parse("http://docker.local").unwrap(),
            Endpoint::Tcp {
                host: "docker.local".into(),
                port: 2375
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:9000/").unwrap(),
            Endpoint::Tcp {
                host: "::1".into(),
                port: 9000
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]:9000").unwrap().to_string(),
            "tcp://[::1]:9000"
        );
    }

    #[test]
    fn rejects_unsupported_or_malformed_with_reasons() {
        let err = Endpoint::parse("https://x:2376").unwrap_err().to_string();
        assert!(
            err.contains("https://x:2376") && err.contains("TLS"),
            "{err}"
        );
        let err = Endpoint::parse("tcp://host:port").unwrap_err().to_string();
        assert!(err.contains("not a number"), "{err}");
        assert!(Endpoint::parse("tcp://host:1/path").is_err());
        assert!(Endpoint::parse("tcp://").is_err());
        assert!(Endpoint::parse("npipe:////./pipe/docker").is_err());
    }
}
