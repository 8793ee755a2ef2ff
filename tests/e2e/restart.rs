//! A manager killed and restarted on the same data directory still has
//! every claim, tenant and profile it acknowledged.

use theia::api::v1;

use crate::common::*;
use crate::placement::TwoDcs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_manager_restarts_with_every_claim() {
    let mut w = TwoDcs::start().await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        let c = w.api.create_claim(spec("acme", "small", n)).await.unwrap();
        ids.push(c.id);
    }
    w.api
        .claims
        .release_claim(v1::ReleaseClaimRequest { id: ids[0].clone() })
        .await
        .unwrap();
    // Let the agents confirm, so the snapshot no longer changes under us.
    let before = w.api.settled_claims().await;

    w.manager.kill().await;
    let manager = TestManager::start(&w.dir.path().join("manager")).await;
    let mut api = Clients::new(manager.channel().await);
    let after = api.all_claims().await;
    assert_eq!(
        claims_snapshot(&after),
        claims_snapshot(&before),
        "every claim survives, with its state and placement"
    );
    assert_eq!(
        after.iter().find(|c| c.id == ids[0]).unwrap().state,
        v1::ClaimState::Released as i32
    );
    api.tenants
        .get_tenant(v1::GetTenantRequest {
            name: "acme".into(),
        })
        .await
        .expect("tenant survives");
    api.profiles
        .get_profile(v1::GetProfileRequest {
            name: "small".into(),
        })
        .await
        .expect("profile survives");
    let dcs = api
        .infra
        .list_datacenters(v1::ListDatacentersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .datacenters;
    assert_eq!(dcs.len(), 2, "datacenters survive");

    w.eu.stop().await;
    w.us.stop().await;
    manager.stop().await;
}
