//! Arbitrary bytes and arbitrary protobuf-shaped messages to every RPC, as
//! an admin (and as an agent for the stream): nothing panics, nothing
//! answers INTERNAL or UNKNOWN, the manager keeps serving, and no garbage
//! is stored.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use theia::access::RULES;
use theia::api::v1;
use tonic::Code;

use crate::common::*;

/// One protobuf field with a random number, wire type and payload.
fn field() -> impl Strategy<Value = Vec<u8>> {
    let varint = |mut v: u64, out: &mut Vec<u8>| {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    };
    (
        1u64..24,
        prop_oneof![Just(0u8), Just(1), Just(2), Just(5)],
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 0..48),
    )
        .prop_map(move |(number, wire, value, bytes)| {
            let mut out = Vec::new();
            varint((number << 3) | u64::from(wire), &mut out);
            match wire {
                0 => varint(value, &mut out),
                1 => out.extend(value.to_le_bytes()),
                5 => out.extend((value as u32).to_le_bytes()),
                _ => {
                    varint(bytes.len() as u64, &mut out);
                    out.extend(bytes);
                }
            }
            out
        })
}

/// Raw bytes, or a run of well-formed fields (nested one level at times).
fn body() -> impl Strategy<Value = Vec<u8>> {
    let message = || prop::collection::vec(field(), 0..8).prop_map(|f| f.concat());
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        message(),
        (1u8..8, message()).prop_map(|(n, inner)| {
            let mut out = vec![(n << 3) | 2];
            out.push(inner.len().min(127) as u8);
            out.extend(inner.into_iter().take(127));
            out
        }),
    ]
}

/// What the manager holds that garbage must not change.
async fn stored(api: &mut Clients, access: &mut AccessClient) -> String {
    let tenants = api
        .tenants
        .list_tenants(v1::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let profiles = api
        .profiles
        .list_profiles(v1::ListProfilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let dcs = api
        .infra
        .list_datacenters(v1::ListDatacentersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let claims = api.all_claims().await;
    let tokens = access
        .list_tokens(v1::ListTokensRequest::default())
        .await
        .unwrap()
        .into_inner();
    format!(
        "{:?}\n{:?}\n{:?}\n{}\n{:?}",
        tenants.tenants.iter().map(|t| &t.name).collect::<Vec<_>>(),
        profiles
            .profiles
            .iter()
            .map(|p| &p.name)
            .collect::<Vec<_>>(),
        dcs.datacenters.iter().map(|d| &d.id).collect::<Vec<_>>(),
        claims.len(),
        tokens.tokens.iter().map(|t| &t.id).collect::<Vec<_>>(),
    )
}

type AccessClient = v1::access_service_client::AccessServiceClient<theia::api::auth::Authed>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_to_every_rpc_never_panics_never_answers_internal_and_stores_nothing() {
    init();
    let dir = tempfile::tempdir().unwrap();
    // Over a thousand calls from one admin in well under a second: no rate limit.
    let manager = TestManager::start_with(unlimited_config(dir.path())).await;
    let admin = manager.channel().await;
    let agent = manager.agent_channel("dc-f").await;
    let mut api = Clients::new(admin.clone());
    let mut access = AccessClient::new(admin.clone());
    let before = stored(&mut api, &mut access).await;

    let handle = tokio::runtime::Handle::current();
    let calls = tokio::task::spawn_blocking(move || {
        let calls = std::cell::Cell::new(0usize);
        for (path, _) in RULES {
            let channel = if path.contains("AgentService") {
                agent.clone()
            } else {
                admin.clone()
            };
            // A runner per method: each counts its own cases.
            let mut runner = TestRunner::new(Config {
                cases: 48,
                failure_persistence: None,
                ..Config::default()
            });
            runner
                .run(&body(), |bytes| {
                    calls.set(calls.get() + 1);
                    let answer = handle.block_on(raw_unary(channel.clone(), path, bytes.clone()));
                    if let Err(status) = answer {
                        prop_assert!(
                            !matches!(status.code(), Code::Internal | Code::Unknown),
                            "{path} {bytes:?}: {status:?}"
                        );
                    }
                    Ok(())
                })
                .unwrap_or_else(|e| panic!("{e}"));
        }
        calls.get()
    })
    .await
    .unwrap();
    assert!(calls >= RULES.len() * 48, "{calls}");

    let health = tonic_health::pb::health_client::HealthClient::new(manager.plain_channel().await)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("still serving");
    assert_eq!(
        health.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    assert_eq!(
        stored(&mut api, &mut access).await,
        before,
        "garbage stored nothing"
    );
    manager.stop().await;
}
