//! Where the books are kept: the embedded store for one manager, Redis for
//! a manager cluster. Both load every register, merge-write groups of them
//! all or nothing, and hold the cluster id.

mod embedded;
mod redis;
mod sealed;

use std::sync::Arc;

pub use self::redis::{FeedEntry, RedisStore};
pub use embedded::EmbeddedStore;
pub use sealed::Secret;

use theia::state::Change;

/// Why the store failed; a write that fails was not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be used.
    #[error("cannot use data directory {path}: {message}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        message: String,
    },
    /// The store cannot be reached or did not answer in time.
    #[error("{0}")]
    Unavailable(String),
    /// The cluster secret is not the one the store was made with.
    #[error(
        "the secret does not match this cluster: Redis at {0} holds a key-check record sealed with another secret; nothing was written"
    )]
    WrongSecret(String),
    /// Another manager changed what this decision was based on.
    #[error("another manager changed the books this decision was based on; retry")]
    Conflict,
    /// The database refused an operation.
    #[error("store: {0}")]
    Database(String),
    /// A stored record could not be read back.
    #[error("store record {key:?} is unreadable: {message}")]
    Corrupt {
        /// Its key.
        key: String,
        /// Why.
        message: String,
    },
}

/// One job's part of a group write.
#[derive(Debug, Default)]
pub struct Batch {
    /// Registers to merge.
    pub writes: Vec<Change>,
    /// Generation fields (as [`Store::gen_field`] names them) that must hold
    /// these values for the batch to be written.
    pub checks: Vec<(String, u64)>,
    /// Generation fields to advance when it is written.
    pub bumps: Vec<String>,
}

/// What became of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written; the bumped fields' new values.
    Written(Vec<(String, u64)>),
    /// Not written: a generation it checked had moved.
    Conflict,
}

/// A new random cluster id, `k-` and 16 hex digits.
pub fn new_cluster_id() -> String {
    format!("k-{:016x}", rand::random::<u64>())
}

/// A store backend.
pub enum Store {
    /// One manager, data on local disk.
    Embedded(Arc<EmbeddedStore>),
    /// A manager cluster's store in Redis.
    Redis(Box<RedisStore>),
}

impl Store {
    /// Every stored change, to rebuild the books at start.
    pub async fn load(&self) -> Result<Vec<Change>, StoreError> {
        match self {
            Self::Embedded(s) => {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.load())
                    .await
                    .map_err(|e| StoreError::Database(e.to_string()))?
            }
            Self::Redis(s) => s.load().await,
        }
    }

    /// Writes a group of batches and deletes keys, durably: when this
    /// returns `Ok`, what it says was written survives a crash. A batch
    /// whose generation checks fail (another manager placed meanwhile) is
    /// not written, and nor is any later batch of the group that checks a
    /// field a failed batch checked. The embedded store has one writer and
    /// checks nothing.
    pub async fn write(
        &self,
        batches: Vec<Batch>,
        deletes: Vec<String>,
    ) -> Result<Vec<Outcome>, StoreError> {
        match self {
            Self::Embedded(s) => {
                let s = s.clone();
                let n = batches.len();
                let changes: Vec<Change> = batches.into_iter().flat_map(|b| b.writes).collect();
                tokio::task::spawn_blocking(move || s.write(&changes, &deletes))
                    .await
                    .map_err(|e| StoreError::Database(e.to_string()))??;
                Ok((0..n).map(|_| Outcome::Written(Vec::new())).collect())
            }
            Self::Redis(s) => s.write(&batches, &deletes).await,
        }
    }

    /// Whether other managers write to this store too.
    pub fn shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// The name a generation field has in this store.
    pub fn gen_field(&self, name: &str) -> String {
        match self {
            Self::Embedded(_) => name.to_owned(),
            Self::Redis(s) => s.gen_field(name),
        }
    }

    /// Lets go of the store at shutdown.
    pub async fn close(&self) {
        if let Self::Redis(s) = self {
            s.close().await;
        }
    }

    /// The cluster id held by the store, made when it was created.
    pub fn cluster_id(&self) -> &str {
        match self {
            Self::Embedded(s) => s.cluster_id(),
            Self::Redis(s) => s.cluster_id(),
        }
    }

    /// The backend's name, as `ClusterService` reports it.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Redis(_) => "redis",
        }
    }

    /// Where the data is (a Redis URL without its password).
    pub fn location(&self) -> String {
        match self {
            Self::Embedded(s) => s.path().display().to_string(),
            Self::Redis(s) => s.location().to_owned(),
        }
    }
}
