//! A manager that strangers cannot starve: connections that never speak do
//! not use up its descriptors, and a real call still gets through.

use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_idle_connections_under_a_1024_descriptor_limit_do_not_lock_callers_out() {
    init();
    // This test holds 1,100 sockets itself.
    let ours = rlimit::increase_nofile_limit(4096).expect("raise our descriptor limit");
    assert!(
        ours >= 1200,
        "the test needs 1,200 descriptors; the hard limit allows {ours}"
    );
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let manager = bin_dir().join("theia-manager");
    let mut command = std::process::Command::new("bash");
    command.arg("-c").arg(format!(
        "ulimit -n 1024 && exec {} --listen {addr} --insecure --data-dir {}",
        manager.display(),
        dir.path().join("data").display()
    ));
    let (manager, _) = spawn_command_until(command, "serving");
    remember_process_token(&addr, &dir.path().join("data"));

    let idle: Vec<std::net::TcpStream> = (0..1100)
        .map(|i| {
            std::net::TcpStream::connect(&addr)
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();
    // Give the manager the moment it needs to accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // An authenticated call, token checked and all, still answers at once.
    let channel = tokio::time::timeout(Duration::from_secs(3), channel_to(&addr))
        .await
        .expect("a new connection is accepted despite the idle ones");
    let call = async {
        theia::api::v1::access_service_client::AccessServiceClient::new(channel)
            .who_am_i(theia::api::v1::WhoAmIRequest {})
            .await
    };
    let answer = tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .expect("a real call answers within a second despite the idle connections")
        .expect("the admin token is taken");
    assert_eq!(answer.into_inner().token.unwrap().subject, "admin");
    drop(idle);
    assert!(manager.terminate().success(), "the manager stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_large_lists_do_not_make_a_live_datacenter_suspect() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        theia_manager::ManagerConfig::for_dir(dir.path().join("m"), "127.0.0.1:0".parse().unwrap());
    // Heartbeats and reports every 50 ms; suspect after 60 missed beats:
    // room for a 2-core machine running the whole suite at once, and still
    // far below the 11 s stall that lists once caused.
    config.heartbeat_interval = Duration::from_millis(50);
    config.report_interval = Duration::from_millis(50);
    config.liveness.suspect_after = Duration::from_secs(3);
    config.liveness.down_after = Duration::from_secs(10);
    // 3,000 claims from one token in a hurry: no rate limit.
    config.rate_limit = None;
    let manager = TestManager::start_with(config).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-live",
        &[],
        "compute.vcpu=100000",
        dir.path().join("agent"),
    );
    let api = Clients::new(manager.channel().await);
    api.wait_liveness("dc-live", theia::api::v1::Liveness::Alive)
        .await;
    let mut admin = api.clone();
    admin.create_tenant("acme", &[]).await;
    admin.create_profile("one", &[("compute.vcpu", "1")]).await;
    // 3,000 claims: every full page of a list is 1,000 of them.
    let mut makers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let mut api = api.clone();
        makers.spawn(async move {
            for _ in 0..188 {
                api.create_claim(spec("acme", "one", 1))
                    .await
                    .expect("placed");
            }
        });
    }
    while makers.join_next().await.is_some() {}

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let mut api = api.clone();
        let stop = stop.clone();
        readers.spawn(async move {
            let mut pages = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let page = api
                    .claims
                    .list_claims(theia::api::v1::ListClaimsRequest {
                        page_size: 1000,
                        ..Default::default()
                    })
                    .await
                    .expect("listed")
                    .into_inner();
                assert_eq!(page.claims.len(), 1000);
                pages += 1;
            }
            pages
        });
    }
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        let mut api = api.clone();
        let dc = api.dc("dc-live").await.expect("known");
        seen.push(dc.liveness);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut pages = 0;
    while let Some(done) = readers.join_next().await {
        pages += done.expect("reader");
    }
    assert!(pages >= 16, "the lists really ran: {pages} pages");
    let alive = theia::api::v1::Liveness::Alive as i32;
    assert!(
        seen.iter().all(|l| *l == alive),
        "dc-live stayed alive under {pages} large lists: {seen:?}"
    );
    agent.stop().await;
    manager.stop().await;
}
