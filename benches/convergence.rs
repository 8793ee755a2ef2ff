//! Convergence between managers: how long after one manager acknowledged a
//! write the others show it. `cargo bench --bench convergence`; knobs as
//! environment variables (see BENCHMARKS.md). Not a test: it measures.
//!
//! A redis-server (append-only file synced on every write) and
//! `BENCH_MANAGERS` managers run in this process. One client writes
//! `BENCH_RATE` profiles per second to the first manager, each write sent
//! on its own schedule so that a slow answer does not slow the pace. For
//! every other manager a watcher asks, over gRPC, for the oldest write it
//! has not seen yet, again and again; the time from a write's
//! acknowledgement to the first answer that shows it is its lag there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use theia::api::auth::{Bearer, authed};
use theia::api::v1;
use theia_manager::{Manager, ManagerConfig, Secret};
use tonic::transport::Endpoint;

mod support;
use support::{knob, start_redis};

/// When each write was acknowledged, by index.
type Acks = Arc<Mutex<BTreeMap<u64, Instant>>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn profile(n: u64) -> v1::CreateProfileRequest {
    v1::CreateProfileRequest {
        profile: Some(v1::Profile {
            name: format!("p-{n}"),
            resources: [("compute.vcpu".to_owned(), "1".to_owned())].into(),
            ..Default::default()
        }),
    }
}

/// Follows one manager: for each write in order, asks until it shows, and
/// returns every lag measured.
async fn watch(
    url: String,
    bearer: Bearer,
    acks: Acks,
    total: u64,
    give_up: Instant,
) -> Vec<Duration> {
    let channel = Endpoint::from_shared(url)
        .expect("url")
        .connect()
        .await
        .expect("manager answers");
    let channel = authed(channel, bearer);
    let mut client = v1::profile_service_client::ProfileServiceClient::new(channel);
    let mut lags = Vec::with_capacity(total as usize);
    let mut next = 0;
    while next < total && Instant::now() < give_up {
        let acked = acks.lock().expect("acks").get(&next).copied();
        let Some(acked) = acked else {
            // Not acknowledged yet: nothing to look for.
            tokio::time::sleep(Duration::from_micros(200)).await;
            continue;
        };
        let shown = client
            .get_profile(v1::GetProfileRequest {
                name: format!("p-{next}"),
            })
            .await
            .is_ok();
        if shown {
            lags.push(Instant::now().saturating_duration_since(acked));
            next += 1;
        }
    }
    lags
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let managers = knob("BENCH_MANAGERS", 3).max(2);
    let rate = knob("BENCH_RATE", 1000).max(1);
    let secs = knob("BENCH_SECS", 5).max(1);
    let dir = tempfile::tempdir()?;
    let (_redis, redis_url) = start_redis(dir.path())?;
    let secret = Secret::generate();

    let mut urls = Vec::new();
    let mut stops = Vec::new();
    for n in 0..managers {
        let mut config =
            ManagerConfig::for_dir(dir.path().join(format!("m{n}")), "127.0.0.1:0".parse()?);
        config.redis = Some(redis_url.clone());
        config.secret = Some(secret.clone());
        // The watchers ask as fast as they can; no limit per token.
        config.rate_limit = None;
        config.bootstrap_token_file = Some(dir.path().join("admin.token"));
        let manager = Manager::bind(config).await?;
        urls.push(format!("http://{}", manager.local_addr()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(manager.serve(async move {
            let _ = stopped.await;
        }));
        stops.push((stop, served));
    }

    let admin = theia::api::auth::read_token_file(&dir.path().join("admin.token"))
        .map_err(anyhow::Error::msg)?;
    let bearer = Bearer::new(Some(&admin)).map_err(anyhow::Error::msg)?;
    let total = rate * secs;
    let acks: Acks = Arc::default();
    let give_up = Instant::now() + Duration::from_secs(secs + 30);
    let watchers: Vec<_> = urls[1..]
        .iter()
        .map(|url| {
            tokio::spawn(watch(
                url.clone(),
                bearer.clone(),
                acks.clone(),
                total,
                give_up,
            ))
        })
        .collect();

    let channel = authed(
        Endpoint::from_shared(urls[0].clone())?.connect().await?,
        bearer.clone(),
    );
    let writer = v1::profile_service_client::ProfileServiceClient::new(channel);
    let start = Instant::now();
    let mut writes = tokio::task::JoinSet::new();
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let mut writer = writer.clone();
        let acks = acks.clone();
        writes.spawn(async move {
            writer.create_profile(profile(n)).await.expect("write");
            acks.lock().expect("acks").insert(n, Instant::now());
        });
    }
    while writes.join_next().await.is_some() {}
    let achieved = total as f64 / start.elapsed().as_secs_f64();

    let mut lags = Vec::new();
    for w in watchers {
        lags.extend(w.await?);
    }
    lags.sort();
    let seen = lags.len() as u64;
    println!(
        "managers={managers} rate={rate}/s (achieved {achieved:.0}/s) secs={secs}: \
         {seen} of {} (write, peer) pairs seen; lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        total * (managers - 1),
        percentile(&lags, 0.50).as_secs_f64() * 1e3,
        percentile(&lags, 0.99).as_secs_f64() * 1e3,
        lags.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    for (stop, served) in stops {
        let _ = stop.send(());
        served.await??;
    }
    Ok(())
}
