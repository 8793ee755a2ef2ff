//! Maintenance end to end: the impact is reported before anything is
//! taken; a forced maintenance re-places the claims it displaces, with the
//! agents on both sides following; a drained datacenter gets nothing new.

use theia::api::v1;
use tonic::Code;

use crate::common::*;
use crate::placement::TwoDcs;

/// Anywhere: binpack breaks the tie between two empty datacenters
/// towards dc-eu.
fn anywhere(count: u32) -> v1::ClaimSpec {
    v1::ClaimSpec {
        selector: "region in (eu,us)".into(),
        ..spec("acme", "small", count)
    }
}

fn in_eu(count: u32) -> v1::ClaimSpec {
    v1::ClaimSpec {
        datacenters: vec!["dc-eu".into()],
        ..spec("acme", "small", count)
    }
}

fn vcpu_out_of_eu(force: bool, dry_run: bool) -> v1::CreateMaintenanceRequest {
    v1::CreateMaintenanceRequest {
        datacenter: "dc-eu".into(),
        resources: map(&[("compute.vcpu", "8")]),
        duration_ms: 3_600_000,
        reason: "new racks".into(),
        force,
        dry_run,
        ..Default::default()
    }
}

async fn wait_held(agent: &TestAgent, want: Vec<String>, what: &str) {
    eventually(what, || {
        let ok = agent.held() == want;
        async move { ok.then_some(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_maintenance_re_places_what_it_displaces_and_a_drain_takes_nothing_new() {
    let mut w = TwoDcs::start().await;
    // 3 × 4 vCPU in dc-eu (16): taking 8 out would need 20.
    let claim = w.api.create_claim(anywhere(3)).await.unwrap();
    wait_held(&w.eu, vec![claim.id.clone()], "dc-eu applies the claim").await;

    // A dry run reports the impact and stores nothing.
    let dry = w
        .api
        .infra
        .create_maintenance(vcpu_out_of_eu(false, true))
        .await
        .unwrap()
        .into_inner();
    assert!(!dry.accepted);
    assert_eq!(dry.over_capacity.len(), 1);
    let over = &dry.over_capacity[0];
    assert_eq!(
        (
            over.class.as_str(),
            over.needed.as_str(),
            over.capacity.as_str()
        ),
        ("compute.vcpu", "20", "16")
    );
    assert_eq!(dry.affected.len(), 1);
    assert_eq!(
        (
            dry.affected[0].tenant.as_str(),
            dry.affected[0].claims.clone()
        ),
        ("acme", vec![claim.id.clone()])
    );
    let list = |api: &Clients| {
        let mut infra = api.infra.clone();
        async move {
            infra
                .list_maintenances(v1::ListMaintenancesRequest::default())
                .await
                .unwrap()
                .into_inner()
                .maintenances
        }
    };
    assert!(list(&w.api).await.is_empty(), "a dry run stores nothing");

    // Without force it is refused with the same report.
    let err = w
        .api
        .infra
        .create_maintenance(vcpu_out_of_eu(false, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("maintenance would take dc-eu over capacity: compute.vcpu needs 20 of 16")
            && err.message().contains(&format!("acme ({})", claim.id))
            && err.message().contains("--force"),
        "{}",
        err.message()
    );
    assert!(list(&w.api).await.is_empty());

    // Forced: the claim moves to dc-us; dc-eu's agent releases it and
    // dc-us's assigns it, and it is active again there.
    let forced = w
        .api
        .infra
        .create_maintenance(vcpu_out_of_eu(true, false))
        .await
        .unwrap()
        .into_inner();
    assert!(forced.accepted);
    assert_eq!(forced.replaced, vec![claim.id.clone()]);
    assert!(forced.at_risk.is_empty());
    let m = forced.maintenance.unwrap();
    assert_eq!(list(&w.api).await, vec![m.clone()]);
    assert_eq!(m.created_by, "admin");
    wait_held(&w.eu, vec![], "dc-eu releases the claim").await;
    wait_held(&w.us, vec![claim.id.clone()], "dc-us assigns the claim").await;
    let moved =
        eventually("the moved claim is active", || {
            let (mut api, id) = (w.api.clone(), claim.id.clone());
            async move {
                Some(api.claim(&id).await).filter(|c| c.state == v1::ClaimState::Active as i32)
            }
        })
        .await;
    assert_eq!(moved.placements.len(), 1);
    assert_eq!(moved.placements[0].datacenter, "dc-us");

    // dc-eu keeps 16 − 8 = 8 for the maintenance's hour: 2 units fit, 3 do not.
    let err = w.api.create_claim(in_eu(3)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    let two = w.api.create_claim(in_eu(2)).await.unwrap();

    // Cancelled, it gives the capacity back.
    let cancelled = w
        .api
        .infra
        .cancel_maintenance(v1::CancelMaintenanceRequest { id: m.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(cancelled.cancelled_unix_ms > 0);
    assert!(list(&w.api).await.is_empty());
    w.api
        .claims
        .release_claim(v1::ReleaseClaimRequest { id: two.id.clone() })
        .await
        .unwrap();

    // Drained through the CLI: dc-us becomes unschedulable and its claim
    // moves back to dc-eu, which has room again.
    let theia = bin_dir().join("theia");
    let addr = w.manager.addr.to_string();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run(
            &theia,
            &["dc", "drain", "dc-us", "--reason", "decommissioning"],
            &addr,
        )
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(out.contains(&format!("re-placed: {}", claim.id)), "{out}");
    wait_held(&w.us, vec![], "dc-us releases the claim").await;
    wait_held(&w.eu, vec![claim.id.clone()], "dc-eu assigns it again").await;
    let us = w.api.dc("dc-us").await.unwrap();
    assert!(!us.schedulable);
    // Nothing new lands on a drained datacenter.
    let err = w
        .api
        .create_claim(v1::ClaimSpec {
            datacenters: vec!["dc-us".into()],
            ..in_eu(1)
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("not schedulable") && err.message().contains("in maintenance"),
        "{}",
        err.message()
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_requests_are_checked_and_name_the_field() {
    let mut w = TwoDcs::start().await;
    let bad = |f: fn(&mut v1::CreateMaintenanceRequest)| {
        let mut r = vcpu_out_of_eu(false, false);
        f(&mut r);
        r
    };
    for (req, field) in [
        (bad(|r| r.reason.clear()), "reason"),
        (bad(|r| r.all = true), "resources"),
        (bad(|r| r.resources.clear()), "resources"),
        (bad(|r| r.duration_ms = -1), "duration_ms"),
        (bad(|r| r.end_unix_ms = 1_000), "duration"),
        (bad(|r| r.datacenter = "Bad DC".into()), "datacenter"),
    ] {
        let err = w.api.infra.create_maintenance(req).await.unwrap_err();
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{field}: {}",
            err.message()
        );
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let err = w
        .api
        .infra
        .create_maintenance(bad(|r| r.datacenter = "dc-nowhere".into()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = w
        .api
        .infra
        .get_maintenance(v1::GetMaintenanceRequest {
            id: "m-000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // A tenant may not take capacity out.
    let tenant = w.manager.channel_as("alice", &["tenant:acme"]).await;
    let mut infra = v1::infrastructure_service_client::InfrastructureServiceClient::new(tenant);
    let err = infra
        .create_maintenance(vcpu_out_of_eu(false, true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capacity_timeline_shows_claims_and_maintenance_step_by_step() {
    let mut w = TwoDcs::start().await;
    let hour = 3_600_000i64;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    w.api
        .create_claim(v1::ClaimSpec {
            start_unix_ms: now + hour,
            end_unix_ms: now + 2 * hour,
            ..in_eu(2)
        })
        .await
        .unwrap();
    w.api
        .infra
        .create_maintenance(v1::CreateMaintenanceRequest {
            datacenter: "dc-eu".into(),
            resources: map(&[("compute.vcpu", "4")]),
            start_unix_ms: now + 3 * hour,
            duration_ms: hour,
            reason: "firmware".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let request = v1::GetCapacityTimelineRequest {
        datacenter: "dc-eu".into(),
        from_unix_ms: now,
        to_unix_ms: now + 5 * hour,
        step_ms: hour,
        ..Default::default()
    };
    let t = w
        .api
        .infra
        .get_capacity_timeline(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.datacenters, ["dc-eu"]);
    let vcpu = t
        .classes
        .iter()
        .find(|c| c.class == "compute.vcpu")
        .unwrap();
    let column = |f: fn(&v1::CapacityPoint) -> u64| vcpu.points.iter().map(f).collect::<Vec<_>>();
    assert_eq!(column(|p| p.capacity), [16; 5]);
    assert_eq!(column(|p| p.allocated), [0, 8, 0, 0, 0]);
    assert_eq!(column(|p| p.maintenance), [0, 0, 0, 4, 0]);
    assert_eq!(column(|p| p.free), [16, 8, 16, 12, 16]);
    // The logical infrastructure adds dc-us's 32.
    let all = w
        .api
        .infra
        .get_capacity_timeline(v1::GetCapacityTimelineRequest {
            datacenter: String::new(),
            ..request.clone()
        })
        .await
        .unwrap()
        .into_inner();
    let vcpu = all
        .classes
        .iter()
        .find(|c| c.class == "compute.vcpu")
        .unwrap();
    assert_eq!(vcpu.points[1].free, 8 + 32);
    // Too many steps, or a backwards span, name the field.
    for (bad, field) in [
        (
            v1::GetCapacityTimelineRequest {
                step_ms: 1,
                ..request.clone()
            },
            "step_ms",
        ),
        (
            v1::GetCapacityTimelineRequest {
                to_unix_ms: now - 1,
                ..request.clone()
            },
            "to_unix_ms",
        ),
        (
            v1::GetCapacityTimelineRequest {
                selector: "=x".into(),
                ..request.clone()
            },
            "selector",
        ),
    ] {
        let err = w.api.infra.get_capacity_timeline(bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains(field), "{}", err.message());
    }
    // The CLI draws it.
    let theia = bin_dir().join("theia");
    let addr = w.manager.addr.to_string();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        run(
            &theia,
            &[
                "infra",
                "timeline",
                "--datacenter",
                "dc-eu",
                "--to",
                "+5h",
                "--step",
                "1h",
            ],
            &addr,
        )
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("compute.vcpu  (capacity up to 16, least free 8)"),
        "{out}"
    );
    assert!(out.contains("  maintenance  |"), "{out}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_forced_through_another_manager_moves_the_claim_on_the_agents_of_the_first() {
    init();
    const SECRET: &str = "e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3";
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = TestManager::start_with(redis_config(&dir.path().join("a"), &redis, SECRET)).await;
    let b = TestManager::start_with(redis_config(&dir.path().join("b"), &redis, SECRET)).await;
    // Both agents hold their streams on a.
    let start = |dc: &str| {
        TestAgent::start(
            vec![a.url()],
            dc,
            &[("region", "eu")],
            "compute.vcpu=16",
            dir.path().join(dc),
        )
    };
    let (one, two) = (start("dc-1"), start("dc-2"));
    let on_a = Clients::new(a.channel().await);
    let mut on_b = Clients::new(b.channel().await);
    for dc in ["dc-1", "dc-2"] {
        on_b.wait_total(dc, "compute.vcpu", "16").await;
        on_b.wait_liveness(dc, v1::Liveness::Alive).await;
    }
    on_b.create_tenant("acme", &[]).await;
    let claim = on_b
        .create_claim(v1::ClaimSpec {
            tenant: "acme".into(),
            count: 1,
            resources: map(&[("compute.vcpu", "8")]),
            datacenters: vec!["dc-1".into(), "dc-2".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(claim.placements[0].datacenter, "dc-1");
    wait_held(&one, vec![claim.id.clone()], "dc-1 applies the claim").await;
    // Forced through b: a's agents follow from the feed.
    let forced = on_b
        .infra
        .create_maintenance(v1::CreateMaintenanceRequest {
            datacenter: "dc-1".into(),
            all: true,
            duration_ms: 3_600_000,
            reason: "power".into(),
            force: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(forced.replaced, vec![claim.id.clone()]);
    wait_held(&one, vec![], "dc-1 releases the claim").await;
    wait_held(&two, vec![claim.id.clone()], "dc-2 assigns it").await;
    let moved = eventually("a shows it active in dc-2", || {
        let (mut api, id) = (on_a.clone(), claim.id.clone());
        async move {
            Some(api.claim(&id).await).filter(|c| {
                c.state == v1::ClaimState::Active as i32 && c.placements[0].datacenter == "dc-2"
            })
        }
    })
    .await;
    assert!(!moved.at_risk);
    // The move is in a's audit trail too, recorded by b, as b's admin did it.
    let b_id = on_b
        .cluster
        .get_cluster_status(v1::GetClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .manager_id;
    let replaced = eventually("a's trail holds b's claim.replace", || {
        let channel = a.channel();
        async move {
            v1::audit_service_client::AuditServiceClient::new(channel.await)
                .list_events(v1::ListEventsRequest {
                    filter: Some(v1::EventFilter {
                        action: "claim.replace".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .events
                .into_iter()
                .next()
        }
    })
    .await;
    assert_eq!(
        (
            replaced.object_id.as_str(),
            replaced.actor.as_str(),
            replaced.manager.as_str()
        ),
        (claim.id.as_str(), "admin", b_id.as_str())
    );
    assert!(
        replaced.message.contains("dc-1") && replaced.message.contains("dc-2"),
        "{}",
        replaced.message
    );
    one.stop().await;
    two.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_gives_up_half_way_never_leaves_a_maintenance_with_claims_unmoved() {
    let mut w = TwoDcs::start().await;
    let claim = w.api.create_claim(anywhere(3)).await.unwrap();
    wait_held(&w.eu, vec![claim.id.clone()], "dc-eu applies the claim").await;
    for patience_us in [200u64, 1_000, 3_000] {
        let call = w.api.infra.create_maintenance(vcpu_out_of_eu(true, false));
        let _ = tokio::time::timeout(std::time::Duration::from_micros(patience_us), call).await;
        // Stored or not, whatever the client saw: if it is stored, the
        // claim it displaces leaves dc-eu.
        let settled = eventually("the maintenance and the claim agree", || {
            let (mut api, id) = (w.api.clone(), claim.id.clone());
            async move {
                let stored = !api
                    .infra
                    .list_maintenances(v1::ListMaintenancesRequest::default())
                    .await
                    .unwrap()
                    .into_inner()
                    .maintenances
                    .is_empty();
                let in_eu = api
                    .claim(&id)
                    .await
                    .placements
                    .iter()
                    .any(|p| p.datacenter == "dc-eu");
                (!(stored && in_eu)).then_some(stored)
            }
        })
        .await;
        if settled {
            break;
        }
    }
    w.stop().await;
}
