//! The one writer: the only task that writes the store.
//!
//! Handlers decide under the ledger lock, merge their change into memory at
//! once (so the next decision sees it and nothing is over-committed) and
//! queue it here with what must happen once it is durable (assignments to
//! send). The writer commits whatever has queued up as one group (one redb
//! transaction), then answers every caller and sends the messages. A caller
//! that goes away half-way (a cancelled call, a reset stream) changes
//! nothing: its change is committed and stays in memory all the same.
//!
//! When the store refuses a group, every change in it and every change
//! queued after it is undone in memory, newest first, so memory never holds
//! what the store does not; their callers get the error.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Weak};

use theia::api::v1;
use theia::api::v1::ManagerMessage;
use theia::api::v1::manager_message::Body;
use theia::state::Change;
use tokio::sync::{mpsc, oneshot};

use crate::app::App;
use crate::store::{Batch, Outcome, Store, StoreError};

/// The most jobs committed as one group.
const MAX_GROUP: usize = 512;

/// One caller's change, on its way to the store.
#[derive(Default)]
pub struct Job {
    /// Registers to write.
    pub writes: Vec<Change>,
    /// Storage keys to delete (claims past their retention).
    pub deletes: Vec<String>,
    /// Each written change with what its key held before, to undo it.
    pub undo: Vec<(Change, Option<Change>)>,
    /// Datacenters whose coalesced reports this job writes; marked pending
    /// again if it fails.
    pub flushed: Vec<String>,
    /// Generations this job was decided on: it is written only if they
    /// still hold (shared stores).
    pub checks: Vec<(String, u64)>,
    /// Generations it advances when written.
    pub bumps: Vec<String>,
    /// Messages to agents, sent once the job is durable.
    pub effects: Vec<(String, ManagerMessage)>,
    /// Events of the audit trail it writes, told to watchers once durable.
    pub events: Vec<theia::audit::Event>,
    /// Where the answer goes; the caller may have stopped listening.
    pub done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// The acknowledgement of a queued job: resolves once it is durable.
pub struct Durable(oneshot::Receiver<Result<(), StoreError>>);

impl Durable {
    /// The answer when the writer is closed: nothing is written.
    pub fn closed() -> Self {
        let (tx, rx) = oneshot::channel();
        drop(tx);
        Self(rx)
    }

    /// Waits until the job is durable, or the store refused it.
    pub async fn wait(self) -> Result<(), StoreError> {
        self.0.await.unwrap_or_else(|_| {
            Err(StoreError::Database(
                "the manager is stopping; the change was not written".to_owned(),
            ))
        })
    }
}

/// The queue into the writer.
pub struct WriterQueue(mpsc::UnboundedSender<Job>);

impl WriterQueue {
    /// Queues `job` and returns its acknowledgement.
    pub fn submit(&self, mut job: Job) -> Durable {
        let (tx, rx) = oneshot::channel();
        job.done = Some(tx);
        if let Err(mpsc::error::SendError(job)) = self.0.send(job) {
            // The writer is gone (the manager is stopping): dropping the job
            // drops its sender, so the caller hears that nothing was written.
            drop(job);
        }
        Durable(rx)
    }
}

/// Starts the writer for `store`; it runs until every queue handle is gone
/// and what was queued is written.
pub fn spawn(store: Arc<Store>) -> (WriterQueue, Starter) {
    let (tx, rx) = mpsc::unbounded_channel();
    (WriterQueue(tx), Starter { store, rx })
}

/// A writer that waits for the state it serves before it starts.
pub struct Starter {
    store: Arc<Store>,
    rx: mpsc::UnboundedReceiver<Job>,
}

impl Starter {
    /// Starts writing for `app`.
    pub fn start(self, app: Weak<App>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(self.store, self.rx, app))
    }
}

async fn run(store: Arc<Store>, mut rx: mpsc::UnboundedReceiver<Job>, app: Weak<App>) {
    write_all(&store, &mut rx, &app).await;
    store.close().await;
}

async fn write_all(store: &Store, rx: &mut mpsc::UnboundedReceiver<Job>, app: &Weak<App>) {
    // Jobs taken off the queue while settling a conflict, kept in order.
    let mut carry: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match carry.pop_front() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => break,
            },
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            if let Some(job) = carry.pop_front() {
                group.push(job);
                continue;
            }
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let batches: Vec<Batch> = group
            .iter_mut()
            .map(|j| Batch {
                writes: std::mem::take(&mut j.writes),
                checks: j.checks.clone(),
                bumps: j.bumps.clone(),
            })
            .collect();
        let deletes: Vec<String> = group
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.deletes))
            .collect();
        let started = std::time::Instant::now();
        let written = {
            use tracing::Instrument as _;
            let span = tracing::info_span!("store_commit", jobs = group.len());
            store.write(batches, deletes).instrument(span).await
        };
        if let Some(app) = app.upgrade() {
            app.metrics.commit(group.len(), started.elapsed());
        }
        match written {
            Ok(outcomes) => settle(group, outcomes, &mut carry, rx, app).await,
            Err(e) => {
                group.extend(carry.drain(..));
                refuse(group, rx, app, &e).await;
            }
        }
    }
}

/// Answers a written group. Batches refused for a conflict are undone in
/// memory, and so is every queued job that checked one of their fields:
/// those were decided on top of the refused ones.
async fn settle(
    group: Vec<Job>,
    outcomes: Vec<Outcome>,
    carry: &mut VecDeque<Job>,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    app: &Weak<App>,
) {
    let Some(app) = app.upgrade() else {
        for job in group {
            if let Some(done) = job.done {
                let _ = done.send(Ok(()));
            }
        }
        return;
    };
    let plain = outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Written(g) if g.is_empty()));
    let mut done = Vec::with_capacity(group.len());
    let mut failed_jobs = Vec::new();
    if plain {
        done = group;
    } else {
        let mut ledger = app.ledger.lock().await;
        let mut failed_fields: BTreeSet<String> = BTreeSet::new();
        for (job, outcome) in group.into_iter().zip(outcomes) {
            match outcome {
                Outcome::Written(gens) => {
                    ledger.learn(&gens);
                    done.push(job);
                }
                Outcome::Conflict => {
                    failed_fields.extend(job.checks.iter().map(|(f, _)| f.clone()));
                    failed_jobs.push(job);
                }
            }
        }
        if !failed_fields.is_empty() {
            // Under the lock nobody queues more: what is queued now holds
            // every job decided on top of the refused ones.
            while let Ok(job) = rx.try_recv() {
                carry.push_back(job);
            }
            let mut kept = VecDeque::with_capacity(carry.len());
            for job in carry.drain(..) {
                if job.checks.iter().any(|(f, _)| failed_fields.contains(f)) {
                    failed_fields.extend(job.checks.iter().map(|(f, _)| f.clone()));
                    failed_jobs.push(job);
                } else {
                    kept.push_back(job);
                }
            }
            *carry = kept;
            for job in failed_jobs.iter().rev() {
                for (change, prior) in job.undo.iter().rev() {
                    ledger.undo(change, prior);
                }
            }
            // An agent that connected meanwhile got the undone claims in its
            // desired set: take them back, where the claim is not placed
            // still (a re-placement undone leaves the claim where it was).
            for job in &failed_jobs {
                for (change, _) in &job.undo {
                    if let theia::state::Change::Claim { key, register } = change {
                        let restored = ledger.books.claims().get(key);
                        for p in register
                            .get()
                            .map(|c| c.placements.as_slice())
                            .unwrap_or_default()
                            .iter()
                            .filter(|p| {
                                restored.is_none_or(|c| {
                                    !c.state.holds_capacity()
                                        || c.placed_in(&p.datacenter).is_none()
                                })
                            })
                        {
                            let release = Body::Release(v1::Release {
                                claim_id: key.clone(),
                            });
                            app.agents.send(
                                &p.datacenter,
                                ManagerMessage {
                                    body: Some(release),
                                },
                            );
                        }
                    }
                }
            }
            ledger.forget_expectations(&failed_fields);
            tracing::debug!(
                jobs = failed_jobs.len(),
                "another manager placed meanwhile; undone, the callers retry"
            );
        }
    }
    for job in done {
        for (dc, msg) in job.effects {
            app.agents.send(&dc, msg);
        }
        for event in job.events {
            app.trail.publish(event);
        }
        if let Some(done) = job.done {
            let _ = done.send(Ok(()));
        }
    }
    for job in failed_jobs {
        if let Some(done) = job.done {
            let _ = done.send(Err(StoreError::Conflict));
        }
    }
}

/// Undoes a refused group and everything queued after it, newest first,
/// and tells their callers.
async fn refuse(
    mut group: Vec<Job>,
    rx: &mut mpsc::UnboundedReceiver<Job>,
    app: &Weak<App>,
    error: &StoreError,
) {
    tracing::error!(error = %error, "the store refused a write; undoing it in memory");
    let Some(app) = app.upgrade() else {
        answer(group, error);
        return;
    };
    // Under the lock nobody queues more, so the queue drained here holds
    // every change decided on top of the refused ones.
    let mut ledger = app.ledger.lock().await;
    while let Ok(job) = rx.try_recv() {
        group.push(job);
    }
    let mut touched = BTreeSet::new();
    for job in group.iter().rev() {
        for (change, prior) in job.undo.iter().rev() {
            ledger.undo(change, prior);
        }
        touched.extend(job.flushed.iter().cloned());
    }
    ledger.mark_pending(touched);
    ledger.forget_all_expectations();
    drop(ledger);
    // Agents may have been told of an undone change (a desired set sent on
    // connect): they reconnect and receive the set as it really is.
    app.agents.disconnect_all();
    answer(group, error);
}

fn answer(group: Vec<Job>, error: &StoreError) {
    for job in group {
        if let Some(done) = job.done {
            let _ = done.send(Err(StoreError::Database(error.to_string())));
        }
    }
}
