//! `InfrastructureService`: datacenters and the logical infrastructure.

use std::collections::BTreeMap;

use theia::api::v1;
use theia::api::v1::infrastructure_service_server::InfrastructureService;
use theia::crdt::Lww;
use theia::model::{
    Datacenter, FieldError, Labels, ResourceClass, Resources, Selector, validate_labels,
    validate_name,
};
use theia::scheduler::{Candidate, Liveness, available};
use theia::state::Change;
use tonic::{Request, Response, Status};

use super::Api;
use super::paging::PageRequest;
use crate::error::ApiError;
use crate::ledger::wall_ms;

fn liveness_to_wire(l: Liveness) -> i32 {
    match l {
        Liveness::Alive => v1::Liveness::Alive as i32,
        Liveness::Suspect => v1::Liveness::Suspect as i32,
        Liveness::Down => v1::Liveness::Down as i32,
    }
}

/// Sums of one class over one or more datacenters, in base units.
#[derive(Default)]
struct ClassSums {
    total: u64,
    free: u64,
    reserved: u64,
    capacity: u64,
    allocated: u64,
    available: u64,
}

impl ClassSums {
    /// Adds `c`'s `class` as it is at `now`.
    fn add(&mut self, c: &Candidate<'_>, class: &ResourceClass, schedulable: bool, now: u64) {
        let allocated = c.usage.allocated.level(class, now);
        self.allocated = self.allocated.saturating_add(allocated);
        let Some(inv) = c.dc.inventory.get(class) else {
            return;
        };
        self.total = self.total.saturating_add(inv.total);
        self.free = self.free.saturating_add(inv.free);
        self.reserved = self.reserved.saturating_add(inv.reserved);
        self.capacity = self.capacity.saturating_add(inv.capacity());
        if schedulable {
            let left = available(inv, allocated, c.usage.applied.get(class));
            self.available = self.available.saturating_add(left);
        }
    }

    fn to_wire(&self, class: &ResourceClass) -> v1::ClassCapacity {
        let base = self.total.saturating_sub(self.reserved);
        v1::ClassCapacity {
            class: class.to_string(),
            total: class.format(self.total),
            reported_free: class.format(self.free),
            reserved: class.format(self.reserved),
            allocation_ratio: if base == 0 {
                1.0
            } else {
                self.capacity as f64 / base as f64
            },
            allocated: class.format(self.allocated),
            available: class.format(self.available),
        }
    }
}

fn classes(c: &Candidate<'_>) -> Vec<ResourceClass> {
    let mut out: Vec<ResourceClass> = c.dc.inventory.keys().cloned().collect();
    out.extend(c.usage.allocated.classes().cloned());
    out.sort();
    out.dedup();
    out
}

fn can_place(c: &Candidate<'_>) -> bool {
    c.dc.schedulable && c.liveness != Liveness::Down
}

fn dc_to_wire(api: &crate::app::App, c: &Candidate<'_>) -> v1::Datacenter {
    let now = wall_ms();
    let dc: &Datacenter = c.dc;
    let capacity = classes(c)
        .iter()
        .map(|class| {
            let mut sums = ClassSums::default();
            sums.add(c, class, can_place(c), now);
            sums.to_wire(class)
        })
        .collect();
    v1::Datacenter {
        id: dc.id.clone(),
        labels: dc.labels.clone().into_iter().collect(),
        schedulable: dc.schedulable,
        liveness: liveness_to_wire(c.liveness),
        last_seen_unix_ms: i64::try_from(api.agents.last_seen_ms(&dc.id)).unwrap_or(i64::MAX),
        agent_version: dc.agent_version.clone(),
        driver: dc.driver.clone(),
        capacity,
        claims: c.usage.claims,
        over_committed: c
            .over_committed(now)
            .iter()
            .map(ToString::to_string)
            .collect(),
        ignored_reports: api.agents.ignored_reports(&dc.id),
    }
}

/// Datacenter `dc` of `books` for the wire, as it and its liveness are now.
pub(super) fn one_to_wire(
    app: &crate::app::App,
    books: &theia::state::Books,
    dc: &Datacenter,
) -> v1::Datacenter {
    let c = Candidate {
        dc,
        liveness: app.agents.liveness(&dc.id),
        usage: books.index().datacenter(&dc.id),
    };
    dc_to_wire(app, &c)
}

/// Datacenter `id` for the wire, as `books` and liveness show it now.
fn datacenter_to_wire(
    api: &Api,
    books: &theia::state::Books,
    id: &str,
) -> Result<v1::Datacenter, ApiError> {
    let cands = api.candidates(books);
    let c = cands
        .iter()
        .find(|c| c.dc.id == id)
        .ok_or_else(|| ApiError::not_found("datacenter", id, "id"))?;
    Ok(dc_to_wire(api, c))
}

fn selector(text: &str) -> Result<Selector, ApiError> {
    Ok(Selector::parse("selector", text)?)
}

#[tonic::async_trait]
impl InfrastructureService for Api {
    async fn create_maintenance(
        &self,
        req: Request<v1::CreateMaintenanceRequest>,
    ) -> Result<Response<v1::CreateMaintenanceResponse>, Status> {
        self.create_maintenance_call(req).await
    }

    async fn get_maintenance(
        &self,
        req: Request<v1::GetMaintenanceRequest>,
    ) -> Result<Response<v1::Maintenance>, Status> {
        self.get_maintenance_call(req).await
    }

    async fn list_maintenances(
        &self,
        req: Request<v1::ListMaintenancesRequest>,
    ) -> Result<Response<v1::ListMaintenancesResponse>, Status> {
        self.list_maintenances_call(req).await
    }

    async fn cancel_maintenance(
        &self,
        req: Request<v1::CancelMaintenanceRequest>,
    ) -> Result<Response<v1::Maintenance>, Status> {
        self.cancel_maintenance_call(req).await
    }

    async fn get_capacity_timeline(
        &self,
        req: Request<v1::GetCapacityTimelineRequest>,
    ) -> Result<Response<v1::CapacityTimeline>, Status> {
        self.capacity_timeline_call(req).await
    }

    type WatchDatacentersStream = super::watch::Changes<v1::DatacenterChange>;

    async fn watch_datacenters(
        &self,
        req: Request<v1::WatchDatacentersRequest>,
    ) -> Result<Response<Self::WatchDatacentersStream>, Status> {
        let stream = super::watch::datacenters(self.0.clone(), req.into_inner())?;
        Ok(Response::new(stream))
    }

    async fn list_datacenters(
        &self,
        req: Request<v1::ListDatacentersRequest>,
    ) -> Result<Response<v1::ListDatacentersResponse>, Status> {
        let req = req.into_inner();
        let sel = selector(&req.selector)?;
        let page = PageRequest::new(req.page_size, &req.page_token)?;
        let ledger = self.ledger.lock().await;
        let cands = self.candidates(&ledger.books);
        let (picked, next_page_token) = page.take(
            cands
                .iter()
                .filter(|c| sel.matches(&c.dc.labels))
                .map(|c| (c.dc.id.clone(), c)),
        );
        let datacenters = picked.into_iter().map(|c| dc_to_wire(self, c)).collect();
        Ok(Response::new(v1::ListDatacentersResponse {
            datacenters,
            next_page_token,
        }))
    }

    async fn get_datacenter(
        &self,
        req: Request<v1::GetDatacenterRequest>,
    ) -> Result<Response<v1::Datacenter>, Status> {
        let id = req.into_inner().id;
        validate_name("id", &id).map_err(ApiError::from)?;
        let ledger = self.ledger.lock().await;
        Ok(Response::new(datacenter_to_wire(self, &ledger.books, &id)?))
    }

    async fn get_logical_infrastructure(
        &self,
        req: Request<v1::GetLogicalInfrastructureRequest>,
    ) -> Result<Response<v1::LogicalInfrastructure>, Status> {
        let text = req.into_inner().selector;
        let sel = selector(&text)?;
        let ledger = self.ledger.lock().await;
        let cands = self.candidates(&ledger.books);
        let picked: Vec<&Candidate<'_>> =
            cands.iter().filter(|c| sel.matches(&c.dc.labels)).collect();
        let mut sums: BTreeMap<ResourceClass, ClassSums> = BTreeMap::new();
        let now = wall_ms();
        let mut out = v1::LogicalInfrastructure {
            selector: sel.to_string(),
            ..Default::default()
        };
        for c in &picked {
            match c.liveness {
                Liveness::Alive => out.alive += 1,
                Liveness::Suspect => out.suspect += 1,
                Liveness::Down => out.down += 1,
            }
            for class in classes(c) {
                sums.entry(class.clone())
                    .or_default()
                    .add(c, &class, can_place(c), now);
            }
        }
        out.datacenters = u32::try_from(picked.len()).unwrap_or(u32::MAX);
        out.capacity = sums.iter().map(|(class, s)| s.to_wire(class)).collect();
        Ok(Response::new(out))
    }

    async fn register_datacenter(
        &self,
        req: Request<v1::RegisterDatacenterRequest>,
    ) -> Result<Response<v1::Datacenter>, Status> {
        let req = req.into_inner();
        validate_name("id", &req.id).map_err(ApiError::from)?;
        let labels: Labels = req.labels.into_iter().collect();
        validate_labels("labels", &labels).map_err(ApiError::from)?;
        let mut ledger = self.ledger.lock().await;
        let durable = (!ledger.books.datacenters.contains_key(&req.id)).then(|| {
            let dc = Datacenter::new(req.id.clone(), labels);
            ledger.put(|ts| Change::datacenter(ts, dc))
        });
        let answer = datacenter_to_wire(self, &ledger.books, &req.id)?;
        drop(ledger);
        if let Some(durable) = durable {
            durable.wait().await.map_err(ApiError::from)?;
            tracing::info!(datacenter = %req.id, "datacenter registered");
        }
        Ok(Response::new(answer))
    }

    async fn update_datacenter(
        &self,
        req: Request<v1::UpdateDatacenterRequest>,
    ) -> Result<Response<v1::Datacenter>, Status> {
        let req = req.into_inner();
        validate_name("id", &req.id).map_err(ApiError::from)?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(ApiError::from(FieldError::new(
                "update_mask",
                "name the fields to change: reserved, allocation_ratio, schedulable, labels",
            ))
            .into());
        }
        let reserved = Resources::parse_map(
            "reserved",
            req.reserved.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .map_err(ApiError::from)?;
        let mut ratios = BTreeMap::new();
        for (class, ratio) in &req.allocation_ratio {
            let parsed = ResourceClass::parse(class.trim()).map_err(|e| {
                ApiError::from(FieldError::new(format!("allocation_ratio[{class}]"), e))
            })?;
            ratios.insert(parsed, *ratio);
        }
        let mut ledger = self.ledger.lock().await;
        if !ledger.books.datacenters.contains_key(&req.id) {
            return Err(ApiError::not_found("datacenter", &req.id, "id").into());
        }
        let mut settings = ledger
            .books
            .settings
            .get(&req.id)
            .cloned()
            .unwrap_or_default();
        for path in &paths {
            match path.as_str() {
                "reserved" => {
                    settings.reserved = reserved.iter().map(|(c, n)| (c.clone(), n)).collect();
                }
                "allocation_ratio" => settings.allocation_ratio = ratios.clone(),
                "schedulable" => settings.schedulable = req.schedulable,
                "labels" => {
                    let labels: Labels = req.labels.clone().into_iter().collect();
                    settings.labels = (!labels.is_empty()).then_some(labels);
                }
                other => {
                    return Err(ApiError::from(FieldError::new(
                        "update_mask",
                        format!(
                            "{} cannot be changed; use reserved, allocation_ratio, schedulable or labels",
                            theia::model::quoted(other)
                        ),
                    ))
                    .into());
                }
            }
        }
        settings.validate().map_err(ApiError::from)?;
        let durable = ledger.put(|ts| Change::Settings {
            key: req.id.clone(),
            register: Lww::new(ts, settings),
        });
        let answer = datacenter_to_wire(self, &ledger.books, &req.id)?;
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        tracing::info!(datacenter = %req.id, fields = ?paths, "datacenter settings updated");
        Ok(Response::new(answer))
    }

    async fn delete_datacenter(
        &self,
        req: Request<v1::DeleteDatacenterRequest>,
    ) -> Result<Response<v1::DeleteDatacenterResponse>, Status> {
        let id = req.into_inner().id;
        validate_name("id", &id).map_err(ApiError::from)?;
        let mut ledger = self.ledger.lock().await;
        if !ledger.books.datacenters.contains_key(&id) {
            return Err(ApiError::not_found("datacenter", &id, "id").into());
        }
        let claims = ledger.books.index().datacenter(&id).claims;
        if claims > 0 {
            return Err(ApiError::FailedPrecondition(format!(
                "datacenter {id:?} holds {claims} claim(s); release them before deleting it"
            ))
            .into());
        }
        let ts = ledger.stamp();
        let mut gone = vec![Change::Datacenter {
            key: id.clone(),
            register: Lww::tombstone(ts.clone()),
        }];
        if ledger.books.settings.contains_key(&id) {
            gone.push(Change::Settings {
                key: id.clone(),
                register: Lww::tombstone(ts),
            });
        }
        let durable = ledger.commit(gone, Vec::new());
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        self.agents.disconnect(
            &id,
            Status::failed_precondition(format!(
                "datacenter {id:?} was deleted; register it again before its agent connects"
            )),
        );
        tracing::info!(datacenter = %id, "datacenter deleted");
        Ok(Response::new(v1::DeleteDatacenterResponse {}))
    }
}
