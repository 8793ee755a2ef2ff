//! Where the books are kept. One backend for now, the embedded store; the
//! enum leaves room for the Redis store of a manager cluster.

mod embedded;

pub use embedded::EmbeddedStore;

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

/// A new random cluster id, `k-` and 16 hex digits.
pub fn new_cluster_id() -> String {
    format!("k-{:016x}", rand::random::<u64>())
}

/// A store backend.
pub enum Store {
    /// One manager, data on local disk.
    Embedded(EmbeddedStore),
}

impl Store {
    /// Every stored change, to rebuild the books at start.
    pub fn load(&self) -> Result<Vec<Change>, StoreError> {
        match self {
            Self::Embedded(s) => s.load(),
        }
    }

    /// Writes changes and deletes keys, all or nothing, durably: when this
    /// returns `Ok`, they survive a crash.
    pub fn write(&self, changes: &[Change], deletes: &[String]) -> Result<(), StoreError> {
        match self {
            Self::Embedded(s) => s.write(changes, deletes),
        }
    }

    /// The cluster id held by the store, made when it was created.
    pub fn cluster_id(&self) -> &str {
        match self {
            Self::Embedded(s) => s.cluster_id(),
        }
    }

    /// The backend's name, as `ClusterService` reports it.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
        }
    }

    /// Where the data is.
    pub fn location(&self) -> String {
        match self {
            Self::Embedded(s) => s.path().display().to_string(),
        }
    }
}
