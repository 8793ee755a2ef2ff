//! One connection to a manager and the service clients on it.

use std::time::Duration;

use std::path::PathBuf;
use theia::api::v1::claim_service_client::ClaimServiceClient;
use theia::api::v1::cluster_service_client::ClusterServiceClient;
use theia::api::v1::infrastructure_service_client::InfrastructureServiceClient;
use theia::api::v1::profile_service_client::ProfileServiceClient;
use theia::api::v1::tenant_service_client::TenantServiceClient;

use theia::api::auth::{Authed, Bearer, authed};
use theia::api::tls::client_tls;
use theia::api::v1::access_service_client::AccessServiceClient;
use tonic::transport::Endpoint;

use crate::error::{CliError, chain};

/// How long connecting may take before the manager counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Every page of a list call: `call(token)` answers the page after
/// `token` (empty: the first) as its items and the next token (empty: the
/// last page). On a terminal, a list of more than one page shows how many
/// `what` it has so far on stderr, erased once done.
pub async fn all_pages<T, F, Fut>(what: &str, mut call: F) -> Result<Vec<T>, tonic::Status>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut progress = crate::output::Progress::on_terminal();
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let answer = call(token).await;
        let (items, next) = match answer {
            Ok(page) => page,
            Err(status) => {
                progress.done();
                return Err(status);
            }
        };
        out.extend(items);
        if next.is_empty() {
            progress.done();
            return Ok(out);
        }
        progress.show(&format!("{} {what} so far…", out.len()));
        token = next;
    }
}

/// Items per page the CLI asks for: the manager's most.
pub const PAGE: u32 = 1000;

/// A connected manager.
#[derive(Clone, Debug)]
pub struct Client {
    url: String,
    channel: Authed,
}

/// Accepts `host:port` as shorthand for `http://host:port`.
pub fn normalise_url(text: &str) -> String {
    let text = text.trim();
    if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    }
}

impl Client {
    /// Connects now, so that an unreachable manager is reported as such
    /// before any request is made.
    pub async fn connect(manager: &str, bearer: Bearer) -> Result<Self, CliError> {
        Self::connect_trusting(manager, None, bearer).await
    }

    /// Connects, trusting the authorities in `ca` (a PEM file's path and
    /// content) for an `https://` manager instead of the system's bundle.
    pub async fn connect_trusting(
        manager: &str,
        ca: Option<(PathBuf, Vec<u8>)>,
        bearer: Bearer,
    ) -> Result<Self, CliError> {
        let url = normalise_url(manager);
        let mut endpoint = Endpoint::from_shared(url.clone())
            .map_err(|e| {
                CliError::other(format!(
                    "manager: {url:?} is not a URL such as http://127.0.0.1:7070 ({})",
                    chain(&e)
                ))
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        if endpoint.uri().scheme_str() == Some("https") {
            let (tls, _) = client_tls(ca.as_ref().map(|(p, pem)| (p.as_path(), pem.as_slice())));
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| CliError::other(format!("TLS: {}", chain(&e))))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| CliError::Unreachable {
                url: url.clone(),
                cause: chain(&e),
            })?;
        Ok(Self {
            url,
            channel: authed(channel, bearer),
        })
    }

    /// Reads a failed call in terms of this manager.
    pub fn error(&self, status: tonic::Status) -> CliError {
        CliError::from_status(status, &self.url)
    }

    /// Datacenters and the logical infrastructure.
    pub fn infrastructure(&self) -> InfrastructureServiceClient<Authed> {
        InfrastructureServiceClient::new(self.channel.clone())
    }

    /// Tenants.
    pub fn tenants(&self) -> TenantServiceClient<Authed> {
        TenantServiceClient::new(self.channel.clone())
    }

    /// Resource profiles.
    pub fn profiles(&self) -> ProfileServiceClient<Authed> {
        ProfileServiceClient::new(self.channel.clone())
    }

    /// Claims.
    pub fn claims(&self) -> ClaimServiceClient<Authed> {
        ClaimServiceClient::new(self.channel.clone())
    }

    /// Tokens and who this one speaks for.
    pub fn access(&self) -> AccessServiceClient<Authed> {
        AccessServiceClient::new(self.channel.clone())
    }

    /// The audit trail.
    pub fn audit(&self) -> theia::api::v1::audit_service_client::AuditServiceClient<Authed> {
        theia::api::v1::audit_service_client::AuditServiceClient::new(self.channel.clone())
    }

    /// The managers and their store.
    pub fn cluster(&self) -> ClusterServiceClient<Authed> {
        ClusterServiceClient::new(self.channel.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_means_plain_http() {
        assert_eq!(normalise_url("127.0.0.1:7070"), "http://127.0.0.1:7070");
        assert_eq!(
            normalise_url(" https://m.example:443 "),
            "https://m.example:443"
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_as_unreachable() {
        // Bind then drop, so the port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let err = Client::connect(&url, Bearer::default()).await.unwrap_err();
        let line = err.line();
        assert!(
            line.starts_with(&format!(
                "cannot reach the manager at {url} (is theia-manager or `theia dev` running?): "
            )),
            "{line}"
        );
    }

    #[tokio::test]
    async fn a_malformed_url_is_named() {
        let err = Client::connect("http://exa mple", Bearer::default())
            .await
            .unwrap_err();
        assert!(
            err.line()
                .starts_with("manager: \"http://exa mple\" is not a URL"),
            "{}",
            err.line()
        );
    }
}
