//! [`PrivateAccess`]: who may publish (the `/private` namespace, `POST /api/v1/publish`) and read
//! `/status`.
//!
//! A backend must present the private key (compared in constant time) AND connect from an
//! authorized host. The client address is the TCP peer, unless the peer is a trusted proxy: then
//! `X-Forwarded-For` is read from the right, skipping trusted proxies, and the first other
//! address is the client. A malformed header from a trusted proxy admits nobody.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use super::AuthError;
use crate::config::{Config, IpRange, Secret, any_contains};

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The private key and the host rules.
#[derive(Debug, Clone)]
pub(crate) struct PrivateAccess {
    key: Secret,
    authorized_hosts: Vec<IpRange>,
    trusted_proxies: Vec<IpRange>,
}

impl PrivateAccess {
    /// From a validated config.
    ///
    /// # Panics
    /// Never after [`Config::validate`], which guarantees the key.
    pub(crate) fn from_config(cfg: &Config) -> Self {
        Self {
            // invariant: Config::validate refuses a config without private.key.
            key: cfg.private.key.clone().unwrap_or_else(Secret::generate),
            authorized_hosts: cfg.private.authorized_hosts.clone(),
            trusted_proxies: cfg.trusted_proxies.clone(),
        }
    }

    /// Checks a presented key.
    ///
    /// # Errors
    /// [`AuthError::WrongKey`] when absent or different.
    pub(crate) fn check_key(&self, presented: Option<&str>) -> Result<(), AuthError> {
        match presented {
            Some(key) if self.key.matches(key) => Ok(()),
            _ => Err(AuthError::WrongKey),
        }
    }

    /// Checks that the client behind `peer` is an authorized host.
    ///
    /// # Errors
    /// [`AuthError::HostNotAllowed`].
    pub(crate) fn check_host(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        match self.client_ip(peer, headers) {
            Some(ip) if any_contains(&self.authorized_hosts, ip) => Ok(()),
            Some(ip) => Err(AuthError::HostNotAllowed(ip.to_string())),
            None => Err(AuthError::HostNotAllowed(format!(
                "{} (bad X-Forwarded-For)",
                peer.ip()
            ))),
        }
    }

    /// Both checks, key first (constant-time regardless of the host).
    ///
    /// # Errors
    /// As [`Self::check_key`] and [`Self::check_host`].
    pub(crate) fn admit(
        &self,
        peer: SocketAddr,
        headers: &HeaderMap,
        key: Option<&str>,
    ) -> Result<(), AuthError> {
        let key_ok = self.check_key(key);
        let host_ok = self.check_host(peer, headers);
        key_ok.and(host_ok)
    }

    /// The client address: the peer, or the right-most untrusted `X-Forwarded-For` entry when the
    /// peer is a trusted proxy. `None` when a trusted proxy sent an unparseable header.
    pub(crate) fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> Option<IpAddr> {
        let peer_ip = peer.ip().to_canonical();
        if !any_contains(&self.trusted_proxies, peer_ip) {
            return Some(peer_ip);
        }
        let mut client = peer_ip;
        // Later headers are appended by closer proxies: walk all values from the right.
        let values: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .map(|v| v.to_str().ok())
            .collect::<Option<_>>()?;
        for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
            let ip = parse_forwarded(entry.trim())?.to_canonical();
            client = ip;
            if !any_contains(&self.trusted_proxies, ip) {
                break;
            }
        }
        Some(client)
    }
}

/// An X-Forwarded-For entry: an IP, possibly `[v6]`, possibly with a port.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(trusted: &[&str]) -> PrivateAccess {
        PrivateAccess {
            key: Secret::new("the-private-key"),
            authorized_hosts: vec!["127.0.0.1".parse().unwrap(), "10.1.0.0/16".parse().unwrap()],
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, value.parse().unwrap());
        h
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let a = access(&[]);
        assert!(a.check_host(peer("192.0.2.9"), &xff("127.0.0.1")).is_err());
        assert!(a.check_host(peer("127.0.0.1"), &xff("192.0.2.9")).is_ok());
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies() {
        let a = access(&["192.0.2.1/32"]);
        assert!(a.check_host(peer("192.0.2.1"), &xff("10.1.2.3")).is_ok());
        // The client may prepend anything; only the right-most untrusted entry counts.
        assert!(
            a.check_host(peer("192.0.2.1"), &xff("127.0.0.1, 198.51.100.7"))
                .is_err()
        );
        assert!(a.check_host(peer("192.0.2.1"), &xff("garbage")).is_err());
        assert_eq!(
            a.client_ip(peer("192.0.2.1"), &xff("10.1.2.3, 192.0.2.1")),
            Some("10.1.2.3".parse().unwrap())
        );
    }

    #[test]
    fn mapped_v6_peers_count_as_v4() {
        let a = access(&[]);
        assert!(
            a.check_host(peer("::ffff:127.0.0.1"), &HeaderMap::new())
                .is_ok()
        );
    }

    #[test]
    fn key_must_match_exactly() {
        let a = access(&[]);
        assert!(a.check_key(Some("the-private-key")).is_ok());
        assert!(a.check_key(Some("the-private-ke")).is_err());
        assert!(a.check_key(None).is_err());
    }
}
