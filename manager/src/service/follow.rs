//! Following the audit trail: the one source every watch stream is made
//! from. Each event is turned into what a stream sends (the event itself,
//! or the object it names as it is now) under the ledger lock; kept events
//! after a resume point come first, then each new one. A watcher that falls
//! behind replays from the books where it left off, and one whose client
//! went away stops.

use std::collections::HashSet;
use std::sync::Arc;

use theia::audit::Event;
use theia::state::Books;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use crate::app::App;

/// Events looked at per hold of the ledger lock while replaying.
const REPLAY_CHUNK: usize = 1000;
/// Items a watcher's stream buffers before it waits for the client.
pub const WATCH_QUEUE: usize = 256;
/// The longest resume point taken.
pub const MAX_RESUME: usize = 256;

/// Where a replay from the books starts.
#[derive(Debug, Clone)]
pub enum Cursor {
    /// At this id or after it.
    From(String),
    /// After this id.
    After(String),
}

/// What becomes of one event: what to send of it, if anything, given the
/// books as they are.
pub trait Lens: Send + Sync + 'static {
    /// What a stream sends.
    type Item: Send + 'static;
    /// The item for `event`, or none when this watcher does not want it.
    fn look(&self, app: &App, books: &Books, event: &Event) -> Option<Self::Item>;
}

/// Starts following the trail for one watcher: from `start` (or only new
/// events without one), through `lens`, into the returned receiver.
pub fn follow<L: Lens>(
    app: Arc<App>,
    lens: L,
    start: Option<Cursor>,
) -> mpsc::Receiver<Result<L::Item, Status>> {
    // Subscribed before replaying, so that nothing recorded meanwhile
    // falls between the two.
    let live = app.trail.subscribe();
    let (tx, rx) = mpsc::channel(WATCH_QUEUE);
    tokio::spawn(run(app, lens, start, live, tx));
    rx
}

async fn run<L: Lens>(
    app: Arc<App>,
    lens: L,
    start: Option<Cursor>,
    mut live: broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<Result<L::Item, Status>>,
) {
    let mut stopping = app.stopping();
    // The newest id looked at, and the ids of the last chunk replayed:
    // those may be heard live too (in the books before they were durable)
    // and are not sent twice.
    let mut seen: Option<String> = None;
    let mut replayed = HashSet::new();
    if let Some(start) = start {
        match replay(&app, &lens, start, &tx).await {
            Some((last, recent)) => (seen, replayed) = (last, recent),
            None => return,
        }
    }
    loop {
        let event = tokio::select! {
            event = live.recv() => event,
            () = tx.closed() => return,
            _ = stopping.changed() => return,
        };
        match event {
            Ok(event) => {
                if replayed.contains(&event.id) {
                    continue;
                }
                let item = {
                    let ledger = app.ledger.lock().await;
                    lens.look(&app, &ledger.books, &event)
                };
                if let Some(item) = item
                    && tx.send(Ok(item)).await.is_err()
                {
                    return;
                }
                if seen.as_deref().is_none_or(|s| s < event.id.as_str()) {
                    seen = Some(event.id.clone());
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let from = match seen.take() {
                    Some(id) => Cursor::After(id),
                    None => Cursor::From(String::new()),
                };
                match replay(&app, &lens, from, &tx).await {
                    Some((last, recent)) => (seen, replayed) = (last, recent),
                    None => return,
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends what the kept events from `start` make, a chunk per hold of the
/// lock; the last id looked at and the ids of the last chunk, or `None`
/// when the client went away.
async fn replay<L: Lens>(
    app: &App,
    lens: &L,
    start: Cursor,
    tx: &mpsc::Sender<Result<L::Item, Status>>,
) -> Option<(Option<String>, HashSet<String>)> {
    let mut cursor = start;
    let mut last = match &cursor {
        Cursor::After(id) => Some(id.clone()),
        Cursor::From(_) => None,
    };
    let mut recent = HashSet::new();
    loop {
        let (ids, items): (Vec<String>, Vec<L::Item>) = {
            let ledger = app.ledger.lock().await;
            let (from, skip) = match &cursor {
                Cursor::From(id) => (id.as_str(), None),
                Cursor::After(id) => (id.as_str(), Some(id.as_str())),
            };
            let chunk: Vec<&Event> = ledger
                .books
                .events_from(from)
                .filter(|e| skip != Some(e.id.as_str()))
                .take(REPLAY_CHUNK)
                .collect();
            let items = chunk
                .iter()
                .filter_map(|e| lens.look(app, &ledger.books, e))
                .collect();
            (chunk.iter().map(|e| e.id.clone()).collect(), items)
        };
        let Some(tail) = ids.last().cloned() else {
            return Some((last, recent));
        };
        for item in items {
            if tx.send(Ok(item)).await.is_err() {
                return None;
            }
        }
        last = Some(tail.clone());
        let full = ids.len() == REPLAY_CHUNK;
        recent = ids.into_iter().collect();
        if !full {
            return Some((last, recent));
        }
        cursor = Cursor::After(tail);
    }
}
