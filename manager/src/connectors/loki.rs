//! Grafana Loki: every audit event as a log line, pushed to
//! `/loki/api/v1/push` as a snappy-compressed protobuf `PushRequest`
//! (`loki-api`), in batches. Streams are labelled by manager, action and
//! outcome only (never by object ids, which would make a stream per
//! object); the line is the event as JSON.
//!
//! A slow or dead Loki never slows the manager: events wait in a bounded
//! buffer (the oldest go first when it is full), a failed push is retried
//! with exponential backoff, and everything left out is counted.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hyper::Uri;
use loki_api::logproto::{EntryAdapter, PushRequest, StreamAdapter};
use loki_api::prost::Message as _;
use theia::audit::{Event, OK};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::Stats;
use super::http::{PostError, post};
use crate::app::App;

/// Events sent in one push, at most.
const BATCH: usize = 1000;
/// Events kept while Loki is slow or away, at most, unless told otherwise.
pub const BUFFER: usize = 10_000;
/// How often a batch goes out.
const FLUSH: Duration = Duration::from_secs(1);
/// How long one push may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct Loki {
    /// The push endpoint: the base URL and `/loki/api/v1/push`.
    pub push: Uri,
    /// Sent as `X-Scope-OrgID` when set (a multi-tenant Loki).
    pub tenant: Option<String>,
    /// Events kept while Loki is slow or away, at most: [`BUFFER`].
    pub buffer: usize,
}

impl Loki {
    /// Reads `loki_url` (the base URL Loki serves on) and `loki_tenant`.
    pub fn new(url: &str, tenant: Option<String>) -> Result<Self, String> {
        let base = url.trim_end_matches('/');
        let push: Uri = format!("{base}/loki/api/v1/push")
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if !matches!(push.scheme_str(), Some("http" | "https")) || push.host().is_none() {
            return Err(format!(
                "{url:?} is not an http:// or https:// URL such as http://127.0.0.1:3100"
            ));
        }
        Ok(Self {
            push,
            tenant,
            buffer: BUFFER,
        })
    }
}

/// The push request for `events`: one stream per label set, entries in
/// time order.
pub fn push_request(manager: &str, events: &[Arc<Event>]) -> PushRequest {
    let mut streams: BTreeMap<String, Vec<EntryAdapter>> = BTreeMap::new();
    for e in events {
        let outcome = if e.code == OK { "ok" } else { "failed" };
        let labels = format!(
            "{{service=\"theia\",manager=\"{}\",action=\"{}\",outcome=\"{outcome}\"}}",
            escape(manager),
            escape(&e.action)
        );
        let line = serde_json::to_string(&**e).unwrap_or_default();
        let secs = i64::try_from(e.time_ms / 1000).unwrap_or(i64::MAX);
        let nanos = i32::try_from((e.time_ms % 1000) * 1_000_000).unwrap_or(0);
        streams.entry(labels).or_default().push(EntryAdapter {
            timestamp: Some(loki_api::prost_types::Timestamp {
                seconds: secs,
                nanos,
            }),
            line,
        });
    }
    PushRequest {
        streams: streams
            .into_iter()
            .map(|(labels, mut entries)| {
                entries.sort_by_key(|e| e.timestamp.map(|t| (t.seconds, t.nanos)));
                StreamAdapter {
                    labels,
                    entries,
                    hash: 0,
                }
            })
            .collect(),
    }
}

/// A label value as LogQL quotes it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A push under way: its batch, and the task that sends it.
type Push = (
    Vec<Arc<Event>>,
    tokio::task::JoinHandle<Result<(), PostError>>,
);

/// Pushes every event of the trail to `loki` until the manager stops. A
/// push runs in a task of its own, so that events keep being taken in
/// (and, past the buffer, counted as left out) while Loki is slow.
pub async fn run(app: Arc<App>, loki: Loki, stats: Arc<Stats>) {
    let mut live = app.trail.subscribe();
    let mut stopping = app.stopping();
    let mut buffer: VecDeque<Arc<Event>> = VecDeque::new();
    let mut tick = tokio::time::interval(FLUSH);
    let mut backoff = FLUSH;
    let mut not_before = Instant::now();
    let mut in_flight: Option<Push> = None;
    let capacity = loki.buffer.max(1);
    loop {
        let mut done = None;
        tokio::select! {
            event = live.recv() => match event {
                Ok(event) => {
                    if buffer.len() >= capacity {
                        buffer.pop_front();
                        stats.drop_some(1);
                    }
                    buffer.push_back(event);
                }
                Err(RecvError::Lagged(n)) => stats.drop_some(n),
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick(), if in_flight.is_none() => {
                if !buffer.is_empty() && Instant::now() >= not_before {
                    let n = buffer.len().min(BATCH);
                    let batch: Vec<Arc<Event>> = buffer.drain(..n).collect();
                    let request = request(&app.manager_id, &loki, &batch);
                    in_flight = Some((batch, tokio::spawn(request)));
                }
            },
            answer = async { (&mut in_flight.as_mut().expect("guarded").1).await }, if in_flight.is_some() => {
                done = Some(answer.unwrap_or_else(|e| Err(PostError::Retry(e.to_string()))));
            },
            _ = stopping.wait_for(|stop| *stop) => break,
        }
        if let Some(answer) = done
            && let Some((batch, _)) = in_flight.take()
        {
            match answer {
                Ok(()) => {
                    stats.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    backoff = FLUSH;
                }
                Err(PostError::Refused(e)) => {
                    // Sending it again would be refused again: left out.
                    stats.drop_some(batch.len() as u64);
                    tracing::error!(error = %e, events = batch.len(), "Loki refused a batch of audit events; left out");
                }
                Err(PostError::Retry(e)) => {
                    not_before = Instant::now() + backoff;
                    tracing::warn!(error = %e, retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX), queued = buffer.len() + batch.len(), "Loki push failed; will retry");
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    // Back to the front, the oldest first; what no longer
                    // fits is the oldest, and is left out.
                    for event in batch.into_iter().rev() {
                        if buffer.len() >= capacity {
                            stats.drop_some(1);
                        } else {
                            buffer.push_front(event);
                        }
                    }
                }
            }
        }
        let sending = in_flight.as_ref().map_or(0, |(b, _)| b.len());
        stats
            .queued
            .store((buffer.len() + sending) as u64, Ordering::Relaxed);
    }
    // What is left when the manager stops is not sent.
    if let Some((batch, task)) = in_flight.take() {
        task.abort();
        stats.drop_some(batch.len() as u64);
    }
    stats.drop_some(buffer.len() as u64);
    stats.queued.store(0, Ordering::Relaxed);
}

/// The push of `batch`, ready to run on its own.
fn request(
    manager: &str,
    loki: &Loki,
    batch: &[Arc<Event>],
) -> impl std::future::Future<Output = Result<(), PostError>> + Send + 'static {
    let body = snap::raw::Encoder::new()
        .compress_vec(&push_request(manager, batch).encode_to_vec())
        .map_err(|e| PostError::Refused(format!("snappy: {e}")));
    let mut headers = vec![("content-type", "application/x-protobuf".to_owned())];
    if let Some(tenant) = &loki.tenant {
        headers.push(("x-scope-orgid", tenant.clone()));
    }
    let uri = loki.push.clone();
    async move { post(&uri, &headers, body?, PUSH_TIMEOUT).await }
}
