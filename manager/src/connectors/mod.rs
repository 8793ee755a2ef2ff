//! Connectors to systems outside theia, each optional and off by default.
//! They read what the manager does (the audit trail) and never hold it up:
//! each keeps a bounded buffer, retries with backoff, and counts what it
//! had to leave out.

pub mod http;
pub mod loki;
pub mod otlp;
pub mod sentry;

use std::sync::atomic::{AtomicU64, Ordering};

/// What one connector has done, for the metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Items waiting to be sent.
    pub queued: AtomicU64,
    /// Items sent.
    pub sent: AtomicU64,
    /// Items left out: the buffer was full, the sink refused them for
    /// good, or the manager fell behind the trail.
    pub dropped: AtomicU64,
}

impl Stats {
    /// Counts `n` more left out.
    pub fn drop_some(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
}
