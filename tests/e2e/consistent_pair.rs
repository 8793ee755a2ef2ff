//! External usage comes from one consistent report: an agent that applied
//! an assignment after it last measured `free` does not make that
//! assignment look like capacity someone else gave back.

use theia::api::v1;
use theia::api::v1::agent_message::Body as Out;

use crate::common::*;

async fn available_vcpu(api: &mut Clients) -> String {
    let dc = api.dc("dc-a").await.expect("dc-a known");
    class(&dc, "compute.vcpu").available.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_applied_after_the_last_report_still_counts() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut api = Clients::new(manager.channel().await);
    api.create_tenant("acme", &[]).await;
    api.create_profile("four", &[("compute.vcpu", "4")]).await;

    // A hand-driven agent for dc-a: 16 vCPU of which 6 are used by someone
    // else, nothing of theia's held.
    let mut agent = HandAgent::connect(manager.agent_channel("dc-a").await, "dc-a").await;
    agent.report(1, &[("compute.vcpu", 16, 10, Some(0))]).await;
    api.wait_liveness("dc-a", v1::Liveness::Alive).await;
    eventually("the first report is in", || {
        let mut api = api.clone();
        async move { (available_vcpu(&mut api).await == "10").then_some(()) }
    })
    .await;

    let claim = api.create_claim(spec("acme", "four", 1)).await.unwrap();
    assert_eq!(agent.next_assign().await.claim_id, claim.id);
    // Applied, and said so; no report since.
    agent
        .send(Out::Result(v1::AssignmentResult {
            claim_id: claim.id.clone(),
            action: v1::AssignmentAction::Apply as i32,
            ok: true,
            error: String::new(),
        }))
        .await;
    eventually("the claim is active", || {
        let mut api = api.clone();
        let id = claim.id.clone();
        async move { (api.claim(&id).await.state == v1::ClaimState::Active as i32).then_some(()) }
    })
    .await;
    // Applied flags alone would read the 4 as external usage given back
    // (6 − 4) and offer 10. The report said it held nothing: 16 − 4 − 6.
    assert_eq!(available_vcpu(&mut api).await, "6");

    // The next report measures the 4 too, and says so: still 6.
    agent.report(2, &[("compute.vcpu", 16, 6, Some(4))]).await;
    eventually("the second report is in", || {
        let mut api = api.clone();
        async move {
            let dc = api.dc("dc-a").await?;
            (class(&dc, "compute.vcpu").reported_free == "6").then_some(())
        }
    })
    .await;
    assert_eq!(available_vcpu(&mut api).await, "6");
    // Room for one more claim of 4, not two.
    api.create_claim(spec("acme", "four", 1)).await.unwrap();
    let err = api
        .create_claim(spec("acme", "four", 1))
        .await
        .expect_err("only 2 vCPU left");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");

    drop(agent);
    manager.stop().await;
}
