//! The TLS step: a rustls handshake with the roots a browser would trust (Mozilla's, from
//! webpki-roots) plus an optional private CA (`--ca`), and what its failures mean.

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use rustls::{
    CertificateError, ClientConfig, RootCertStore,
    pki_types::{CertificateDer, ServerName, pem::PemObject as _},
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

use super::{
    net::{secs, tcp},
    report::{Failure, Passed},
    target::Target,
};

/// A byte stream to the server: plain TCP or TLS over it.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// The client configuration: webpki roots, plus the certificates of `ca` when given.
fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, Failure> {
    let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect)
            .map_err(|e| {
                Failure::new(
                    format!("cannot read the --ca file {}: {e}", path.display()),
                    "give a PEM file with the CA certificate(s) (-----BEGIN CERTIFICATE-----)",
                )
            })?;
        if certs.is_empty() {
            return Err(Failure::new(
                format!("the --ca file {} holds no certificate", path.display()),
                "give a PEM file with the CA certificate(s) (-----BEGIN CERTIFICATE-----)",
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                Failure::new(
                    format!(
                        "the --ca file {} holds an unusable certificate: {e}",
                        path.display()
                    ),
                    "give the CA's certificate in PEM form",
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::new(format!("TLS setup: {e}"), "this is a bug in herald doctor"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Engine.IO polling and the WebSocket upgrade are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS step: a handshake with `addr`, checking the certificate against `target.host`
/// with the public roots and `ca`. Passes on the configuration for the later steps.
pub(crate) async fn check(
    target: &Target,
    addr: SocketAddr,
    ca: Option<&Path>,
    timeout: Duration,
) -> Result<Passed<Arc<ClientConfig>>, Failure> {
    let config = client_config(ca)?;
    let tls = handshake(target, addr, config.clone(), timeout).await?;
    let version = tls
        .get_ref()
        .1
        .protocol_version()
        .map_or_else(|| "TLS".to_owned(), |v| format!("{v:?}").replace('_', "."));
    let trust = if ca.is_some() {
        "the public roots or the --ca file"
    } else {
        "the public roots"
    };
    Ok(Passed::new(
        config,
        format!(
            "{version} with {}, certificate valid for {} and trusted by {trust}",
            addr, target.host
        ),
    ))
}

/// A stream to `addr` as the target's scheme needs: TLS for https/wss (`config` is then
/// `Some`), plain TCP otherwise.
pub(crate) async fn open(
    target: &Target,
    addr: SocketAddr,
    config: Option<Arc<ClientConfig>>,
    timeout: Duration,
) -> Result<Box<dyn Stream>, Failure> {
    match config {
        Some(config) => Ok(Box::new(handshake(target, addr, config, timeout).await?)),
        None => Ok(Box::new(tcp(addr, timeout).await?)),
    }
}

async fn handshake(
    target: &Target,
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Failure> {
    let name = ServerName::try_from(target.host.clone()).map_err(|e| {
        Failure::new(
            format!(
                "{:?} is not a name a certificate can be checked against: {e}",
                target.host
            ),
            "use the host name the certificate was issued for",
        )
    })?;
    let tcp = tcp(addr, timeout).await?;
    let connector = TlsConnector::from(config);
    match tokio::time::timeout(timeout, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => Ok(tls),
        Ok(Err(e)) => Err(explain(target, &e)),
        Err(_) => Err(Failure::new(
            format!("no TLS handshake with {addr} within {}", secs(timeout)),
            "the port accepts connections but does not answer TLS: it may speak plain HTTP \
             (use http:// or ws://), or a firewall or proxy holds the connection",
        )),
    }
}

/// Plain words for a failed handshake.
fn explain(target: &Target, error: &std::io::Error) -> Failure {
    let host = &target.host;
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return Failure::new(
            format!("the TLS handshake failed: {error}"),
            format!(
                "the server closed the connection during the handshake: port {} may not speak \
                 TLS (use http:// or ws://), or it has no certificate for {host}",
                target.port
            ),
        );
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => explain_certificate(host, cert),
        rustls::Error::InvalidMessage(_) => Failure::new(
            format!("the server does not speak TLS on port {}", target.port),
            "this port serves plain HTTP: use http:// or ws:// for it, or point https:// at the \
             TLS port (usually 443)",
        ),
        rustls::Error::AlertReceived(alert) => Failure::new(
            format!("the server refused the TLS handshake (alert {alert:?})"),
            format!(
                "check the server's TLS setup: a certificate for {host} (server_name / SNI), \
                 TLS 1.2 or 1.3 enabled"
            ),
        ),
        other => Failure::new(
            format!("the TLS handshake failed: {other}"),
            "check the server's TLS configuration (certificate, key, protocols)",
        ),
    }
}

fn explain_certificate(host: &str, error: &CertificateError) -> Failure {
    match error {
        CertificateError::UnknownIssuer => Failure::new(
            format!(
                "the certificate of {host} is not trusted: no known certificate authority \
                 signed it (self-signed, or a private CA)"
            ),
            "browsers refuse it too. Use a certificate from a public CA (e.g. Let's Encrypt); \
             with a private CA, install it on the clients and pass it here with --ca FILE. A \
             server that sends its certificate without the intermediate ones fails the same \
             way: serve the full chain (fullchain.pem)",
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            Failure::new(
                format!("the certificate is not valid for the name {host} (wrong name)"),
                format!(
                    "get a certificate whose subjectAltName covers {host}, or use the host name \
                     it was issued for in the URL; behind a proxy, check that the server block \
                     for {host} serves it (server_name)"
                ),
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => Failure::new(
            format!("the certificate of {host} has expired"),
            "renew it (e.g. certbot renew) and reload the server; if it should still be valid, \
             check this machine's clock",
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            Failure::new(
                format!("the certificate of {host} is not valid yet"),
                "check the clocks of this machine and of the server",
            )
        }
        CertificateError::Revoked => Failure::new(
            format!("the certificate of {host} was revoked"),
            "install a new certificate",
        ),
        other => Failure::new(
            format!("the certificate of {host} is refused: {other:?}"),
            "install a valid certificate from a trusted CA for this name",
        ),
    }
}
