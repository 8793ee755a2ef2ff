//! `ClaimService`: placing, releasing and explaining claims.

use theia::access::Scope;
use theia::api::v1::claim_service_server::ClaimService;
use theia::api::{claim_spec_from_wire, ms_to_wire, placement_to_wire, v1};
use theia::model::{Claim, ClaimSpec, ClaimState, FieldError, Window, validate_name};
use theia::scheduler::{Outcome, check_quota};
use theia::state::{Books, Change, ClaimEnd};
use tonic::{Request, Response, Status};

use super::Api;
use super::paging::PageRequest;
use crate::access::caller;
use crate::app::{assign_effects, release_effects};
use crate::error::{ApiError, required};
use crate::ledger::wall_ms;
use crate::store::StoreError;

/// The longest claim id accepted in a request.
const MAX_CLAIM_ID_LEN: usize = 64;

/// How many datacenters' reasons an error message lists before "and N more".
const REASONS_IN_ERROR: usize = 8;

/// Turns a wire spec into a complete domain spec: the profile resolved from
/// the books, every field checked, the tenant known and within `scope` (a
/// tenant outside it reads as unknown). A caller acting for one tenant may
/// leave the tenant out.
fn resolve_spec(
    books: &Books,
    wire: Option<v1::ClaimSpec>,
    scope: &Scope,
) -> Result<ClaimSpec, ApiError> {
    let mut wire = wire.ok_or_else(|| required("spec"))?;
    if let (true, Scope::Tenants(tenants)) = (wire.tenant.is_empty(), scope)
        && let [only] = tenants.iter().collect::<Vec<_>>()[..]
    {
        wire.tenant = only.clone();
    }
    if wire.tenant.is_empty() {
        return Err(FieldError::new(
            "spec.tenant",
            "name the tenant (only a token acting for exactly one tenant may leave it out)",
        )
        .into());
    }
    let mut spec = claim_spec_from_wire(wire).map_err(|e| e.within("spec"))?;
    if let Some(name) = &spec.profile {
        let profile = books
            .profiles
            .get(name)
            .ok_or_else(|| ApiError::not_found("profile", name, "spec.profile"))?;
        spec.unit = profile.resources.clone();
    }
    spec.validate().map_err(|e| e.within("spec"))?;
    if !scope.sees(&spec.tenant) || !books.tenants.contains_key(&spec.tenant) {
        return Err(ApiError::not_found("tenant", &spec.tenant, "spec.tenant"));
    }
    for (i, dc) in spec.datacenters.iter().enumerate() {
        if !books.datacenters.contains_key(dc) {
            return Err(ApiError::not_found(
                "datacenter",
                dc,
                &format!("spec.datacenters[{i}]"),
            ));
        }
    }
    Ok(spec)
}

/// The window `spec` asks for, decided at `now`.
fn resolve_window(spec: &ClaimSpec, now: u64) -> Result<Window, ApiError> {
    spec.timing
        .resolve(now)
        .map_err(|e| ApiError::from(e.within("spec")))
}

fn not_fitting(outcome: &Outcome) -> ApiError {
    let mut parts: Vec<String> = outcome
        .verdicts
        .iter()
        .filter(|v| !v.reasons.is_empty())
        .take(REASONS_IN_ERROR)
        .map(|v| format!("{}: {}", v.datacenter, v.reasons.join(", ")))
        .collect();
    let more = outcome
        .verdicts
        .iter()
        .filter(|v| !v.reasons.is_empty())
        .count();
    if more > REASONS_IN_ERROR {
        parts.push(format!("and {} more", more - REASONS_IN_ERROR));
    }
    let detail = if parts.is_empty() {
        String::new()
    } else {
        format!(" — {}", parts.join("; "))
    };
    ApiError::Exhausted(format!("claim does not fit: {}{detail}", outcome.summary))
}

fn new_claim_id(books: &Books) -> String {
    loop {
        let id = format!("c-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        if !books.claim_id_taken(&id) {
            return id;
        }
    }
}

impl Api {
    /// The window and placement `spec` gets on `books` at `now`: over the
    /// window it asks for, or with a dynamic start the earliest that fits.
    /// A quota exceeded, or no start that fits, is an error; a placement
    /// that does not fit is an outcome that says so. `placed` as for
    /// [`App::schedule`](crate::app::App::schedule).
    fn decide(
        &self,
        books: &Books,
        spec: &ClaimSpec,
        placed: bool,
        now: u64,
    ) -> Result<(Window, Outcome), ApiError> {
        let first = resolve_window(spec, now)?;
        let tenant = books
            .tenants
            .get(&spec.tenant)
            .ok_or_else(|| ApiError::not_found("tenant", &spec.tenant, "spec.tenant"))?;
        if spec.timing.earliest {
            return match self
                .0
                .schedule_earliest(books, spec, tenant, placed, first, now)
            {
                Ok(found) => Ok((found.window, found.outcome)),
                Err(none) => Err(ApiError::Exhausted(format!(
                    "claim does not fit: {}",
                    none.summary
                ))),
            };
        }
        let usage = books.index().tenant(&tenant.name);
        check_quota(tenant, &usage.held, &spec.total(), first, now).map_err(ApiError::from)?;
        Ok((first, self.0.schedule(books, spec, placed, first, now)))
    }
}

/// How often a claim is decided again after a write conflict.
const PLACE_ATTEMPTS: u32 = 8;

impl Api {
    /// Decides and commits one claim, once.
    async fn place(
        &self,
        spec: Option<v1::ClaimSpec>,
        scope: &Scope,
    ) -> Result<Response<v1::Claim>, ApiError> {
        let (durable, claim) = {
            let mut ledger = self.ledger.lock().await;
            let spec = resolve_spec(&ledger.books, spec, scope)?;
            if let Some(earlier) = earlier_claim(&ledger.books, &spec)? {
                // A retry: acknowledged once what the first call made is
                // durable, even if that call is still on its way.
                let answer = self.claim_to_wire(&ledger.books, earlier);
                let settled = ledger.settled();
                drop(ledger);
                settled.wait().await.map_err(ApiError::from)?;
                return Ok(Response::new(answer));
            }
            let books = &ledger.books;
            let now = wall_ms();
            let (window, outcome) = self.decide(books, &spec, true, now)?;
            if !outcome.fits {
                return Err(not_fitting(&outcome));
            }
            let claim = Claim {
                id: new_claim_id(books),
                spec,
                state: ClaimState::Placed,
                placements: outcome.placements,
                created_ms: now,
                updated_ms: now,
                window,
            };
            tracing::info!(claim = %claim.id, tenant = %claim.spec.tenant, placement = %outcome.summary, start_ms = window.start, end_ms = ?window.end, "claim placed");
            // Agents hear of it once it is durable, from the writer, whether
            // or not this call is still waiting then; of a claim that starts
            // later, when it starts (the timekeeper tells them).
            let effects = if window.contains(now) {
                assign_effects(&claim)
            } else {
                Vec::new()
            };
            // Claims whose window is over but that the timekeeper has not
            // expired yet are expired first, so that their agents release
            // them before they hear of what was placed in their room.
            let mut releases = Vec::new();
            let mut changes = crate::timekeeper::expire_due(&mut ledger, now, &mut releases);
            releases.extend(effects);
            let ts = ledger.stamp();
            changes.push(Change::claim(ts, claim.clone()));
            let durable = ledger.commit(changes, releases);
            (durable, self.claim_to_wire(&ledger.books, &claim))
        };
        durable.wait().await.map_err(ApiError::from)?;
        Ok(Response::new(claim))
    }
}

/// The claim an earlier call with the same request id made, if any: a live
/// one first, else the latest released one (a retry after a release returns
/// the released claim instead of booking again). The same request id with a
/// different spec is refused.
fn earlier_claim<'a>(books: &'a Books, spec: &ClaimSpec) -> Result<Option<&'a Claim>, ApiError> {
    if spec.request_id.is_empty() {
        return Ok(None);
    }
    let earlier = books
        .index()
        .requests(&spec.tenant, &spec.request_id)
        .filter_map(|id| books.claims().get(&id.to_owned()))
        .max_by_key(|c| (c.state.holds_capacity(), c.created_ms, c.id.clone()));
    match earlier {
        Some(c) if c.spec != *spec => Err(ApiError::AlreadyExists(format!(
            "spec.request_id: {:?} was already used for claim {} with a different spec",
            spec.request_id, c.id
        ))),
        other => Ok(other),
    }
}

/// Claim `id`, if `scope` sees its tenant: another tenant's claim reads as
/// unknown, so that ids cannot be probed.
fn existing<'a>(books: &'a Books, id: &str, scope: &Scope) -> Result<&'a Claim, ApiError> {
    if id.is_empty() {
        return Err(required("id"));
    }
    // Ids are short; a long one is not echoed back in the error.
    if id.len() > MAX_CLAIM_ID_LEN || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(FieldError::new("id", "is not a claim id (like c-0123456789ab)").into());
    }
    books
        .claims()
        .get(&id.to_owned())
        .filter(|c| scope.sees(&c.spec.tenant))
        .ok_or_else(|| ApiError::not_found("claim", id, "id"))
}

#[tonic::async_trait]
impl ClaimService for Api {
    async fn create_claim(
        &self,
        req: Request<v1::CreateClaimRequest>,
    ) -> Result<Response<v1::Claim>, Status> {
        let scope = caller(&req)?.scope();
        let spec = req.into_inner().spec;
        // In a cluster another manager may place on the same datacenters or
        // for the same tenant at the same moment: the store refuses the
        // later decision, which is made again on fresher books.
        for attempt in 0..PLACE_ATTEMPTS {
            match self.place(spec.clone(), &scope).await {
                Err(ApiError::Store(StoreError::Conflict)) => {
                    let ceiling = 5u64 << attempt.min(6);
                    let pause = rand::random_range(ceiling / 2..=ceiling);
                    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                }
                other => return other.map_err(Status::from),
            }
        }
        Err(ApiError::Aborted(format!(
            "other managers placed on the same datacenters or for the same tenant {PLACE_ATTEMPTS} times while this claim was decided; nothing was placed, retry"
        ))
        .into())
    }

    async fn get_claim(
        &self,
        req: Request<v1::GetClaimRequest>,
    ) -> Result<Response<v1::Claim>, Status> {
        let scope = caller(&req)?.scope();
        let id = req.into_inner().id;
        let ledger = self.ledger.lock().await;
        Ok(Response::new(self.claim_to_wire(
            &ledger.books,
            existing(&ledger.books, &id, &scope)?,
        )))
    }

    async fn list_claims(
        &self,
        req: Request<v1::ListClaimsRequest>,
    ) -> Result<Response<v1::ListClaimsResponse>, Status> {
        let scope = caller(&req)?.scope();
        let req = req.into_inner();
        if !req.tenant.is_empty() {
            validate_name("tenant", &req.tenant).map_err(ApiError::from)?;
        }
        let page = PageRequest::new(req.page_size, &req.page_token)?;
        // The token is the last key given, `created_ms/id`.
        let after = match page.after() {
            None => None,
            Some(key) => Some(
                key.split_once('/')
                    .and_then(|(ms, id)| Some((ms.parse::<u64>().ok()?, id)))
                    .ok_or_else(|| {
                        ApiError::from(theia::model::FieldError::new(
                            "page_token",
                            "is not a next_page_token from an earlier answer",
                        ))
                    })?,
            ),
        };
        let ledger = self.ledger.lock().await;
        let books = &ledger.books;
        let now = wall_ms();
        let tenant = (!req.tenant.is_empty()).then_some(req.tenant.as_str());
        // In creation order from the token on: a page costs what it holds
        // (and the claims skipped as not visible or no longer live), not
        // every claim kept.
        let claims = books
            .index()
            .created_after(tenant, req.include_released, after)
            .filter_map(|(_, id)| books.claims().get(id))
            .filter(|c| scope.sees(&c.spec.tenant))
            .filter(|c| req.include_released || c.state_at(now).holds_capacity());
        // Zero-padded, so that the keys sort as (created_ms, id) do.
        let (picked, next_page_token) =
            page.take(claims.map(|c| (format!("{:020}/{}", c.created_ms, c.id), c)));
        let claims = picked
            .into_iter()
            .map(|c| self.claim_to_wire(&ledger.books, c))
            .collect();
        Ok(Response::new(v1::ListClaimsResponse {
            claims,
            next_page_token,
        }))
    }

    type WatchClaimsStream = super::watch::Changes<v1::ClaimChange>;

    async fn watch_claims(
        &self,
        req: Request<v1::WatchClaimsRequest>,
    ) -> Result<Response<Self::WatchClaimsStream>, Status> {
        let scope = caller(&req)?.scope();
        let stream = super::watch::claims(self.0.clone(), scope, req.into_inner())?;
        Ok(Response::new(stream))
    }

    async fn release_claim(
        &self,
        req: Request<v1::ReleaseClaimRequest>,
    ) -> Result<Response<v1::Claim>, Status> {
        let scope = caller(&req)?.scope();
        let id = req.into_inner().id;
        let mut ledger = self.ledger.lock().await;
        let claim = existing(&ledger.books, &id, &scope)?.clone();
        if claim.state.ended() {
            let answer = self.claim_to_wire(&ledger.books, &claim);
            let settled = ledger.settled();
            drop(ledger);
            settled.wait().await.map_err(ApiError::from)?;
            return Ok(Response::new(answer));
        }
        let effects = release_effects(&claim);
        // Only the end is written: agents' flags are their own registers,
        // so a late result can never bring the claim back. A claim whose
        // window is over ends as it would have anyway: expired.
        let now = wall_ms();
        let ending = match claim.window.end {
            Some(end) if end <= now => ClaimEnd::expired(end),
            _ => ClaimEnd::released(now),
        };
        let ts = ledger.stamp();
        let end = Change::end(&claim.id, ts, ending);
        let durable = ledger.commit(vec![end], effects);
        let released = ledger
            .books
            .claims()
            .get(&claim.id)
            .cloned()
            .unwrap_or(claim);
        let answer = self.claim_to_wire(&ledger.books, &released);
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        tracing::info!(claim = %released.id, tenant = %released.spec.tenant, "claim released");
        Ok(Response::new(answer))
    }

    async fn explain_claim(
        &self,
        req: Request<v1::ExplainClaimRequest>,
    ) -> Result<Response<v1::ExplainClaimResponse>, Status> {
        let scope = caller(&req)?.scope();
        let ledger = self.ledger.lock().await;
        let books = &ledger.books;
        let spec = resolve_spec(books, req.into_inner().spec, &scope)?;
        let now = wall_ms();
        let first = resolve_window(&spec, now)?;
        // Explain decides as create would, and says the same when it would
        // refuse: the quota, or no start in the planning window.
        let (window, outcome, refusal) = match self.decide(books, &spec, false, now) {
            Ok((window, outcome)) => (window, outcome, None),
            Err(ApiError::Exhausted(why)) => {
                let outcome = self.0.schedule(books, &spec, false, first, now);
                (first, outcome, Some(why))
            }
            Err(e) => return Err(e.into()),
        };
        let (fits, summary) = match refusal {
            Some(why) => (false, why),
            None if outcome.fits && window.start > now => (
                true,
                format!(
                    "{} from {}",
                    outcome.summary,
                    theia::model::format_instant(window.start)
                ),
            ),
            None => (outcome.fits, outcome.summary.clone()),
        };
        Ok(Response::new(v1::ExplainClaimResponse {
            fits,
            placements: if fits {
                outcome.placements.iter().map(placement_to_wire).collect()
            } else {
                Vec::new()
            },
            verdicts: outcome
                .verdicts
                .into_iter()
                .map(|v| v1::DatacenterVerdict {
                    datacenter: v.datacenter,
                    units_that_fit: v.units_that_fit,
                    reasons: v.reasons,
                    filters: v.filters,
                })
                .collect(),
            summary,
            rejected_by: outcome.rejected_by.into_iter().collect(),
            start_unix_ms: ms_to_wire(Some(window.start)),
            end_unix_ms: ms_to_wire(window.end),
        }))
    }
}
