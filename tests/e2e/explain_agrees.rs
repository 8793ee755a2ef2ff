//! ExplainClaim and CreateClaim decide alike, through the real manager:
//! over random sequences of claims (profiles or explicit resources, every
//! strategy, selectors, datacenter lists, distinct and per-datacenter
//! limits, windows now and later, dynamic starts, two tenants with quotas)
//! and releases, create refuses exactly when explain said the claim does
//! not fit, with explain's reason in its error, and places it where explain
//! said, over the window explain said.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use theia::api::v1;
use tonic::Code;

use crate::common::*;
use crate::placement::TwoDcs;

const HOUR_MS: i64 = 3_600_000;

/// When a claim holds, in hours from the case's start (the later windows
/// begin an hour after it, so that no window begins or ends while a case
/// runs).
#[derive(Debug, Clone)]
enum When {
    /// From now until released.
    Open,
    /// From now for this many hours.
    For(i64),
    /// From hour `at` for `len` hours.
    Later { at: i64, len: i64 },
    /// The earliest start from now that fits, for this many hours.
    Earliest(i64),
}

/// A claim to ask for.
#[derive(Debug, Clone)]
struct Ask {
    tenant: &'static str,
    count: u32,
    /// Profile `small` (4 vCPU, 8Gi) or this many vCPU.
    vcpu: Option<u32>,
    strategy: v1::Strategy,
    selector: &'static str,
    datacenters: &'static [&'static str],
    distinct: bool,
    max_per_datacenter: u32,
    when: When,
}

/// One step of a case.
#[derive(Debug, Clone)]
enum Op {
    Claim(Ask),
    /// Releases the n-th claim this case made, if there is one.
    Release(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let when = prop_oneof![
        Just(When::Open),
        (1i64..5).prop_map(When::For),
        (1i64..4, 1i64..4).prop_map(|(at, len)| When::Later { at, len }),
        (1i64..7).prop_map(When::Earliest),
    ];
    let claim = (
        prop_oneof![3 => Just("acme"), 1 => Just("tiny")],
        1u32..7,
        prop::option::of(1u32..9),
        prop_oneof![
            Just(v1::Strategy::Unspecified),
            Just(v1::Strategy::Spread),
            Just(v1::Strategy::RoundRobin)
        ],
        prop_oneof![
            4 => Just(""),
            1 => Just("region=eu"),
            1 => Just("region!=eu"),
            1 => Just("region in (eu,us)"),
            1 => Just("region=mars"),
        ],
        prop_oneof![
            4 => Just(&[][..]),
            1 => Just(&["dc-eu"][..]),
            1 => Just(&["dc-us", "dc-eu"][..]),
        ],
        any::<bool>(),
        0u32..3,
        when,
    )
        .prop_map(
            |(
                tenant,
                count,
                vcpu,
                strategy,
                selector,
                datacenters,
                distinct,
                max_per_datacenter,
                when,
            )| {
                Op::Claim(Ask {
                    tenant,
                    count,
                    vcpu,
                    strategy,
                    selector,
                    datacenters,
                    distinct,
                    max_per_datacenter,
                    when,
                })
            },
        );
    prop_oneof![4 => claim, 1 => (0usize..12).prop_map(Op::Release)]
}

/// The wire spec of a claim, its hours counted from `base` (Unix ms).
fn wire_spec(ask: &Ask, base: i64) -> v1::ClaimSpec {
    let mut spec = v1::ClaimSpec {
        tenant: ask.tenant.to_owned(),
        count: ask.count,
        strategy: ask.strategy as i32,
        selector: ask.selector.to_owned(),
        datacenters: ask.datacenters.iter().map(|d| (*d).to_owned()).collect(),
        distinct_datacenters: ask.distinct,
        max_per_datacenter: ask.max_per_datacenter,
        ..Default::default()
    };
    match ask.vcpu {
        Some(n) => spec.resources = map(&[("compute.vcpu", &n.to_string())]),
        None => spec.profile = "small".to_owned(),
    }
    match ask.when {
        When::Open => {}
        When::For(h) => spec.duration_ms = h * HOUR_MS,
        When::Later { at, len } => {
            spec.start_unix_ms = base + at * HOUR_MS;
            spec.duration_ms = len * HOUR_MS;
        }
        When::Earliest(h) => {
            spec.earliest_start = true;
            spec.duration_ms = h * HOUR_MS;
        }
    }
    spec
}

/// Where a claim's units went, as (datacenter, units) in id order.
fn spots(placements: &[v1::Placement]) -> Vec<(String, u32)> {
    let mut spots: Vec<(String, u32)> = placements
        .iter()
        .map(|p| (p.datacenter.clone(), p.units))
        .collect();
    spots.sort();
    spots
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_exactly_when_explain_says_it_does_not_fit() {
    let mut w = TwoDcs::start_with(unlimited_config).await;
    w.api
        .create_tenant("tiny", &[("compute.vcpu", "8"), ("compute.memory", "16Gi")])
        .await;
    let api = w.api.clone();
    let handle = tokio::runtime::Handle::current();
    let (decided, refused) = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: 40,
            max_shrink_iters: 32,
            failure_persistence: None,
            ..Config::default()
        });
        let counts = std::cell::Cell::new((0u32, 0u32));
        runner
            .run(&prop::collection::vec(op(), 1..24), |ops| {
                let mut api = api.clone();
                let base = now_ms() + HOUR_MS;
                let mut made: Vec<String> = Vec::new();
                let outcome = (|| {
                    for (i, op) in ops.iter().enumerate() {
                        let ask = match op {
                            Op::Claim(ask) => ask,
                            Op::Release(n) => {
                                if let Some(id) = made.get(*n) {
                                    let id = id.clone();
                                    handle
                                        .block_on(
                                            api.claims
                                                .release_claim(v1::ReleaseClaimRequest { id }),
                                        )
                                        .map_err(|s| {
                                            TestCaseError::fail(format!("release: {s}"))
                                        })?;
                                }
                                continue;
                            }
                        };
                        let mut spec = wire_spec(ask, base);
                        let asked = now_ms();
                        let explained = handle
                            .block_on(api.claims.explain_claim(v1::ExplainClaimRequest {
                                spec: Some(spec.clone()),
                            }))
                            .map_err(|s| TestCaseError::fail(format!("explain: {s}")))?
                            .into_inner();
                        spec.request_id = format!("agree-{base}-{i}");
                        let created = handle.block_on(api.create_claim(spec.clone()));
                        let (decided, refused) = counts.get();
                        counts.set((decided + 1, refused + u32::from(created.is_err())));
                        match created {
                            Ok(claim) => {
                                prop_assert!(
                                    explained.fits,
                                    "explain said no ({}) but create placed {:?}",
                                    explained.summary,
                                    claim.placements
                                );
                                prop_assert_eq!(
                                    spots(&claim.placements),
                                    spots(&explained.placements),
                                    "where: {:?}",
                                    spec
                                );
                                let said = (explained.start_unix_ms, explained.end_unix_ms);
                                let got = (claim.start_unix_ms, claim.end_unix_ms);
                                if said.0 > asked + 60_000 {
                                    // A start later than the question (at
                                    // least an hour off): the same instant.
                                    prop_assert_eq!(got, said, "window: {:?}", spec);
                                } else {
                                    // Now, as each call saw it.
                                    prop_assert!(got.0 >= said.0, "{:?} {:?}", got, said);
                                    let length =
                                        |(start, end): (i64, i64)| (end > 0).then_some(end - start);
                                    prop_assert_eq!(
                                        length(got),
                                        length(said),
                                        "length: {:?}",
                                        spec
                                    );
                                }
                                made.push(claim.id);
                            }
                            Err(status) => {
                                prop_assert!(
                                    !explained.fits,
                                    "explain said yes ({}) but create refused: {}",
                                    explained.summary,
                                    status.message()
                                );
                                prop_assert_eq!(
                                    status.code(),
                                    Code::ResourceExhausted,
                                    "{}",
                                    status.message()
                                );
                                prop_assert!(
                                    status.message().contains(&explained.summary),
                                    "create says {:?}, explain said {:?}",
                                    status.message(),
                                    explained.summary
                                );
                            }
                        }
                    }
                    Ok(())
                })();
                // Each case starts from empty books.
                for id in made {
                    let _ =
                        handle.block_on(api.claims.release_claim(v1::ReleaseClaimRequest { id }));
                }
                outcome
            })
            .unwrap_or_else(|e| panic!("{e}"));
        counts.get()
    })
    .await
    .unwrap();
    // The sequences reach both answers often.
    assert!(
        decided >= 24 && refused >= 4 && refused < decided,
        "{decided} decided, {refused} refused"
    );
    w.stop().await;
}

/// The wall clock in Unix ms.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
