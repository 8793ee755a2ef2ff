//! theia-manager: the gRPC API (agents, infrastructure, tenants, profiles,
//! claims, cluster), the scheduler around the pure core, liveness tracking,
//! the one writer, and the stores: embedded for one manager, Redis for a
//! cluster (with its feed, generations and shared liveness).
#![forbid(unsafe_code)]

mod access;
mod agents;
mod app;
mod audit;
mod bootstrap;
mod cluster;
mod config;
mod connectors;
mod error;
mod ledger;
mod listener;
mod metrics;
mod monitor;
mod request_span;
mod service;
mod store;
mod timekeeper;
mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use theia::api::v1;
use theia::clock::HybridClock;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use config::{ManagerConfig, Secret, TlsFiles};
pub use connectors::loki::Loki;
pub use connectors::otlp::init as otlp_init;
pub use connectors::sentry::init as sentry_init;

/// The layers that send error lines to Sentry (as events) with the info
/// and warning lines before them (as breadcrumbs), for
/// [`theia::config::init_logging_with`].
pub fn sentry_layer() -> theia::config::ExtraLayer {
    use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::LevelFilter;
    let layers: Vec<theia::config::ExtraLayer> = vec![
        ErrorLayer::new().with_filter(LevelFilter::ERROR).boxed(),
        BreadcrumbLayer::new()
            .with_filter(LevelFilter::INFO)
            .boxed(),
    ];
    Box::new(layers)
}

use crate::app::App;
use crate::ledger::Ledger;
use crate::service::Api;
use crate::store::{EmbeddedStore, RedisStore, Store};

/// How long in-flight calls get to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an idle connection is pinged, and how long the answer may take.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls open at once on one connection.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;
/// The largest message taken or sent, encoded: a page of any list fits.
const MAX_MESSAGE: usize = 4 << 20;

/// A service of `api` whose messages are bounded by [`MAX_MESSAGE`] both ways.
macro_rules! bounded {
    ($server:path, $api:expr) => {{
        use $server as Server;
        Server::new($api.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE)
    }};
}

/// A manager whose store is open and whose port is bound, ready to serve.
pub struct Manager {
    app: Arc<App>,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    writer: tokio::task::JoinHandle<()>,
}

/// Reads this manager's id from the data directory, making one on first start.
fn manager_id(config: &ManagerConfig) -> anyhow::Result<String> {
    if let Some(id) = &config.manager_id {
        theia::model::validate_name("manager_id", id)?;
        return Ok(id.clone());
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot use data directory {}", config.data_dir.display()))?;
    let path = config.data_dir.join("manager-id");
    match std::fs::read_to_string(&path) {
        Ok(id) => Ok(id.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = format!("m-{:08x}", rand::random::<u32>());
            write_new(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

impl Manager {
    /// Opens the store in `config.data_dir` and binds `config.listen`.
    pub async fn bind(config: ManagerConfig) -> anyhow::Result<Manager> {
        if let Some(tls) = &config.tls {
            // Unusable certificates stop the manager before it opens anything.
            tonic::transport::Server::builder()
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(tls.identity()?))
                .context("tls_cert and tls_key do not make a usable TLS identity")?;
        }
        let id = manager_id(&config)?;
        let store = match &config.redis {
            Some(redis) => {
                let secret = config.secret.as_ref().context(
                    "redis: a manager cluster needs its cluster secret (secret or secret_file)",
                )?;
                Store::Redis(Box::new(
                    RedisStore::open(redis, config.redis_ca.as_deref(), secret, &id).await?,
                ))
            }
            None => Store::Embedded(Arc::new(EmbeddedStore::open(&config.data_dir)?)),
        };
        let clock = HybridClock::new(id.clone(), config.clock_offset);
        let store = Arc::new(store);
        let (ledger, writer) = Ledger::open(store.clone(), clock).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(metrics::bind(address).await?),
            None => None,
        };
        let address = listener.local_addr()?;
        let app = Arc::new(App::new(config, id, address, ledger, store));
        let writer = writer.start(Arc::downgrade(&app));
        let token_file = app.config.bootstrap_token_path();
        bootstrap::first_admin_token(&app, &token_file, app.config.new_admin_token).await?;
        Ok(Manager {
            app,
            listener,
            metrics_listener,
            writer,
        })
    }

    /// The address the API listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.app.address
    }

    /// Where Prometheus metrics are served, if they are (useful with port 0).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// This manager's id.
    pub fn id(&self) -> &str {
        &self.app.manager_id
    }

    /// Makes a token in this manager's store before it serves (as `theia
    /// dev` does for its own agent) and answers its secret once durable.
    pub async fn issue_token(
        &self,
        subject: &str,
        roles: std::collections::BTreeSet<theia::access::Role>,
        description: &str,
    ) -> anyhow::Result<String> {
        let request = theia::access::TokenRequest {
            subject: subject.to_owned(),
            roles,
            expires_unix_ms: None,
            description: description.to_owned(),
        };
        request.validate()?;
        let mut ledger = self.app.ledger.lock().await;
        let (_, secret, durable) = service::issue(&mut ledger, request, "theia dev");
        drop(ledger);
        durable.wait().await?;
        Ok(secret)
    }

    /// Where the first admin token was written at the first start.
    pub fn bootstrap_token_path(&self) -> std::path::PathBuf {
        self.app.config.bootstrap_token_path()
    }

    /// Serves until `shutdown` completes, then ends every stream and task,
    /// writes what is pending and closes the store.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Manager {
            app,
            listener,
            metrics_listener,
            writer,
        } = self;
        // Should this future be dropped mid-flight, its streams end with it.
        let _stop_on_drop = StopOnDrop(app.clone());
        let api = Api(app.clone());
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<v1::agent_service_server::AgentServiceServer<Api>>()
            .await;
        health
            .set_serving::<v1::infrastructure_service_server::InfrastructureServiceServer<Api>>()
            .await;
        health
            .set_serving::<v1::tenant_service_server::TenantServiceServer<Api>>()
            .await;
        health
            .set_serving::<v1::profile_service_server::ProfileServiceServer<Api>>()
            .await;
        health
            .set_serving::<v1::claim_service_server::ClaimServiceServer<Api>>()
            .await;
        health
            .set_serving::<v1::cluster_service_server::ClusterServiceServer<Api>>()
            .await;
        health
            .set_serving::<v1::access_service_server::AccessServiceServer<Api>>()
            .await;
        health
            .set_serving::<v1::audit_service_server::AuditServiceServer<Api>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        crate::audit::Trail::start(&app);
        let mut tasks = JoinSet::new();
        tasks.spawn(monitor::liveness(app.clone()));
        if let Some(loki) = app.config.loki.clone() {
            tracing::info!(url = %loki.push, "pushing the audit trail to Loki");
            tasks.spawn(connectors::loki::run(app.clone(), loki, app.loki.clone()));
        }
        if let Some(listener) = metrics_listener {
            if let Ok(address) = listener.local_addr() {
                tracing::info!(address = %address, "serving Prometheus metrics on GET /metrics");
            }
            tasks.spawn(metrics::serve(app.clone(), listener));
        }
        tasks.spawn(monitor::sync(app.clone()));
        tasks.spawn(monitor::housekeeping(app.clone()));
        tasks.spawn(crate::timekeeper::run(app.clone()));
        if app.store.shared() {
            tasks.spawn(crate::cluster::feed(app.clone()));
            tasks.spawn(crate::cluster::exchange(app.clone()));
        }

        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let stopper = app.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down");
            stopper.stop();
            let _ = drained_tx.send(());
        };
        let location = app.ledger.lock().await.location().to_owned();
        let limit = listener::connection_limit();
        let incoming = listener::guarded(listener, limit);
        let mut builder = tonic::transport::Server::builder()
            // A dead peer is noticed, and one connection cannot open
            // streams without end.
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION));
        let scheme = match &app.config.tls {
            Some(tls) => {
                let identity = tls.identity()?;
                let mut server_tls = tonic::transport::ServerTlsConfig::new().identity(identity);
                if let Some(ca) = &app.config.client_ca {
                    // Optional: tokens stay the way in for everyone else.
                    server_tls = server_tls
                        .client_ca_root(tonic::transport::Certificate::from_pem(ca))
                        .client_auth_optional(true);
                }
                builder = builder
                    .tls_config(server_tls)
                    .context("tls_cert and tls_key do not make a usable TLS identity")?;
                "https"
            }
            None => {
                if app.plaintext_on_network() {
                    tracing::warn!(address = %app.address, "serving plaintext (insecure): anyone on the network can read every call and act as anyone; set tls_cert and tls_key");
                }
                "http"
            }
        };
        tracing::info!(manager = %app.manager_id, address = %app.address, url = %format!("{scheme}://{}", app.address), store = %location, max_connections = limit, "theia-manager serving");
        // The request span is outermost, so that the gate logs inside it.
        let server = builder
            .layer(request_span::RequestSpanLayer::new(app.metrics.clone()))
            .layer(access::GateLayer::new(
                app.directory.clone(),
                app.config.rate_limit,
                app.trail.clone(),
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(bounded!(v1::agent_service_server::AgentServiceServer, api))
            .add_service(bounded!(
                v1::infrastructure_service_server::InfrastructureServiceServer,
                api
            ))
            .add_service(bounded!(
                v1::tenant_service_server::TenantServiceServer,
                api
            ))
            .add_service(bounded!(
                v1::profile_service_server::ProfileServiceServer,
                api
            ))
            .add_service(bounded!(v1::claim_service_server::ClaimServiceServer, api))
            .add_service(bounded!(
                v1::cluster_service_server::ClusterServiceServer,
                api
            ))
            .add_service(bounded!(
                v1::access_service_server::AccessServiceServer,
                api
            ))
            .add_service(bounded!(v1::audit_service_server::AuditServiceServer, api))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::ReceiverStream::new(incoming),
                signal,
            );
        tokio::pin!(server);
        // Serve; once shutdown begins, give in-flight calls a bounded time.
        let served = tokio::select! {
            r = &mut server => r,
            _ = async { let _ = drained_rx.await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
                tracing::warn!("calls still open after {DRAIN_TIMEOUT:?}; closing them");
                Ok(())
            }
        };
        app.stop();
        tasks.shutdown().await;
        let flushed = app.ledger.lock().await.flush();
        let written = flushed.wait().await;
        // The writer ends once it wrote what is queued; the store closes with it.
        app.ledger.lock().await.close();
        let _ = writer.await;
        written?;
        served.context("gRPC server failed")
    }
}

/// Ends every agent stream when dropped, so that nothing outlives `serve`.
struct StopOnDrop(Arc<App>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Binds and serves until `shutdown` completes.
pub async fn run(
    config: ManagerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Manager::bind(config).await?.serve(shutdown).await
}
