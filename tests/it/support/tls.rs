//! A TLS server certificate made for one test run, so tests and the bench can
//! put the local S3 server behind HTTPS. Also compiled into the bench
//! (`benches/pipeline.rs` includes this file), so it uses nothing else here.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;

/// An acceptor presenting a fresh self-signed certificate for 127.0.0.1 and
/// localhost, written as PEM to `ca_file` for the clients to trust
/// (`SSL_CERT_FILE`, which both the SDK's and reqwest's roots honour).
pub fn acceptor(ca_file: &Path) -> tokio_rustls::TlsAcceptor {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("make a certificate");
    std::fs::write(ca_file, made.cert.pem()).expect("write the certificate");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key.into())
    .expect("a certificate rustls takes");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
