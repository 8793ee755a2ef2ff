//! TLS for `https://` managers: the operating system's CA bundle, so that a
//! manager with a certificate from the site's usual CA works without extra
//! configuration. The agent links no built-in root store, to stay small.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig};

/// Where distributions keep their CA bundle, Debian's first.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The client TLS settings and the bundle they trust; `None` when no bundle
/// was found, in which case every handshake fails with an unknown issuer.
/// `SSL_CERT_FILE` names another bundle, as for OpenSSL.
pub(crate) fn client_tls() -> (ClientTlsConfig, Option<PathBuf>) {
    let named = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let candidates = named
        .into_iter()
        .chain(CA_BUNDLES.iter().map(PathBuf::from));
    for path in candidates {
        if let Some(pem) = read_bundle(&path) {
            let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            return (config, Some(path));
        }
    }
    (ClientTlsConfig::new(), None)
}

fn read_bundle(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path)
        .ok()
        .filter(|pem| pem.windows(11).any(|w| w == b"-----BEGIN "))
}
