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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_claims_are_pruned_after_their_retention_for_good() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        theia_manager::ManagerConfig::for_dir(dir.path(), "127.0.0.1:0".parse().unwrap());
    fast(&mut config);
    config.claim_retention = std::time::Duration::from_millis(300);
    let manager = TestManager::start_with(config.clone()).await;
    let mut api = Clients::new(manager.channel().await);
    api.create_tenant("acme", &[]).await;
    api.create_profile("p", &[("compute.vcpu", "1")]).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-r",
        &[],
        "compute.vcpu=4",
        dir.path().join("agent"),
    );
    api.wait_liveness("dc-r", v1::Liveness::Alive).await;
    let kept = api.create_claim(spec("acme", "p", 1)).await.unwrap();
    let gone = api.create_claim(spec("acme", "p", 1)).await.unwrap();
    api.claims
        .release_claim(v1::ReleaseClaimRequest {
            id: gone.id.clone(),
        })
        .await
        .unwrap();
    eventually("the released claim is pruned", || {
        let mut api = api.clone();
        async move {
            let ids: Vec<String> = api.all_claims().await.into_iter().map(|c| c.id).collect();
            (ids.len() == 1).then_some(ids)
        }
    })
    .await;
    agent.stop().await;
    manager.stop().await;
    let manager = TestManager::start_with(config).await;
    let mut api = Clients::new(manager.channel().await);
    let ids: Vec<String> = api.all_claims().await.into_iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        vec![kept.id],
        "pruned from the store too; live claims are never pruned"
    );
    manager.stop().await;
}
