//! Durable claims per second against a real manager on the embedded store,
//! beside the empty-RPC rate (`grpc.health.v1.Health/Check`) of the same
//! server in the same run. `cargo bench --bench claims`; knobs as
//! environment variables (see BENCHMARKS.md). Not a test: it asserts nothing
//! about speed, it measures it.
//!
//! `BENCH_STORE=redis` runs the manager on a redis-server the bench starts
//! (append-only file synced on every write) instead of the embedded store.
//!
//! The manager, its agents (static driver) and the client share this
//! process and the machine's cores; the client is a few tonic channels, each
//! call one unary RPC over real loopback sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use theia::api::auth::{Authed, Bearer, authed};
use theia::api::v1;
use theia::model::Resources;
use theia_agent::{AgentConfig, DriverConfig};
use theia_manager::{Manager, ManagerConfig};
use tonic::transport::Endpoint;

mod support;
use support::{knob, start_redis};

/// Runs `call` from `concurrency` tasks for `secs`; returns calls per second.
async fn rate<F, Fut>(concurrency: u64, secs: u64, call: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let call = Arc::new(call);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let call = call.clone();
        let done = done.clone();
        tasks.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                call(worker * 1_000_000 + n).await;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dcs = knob("BENCH_DCS", 10);
    let concurrency = knob("BENCH_CONCURRENCY", 8);
    let secs = knob("BENCH_SECS", 5);
    let dir = tempfile::tempdir()?;

    let mut config = ManagerConfig::for_dir(dir.path().join("manager"), "127.0.0.1:0".parse()?);
    // One client token makes every call: the limit per token would be the
    // bottleneck measured.
    config.rate_limit = None;
    let store = std::env::var("BENCH_STORE").unwrap_or_else(|_| "embedded".to_owned());
    let _redis = match store.as_str() {
        "embedded" => None,
        "redis" => {
            let (redis, url) = start_redis(dir.path())?;
            config.redis = Some(url);
            config.secret = Some(theia_manager::Secret::generate());
            Some(redis)
        }
        other => anyhow::bail!("BENCH_STORE={other}: use embedded or redis"),
    };
    let manager = Manager::bind(config).await?;
    let url = format!("http://{}", manager.local_addr());
    let admin = theia::api::auth::read_token_file(&manager.bootstrap_token_path())
        .map_err(anyhow::Error::msg)?;
    let mut agent_tokens = Vec::new();
    for i in 0..dcs {
        let role = theia::access::Role::Agent(format!("dc-{i:04}"));
        agent_tokens.push(
            manager
                .issue_token("bench agent", [role].into(), "bench")
                .await?,
        );
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(manager.serve(async move {
        let _ = stopped.await;
    }));
    let mut agents = Vec::new();
    for i in 0..dcs {
        let config = AgentConfig {
            managers: vec![url.clone()],
            dc: format!("dc-{i:04}"),
            labels: [("region".to_owned(), "eu".to_owned())].into(),
            driver: DriverConfig::Static {
                inventory: Resources::parse_list(
                    "inventory",
                    "compute.vcpu=1000000,compute.memory=1Pi",
                )?,
            },
            state_dir: dir.path().join(format!("agent-{i}")),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(1),
            ca: None,
            bearer: Bearer::new(Some(&agent_tokens[i as usize])).map_err(anyhow::Error::msg)?,
            client_identity: None,
        };
        agents.push(tokio::spawn(theia_agent::run(
            config,
            std::future::pending::<()>(),
        )));
    }

    let channels: Vec<Authed> = {
        let mut out = Vec::new();
        let bearer = Bearer::new(Some(&admin)).map_err(anyhow::Error::msg)?;
        for _ in 0..4 {
            out.push(authed(
                Endpoint::from_shared(url.clone())?.connect().await?,
                bearer.clone(),
            ));
        }
        out
    };
    let infra =
        v1::infrastructure_service_client::InfrastructureServiceClient::new(channels[0].clone());
    loop {
        let listed = infra
            .clone()
            .list_datacenters(v1::ListDatacentersRequest::default())
            .await?
            .into_inner()
            .datacenters;
        if listed.iter().filter(|d| !d.capacity.is_empty()).count() as u64 == dcs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    v1::tenant_service_client::TenantServiceClient::new(channels[0].clone())
        .create_tenant(v1::CreateTenantRequest {
            tenant: Some(v1::Tenant {
                name: "bench".into(),
                ..Default::default()
            }),
        })
        .await?;
    v1::profile_service_client::ProfileServiceClient::new(channels[0].clone())
        .create_profile(v1::CreateProfileRequest {
            profile: Some(v1::Profile {
                name: "tiny".into(),
                resources: [("compute.vcpu".to_owned(), "1".to_owned())].into(),
                ..Default::default()
            }),
        })
        .await?;

    let health_channels = channels.clone();
    let empty = rate(concurrency, secs, move |n| {
        let channel = health_channels[(n % 4) as usize].clone();
        async move {
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
            client
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .expect("health check");
        }
    })
    .await;
    let claim_channels = channels.clone();
    let claims = rate(concurrency, secs, move |n| {
        let channel = claim_channels[(n % 4) as usize].clone();
        async move {
            let mut client = v1::claim_service_client::ClaimServiceClient::new(channel);
            client
                .create_claim(v1::CreateClaimRequest {
                    spec: Some(v1::ClaimSpec {
                        tenant: "bench".into(),
                        profile: "tiny".into(),
                        count: 1,
                        ..Default::default()
                    }),
                })
                .await
                .expect("claim placed");
        }
    })
    .await;
    println!(
        "store={store} datacenters={dcs} concurrency={concurrency} secs={secs}: empty RPC {empty:.0}/s, durable claims {claims:.0}/s, ratio {:.2}",
        claims / empty
    );

    for a in agents {
        a.abort();
    }
    let _ = stop.send(());
    served.await??;
    Ok(())
}
