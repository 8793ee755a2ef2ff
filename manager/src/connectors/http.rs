//! One HTTP/1.1 POST, over plain TCP or TLS (rustls, the platform's roots),
//! bounded in time: what the connectors push with.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// Why a POST did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// Worth trying again: no connection, a timeout, a 5xx or a 429.
    #[error("{0}")]
    Retry(String),
    /// Not worth trying again: the sink refused what was sent.
    #[error("{0}")]
    Refused(String),
}

/// TLS settings for HTTPS sinks: the platform's roots, ring.
static TLS: LazyLock<Option<Arc<rustls::ClientConfig>>> = LazyLock::new(|| {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
});

/// Posts `body` to `uri` with `headers`, within `timeout`.
pub async fn post(
    uri: &Uri,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), PostError> {
    tokio::time::timeout(timeout, post_now(uri, headers, body))
        .await
        .map_err(|_| PostError::Retry(format!("{uri} did not answer within {timeout:?}")))?
}

async fn post_now(uri: &Uri, headers: &[(&str, String)], body: Vec<u8>) -> Result<(), PostError> {
    let retry =
        |what: &str, e: &dyn std::fmt::Display| PostError::Retry(format!("{uri}: {what}: {e}"));
    let host = uri
        .host()
        .ok_or_else(|| PostError::Refused(format!("{uri} names no host")))?;
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| retry("cannot connect", &e))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::post(path).header(hyper::header::HOST, host);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| PostError::Refused(format!("{uri}: {e}")))?;
    let status = if https {
        let config = TLS
            .clone()
            .ok_or_else(|| PostError::Refused("no TLS configuration could be built".to_owned()))?;
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| PostError::Refused(format!("{uri}: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| retry("TLS handshake failed", &e))?;
        exchange(tls, request).await
    } else {
        exchange(tcp, request).await
    }
    .map_err(|e| retry("the exchange failed", &e))?;
    match status.as_u16() {
        200..=299 => Ok(()),
        429 | 500..=599 => Err(PostError::Retry(format!("{uri} answered {status}"))),
        _ => Err(PostError::Refused(format!("{uri} answered {status}"))),
    }
}

/// Sends `request` over `io` and answers the status.
async fn exchange<S>(
    io: S,
    request: Request<Full<Bytes>>,
) -> Result<hyper::StatusCode, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let driver = tokio::spawn(connection);
    let answer = sender.send_request(request).await;
    driver.abort();
    Ok(answer?.status())
}
