//! Client TLS for `https://` managers, as the agent and the CLI make it:
//! the authorities in a CA file the user names (`ca`), or else the
//! operating system's CA bundle, so that a manager with a certificate from
//! the site's usual CA works without extra configuration. No built-in root
//! store is linked, to stay small. This module reads files; the core does not.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig};

/// Where distributions keep their CA bundle, Debian's first.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// What a client trusts for `https://` managers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The authorities in the CA file the user named.
    Named(PathBuf),
    /// The system's bundle at this path (`SSL_CERT_FILE` names another).
    System(PathBuf),
    /// Nothing: no bundle was found, so every handshake fails.
    Nothing,
}

/// Reads a CA file named in configuration: PEM with at least one
/// certificate, or an error that says what is wrong with it.
pub fn read_ca(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !holds_certificate(&pem) {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(pem)
}

fn holds_certificate(pem: &[u8]) -> bool {
    pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----")
}

/// The client TLS settings: trusting `ca` (PEM, with the file it came from)
/// when given, else the system's bundle.
pub fn client_tls(ca: Option<(&Path, &[u8])>) -> (ClientTlsConfig, Trust) {
    if let Some((path, pem)) = ca {
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
        return (config, Trust::Named(path.to_owned()));
    }
    let named = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let candidates = named
        .into_iter()
        .chain(CA_BUNDLES.iter().map(PathBuf::from));
    for path in candidates {
        if let Some(pem) = std::fs::read(&path).ok().filter(|p| holds_certificate(p)) {
            let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            return (config, Trust::System(path));
        }
    }
    (ClientTlsConfig::new(), Trust::Nothing)
}

/// Whether `url` (`scheme://host:port/...`) names this machine, where
/// plaintext crosses no network.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_told_from_the_network() {
        for url in [
            "http://127.0.0.1:7070",
            "http://127.8.0.1:7070",
            "http://localhost:7070/",
            "http://[::1]:7070",
            "127.0.0.1:7070",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:7070",
            "https://m.example:7070",
            "http://[2001:db8::1]:7070",
            "http://localhost.example:7070",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn only_a_pem_certificate_counts_as_one() {
        assert!(holds_certificate(b"x\n-----BEGIN CERTIFICATE-----\nMIIB"));
        assert!(!holds_certificate(b"-----BEGIN PRIVATE KEY-----\nMIIB"));
        assert!(!holds_certificate(b""));
    }

    #[test]
    fn a_named_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here").unwrap();
        let err = read_ca(&empty).unwrap_err();
        assert!(err.ends_with("holds no PEM certificate"), "{err}");
        let missing = read_ca(&dir.path().join("missing.pem")).unwrap_err();
        assert!(missing.starts_with("cannot read "), "{missing}");
        let good = dir.path().join("ca.pem");
        std::fs::write(
            &good,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let pem = read_ca(&good).unwrap();
        let (_, trust) = client_tls(Some((&good, &pem)));
        assert_eq!(trust, Trust::Named(good));
    }
}
