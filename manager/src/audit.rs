//! The manager's side of the audit trail: who the current call acts as (so
//! that every change committed while serving it names its actor), the queue
//! that records events no change carries (denied calls, refused reports,
//! liveness), and the channel that watchers of the trail hear from.
//!
//! Events that describe a change are committed with it, in the same group
//! ([`crate::ledger::Ledger::commit`]). Events that describe no change are
//! recorded through a bounded queue, and denied calls at a bounded rate, so
//! that a flood of refused calls can neither slow scheduling nor fill the
//! store: what is left out is counted and logged.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use theia::audit::{Draft, Event};
use tokio::sync::{broadcast, mpsc};

use crate::app::App;

/// The actor of what a manager does by itself (expiries, liveness).
pub const MANAGER: &str = "manager";
/// The actor of a call that presented no usable credentials.
pub const ANONYMOUS: &str = "anonymous";

/// Events recorded through the queue that may wait to be written.
const QUEUE: usize = 4096;
/// Refusals recorded a second, at most (in bursts of as many).
const DENIALS_PER_SECOND: u32 = 100;
/// Events a watcher may fall behind by before it replays from the books.
const WATCH_BUFFER: usize = 4096;

/// Who the call being served acts as, and its request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The token's or certificate's subject.
    pub actor: String,
    /// The call's request id.
    pub request_id: String,
}

impl Call {
    /// What a manager does by itself.
    pub fn manager() -> Self {
        Self {
            actor: MANAGER.to_owned(),
            request_id: String::new(),
        }
    }
}

tokio::task_local! {
    static CALL: Call;
}

/// The call the current task serves; the manager itself outside any call.
pub fn current() -> Call {
    CALL.try_with(Clone::clone)
        .unwrap_or_else(|_| Call::manager())
}

/// Runs `work` as part of `call`: what it commits names `call`'s actor.
pub fn serve<F: Future>(call: Call, work: F) -> impl Future<Output = F::Output> {
    CALL.scope(call, work)
}

/// A request id carried from the request span to the gate.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// One event to record, with who and in which call.
struct Pending {
    draft: Draft,
    call: Call,
}

/// Records events that describe no change, and tells watchers of every
/// event once it is durable.
pub struct Trail {
    queue: mpsc::Sender<Pending>,
    intake: std::sync::Mutex<Option<mpsc::Receiver<Pending>>>,
    watchers: broadcast::Sender<Arc<Event>>,
    denials: governor::DefaultDirectRateLimiter,
    dropped: AtomicU64,
}

impl Default for Trail {
    fn default() -> Self {
        Self::new()
    }
}

impl Trail {
    /// A trail whose queue is drained once [`Trail::start`] runs.
    pub fn new() -> Self {
        let (queue, intake) = mpsc::channel(QUEUE);
        let rate = NonZeroU32::new(DENIALS_PER_SECOND).expect("a positive rate");
        Self {
            queue,
            intake: std::sync::Mutex::new(Some(intake)),
            watchers: broadcast::channel(WATCH_BUFFER).0,
            denials: governor::RateLimiter::direct(governor::Quota::per_second(rate)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Records `draft` as done by `call`, soon; counts it as dropped when
    /// the queue is full.
    pub fn record(&self, draft: Draft, call: Call) {
        if self.queue.try_send(Pending { draft, call }).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit queue full: events left out");
            }
        }
    }

    /// Records a refusal (a denied call, a refused report or change),
    /// within the rate allowed for refusals: a flood of them is counted,
    /// not written.
    pub fn refused(&self, draft: Draft, call: Call) {
        if self.denials.check().is_ok() {
            self.record(draft, call);
        } else {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "refusals over the audit rate: events left out");
            }
        }
    }

    /// Events waiting in the queue to be written.
    pub fn queued(&self) -> usize {
        QUEUE.saturating_sub(self.queue.capacity())
    }

    /// Events left out so far (queue full or over the denial rate).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Tells watchers of `event`, durable now.
    pub fn publish(&self, event: Event) {
        let _ = self.watchers.send(Arc::new(event));
    }

    /// Hears every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.watchers.subscribe()
    }

    /// Starts writing what is recorded, a group at a time.
    pub fn start(app: &Arc<App>) {
        let Some(mut intake) = app
            .trail
            .intake
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let app = Arc::downgrade(app);
        tokio::spawn(async move {
            let mut batch = Vec::new();
            while intake.recv_many(&mut batch, 512).await > 0 {
                let Some(app) = app.upgrade() else { break };
                let durable = {
                    let mut ledger = app.ledger.lock().await;
                    ledger.record(batch.drain(..).map(|p| (p.draft, p.call)))
                };
                drop(app);
                if let Err(e) = durable.wait().await {
                    tracing::error!(error = %e, "audit events could not be written");
                }
            }
        });
    }
}
