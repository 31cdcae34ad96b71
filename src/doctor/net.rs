//! DNS resolution and the TCP connection, each bounded by the step timeout.

use std::{io::ErrorKind, net::SocketAddr, time::Duration};

use tokio::net::TcpStream;

use super::{
    report::{Failure, Passed},
    target::Target,
};

/// At most this many resolved addresses are tried, as a browser would (one after another).
const MAX_ADDRESSES: usize = 4;

/// Resolves the target's host.
pub(crate) async fn resolve(
    target: &Target,
    timeout: Duration,
) -> Result<Passed<Vec<SocketAddr>>, Failure> {
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            return Err(Failure::new(
                format!("cannot resolve {}: {e}", target.host),
                "check the host name for typos and that its DNS record (A/AAAA) exists and is \
                 visible from here (try: getent hosts NAME)",
            ));
        }
        Err(_) => {
            return Err(Failure::new(
                format!("no DNS answer for {} within {}", target.host, secs(timeout)),
                "the DNS resolver of this machine does not answer: check /etc/resolv.conf and \
                 the network",
            ));
        }
    };
    if addrs.is_empty() {
        return Err(Failure::new(
            format!("{} resolves to no address", target.host),
            "add an A or AAAA record for the host",
        ));
    }
    let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
    let detail = format!("{} -> {}", target.host, list.join(", "));
    Ok(Passed::new(addrs, detail))
}

/// Connects to the first address that accepts; reports the first address's error when none
/// does.
pub(crate) async fn connect(
    addrs: &[SocketAddr],
    port: u16,
    timeout: Duration,
) -> Result<Passed<SocketAddr>, Failure> {
    let mut first_failure = None;
    for &addr in addrs.iter().take(MAX_ADDRESSES) {
        match tcp(addr, timeout).await {
            Ok(stream) => {
                drop(stream);
                return Ok(Passed::new(addr, format!("connected to {addr}")));
            }
            Err(failure) => {
                first_failure.get_or_insert(failure);
            }
        }
    }
    Err(first_failure.unwrap_or_else(|| {
        Failure::new(
            format!("no address to connect to on port {port}"),
            "the host resolved to no usable address",
        )
    }))
}

/// One TCP connection to `addr`, bounded by `timeout`, with its failure explained.
pub(crate) async fn tcp(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Failure> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            // Small request/answer exchanges: do not wait to fill segments.
            let _ = stream.set_nodelay(true);
            Ok(stream)
        }
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused => Err(Failure::new(
            format!(
                "connection refused by {addr}: nothing listens on port {}",
                addr.port()
            ),
            "start herald (or the proxy in front of it), and check the port: herald listens on \
             public.port (default 8090), a TLS proxy on 443; a firewall rejecting the port looks \
             the same",
        )),
        Ok(Err(e)) => Err(Failure::new(
            format!("cannot connect to {addr}: {e}"),
            "check the network route to the host and its firewall",
        )),
        Err(_) => Err(Failure::new(
            format!("no answer from {addr} within {}", secs(timeout)),
            "a firewall drops packets to this port, or the host is down or unreachable from here",
        )),
    }
}

/// "5 s", "1.5 s".
pub(crate) fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}
