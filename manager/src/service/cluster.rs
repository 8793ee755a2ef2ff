//! `ClusterService`: the managers and their store.

use theia::api::v1;
use theia::api::v1::cluster_service_server::ClusterService;
use tonic::{Request, Response, Status};

use super::Api;
use crate::ledger::wall_ms;

#[tonic::async_trait]
impl ClusterService for Api {
    async fn get_cluster_status(
        &self,
        _req: Request<v1::GetClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatus>, Status> {
        let ledger = self.ledger.lock().await;
        let me = v1::Manager {
            id: self.manager_id.clone(),
            address: self.address.to_string(),
            last_seen_unix_ms: i64::try_from(wall_ms()).unwrap_or(i64::MAX),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        Ok(Response::new(v1::ClusterStatus {
            manager_id: self.manager_id.clone(),
            managers: {
                let peers = self
                    .peers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if peers.iter().any(|p| p.id == me.id) {
                    peers.clone()
                } else {
                    let mut all = peers.clone();
                    all.push(me);
                    all
                }
            },
            store_backend: ledger.backend().to_owned(),
            store_location: ledger.location().to_owned(),
            pending_changes: ledger.pending(),
            last_sync_unix_ms: i64::try_from(ledger.last_sync_ms()).unwrap_or(i64::MAX),
            datacenters: u32::try_from(ledger.books.datacenters.len()).unwrap_or(u32::MAX),
            connected_agents: u32::try_from(self.agents.connected()).unwrap_or(u32::MAX),
            cluster_id: ledger.cluster_id().to_owned(),
            audit_events_dropped: self.trail.dropped(),
        }))
    }
}
