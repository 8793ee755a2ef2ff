//! Prometheus metrics, served in the OpenMetrics text format on
//! `metrics_listen` (`GET /metrics`): calls by service, method and code
//! with their latency, store commits (latency and jobs per group), and,
//! read from the books when scraped, claims by state, capacity and
//! allocation per datacenter and class, liveness per datacenter, agents
//! connected, and the audit trail's queue and drops.
//!
//! A call is measured from when the manager takes it to its answer's
//! headers: the whole of a unary call, the opening of a stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use theia::scheduler::Liveness;

use crate::app::App;

/// One method's calls that ended with one code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Call {
    service: String,
    method: String,
    code: String,
}

/// One class of one datacenter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Class {
    datacenter: String,
    class: String,
}

/// A claim state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: String,
}

/// One datacenter in one liveness.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Alive {
    datacenter: String,
    liveness: String,
}

/// A connector to an outside system.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Connector {
    connector: String,
}

type Level = Gauge<f64, AtomicU64>;

fn latency() -> Histogram {
    // 100 µs to about 13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// Every metric the manager keeps.
pub struct Metrics {
    registry: Registry,
    calls: Family<Call, Histogram, fn() -> Histogram>,
    commit_seconds: Histogram,
    commit_jobs: Histogram,
    claims: Family<State, Gauge>,
    total: Family<Class, Level>,
    capacity: Family<Class, Level>,
    allocated: Family<Class, Level>,
    liveness: Family<Alive, Gauge>,
    agents: Gauge,
    audit_dropped: Counter,
    audit_queued: Gauge,
    connector_queued: Family<Connector, Gauge>,
    connector_sent: Family<Connector, Counter>,
    connector_dropped: Family<Connector, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("theia");
        let calls = Family::<Call, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        registry.register(
            "rpc_duration_seconds",
            "Calls by service, method and gRPC code, and how long the manager took to answer",
            calls.clone(),
        );
        let commit_seconds = latency();
        registry.register(
            "store_commit_duration_seconds",
            "How long each group write of the store took",
            commit_seconds.clone(),
        );
        let commit_jobs = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "store_commit_jobs",
            "Jobs (changes of callers) written per group",
            commit_jobs.clone(),
        );
        let claims = Family::<State, Gauge>::default();
        registry.register("claims", "Claims kept, by state now", claims.clone());
        let total = Family::<Class, Level>::default();
        registry.register(
            "datacenter_total",
            "What each datacenter's management plane has, per class, in base units",
            total.clone(),
        );
        let capacity = Family::<Class, Level>::default();
        registry.register(
            "datacenter_capacity",
            "What theia may place per datacenter and class (total less reserved, times the allocation ratio), in base units",
            capacity.clone(),
        );
        let allocated = Family::<Class, Level>::default();
        registry.register(
            "datacenter_allocated",
            "What theia's placements hold now per datacenter and class, in base units",
            allocated.clone(),
        );
        let liveness = Family::<Alive, Gauge>::default();
        registry.register(
            "datacenter_liveness",
            "1 for each datacenter's liveness now (alive, suspect or down)",
            liveness.clone(),
        );
        let agents = Gauge::default();
        registry.register(
            "agents_connected",
            "Agent streams this manager serves",
            agents.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_events_dropped",
            "Audit events left out: refusals over the rate recorded, or a full queue",
            audit_dropped.clone(),
        );
        let audit_queued = Gauge::default();
        registry.register(
            "audit_queue_depth",
            "Audit events waiting to be written",
            audit_queued.clone(),
        );
        let connector_queued = Family::<Connector, Gauge>::default();
        registry.register(
            "connector_queue_depth",
            "Items each connector holds while its sink is slow or away",
            connector_queued.clone(),
        );
        let connector_sent = Family::<Connector, Counter>::default();
        registry.register(
            "connector_sent",
            "Items each connector delivered",
            connector_sent.clone(),
        );
        let connector_dropped = Family::<Connector, Counter>::default();
        registry.register(
            "connector_dropped",
            "Items each connector left out: its buffer was full or its sink refused them",
            connector_dropped.clone(),
        );
        Self {
            registry,
            connector_queued,
            connector_sent,
            connector_dropped,
            calls,
            commit_seconds,
            commit_jobs,
            claims,
            total,
            capacity,
            allocated,
            liveness,
            agents,
            audit_dropped,
            audit_queued,
        }
    }

    /// Counts a call to `path` answered with `code` after `took`. Paths
    /// the manager does not serve count as one `unknown` method, so that a
    /// client cannot make series without end.
    pub fn call(&self, path: &str, code: tonic::Code, took: Duration) {
        let (service, method) = match (theia::access::rule(path), path.rsplit_once('/')) {
            (Some(_), Some((service, method))) => (service.trim_start_matches('/'), method),
            _ => ("unknown", "unknown"),
        };
        let labels = Call {
            service: service.to_owned(),
            method: method.to_owned(),
            code: format!("{code:?}"),
        };
        self.calls
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Counts one group write of `jobs` jobs that took `took`.
    pub fn commit(&self, jobs: usize, took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.commit_jobs.observe(jobs as f64);
    }

    /// Reads what the books say now, then encodes every metric.
    pub async fn render(&self, app: &App) -> String {
        let now = crate::ledger::wall_ms();
        {
            let ledger = app.ledger.lock().await;
            let books = &ledger.books;
            self.claims.clear();
            for claim in books.claims().values() {
                let state = claim.state_at(now).as_str().to_owned();
                self.claims.get_or_create(&State { state }).inc();
            }
            self.total.clear();
            self.capacity.clear();
            self.allocated.clear();
            self.liveness.clear();
            for c in app.candidates(books) {
                for (class, inv) in &c.dc.inventory {
                    let labels = Class {
                        datacenter: c.dc.id.clone(),
                        class: class.to_string(),
                    };
                    self.total.get_or_create(&labels).set(inv.total as f64);
                    self.capacity
                        .get_or_create(&labels)
                        .set(inv.capacity() as f64);
                    let held = c.usage.allocated.level(class, now);
                    self.allocated.get_or_create(&labels).set(held as f64);
                }
                let liveness = match c.liveness {
                    Liveness::Alive => "alive",
                    Liveness::Suspect => "suspect",
                    Liveness::Down => "down",
                };
                self.liveness
                    .get_or_create(&Alive {
                        datacenter: c.dc.id.clone(),
                        liveness: liveness.to_owned(),
                    })
                    .set(1);
            }
        }
        self.agents
            .set(i64::try_from(app.agents.connected()).unwrap_or(i64::MAX));
        let dropped = app.trail.dropped();
        self.audit_dropped
            .inc_by(dropped.saturating_sub(self.audit_dropped.get()));
        self.audit_queued
            .set(i64::try_from(app.trail.queued()).unwrap_or(i64::MAX));
        let connectors = [
            ("loki", app.config.loki.is_some(), &*app.loki),
            (
                "sentry",
                app.config.sentry_dsn.is_some(),
                &**crate::connectors::sentry::STATS,
            ),
            (
                "otlp",
                app.config.otlp_endpoint.is_some(),
                &**crate::connectors::otlp::STATS,
            ),
        ];
        for (name, _, stats) in connectors.into_iter().filter(|(_, on, _)| *on) {
            let labels = Connector {
                connector: name.to_owned(),
            };
            let load =
                |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
            self.connector_queued
                .get_or_create(&labels)
                .set(i64::try_from(load(&stats.queued)).unwrap_or(i64::MAX));
            let sent = self.connector_sent.get_or_create(&labels);
            sent.inc_by(load(&stats.sent).saturating_sub(sent.get()));
            let dropped = self.connector_dropped.get_or_create(&labels);
            dropped.inc_by(load(&stats.dropped).saturating_sub(dropped.get()));
        }
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        text
    }
}

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `listener` until the manager stops.
pub async fn serve(app: Arc<App>, listener: tokio::net::TcpListener) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Method, Request, Response, StatusCode};

    let mut stopping = app.stopping();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|stop| *stop) => return,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener could not accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    if req.method() == Method::GET && req.uri().path() == "/metrics" {
                        let text = app.metrics.render(&app).await;
                        Response::builder()
                            .header(hyper::header::CONTENT_TYPE, OPENMETRICS)
                            .body(Full::new(Bytes::from(text)))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(
                                b"theia serves GET /metrics here\n",
                            )))
                    }
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            // A scraper that holds its socket open without asking is let go.
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(io, service);
            let _ = tokio::time::timeout(Duration::from_secs(60), served).await;
        });
    }
}

/// Binds the metrics listener on `address`.
pub async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("metrics_listen: cannot listen on {address}"))
}
