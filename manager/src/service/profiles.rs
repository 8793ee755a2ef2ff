//! `ProfileService`: named bundles of resources.

use theia::api::v1::profile_service_server::ProfileService;
use theia::api::{profile_from_wire, profile_to_wire, v1};
use theia::crdt::Lww;
use theia::model::{Profile, validate_name};
use theia::state::{Books, Change};
use tonic::{Request, Response, Status};

use super::Api;
use super::paging::PageRequest;
use crate::error::{ApiError, required};

fn existing<'a>(books: &'a Books, name: &str) -> Result<&'a Profile, ApiError> {
    validate_name("name", name)?;
    books
        .profiles
        .get(&name.to_owned())
        .ok_or_else(|| ApiError::not_found("profile", name, "name"))
}

#[tonic::async_trait]
impl ProfileService for Api {
    async fn create_profile(
        &self,
        req: Request<v1::CreateProfileRequest>,
    ) -> Result<Response<v1::Profile>, Status> {
        let wire = req
            .into_inner()
            .profile
            .ok_or_else(|| required("profile"))?;
        let profile = profile_from_wire(wire).map_err(|e| ApiError::from(e.within("profile")))?;
        let mut ledger = self.ledger.lock().await;
        if ledger.books.profiles.contains_key(&profile.name) {
            return Err(ApiError::AlreadyExists(format!(
                "profile {:?} already exists",
                profile.name
            ))
            .into());
        }
        let durable = ledger.put(|ts| Change::profile(ts, profile.clone()));
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        tracing::info!(profile = %profile.name, resources = %profile.resources, "profile created");
        Ok(Response::new(profile_to_wire(&profile)))
    }

    async fn get_profile(
        &self,
        req: Request<v1::GetProfileRequest>,
    ) -> Result<Response<v1::Profile>, Status> {
        let name = req.into_inner().name;
        let ledger = self.ledger.lock().await;
        Ok(Response::new(profile_to_wire(existing(
            &ledger.books,
            &name,
        )?)))
    }

    async fn list_profiles(
        &self,
        req: Request<v1::ListProfilesRequest>,
    ) -> Result<Response<v1::ListProfilesResponse>, Status> {
        let req = req.into_inner();
        let page = PageRequest::new(req.page_size, &req.page_token)?;
        let ledger = self.ledger.lock().await;
        let (picked, next_page_token) = page.take(
            ledger
                .books
                .profiles
                .iter()
                .map(|(name, p)| (name.clone(), p)),
        );
        let profiles = picked.into_iter().map(profile_to_wire).collect();
        Ok(Response::new(v1::ListProfilesResponse {
            profiles,
            next_page_token,
        }))
    }

    /// Claims made from a profile keep the resources they resolved at
    /// creation, so deleting a profile never changes what they hold.
    async fn delete_profile(
        &self,
        req: Request<v1::DeleteProfileRequest>,
    ) -> Result<Response<v1::DeleteProfileResponse>, Status> {
        let name = req.into_inner().name;
        let mut ledger = self.ledger.lock().await;
        existing(&ledger.books, &name)?;
        let durable = ledger.put(|ts| Change::Profile {
            key: name.clone(),
            register: Lww::tombstone(ts),
        });
        drop(ledger);
        durable.wait().await.map_err(ApiError::from)?;
        tracing::info!(profile = %name, "profile deleted");
        Ok(Response::new(v1::DeleteProfileResponse {}))
    }
}
