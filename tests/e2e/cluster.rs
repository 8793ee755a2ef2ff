//! A manager cluster: two managers on one Redis, each with one agent. Both
//! take claims at once for one tenant on both datacenters; neither a
//! datacenter's capacity nor the tenant's quota is ever exceeded, both
//! managers show the same books, and each agent applies what either
//! manager placed on it.

use std::collections::BTreeMap;

use theia::api::v1;
use tonic::Code;

use crate::common::*;

const SECRET: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";

fn live_units(claims: &[v1::Claim]) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for c in claims
        .iter()
        .filter(|c| c.state != v1::ClaimState::Released as i32)
    {
        for p in &c.placements {
            *out.entry(p.datacenter.clone()).or_default() += p.units;
        }
    }
    out
}

fn live_ids(claims: &[v1::Claim], dc: &str) -> Vec<String> {
    let mut ids: Vec<String> = claims
        .iter()
        .filter(|c| c.state != v1::ClaimState::Released as i32)
        .filter(|c| c.placements.iter().any(|p| p.datacenter == dc))
        .map(|c| c.id.clone())
        .collect();
    ids.sort();
    ids
}

/// Two managers `a` and `b` on `redis`, their data under `dir`.
async fn two_managers(redis: &TestRedis, dir: &std::path::Path) -> (TestManager, TestManager) {
    let a = TestManager::start_with(redis_config(&dir.join("a"), redis, SECRET)).await;
    let b = TestManager::start_with(redis_config(&dir.join("b"), redis, SECRET)).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_take_claims_at_once_without_over_commit_and_converge() {
    init();
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_managers(&redis, dir.path()).await;
    let agent_a = TestAgent::start(
        vec![a.url()],
        "dc-a",
        &[("region", "eu")],
        "compute.vcpu=16",
        dir.path().join("agent-a"),
    );
    let agent_b = TestAgent::start(
        vec![b.url()],
        "dc-b",
        &[("region", "eu")],
        "compute.vcpu=16",
        dir.path().join("agent-b"),
    );
    let mut on_a = Clients::new(a.channel().await);
    let mut on_b = Clients::new(b.channel().await);

    // Each manager hears one agent; both see both datacenters alive.
    for api in [&on_a, &on_b] {
        api.wait_liveness("dc-a", v1::Liveness::Alive).await;
        api.wait_liveness("dc-b", v1::Liveness::Alive).await;
    }
    on_a.create_tenant("acme", &[("compute.vcpu", "20")]).await;
    on_b.create_profile("one", &[("compute.vcpu", "1")]).await;
    eventually("each manager sees what the other created", || {
        let (mut a, mut b) = (on_a.clone(), on_b.clone());
        async move {
            let t = b
                .tenants
                .get_tenant(v1::GetTenantRequest {
                    name: "acme".into(),
                })
                .await
                .ok()?;
            let p = a
                .profiles
                .get_profile(v1::GetProfileRequest { name: "one".into() })
                .await
                .ok()?;
            Some((t, p))
        }
    })
    .await;

    // Six clients, alternating managers, 60 claims of one vCPU: the quota
    // (20) is the limit, capacity (32) is not reached.
    let mut clients = tokio::task::JoinSet::new();
    for worker in 0..6 {
        let mut api = if worker % 2 == 0 {
            on_a.clone()
        } else {
            on_b.clone()
        };
        clients.spawn(async move {
            let mut acked = Vec::new();
            for _ in 0..10 {
                match api.create_claim(spec("acme", "one", 1)).await {
                    Ok(c) => acked.push(c.id),
                    Err(s) => assert!(
                        matches!(s.code(), Code::ResourceExhausted | Code::Aborted),
                        "only a full quota or a lost race may refuse: {s}"
                    ),
                }
            }
            acked
        });
    }
    let mut acked = Vec::new();
    while let Some(done) = clients.join_next().await {
        acked.extend(done.expect("client"));
    }
    assert!(
        !acked.is_empty() && acked.len() <= 20,
        "{} claims acknowledged",
        acked.len()
    );

    // Both managers converge on the same books, with every acknowledged claim.
    let settled = eventually("both managers show the same claims", || {
        let (mut a, mut b) = (on_a.clone(), on_b.clone());
        async move {
            let (ca, cb) = (a.all_claims().await, b.all_claims().await);
            (claims_snapshot(&ca) == claims_snapshot(&cb)).then_some(ca)
        }
    })
    .await;
    let mut shown: Vec<String> = settled.iter().map(|c| c.id.clone()).collect();
    shown.sort();
    acked.sort();
    assert_eq!(
        shown, acked,
        "exactly the acknowledged claims, on both managers"
    );
    let units = live_units(&settled);
    assert!(
        units.values().sum::<u32>() <= 20,
        "the tenant's quota holds: {units:?}"
    );
    assert!(
        units.values().all(|u| *u <= 16),
        "no datacenter over capacity: {units:?}"
    );

    // Each agent applies what either manager placed on its datacenter.
    for (agent, dc) in [(&agent_a, "dc-a"), (&agent_b, "dc-b")] {
        let want = live_ids(&settled, dc);
        eventually(&format!("{dc}'s agent holds its placements"), || {
            let held = agent.held();
            let want = want.clone();
            async move { (held == want).then_some(()) }
        })
        .await;
    }

    // A release on one manager is seen on the other, and by the agent.
    let victim = settled
        .iter()
        .find(|c| c.placements.iter().any(|p| p.datacenter == "dc-a"))
        .map(|c| c.id.clone());
    if let Some(id) = victim {
        on_b.claims
            .release_claim(v1::ReleaseClaimRequest { id: id.clone() })
            .await
            .unwrap();
        eventually(
            "the release reaches the other manager and the agent",
            || {
                let mut a = on_a.clone();
                let held = agent_a.held();
                let id = id.clone();
                async move {
                    let c = a.claim(&id).await;
                    (c.state == v1::ClaimState::Released as i32 && !held.contains(&id))
                        .then_some(())
                }
            },
        )
        .await;
    }
    let status = eventually("each manager lists both", || {
        let mut a = on_a.clone();
        async move {
            let s = a
                .cluster
                .get_cluster_status(v1::GetClusterStatusRequest {})
                .await
                .ok()?
                .into_inner();
            (s.managers.len() == 2).then_some(s)
        }
    })
    .await;
    assert_eq!(status.cluster_id, on_b.cluster_id().await, "one cluster");

    agent_a.stop().await;
    agent_b.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_manager_dies_its_agent_fails_over_and_keeps_what_it_applied() {
    init();
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_managers(&redis, dir.path()).await;
    let agent = TestAgent::start(
        vec![a.url(), b.url()],
        "dc-x",
        &[("region", "eu")],
        "compute.vcpu=16",
        dir.path().join("agent"),
    );
    let mut on_b = Clients::new(b.channel().await);
    on_b.wait_liveness("dc-x", v1::Liveness::Alive).await;
    on_b.create_tenant("acme", &[]).await;
    on_b.create_profile("one", &[("compute.vcpu", "1")]).await;
    // Placed by b, applied by the agent a serves: the feed carried it.
    let claim = on_b.create_claim(spec("acme", "one", 2)).await.unwrap();
    let held = eventually("the agent applies what the other manager placed", || {
        let held = agent.held();
        let applied = held.contains(&claim.id);
        async move { applied.then_some(held) }
    })
    .await;

    // While a serves dc-x, a second agent for it at b is a standby.
    let hello = v1::AgentMessage {
        body: Some(v1::agent_message::Body::Hello(v1::Hello {
            datacenter: "dc-x".into(),
            ..Default::default()
        })),
    };
    let mut agents =
        v1::agent_service_client::AgentServiceClient::new(b.agent_channel("dc-x").await);
    let refused = agents
        .connect(tokio_stream::iter(vec![hello]))
        .await
        .expect_err("a second stream for dc-x");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
    assert!(refused.message().contains("standby"), "{refused}");

    a.kill().await;
    eventually("b serves dc-x once a's hold on its stream ran out", || {
        let mut b = on_b.clone();
        async move {
            let s = b
                .cluster
                .get_cluster_status(v1::GetClusterStatusRequest {})
                .await
                .ok()?
                .into_inner();
            (s.connected_agents == 1).then_some(())
        }
    })
    .await;
    on_b.wait_liveness("dc-x", v1::Liveness::Alive).await;
    let c = on_b.claim(&claim.id).await;
    assert!(
        !c.at_risk && c.state == v1::ClaimState::Active as i32,
        "{c:?}"
    );
    assert_eq!(
        agent.held(),
        held,
        "nothing was released because of the failover"
    );
    agent.stop().await;
    b.stop().await;
}

/// Live units per datacenter and the claim ids, as one manager shows them.
async fn books(api: &mut Clients) -> (BTreeMap<String, u32>, ClaimsSnapshot) {
    let claims = api.all_claims().await;
    (live_units(&claims), claims_snapshot(&claims))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_three_managers_four_agents_a_kill_9_and_a_redis_restart() {
    init();
    let mut redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let config = |n: usize, redis: &TestRedis| {
        redis_config(&dir.path().join(format!("m{n}")), redis, SECRET)
    };
    let mut managers = Vec::new();
    for n in 0..2 {
        managers.push(TestManager::start_with(config(n, &redis)).await);
    }
    // The third is the real binary, killed with SIGKILL half-way.
    let third_addr = format!("127.0.0.1:{}", free_port());
    let third_dir = dir.path().join("m2");
    let mut third = Some(manager_process(&third_dir, &third_addr, &redis, SECRET));
    let mut urls: Vec<String> = managers.iter().map(TestManager::url).collect();
    urls.push(format!("http://{third_addr}"));
    let mut agents = Vec::new();
    for n in 0..4 {
        // Each agent prefers a different manager and knows them all.
        let mut list = urls.clone();
        list.rotate_left(n % 3);
        agents.push(TestAgent::start(
            list,
            &format!("dc-{n}"),
            &[("region", "eu")],
            "compute.vcpu=8",
            dir.path().join(format!("agent-{n}")),
        ));
    }
    let mut first = Clients::new(managers[0].channel().await);
    for n in 0..4 {
        first
            .wait_liveness(&format!("dc-{n}"), v1::Liveness::Alive)
            .await;
    }
    first.create_tenant("acme", &[("compute.vcpu", "24")]).await;
    first.create_profile("one", &[("compute.vcpu", "1")]).await;
    let mut clients_of = Vec::new();
    for m in &managers {
        clients_of.push(Clients::new(m.channel().await));
    }
    clients_of.push(Clients::new(channel_to(&third_addr).await));
    for api in &clients_of {
        eventually("the profile reaches every manager", || {
            let mut api = api.clone();
            async move {
                api.profiles
                    .get_profile(v1::GetProfileRequest { name: "one".into() })
                    .await
                    .ok()
            }
        })
        .await;
    }

    // Six clients create and release against random managers while the
    // chaos task kills and restarts a manager and restarts Redis.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for worker in 0..6u64 {
        let apis = clients_of.clone();
        let stop = stop.clone();
        clients.spawn(async move {
            let mut rng = worker * 7919 + 17;
            let mut mine: Vec<String> = Vec::new();
            let mut acked = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let mut api = apis[(rng % 3) as usize].clone();
                if !mine.is_empty() && rng % 4 == 0 {
                    let id = mine.swap_remove((rng as usize / 4) % mine.len());
                    let _ = api
                        .claims
                        .release_claim(v1::ReleaseClaimRequest { id })
                        .await;
                } else if let Ok(c) = api
                    .create_claim(spec("acme", "one", 1 + (rng % 2) as u32))
                    .await
                {
                    mine.push(c.id.clone());
                    acked.push(c.id);
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            acked
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    third.take().expect("running").kill9();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    redis.restart();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    while let Some(done) = clients.join_next().await {
        acked.extend(done.expect("client"));
    }
    assert!(!acked.is_empty(), "some claims went through the chaos");
    // The killed manager comes back (same address and data directory);
    // agents fail over as needed.
    let third = manager_process(&third_dir, &third_addr, &redis, SECRET);
    let mut apis = Vec::new();
    for m in &managers {
        apis.push(Clients::new(m.channel().await));
    }
    apis.push(Clients::new(channel_to(&third_addr).await));

    // Every manager converges on the same books, none over capacity or quota,
    // with every acknowledged claim.
    let (units, snapshot) = eventually("every manager shows the same books", || {
        let apis = apis.clone();
        async move {
            let mut seen = Vec::new();
            for mut api in apis {
                seen.push(books(&mut api).await);
            }
            seen.windows(2)
                .all(|w| w[0] == w[1])
                .then(|| seen.remove(0))
        }
    })
    .await;
    assert!(
        units.values().all(|u| *u <= 8),
        "no datacenter over capacity: {units:?}"
    );
    assert!(
        units.values().sum::<u32>() <= 24,
        "the quota holds: {units:?}"
    );
    let ids: std::collections::BTreeSet<&String> = snapshot.iter().map(|(id, _, _)| id).collect();
    for id in &acked {
        assert!(ids.contains(id), "acknowledged claim {id} lost");
    }
    // Every agent converges to its placements.
    let claims = apis[0].all_claims().await;
    for (n, agent) in agents.iter().enumerate() {
        let want = live_ids(&claims, &format!("dc-{n}"));
        eventually(
            &format!("dc-{n}'s agent holds exactly its placements"),
            || {
                let held = agent.held();
                let want = want.clone();
                async move { (held == want).then_some(()) }
            },
        )
        .await;
    }
    for agent in agents {
        agent.stop().await;
    }
    assert!(
        third.terminate().success(),
        "the restarted manager stops cleanly"
    );
    for m in managers {
        m.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_id_sent_to_two_managers_at_once_makes_one_claim() {
    init();
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_managers(&redis, dir.path()).await;
    let agent = TestAgent::start(
        vec![a.url()],
        "dc-a",
        &[],
        "compute.vcpu=16",
        dir.path().join("agent"),
    );
    let (mut on_a, mut on_b) = (
        Clients::new(a.channel().await),
        Clients::new(b.channel().await),
    );
    on_b.wait_liveness("dc-a", v1::Liveness::Alive).await;
    on_a.create_tenant("acme", &[]).await;
    on_a.create_profile("one", &[("compute.vcpu", "1")]).await;
    eventually("b sees the profile", || {
        let mut b = on_b.clone();
        async move {
            b.profiles
                .get_profile(v1::GetProfileRequest { name: "one".into() })
                .await
                .ok()
        }
    })
    .await;
    for n in 0..5 {
        let s = v1::ClaimSpec {
            request_id: format!("order-{n}"),
            ..spec("acme", "one", 1)
        };
        let (x, y) = tokio::join!(on_a.create_claim(s.clone()), on_b.create_claim(s));
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(
            x.id, y.id,
            "both managers answer with the one claim for order-{n}"
        );
    }
    eventually("both managers show the same five claims", || {
        let (mut a, mut b) = (on_a.clone(), on_b.clone());
        async move {
            let (x, y) = (a.all_claims().await, b.all_claims().await);
            (x.len() == 5 && claims_snapshot(&x) == claims_snapshot(&y)).then_some(())
        }
    })
    .await;
    agent.stop().await;
    a.stop().await;
    b.stop().await;
}
