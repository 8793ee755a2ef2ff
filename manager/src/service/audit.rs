//! `AuditService`: the shielded history, listed and watched.

use std::pin::Pin;

use theia::api::v1::audit_service_server::AuditService;
use theia::api::{event_filter_from_wire, event_to_wire, v1};
use theia::audit::{Event, EventFilter};
use theia::state::Books;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::Api;
use super::follow::{Cursor, Lens, MAX_RESUME, follow};
use super::paging::PageRequest;
use crate::app::App;
use crate::error::ApiError;

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
        let start = resume_point(
            &req.resume_after,
            filter.since_ms.map(|_| filter.first_id()),
        )?;
        let rx = follow(self.0.clone(), Matching(filter), start);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Where a watch starts: after `resume_after` when given, else at `from`
/// (a time's first id), else with new events only.
pub fn resume_point(resume_after: &str, from: Option<String>) -> Result<Option<Cursor>, Status> {
    if resume_after.len() > MAX_RESUME {
        return Err(Status::invalid_argument(format!(
            "resume token: is longer than {MAX_RESUME} bytes; give the token of an item the watch sent"
        )));
    }
    Ok(if resume_after.is_empty() {
        from.map(Cursor::From)
    } else {
        Some(Cursor::After(resume_after.to_owned()))
    })
}

/// The events a query wants, as they are.
struct Matching(EventFilter);

impl Lens for Matching {
    type Item = v1::Event;
    fn look(&self, _app: &App, _books: &Books, event: &Event) -> Option<v1::Event> {
        self.0.matches(event).then(|| event_to_wire(event))
    }
}
