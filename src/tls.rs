//! The process's one TLS crypto provider: rustls with ring, for both HTTP
//! stacks (reqwest, which fetches the images and sends the lean PUT, and the
//! SDK's hyper client).
//!
//! Why ring and not aws-lc, rustls's default: aws-lc is a CMake build of C
//! that alone takes longer to compile than the rest of the TLS stack, and
//! nothing batchimg does needs what only aws-lc offers (a FIPS module,
//! post-quantum key exchange).

use std::sync::Once;

use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// Makes ring the process's default rustls provider, the one reqwest's
/// clients take. Call it before building a reqwest client; calls after the
/// first do nothing.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // An error means a provider is already installed (a program that
        // embeds the library chose its own); that one is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The HTTP client the SDK sends its requests with: its own hyper client
/// (proxy variables and connection pool as the SDK's default), over rustls
/// with ring.
pub fn sdk_http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}
