//! The assignments a driver applied, kept in `state_dir` so that a
//! restarted agent knows what it holds.
//!
//! Two files: `assignments.json`, a snapshot (a JSON object from claim id
//! to `{tenant, resources}`, resources in base units), replaced atomically
//! (temporary file, fsync, rename, fsync of the directory); and
//! `assignments.log`, one JSON line per change since the snapshot
//! (`{"op":"put",...}` or `{"op":"del","claim":...}`), each appended and
//! synced before the change is reported. Applying N assignments writes
//! O(N) bytes: the log is folded into a new snapshot only once it has more
//! lines than the snapshot has entries (and at start). A crash mid-append
//! leaves a last line without its newline, which is ignored; any other bad
//! line is corruption, refused, never forgotten.
//!
//! The directory is locked (`agent.lock`, held while the state is open),
//! so that two agents cannot share it; readers ([`read_state`]) take
//! `assignments.lock` shared, and folding takes it alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use theia::model::Resources;

use super::{Assignment, DriverError, Outcome};

/// The name of the snapshot inside `state_dir`.
pub const STATE_FILE: &str = "assignments.json";
/// The name of the log of changes since the snapshot.
pub const LOG_FILE: &str = "assignments.log";
/// Held by the agent that owns the directory.
pub const LOCK_FILE: &str = "agent.lock";
/// Shared by readers, taken alone while the log is folded.
const READ_LOCK_FILE: &str = "assignments.lock";
/// The log is folded once it has more lines than this or than there are
/// assignments, whichever is more.
const FOLD_AFTER: usize = 1024;

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

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Entry {
    /// `claim` is held as `record` says.
    Put {
        claim: String,
        #[serde(flatten)]
        record: Record,
    },
    /// `claim` is no longer held.
    Del { claim: String },
}

/// The applied assignments, in memory and on disk; every change is on disk
/// before it is reported.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    log: PathBuf,
    read_lock: PathBuf,
    records: BTreeMap<String, Record>,
    /// Lines in the log since the last fold.
    logged: usize,
    /// An append failed half-way, or a fold did: the next change folds
    /// (so that no later line follows a torn one).
    fold_first: bool,
    /// Bytes written since opening, snapshots included.
    written: u64,
    /// Held for as long as the state is open.
    _lock: File,
}

fn state_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DriverError {
    let path = path.to_owned();
    move |cause| DriverError::State {
        action,
        path,
        cause,
    }
}

/// Takes `dir`'s agent lock, or says which process holds it.
fn lock_dir(dir: &Path) -> Result<File, DriverError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(state_error("open the lock file", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(DriverError::InUse {
                dir: dir.to_owned(),
                holder: holder.trim().to_owned(),
            });
        }
        Err(fs::TryLockError::Error(cause)) => {
            return Err(DriverError::State {
                action: "lock",
                path,
                cause,
            });
        }
    }
    // Who holds it, for the message another agent gets.
    let mine = format!("pid {}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(mine.as_bytes()))
        .map_err(state_error("write the lock file", &path))?;
    Ok(file)
}

/// Reads the snapshot and replays the log over it.
fn load(dir: &Path) -> Result<BTreeMap<String, Record>, DriverError> {
    let path = dir.join(STATE_FILE);
    let mut records: BTreeMap<String, Record> = match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|cause| DriverError::CorruptState {
            path: path.clone(),
            cause,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(cause) => {
            return Err(DriverError::State {
                action: "read",
                path,
                cause,
            });
        }
    };
    let log = dir.join(LOG_FILE);
    let bytes = match fs::read(&log) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(cause) => {
            return Err(DriverError::State {
                action: "read",
                path: log,
                cause,
            });
        }
    };
    // Only lines that end in a newline were written whole.
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    for line in bytes[..whole]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        match serde_json::from_slice(line) {
            Ok(Entry::Put { claim, record }) => {
                records.insert(claim, record);
            }
            Ok(Entry::Del { claim }) => {
                records.remove(&claim);
            }
            Err(cause) => {
                return Err(DriverError::CorruptState { path: log, cause });
            }
        }
    }
    Ok(records)
}

/// What the agent whose state is in `dir` holds, read without its lock
/// (while it runs, too): a consistent state, at most a change behind.
pub fn read_state(dir: &Path) -> Result<BTreeMap<String, Record>, DriverError> {
    if !dir.exists() {
        return Ok(BTreeMap::new());
    }
    let path = dir.join(READ_LOCK_FILE);
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(state_error("open", &path))?;
    lock.lock_shared().map_err(state_error("lock", &path))?;
    load(dir)
}

impl StateFile {
    /// Opens the state in `dir`, creating the directory if needed and
    /// locking it (another agent there is an error that says so; writing
    /// the lock reports an unwritable directory at start rather than at the
    /// first assignment), and folds the log if it holds anything.
    pub fn open(dir: &Path) -> Result<Self, DriverError> {
        fs::create_dir_all(dir).map_err(state_error("create the state directory", dir))?;
        let lock = lock_dir(dir)?;
        let records = load(dir)?;
        let mut state = Self {
            path: dir.join(STATE_FILE),
            log: dir.join(LOG_FILE),
            read_lock: dir.join(READ_LOCK_FILE),
            records,
            logged: 0,
            fold_first: false,
            written: 0,
            _lock: lock,
        };
        let log_len = fs::metadata(&state.log).map(|m| m.len());
        if !state.path.exists() || !matches!(log_len, Ok(0)) {
            state.fold()?;
        }
        Ok(state)
    }

    /// Where the snapshot is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written since opening, snapshots included.
    pub fn bytes_written(&self) -> u64 {
        self.written
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

    /// Records `assignment` on disk; a no-op when it is held exactly so
    /// already. On a write error nothing changes.
    pub fn insert(&mut self, assignment: &Assignment) -> Result<Outcome, DriverError> {
        let record = Record::from(assignment);
        if self.records.get(&assignment.claim_id) == Some(&record) {
            return Ok(Outcome::Unchanged);
        }
        let old = self
            .records
            .insert(assignment.claim_id.clone(), record.clone());
        let entry = Entry::Put {
            claim: assignment.claim_id.clone(),
            record,
        };
        if let Err(e) = self.persist(&entry) {
            match old {
                Some(old) => self.records.insert(assignment.claim_id.clone(), old),
                None => self.records.remove(&assignment.claim_id),
            };
            return Err(e);
        }
        Ok(Outcome::Changed)
    }

    /// Forgets `claim_id` on disk; a no-op when it is not held. On a write
    /// error nothing changes.
    pub fn remove(&mut self, claim_id: &str) -> Result<Outcome, DriverError> {
        let Some(old) = self.records.remove(claim_id) else {
            return Ok(Outcome::Unchanged);
        };
        let entry = Entry::Del {
            claim: claim_id.to_owned(),
        };
        if let Err(e) = self.persist(&entry) {
            self.records.insert(claim_id.to_owned(), old);
            return Err(e);
        }
        Ok(Outcome::Changed)
    }

    /// Makes the change already made in memory durable: one line appended
    /// to the log, or a fold when the log must not be appended to.
    fn persist(&mut self, entry: &Entry) -> Result<(), DriverError> {
        if self.fold_first {
            return self.fold();
        }
        let mut line = serde_json::to_vec(entry).map_err(|e| DriverError::State {
            action: "encode",
            path: self.log.clone(),
            cause: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        // Opened by path each time: a directory moved away or replaced is
        // an error here, not a write into a file nobody reads.
        let appended = OpenOptions::new()
            .append(true)
            .open(&self.log)
            .and_then(|mut f| f.write_all(&line).and_then(|()| f.sync_data()));
        if let Err(cause) = appended {
            self.fold_first = true;
            return Err(DriverError::State {
                action: "write",
                path: self.log.clone(),
                cause,
            });
        }
        self.written += line.len() as u64;
        self.logged += 1;
        if self.logged > FOLD_AFTER.max(self.records.len()) {
            // The change is durable in the log already: a failed fold is
            // retried at the next change, and is not this change's error.
            if let Err(e) = self.fold() {
                tracing::warn!(error = %e, "cannot fold the assignment log into a snapshot; retried at the next change");
            }
        }
        Ok(())
    }

    /// Writes the snapshot, then empties the log, readers kept out
    /// meanwhile (a reader between the two would count the log twice, or,
    /// after a second fold, miss it).
    fn fold(&mut self) -> Result<(), DriverError> {
        let bytes = serde_json::to_vec_pretty(&self.records).map_err(|e| DriverError::State {
            action: "encode",
            path: self.path.clone(),
            cause: std::io::Error::other(e),
        })?;
        let result = (|| {
            let lock = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.read_lock)
                .map_err(state_error("open", &self.read_lock))?;
            lock.lock().map_err(state_error("lock", &self.read_lock))?;
            write_atomically(&self.path, &bytes).map_err(state_error("write", &self.path))?;
            write_atomically(&self.log, b"").map_err(state_error("write", &self.log))
        })();
        self.fold_first = result.is_err();
        result?;
        self.written += bytes.len() as u64;
        self.logged = 0;
        Ok(())
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
        // Readers see it while the agent runs.
        assert_eq!(
            read_state(&state_dir).unwrap().keys().collect::<Vec<_>>(),
            vec!["c1"]
        );
        drop(state);

        // Opening folds the log into the snapshot.
        let again = StateFile::open(&state_dir).unwrap();
        let text = fs::read_to_string(state_dir.join(STATE_FILE)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"c1": {"tenant": "acme", "resources": {"compute.vcpu": 4}}})
        );
        assert_eq!(fs::read(state_dir.join(LOG_FILE)).unwrap(), b"");
        assert!(!state_dir.join("assignments.json.tmp").exists());
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

    /// Applying N assignments writes O(N) bytes (the whole file each time
    /// was O(N²)), and what a restart reads back is what was held.
    #[test]
    fn many_changes_cost_bytes_in_proportion_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateFile::open(dir.path()).unwrap();
        let n = 3000;
        for i in 0..n {
            state
                .insert(&assignment(
                    &format!("c-{i:012x}"),
                    "compute.vcpu=4,compute.memory=8Gi",
                ))
                .unwrap();
            if i % 3 == 0 {
                state.remove(&format!("c-{:012x}", i / 2)).unwrap();
            }
        }
        let one = serde_json::to_vec(&Entry::Put {
            claim: "c-000000000000".into(),
            record: Record::from(&assignment("c", "compute.vcpu=4,compute.memory=8Gi")),
        })
        .unwrap()
        .len() as u64;
        let changes = n + n / 3;
        assert!(
            state.bytes_written() < 6 * one * changes,
            "{} bytes for {changes} changes of about {one}",
            state.bytes_written()
        );
        let held = state.held();
        assert!(fs::metadata(dir.path().join(LOG_FILE)).unwrap().len() > 0);
        drop(state);
        let again = StateFile::open(dir.path()).unwrap();
        assert_eq!(again.held(), held);
        assert_eq!(read_state(dir.path()).unwrap().len(), held.len());
    }

    /// A crash in the middle of an append leaves a last line without its
    /// newline: ignored (the change was never reported). A bad line
    /// before the end is corruption.
    #[test]
    fn a_torn_last_line_is_ignored_and_a_bad_one_before_it_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = StateFile::open(dir.path()).unwrap();
        state.insert(&assignment("c1", "compute.vcpu=4")).unwrap();
        drop(state);
        let log = dir.path().join(LOG_FILE);
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(br#"{"op":"put","claim":"c2","ten"#).unwrap();
        drop(f);
        let state = StateFile::open(dir.path()).unwrap();
        assert_eq!(state.held(), BTreeSet::from(["c1".to_owned()]));
        drop(state);

        fs::write(
            &log,
            b"{\"op\":\"del\",\"claim\":\"c1\"}\nnot json\n{\"op\":\"del\",\"claim\":\"c9\"}\n",
        )
        .unwrap();
        let e = StateFile::open(dir.path()).unwrap_err();
        assert!(matches!(e, DriverError::CorruptState { .. }), "{e}");
        assert!(e.to_string().contains(LOG_FILE), "{e}");
    }

    /// Two agents cannot share a state directory: the second is told who
    /// holds it; once the first is gone, it may.
    #[test]
    fn a_second_agent_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateFile::open(dir.path()).unwrap();
        let e = StateFile::open(dir.path()).unwrap_err();
        assert!(matches!(e, DriverError::InUse { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("in use by another agent")
                && text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        StateFile::open(dir.path()).expect("free again");
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
