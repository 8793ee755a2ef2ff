//! `TenantService`: customers and their quotas.

use theia::access::Scope;
use theia::api::v1::tenant_service_server::TenantService;
use theia::api::{tenant_from_wire, tenant_to_wire, v1};
use theia::crdt::Lww;
use theia::model::{FieldError, Tenant, validate_name};
use theia::state::{Books, Change};
use tonic::{Request, Response, Status};

use super::Api;
use super::paging::PageRequest;
use crate::access::caller;
use crate::error::{ApiError, required};
use crate::ledger::wall_ms;

fn wire(books: &Books, t: &Tenant) -> v1::Tenant {
    let usage = books.index().tenant(&t.name);
    tenant_to_wire(t, &usage.held.at(wall_ms()), usage.claims)
}

fn existing<'a>(books: &'a Books, name: &str) -> Result<&'a Tenant, ApiError> {
    visible(books, name, &Scope::All)
}

/// Tenant `name` if `scope` sees it: another tenant reads as unknown.
fn visible<'a>(books: &'a Books, name: &str, scope: &Scope) -> Result<&'a Tenant, ApiError> {
    validate_name("name", name)?;
    books
        .tenants
        .get(&name.to_owned())
        .filter(|t| scope.sees(&t.name))
        .ok_or_else(|| ApiError::not_found("tenant", name, "name"))
}

#[tonic::async_trait]
impl TenantService for Api {
    async fn create_tenant(
        &self,
        req: Request<v1::CreateTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let wire_tenant = req.into_inner().tenant.ok_or_else(|| required("tenant"))?;
        let tenant =
            tenant_from_wire(wire_tenant).map_err(|e| ApiError::from(e.within("tenant")))?;
        let mut ledger = self.ledger.lock().await;
        if ledger.books.tenants.contains_key(&tenant.name) {
            return Err(ApiError::AlreadyExists(format!(
                "tenant {:?} already exists",
                tenant.name
            ))
            .into());
        }
        let durable = ledger.put(|ts| Change::tenant(ts, tenant.clone()));
        let answer = wire(&ledger.books, &tenant);
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        tracing::info!(tenant = %tenant.name, "tenant created");
        Ok(Response::new(answer))
    }

    async fn get_tenant(
        &self,
        req: Request<v1::GetTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let scope = caller(&req)?.scope();
        let name = req.into_inner().name;
        let ledger = self.ledger.lock().await;
        let t = visible(&ledger.books, &name, &scope)?;
        Ok(Response::new(wire(&ledger.books, t)))
    }

    async fn list_tenants(
        &self,
        req: Request<v1::ListTenantsRequest>,
    ) -> Result<Response<v1::ListTenantsResponse>, Status> {
        let scope = caller(&req)?.scope();
        let req = req.into_inner();
        let page = PageRequest::new(req.page_size, &req.page_token)?;
        let ledger = self.ledger.lock().await;
        let (picked, next_page_token) = page.take(
            ledger
                .books
                .tenants
                .iter()
                .filter(|(name, _)| scope.sees(name))
                .map(|(name, t)| (name.clone(), t)),
        );
        let tenants = picked.into_iter().map(|t| wire(&ledger.books, t)).collect();
        Ok(Response::new(v1::ListTenantsResponse {
            tenants,
            next_page_token,
        }))
    }

    async fn update_tenant(
        &self,
        req: Request<v1::UpdateTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let req = req.into_inner();
        let patch = req.tenant.ok_or_else(|| required("tenant"))?;
        let paths = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(ApiError::from(FieldError::new(
                "update_mask",
                "name the fields to change: owner, delegates, labels, quota",
            ))
            .into());
        }
        let mut ledger = self.ledger.lock().await;
        let mut tenant = existing(&ledger.books, &patch.name)
            .map_err(|e| match e {
                ApiError::Invalid(f) => ApiError::Invalid(f.within("tenant")),
                other => other,
            })?
            .clone();
        // Parse the patch as a whole tenant so every field is validated the same way.
        let parsed = tenant_from_wire(patch).map_err(|e| ApiError::from(e.within("tenant")))?;
        for path in &paths {
            match path.as_str() {
                "owner" => tenant.owner = parsed.owner.clone(),
                "delegates" => tenant.delegates = parsed.delegates.clone(),
                "labels" => tenant.labels = parsed.labels.clone(),
                "quota" => tenant.quota = parsed.quota.clone(),
                other => {
                    return Err(ApiError::from(FieldError::new(
                        "update_mask",
                        format!(
                            "{other:?} cannot be changed; use owner, delegates, labels or quota"
                        ),
                    ))
                    .into());
                }
            }
        }
        let durable = ledger.put(|ts| Change::tenant(ts, tenant.clone()));
        let answer = wire(&ledger.books, &tenant);
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        tracing::info!(tenant = %tenant.name, fields = ?paths, "tenant updated");
        Ok(Response::new(answer))
    }

    async fn delete_tenant(
        &self,
        req: Request<v1::DeleteTenantRequest>,
    ) -> Result<Response<v1::DeleteTenantResponse>, Status> {
        let name = req.into_inner().name;
        let mut ledger = self.ledger.lock().await;
        existing(&ledger.books, &name)?;
        let claims = ledger.books.index().tenant(&name).claims;
        if claims > 0 {
            return Err(ApiError::FailedPrecondition(format!(
                "tenant {name:?} holds {claims} claim(s); release them before deleting the tenant"
            ))
            .into());
        }
        let durable = ledger.put(|ts| Change::Tenant {
            key: name.clone(),
            register: Lww::tombstone(ts),
        });
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        tracing::info!(tenant = %name, "tenant deleted");
        Ok(Response::new(v1::DeleteTenantResponse {}))
    }
}
