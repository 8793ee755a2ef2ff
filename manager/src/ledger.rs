//! The books in memory, the clock that stamps changes, and the queue into
//! the one writer behind them. Placement-relevant changes are written through
//! before a caller gets an answer; high-volume reports are coalesced and
//! flushed when `sync_delta < now − last_sync OR pending > sync_max`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use theia::api::v1::ManagerMessage;
use theia::api::v1::manager_message::Body;
use theia::clock::{ClockError, HybridClock, Timestamp};
use theia::state::{Books, Change};
use tokio::time::Instant;

use theia::audit::history::Depth;
use theia::audit::{Draft, Event, describe};

use crate::access::DirectoryCell;
use crate::audit::{self, Call};
use crate::store::{Store, StoreError};
use crate::writer::{self, Durable, Job, Starter, WriterQueue};

/// Wall-clock Unix milliseconds: the manager's only reading of the system clock.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether a stored change may be merged at start. In a shared store a
/// change stamped by another manager more than `clock_offset` ahead of this
/// clock is refused: a manager with a bad clock must not win every write.
/// This manager's own stamps are always taken, and later stamps order after
/// them even if this machine's clock went back since they were written.
pub fn admit(
    clock: &mut HybridClock,
    change: &Change,
    now: u64,
    shared: bool,
) -> Result<(), ClockError> {
    let ts = change.timestamp();
    if shared && ts.node != clock.node() {
        return clock.observe(ts, now);
    }
    let _ = clock.observe(ts, ts.ms.max(now));
    Ok(())
}

/// Whether coalesced changes are due to be written (HORAO's sync rule).
pub fn sync_due(since_last: Duration, pending: u64, sync_delta: Duration, sync_max: u64) -> bool {
    pending > 0 && (since_last > sync_delta || pending > sync_max)
}

/// The books, their clock and the queue into the writer; used under one lock
/// held only while deciding, never while the store writes.
pub struct Ledger {
    /// Every durable object, including changes queued but not yet durable.
    pub books: Books,
    clock: HybridClock,
    store: Arc<Store>,
    /// Shared stores: the last generation of each field this manager knows
    /// the books for (its own writes and the feed's).
    known: HashMap<String, u64>,
    /// The generation each field will have once this manager's queued jobs
    /// are written, where that differs from `known`.
    next: HashMap<String, u64>,
    writer: Option<WriterQueue>,
    backend: &'static str,
    location: String,
    cluster_id: String,
    dirty: BTreeSet<String>,
    last_sync: Instant,
    last_sync_ms: u64,
    directory: Arc<DirectoryCell>,
}

/// Whether `change` can change who a token speaks for: tokens, and tenants
/// (their owners and delegates).
fn touches_access(change: &Change) -> bool {
    matches!(change, Change::Token { .. } | Change::Tenant { .. })
}

impl Ledger {
    /// Loads the books from `store`; the returned starter runs the writer
    /// once the state it serves exists.
    pub async fn open(
        store: Arc<Store>,
        clock: HybridClock,
    ) -> Result<(Self, Starter), StoreError> {
        let changes = store.load().await?;
        let mut books = Books::default();
        let mut clock = clock;
        let now = wall_ms();
        let shared = store.shared();
        for change in &changes {
            match admit(&mut clock, change, now, shared) {
                Ok(()) => books.apply(change),
                Err(e) => tracing::error!(
                    key = %change.storage_key(),
                    error = %e,
                    "a stored change is stamped too far ahead of this manager's clock; refused, not merged (check the clocks of the managers)"
                ),
            }
        }
        let backend = store.backend();
        let location = store.location();
        let cluster_id = store.cluster_id().to_owned();
        let (queue, starter) = writer::spawn(store.clone());
        let directory = Arc::new(DirectoryCell::new(&books));
        let ledger = Self {
            books,
            clock,
            store,
            known: HashMap::new(),
            next: HashMap::new(),
            writer: Some(queue),
            backend,
            location,
            cluster_id,
            dirty: BTreeSet::new(),
            last_sync: Instant::now(),
            last_sync_ms: now,
            directory,
        };
        Ok((ledger, starter))
    }

    /// The tokens and tenant members calls are authenticated against, kept
    /// up to date with the books.
    pub fn directory(&self) -> Arc<DirectoryCell> {
        self.directory.clone()
    }

    /// Publishes the directory anew when `change` touched access.
    fn touched(&self, change: &Change) {
        if touches_access(change) {
            self.directory.refresh(&self.books);
        }
    }

    /// A fresh timestamp for a local change.
    pub fn stamp(&mut self) -> Timestamp {
        self.clock.now(wall_ms())
    }

    /// Merges `changes` into the books now and queues them for the store,
    /// with `effects` to send to agents once they are durable. Await the
    /// answer before acknowledging anything; dropping it changes nothing.
    ///
    /// Each change that is an event of the audit trail ([`describe`]) is
    /// committed with its event, in the same group, as done by the call
    /// being served ([`audit::current`]).
    pub fn commit(
        &mut self,
        changes: Vec<Change>,
        effects: Vec<(String, ManagerMessage)>,
    ) -> Durable {
        let mut undo = Vec::with_capacity(changes.len() * 2);
        let mut writes = Vec::with_capacity(changes.len() * 2);
        let (checks, bumps) = self.generations(&changes);
        let mut drafts = Vec::new();
        for change in changes {
            drafts.extend(describe(&change, &self.books));
            let prior = self.books.current(&change);
            self.books.apply(&change);
            self.touched(&change);
            if let Change::Datacenter { key, .. } = &change {
                self.dirty.remove(key);
            }
            // What the store must hold is the merged register, which is
            // the change itself unless a newer one was there already.
            let merged = self
                .books
                .current(&change)
                .unwrap_or_else(|| change.clone());
            undo.push((change, prior));
            writes.push(merged);
        }
        let call = audit::current();
        let events = self.add_events(
            drafts.into_iter().map(|d| (d, call.clone())),
            &mut writes,
            &mut undo,
        );
        self.submit(Job {
            writes,
            undo,
            checks,
            bumps,
            effects,
            events,
            ..Job::default()
        })
    }

    /// Stamps drafts as events (each with a fresh stamp, so ids differ),
    /// merges them and adds them to a job's writes; returns them.
    fn add_events(
        &mut self,
        drafts: impl IntoIterator<Item = (Draft, Call)>,
        writes: &mut Vec<Change>,
        undo: &mut Vec<(Change, Option<Change>)>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for (draft, call) in drafts {
            let ts = self.stamp();
            let event = draft.stamp(&ts, &call.actor, &call.request_id);
            let change = Change::event(ts, event.clone());
            self.books.apply(&change);
            undo.push((change.clone(), None));
            writes.push(change);
            events.push(event);
        }
        events
    }

    /// Commits events that describe no change of the books (a denied call,
    /// a liveness transition), each as done in its call.
    pub fn record(&mut self, drafts: impl IntoIterator<Item = (Draft, Call)>) -> Durable {
        let (mut writes, mut undo) = (Vec::new(), Vec::new());
        let events = self.add_events(drafts, &mut writes, &mut undo);
        if events.is_empty() {
            return self.settled();
        }
        self.submit(Job {
            writes,
            undo,
            events,
            ..Job::default()
        })
    }

    /// Forgets the oldest events beyond `depth`, a bounded number at a
    /// time, in memory and store.
    pub fn trim_events(&mut self, depth: Depth, limit: usize) -> Option<Durable> {
        let deletes = self.books.trim_events(depth, wall_ms(), limit);
        (!deletes.is_empty()).then(|| {
            self.submit(Job {
                deletes,
                ..Job::default()
            })
        })
    }

    /// In a shared store: the generations a job must find unchanged (those
    /// a new placement was decided on: its datacenters, its tenant, its
    /// request id) and those it advances (also datacenters' and tenants'
    /// own records, whose totals and quotas placements depend on).
    fn generations(&mut self, changes: &[Change]) -> (Vec<(String, u64)>, Vec<String>) {
        let (mut checks, mut bumps) = (Vec::new(), Vec::new());
        if !self.store.shared() {
            return (checks, bumps);
        }
        for change in changes {
            let (checked, names): (bool, Vec<String>) = match change {
                Change::Claim { register, .. } => match register.get() {
                    Some(c) if c.state.holds_capacity() => {
                        let mut names: Vec<String> = c
                            .placements
                            .iter()
                            .map(|p| format!("dc/{}", p.datacenter))
                            .collect();
                        names.push(format!("tenant/{}", c.spec.tenant));
                        if !c.spec.request_id.is_empty() {
                            names.push(format!("request/{}/{}", c.spec.tenant, c.spec.request_id));
                        }
                        (true, names)
                    }
                    _ => (false, Vec::new()),
                },
                // A deletion must not cross a placement another manager
                // made there meanwhile.
                Change::Datacenter { key, register } => {
                    (register.is_tombstone(), vec![format!("dc/{key}")])
                }
                Change::Settings { key, .. } => (false, vec![format!("dc/{key}")]),
                // A maintenance was judged on its datacenter's placements:
                // one placed there meanwhile by another manager must make
                // it judged again.
                Change::Maintenance { register, .. } => match register.get() {
                    Some(m) => (true, vec![format!("dc/{}", m.datacenter)]),
                    None => (false, Vec::new()),
                },
                Change::Tenant { key, .. } => (false, vec![format!("tenant/{key}")]),
                _ => (false, Vec::new()),
            };
            for name in names {
                let field = self.store.gen_field(&name);
                let expected = self
                    .next
                    .get(&field)
                    .or_else(|| self.known.get(&field))
                    .copied()
                    .unwrap_or(0);
                if checked {
                    checks.push((field.clone(), expected));
                }
                self.next.insert(field.clone(), expected + 1);
                bumps.push(field);
            }
        }
        (checks, bumps)
    }

    /// Undoes `change` (back to `prior`) if memory still holds it: a newer
    /// register merged meanwhile (from the feed) is not this job's to undo.
    pub fn undo(&mut self, change: &Change, prior: &Option<Change>) {
        let still_ours = self
            .books
            .current(change)
            .is_some_and(|c| c.timestamp() == change.timestamp());
        if still_ours {
            self.books.restore(change, prior.clone());
            self.touched(change);
        }
    }

    /// Takes in generations the store reported (after a write of this
    /// manager, or from the feed).
    pub fn learn(&mut self, generations: &[(String, u64)]) {
        for (field, value) in generations {
            let known = self.known.entry(field.clone()).or_default();
            *known = (*known).max(*value);
            let known = *known;
            if self.next.get(field).is_some_and(|n| *n <= known) {
                self.next.remove(field);
            }
        }
    }

    /// Forgets what this manager expected of `fields` once its queued jobs
    /// were written: they were refused, so new decisions start from what
    /// it knows.
    pub fn forget_expectations(&mut self, fields: &BTreeSet<String>) {
        for f in fields {
            self.next.remove(f);
        }
    }

    /// Forgets every expectation (after the store refused everything queued).
    pub fn forget_all_expectations(&mut self) {
        self.next.clear();
    }

    /// Merges a change another manager wrote, as the feed brought it, and
    /// says what this manager's agents must hear of it: a new claim in
    /// force now is assigned (one that starts later, when it starts), an
    /// ended one released. A change stamped too far ahead of this clock is
    /// refused.
    pub fn merge_remote(
        &mut self,
        change: &Change,
    ) -> Result<Vec<(String, ManagerMessage)>, ClockError> {
        let now = wall_ms();
        admit(&mut self.clock, change, now, true)?;
        let id = change.claim_id().map(str::to_owned);
        let before = id
            .as_ref()
            .and_then(|id| self.books.claims().get(id))
            // What agents may hold: started, ended by the clock or not (an
            // expiry arriving from another manager is released here too).
            .filter(|c| c.state.holds_capacity() && (c.starts_when_made() || c.window.start <= now))
            .cloned();
        self.books.apply(change);
        self.touched(change);
        let Some(claim) = id.and_then(|id| self.books.claims().get(&id)) else {
            return Ok(Vec::new());
        };
        // Each datacenter that held the claim and no longer does releases
        // it; each that holds it now and did not assigns it (a claim that
        // starts later: when it starts, from the timekeeper). A placement
        // another manager moved (a forced maintenance) is both.
        let held = |c: Option<&theia::model::Claim>, dc: &str| {
            c.is_some_and(|c| c.placed_in(dc).is_some())
        };
        let after = claim.in_force_at(now).then_some(claim);
        let mut effects = Vec::new();
        if let Some(old) = &before {
            for p in &old.placements {
                if !held(after, &p.datacenter) {
                    let release = Body::Release(theia::api::v1::Release {
                        claim_id: old.id.clone(),
                    });
                    effects.push((
                        p.datacenter.clone(),
                        ManagerMessage {
                            body: Some(release),
                        },
                    ));
                }
            }
        }
        if let Some(new) = after {
            for p in &new.placements {
                if !held(before.as_ref(), &p.datacenter) {
                    let assign = Body::Assign(crate::app::assignment(new, p));
                    effects.push((p.datacenter.clone(), ManagerMessage { body: Some(assign) }));
                }
            }
        }
        Ok(effects)
    }

    /// Stamps one change and commits it.
    pub fn put(&mut self, change: impl FnOnce(Timestamp) -> Change) -> Durable {
        let ts = self.stamp();
        self.commit(vec![change(ts)], Vec::new())
    }

    /// Resolves once everything queued so far is durable: for answers that
    /// acknowledge a change somebody else queued (an idempotent retry).
    pub fn settled(&mut self) -> Durable {
        self.submit(Job::default())
    }

    /// Forgets claims for good (past their retention), in memory and store.
    pub fn prune(&mut self, claims: &[String]) -> Durable {
        let deletes = claims
            .iter()
            .flat_map(|id| self.books.prune_claim(id))
            .collect();
        self.submit(Job {
            deletes,
            ..Job::default()
        })
    }

    fn submit(&mut self, job: Job) -> Durable {
        match &self.writer {
            Some(writer) => writer.submit(job),
            None => Durable::closed(),
        }
    }

    /// Merges a datacenter change in memory only; it is written at the next sync.
    pub fn apply_coalesced(&mut self, change: Change) {
        if let Change::Datacenter { key, .. } = &change {
            self.dirty.insert(key.clone());
        }
        self.books.apply(&change);
    }

    /// Marks datacenters whose coalesced changes did not reach the store.
    pub fn mark_pending(&mut self, dcs: impl IntoIterator<Item = String>) {
        self.dirty.extend(dcs);
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

    /// Queues every coalesced change for the store.
    pub fn flush(&mut self) -> Durable {
        let flushed: Vec<String> = std::mem::take(&mut self.dirty).into_iter().collect();
        let writes: Vec<Change> = flushed
            .iter()
            .filter_map(|dc| {
                let register = self.books.datacenters.register(dc)?.clone();
                Some(Change::Datacenter {
                    key: dc.clone(),
                    register,
                })
            })
            .collect();
        self.last_sync = Instant::now();
        self.last_sync_ms = wall_ms();
        let (checks, bumps) = self.generations(&writes);
        self.submit(Job {
            writes,
            flushed,
            checks,
            bumps,
            ..Job::default()
        })
    }

    /// Stops taking changes: the writer ends once it wrote what is queued.
    pub fn close(&mut self) {
        self.writer = None;
    }

    /// The store backend's name, as `ClusterService` reports it.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The cluster these books belong to.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Where the store keeps its data.
    pub fn location(&self) -> &str {
        &self.location
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_stamp_too_far_ahead_is_refused_in_a_shared_store_only() {
        use theia::crdt::Lww;
        let change = |ms: u64, node: &str| Change::Tenant {
            key: "acme".into(),
            register: Lww::tombstone(Timestamp {
                ms,
                counter: 0,
                node: node.into(),
            }),
        };
        let mut clock = HybridClock::new("m-1", Duration::from_millis(1000));
        let now = 10_000;
        assert!(
            admit(&mut clock, &change(10_900, "m-2"), now, true).is_ok(),
            "within clock_offset"
        );
        let err = admit(&mut clock, &change(11_500, "m-2"), now, true).unwrap_err();
        assert!(err.to_string().contains("ahead"), "{err}");
        assert!(
            admit(&mut clock, &change(50_000, "m-1"), now, true).is_ok(),
            "its own stamp"
        );
        assert!(
            clock.now(now).ms >= 50_000,
            "later stamps order after its own, even from the future"
        );
        let mut alone = HybridClock::new("m-1", Duration::from_millis(1000));
        assert!(
            admit(&mut alone, &change(90_000, "m-old-id"), now, false).is_ok(),
            "the embedded store has one writer"
        );
    }

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
