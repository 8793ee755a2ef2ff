//! The books in memory, the clock that stamps changes, and the store behind
//! them. Placement-relevant changes are written through before a caller gets
//! an answer; high-volume reports are coalesced and flushed when
//! `sync_delta < now − last_sync OR pending > sync_max`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use theia::clock::{HybridClock, Timestamp};
use theia::state::{Books, Change};
use tokio::time::Instant;

use crate::store::{Store, StoreError};

/// Wall-clock Unix milliseconds: the manager's only reading of the system clock.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether coalesced changes are due to be written (HORAO's sync rule).
pub fn sync_due(since_last: Duration, pending: u64, sync_delta: Duration, sync_max: u64) -> bool {
    pending > 0 && (since_last > sync_delta || pending > sync_max)
}

/// The books, their clock and their store; always used under one lock, so
/// that each decision is made on books nobody else is changing.
pub struct Ledger {
    /// Every durable object.
    pub books: Books,
    clock: HybridClock,
    store: Arc<Store>,
    dirty: BTreeSet<String>,
    last_sync: Instant,
    last_sync_ms: u64,
}

impl Ledger {
    /// Loads the books from `store`.
    pub async fn open(store: Store, clock: HybridClock) -> Result<Self, StoreError> {
        let store = Arc::new(store);
        let loader = store.clone();
        let changes = tokio::task::spawn_blocking(move || loader.load())
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        let mut books = Books::default();
        let mut clock = clock;
        let now = wall_ms();
        for change in &changes {
            books.apply(change);
            // Later stamps must order after everything stored, even if this
            // machine's clock went back since it was written.
            let ts = change_ts(change);
            let _ = clock.observe(ts, ts.ms.max(now));
        }
        Ok(Self {
            books,
            clock,
            store,
            dirty: BTreeSet::new(),
            last_sync: Instant::now(),
            last_sync_ms: now,
        })
    }

    /// A fresh timestamp for a local change.
    pub fn stamp(&mut self) -> Timestamp {
        self.clock.now(wall_ms())
    }

    /// Writes `changes` durably, then merges them into the books. On error
    /// nothing changes in memory either.
    pub async fn commit(&mut self, changes: Vec<Change>) -> Result<(), StoreError> {
        let store = self.store.clone();
        let written = changes.clone();
        tokio::task::spawn_blocking(move || store.write(&written))
            .await
            .map_err(|e| StoreError::Database(e.to_string()))??;
        for change in &changes {
            self.books.apply(change);
            if let Change::Datacenter { key, .. } = change {
                self.dirty.remove(key);
            }
        }
        Ok(())
    }

    /// Stamps one change and commits it, durably.
    pub async fn put(
        &mut self,
        change: impl FnOnce(Timestamp) -> Change,
    ) -> Result<(), StoreError> {
        let ts = self.stamp();
        self.commit(vec![change(ts)]).await
    }

    /// Merges a datacenter change in memory only; it is written at the next sync.
    pub fn apply_coalesced(&mut self, change: Change) {
        if let Change::Datacenter { key, .. } = &change {
            self.dirty.insert(key.clone());
        }
        self.books.apply(&change);
    }

    /// Changes held in memory only.
    pub fn pending(&self) -> u64 {
        self.dirty.len() as u64
    }

    /// Unix ms of the last sync.
    pub fn last_sync_ms(&self) -> u64 {
        self.last_sync_ms
    }

    /// Whether a sync is due now.
    pub fn sync_due(&self, sync_delta: Duration, sync_max: u64) -> bool {
        sync_due(
            self.last_sync.elapsed(),
            self.pending(),
            sync_delta,
            sync_max,
        )
    }

    /// Writes every coalesced change.
    pub async fn flush(&mut self) -> Result<(), StoreError> {
        let changes: Vec<Change> = self
            .dirty
            .iter()
            .filter_map(|dc| {
                let register = self.books.datacenters.register(dc)?.clone();
                Some(Change::Datacenter {
                    key: dc.clone(),
                    register,
                })
            })
            .collect();
        self.commit(changes).await?;
        self.dirty.clear();
        self.last_sync = Instant::now();
        self.last_sync_ms = wall_ms();
        Ok(())
    }

    /// Where the store keeps its data, and which backend it is.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn change_ts(change: &Change) -> &Timestamp {
    match change {
        Change::Datacenter { register, .. } => register.timestamp(),
        Change::Tenant { register, .. } => register.timestamp(),
        Change::Profile { register, .. } => register.timestamp(),
        Change::Claim { register, .. } => register.timestamp(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_rule_is_horaos() {
        let d = Duration::from_secs(180);
        assert!(
            !sync_due(Duration::from_secs(10), 0, d, 1000),
            "nothing pending, nothing to do"
        );
        assert!(!sync_due(Duration::from_secs(10), 5, d, 1000));
        assert!(
            sync_due(Duration::from_secs(181), 5, d, 1000),
            "delta elapsed"
        );
        assert!(
            sync_due(Duration::from_secs(10), 1001, d, 1000),
            "too many pending"
        );
    }
}
