//! Reports are checked before they are believed: free above total or a
//! class twice is refused, an older report than one already taken is
//! ignored, both are counted; a total that drops below what theia placed is
//! the truth, shown as over-commitment with the claims there at risk.

use theia::api::v1;

use crate::common::*;

/// dc-r as the manager shows it once `ignored` reports were ignored.
async fn after(api: &Clients, ignored: u64) -> v1::Datacenter {
    eventually(&format!("{ignored} reports ignored"), || {
        let mut api = api.clone();
        async move {
            api.dc("dc-r")
                .await
                .filter(|d| d.ignored_reports == ignored)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_or_stale_reports_are_not_believed_and_a_shrunk_total_is_shown() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let api = Clients::new(manager.channel().await);
    let mut admin = api.clone();
    admin.create_tenant("acme", &[]).await;
    admin.create_profile("four", &[("compute.vcpu", "4")]).await;

    let mut agent = HandAgent::connect(manager.agent_channel("dc-r").await, "dc-r").await;
    agent.report(1, &[("compute.vcpu", 16, 16, Some(0))]).await;
    eventually("the first report is in", || {
        let mut api = api.clone();
        async move {
            let dc = api.dc("dc-r").await?;
            (dc.capacity.len() == 1).then_some(())
        }
    })
    .await;

    // More free than there is.
    agent.report(2, &[("compute.vcpu", 16, 20, Some(0))]).await;
    let dc = after(&api, 1).await;
    assert_eq!(class(&dc, "compute.vcpu").reported_free, "16");
    // The refusal is in the audit trail, by the agent, with why.
    let refusal = eventually("the refused report is an event", || {
        let channel = manager.channel();
        async move {
            let page = v1::audit_service_client::AuditServiceClient::new(channel.await)
                .list_events(v1::ListEventsRequest {
                    filter: Some(v1::EventFilter {
                        action: "report.refuse".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            page.events.into_iter().next()
        }
    })
    .await;
    assert_eq!(
        (
            refusal.actor.as_str(),
            refusal.object_id.as_str(),
            refusal.code
        ),
        ("agent-dc-r", "dc-r", tonic::Code::InvalidArgument as u32)
    );
    assert!(refusal.message.contains("free"), "{}", refusal.message);
    // A class twice.
    agent
        .report(
            3,
            &[
                ("compute.vcpu", 16, 8, None),
                ("compute.vcpu", 64, 64, None),
            ],
        )
        .await;
    let dc = after(&api, 2).await;
    assert_eq!(class(&dc, "compute.vcpu").total, "16");
    // An old report after a newer one: a replay would put stale figures back.
    agent.report(2, &[("compute.vcpu", 16, 1, Some(0))]).await;
    let dc = after(&api, 3).await;
    assert_eq!(class(&dc, "compute.vcpu").reported_free, "16");
    assert!(dc.over_committed.is_empty());

    // 12 of 16 placed, then the plane says it has 8: believed, and shown.
    let claim = admin.create_claim(spec("acme", "four", 3)).await.unwrap();
    assert_eq!(agent.next_assign().await.claim_id, claim.id);
    agent.report(4, &[("compute.vcpu", 8, 0, Some(8))]).await;
    let dc = eventually("the shrunk total is shown as over-commitment", || {
        let mut api = api.clone();
        async move {
            api.dc("dc-r")
                .await
                .filter(|d| !d.over_committed.is_empty())
        }
    })
    .await;
    assert_eq!(dc.over_committed, vec!["compute.vcpu".to_owned()]);
    assert_eq!(class(&dc, "compute.vcpu").total, "8");
    assert_eq!(class(&dc, "compute.vcpu").available, "0");
    let c = admin.claim(&claim.id).await;
    assert!(c.at_risk, "{c:?}");
    assert_eq!(c.at_risk_datacenters, vec!["dc-r".to_owned()]);
    assert_eq!(dc.ignored_reports, 3, "a true report is not counted");

    // Capacity returns: no longer over-committed, no longer at risk.
    agent.report(5, &[("compute.vcpu", 16, 4, Some(12))]).await;
    eventually("capacity is back", || {
        let mut api = api.clone();
        async move { api.dc("dc-r").await.filter(|d| d.over_committed.is_empty()) }
    })
    .await;
    assert!(!admin.claim(&claim.id).await.at_risk);

    drop(agent);
    manager.stop().await;
}
