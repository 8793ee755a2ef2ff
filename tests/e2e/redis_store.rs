//! The Redis store, against a real redis-server on a free port: what a
//! manager acknowledged survives the manager and Redis restarting; Redis
//! shows nothing readable; a wrong or missing secret, a corrupted value and
//! a second writer are refused with one clear line; while Redis is down
//! writes answer UNAVAILABLE and nothing changes.

use theia::api::v1;
use tonic::Code;

use crate::common::*;

const SECRET: &str = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";
const OTHER_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A manager on `redis`, one agent `dc-hidden-north` (16 vCPU), a tenant
/// and a profile with names that must not be readable in Redis.
async fn world(redis: &TestRedis, dir: &std::path::Path) -> (TestManager, TestAgent, Clients) {
    init();
    let manager = TestManager::start_with(redis_config(&dir.join("m1"), redis, SECRET)).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-hidden-north",
        &[("region", "secretregion")],
        "compute.vcpu=16,compute.memory=64Gi",
        dir.join("agent"),
    );
    let mut api = Clients::new(manager.channel().await);
    eventually("the agent reports", || {
        let mut api = api.clone();
        async move {
            api.dc("dc-hidden-north")
                .await
                .filter(|d| !d.capacity.is_empty())
        }
    })
    .await;
    api.create_tenant("tenant-acmehidden", &[("compute.vcpu", "12")])
        .await;
    api.create_profile("profile-quiet", &[("compute.vcpu", "4")])
        .await;
    (manager, agent, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_manager_acknowledged_survives_it_and_redis_and_nothing_is_readable() {
    let mut redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (manager, agent, mut api) = world(&redis, dir.path()).await;
    let a = api
        .create_claim(spec("tenant-acmehidden", "profile-quiet", 1))
        .await
        .unwrap();
    let b = api
        .create_claim(spec("tenant-acmehidden", "profile-quiet", 2))
        .await
        .unwrap();
    api.claims
        .release_claim(v1::ReleaseClaimRequest { id: a.id.clone() })
        .await
        .unwrap();
    let before = api.settled_claims().await;
    // What memory shows may still be on its way to Redis: an acknowledged
    // write queued after it means it is there.
    api.create_profile("barrier", &[("compute.vcpu", "1")])
        .await;
    let status = api
        .cluster
        .get_cluster_status(v1::GetClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.store_backend, "redis");
    assert_eq!(status.store_location, redis.url());

    // A dump of Redis: no tenant, datacenter, label, profile or quantity.
    let dump = redis.files();
    assert!(
        dump.len() > 1000,
        "Redis holds the books: {} bytes",
        dump.len()
    );
    for secret in [
        "tenant-acmehidden",
        "dc-hidden-north",
        "secretregion",
        "profile-quiet",
        "compute.vcpu",
        "64Gi",
        &b.id,
    ] {
        assert!(
            !dump.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret:?} is readable in Redis"
        );
    }

    // Kill the manager and Redis; both come back with everything.
    manager.kill().await;
    redis.restart();
    let manager =
        TestManager::start_with(redis_config(&dir.path().join("m2"), &redis, SECRET)).await;
    let mut api = Clients::new(manager.channel().await);
    assert_eq!(
        claims_snapshot(&api.all_claims().await),
        claims_snapshot(&before),
        "a new manager on the restarted Redis has every acknowledged claim"
    );
    assert_eq!(
        api.cluster_id().await,
        status.cluster_id,
        "the cluster id lives in Redis"
    );
    agent.stop().await;
    manager.stop().await;
}

/// Runs the real `theia-manager` against `redis` with `extra` flags; returns
/// (success, stderr).
fn manager_binary(redis: &TestRedis, dir: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(bin_dir().join("theia-manager"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--insecure",
            "--redis",
            &redis.url(),
        ])
        .arg("--data-dir")
        .arg(dir)
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("THEIA_SECRET")
        .output()
        .expect("theia-manager runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `theia secret generate`, checked: 64 hex characters, new every time.
fn generated_secret() -> String {
    let run = || {
        let out = std::process::Command::new(bin_dir().join("theia"))
            .args(["secret", "generate"])
            .output()
            .expect("theia runs");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let (a, b) = (run(), run());
    assert!(
        a.len() == 64 && a.chars().all(|c| c.is_ascii_hexdigit()),
        "{a}"
    );
    assert_ne!(a, b, "a new secret each time");
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_secret_stops_the_manager_with_one_line_and_writes_nothing() {
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (manager, agent, _api) = world(&redis, dir.path()).await;
    agent.stop().await;
    manager.stop().await;
    let keys = redis.cli(&["DBSIZE"]);

    for wrong in [OTHER_SECRET.to_owned(), generated_secret()] {
        let (ok, err) = manager_binary(&redis, &dir.path().join("x"), &["--secret", &wrong]);
        assert!(!ok, "a wrong secret is refused");
        assert!(
            err.contains("the secret does not match this cluster"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(!err.contains(&wrong) && !err.contains(SECRET), "{err}");
    }

    let (ok, err) = manager_binary(&redis, &dir.path().join("y"), &[]);
    assert!(!ok, "no secret is refused");
    assert!(err.contains("needs its cluster secret"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let (ok, err) = manager_binary(&redis, &dir.path().join("z"), &["--secret", "abc"]);
    assert!(
        !ok && err.contains("64 hex characters") && !err.contains("abc\""),
        "{err}"
    );
    assert_eq!(redis.cli(&["DBSIZE"]), keys, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_value_is_reported_and_refused_never_a_crash() {
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (manager, agent, _api) = world(&redis, dir.path()).await;
    agent.stop().await;
    manager.stop().await;
    let key = redis
        .cli(&["SRANDMEMBER", "theia:objects"])
        .trim()
        .to_owned();
    assert!(key.starts_with("theia:o:"), "{key}");
    redis.cli(&["HSET", &key, "v", "not sealed at all"]);
    let (ok, err) = manager_binary(&redis, &dir.path().join("x"), &["--secret", SECRET]);
    assert!(!ok, "a corrupted store is refused");
    assert!(err.contains(&key) && err.contains("unreadable"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_down_writes_are_unavailable_and_change_nothing() {
    let mut redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let (manager, agent, mut api) = world(&redis, dir.path()).await;
    let kept = api
        .create_claim(spec("tenant-acmehidden", "profile-quiet", 1))
        .await
        .unwrap();
    let before = api.settled_claims().await;
    // What memory shows may still be on its way to Redis: an acknowledged
    // write queued after it means it is there.
    api.create_profile("barrier", &[("compute.vcpu", "1")])
        .await;

    redis.kill();
    let err = api
        .create_claim(spec("tenant-acmehidden", "profile-quiet", 1))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(err.message().contains("Redis at"), "{}", err.message());
    assert_eq!(
        claims_snapshot(&api.all_claims().await),
        claims_snapshot(&before),
        "reads are served from memory, and the refused claim is not there"
    );

    redis.restart();
    let again = eventually("the manager reconnects to Redis", || {
        let mut api = api.clone();
        async move {
            api.create_claim(spec("tenant-acmehidden", "profile-quiet", 1))
                .await
                .ok()
        }
    })
    .await;
    manager.kill().await;
    let manager =
        TestManager::start_with(redis_config(&dir.path().join("m2"), &redis, SECRET)).await;
    let mut api = Clients::new(manager.channel().await);
    let ids: Vec<String> = api.all_claims().await.into_iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&kept.id) && ids.contains(&again.id), "{ids:?}");
    agent.stop().await;
    manager.stop().await;
}
