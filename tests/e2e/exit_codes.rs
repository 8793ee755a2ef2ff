//! The CLI's exit status, as scripts rely on it: 1 refused, 2 usage,
//! 3 unreachable; each with one `error:` line.

use crate::common::*;

/// Runs theia with `token` (and no user token file): (exit code, stderr).
fn status_as(args: &[&str], manager: &str, token: Option<&str>) -> (i32, String) {
    let home = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(bin_dir().join("theia"));
    command
        .args(args)
        .env("THEIA_MANAGER", manager)
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("THEIA_TOKEN");
    if let Some(token) = token {
        command.env("THEIA_TOKEN", token);
    }
    let out = command.output().expect("theia runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().expect("an exit status"), stderr)
}

fn status(args: &[&str], manager: &str) -> (i32, String) {
    status_as(args, manager, None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_status_says_refused_usage_or_unreachable() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let url = manager.url();
    let token = manager.token.clone();
    let refused = tokio::task::spawn_blocking({
        let url = url.clone();
        move || status_as(&["tenant", "show", "nobody"], &url, Some(&token))
    });
    let (code, err) = refused.await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: not found: ") && err.trim().lines().count() == 1,
        "{err}"
    );
    // No token: refused, and told where a token goes.
    let (code, err) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || status(&["tenant", "list"], &url)
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("error: unauthenticated: ") && err.contains("THEIA_TOKEN"),
        "{err}"
    );
    // A token that is not one is a configuration error, and not echoed.
    let (code, err) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || status_as(&["tenant", "list"], &url, Some("hunter2"))
    })
    .await
    .unwrap();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("token") && !err.contains("hunter2"), "{err}");

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
