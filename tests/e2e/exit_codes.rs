//! The CLI's exit status, as scripts rely on it: 1 refused, 2 usage,
//! 3 unreachable; each with one `error:` line.

use crate::common::*;

fn status(args: &[&str], manager: &str) -> (i32, String) {
    let out = std::process::Command::new(bin_dir().join("theia"))
        .args(args)
        .env("THEIA_MANAGER", manager)
        .output()
        .expect("theia runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().expect("an exit status"), stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_says_refused_usage_or_unreachable() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let url = manager.url();
    let refused = tokio::task::spawn_blocking(move || status(&["tenant", "show", "nobody"], &url));
    let (code, err) = refused.await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.trim().lines().count() == 1,
        "{err}"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (code, err) = status(&["dc", "list"], &format!("http://{closed}"));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot reach the manager"), "{err}");

    let (code, err) = status(&["claim", "create", "--bogus"], "http://127.0.0.1:1");
    assert_eq!(code, 2, "{err}");
    let (code, _) = status(&["completion", "bash"], "http://127.0.0.1:1");
    assert_eq!(code, 0);
    manager.stop().await;
}
