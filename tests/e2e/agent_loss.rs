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
    let claim = w.api.create_claim(in_eu.clone()).await.unwrap();
    assert!(!claim.at_risk);

    let state_dir = w.eu.state_dir.clone();
    w.eu.stop().await;
    w.api.wait_liveness("dc-eu", v1::Liveness::Down).await;
    let c = w.api.claim(&claim.id).await;
    assert!(c.at_risk, "a claim on a down datacenter is flagged at risk");
    assert_eq!(c.at_risk_datacenters, vec!["dc-eu".to_owned()]);
    let live = [v1::ClaimState::Placed as i32, v1::ClaimState::Active as i32];
    assert!(live.contains(&c.state), "the claim is not dropped: {c:?}");

    // Down datacenters get no new placements.
    let err = w.api.create_claim(in_eu.clone()).await.unwrap_err();
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
    w.api.wait_liveness("dc-eu", v1::Liveness::Alive).await;
    assert!(!w.api.claim(&claim.id).await.at_risk);
    // It may have stopped before it applied the claim: either way it holds
    // it once it has converged to the desired set.
    let held = vec![claim.id.clone()];
    eventually("the returning agent holds the claim", || async {
        (eu.held() == held).then_some(())
    })
    .await;
    w.api.create_claim(in_eu).await.expect("placeable again");

    eu.stop().await;
    w.us.stop().await;
    w.manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_the_agent_cannot_apply_puts_the_claim_at_risk() {
    let mut w = TwoDcs::start().await;
    let in_eu = v1::ClaimSpec {
        selector: "region=eu".into(),
        ..spec("acme", "small", 3)
    };
    let claim = w.api.create_claim(in_eu).await.unwrap();
    let api = w.api.clone();
    let active = |api: &Clients, id: String| {
        let mut api = api.clone();
        async move { Some(api.claim(&id).await).filter(|c| c.state == v1::ClaimState::Active as i32) }
    };
    eventually("the claim is active", || active(&api, claim.id.clone())).await;

    // A replacement agent with a smaller plane (8 vCPU, fresh state) cannot
    // give the 12 vCPU the claim holds there.
    w.eu.stop().await;
    let small = TestAgent::start(
        vec![w.manager.url()],
        "dc-eu",
        &[("region", "eu")],
        "compute.vcpu=8,compute.memory=64Gi",
        w.dir.path().join("eu-small"),
    );
    let refused = eventually("the refusal is recorded", || {
        let (mut api, id) = (api.clone(), claim.id.clone());
        async move { Some(api.claim(&id).await).filter(|c| !c.placements[0].apply_error.is_empty()) }
    })
    .await;
    assert!(
        refused.at_risk && refused.at_risk_datacenters == vec!["dc-eu".to_owned()],
        "{refused:?}"
    );
    assert_eq!(
        refused.state,
        v1::ClaimState::Failed as i32,
        "failed, no longer active: {refused:?}"
    );
    assert!(!refused.placements[0].applied);
    assert!(
        refused.placements[0].apply_error.contains("compute.vcpu"),
        "{}",
        refused.placements[0].apply_error
    );
    assert_eq!(
        refused.failure_reasons,
        vec![format!("dc-eu: {}", refused.placements[0].apply_error)]
    );
    assert!(small.held().is_empty());
    let (addr, id) = (w.manager.addr.to_string(), claim.id.clone());
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run(&bin_dir().join("theia"), &["claim", "show", &id], &addr)
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(line("state").ends_with("failed"), "{out}");
    assert!(line("failure").contains("dc-eu: "), "{out}");

    // The full-size agent returns: it applies the claim and the risk clears.
    small.stop().await;
    let eu = TestAgent::start(
        vec![w.manager.url()],
        "dc-eu",
        &[("region", "eu")],
        "compute.vcpu=16,compute.memory=64Gi",
        w.dir.path().join("eu-big"),
    );
    let healed = eventually("the claim is active again", || {
        active(&api, claim.id.clone())
    })
    .await;
    assert!(
        !healed.at_risk
            && healed.placements[0].apply_error.is_empty()
            && healed.failure_reasons.is_empty(),
        "{healed:?}"
    );
    assert_eq!(eu.held(), vec![claim.id.clone()]);

    eu.stop().await;
    w.us.stop().await;
    w.manager.stop().await;
}

/// Two agents cannot share a state directory: the second stops at once,
/// naming the directory and the process that holds it, and the first goes
/// on applying what is placed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_a_state_directory_in_use_stops_and_says_so() {
    let mut w = TwoDcs::start().await;
    let second = TestAgent::start(
        vec![w.manager.url()],
        "dc-other",
        &[("region", "eu")],
        "compute.vcpu=8",
        w.eu.state_dir.clone(),
    );
    let why = second.failure().await;
    assert!(
        why.contains("in use by another agent")
            && why.contains(&w.eu.state_dir.display().to_string())
            && why.contains(&format!("pid {}", std::process::id())),
        "{why}"
    );
    let in_eu = v1::ClaimSpec {
        selector: "region=eu".into(),
        ..spec("acme", "small", 1)
    };
    let claim = w.api.create_claim(in_eu).await.unwrap();
    let held = vec![claim.id.clone()];
    eventually("the first agent applies what is placed", || async {
        (w.eu.held() == held).then_some(())
    })
    .await;
    w.stop().await;
}
