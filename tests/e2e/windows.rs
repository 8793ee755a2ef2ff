//! Claims over time windows, end to end: a claim for later is pending and
//! held by no agent, is assigned when its window starts and released when
//! it ends; windows that overlap count together, windows that touch do not;
//! quotas hold at every instant.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use theia::api::v1;
use tonic::Code;

use crate::common::*;
use crate::placement::TwoDcs;

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// `count` small units (4 vCPU each) in dc-eu over `[start, end)` (0: none).
fn in_eu(count: u32, start: i64, end: i64) -> v1::ClaimSpec {
    v1::ClaimSpec {
        datacenters: vec!["dc-eu".into()],
        start_unix_ms: start,
        end_unix_ms: end,
        ..spec("acme", "small", count)
    }
}

async fn wait_state(api: &Clients, id: &str, state: v1::ClaimState) -> v1::Claim {
    eventually(&format!("claim {id} is {state:?}"), || {
        let (mut api, id) = (api.clone(), id.to_owned());
        async move { Some(api.claim(&id).await).filter(|c| c.state == state as i32) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_for_later_is_pending_then_active_then_expired_and_agents_follow() {
    let mut w = TwoDcs::start().await;
    // Far enough ahead for the steps before it on a loaded machine.
    let start = now_ms() + 4_000;
    let end = start + 2_000;

    // 3 × 4 vCPU of dc-eu's 16, later: pending, held by no agent, nothing
    // allocated now.
    let later = w.api.create_claim(in_eu(3, start, end)).await.unwrap();
    assert_eq!(later.state, v1::ClaimState::Pending as i32);
    assert_eq!(
        (later.start_unix_ms, later.end_unix_ms),
        (start, end),
        "the window is kept as asked"
    );
    let eu = w.api.dc("dc-eu").await.unwrap();
    assert_eq!(class(&eu, "compute.vcpu").allocated, "0");

    // Overlapping windows count together: 2 more units from now on do not
    // fit (12 + 8 > 16), and the error says when it is short.
    let err = w.api.create_claim(in_eu(2, 0, 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{}", err.message());
    let at = theia::model::format_instant(u64::try_from(start).unwrap());
    assert!(
        err.message()
            .contains(&format!("a unit needs 4, 0 available at {at}")),
        "{}",
        err.message()
    );
    // Touching windows do not: 2 units until exactly its start fit, and are
    // applied now.
    let before = w.api.create_claim(in_eu(2, 0, start)).await.unwrap();
    assert_eq!(before.state, v1::ClaimState::Placed as i32);
    wait_state(&w.api, &before.id, v1::ClaimState::Active).await;
    assert_eq!(w.eu.held(), vec![before.id.clone()], "only what holds now");

    // At its start the agent is told to assign it; the earlier one expires.
    wait_state(&w.api, &later.id, v1::ClaimState::Active).await;
    assert!(now_ms() >= start, "not active before its start");
    eventually("dc-eu holds exactly the later claim", || {
        let ok = w.eu.held() == vec![later.id.clone()];
        async move { ok.then_some(()) }
    })
    .await;
    assert_eq!(
        w.api.claim(&before.id).await.state,
        v1::ClaimState::Expired as i32
    );

    // At its end it expires by itself and the agent releases it.
    wait_state(&w.api, &later.id, v1::ClaimState::Expired).await;
    assert!(now_ms() >= end, "not expired before its end");
    eventually("dc-eu holds nothing", || {
        let ok = w.eu.held().is_empty();
        async move { ok.then_some(()) }
    })
    .await;
    let eu = w.api.dc("dc-eu").await.unwrap();
    assert_eq!(class(&eu, "compute.vcpu").allocated, "0");
    // Expired claims are listed only when asked for, and releasing one
    // changes nothing.
    let live = w
        .api
        .claims
        .list_claims(v1::ListClaimsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(live.claims.is_empty(), "{:?}", live.claims);
    let states: Vec<i32> = w.api.all_claims().await.iter().map(|c| c.state).collect();
    assert_eq!(states, [v1::ClaimState::Expired as i32; 2]);
    let again = w
        .api
        .claims
        .release_claim(v1::ReleaseClaimRequest {
            id: later.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.state, v1::ClaimState::Expired as i32);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_hold_at_every_instant_and_say_when_they_would_not() {
    let mut w = TwoDcs::start().await;
    w.api.create_tenant("tight", &[("compute.vcpu", "8")]).await;
    let tight = |count: u32, start: i64, end: i64| v1::ClaimSpec {
        tenant: "tight".into(),
        ..in_eu(count, start, end)
    };
    let day = 86_400_000;
    let start = now_ms() + day;
    // 8 vCPU tomorrow for a day, then 8 more the day after: each within the
    // quota at every instant.
    w.api
        .create_claim(tight(2, start, start + day))
        .await
        .unwrap();
    w.api
        .create_claim(tight(2, start + day, start + 2 * day))
        .await
        .unwrap();
    // 4 vCPU from now until released would reach 12 tomorrow.
    let err = w.api.create_claim(tight(1, 0, 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    let at = theia::model::format_instant(u64::try_from(start).unwrap());
    assert!(
        err.message().contains(&format!(
            "would exceed its compute.vcpu quota at {at}: it holds 8 then, the claim asks for 4, the quota is 8"
        )),
        "{}",
        err.message()
    );
    // Until tomorrow it fits.
    w.api.create_claim(tight(1, 0, start)).await.unwrap();
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_a_claim_for_later_and_waits_for_it() {
    let w = TwoDcs::start().await;
    let theia = bin_dir().join("theia");
    let addr = w.manager.addr.to_string();
    let run_cli = |args: Vec<String>| {
        let (theia, addr) = (theia.clone(), addr.clone());
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&theia, &args, &addr)
        })
    };
    let args = |extra: &[&str]| {
        ["claim", "create", "--tenant", "acme", "--profile", "small"]
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
    };
    // --wait returns once the claim started and its agent applied it.
    let started = std::time::Instant::now();
    let (ok, out, err) = run_cli(args(&["--start", "+2s", "--duration", "1h", "--wait"]))
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "returned before the start"
    );
    assert!(out.contains(" active: 1 unit of profile small"), "{out}");
    // Wrong times are refused before anything is sent, naming the flag.
    let (ok, _, err) = run_cli(args(&["--start", "tomorrow"])).await.unwrap();
    assert!(
        !ok && err.contains("--start") && err.contains("2026-12-01T00:00Z"),
        "{err}"
    );
    let (ok, _, err) = run_cli(args(&["--end", "+1h", "--duration", "1h"]))
        .await
        .unwrap();
    assert!(!ok && err.contains("--duration"), "{err}");
    // An end in the past is refused by the manager, naming the field.
    let (ok, _, err) = run_cli(args(&["--end", "2020-01-01"])).await.unwrap();
    assert!(!ok && err.contains("spec.end"), "{err}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamic_start_is_the_earliest_that_fits_and_explain_says_when() {
    let mut w = TwoDcs::start().await;
    let hour = 3_600_000;
    let full_until = now_ms() + hour;
    // dc-eu is full for the next hour.
    w.api.create_claim(in_eu(4, 0, full_until)).await.unwrap();
    let earliest = |count: u32, not_before: i64| v1::ClaimSpec {
        earliest_start: true,
        duration_ms: hour,
        ..in_eu(count, not_before, 0)
    };
    // Explain says when; create places it then, pending until then.
    let ex = w
        .api
        .claims
        .explain_claim(v1::ExplainClaimRequest {
            spec: Some(earliest(2, 0)),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(ex.fits, "{}", ex.summary);
    assert_eq!(
        (ex.start_unix_ms, ex.end_unix_ms),
        (full_until, full_until + hour)
    );
    let at = theia::model::format_instant(u64::try_from(full_until).unwrap());
    assert!(
        ex.summary.ends_with(&format!("from {at}")),
        "{}",
        ex.summary
    );
    let later = w.api.create_claim(earliest(2, 0)).await.unwrap();
    assert_eq!(later.state, v1::ClaimState::Pending as i32);
    assert_eq!(
        (later.start_unix_ms, later.end_unix_ms),
        (full_until, full_until + hour)
    );
    // Half of dc-eu stays free then: two more units fit at the same start,
    // and a start asked for later than that is kept.
    let not_before = full_until + 600_000;
    let kept = w.api.create_claim(earliest(2, not_before)).await.unwrap();
    assert_eq!(kept.start_unix_ms, not_before);
    // Five units never fit in dc-eu (20 > 16): the error says so, and why.
    let err = w.api.create_claim(earliest(5, 0)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message().contains("no start from")
            && err.message().contains("(31 days, the planning window)")
            && err.message().contains(": 4 of 5 units found a place"),
        "{}",
        err.message()
    );
    // An end does not go with a dynamic start.
    let err = w
        .api
        .create_claim(v1::ClaimSpec {
            earliest_start: true,
            ..in_eu(1, 0, full_until)
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("spec.end"), "{}", err.message());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_the_manager_holding_the_agent_assigns_and_every_manager_sees_the_expiry() {
    init();
    const SECRET: &str = "d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2";
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = TestManager::start_with(redis_config(&dir.path().join("a"), &redis, SECRET)).await;
    let b = TestManager::start_with(redis_config(&dir.path().join("b"), &redis, SECRET)).await;
    // The agent holds its stream on a only.
    let agent = TestAgent::start(
        vec![a.url()],
        "dc-a",
        &[("region", "eu")],
        "compute.vcpu=16",
        dir.path().join("agent"),
    );
    let on_a = Clients::new(a.channel().await);
    let mut on_b = Clients::new(b.channel().await);
    on_b.wait_total("dc-a", "compute.vcpu", "16").await;
    on_b.wait_liveness("dc-a", v1::Liveness::Alive).await;
    on_b.create_tenant("acme", &[]).await;
    let start = now_ms() + 3_000;
    let end = start + 1_500;
    // Placed through b, which holds no agent stream.
    let claim = on_b
        .create_claim(v1::ClaimSpec {
            tenant: "acme".into(),
            count: 1,
            resources: map(&[("compute.vcpu", "4")]),
            start_unix_ms: start,
            end_unix_ms: end,
            ..Default::default()
        })
        .await
        .unwrap();
    let seen_on_a = eventually("a learns of the claim", || {
        let (mut api, id) = (on_a.clone(), claim.id.clone());
        async move {
            api.claims
                .get_claim(v1::GetClaimRequest { id })
                .await
                .ok()
                .map(tonic::Response::into_inner)
        }
    })
    .await;
    assert_eq!(seen_on_a.state, v1::ClaimState::Pending as i32);
    assert!(agent.held().is_empty(), "nobody holds it before its start");
    // a's timekeeper assigns it at its start; the agent's result reaches b.
    wait_state(&on_b, &claim.id, v1::ClaimState::Active).await;
    assert!(now_ms() >= start);
    assert_eq!(agent.held(), vec![claim.id.clone()]);
    // At its end it expires on both, once, as of its end, and is released.
    // (A claim shows expired as soon as its end is past; the expiry a
    // timekeeper writes follows, dated at the end.)
    for api in [&on_a, &on_b] {
        eventually("the written expiry shows on every manager", || {
            let (mut api, id) = (api.clone(), claim.id.clone());
            async move {
                let c = api.claim(&id).await;
                (c.state == v1::ClaimState::Expired as i32 && c.updated_unix_ms == end)
                    .then_some(())
            }
        })
        .await;
    }
    eventually("the agent releases it", || {
        let ok = agent.held().is_empty();
        async move { ok.then_some(()) }
    })
    .await;
    agent.stop().await;
    a.stop().await;
    b.stop().await;
}
