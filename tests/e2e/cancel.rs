//! Impatient clients: calls cancelled at random moments (a client deadline,
//! a dropped future, a reset stream) never leave memory and the store apart.
//! Whatever the manager showed before a kill is exactly what it shows after
//! the restart, and no datacenter is ever over capacity.

use std::collections::BTreeMap;
use std::time::Duration;

use theia::api::v1;

use crate::common::*;
use crate::placement::TwoDcs;

/// A small xorshift generator: the tests carry no rand dependency, and the
/// seed is printed so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Live units per datacenter; each unit of `tiny` holds one vCPU.
fn units_per_dc(claims: &[v1::Claim]) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for c in claims {
        if c.state == v1::ClaimState::Released as i32 {
            continue;
        }
        for p in &c.placements {
            *out.entry(p.datacenter.clone()).or_default() += p.units;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cancelled_at_random_moments_leave_memory_and_store_in_agreement() {
    let mut w = TwoDcs::start().await;
    w.api.create_tenant("bulk", &[]).await;
    w.api.create_profile("tiny", &[("compute.vcpu", "1")]).await;

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("cancellation seed: {seed}");
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..4u64 {
        let mut api = w.api.clone();
        workers.spawn(async move {
            let mut rng = Rng(seed.wrapping_mul(worker + 7) | 1);
            let mut mine: Vec<String> = Vec::new();
            let (mut acked, mut cancelled) = (0u32, 0u32);
            for _ in 0..60 {
                // From "before the request left" to "well after the answer";
                // one call in four waits for its answer, so that some go
                // through however loaded the machine is (cancelled creates
                // may still be placed, and only acknowledged ones are
                // released again).
                let patience = if rng.next().is_multiple_of(4) {
                    Duration::from_secs(10)
                } else {
                    Duration::from_micros(rng.next() % 4000)
                };
                let release = !mine.is_empty() && rng.next().is_multiple_of(3);
                if release {
                    let id = mine.swap_remove((rng.next() as usize) % mine.len());
                    let call = api.claims.release_claim(v1::ReleaseClaimRequest { id });
                    match tokio::time::timeout(patience, call).await {
                        Ok(Ok(_)) => acked += 1,
                        Ok(Err(status)) => panic!("release failed: {status}"),
                        Err(_) => cancelled += 1,
                    }
                } else {
                    let call = api.create_claim(spec("bulk", "tiny", 1 + (rng.next() % 3) as u32));
                    match tokio::time::timeout(patience, call).await {
                        Ok(Ok(claim)) => {
                            acked += 1;
                            mine.push(claim.id);
                        }
                        Ok(Err(status)) => assert_eq!(
                            status.code(),
                            tonic::Code::ResourceExhausted,
                            "only a full pool may refuse: {status}"
                        ),
                        Err(_) => cancelled += 1,
                    }
                }
            }
            (acked, cancelled)
        });
    }
    let (mut acked, mut cancelled) = (0, 0);
    while let Some(done) = workers.join_next().await {
        let (a, c) = done.expect("worker");
        acked += a;
        cancelled += c;
    }
    eprintln!("acknowledged {acked}, cancelled {cancelled}");
    assert!(cancelled > 0, "some calls were cancelled half-way");
    assert!(acked > 0, "some calls went through");

    // Let the agents confirm what was placed, so that nothing changes while
    // the snapshot is taken. A cancelled create may still have been placed:
    // the writer commits it whether or not its caller waits.
    let before = w.api.settled_claims().await;
    let units = units_per_dc(&before);
    assert!(units.get("dc-eu").copied().unwrap_or(0) <= 16, "{units:?}");
    assert!(units.get("dc-us").copied().unwrap_or(0) <= 32, "{units:?}");

    w.manager.kill().await;
    let manager = TestManager::start(&w.dir.path().join("manager")).await;
    let mut api = Clients::new(manager.channel().await);
    let after = api.all_claims().await;
    assert_eq!(
        claims_snapshot(&after),
        claims_snapshot(&before),
        "the restart shows exactly what memory showed"
    );
    assert_eq!(units_per_dc(&after), units);

    w.eu.stop().await;
    w.us.stop().await;
    manager.stop().await;
}
