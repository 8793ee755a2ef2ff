//! WatchClaims and WatchDatacenters through a real manager and agent: what
//! each watcher hears, what a tenant may hear, and resuming after a token.

use theia::api::v1;

use crate::common::*;

type ClaimsClient = v1::claim_service_client::ClaimServiceClient<theia::api::auth::Authed>;
type InfraClient =
    v1::infrastructure_service_client::InfrastructureServiceClient<theia::api::auth::Authed>;

/// The next item of `stream`, within patience.
async fn next<T>(stream: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a change in time")
        .expect("the stream holds")
        .expect("the stream goes on")
}

async fn watch_claims(
    channel: theia::api::auth::Authed,
    req: v1::WatchClaimsRequest,
) -> tonic::Streaming<v1::ClaimChange> {
    ClaimsClient::new(channel)
        .watch_claims(req)
        .await
        .expect("watching claims")
        .into_inner()
}

fn said(change: &v1::ClaimChange) -> (String, String, &'static str) {
    let c = change.claim.as_ref().expect("the claim");
    (
        change.action.clone(),
        c.spec.as_ref().unwrap().tenant.clone(),
        theia_state(c.state),
    )
}

fn theia_state(state: i32) -> &'static str {
    match v1::ClaimState::try_from(state) {
        Ok(v1::ClaimState::Placed) => "placed",
        Ok(v1::ClaimState::Active) => "active",
        Ok(v1::ClaimState::Released) => "released",
        _ => "other",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_watchers_hear_their_claims_change_and_resume_where_they_left() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(&dir.path().join("m")).await;
    let admin = manager.channel().await;
    let mut api = Clients::new(admin.clone());
    api.create_tenant("acme", &[("compute.vcpu", "8")]).await;
    api.create_tenant("other", &[("compute.vcpu", "8")]).await;
    api.tenants
        .update_tenant(v1::UpdateTenantRequest {
            tenant: Some(v1::Tenant {
                name: "acme".into(),
                labels: [("tier".to_owned(), "gold".to_owned())].into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["labels".into()],
            }),
        })
        .await
        .unwrap();
    api.create_profile("small", &[("compute.vcpu", "2")]).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-a",
        &[],
        "compute.vcpu=8",
        dir.path().join("a"),
    );
    api.wait_reported("dc-a").await;
    let tenant = manager.channel_as("t@example.com", &["tenant:acme"]).await;
    let mut as_tenant = watch_claims(tenant, v1::WatchClaimsRequest::default()).await;
    let mut gold = watch_claims(
        admin.clone(),
        v1::WatchClaimsRequest {
            tenant_selector: "tier=gold".into(),
            ..Default::default()
        },
    )
    .await;
    let mut everything = watch_claims(admin.clone(), v1::WatchClaimsRequest::default()).await;

    let theirs = api.create_claim(spec("other", "small", 1)).await.unwrap();
    let ours = api.create_claim(spec("acme", "small", 1)).await.unwrap();
    // The tenant and the selector hear acme's claim only: made, then applied.
    for stream in [&mut as_tenant, &mut gold] {
        let made = next(stream).await;
        assert_eq!(made.claim.as_ref().unwrap().id, ours.id);
        assert_eq!(said(&made).0, "claim.create");
        let applied = next(stream).await;
        assert_eq!(
            said(&applied),
            ("claim.apply".into(), "acme".into(), "active")
        );
    }
    // An admin hears both, each made before it is applied.
    let mut heard = Vec::new();
    while heard.len() < 4 {
        let change = next(&mut everything).await;
        heard.push((change.claim.unwrap().id, change.action));
    }
    for id in [&theirs.id, &ours.id] {
        let made = heard
            .iter()
            .position(|h| h == &(id.clone(), "claim.create".to_owned()));
        let applied = heard
            .iter()
            .position(|h| h == &(id.clone(), "claim.apply".to_owned()));
        assert!(made.is_some() && made < applied, "{heard:?}");
    }

    drop((as_tenant, gold, everything));
    // A watcher of acme's claims hears the next one made; other's release
    // is not acme's.
    let mut acme = watch_claims(
        admin.clone(),
        v1::WatchClaimsRequest {
            tenant: "acme".into(),
            ..Default::default()
        },
    )
    .await;
    api.claims
        .release_claim(v1::ReleaseClaimRequest {
            id: theirs.id.clone(),
        })
        .await
        .unwrap();
    let second = api.create_claim(spec("acme", "small", 1)).await.unwrap();
    let made = next(&mut acme).await;
    assert_eq!(made.claim.as_ref().unwrap().id, second.id);
    assert_eq!(said(&made).0, "claim.create");
    let resume = made.resume_token;
    // Gone while ours is released; back with the last token.
    drop(acme);
    api.claims
        .release_claim(v1::ReleaseClaimRequest {
            id: ours.id.clone(),
        })
        .await
        .unwrap();
    let mut resumed = watch_claims(
        admin.clone(),
        v1::WatchClaimsRequest {
            tenant: "acme".into(),
            resume_token: resume,
            ..Default::default()
        },
    )
    .await;
    // What came after the resume point, in order: the new claim applied,
    // then ours released.
    let mut after = Vec::new();
    while after.len() < 2 {
        after.push(said(&next(&mut resumed).await));
    }
    assert!(
        after.contains(&("claim.release".into(), "acme".into(), "released")),
        "{after:?}"
    );
    assert!(
        after.contains(&("claim.apply".into(), "acme".into(), "active")),
        "{after:?}"
    );
    agent.stop().await;
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datacenter_watchers_hear_an_agent_lost_and_back() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(&dir.path().join("m")).await;
    let admin = manager.channel().await;
    let mut watched = InfraClient::new(admin.clone())
        .watch_datacenters(v1::WatchDatacentersRequest {
            selector: "env=dev".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut all = InfraClient::new(admin.clone())
        .watch_datacenters(v1::WatchDatacentersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let other = TestAgent::start(
        vec![manager.url()],
        "dc-x",
        &[("env", "prod")],
        "compute.vcpu=4",
        dir.path().join("x"),
    );
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-a",
        &[("env", "dev")],
        "compute.vcpu=8",
        dir.path().join("a"),
    );
    // Registered without labels (by its token), then labelled by its agent.
    let first = next(&mut all).await;
    assert_eq!(first.action, "datacenter.register");
    let mut dev = next(&mut watched).await;
    while dev.action != "datacenter.update" {
        dev = next(&mut watched).await;
    }
    assert_eq!(dev.datacenter.as_ref().unwrap().id, "dc-a");
    agent.stop().await;
    let mut seen = Vec::new();
    loop {
        let change = next(&mut watched).await;
        let dc = change.datacenter.unwrap();
        assert_eq!(dc.id, "dc-a", "the selector leaves dc-x out");
        seen.push(change.action.clone());
        if change.action == "datacenter.down" {
            assert_eq!(dc.liveness, v1::Liveness::Down as i32);
            break;
        }
    }
    assert!(seen.contains(&"datacenter.suspect".to_owned()), "{seen:?}");
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-a",
        &[("env", "dev")],
        "compute.vcpu=8",
        dir.path().join("a"),
    );
    let mut back = next(&mut watched).await;
    while back.action != "datacenter.alive" {
        back = next(&mut watched).await;
    }
    assert_eq!(
        back.datacenter.unwrap().liveness,
        v1::Liveness::Alive as i32
    );
    agent.stop().await;
    other.stop().await;
    manager.stop().await;
}
