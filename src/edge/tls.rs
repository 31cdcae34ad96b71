//! Native TLS (`[tls]`): herald serves `https` and `wss` itself, without a proxy in front.
//!
//! [`acceptor`] reads the certificate chain and its private key from PEM files once, at
//! startup, into a rustls server configuration (the `ring` provider, TLS 1.2 and 1.3, ALPN
//! `http/1.1`: herald serves HTTP/1.1, which WebSocket upgrades need). A file that cannot be
//! read or holds no usable certificate or key is an error naming the file. The handshakes
//! themselves run in the listener ([`crate::edge::listener`]), off its accept loop.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, ServerConfig,
        crypto::ring,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

/// The one application protocol herald speaks over TLS.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// Why TLS could not be set up. Every variant names the file at fault; none echoes its content.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `tls.cert` holds no PEM certificate, or a broken one.
    #[error("tls.cert {}: no usable PEM certificate ({reason})", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `tls.key` holds no PEM private key (PKCS#8, PKCS#1 or SEC1), or a broken one.
    #[error("tls.key {}: no usable PEM private key ({reason})", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The certificate and the key do not go together, or rustls refuses them.
    #[error("tls.cert {} and tls.key {} are not a usable pair: {source}", cert.display(), key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// The TLS acceptor for the certificate chain in `cert` and the private key in `key` (PEM).
///
/// # Errors
/// An unreadable file, a file with no usable certificate or key, or a key that does not match
/// the certificate.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError::Certificate {
            path: cert.to_owned(),
            reason: error.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_owned(),
            reason: "the file has no CERTIFICATE block".into(),
        });
    }
    let private_key =
        PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|error| TlsError::Key {
            path: key.to_owned(),
            reason: error.to_string(),
        })?;
    let pair = |source| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(pair)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(pair)?;
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use tempfile::NamedTempFile;

    use super::*;

    fn file(content: &str) -> NamedTempFile {
        let mut file = NamedTempFile::new().unwrap();
        file.write_all(content.as_bytes()).unwrap();
        file
    }

    fn self_signed() -> (NamedTempFile, NamedTempFile) {
        let generated = rcgen::generate_simple_self_signed(["localhost".to_owned()]).unwrap();
        (
            file(&generated.cert.pem()),
            file(&generated.signing_key.serialize_pem()),
        )
    }

    fn refused(cert: &Path, key: &Path) -> TlsError {
        match acceptor(cert, key) {
            Ok(_) => panic!("{} and {} were accepted", cert.display(), key.display()),
            Err(error) => error,
        }
    }

    #[test]
    fn a_self_signed_pair_makes_an_acceptor_speaking_http1() {
        let (cert, key) = self_signed();
        let acceptor = acceptor(cert.path(), key.path()).unwrap();
        assert_eq!(acceptor.config().alpn_protocols, [b"http/1.1".to_vec()]);
    }

    #[test]
    fn each_bad_file_is_named() {
        let (cert, key) = self_signed();
        let missing = Path::new("/nonexistent/herald-cert.pem");
        let error = refused(missing, key.path());
        assert!(matches!(error, TlsError::Read { .. }), "{error}");
        assert!(error.to_string().contains("herald-cert.pem"), "{error}");

        let garbage = file("not a certificate at all");
        let error = refused(garbage.path(), key.path());
        assert!(matches!(error, TlsError::Certificate { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains(&garbage.path().display().to_string()),
            "{error}"
        );

        // A certificate where the key should be: no key, and the file is named.
        let error = refused(cert.path(), cert.path());
        assert!(matches!(error, TlsError::Key { .. }), "{error}");

        // A key that belongs to another certificate.
        let (_, other_key) = self_signed();
        let error = refused(cert.path(), other_key.path());
        assert!(matches!(error, TlsError::Pair { .. }), "{error}");
    }

    #[test]
    fn a_broken_certificate_block_is_refused() {
        let (_, key) = self_signed();
        let broken = file("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        let error = refused(broken.path(), key.path());
        assert!(matches!(error, TlsError::Certificate { .. }), "{error}");
    }
}
