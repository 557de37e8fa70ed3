//! Which addresses `http://` and `https://` sources may reach.
//!
//! A fetcher that runs on a host for callers who are not its operator would otherwise be a way
//! into the host's own services (anything listening on loopback) and the cloud's metadata
//! service (link-local): the response lands in the sandbox, readable by the caller. With denied
//! networks set, every address is checked where the connection is made: names through the DNS
//! resolver the HTTP client uses (so the address checked is the address connected to), literal
//! addresses before the request and on every redirect.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// A network, `ADDRESS/PREFIX` (`127.0.0.0/8`, `fe80::/10`); a bare address is one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    /// The host's own and link-local networks: loopback (`127.0.0.0/8`, `::1/128`), link-local
    /// (`169.254.0.0/16` — where cloud metadata services answer — and `fe80::/10`), and the
    /// unspecified addresses (`0.0.0.0/8`, `::/128`, which reach the host too).
    pub fn host_local() -> Vec<Cidr> {
        [
            (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
            (IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16),
            (IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)), 10),
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8),
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128),
        ]
        .into_iter()
        .map(|(addr, prefix)| Cidr { addr, prefix })
        .collect()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `ADDRESS/PREFIX` or a bare address.
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| {
            format!("`{s}` is not a network: expected ADDRESS/PREFIX, e.g. 10.0.0.0/8 or fd00::/8")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix must be a number from 0 to {max}"))?,
        };
        Ok(Cidr {
            addr: addr.to_canonical(),
            prefix,
        })
    }
}

/// The networks `http(s)://` sources may not reach, and the exceptions.
#[derive(Debug, Default)]
pub(crate) struct NetPolicy {
    pub(crate) denied: Vec<Cidr>,
    pub(crate) allowed: Vec<Cidr>,
    pub(crate) hint: Option<String>,
}

/// A connection refused by the policy; carried through the HTTP client's errors.
#[derive(Debug)]
pub(crate) struct Denied {
    pub(crate) host: String,
    pub(crate) reason: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host '{}' {}", self.host, self.reason)
    }
}

impl std::error::Error for Denied {}

impl NetPolicy {
    /// Whether anything is checked at all.
    pub(crate) fn active(&self) -> bool {
        !self.denied.is_empty()
    }

    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|c| c.contains(ip)) || !self.denied.iter().any(|c| c.contains(ip))
    }

    fn reason(&self, addrs: &[IpAddr]) -> String {
        let shown: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        let mut r = format!(
            "reaches only addresses this fetcher may not connect to ({}): the host's own and \
             link-local networks are refused",
            shown.join(", ")
        );
        if let Some(h) = &self.hint {
            r.push_str("; ");
            r.push_str(h);
        }
        r
    }

    /// Checks a host that is a literal address (the resolver never sees those); names pass.
    pub(crate) fn check_literal(&self, host: &url::Host<&str>) -> Result<(), Denied> {
        let ip = match host {
            url::Host::Ipv4(a) => IpAddr::V4(*a),
            url::Host::Ipv6(a) => IpAddr::V6(*a),
            url::Host::Domain(_) => return Ok(()),
        };
        if !self.active() || self.permits(ip) {
            return Ok(());
        }
        Err(Denied {
            host: host.to_string(),
            reason: self.reason(&[ip]),
        })
    }
}

/// The HTTP client's resolver when networks are denied: resolves with the system's resolver and
/// keeps only permitted addresses.
pub(crate) struct Resolver {
    pub(crate) policy: Arc<NetPolicy>,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (ok, denied): (Vec<SocketAddr>, Vec<SocketAddr>) =
                found.into_iter().partition(|a| policy.permits(a.ip()));
            if ok.is_empty() && !denied.is_empty() {
                let ips: Vec<IpAddr> = denied.iter().map(SocketAddr::ip).collect();
                return Err(Box::new(Denied {
                    reason: policy.reason(&ips),
                    host,
                })
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(ok.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Redirects as reqwest's default (at most 10), with every literal address checked.
pub(crate) fn redirect_policy(policy: Arc<NetPolicy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("too many redirects (more than 10)");
        }
        let denied = attempt
            .url()
            .host()
            .map(|h| policy.check_literal(&h))
            .transpose()
            .err();
        match denied {
            Some(d) => attempt.error(d),
            None => attempt.follow(),
        }
    })
}

/// The policy's refusal inside an HTTP client error, if that is what it is.
pub(crate) fn denied_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Denied> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(d) = err.downcast_ref::<Denied>() {
            return Some(d);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let c: Cidr = "127.0.0.0/8".parse().unwrap();
        assert!(c.contains("127.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.contains("128.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one: Cidr = "10.1.2.3".parse().unwrap();
        assert_eq!(one.to_string(), "10.1.2.3/32");
        assert!(one.contains("10.1.2.3".parse().unwrap()));
        assert!(!one.contains("10.1.2.4".parse().unwrap()));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let ll: Cidr = "fe80::/10".parse().unwrap();
        assert!(ll.contains("fe80::1".parse().unwrap()));
        assert!(!ll.contains("fd00::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "x/8", "::/129", "10.0.0.0/-1", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allowed_networks_win_over_denied_ones() {
        let p = NetPolicy {
            denied: Cidr::host_local(),
            allowed: vec!["127.0.0.2/32".parse().unwrap()],
            hint: None,
        };
        for ip in [
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "0.0.0.0",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!p.permits(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.2", "10.0.0.1", "192.0.2.1", "2001:db8::1"] {
            assert!(p.permits(ip.parse().unwrap()), "{ip}");
        }
    }
}
