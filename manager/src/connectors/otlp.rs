//! Elastic APM (or any OpenTelemetry collector) through OTLP over gRPC:
//! a trace span for every call the manager serves (the `rpc` span, with
//! its method, request id and caller), every scheduling decision and every
//! store commit, exported in batches.
//!
//! Finished spans wait in a bounded queue of the manager's own, and a task
//! exports them in batches, so a slow or dead collector never slows the
//! manager: spans that do not fit are dropped and counted, and a failed
//! export is tried twice more with backoff before its spans are. The SDK's
//! variables size it: `OTEL_BSP_MAX_QUEUE_SIZE` (2048),
//! `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512) and `OTEL_BSP_SCHEDULE_DELAY`
//! (1000 ms).

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};
use theia::config::ExtraLayer;
use tokio::sync::mpsc;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;

use super::Stats;

/// What the OTLP connector did, for the metrics.
pub static STATS: LazyLock<Arc<Stats>> = LazyLock::new(Arc::default);

/// A number from the environment variable `key`, else `default`.
fn setting(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// Starts exporting spans to the collector at `endpoint`
/// (`http://host:4317`); the layer turns the manager's spans into OTLP
/// spans, and the provider must be shut down at exit to send the last.
/// Call it inside the Tokio runtime: the export runs on it.
pub fn init(endpoint: &str) -> Result<(SdkTracerProvider, ExtraLayer), String> {
    let uri: hyper::Uri = endpoint
        .parse()
        .map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "{endpoint:?} is not an http:// URL of an OTLP/gRPC collector such as http://127.0.0.1:4317"
        ));
    }
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
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
    exporter.set_resource(&resource);
    let processor = Queued::start(exporter);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("theia-manager");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO)
        .boxed();
    Ok((provider, layer))
}

/// Finished spans into a bounded queue; a task exports them in batches.
#[derive(Debug)]
struct Queued {
    queue: Mutex<Option<mpsc::Sender<SpanData>>>,
    done: Arc<tokio::sync::Notify>,
}

impl Queued {
    fn start(exporter: opentelemetry_otlp::SpanExporter) -> Self {
        let capacity = setting("OTEL_BSP_MAX_QUEUE_SIZE", 2048);
        let batch = setting("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512);
        let delay = Duration::from_millis(setting("OTEL_BSP_SCHEDULE_DELAY", 1000) as u64);
        let (queue, mut intake) = mpsc::channel(capacity);
        let done = Arc::new(tokio::sync::Notify::new());
        let finished = done.clone();
        tokio::spawn(async move {
            let mut spans = Vec::with_capacity(batch);
            loop {
                let more = tokio::time::timeout(delay, intake.recv_many(&mut spans, batch)).await;
                let closed = matches!(more, Ok(0));
                if !spans.is_empty() {
                    let n = spans.len() as u64;
                    let batch = std::mem::take(&mut spans);
                    let sent = export_retrying(&exporter, batch, closed).await;
                    let counter = if sent { &STATS.sent } else { &STATS.dropped };
                    counter.fetch_add(n, Ordering::Relaxed);
                }
                STATS
                    .queued
                    .store((capacity - intake.capacity()) as u64, Ordering::Relaxed);
                if closed {
                    break;
                }
            }
            finished.notify_one();
        });
        Self {
            queue: Mutex::new(Some(queue)),
            done,
        }
    }
}

/// Tries to export one more time after a failure.
const RETRIES: u32 = 2;

/// Exports `batch`, retrying a failure with backoff (once the queue is
/// closed, at exit, without waiting); whether it went out.
async fn export_retrying(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: Vec<SpanData>,
    closing: bool,
) -> bool {
    let mut wait = Duration::from_millis(200);
    for attempt in 0..=RETRIES {
        match exporter.export(batch.clone()).await {
            Ok(()) => return true,
            Err(e) if attempt < RETRIES && !closing => {
                tracing::debug!(error = %e, retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "span export failed; will retry");
                tokio::time::sleep(wait).await;
                wait *= 4;
            }
            Err(_) => return false,
        }
    }
    false
}

impl SpanProcessor for Queued {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let taken = queue.as_ref().is_some_and(|q| q.try_send(span).is_ok());
        if !taken {
            STATS.drop_some(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        // Closing the queue has the task export what is left, then stop.
        let closed = self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
        if closed.is_none() {
            return Ok(());
        }
        drop(closed);
        let done = self.done.clone();
        let waited = std::thread::scope(|s| {
            s.spawn(|| {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                else {
                    return false;
                };
                rt.block_on(async { tokio::time::timeout(timeout, done.notified()).await.is_ok() })
            })
            .join()
            .unwrap_or(false)
        });
        if waited {
            Ok(())
        } else {
            Err(opentelemetry_sdk::error::OTelSdkError::Timeout(timeout))
        }
    }
}
