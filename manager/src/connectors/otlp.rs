//! Elastic APM (or any OpenTelemetry collector) through OTLP over gRPC:
//! a trace span for every call the manager serves (the `rpc` span, with
//! its method, request id and caller), every scheduling decision and every
//! store commit, exported in batches.
//!
//! The SDK's batch processor keeps a bounded queue of finished spans and
//! exports from a thread of its own, so a slow or dead collector never
//! slows the manager: spans that do not fit are dropped (the SDK logs how
//! many when it shuts down).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use theia::config::ExtraLayer;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;

/// Starts exporting spans to the collector at `endpoint`
/// (`http://host:4317`); the layer turns the manager's spans into OTLP
/// spans, and the provider must be shut down at exit to send the last.
/// Call it inside the Tokio runtime: the gRPC channel runs on it.
pub fn init(endpoint: &str) -> Result<(SdkTracerProvider, ExtraLayer), String> {
    let uri: hyper::Uri = endpoint
        .parse()
        .map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "{endpoint:?} is not an http:// URL of an OTLP/gRPC collector such as http://127.0.0.1:4317"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| format!("{endpoint}: {e}"))?;
    let resource = Resource::builder()
        .with_service_name("theia-manager")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("theia-manager");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO)
        .boxed();
    Ok((provider, layer))
}
