//! The OTLP connector of the real `theia-manager` binary against an
//! OpenTelemetry collector stand-in (the OTLP/gRPC trace service, on
//! loopback): spans for the calls it serves, its decisions and its store
//! commits arrive, with the manager's service name; with no collector
//! there, it serves as ever.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use theia::api::v1;

use crate::common::*;

/// Every export the stand-in took; it refuses the first one (UNAVAILABLE).
#[derive(Clone, Default)]
struct Collector(
    Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    Arc<Mutex<usize>>,
);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut refused = self.1.lock().unwrap();
        if *refused == 0 {
            *refused += 1;
            return Err(tonic::Status::unavailable("warming up"));
        }
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A span as taken: its service's name, its name, its attributes as text.
type Span = (String, String, Vec<(String, String)>);

/// Every span taken.
fn spans(collector: &Collector) -> Vec<Span> {
    let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(Value::StringValue(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let mut out = Vec::new();
    for request in collector.0.lock().unwrap().iter() {
        for resource in &request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .map(|kv| text(&kv.value))
                .unwrap_or_default();
            for scope in &resource.scope_spans {
                for span in &scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), text(&kv.value)))
                        .collect();
                    out.push((service.clone(), span.name.clone(), attributes));
                }
            }
        }
    }
    out
}

/// The real manager binary sending spans to `endpoint`, on a free port,
/// with its metrics on another; `env` for the SDK's variables.
fn manager(dir: &std::path::Path, endpoint: &str, env: &[(&str, &str)]) -> (Child, String, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut command = std::process::Command::new(bin_dir().join("theia-manager"));
    command
        .args([
            "--listen",
            &addr,
            "--data-dir",
            dir.to_str().unwrap(),
            "--insecure",
            "--otlp-endpoint",
            endpoint,
            "--metrics-listen",
            &metrics,
        ])
        // The SDK's own knob: export every 200 ms rather than every second.
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .envs(env.iter().copied());
    let (child, _) = spawn_command_until(command, "serving");
    remember_admin_token(&addr, &read_admin_token(&dir.join("admin.token")));
    (child, addr, metrics)
}

/// The value of the connector's `series` (`sent`, `dropped`) on the
/// manager's metrics at `addr`.
async fn counter(addr: &str, series: &str) -> u64 {
    let (_, text) = http_get(addr.parse().unwrap(), "/metrics").await;
    let prefix = format!("theia_connector_{series}_total{{connector=\"otlp\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_calls_decisions_and_commits_reach_the_collector() {
    init();
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let served = collector.clone();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(served))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let dir = tempfile::tempdir().unwrap();
    let (_manager, addr, metrics) = manager(dir.path(), &endpoint, &[]);
    let mut api = Clients::new(channel_to(&addr).await);
    api.create_tenant("acme", &[("compute.vcpu", "4")]).await;
    let refused = api
        .create_claim(v1::ClaimSpec {
            tenant: "acme".into(),
            count: 1,
            resources: [("compute.vcpu".to_owned(), "1".to_owned())].into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    // No datacenter: decided, and refused.
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    eventually("the spans reach the collector", || {
        let spans = spans(&collector);
        async move {
            let named = |name: &str| spans.iter().any(|(_, n, _)| n == name);
            (named("rpc") && named("schedule") && named("store_commit")).then_some(spans)
        }
    })
    .await;
    let spans = spans(&collector);
    assert!(
        spans
            .iter()
            .all(|(service, _, _)| service == "theia-manager"),
        "{spans:?}"
    );
    let create = spans
        .iter()
        .find(|(_, name, attrs)| {
            name == "rpc"
                && attrs.contains(&(
                    "method".into(),
                    "/theia.v1.TenantService/CreateTenant".into(),
                ))
        })
        .expect("the CreateTenant call's span");
    assert!(
        create.2.iter().any(|(k, v)| k == "caller" && v == "admin"),
        "{create:?}"
    );
    assert!(
        create
            .2
            .iter()
            .any(|(k, v)| k == "request_id" && !v.is_empty()),
        "{create:?}"
    );
    // The first export was refused, retried, and nothing was lost.
    assert_eq!(*collector.1.lock().unwrap(), 1);
    assert!(counter(&metrics, "sent").await > 0);
    assert_eq!(counter(&metrics, "dropped").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_collector_holds_nothing_up_and_what_does_not_fit_is_counted() {
    init();
    // Every export to it hangs.
    let silent = Silent::start().await;
    let endpoint = format!("http://{}", silent.addr);
    let dir = tempfile::tempdir().unwrap();
    let (_manager, addr, metrics) = manager(
        dir.path(),
        &endpoint,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
        ],
    );
    let mut api = Clients::new(channel_to(&addr).await);
    for i in 0..20 {
        api.create_tenant(&format!("t{i}"), &[]).await;
    }
    assert_eq!(api.tenant_names().await.len(), 20);
    // Forty calls and commits or more, a queue of four: most were dropped.
    let dropped = counter(&metrics, "dropped").await;
    assert!(dropped >= 20, "{dropped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_collector_there_the_manager_serves_as_ever() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let (_manager, addr, _) = manager(dir.path(), &nobody, &[]);
    let mut api = Clients::new(channel_to(&addr).await);
    for i in 0..20 {
        api.create_tenant(&format!("t{i}"), &[]).await;
    }
    assert_eq!(api.tenant_names().await.len(), 20);
}
