//! The audit trail: every change of state and every denied request is an
//! [`Event`] that names who did what to which object, for which tenant, and
//! how it ended. Events are kept with the books (one register each, written
//! in the same group as the change they describe, so a change is never
//! durable without its event) and trimmed by count and by age
//! ([`history`]). [`describe`] says which event a change is.

mod describe;
pub mod history;

pub use describe::describe;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// The gRPC code of a successful outcome.
pub const OK: u32 = 0;
/// The gRPC code UNKNOWN: an agent could not apply its part (an error from
/// another system, not from a call).
pub const UNKNOWN: u32 = 2;

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Unique and in time order: see [`event_id`].
    pub id: String,
    /// When, Unix ms (the physical part of its stamp).
    pub time_ms: u64,
    /// Who: the subject of the caller's token or certificate, an agent's
    /// datacenter subject, or `manager` for what a manager did by itself.
    pub actor: String,
    /// What, as `kind.verb`: `claim.create`, `datacenter.down`, ….
    pub action: String,
    /// The kind of object it was done to: `claim`, `tenant`, ….
    pub object_kind: String,
    /// The object's id or name; empty when the call named none.
    pub object_id: String,
    /// The tenant concerned, when there is one.
    pub tenant: String,
    /// The gRPC code of the outcome: [`OK`], or why it was refused or failed.
    pub code: u32,
    /// What happened, in words (the refusal's message for a refused call).
    pub message: String,
    /// The manager that recorded it.
    pub manager: String,
    /// The request id of the call it was part of; empty for what no call did.
    pub request_id: String,
}

/// An event's id for stamp `ts`: `{ms:013}-{counter:010}-{node}`, so that
/// ids sort as their stamps do (to the millisecond, then the counter) and
/// no two managers make the same one.
pub fn event_id(ts: &Timestamp) -> String {
    format!("{:013}-{:010}-{}", ts.ms, ts.counter, ts.node)
}

/// An event before it is stamped: what and to which object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// See [`Event::action`].
    pub action: String,
    /// See [`Event::object_kind`].
    pub object_kind: String,
    /// See [`Event::object_id`].
    pub object_id: String,
    /// See [`Event::tenant`].
    pub tenant: String,
    /// See [`Event::code`].
    pub code: u32,
    /// See [`Event::message`].
    pub message: String,
}

impl Draft {
    /// A successful `action` on object `kind` `id`.
    pub fn ok(action: &str, kind: &str, id: &str) -> Self {
        Self {
            action: action.to_owned(),
            object_kind: kind.to_owned(),
            object_id: id.to_owned(),
            tenant: String::new(),
            code: OK,
            message: String::new(),
        }
    }

    /// The same, concerning `tenant`.
    #[must_use]
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = tenant.to_owned();
        self
    }

    /// The same, saying `message`.
    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// The same, ended with gRPC code `code`.
    #[must_use]
    pub fn code(mut self, code: u32) -> Self {
        self.code = code;
        self
    }

    /// The event, stamped `ts` by `actor` in request `request_id`; the
    /// manager is the stamp's node.
    pub fn stamp(self, ts: &Timestamp, actor: &str, request_id: &str) -> Event {
        Event {
            id: event_id(ts),
            time_ms: ts.ms,
            actor: actor.to_owned(),
            action: self.action,
            object_kind: self.object_kind,
            object_id: self.object_id,
            tenant: self.tenant,
            code: self.code,
            message: self.message,
            manager: ts.node.clone(),
            request_id: request_id.to_owned(),
        }
    }
}

/// Which outcomes a query wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutcomeFilter {
    /// Every event.
    #[default]
    Any,
    /// Successes only.
    Ok,
    /// Refusals and failures only.
    Failed,
}

/// What a query of the trail wants; empty fields match everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventFilter {
    /// From this time on, Unix ms, inclusive.
    pub since_ms: Option<u64>,
    /// Before this time, Unix ms, exclusive.
    pub until_ms: Option<u64>,
    /// This actor exactly.
    pub actor: String,
    /// This tenant exactly.
    pub tenant: String,
    /// This kind of object.
    pub object_kind: String,
    /// This object id (with `object_kind`, one object).
    pub object_id: String,
    /// This action exactly.
    pub action: String,
    /// These outcomes.
    pub outcome: OutcomeFilter,
}

impl EventFilter {
    /// Whether `event` is one the query wants.
    pub fn matches(&self, event: &Event) -> bool {
        let same = |want: &str, have: &str| want.is_empty() || want == have;
        self.since_ms.is_none_or(|t| event.time_ms >= t)
            && self.until_ms.is_none_or(|t| event.time_ms < t)
            && same(&self.actor, &event.actor)
            && same(&self.tenant, &event.tenant)
            && same(&self.object_kind, &event.object_kind)
            && same(&self.object_id, &event.object_id)
            && same(&self.action, &event.action)
            && match self.outcome {
                OutcomeFilter::Any => true,
                OutcomeFilter::Ok => event.code == OK,
                OutcomeFilter::Failed => event.code != OK,
            }
    }

    /// The first event id a query can match: events are in id order, and
    /// ids start with their time.
    pub fn first_id(&self) -> String {
        format!("{:013}", self.since_ms.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests;
