//! What an operator sets on a datacenter (reserved capacity, allocation
//! ratios, schedulable, labels) is its own register: scheduling and answers
//! see it, and no agent report, on this manager or another, takes it back.

use theia::api::v1;
use tonic::Code;

use crate::common::*;

fn update(
    id: &str,
    paths: &[&str],
    fill: impl FnOnce(&mut v1::UpdateDatacenterRequest),
) -> v1::UpdateDatacenterRequest {
    let mut req = v1::UpdateDatacenterRequest {
        id: id.into(),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
        ..Default::default()
    };
    fill(&mut req);
    req
}

fn available(dc: &v1::Datacenter) -> String {
    class(dc, "compute.vcpu").available.clone()
}

async fn explain(api: &mut Clients, vcpus: &str) -> v1::ExplainClaimResponse {
    let mut spec = spec("acme", "", 1);
    spec.profile = String::new();
    spec.resources = map(&[("compute.vcpu", vcpus)]);
    api.claims
        .explain_claim(v1::ExplainClaimRequest { spec: Some(spec) })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_ratios_and_schedulable_shape_placement_and_survive_reports() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut api = Clients::new(manager.channel().await);
    let agent = HandAgent::connect(manager.agent_channel("dc-s").await, "dc-s").await;
    agent.report(1, &[("compute.vcpu", 16, 16, Some(0))]).await;
    api.create_tenant("acme", &[]).await;
    let dc = api.wait_total("dc-s", "compute.vcpu", "16").await;
    assert_eq!(available(&dc), "16");

    let dc = api
        .infra
        .update_datacenter(update("dc-s", &["reserved", "allocation_ratio"], |r| {
            r.reserved = map(&[("compute.vcpu", "4")]);
            r.allocation_ratio = [("compute.vcpu".to_owned(), 2.0)].into();
        }))
        .await
        .unwrap()
        .into_inner();
    let vcpu = class(&dc, "compute.vcpu");
    assert_eq!((vcpu.reserved.as_str(), vcpu.allocation_ratio), ("4", 2.0));
    assert_eq!(available(&dc), "24", "(16 - 4) x 2");
    assert!(explain(&mut api, "24").await.fits);
    assert!(!explain(&mut api, "25").await.fits);

    // A report with a new total keeps what the operator set.
    agent.report(2, &[("compute.vcpu", 20, 20, Some(0))]).await;
    let dc = api.wait_total("dc-s", "compute.vcpu", "20").await;
    assert_eq!(available(&dc), "32", "(20 - 4) x 2");

    // Unschedulable: nothing new lands, and explain says why.
    api.infra
        .update_datacenter(update("dc-s", &["schedulable"], |r| r.schedulable = false))
        .await
        .unwrap();
    let refused = explain(&mut api, "1").await;
    assert!(!refused.fits);
    assert!(
        refused.verdicts[0]
            .reasons
            .iter()
            .any(|r| r.contains("not schedulable")),
        "{refused:?}"
    );
    let mut one = spec("acme", "", 1);
    one.profile = String::new();
    one.resources = map(&[("compute.vcpu", "1")]);
    let err = api
        .create_claim(one.clone())
        .await
        .expect_err("unschedulable");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    agent.report(3, &[("compute.vcpu", 24, 24, Some(0))]).await;
    let dc = api.wait_total("dc-s", "compute.vcpu", "24").await;
    assert!(!dc.schedulable, "a report does not undo it");
    api.infra
        .update_datacenter(update("dc-s", &["schedulable"], |r| r.schedulable = true))
        .await
        .unwrap();
    api.create_claim(one).await.expect("schedulable again");

    // Labels set by the operator replace the agent's; empty gives them back.
    let dc = api
        .infra
        .update_datacenter(update("dc-s", &["labels"], |r| {
            r.labels = map(&[("region", "us")]);
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dc.labels, map(&[("region", "us")]));
    let dc = api
        .infra
        .update_datacenter(update("dc-s", &["labels"], |_| {}))
        .await
        .unwrap()
        .into_inner();
    assert!(
        dc.labels.is_empty(),
        "the agent's (none) again: {:?}",
        dc.labels
    );
    // Set selectors pick by the labels in effect.
    api.infra
        .update_datacenter(update("dc-s", &["labels"], |r| {
            r.labels = map(&[("zone", "b")]);
        }))
        .await
        .unwrap();
    for (selector, picked) in [
        ("zone in (a,b)", true),
        ("zone in (a,c)", false),
        ("zone notin (a)", true),
        ("rack notin (r1)", true),
    ] {
        let listed = api
            .infra
            .list_datacenters(v1::ListDatacentersRequest {
                selector: selector.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .datacenters;
        assert_eq!(!listed.is_empty(), picked, "{selector}");
    }

    for (req, field) in [
        (
            update("dc-s", &["allocation_ratio"], |r| {
                r.allocation_ratio = [("compute.vcpu".to_owned(), 0.0)].into();
            }),
            "allocation_ratio[compute.vcpu]",
        ),
        (
            update("dc-s", &["reserved"], |r| {
                r.reserved = map(&[("compute.vcpus", "1")])
            }),
            "reserved[compute.vcpus]",
        ),
        (update("dc-s", &["liveness"], |_| {}), "update_mask"),
        (update("dc-s", &[], |_| {}), "update_mask"),
    ] {
        let err = api.infra.update_datacenter(req).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        assert!(err.message().starts_with(field), "{err}");
    }
    let missing = api
        .infra
        .update_datacenter(update("dc-none", &["schedulable"], |_| {}))
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound);
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_made_on_one_manager_survive_reports_taken_by_another() {
    init();
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = "cd".repeat(32);
    let a = TestManager::start_with(redis_config(&dir.path().join("a"), &redis, &secret)).await;
    let b = TestManager::start_with(redis_config(&dir.path().join("b"), &redis, &secret)).await;
    let mut on_a = Clients::new(a.channel().await);
    let on_b = Clients::new(b.channel().await);
    // b serves the agent; a is where the operator works.
    let agent = HandAgent::connect(b.agent_channel("dc-x").await, "dc-x").await;
    agent.report(1, &[("compute.vcpu", 16, 16, Some(0))]).await;
    eventually("a sees dc-x's capacity", || {
        let mut on_a = on_a.clone();
        async move { on_a.dc("dc-x").await.filter(|d| !d.capacity.is_empty()) }
    })
    .await;
    on_a.infra
        .update_datacenter(update("dc-x", &["reserved"], |r| {
            r.reserved = map(&[("compute.vcpu", "6")]);
        }))
        .await
        .unwrap();
    // b writes the datacenter's record again (a new total, written through).
    agent.report(2, &[("compute.vcpu", 32, 32, Some(0))]).await;
    for (name, api) in [("a", on_a.clone()), ("b", on_b.clone())] {
        eventually(
            &format!("{name} shows the new total and the reservation"),
            || {
                let mut api = api.clone();
                async move {
                    let dc = api.dc("dc-x").await?;
                    let vcpu = class(&dc, "compute.vcpu");
                    (vcpu.total == "32" && vcpu.reserved == "6").then_some(())
                }
            },
        )
        .await;
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn theia_dc_update_sets_and_shows_the_operator_fields() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let agent = HandAgent::connect(manager.agent_channel("dc-c").await, "dc-c").await;
    agent.report(1, &[("compute.vcpu", 8, 8, Some(0))]).await;
    Clients::new(manager.channel().await)
        .wait_total("dc-c", "compute.vcpu", "8")
        .await;
    let addr = manager.addr.to_string();
    tokio::task::spawn_blocking(move || {
        let theia = bin_dir().join("theia");
        let (ok, out, err) = run(
            &theia,
            &[
                "--output",
                "json",
                "dc",
                "update",
                "dc-c",
                "--reserved",
                "compute.vcpu=2",
                "--allocation-ratio",
                "compute.vcpu=1.5",
                "--schedulable",
                "false",
            ],
            &addr,
        );
        assert!(ok, "{err}");
        let dc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            dc.get("schedulable").is_none(),
            "false is the default, left out: {dc}"
        );
        let vcpu = &dc["capacity"][0];
        assert_eq!(vcpu["reserved"], "2", "{dc}");
        assert_eq!(vcpu["allocationRatio"], 1.5, "{dc}");
        assert_eq!(
            vcpu["available"], "0",
            "unschedulable: nothing to place: {dc}"
        );
        let (ok, out, err) = run(
            &theia,
            &[
                "--output",
                "json",
                "dc",
                "update",
                "dc-c",
                "--schedulable",
                "true",
            ],
            &addr,
        );
        assert!(ok, "{err}");
        let dc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(dc["capacity"][0]["available"], "9", "(8 - 2) x 1.5: {dc}");
        let (bad, _, err) = run(
            &theia,
            &[
                "dc",
                "update",
                "dc-c",
                "--allocation-ratio",
                "compute.vcpu=lots",
            ],
            &addr,
        );
        assert!(!bad && err.contains("--allocation-ratio"), "{err}");
        let (none, _, err) = run(&theia, &["dc", "update", "dc-c"], &addr);
        assert!(!none && err.contains("nothing to change"), "{err}");
    })
    .await
    .unwrap();
    manager.stop().await;
}
