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

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};

use theia::api::v1::ManagerMessage;
use theia::state::Change;
use tokio::sync::{mpsc, oneshot};

use crate::app::App;
use crate::store::{Store, StoreError};

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
    /// Messages to agents, sent once the job is durable.
    pub effects: Vec<(String, ManagerMessage)>,
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
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let writes: Vec<Change> = group
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.writes))
            .collect();
        let deletes: Vec<String> = group
            .iter_mut()
            .flat_map(|j| std::mem::take(&mut j.deletes))
            .collect();
        let result = store.write(writes, deletes).await;
        match result {
            Ok(()) => {
                let app = app.upgrade();
                for job in group {
                    if let Some(app) = &app {
                        for (dc, msg) in job.effects {
                            app.agents.send(&dc, msg);
                        }
                    }
                    if let Some(done) = job.done {
                        let _ = done.send(Ok(()));
                    }
                }
            }
            Err(e) => refuse(group, rx, app, &e).await,
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
            ledger.books.restore(change, prior.clone());
        }
        touched.extend(job.flushed.iter().cloned());
    }
    ledger.mark_pending(touched);
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
