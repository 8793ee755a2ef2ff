//! The audit trail on the wire.

use super::convert::{ms_to_wire, optional_ms};
use super::v1;
use crate::audit::{Event, EventFilter, OutcomeFilter};
use crate::model::FieldError;

/// An event for the wire.
pub fn event_to_wire(e: &Event) -> v1::Event {
    v1::Event {
        id: e.id.clone(),
        time_unix_ms: ms_to_wire(Some(e.time_ms)),
        actor: e.actor.clone(),
        action: e.action.clone(),
        object_kind: e.object_kind.clone(),
        object_id: e.object_id.clone(),
        tenant: e.tenant.clone(),
        code: e.code,
        message: e.message.clone(),
        manager: e.manager.clone(),
        request_id: e.request_id.clone(),
    }
}

/// A query of the trail from the wire; none means every event.
pub fn event_filter_from_wire(f: Option<v1::EventFilter>) -> Result<EventFilter, FieldError> {
    let f = f.unwrap_or_default();
    let outcome = match v1::Outcome::try_from(f.outcome) {
        Ok(v1::Outcome::Any) => OutcomeFilter::Any,
        Ok(v1::Outcome::Ok) => OutcomeFilter::Ok,
        Ok(v1::Outcome::Failed) => OutcomeFilter::Failed,
        Err(_) => {
            return Err(FieldError::new(
                "filter.outcome",
                format!(
                    "{} is not an outcome; use 0 (any), 1 (ok) or 2 (failed)",
                    f.outcome
                ),
            ));
        }
    };
    let filter = EventFilter {
        since_ms: optional_ms("filter.since_unix_ms", f.since_unix_ms)?,
        until_ms: optional_ms("filter.until_unix_ms", f.until_unix_ms)?,
        actor: f.actor,
        tenant: f.tenant,
        object_kind: f.object_kind,
        object_id: f.object_id,
        action: f.action,
        outcome,
    };
    if let (Some(since), Some(until)) = (filter.since_ms, filter.until_ms)
        && until <= since
    {
        return Err(FieldError::new(
            "filter.until_unix_ms",
            format!("{until} is not after filter.since_unix_ms {since}"),
        ));
    }
    for (field, text) in [
        ("filter.actor", &filter.actor),
        ("filter.tenant", &filter.tenant),
        ("filter.object_kind", &filter.object_kind),
        ("filter.object_id", &filter.object_id),
        ("filter.action", &filter.action),
    ] {
        if text.len() > 256 {
            return Err(FieldError::new(field, "is longer than 256 bytes"));
        }
    }
    Ok(filter)
}
