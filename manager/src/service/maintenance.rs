//! Maintenance on datacenters: impact first, then refused, or forced with
//! the displaced claims re-placed elsewhere.

use std::collections::BTreeMap;

use theia::api::{ms_to_wire, v1};
use theia::model::{
    Claim, FieldError, Maintenance, Resources, Timing, format_instant, validate_name,
};
use theia::scheduler::{Impact, impact, replacement};
use theia::state::{Applied, Books, Change};
use tonic::{Request, Response, Status};

use super::Api;
use super::paging::PageRequest;
use crate::access::caller;
use crate::app::{assign_effects, release_effects};
use crate::error::{ApiError, required};
use crate::ledger::{Ledger, wall_ms};
use crate::store::StoreError;
use crate::writer::Durable;

/// A maintenance for the wire.
pub fn maintenance_to_wire(m: &Maintenance) -> v1::Maintenance {
    v1::Maintenance {
        id: m.id.clone(),
        datacenter: m.datacenter.clone(),
        resources: m
            .resources
            .as_ref()
            .map(|r| r.to_strings().into_iter().collect())
            .unwrap_or_default(),
        all: m.takes_all(),
        start_unix_ms: ms_to_wire(Some(m.window.start)),
        end_unix_ms: ms_to_wire(m.window.end),
        reason: m.reason.clone(),
        created_by: m.created_by.clone(),
        created_unix_ms: ms_to_wire(Some(m.created_ms)),
        cancelled_unix_ms: ms_to_wire(m.cancelled_ms),
    }
}

fn new_id(books: &Books) -> String {
    loop {
        let id = format!("m-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        if books.maintenances.register(&id).is_none() {
            return id;
        }
    }
}

/// The maintenance a request asks for, decided at `now`.
fn from_request(
    req: &v1::CreateMaintenanceRequest,
    id: String,
    created_by: &str,
    now: u64,
) -> Result<Maintenance, ApiError> {
    validate_name("datacenter", &req.datacenter)?;
    let resources = Resources::parse_map(
        "resources",
        req.resources.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    let resources = match (req.all, resources.is_zero()) {
        (true, true) => None,
        (false, false) => Some(resources),
        (true, false) => {
            return Err(FieldError::new("resources", "give resources or all, not both").into());
        }
        (false, true) => {
            return Err(FieldError::new(
                "resources",
                "name what it takes out, e.g. compute.vcpu=8, or set all",
            )
            .into());
        }
    };
    let ms = |field: &str, v: i64| {
        u64::try_from(v)
            .map(|v| (v > 0).then_some(v))
            .map_err(|_| FieldError::new(field, "must not be negative"))
    };
    let timing = Timing {
        start_ms: ms("start_unix_ms", req.start_unix_ms)?,
        end_ms: ms("end_unix_ms", req.end_unix_ms)?,
        duration_ms: ms("duration_ms", req.duration_ms)?,
        earliest: false,
    };
    let m = Maintenance {
        id,
        datacenter: req.datacenter.clone(),
        resources,
        window: timing.resolve(now)?,
        reason: req.reason.trim().to_owned(),
        created_by: created_by.to_owned(),
        created_ms: now,
        cancelled_ms: None,
    };
    m.validate()?;
    Ok(m)
}

/// The live claims with a placement in `dc`.
fn claims_in<'a>(books: &'a Books, dc: &str) -> Vec<&'a Claim> {
    books
        .index()
        .live_in(dc)
        .filter_map(|id| books.claims().get(id))
        .collect()
}

/// What `m` would take on `books`, judged at `now`.
fn judge(api: &Api, books: &Books, m: &Maintenance, now: u64) -> Result<Impact, ApiError> {
    let cands = api.candidates(books);
    let here = cands
        .iter()
        .find(|c| c.dc.id == m.datacenter)
        .ok_or_else(|| ApiError::not_found("datacenter", &m.datacenter, "datacenter"))?;
    Ok(impact(here, &claims_in(books, &m.datacenter), m, now))
}

/// The displaced claims per tenant, for the wire.
fn affected(books: &Books, displaced: &[String]) -> Vec<v1::AffectedTenant> {
    let mut by_tenant: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for id in displaced {
        if let Some(c) = books.claims().get(id) {
            by_tenant
                .entry(c.spec.tenant.as_str())
                .or_default()
                .push(id.clone());
        }
    }
    by_tenant
        .into_iter()
        .map(|(tenant, claims)| v1::AffectedTenant {
            tenant: tenant.to_owned(),
            claims,
        })
        .collect()
}

/// The impact in one paragraph, for the refusal.
fn report(m: &Maintenance, found: &Impact, affected: &[v1::AffectedTenant]) -> String {
    let classes: Vec<String> = found
        .over
        .iter()
        .map(|s| {
            format!(
                "{} needs {} of {} at {}",
                s.class,
                s.class.format(s.needed),
                s.class.format(s.capacity),
                format_instant(s.at)
            )
        })
        .collect();
    let tenants: Vec<String> = affected
        .iter()
        .map(|t| format!("{} ({})", t.tenant, t.claims.join(", ")))
        .collect();
    format!(
        "maintenance would take {} over capacity: {}; it takes the capacity of {} claim(s): {}. Give force (--force) to accept it and re-place them, or dry_run (--dry-run) to see this only",
        m.datacenter,
        classes.join(", "),
        found.displaced.len(),
        tenants.join(", ")
    )
}

/// Moves claim `id`'s units out of `dc` onto other datacenters where they
/// fit over the rest of its window, queueing the new placement; `None`
/// when they fit nowhere (the claim stays, at risk).
fn replace(api: &Api, ledger: &mut Ledger, id: &str, dc: &str, now: u64) -> Option<Durable> {
    let claim = ledger.books.claims().get(id).cloned()?;
    let outcome = replacement(&api.candidates(&ledger.books), &claim, dc, now)?;
    let mut moved = claim.clone();
    moved.placements.retain(|p| p.datacenter != dc);
    moved.placements.extend(outcome.placements.iter().cloned());
    moved.updated_ms = now;
    let mut effects: Vec<_> = release_effects(&claim)
        .into_iter()
        .filter(|(d, _)| d == dc)
        .collect();
    if moved.in_force_at(now) {
        let fresh = theia::model::Claim {
            placements: outcome.placements.clone(),
            ..moved.clone()
        };
        effects.extend(assign_effects(&fresh));
    }
    tracing::info!(claim = %id, from = %dc, to = %outcome.summary, "maintenance: claim re-placed");
    let ts = ledger.stamp();
    let mut changes = vec![Change::claim(ts, moved)];
    // A datacenter the claim held once before (an earlier maintenance moved
    // it away) still has its old flag: the new part is not applied yet.
    for p in &outcome.placements {
        let ts = ledger.stamp();
        let unapplied = Applied {
            applied: false,
            error: String::new(),
            at_ms: now,
        };
        changes.push(Change::applied(id, &p.datacenter, ts, unapplied));
    }
    Some(ledger.commit(changes, effects))
}

/// How often a maintenance is judged again after another manager placed
/// on its datacenter while it was judged.
const ATTEMPTS: u32 = 8;

impl Api {
    /// `CreateMaintenance`.
    pub async fn create_maintenance_call(
        &self,
        req: Request<v1::CreateMaintenanceRequest>,
    ) -> Result<Response<v1::CreateMaintenanceResponse>, Status> {
        let who = caller(&req)?.subject;
        let req = req.into_inner();
        for attempt in 0..ATTEMPTS {
            // On a task of its own: a client that gives up half-way (a
            // deadline, a reset stream) never leaves a stored maintenance
            // with the claims it displaces not yet moved.
            // It acts in this call: what it commits names this caller.
            let (api, req, who) = (self.clone(), req.clone(), who.clone());
            let call = crate::audit::current();
            let once = tokio::spawn(crate::audit::serve(call, async move {
                api.create_maintenance_once(&req, &who).await
            }));
            let outcome = once.await.unwrap_or_else(|e| {
                Err(ApiError::Aborted(format!(
                    "the maintenance task ended: {e}"
                )))
            });
            match outcome {
                Err(ApiError::Store(StoreError::Conflict)) => {
                    let ceiling = 5u64 << attempt.min(6);
                    let pause = rand::random_range(ceiling / 2..=ceiling);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                other => return other.map(Response::new).map_err(Status::from),
            }
        }
        Err(ApiError::Aborted(format!(
            "other managers placed on {} {ATTEMPTS} times while this maintenance was judged; nothing was stored, retry",
            req.datacenter
        ))
        .into())
    }

    /// Judges, stores and (when forced) applies one maintenance, once.
    async fn create_maintenance_once(
        &self,
        req: &v1::CreateMaintenanceRequest,
        who: &str,
    ) -> Result<v1::CreateMaintenanceResponse, ApiError> {
        let now = wall_ms();
        let (m, found, mut answer, stored) = {
            let mut ledger = self.ledger.lock().await;
            let m = from_request(req, new_id(&ledger.books), who, now)?;
            let found = judge(self, &ledger.books, &m, now)?;
            let affected_tenants = affected(&ledger.books, &found.displaced);
            let answer = v1::CreateMaintenanceResponse {
                maintenance: Some(maintenance_to_wire(&m)),
                accepted: false,
                over_capacity: found
                    .over
                    .iter()
                    .map(|s| v1::MaintenanceShortfall {
                        class: s.class.to_string(),
                        needed: s.class.format(s.needed),
                        capacity: s.class.format(s.capacity),
                        at_unix_ms: ms_to_wire(Some(s.at)),
                    })
                    .collect(),
                affected: affected_tenants.clone(),
                ..Default::default()
            };
            if req.dry_run {
                return Ok(answer);
            }
            if !found.over.is_empty() && !req.force {
                return Err(ApiError::FailedPrecondition(report(
                    &m,
                    &found,
                    &affected_tenants,
                )));
            }
            let ts = ledger.stamp();
            let stored = ledger.commit(vec![Change::maintenance(ts, m.clone())], Vec::new());
            (m, found, answer, stored)
        };
        // Durable (and not refused for a placement made meanwhile on
        // another manager) before anything is moved for it.
        stored.wait().await?;
        tracing::info!(maintenance = %m.id, datacenter = %m.datacenter, reason = %m.reason, displaced = found.displaced.len(), "maintenance accepted");
        answer.accepted = true;
        let moves: Vec<(String, Option<Durable>)> = {
            let mut ledger = self.ledger.lock().await;
            found
                .displaced
                .iter()
                .map(|id| {
                    (
                        id.clone(),
                        replace(self, &mut ledger, id, &m.datacenter, now),
                    )
                })
                .collect()
        };
        for (id, moved) in moves {
            let done = match moved {
                Some(durable) => durable.wait().await.is_ok(),
                None => false,
            };
            if done {
                answer.replaced.push(id);
            } else {
                tracing::warn!(claim = %id, datacenter = %m.datacenter, "maintenance: the claim fits nowhere else (or moving it was refused); it stays, at risk");
                answer.at_risk.push(id);
            }
        }
        Ok(answer)
    }

    /// `GetMaintenance`.
    pub async fn get_maintenance_call(
        &self,
        req: Request<v1::GetMaintenanceRequest>,
    ) -> Result<Response<v1::Maintenance>, Status> {
        let id = req.into_inner().id;
        let ledger = self.ledger.lock().await;
        Ok(Response::new(maintenance_to_wire(existing(
            &ledger.books,
            &id,
        )?)))
    }

    /// `ListMaintenances`.
    pub async fn list_maintenances_call(
        &self,
        req: Request<v1::ListMaintenancesRequest>,
    ) -> Result<Response<v1::ListMaintenancesResponse>, Status> {
        let req = req.into_inner();
        if !req.datacenter.is_empty() {
            validate_name("datacenter", &req.datacenter).map_err(ApiError::from)?;
        }
        let page = PageRequest::new(req.page_size, &req.page_token)?;
        let now = wall_ms();
        let ledger = self.ledger.lock().await;
        let mut list: Vec<&Maintenance> = ledger
            .books
            .maintenances
            .iter()
            .map(|(_, m)| m)
            .filter(|m| req.datacenter.is_empty() || m.datacenter == req.datacenter)
            .filter(|m| req.include_ended || m.effective_window().is_some_and(|w| !w.ended_by(now)))
            .collect();
        list.sort_by(|a, b| (a.window.start, &a.id).cmp(&(b.window.start, &b.id)));
        // Zero-padded, so that the keys sort as (start, id) do.
        let (picked, next_page_token) = page.take(
            list.into_iter()
                .map(|m| (format!("{:020}/{}", m.window.start, m.id), m)),
        );
        Ok(Response::new(v1::ListMaintenancesResponse {
            maintenances: picked.into_iter().map(maintenance_to_wire).collect(),
            next_page_token,
        }))
    }

    /// `CancelMaintenance`.
    pub async fn cancel_maintenance_call(
        &self,
        req: Request<v1::CancelMaintenanceRequest>,
    ) -> Result<Response<v1::Maintenance>, Status> {
        let id = req.into_inner().id;
        let now = wall_ms();
        let mut ledger = self.ledger.lock().await;
        let mut m = existing(&ledger.books, &id)?.clone();
        let over = m.effective_window().is_none_or(|w| w.ended_by(now));
        if !over {
            m.cancelled_ms = Some(now);
            tracing::info!(maintenance = %m.id, datacenter = %m.datacenter, "maintenance cancelled");
        }
        let durable = if over {
            ledger.settled()
        } else {
            let change = m.clone();
            ledger.put(|ts| Change::maintenance(ts, change))
        };
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        Ok(Response::new(maintenance_to_wire(&m)))
    }
}

/// Maintenance `id`, or NOT_FOUND.
fn existing<'a>(books: &'a Books, id: &str) -> Result<&'a Maintenance, ApiError> {
    if id.is_empty() {
        return Err(required("id"));
    }
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(FieldError::new("id", "is not a maintenance id (like m-0123456789ab)").into());
    }
    books
        .maintenances
        .get(&id.to_owned())
        .ok_or_else(|| ApiError::not_found("maintenance", id, "id"))
}
