//! A manager and two agents: placement respects capacity, selectors and
//! quotas; agents apply what is placed; release frees it again.

use theia::api::v1;
use theia_manager::ManagerConfig;
use tonic::Code;

use crate::common::*;

/// A manager with two static datacenters: `eu` (16 vCPU) and `us` (32 vCPU).
pub struct TwoDcs {
    pub dir: tempfile::TempDir,
    pub manager: TestManager,
    pub eu: TestAgent,
    pub us: TestAgent,
    pub api: Clients,
}

impl TwoDcs {
    pub async fn start() -> Self {
        Self::start_with(fast_config).await
    }

    /// The same, with the manager's config made by `config` for its directory.
    pub async fn start_with(config: impl FnOnce(&std::path::Path) -> ManagerConfig) -> Self {
        init();
        let dir = tempfile::tempdir().unwrap();
        let manager = TestManager::start_with(config(&dir.path().join("manager"))).await;
        let eu = TestAgent::start(
            vec![manager.url()],
            "dc-eu",
            &[("region", "eu")],
            "compute.vcpu=16,compute.memory=64Gi",
            dir.path().join("eu"),
        );
        let us = TestAgent::start(
            vec![manager.url()],
            "dc-us",
            &[("region", "us")],
            "compute.vcpu=32,compute.memory=128Gi",
            dir.path().join("us"),
        );
        let mut api = Clients::new(manager.channel().await);
        for id in ["dc-eu", "dc-us"] {
            eventually(&format!("{id} reports its inventory"), || {
                let mut api = api.clone();
                async move { api.dc(id).await.filter(|d| !d.capacity.is_empty()) }
            })
            .await;
        }
        api.create_tenant("acme", &[("compute.vcpu", "40")]).await;
        api.create_profile("small", &[("compute.vcpu", "4"), ("compute.memory", "8Gi")])
            .await;
        Self {
            dir,
            manager,
            eu,
            us,
            api,
        }
    }

    /// Stops both agents, then the manager, each cleanly.
    pub async fn stop(self) {
        self.eu.stop().await;
        self.us.stop().await;
        self.manager.stop().await;
    }
}

fn in_eu(count: u32) -> v1::ClaimSpec {
    v1::ClaimSpec {
        selector: "region=eu".into(),
        ..spec("acme", "small", count)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_respects_capacity_selectors_and_quota_and_agents_apply_it() {
    let mut w = TwoDcs::start().await;

    // 3 × 4 vCPU in eu: binpack keeps them together in dc-eu.
    let claim = w.api.create_claim(in_eu(3)).await.unwrap();
    assert_eq!(claim.placements.len(), 1);
    assert_eq!(
        (
            claim.placements[0].datacenter.as_str(),
            claim.placements[0].units
        ),
        ("dc-eu", 3)
    );
    assert_eq!(claim.state, v1::ClaimState::Placed as i32);
    let eu = w.api.dc("dc-eu").await.unwrap();
    assert_eq!(class(&eu, "compute.vcpu").allocated, "12");
    assert_eq!(class(&eu, "compute.vcpu").available, "4");

    // The agent applies it, the claim turns active, the driver holds it.
    eventually("the claim is active", || {
        let (mut api, id) = (w.api.clone(), claim.id.clone());
        async move { Some(api.claim(&id).await).filter(|c| c.state == v1::ClaimState::Active as i32) }
    })
    .await;
    assert_eq!(w.eu.held(), vec![claim.id.clone()]);
    assert!(w.us.held().is_empty());

    // Two more in eu do not fit (8 > 4 left); whole or nothing: none is placed.
    let err = w.api.create_claim(in_eu(2)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    assert!(
        err.message().contains("1 of 2 units found a place")
            && err
                .message()
                .contains("dc-eu: after 1 unit: compute.vcpu: a unit needs 4, 0 available"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("dc-us: labels do not match"),
        "{}",
        err.message()
    );
    assert_eq!(
        w.api.all_claims().await.len(),
        1,
        "a refused claim stores nothing"
    );

    // Explain says the same, per datacenter, and places nothing.
    let ex = w
        .api
        .claims
        .explain_claim(v1::ExplainClaimRequest {
            spec: Some(in_eu(2)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!ex.fits);
    let us = ex
        .verdicts
        .iter()
        .find(|v| v.datacenter == "dc-us")
        .unwrap();
    assert!(
        us.reasons.iter().any(|r| r.contains("selector")),
        "{:?}",
        us.reasons
    );
    let eu = ex
        .verdicts
        .iter()
        .find(|v| v.datacenter == "dc-eu")
        .unwrap();
    assert_eq!(eu.units_that_fit, 1);

    // Without the selector the rest goes to dc-us; then the quota (40) stops a third.
    let big = w.api.create_claim(spec("acme", "small", 6)).await.unwrap();
    let units = |p: &[v1::Placement], dc: &str| -> u32 {
        p.iter()
            .filter(|p| p.datacenter == dc)
            .map(|p| p.units)
            .sum()
    };
    // binpack tops up the fuller dc-eu first (one unit left there), the rest go to dc-us.
    assert_eq!(
        (
            units(&big.placements, "dc-eu"),
            units(&big.placements, "dc-us")
        ),
        (1, 5)
    );
    let err = w
        .api
        .create_claim(spec("acme", "small", 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("quota"), "{}", err.message());

    // Release frees the capacity and the agent gives it back.
    let released = w
        .api
        .claims
        .release_claim(v1::ReleaseClaimRequest {
            id: claim.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.state, v1::ClaimState::Released as i32);
    let eu = w.api.dc("dc-eu").await.unwrap();
    assert_eq!(
        class(&eu, "compute.vcpu").allocated,
        "4",
        "only the big claim's unit is left in dc-eu"
    );
    let eu_agent = &w.eu;
    eventually("the eu agent released the claim", || async {
        Some(()).filter(|_| !eu_agent.held().contains(&claim.id))
    })
    .await;
    // Until the plane reports the vCPUs free, they count as used outside
    // theia (never over-commit); its next report frees them.
    eventually("dc-eu reports the freed capacity", || {
        let mut api = w.api.clone();
        async move {
            let eu = api.dc("dc-eu").await?;
            (class(&eu, "compute.vcpu").available == "12").then_some(())
        }
    })
    .await;
    let again = w.api.create_claim(in_eu(2)).await;
    assert!(
        again.is_ok(),
        "freed capacity is placeable again: {again:?}"
    );

    // The logical infrastructure adds both datacenters up.
    let infra = w
        .api
        .infra
        .get_logical_infrastructure(v1::GetLogicalInfrastructureRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((infra.datacenters, infra.alive), (2, 2));
    let vcpu = infra
        .capacity
        .iter()
        .find(|c| c.class == "compute.vcpu")
        .unwrap();
    assert_eq!(vcpu.total, "48");
    let eu_only = w
        .api
        .infra
        .get_logical_infrastructure(v1::GetLogicalInfrastructureRequest {
            selector: "region=eu".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(eu_only.datacenters, 1);

    // A tenant with live claims cannot be deleted.
    let err = w
        .api
        .tenants
        .delete_tenant(v1::DeleteTenantRequest {
            name: "acme".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());

    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_claim_is_idempotent_on_request_id() {
    let mut w = TwoDcs::start().await;
    let s = v1::ClaimSpec {
        request_id: "order-17".into(),
        ..spec("acme", "small", 2)
    };
    let a = w.api.create_claim(s.clone()).await.unwrap();
    let b = w.api.create_claim(s.clone()).await.unwrap();
    assert_eq!(a.id, b.id, "a retry returns the first claim");
    assert_eq!(w.api.all_claims().await.len(), 1);
    let other = v1::ClaimSpec { count: 3, ..s };
    let err = w.api.create_claim(other).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{}", err.message());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_release_returns_the_released_claim() {
    let mut w = TwoDcs::start().await;
    let s = v1::ClaimSpec {
        request_id: "order-18".into(),
        ..spec("acme", "small", 1)
    };
    let first = w.api.create_claim(s.clone()).await.unwrap();
    w.api
        .claims
        .release_claim(v1::ReleaseClaimRequest {
            id: first.id.clone(),
        })
        .await
        .unwrap();
    let retry = w.api.create_claim(s).await.unwrap();
    assert_eq!(retry.id, first.id, "the retry does not book again");
    assert_eq!(retry.state, v1::ClaimState::Released as i32);
    assert_eq!(w.api.all_claims().await.len(), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_claims_take_the_datacenters_in_turn_and_explain_agrees() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut api = Clients::new(manager.channel().await);
    let mut agents = Vec::new();
    for dc in ["rr-a", "rr-b", "rr-c"] {
        let agent = HandAgent::connect(manager.agent_channel(dc).await, dc).await;
        agent.report(1, &[("compute.vcpu", 64, 64, Some(0))]).await;
        api.wait_total(dc, "compute.vcpu", "64").await;
        agents.push(agent);
    }
    api.create_tenant("acme", &[]).await;
    api.create_profile("one", &[("compute.vcpu", "1")]).await;
    let mut rr = spec("acme", "one", 1);
    rr.strategy = v1::Strategy::RoundRobin as i32;
    let mut went = Vec::new();
    for _ in 0..4 {
        let explained = api
            .claims
            .explain_claim(v1::ExplainClaimRequest {
                spec: Some(rr.clone()),
            })
            .await
            .unwrap()
            .into_inner();
        let claim = api.create_claim(rr.clone()).await.unwrap();
        let placed = claim.placements[0].datacenter.clone();
        assert_eq!(
            explained.placements[0].datacenter, placed,
            "explain says what create does"
        );
        went.push(placed);
    }
    assert_eq!(went, ["rr-a", "rr-b", "rr-c", "rr-a"]);
    // A binpack claim in between does not move the turn.
    api.create_claim(spec("acme", "one", 1)).await.unwrap();
    let next = api.create_claim(rr).await.unwrap();
    assert_eq!(next.placements[0].datacenter, "rr-b");
    manager.stop().await;
}
