//! `AuditService`: the shielded history, listed and watched.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use theia::api::v1::audit_service_server::AuditService;
use theia::api::{event_filter_from_wire, event_to_wire, v1};
use theia::audit::{Event, EventFilter};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::Api;
use super::paging::PageRequest;
use crate::app::App;
use crate::error::ApiError;

/// Events looked at per hold of the ledger lock while replaying.
const REPLAY_CHUNK: usize = 1000;
/// Events a watcher's stream buffers before it waits for the client.
const WATCH_QUEUE: usize = 256;

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::Event, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for Api {
    async fn list_events(
        &self,
        req: Request<v1::ListEventsRequest>,
    ) -> Result<Response<v1::ListEventsResponse>, Status> {
        let req = req.into_inner();
        let filter = event_filter_from_wire(req.filter).map_err(ApiError::from)?;
        let page = PageRequest::new(req.page_size, &req.page_token)?;
        let ledger = self.ledger.lock().await;
        let books = &ledger.books;
        let mut matching: Box<dyn Iterator<Item = &Event>> = if req.newest_first {
            let before = match (page.after(), filter.until_ms) {
                (Some(after), _) => Some(after.to_owned()),
                (None, Some(until)) => Some(format!("{until:013}")),
                (None, None) => None,
            };
            Box::new(
                books
                    .events_back(before.as_deref())
                    .filter(move |e| filter.matches(e)),
            )
        } else {
            let after = page.after().map(str::to_owned);
            let first = after.clone().unwrap_or_else(|| filter.first_id());
            Box::new(
                books
                    .events_from(&first)
                    .filter(move |e| after.as_deref() != Some(e.id.as_str()))
                    .filter(move |e| filter.matches(e)),
            )
        };
        let mut events = Vec::with_capacity(page.size().min(256));
        for e in matching.by_ref().take(page.size()) {
            events.push(event_to_wire(e));
        }
        let next_page_token = match (matching.next(), events.last()) {
            (Some(_), Some(last)) => hex::encode(&last.id),
            _ => String::new(),
        };
        Ok(Response::new(v1::ListEventsResponse {
            events,
            next_page_token,
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        req: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let req = req.into_inner();
        let filter = event_filter_from_wire(req.filter).map_err(ApiError::from)?;
        if req.resume_after.len() > 256 {
            return Err(Status::invalid_argument(
                "resume_after: is longer than 256 bytes; give the id of an event",
            ));
        }
        // Subscribed before replaying, so that nothing recorded meanwhile
        // falls between the two.
        let live = self.trail.subscribe();
        let start = if !req.resume_after.is_empty() {
            Some(Cursor::After(req.resume_after))
        } else {
            filter.since_ms.map(|_| Cursor::From(filter.first_id()))
        };
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        tokio::spawn(watch(self.0.clone(), filter, start, live, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Where a replay from the books starts.
#[derive(Debug, Clone)]
enum Cursor {
    /// At this id or after it.
    From(String),
    /// After this id.
    After(String),
}

/// Sends a watcher the kept events from `start`, then each new one, until
/// the client goes away or the manager stops. A watcher that falls behind
/// the live channel replays from the books where it left off.
async fn watch(
    app: Arc<App>,
    filter: EventFilter,
    start: Option<Cursor>,
    mut live: broadcast::Receiver<Arc<Event>>,
    tx: mpsc::Sender<Result<v1::Event, Status>>,
) {
    let mut stopping = app.stopping();
    // The newest id looked at, and the ids of the last chunk replayed:
    // those may be heard live too (in the books before they were durable)
    // and are not sent twice.
    let mut seen: Option<String> = None;
    let mut replayed = HashSet::new();
    if let Some(start) = start {
        match replay(&app, &filter, start, &tx).await {
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
                if filter.matches(&event) && tx.send(Ok(event_to_wire(&event))).await.is_err() {
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
                match replay(&app, &filter, from, &tx).await {
                    Some((last, recent)) => (seen, replayed) = (last, recent),
                    None => return,
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Sends the kept events from `start` that match, a chunk per hold of the
/// lock; the last id looked at and the ids of the last chunk, or `None`
/// when the client went away.
async fn replay(
    app: &App,
    filter: &EventFilter,
    start: Cursor,
    tx: &mpsc::Sender<Result<v1::Event, Status>>,
) -> Option<(Option<String>, HashSet<String>)> {
    let mut cursor = start;
    let mut last = match &cursor {
        Cursor::After(id) => Some(id.clone()),
        Cursor::From(_) => None,
    };
    let mut recent = HashSet::new();
    loop {
        let chunk: Vec<Event> = {
            let ledger = app.ledger.lock().await;
            let (from, skip) = match &cursor {
                Cursor::From(id) => (id.as_str(), None),
                Cursor::After(id) => (id.as_str(), Some(id.as_str())),
            };
            ledger
                .books
                .events_from(from)
                .filter(|e| skip != Some(e.id.as_str()))
                .take(REPLAY_CHUNK)
                .cloned()
                .collect()
        };
        let Some(tail) = chunk.last() else {
            return Some((last, recent));
        };
        let tail = tail.id.clone();
        for event in chunk.iter().filter(|e| filter.matches(e)) {
            if tx.send(Ok(event_to_wire(event))).await.is_err() {
                return None;
            }
        }
        last = Some(tail.clone());
        let full = chunk.len() == REPLAY_CHUNK;
        recent = chunk.into_iter().map(|e| e.id).collect();
        if !full {
            return Some((last, recent));
        }
        cursor = Cursor::After(tail);
    }
}
