//! The audit trail through a real manager: what a scenario leaves in it,
//! who may read it, watching it with a resume point, and its depth.

use std::time::Duration;

use theia::api::v1;
use tonic::Code;

use crate::common::*;

type AuditClient = v1::audit_service_client::AuditServiceClient<theia::api::auth::Authed>;

/// Every event kept, oldest first, page after page.
async fn all_events(audit: &mut AuditClient) -> Vec<v1::Event> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = audit
            .list_events(v1::ListEventsRequest {
                page_size: 7,
                page_token,
                ..Default::default()
            })
            .await
            .expect("list events")
            .into_inner();
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

/// `(actor, action, object, tenant, code)` of each event.
fn lines(events: &[v1::Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} {}/{} {} {}",
                e.actor, e.action, e.object_kind, e.object_id, e.tenant, e.code
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_leaves_exactly_its_events_with_their_actors() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(&dir.path().join("m")).await;
    let addr = manager.addr.to_string();
    let admin = manager.channel().await;
    let mut api = Clients::new(admin.clone());
    let mut audit = AuditClient::new(admin.clone());
    api.create_tenant("acme", &[("compute.vcpu", "8")]).await;
    api.create_profile("small", &[("compute.vcpu", "2")]).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-a",
        &[],
        "compute.vcpu=8",
        dir.path().join("a"),
    );
    api.wait_reported("dc-a").await;
    let claim = api.create_claim(spec("acme", "small", 1)).await.unwrap();
    api.wait_state(&claim.id, v1::ClaimState::Active).await;
    api.claims
        .release_claim(v1::ReleaseClaimRequest {
            id: claim.id.clone(),
        })
        .await
        .unwrap();
    // Denied: a tenant's token reading the trail, and a call with no token.
    let tenant = manager.channel_as("t@example.com", &["tenant:acme"]).await;
    let denied = AuditClient::new(tenant)
        .list_events(v1::ListEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let anonymous =
        v1::claim_service_client::ClaimServiceClient::new(manager.plain_channel().await)
            .list_claims(v1::ListClaimsRequest::default())
            .await
            .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    // The agent lost, and back.
    agent.stop().await;
    eventually("dc-a is down in the trail", || {
        let mut audit = audit.clone();
        async move {
            let events = all_events(&mut audit).await;
            events
                .iter()
                .any(|e| e.action == "datacenter.down")
                .then_some(())
        }
    })
    .await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-a",
        &[],
        "compute.vcpu=8",
        dir.path().join("a"),
    );
    eventually("dc-a is alive again in the trail", || {
        let mut audit = audit.clone();
        async move {
            let events = all_events(&mut audit).await;
            (events
                .iter()
                .filter(|e| e.action == "datacenter.alive")
                .count()
                == 1)
                .then_some(())
        }
    })
    .await;

    let events = all_events(&mut audit).await;
    let c = &claim.id;
    let tokens: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "token.create")
        .map(|e| e.object_id.as_str())
        .collect();
    assert_eq!(tokens.len(), 4, "{:#?}", lines(&events));
    let expected = vec![
        // The first admin token, made by the manager at its first start.
        format!("manager token.create token/{}  0", tokens[0]),
        "admin tenant.create tenant/acme acme 0".to_owned(),
        "admin profile.create profile/small  0".to_owned(),
        format!("admin token.create token/{}  0", tokens[1]),
        "admin datacenter.register datacenter/dc-a  0".to_owned(),
        "agent-dc-a datacenter.update datacenter/dc-a  0".to_owned(),
        "agent-dc-a datacenter.update datacenter/dc-a  0".to_owned(),
        format!("admin claim.create claim/{c} acme 0"),
        format!("agent-dc-a claim.apply claim/{c} acme 0"),
        format!("admin claim.release claim/{c} acme 0"),
        format!("admin token.create token/{}  0", tokens[2]),
        "t@example.com call.deny method//theia.v1.AuditService/ListEvents  7".to_owned(),
        "anonymous call.deny method//theia.v1.ClaimService/ListClaims  16".to_owned(),
        "manager datacenter.suspect datacenter/dc-a  0".to_owned(),
        "manager datacenter.down datacenter/dc-a  0".to_owned(),
        format!("admin token.create token/{}  0", tokens[3]),
        "manager datacenter.alive datacenter/dc-a  0".to_owned(),
    ];
    assert_eq!(lines(&events), expected);
    // Each event names this manager, and those of calls their request id.
    for e in &events {
        assert_eq!(e.manager, events[0].manager);
        assert_eq!(e.request_id.is_empty(), e.actor == "manager", "{e:?}");
    }
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "in id order");

    // Filters narrow on the manager's side; newest first starts at the end.
    let page = audit
        .list_events(v1::ListEventsRequest {
            filter: Some(v1::EventFilter {
                outcome: v1::Outcome::Failed as i32,
                ..Default::default()
            }),
            newest_first: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        lines(&page.events),
        vec![expected[12].clone(), expected[11].clone()]
    );
    let page = audit
        .list_events(v1::ListEventsRequest {
            filter: Some(v1::EventFilter {
                tenant: "acme".into(),
                action: "claim.release".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lines(&page.events), vec![expected[9].clone()]);

    // The CLI reads the same trail.
    let (ok, out, err) = run(
        &bin_dir().join("theia"),
        &["audit", "list", "--action", "claim.create"],
        &addr,
    );
    assert!(ok, "{err}");
    assert!(out.contains("claim.create") && out.contains(c), "{out}");
    assert!(!out.contains("claim.release"), "{out}");

    // And it outlives a restart.
    agent.stop().await;
    let before = all_events(&mut audit).await;
    manager.stop().await;
    let manager = TestManager::start(&dir.path().join("m")).await;
    let after = all_events(&mut AuditClient::new(manager.channel().await)).await;
    assert_eq!(lines(&after[..before.len()]), lines(&before));
    manager.stop().await;
}

/// The next event of `stream`, within patience.
async fn next(stream: &mut tonic::Streaming<v1::Event>) -> v1::Event {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an event in time")
        .expect("the stream holds")
        .expect("the stream goes on")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_resumes_after_its_last_event_misses_nothing() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut api = Clients::new(manager.channel().await);
    let mut audit = AuditClient::new(manager.channel().await);
    let creates = || {
        Some(v1::EventFilter {
            action: "tenant.create".into(),
            ..Default::default()
        })
    };
    let mut live = audit
        .watch_events(v1::WatchEventsRequest {
            filter: creates(),
            resume_after: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    api.create_tenant("t1", &[]).await;
    let first = next(&mut live).await;
    assert_eq!(first.object_id, "t1");
    drop(live);
    // Missed while away, then one made after it is back.
    api.create_tenant("t2", &[]).await;
    api.create_tenant("t3", &[]).await;
    let mut resumed = audit
        .watch_events(v1::WatchEventsRequest {
            filter: creates(),
            resume_after: first.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut resumed).await.object_id, "t2");
    assert_eq!(next(&mut resumed).await.object_id, "t3");
    api.create_tenant("t4", &[]).await;
    assert_eq!(next(&mut resumed).await.object_id, "t4");
    // From a time: every kept event since then first, then what comes.
    let mut since = audit
        .watch_events(v1::WatchEventsRequest {
            filter: Some(v1::EventFilter {
                since_unix_ms: first.time_unix_ms,
                ..creates().unwrap()
            }),
            resume_after: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    for name in ["t1", "t2", "t3", "t4"] {
        assert_eq!(next(&mut since).await.object_id, name);
    }
    // Only admins and auditors watch.
    let operator = manager.channel_as("ops@example.com", &["operator"]).await;
    let refused = AuditClient::new(operator)
        .watch_events(v1::WatchEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let auditor = manager.channel_as("audit@example.com", &["auditor"]).await;
    let mut watched = AuditClient::new(auditor)
        .watch_events(v1::WatchEventsRequest {
            filter: creates(),
            resume_after: first.id,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut watched).await.object_id, "t2");
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_keeps_its_depth_and_the_newest_events_across_a_restart() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let config = |dir: &std::path::Path| {
        let mut config = fast_config(dir);
        config.audit.max_events = 5;
        // Housekeeping (which trims) runs every tenth of the retention.
        config.claim_retention = Duration::from_millis(500);
        config
    };
    let manager = TestManager::start_with(config(dir.path())).await;
    let admin = manager.channel().await;
    let mut api = Clients::new(admin.clone());
    for i in 0..12 {
        api.create_profile(&format!("p{i:02}"), &[("compute.vcpu", "1")])
            .await;
    }
    let newest: Vec<String> = (7..12).map(|i| format!("profile.create p{i:02}")).collect();
    let kept = |events: Vec<v1::Event>| -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{} {}", e.action, e.object_id))
            .collect()
    };
    eventually("the trail is trimmed to five", || {
        let mut audit = AuditClient::new(admin.clone());
        let newest = newest.clone();
        async move { (kept(all_events(&mut audit).await) == newest).then_some(()) }
    })
    .await;
    manager.stop().await;
    let manager = TestManager::start_with(config(dir.path())).await;
    let mut audit = AuditClient::new(manager.channel().await);
    assert_eq!(
        kept(all_events(&mut audit).await),
        newest,
        "trimmed for good"
    );
    manager.stop().await;
    // By age: with a limit of three seconds, all of it goes in time.
    let manager =
        TestManager::start_with(shallow(config(dir.path()), 5, Duration::from_secs(3))).await;
    let audit = AuditClient::new(manager.channel().await);
    eventually("everything older than three seconds is gone", || {
        let mut audit = audit.clone();
        async move { all_events(&mut audit).await.is_empty().then_some(()) }
    })
    .await;
    manager.stop().await;
}

/// A manager on `store` whose trail keeps `max_events` events, none older
/// than `max_age`, trimmed often.
fn shallow(
    mut config: theia_manager::ManagerConfig,
    max_events: usize,
    max_age: Duration,
) -> theia_manager::ManagerConfig {
    config.audit.max_events = max_events;
    config.audit.max_age_ms = u64::try_from(max_age.as_millis()).unwrap();
    // Housekeeping (which trims) runs every tenth of the retention.
    config.claim_retention = Duration::from_millis(500);
    config
}

/// The actions of every event kept, oldest first.
async fn kept(manager: &TestManager) -> Vec<String> {
    let mut audit = AuditClient::new(manager.channel().await);
    all_events(&mut audit)
        .await
        .iter()
        .map(|e| format!("{} {}", e.action, e.object_id))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_the_trail_is_trimmed_by_count_and_by_age_for_every_manager() {
    init();
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = "ab".repeat(32);
    // By count: the newest three, on the manager that wrote them and on
    // one started after.
    let config = shallow(
        redis_config(&dir.path().join("m1"), &redis, &secret),
        3,
        Duration::from_secs(3600),
    );
    let manager = TestManager::start_with(config).await;
    let mut api = Clients::new(manager.channel().await);
    for i in 0..8 {
        api.create_profile(&format!("p{i}"), &[("compute.vcpu", "1")])
            .await;
    }
    let newest: Vec<String> = (5..8).map(|i| format!("profile.create p{i}")).collect();
    eventually("trimmed to three", || {
        let manager = &manager;
        let newest = newest.clone();
        async move { (kept(manager).await == newest).then_some(()) }
    })
    .await;
    let second = TestManager::start_with(shallow(
        redis_config(&dir.path().join("m2"), &redis, &secret),
        3,
        Duration::from_secs(3600),
    ))
    .await;
    assert_eq!(kept(&second).await, newest, "trimmed in Redis too");
    second.stop().await;
    manager.stop().await;

    // By age: with a limit of three seconds, what was recorded before goes.
    let config = shallow(
        redis_config(&dir.path().join("m1"), &redis, &secret),
        1000,
        Duration::from_secs(3),
    );
    let manager = TestManager::start_with(config).await;
    eventually("everything older than three seconds is gone", || {
        let manager = &manager;
        async move { kept(manager).await.is_empty().then_some(()) }
    })
    .await;
    let mut api = Clients::new(manager.channel().await);
    api.create_profile("fresh", &[("compute.vcpu", "1")]).await;
    assert_eq!(
        kept(&manager).await,
        vec!["profile.create fresh".to_owned()]
    );
    manager.stop().await;
}
