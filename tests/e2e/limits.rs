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

    let idle: Vec<std::net::TcpStream> = (0..1100)
        .map(|i| {
            std::net::TcpStream::connect(&addr)
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();
    // Give the manager the moment it needs to accept them all.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let call = async {
        let channel = channel_to(&addr).await;
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
    };
    let answer = tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .expect("a real call answers despite the idle connections")
        .expect("healthy");
    assert_eq!(
        answer.into_inner().status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    drop(idle);
    assert!(manager.terminate().success(), "the manager stops cleanly");
}
