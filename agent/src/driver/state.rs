//! The assignments a driver applied, kept in `state_dir/assignments.json` so
//! that a restarted agent knows what it holds.
//!
//! The file is a JSON object from claim id to `{tenant, resources}` with
//! resources in base units. It is replaced atomically (temporary file in the
//! same directory, fsync, rename, fsync of the directory): after a crash it
//! is either the old or the new version, never half of one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use theia::model::Resources;

use super::{Assignment, DriverError, Outcome};

/// The name of the state file inside `state_dir`.
pub const STATE_FILE: &str = "assignments.json";

/// What the driver holds for one claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The tenant that holds the claim.
    pub tenant: String,
    /// Base units per class.
    pub resources: Resources,
}

impl From<&Assignment> for Record {
    fn from(a: &Assignment) -> Self {
        Self {
            tenant: a.tenant.clone(),
            resources: a.resources.clone(),
        }
    }
}

/// The applied assignments, in memory and on disk; every change is on disk
/// before it is reported.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    records: BTreeMap<String, Record>,
}

impl StateFile {
    /// Opens the state in `dir`, creating the directory if needed, and
    /// rewrites the file once so that an unwritable directory is reported at
    /// start rather than at the first assignment.
    pub fn open(dir: &Path) -> Result<Self, DriverError> {
        fs::create_dir_all(dir).map_err(|cause| DriverError::State {
            action: "create the state directory",
            path: dir.to_owned(),
            cause,
        })?;
        let path = dir.join(STATE_FILE);
        let records = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|cause| DriverError::CorruptState {
                    path: path.clone(),
                    cause,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(cause) => {
                return Err(DriverError::State {
                    action: "read",
                    path,
                    cause,
                });
            }
        };
        let state = Self { path, records };
        state.save()?;
        Ok(state)
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is held for `claim_id`.
    pub fn get(&self, claim_id: &str) -> Option<&Record> {
        self.records.get(claim_id)
    }

    /// The claims held.
    pub fn held(&self) -> BTreeSet<String> {
        self.records.keys().cloned().collect()
    }

    /// The sum of every held claim's resources, leaving out `except` (the
    /// claim being re-applied, whose old share must not count against it).
    pub fn used(&self, except: Option<&str>) -> Resources {
        let mut used = Resources::new();
        for (id, record) in &self.records {
            if Some(id.as_str()) != except {
                used.add(&record.resources);
            }
        }
        used
    }

    /// Records `assignment` and writes the file; a no-op when it is held
    /// exactly so already. On a write error nothing changes.
    pub fn insert(&mut self, assignment: &Assignment) -> Result<Outcome, DriverError> {
        let record = Record::from(assignment);
        if self.records.get(&assignment.claim_id) == Some(&record) {
            return Ok(Outcome::Unchanged);
        }
        let old = self.records.insert(assignment.claim_id.clone(), record);
        if let Err(e) = self.save() {
            match old {
                Some(old) => self.records.insert(assignment.claim_id.clone(), old),
                None => self.records.remove(&assignment.claim_id),
            };
            return Err(e);
        }
        Ok(Outcome::Changed)
    }

    /// Forgets `claim_id` and writes the file; a no-op when it is not held.
    /// On a write error nothing changes.
    pub fn remove(&mut self, claim_id: &str) -> Result<Outcome, DriverError> {
        let Some(old) = self.records.remove(claim_id) else {
            return Ok(Outcome::Unchanged);
        };
        if let Err(e) = self.save() {
            self.records.insert(claim_id.to_owned(), old);
            return Err(e);
        }
        Ok(Outcome::Changed)
    }

    fn save(&self) -> Result<(), DriverError> {
        let bytes = serde_json::to_vec_pretty(&self.records).map_err(|e| DriverError::State {
            action: "encode",
            path: self.path.clone(),
            cause: std::io::Error::other(e),
        })?;
        write_atomically(&self.path, &bytes).map_err(|cause| DriverError::State {
            action: "write",
            path: self.path.clone(),
            cause,
        })
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new
/// content, never a torn file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let tmp = dir.join(name);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    // The rename lives in the directory; without this a power cut may undo it.
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(claim: &str, resources: &str) -> Assignment {
        Assignment {
            claim_id: claim.into(),
            tenant: "acme".into(),
            resources: Resources::parse_list("r", resources).unwrap(),
        }
    }

    #[test]
    fn survives_a_restart_as_a_json_object_keyed_by_claim() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("nested/state");
        let mut state = StateFile::open(&state_dir).unwrap();
        assert_eq!(
            state.insert(&assignment("c1", "compute.vcpu=4")).unwrap(),
            Outcome::Changed
        );
        assert_eq!(
            state
                .insert(&assignment("c2", "compute.memory=1Gi"))
                .unwrap(),
            Outcome::Changed
        );
        assert_eq!(state.remove("c2").unwrap(), Outcome::Changed);

        let text = fs::read_to_string(state_dir.join(STATE_FILE)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"c1": {"tenant": "acme", "resources": {"compute.vcpu": 4}}})
        );
        assert!(!state_dir.join("assignments.json.tmp").exists());

        let again = StateFile::open(&state_dir).unwrap();
        assert_eq!(again.held(), BTreeSet::from(["c1".to_owned()]));
        assert_eq!(
            again.get("c1"),
            Some(&Record::from(&assignment("c1", "compute.vcpu=4")))
        );
    }

    #[test]
    fn repeating_itself_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateFile::open(dir.path()).unwrap();
        let a = assignment("c1", "compute.vcpu=4");
        assert_eq!(state.insert(&a).unwrap(), Outcome::Changed);
        assert_eq!(state.insert(&a).unwrap(), Outcome::Unchanged);
        assert_eq!(state.remove("c1").unwrap(), Outcome::Changed);
        assert_eq!(state.remove("c1").unwrap(), Outcome::Unchanged);
        assert_eq!(state.remove("never-held").unwrap(), Outcome::Unchanged);
    }

    #[test]
    fn sums_what_is_used_except_one_claim() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateFile::open(dir.path()).unwrap();
        state
            .insert(&assignment("c1", "compute.vcpu=4,compute.memory=1Gi"))
            .unwrap();
        state.insert(&assignment("c2", "compute.vcpu=2")).unwrap();
        let vcpu = theia::model::ResourceClass::parse("compute.vcpu").unwrap();
        assert_eq!(state.used(None).get(&vcpu), 6);
        assert_eq!(state.used(Some("c1")).get(&vcpu), 2);
    }

    #[test]
    fn an_unusable_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        fs::write(&file, b"not a directory").unwrap();
        let e = StateFile::open(&file.join("state")).unwrap_err();
        assert!(matches!(e, DriverError::State { .. }), "{e}");
        assert!(e.to_string().contains("a-file/state"), "{e}");
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let mut state = StateFile::open(&state_dir).unwrap();
        state.insert(&assignment("c1", "compute.vcpu=4")).unwrap();
        // Pull the directory away so that the next write must fail.
        fs::rename(&state_dir, dir.path().join("moved")).unwrap();
        fs::write(&state_dir, b"in the way").unwrap();
        let e = state
            .insert(&assignment("c2", "compute.vcpu=1"))
            .unwrap_err();
        assert!(
            matches!(
                e,
                DriverError::State {
                    action: "write",
                    ..
                }
            ),
            "{e}"
        );
        assert!(state.remove("c1").is_err());
        assert_eq!(state.held(), BTreeSet::from(["c1".to_owned()]));
    }

    #[test]
    fn a_corrupt_file_is_refused_not_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(STATE_FILE), b"{ not json").unwrap();
        let e = StateFile::open(dir.path()).unwrap_err();
        assert!(matches!(e, DriverError::CorruptState { .. }), "{e}");
        // The evidence stays where it was.
        assert_eq!(
            fs::read(dir.path().join(STATE_FILE)).unwrap(),
            b"{ not json"
        );
    }
}
