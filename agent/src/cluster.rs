//! Which cluster this agent serves. A manager names its cluster in Welcome;
//! the agent remembers the cluster it applied assignments for, in its state
//! directory, and never lets a manager of another cluster (or one whose
//! store is new and empty, and so has a new id) release them by sending an
//! empty or foreign desired set.

use std::path::{Path, PathBuf};

use crate::driver::write_atomically;

/// The file in the state directory that holds the cluster id.
pub const CLUSTER_FILE: &str = "cluster-id";

/// The cluster id this agent follows, as kept on disk.
#[derive(Debug)]
pub struct ClusterMemory {
    path: PathBuf,
    id: Option<String>,
}

impl ClusterMemory {
    /// Reads what `state_dir` remembers (nothing on a first start).
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let path = state_dir.join(CLUSTER_FILE);
        let id = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text.trim().to_owned()).filter(|id| !id.is_empty()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(Self { path, id })
    }

    /// The remembered cluster id.
    #[cfg(test)]
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Whether to follow a manager of cluster `offered`, given whether the
    /// driver holds any assignment. A different cluster is refused while
    /// something is held; otherwise the offered cluster is remembered. An
    /// empty id comes from a manager older than cluster ids: followed, not
    /// remembered.
    pub fn admit(&mut self, offered: &str, holds_assignments: bool) -> Result<(), String> {
        if offered.is_empty() || self.id.as_deref() == Some(offered) {
            return Ok(());
        }
        if let (Some(mine), true) = (&self.id, holds_assignments) {
            return Err(format!(
                "this manager keeps the books of cluster {offered}, but this agent holds assignments of cluster {mine}; it keeps them and tries the next manager (a manager with a new, empty store, or one of another cluster, must not release them)"
            ));
        }
        write_atomically(&self.path, offered.as_bytes()).map_err(|e| {
            format!(
                "cannot remember the cluster id in {}: {e}",
                self.path.display()
            )
        })?;
        self.id = Some(offered.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_follows_its_first_cluster_and_refuses_another_while_it_holds_anything() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ClusterMemory::open(dir.path()).unwrap();
        assert_eq!(m.id(), None);
        m.admit("k-1", true).unwrap();
        assert_eq!(
            ClusterMemory::open(dir.path()).unwrap().id(),
            Some("k-1"),
            "kept on disk"
        );
        m.admit("k-1", true).unwrap();
        let err = m.admit("k-2", true).unwrap_err();
        assert!(
            err.contains("cluster k-2") && err.contains("cluster k-1"),
            "{err}"
        );
        assert_eq!(m.id(), Some("k-1"), "a refusal changes nothing");
        m.admit("", true).unwrap();
        assert_eq!(
            m.id(),
            Some("k-1"),
            "an old manager without an id is followed, not remembered"
        );
        m.admit("k-2", false).unwrap();
        assert_eq!(
            ClusterMemory::open(dir.path()).unwrap().id(),
            Some("k-2"),
            "with nothing held there is nothing to protect"
        );
    }
}
