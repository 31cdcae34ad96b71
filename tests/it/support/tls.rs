//! TLS test plumbing: a self-signed certificate generated per test (rcgen) for `localhost` and
//! `127.0.0.1`, the `[tls]` config naming its files, and clients that trust it.

use std::{io::Write as _, sync::Arc};

use tempfile::NamedTempFile;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::CertificateDer};

/// A self-signed certificate and its key, in temporary PEM files (removed on drop).
pub(crate) struct TestCert {
    pem: String,
    der: CertificateDer<'static>,
    cert: NamedTempFile,
    key: NamedTempFile,
}

fn pem_file(content: &str) -> NamedTempFile {
    let mut file = NamedTempFile::new().expect("temporary file");
    file.write_all(content.as_bytes()).expect("write PEM");
    file
}

impl TestCert {
    /// A fresh certificate for `localhost` and `127.0.0.1`.
    pub(crate) fn generate() -> Self {
        let generated =
            rcgen::generate_simple_self_signed(["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("generate a self-signed certificate");
        let pem = generated.cert.pem();
        Self {
            cert: pem_file(&pem),
            key: pem_file(&generated.signing_key.serialize_pem()),
            der: generated.cert.der().clone(),
            pem,
        }
    }

    /// The `[tls]` section naming the files (append it after the test's own TOML).
    pub(crate) fn toml(&self) -> String {
        format!(
            "\n[tls]\ncert = {:?}\nkey = {:?}\n",
            self.cert.path().display().to_string(),
            self.key.path().display().to_string()
        )
    }

    /// A rustls client configuration trusting this certificate only.
    pub(crate) fn client_config(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.der.clone())
            .expect("trust the test certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// An HTTPS client trusting this certificate only.
    pub(crate) fn https(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pem.as_bytes()).expect("PEM certificate"),
            )
            .https_only(true)
            .build()
            .expect("HTTPS client")
    }
}
