//! An agent that stops makes its datacenter down and its claims at risk;
//! its return clears both.

use theia::api::v1;
use tonic::Code;

use crate::common::*;
use crate::placement::TwoDcs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_makes_its_dc_down_and_its_claims_at_risk_until_it_returns() {
    let mut w = TwoDcs::start().await;
    let in_eu = v1::ClaimSpec {
        selector: "region=eu".into(),
        ..spec("acme", "small", 1)
    };
    let claim = w
        .api
        .claims
        .create_claim(v1::CreateClaimRequest {
            spec: Some(in_eu.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!claim.at_risk);

    let state_dir = w.eu.state_dir.clone();
    w.eu.stop().await;
    let api = w.api.clone();
    eventually("dc-eu is down", || {
        let mut api = api.clone();
        async move {
            api.dc("dc-eu")
                .await
                .filter(|d| d.liveness == v1::Liveness::Down as i32)
        }
    })
    .await;
    let c = w.api.claim(&claim.id).await;
    assert!(c.at_risk, "a claim on a down datacenter is flagged at risk");
    assert_eq!(c.at_risk_datacenters, vec!["dc-eu".to_owned()]);
    let live = [v1::ClaimState::Placed as i32, v1::ClaimState::Active as i32];
    assert!(live.contains(&c.state), "the claim is not dropped: {c:?}");

    // Down datacenters get no new placements.
    let err = w
        .api
        .claims
        .create_claim(v1::CreateClaimRequest {
            spec: Some(in_eu.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("down"), "{}", err.message());

    // The agent comes back (same state dir): alive again, no longer at risk.
    let eu = TestAgent::start(
        vec![w.manager.url()],
        "dc-eu",
        &[("region", "eu")],
        "compute.vcpu=16,compute.memory=64Gi",
        state_dir,
    );
    eventually("dc-eu is alive", || {
        let mut api = api.clone();
        async move {
            api.dc("dc-eu")
                .await
                .filter(|d| d.liveness == v1::Liveness::Alive as i32)
        }
    })
    .await;
    assert!(!w.api.claim(&claim.id).await.at_risk);
    assert_eq!(
        eu.held(),
        vec![claim.id.clone()],
        "the returning agent still holds the claim"
    );
    w.api
        .claims
        .create_claim(v1::CreateClaimRequest { spec: Some(in_eu) })
        .await
        .expect("placeable again");

    eu.stop().await;
    w.us.stop().await;
    w.manager.stop().await;
}
