//! A span around every call: the method, a request id and, once the gate
//! knows it, the caller, so that every line logged while the call is served
//! names them (in JSON logs, as fields of `span`). The request id is the
//! client's `x-request-id` when it sends a usable one, else a fresh one,
//! and is sent back in the response's `x-request-id` header either way, so
//! that a client can quote it.

use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{BoxFuture, http};
use tracing::Instrument;

use crate::metrics::Metrics;

/// The header a request id travels in, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Wraps services in [`RequestSpan`].
#[derive(Clone)]
pub struct RequestSpanLayer {
    metrics: Arc<Metrics>,
}

impl RequestSpanLayer {
    /// A layer that counts every call in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;
    fn layer(&self, inner: S) -> RequestSpan<S> {
        RequestSpan {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Serves each call inside an `rpc` span, and counts it.
#[derive(Clone)]
pub struct RequestSpan<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// The gRPC code an answer's headers carry: a refusal's (a trailers-only
/// answer), else OK (a unary answer, or a stream that opened).
fn code_of(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .map_or(tonic::Code::Ok, |v| tonic::Code::from_bytes(v.as_bytes()))
}

/// The client's request id, if it is one worth keeping: 1 to 64 letters,
/// digits, `-`, `_`, `.` or `:` (anything else could forge log lines or
/// flood them).
fn given_id(value: Option<&http::HeaderValue>) -> Option<String> {
    let text = value?.to_str().ok()?;
    let fits = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    fits.then(|| text.to_owned())
}

/// A fresh request id: 16 hex digits.
fn fresh_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl<S, B> tower::Service<http::Request<B>> for RequestSpan<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let id = given_id(req.headers().get(REQUEST_ID)).unwrap_or_else(fresh_id);
        req.extensions_mut()
            .insert(crate::audit::RequestId(id.clone()));
        let span = tracing::info_span!(
            "rpc",
            method = %req.uri().path(),
            request_id = %id,
            caller = tracing::field::Empty,
        );
        // The ready clone serves this call; a fresh one waits for the next.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        // Entered while the inner layers take the call, so that the gate's
        // refusals are logged inside it too.
        let path = req.uri().path().to_owned();
        let metrics = self.metrics.clone();
        let started = std::time::Instant::now();
        let served = span.in_scope(|| ready.call(req));
        Box::pin(
            async move {
                let mut response = served.await?;
                metrics.call(&path, code_of(response.headers()), started.elapsed());
                if let Ok(value) = http::HeaderValue::from_str(&id) {
                    response.headers_mut().insert(REQUEST_ID, value);
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_client_id_is_kept_and_anything_else_replaced() {
        let header = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert_eq!(
            given_id(Some(&header("req-42.a_b:c"))).as_deref(),
            Some("req-42.a_b:c")
        );
        for bad in ["", "has space", "new\tline", &"x".repeat(65), "quote\"d"] {
            if let Ok(h) = http::HeaderValue::from_str(bad) {
                assert_eq!(given_id(Some(&h)), None, "{bad:?}");
            }
        }
        assert_eq!(given_id(None), None);
        let id = fresh_id();
        assert_eq!(id.len(), 16);
        assert!(given_id(Some(&header(&id))).is_some());
    }
}
