//! `WatchClaims` and `WatchDatacenters`: each change of a claim or a
//! datacenter that the audit trail records, sent with the object as it is
//! then, and a resume token (the event's id) to go on after it.

use std::pin::Pin;
use std::sync::Arc;

use theia::access::Scope;
use theia::api::v1;
use theia::audit::Event;
use theia::model::{Selector, validate_name};
use theia::state::Books;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::audit::resume_point;
use super::follow::{Lens, follow};
use crate::app::App;
use crate::error::ApiError;

/// A stream of changes as a handler returns it.
pub type Changes<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The claims a watcher may and wants to hear of.
struct Claims {
    scope: Scope,
    tenant: Option<String>,
    tenants: Selector,
}

impl Lens for Claims {
    type Item = v1::ClaimChange;
    fn look(&self, app: &App, books: &Books, event: &Event) -> Option<v1::ClaimChange> {
        if event.object_kind != "claim" {
            return None;
        }
        let claim = books.claims().get(&event.object_id)?;
        let tenant = &claim.spec.tenant;
        let wanted = self.scope.sees(tenant)
            && self.tenant.as_ref().is_none_or(|t| t == tenant)
            && (self.tenants.is_empty()
                || books
                    .tenants
                    .get(tenant)
                    .is_some_and(|t| self.tenants.matches(&t.labels)));
        wanted.then(|| v1::ClaimChange {
            action: event.action.clone(),
            claim: Some(app.claim_to_wire(books, claim)),
            resume_token: event.id.clone(),
        })
    }
}

/// Follows the changes of the claims `scope` sees that `req` asks for.
pub fn claims(
    app: Arc<App>,
    scope: Scope,
    req: v1::WatchClaimsRequest,
) -> Result<Changes<v1::ClaimChange>, Status> {
    if !req.tenant.is_empty() {
        validate_name("tenant", &req.tenant).map_err(ApiError::from)?;
    }
    let tenants =
        Selector::parse("tenant_selector", &req.tenant_selector).map_err(ApiError::from)?;
    let start = resume_point(&req.resume_token, None)?;
    let lens = Claims {
        scope,
        tenant: (!req.tenant.is_empty()).then_some(req.tenant),
        tenants,
    };
    Ok(Box::pin(ReceiverStream::new(follow(app, lens, start))))
}

/// The datacenters a watcher wants to hear of.
struct Datacenters {
    selector: Selector,
}

impl Lens for Datacenters {
    type Item = v1::DatacenterChange;
    fn look(&self, app: &App, books: &Books, event: &Event) -> Option<v1::DatacenterChange> {
        if event.object_kind != "datacenter" {
            return None;
        }
        let datacenter = match books.datacenter(&event.object_id) {
            Some(dc) => {
                if !self.selector.matches(&dc.labels) {
                    return None;
                }
                super::infrastructure::one_to_wire(app, books, dc)
            }
            // Gone: only its id is left to say, and only to a watcher of all.
            None if self.selector.is_empty() => v1::Datacenter {
                id: event.object_id.clone(),
                ..Default::default()
            },
            None => return None,
        };
        Some(v1::DatacenterChange {
            action: event.action.clone(),
            datacenter: Some(datacenter),
            resume_token: event.id.clone(),
        })
    }
}

/// Follows the changes of the datacenters `req` selects.
pub fn datacenters(
    app: Arc<App>,
    req: v1::WatchDatacentersRequest,
) -> Result<Changes<v1::DatacenterChange>, Status> {
    let selector = Selector::parse("selector", &req.selector).map_err(ApiError::from)?;
    let start = resume_point(&req.resume_token, None)?;
    Ok(Box::pin(ReceiverStream::new(follow(
        app,
        Datacenters { selector },
        start,
    ))))
}
