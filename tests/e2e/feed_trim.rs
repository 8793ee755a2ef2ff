//! A manager that fell behind the trimmed change feed reloads every
//! register instead of silently missing what it did not read.

use std::collections::BTreeSet;

use crate::common::*;

const SECRET: &str = "7f1d7f1d7f1d7f1d7f1d7f1d7f1d7f1d7f1d7f1d7f1d7f1d7f1d7f1d7f1d7f1d";

fn signal(child: &Child, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{signal}");
}

/// Waits until the manager behind `api` lists claim `id`.
async fn shows(api: &Clients, id: &str, what: &str) {
    eventually(what, || {
        let mut api = api.clone();
        async move {
            let all = api.all_claims().await;
            all.iter().any(|c| c.id == id).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_behind_the_trimmed_feed_reloads_and_misses_nothing() {
    init();
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let a = TestManager::start_with(redis_config(&dir.path().join("a"), &redis, SECRET)).await;
    let agent = TestAgent::start(
        vec![a.url()],
        "dc-x",
        &[],
        "compute.vcpu=64,compute.memory=256Gi",
        dir.path().join("agent"),
    );
    let mut on_a = Clients::new(a.channel().await);
    on_a.wait_liveness("dc-x", theia::api::v1::Liveness::Alive)
        .await;
    on_a.create_tenant("acme", &[]).await;
    on_a.create_profile("one", &[("compute.vcpu", "1")]).await;

    // The other manager is the real binary, in a process of its own, so
    // that it can be frozen (SIGSTOP) while it tails the feed.
    let b_addr = format!("127.0.0.1:{}", free_port());
    let b_dir = dir.path().join("b");
    let (b, _) = spawn_until(
        &bin_dir().join("theia-manager"),
        &[
            "--listen",
            &b_addr,
            "--redis",
            &redis.url(),
            "--secret",
            SECRET,
            "--data-dir",
            b_dir.to_str().unwrap(),
            "--insecure",
        ],
        "serving",
    );
    // One cluster, one set of tokens: a's admin token works on b.
    let on_b = Clients::new(with_token(plain_channel(&b_addr).await, &a.token));
    let first = on_a.create_claim(spec("acme", "one", 1)).await.unwrap();
    shows(&on_b, &first.id, "b follows the feed").await;

    signal(&b, "STOP");
    let mut made = BTreeSet::from([first.id]);
    for _ in 0..20 {
        made.insert(on_a.create_claim(spec("acme", "one", 1)).await.unwrap().id);
    }
    // Trim all but the newest entry: where b stood in the feed is gone.
    assert_eq!(
        redis
            .cli(&["XTRIM", "theia:feed", "MAXLEN", "1"])
            .trim()
            .parse::<u64>()
            .map(|n| n > 0),
        Ok(true),
        "entries b had not read were trimmed"
    );
    signal(&b, "CONT");

    let seen = eventually("b shows every claim a made", || {
        let mut on_b = on_b.clone();
        let made = made.clone();
        async move {
            let ids: BTreeSet<String> = on_b.all_claims().await.into_iter().map(|c| c.id).collect();
            made.is_subset(&ids).then_some(ids)
        }
    })
    .await;
    assert_eq!(seen, made, "nothing more either");
    // And the feed flows as before once b has reloaded.
    let after = on_a.create_claim(spec("acme", "one", 1)).await.unwrap();
    shows(&on_b, &after.id, "b follows the feed again").await;

    assert!(b.terminate().success(), "b stops cleanly");
    agent.stop().await;
    a.stop().await;
}
