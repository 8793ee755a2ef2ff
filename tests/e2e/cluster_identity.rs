//! Cluster identity: an agent that applied assignments for one cluster never
//! releases them because a manager of another cluster (or one whose store is
//! new and empty) sends it an empty desired set; it moves on to the next
//! manager of its list instead.

use theia::api::v1;

use crate::common::*;
use crate::placement::TwoDcs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_keeps_its_assignments_when_pointed_at_a_manager_of_another_cluster() {
    let mut w = TwoDcs::start().await;
    let in_eu = v1::ClaimSpec {
        selector: "region=eu".into(),
        ..spec("acme", "small", 1)
    };
    let claim = w.api.create_claim(in_eu).await.unwrap();
    let eu_dir = w.eu.state_dir.clone();
    let held = eventually("dc-eu applied the claim", || {
        let held = w.eu.held();
        let applied = held.contains(&claim.id);
        async move { applied.then_some(held) }
    })
    .await;
    w.eu.stop().await;

    // A stranger: a manager with a new, empty store, hence another cluster.
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = TestManager::start(stranger_dir.path()).await;
    let mut strange = Clients::new(stranger.channel().await);
    let ours = w.api.cluster_id().await;
    let theirs = strange.cluster_id().await;
    assert!(!ours.is_empty() && ours != theirs, "{ours} vs {theirs}");

    let agent = TestAgent::start(
        vec![stranger.url()],
        "dc-eu",
        &[("region", "eu")],
        "compute.vcpu=16,compute.memory=64Gi",
        eu_dir.clone(),
    );
    // The stranger hears the Hello and welcomes the agent with its cluster
    // id and an empty desired set; the agent refuses and tries again after
    // its backoff. A session refused at Welcome sends nothing more, so a
    // sighting a second after the first comes from a later session: the
    // first Welcome was dealt with.
    let first = eventually("the stranger hears the agent", || {
        let mut strange = strange.clone();
        async move { strange.dc("dc-eu").await.map(|d| d.last_seen_unix_ms) }
    })
    .await;
    eventually("the agent comes back to the stranger", || {
        let mut strange = strange.clone();
        async move {
            strange
                .dc("dc-eu")
                .await
                .filter(|d| d.last_seen_unix_ms > first + 1000)
        }
    })
    .await;
    assert_eq!(
        agent.held(),
        held,
        "nothing was released on the stranger's word"
    );
    agent.stop().await;

    // Back with its own cluster, which still wants it all.
    let agent = TestAgent::start(
        vec![w.manager.url()],
        "dc-eu",
        &[("region", "eu")],
        "compute.vcpu=16,compute.memory=64Gi",
        eu_dir,
    );
    w.api.wait_liveness("dc-eu", v1::Liveness::Alive).await;
    assert_eq!(agent.held(), held);
    let c = w.api.claim(&claim.id).await;
    assert!(!c.at_risk, "{c:?}");

    agent.stop().await;
    stranger.stop().await;
    w.us.stop().await;
    w.manager.stop().await;
}
