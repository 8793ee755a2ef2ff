//! `GetCapacityTimeline`: capacity per class over time, step by step.

use std::collections::BTreeMap;

use theia::api::{ms_to_wire, v1};
use theia::model::{FieldError, ResourceClass, Selector, Window, validate_name};
use theia::scheduler::{Liveness, StepCapacity, step_capacity};
use tonic::{Request, Response, Status};

use super::Api;
use crate::error::ApiError;
use crate::ledger::wall_ms;

/// The most steps one answer has.
const MAX_STEPS: u64 = 1000;
/// The default span: a week.
const DEFAULT_SPAN_MS: u64 = 7 * 86_400_000;
/// The default number of steps.
const DEFAULT_STEPS: u64 = 48;

/// `from`, `to` and `step` of a request, checked.
fn span(req: &v1::GetCapacityTimelineRequest, now: u64) -> Result<(u64, u64, u64), ApiError> {
    let ms = |field: &str, v: i64| {
        u64::try_from(v).map_err(|_| FieldError::new(field, "must not be negative"))
    };
    let from = match ms("from_unix_ms", req.from_unix_ms)? {
        0 => now,
        t => t,
    };
    let to = match ms("to_unix_ms", req.to_unix_ms)? {
        0 => from.saturating_add(DEFAULT_SPAN_MS),
        t => t,
    };
    if to <= from {
        return Err(FieldError::new("to_unix_ms", "must be after from_unix_ms").into());
    }
    let step = match ms("step_ms", req.step_ms)? {
        0 => ((to - from) / DEFAULT_STEPS).max(1),
        s => s,
    };
    if (to - from).div_ceil(step) > MAX_STEPS {
        return Err(FieldError::new(
            "step_ms",
            format!(
                "gives {} steps from {from} to {to}; at most {MAX_STEPS} are allowed, take a longer step",
                (to - from).div_ceil(step)
            ),
        )
        .into());
    }
    Ok((from, to, step))
}

impl Api {
    /// `GetCapacityTimeline`.
    pub async fn capacity_timeline_call(
        &self,
        req: Request<v1::GetCapacityTimelineRequest>,
    ) -> Result<Response<v1::CapacityTimeline>, Status> {
        let req = req.into_inner();
        let selector = Selector::parse("selector", &req.selector).map_err(ApiError::from)?;
        if !req.datacenter.is_empty() {
            validate_name("datacenter", &req.datacenter).map_err(ApiError::from)?;
        }
        let (from, to, step) = span(&req, wall_ms())?;
        let ledger = self.ledger.lock().await;
        if !req.datacenter.is_empty() && ledger.books.datacenter(&req.datacenter).is_none() {
            return Err(ApiError::not_found("datacenter", &req.datacenter, "datacenter").into());
        }
        let cands = self.candidates(&ledger.books);
        let picked: Vec<_> = cands
            .iter()
            .filter(|c| req.datacenter.is_empty() || c.dc.id == req.datacenter)
            .filter(|c| selector.matches(&c.dc.labels))
            .collect();
        let mut classes: Vec<ResourceClass> = picked
            .iter()
            .flat_map(|c| c.dc.inventory.keys().chain(c.usage.allocated.classes()))
            .cloned()
            .collect();
        classes.sort();
        classes.dedup();
        let starts: Vec<u64> = (0..)
            .map(|i| from + i * step)
            .take_while(|t| *t < to)
            .collect();
        let mut series: BTreeMap<ResourceClass, Vec<v1::CapacityPoint>> = BTreeMap::new();
        for class in &classes {
            let points = starts
                .iter()
                .map(|at| {
                    let window = Window::between(*at, (*at + step).min(to));
                    let mut sum = StepCapacity::default();
                    for c in &picked {
                        let open = c.dc.schedulable && c.liveness != Liveness::Down;
                        sum.add(step_capacity(c, class, window, open));
                    }
                    v1::CapacityPoint {
                        at_unix_ms: ms_to_wire(Some(*at)),
                        capacity: sum.capacity,
                        allocated: sum.allocated,
                        maintenance: sum.maintenance,
                        free: sum.free,
                    }
                })
                .collect();
            series.insert(class.clone(), points);
        }
        Ok(Response::new(v1::CapacityTimeline {
            from_unix_ms: ms_to_wire(Some(from)),
            to_unix_ms: ms_to_wire(Some(to)),
            step_ms: ms_to_wire(Some(step)),
            datacenters: picked.iter().map(|c| c.dc.id.clone()).collect(),
            classes: series
                .into_iter()
                .map(|(class, points)| v1::ClassTimeline {
                    class: class.to_string(),
                    points,
                })
                .collect(),
        }))
    }
}
