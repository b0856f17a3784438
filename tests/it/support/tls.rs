//! HTTPS in front of a local server, with a certificate made for one run, so
//! tests and the bench can reach the local S3 server as AWS is reached. Also
//! compiled into the bench (`benches/pipeline.rs` includes this file), so it
//! uses nothing else here.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;

/// An acceptor presenting a fresh self-signed certificate for 127.0.0.1 and
/// localhost, written as PEM to `ca_file` for the clients to trust
/// (`SSL_CERT_FILE`, which both the SDK's and reqwest's roots honour).
pub fn acceptor(ca_file: &Path) -> tokio_rustls::TlsAcceptor {
    acceptor_offering(ca_file, &[])
}

/// Like [`acceptor`], offering the application protocols `alpn` (`h2`) in
/// the handshake, as a CDN does.
pub fn acceptor_offering(ca_file: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("make a certificate");
    std::fs::write(ca_file, made.cert.pem()).expect("write the certificate");
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key.into())
    .expect("a certificate rustls takes");
    let mut config = config;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A TLS listener on loopback whose connections are piped, decrypted, to
/// `upstream` (a port on 127.0.0.1); its port.
pub async fn front(acceptor: tokio_rustls::TlsAcceptor, upstream: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}
