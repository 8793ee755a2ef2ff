//! The embedded store: one redb file in the data directory. Every write is
//! a durable transaction, so an acknowledged change survives `kill -9`.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use theia::state::Change;

use super::StoreError;

/// `kind/key` → JSON of the register.
const REGISTERS: TableDefinition<&str, &[u8]> = TableDefinition::new("registers");
/// Facts about the store itself, such as the cluster id.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const CLUSTER_ID: &str = "cluster_id";

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

/// A redb database in the data directory.
pub struct EmbeddedStore {
    db: Database,
    path: PathBuf,
    cluster_id: String,
}

impl EmbeddedStore {
    /// Opens (or creates) `data_dir/theia.redb`, creating the directory.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir_err = |e: std::io::Error| StoreError::DataDir {
            path: data_dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(data_dir).map_err(dir_err)?;
        let path = data_dir.join("theia.redb");
        let db = Database::create(&path).map_err(|e| StoreError::DataDir {
            path: data_dir.display().to_string(),
            message: e.to_string(),
        })?;
        // Make sure the tables exist so that reads of a fresh store succeed,
        // and give a new store its cluster id, once.
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(REGISTERS).map_err(db_err)?;
        let cluster_id = {
            let mut meta = tx.open_table(META).map_err(db_err)?;
            let existing = meta
                .get(CLUSTER_ID)
                .map_err(db_err)?
                .map(|v| v.value().to_owned());
            match existing {
                Some(id) => id,
                None => {
                    let id = super::new_cluster_id();
                    meta.insert(CLUSTER_ID, id.as_str()).map_err(db_err)?;
                    id
                }
            }
        };
        tx.commit().map_err(db_err)?;
        Ok(Self {
            db,
            path,
            cluster_id,
        })
    }

    /// The cluster id this store was given when it was created.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored change.
    pub fn load(&self) -> Result<Vec<Change>, StoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(REGISTERS).map_err(db_err)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(db_err)? {
            let (k, v) = row.map_err(db_err)?;
            let change: Change =
                serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                    key: k.value().to_owned(),
                    message: e.to_string(),
                })?;
            out.push(change);
        }
        Ok(out)
    }

    /// Writes changes and deletes keys in one durable transaction.
    pub fn write(&self, changes: &[Change], deletes: &[String]) -> Result<(), StoreError> {
        if changes.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(REGISTERS).map_err(db_err)?;
            for change in changes {
                let bytes = serde_json::to_vec(change).map_err(db_err)?;
                table
                    .insert(change.storage_key().as_str(), bytes.as_slice())
                    .map_err(db_err)?;
            }
            for key in deletes {
                table.remove(key.as_str()).map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use theia::clock::HybridClock;
    use theia::crdt::Lww;
    use theia::model::{Profile, Resources};

    #[test]
    fn writes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut clock = HybridClock::new("m", std::time::Duration::from_secs(1));
        let change = Change::Profile {
            key: "small".into(),
            register: Lww::new(
                clock.now(1),
                Profile {
                    name: "small".into(),
                    resources: Resources::parse_list("r", "compute.vcpu=1").unwrap(),
                    description: "d".into(),
                },
            ),
        };
        {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            assert!(store.load().unwrap().is_empty());
            store.write(std::slice::from_ref(&change), &[]).unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), vec![change.clone()]);
        let id = store.cluster_id().to_owned();
        assert!(id.starts_with("k-") && id.len() == 18, "{id}");
        store.write(&[], &[change.storage_key()]).unwrap();
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert!(
            store.load().unwrap().is_empty(),
            "a deleted key stays deleted"
        );
        assert_eq!(store.cluster_id(), id, "the cluster id is made once");
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            EmbeddedStore::open(other.path()).unwrap().cluster_id(),
            id,
            "another store is another cluster"
        );
    }

    #[test]
    fn an_unusable_data_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let err = EmbeddedStore::open(&file.join("sub")).err().unwrap();
        assert!(
            err.to_string().contains("cannot use data directory"),
            "{err}"
        );
    }
}
