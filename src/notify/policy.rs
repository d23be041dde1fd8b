//! Which callback URLs tenderflow will call: the scheme, the host against
//! `notify.allowed_hosts`, and, at connection time, the addresses a name
//! resolves to. A callback URL comes from whoever submits a task, so without
//! these checks tenderflow could be made to POST into its own network
//! (server-side request forgery).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

use crate::config::NotifySettings;

/// Why a callback URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    #[error("the scheme must be {allowed}, not {found}")]
    Scheme {
        found: String,
        allowed: &'static str,
    },
    #[error("the URL names no host")]
    NoHost,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("callbacks are disabled: notify.allowed_hosts is empty")]
    Disabled,
    #[error("host {0} is not in notify.allowed_hosts")]
    Host(String),
    #[error(
        "host {host} resolves to {addr}, a loopback, private or link-local address not in notify.allowed_hosts"
    )]
    Address { host: String, addr: IpAddr },
    #[error("host {0} resolves to no address")]
    Unresolved(String),
}

/// The configured callback policy.
#[derive(Debug, Clone)]
pub struct CallbackPolicy {
    /// Lower-cased entries of `notify.allowed_hosts`.
    hosts: Arc<Vec<String>>,
    allow_http: bool,
}

impl CallbackPolicy {
    /// The policy of `settings`.
    pub fn from_settings(settings: &NotifySettings) -> CallbackPolicy {
        CallbackPolicy {
            hosts: Arc::new(
                settings
                    .allowed_hosts
                    .iter()
                    .map(|h| h.trim().trim_matches(['[', ']']).to_ascii_lowercase())
                    .collect(),
            ),
            allow_http: settings.allow_http,
        }
    }

    /// Checks what can be checked without resolving: the scheme, no
    /// credentials, the host on the list. An IP address is allowed only
    /// when listed itself.
    pub fn check(&self, url: &str) -> Result<Url, Refused> {
        let parsed = Url::parse(url).map_err(|_| Refused::NotAUrl(url.to_string()))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => {
                return Err(Refused::Scheme {
                    found: other.to_string(),
                    allowed: if self.allow_http {
                        "https or http"
                    } else {
                        "https"
                    },
                });
            }
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refused::Credentials);
        }
        if self.hosts.is_empty() {
            return Err(Refused::Disabled);
        }
        let host = match parsed.host() {
            None => return Err(Refused::NoHost),
            Some(Host::Domain(name)) => name.to_ascii_lowercase(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
        };
        if !self.host_listed(&host) {
            return Err(Refused::Host(host));
        }
        Ok(parsed)
    }

    /// Whether `host` (a lower-case name or an address) is on the list,
    /// exactly or under a `*.` entry.
    fn host_listed(&self, host: &str) -> bool {
        self.hosts
            .iter()
            .any(|entry| match entry.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
                None => entry == host,
            })
    }

    /// Whether a connection to `addr` is allowed for a listed name: any
    /// public address, and a non-public one only when listed itself.
    fn address_allowed(&self, addr: IpAddr) -> bool {
        is_public(addr) || self.hosts.iter().any(|h| h.parse::<IpAddr>() == Ok(addr))
    }

    /// The addresses of `host` a callback may connect to: every address it
    /// resolves to that [`CallbackPolicy::address_allowed`]; refused when
    /// none is.
    pub fn filter_addresses(
        &self,
        host: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refused> {
        let mut refused = None;
        let mut allowed = Vec::new();
        for addr in resolved {
            if self.address_allowed(addr.ip()) {
                allowed.push(addr);
            } else {
                refused.get_or_insert(addr.ip());
            }
        }
        match (allowed.is_empty(), refused) {
            (false, _) => Ok(allowed),
            (true, Some(addr)) => Err(Refused::Address {
                host: host.to_string(),
                addr,
            }),
            (true, None) => Err(Refused::Unresolved(host.to_string())),
        }
    }
}

/// Whether `addr` is reachable on the public internet: not loopback,
/// private, shared (carrier NAT), link-local, unspecified, broadcast,
/// documentation, benchmarking, reserved, multicast or unique-local.
pub fn is_public(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 198 && (b == 18 || b == 19)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// The HTTP client's resolver: resolves with the system's resolver, then
/// keeps only the addresses the policy allows, so the connection goes to a
/// checked address and a name cannot be pointed at the inside between the
/// check and the connect.
#[derive(Debug, Clone)]
pub struct CheckedResolver {
    pub policy: CallbackPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_ascii_lowercase();
        Box::pin(async move {
            if !policy.host_listed(&host) {
                return Err(Box::new(Refused::Host(host)) as _);
            }
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed = policy.filter_addresses(&host, resolved)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], allow_http: bool) -> CallbackPolicy {
        CallbackPolicy {
            hosts: Arc::new(hosts.iter().map(|h| h.to_string()).collect()),
            allow_http,
        }
    }

    #[test]
    fn only_listed_hosts_with_the_allowed_schemes_pass() {
        let p = policy(&["hooks.example.com", "*.partner.org", "10.0.0.5"], false);
        assert!(p.check("https://hooks.example.com/tenders?x=1").is_ok());
        assert!(p.check("https://HOOKS.example.com:8443/t").is_ok());
        assert!(p.check("https://a.b.partner.org/t").is_ok());
        assert!(p.check("https://10.0.0.5/t").is_ok());
        assert_eq!(
            p.check("https://partner.org/t"),
            Err(Refused::Host("partner.org".into()))
        );
        assert_eq!(
            p.check("https://evilpartner.org/t"),
            Err(Refused::Host("evilpartner.org".into()))
        );
        assert_eq!(
            p.check("https://hooks.example.com.evil.net/"),
            Err(Refused::Host("hooks.example.com.evil.net".into()))
        );
        assert_eq!(
            p.check("http://hooks.example.com/t"),
            Err(Refused::Scheme {
                found: "http".into(),
                allowed: "https"
            })
        );
        assert!(matches!(
            p.check("file:///etc/passwd"),
            Err(Refused::Scheme { .. })
        ));
        assert_eq!(
            p.check("https://user:pw@hooks.example.com/"),
            Err(Refused::Credentials)
        );
        assert_eq!(
            p.check("https://127.0.0.1/"),
            Err(Refused::Host("127.0.0.1".into()))
        );
        // Another spelling of the loopback address is still not listed.
        assert!(p.check("https://2130706433/").is_err());
        assert!(matches!(p.check("not a url"), Err(Refused::NotAUrl(_))));
        assert!(policy(&["h"], true).check("http://h/").is_ok());
        assert_eq!(
            policy(&[], true).check("https://h/"),
            Err(Refused::Disabled)
        );
    }

    #[test]
    fn a_listed_name_may_not_resolve_to_an_inside_address_unless_it_is_listed() {
        let p = policy(&["hooks.example.com", "10.0.0.5"], false);
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 443);
        assert_eq!(
            p.filter_addresses("hooks.example.com", [at("93.184.216.34")]),
            Ok(vec![at("93.184.216.34")])
        );
        assert_eq!(
            p.filter_addresses("hooks.example.com", [at("127.0.0.1")]),
            Err(Refused::Address {
                host: "hooks.example.com".into(),
                addr: "127.0.0.1".parse().unwrap()
            })
        );
        // Only the allowed addresses are kept.
        assert_eq!(
            p.filter_addresses(
                "hooks.example.com",
                [at("169.254.169.254"), at("10.0.0.5"), at("192.168.1.1")]
            ),
            Ok(vec![at("10.0.0.5")])
        );
        assert_eq!(
            p.filter_addresses("hooks.example.com", []),
            Err(Refused::Unresolved("hooks.example.com".into()))
        );
    }

    #[test]
    fn inside_addresses_are_not_public() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
        ] {
            assert!(!is_public(inside.parse().unwrap()), "{inside}");
        }
        for outside in ["93.184.216.34", "8.8.8.8", "2606:2800:220:1::1"] {
            assert!(is_public(outside.parse().unwrap()), "{outside}");
        }
    }
}
