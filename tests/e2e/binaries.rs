//! The real binaries: a `theia-manager` killed with SIGKILL restarts with
//! everything it acknowledged, and `theia-agent` serves it from a config file.

use crate::common::*;

#[test]
fn a_manager_killed_with_sigkill_keeps_every_acknowledged_claim() {
    let bin = bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let (manager, addr) = spawn_until(
        &bin.join("theia-manager"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_arg,
            "--insecure",
        ],
        "serving",
    );
    remember_process_token(&addr, &data);
    let agent_token = cli_token(&addr, "agent-dc-bin", "agent:dc-bin");

    let agent_config = dir.path().join("agent.yaml");
    std::fs::write(
        &agent_config,
        format!(
            "managers: [http://{addr}]\ndc: dc-bin\nlabels: {{region: eu}}\ndriver: static\ninventory:\n  compute.vcpu: 64\n  compute.memory: 256Gi\nstate_dir: {}\nreconnect_min: 100ms\ntoken: {agent_token}\n",
            dir.path().join("agent").display()
        ),
    )
    .unwrap();
    let (agent, _) = spawn_until(
        &bin.join("theia-agent"),
        &["--config", agent_config.to_str().unwrap()],
        "127.0.0.1",
    );

    let theia = bin.join("theia");
    let ok = |args: &[&str]| {
        let (ok, out, err) = run(&theia, args, &addr);
        assert!(ok, "theia {args:?} failed: {err}");
        out
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while !ok(&["dc", "list"]).contains("dc-bin") {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent never reported"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ok(&["tenant", "create", "acme", "--quota", "compute.vcpu=32"]);
    ok(&[
        "profile",
        "create",
        "big",
        "--resources",
        "compute.vcpu=8,compute.memory=32Gi",
    ]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            ok(&[
                "claim",
                "create",
                "--tenant",
                "acme",
                "--profile",
                "big",
                "--quiet",
            ])
            .trim()
            .to_owned(),
        );
    }

    manager.kill9();
    let (manager, addr2) = spawn_until(
        &bin.join("theia-manager"),
        &["--listen", &addr, "--data-dir", data_arg, "--insecure"],
        "serving",
    );
    assert_eq!(addr2, addr);
    let listed = ok(&["--output", "json", "claim", "list"]);
    let json: serde_json::Value =
        serde_json::from_str(&listed).expect("--output json prints JSON only");
    let text = json.to_string();
    for id in &ids {
        assert!(
            text.contains(id.as_str()),
            "claim {id} lost after kill -9: {listed}"
        );
    }
    let (ok_show, shown, _) = run(&theia, &["tenant", "show", "acme"], &addr);
    assert!(ok_show && shown.contains("acme"));

    assert!(
        agent.terminate().success(),
        "the agent stops cleanly on SIGTERM"
    );
    assert!(
        manager.terminate().success(),
        "the manager stops cleanly on SIGTERM"
    );
}

#[test]
fn the_cli_says_its_version_and_the_commit_it_was_built_from() {
    let out = std::process::Command::new(bin_dir().join("theia"))
        .arg("--version")
        .output()
        .expect("theia runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
        );
    assert_eq!(
        text.trim(),
        format!("theia {} (commit {head})", env!("CARGO_PKG_VERSION")),
        "built from this checkout's commit"
    );
}

#[test]
fn cargo_install_path_cli_installs_a_theia_that_runs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dest = tempfile::tempdir().unwrap();
    // The debug profile and the workspace's target directory: the same
    // package and lock file as a release install, without building twice.
    let mut command =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .args(["install", "--path", "cli", "--debug", "--locked", "--root"])
        .arg(dest.path())
        .arg("--target-dir")
        .arg(root.join("target"))
        .current_dir(root);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if injected_by_the_test_runner(&key) {
            command.env_remove(key.as_ref());
        }
    }
    let out = command.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theia = dest.path().join("bin/theia");
    let version = std::process::Command::new(&theia)
        .arg("--version")
        .output()
        .expect("the installed theia runs");
    let text = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.status.success() && text.starts_with(concat!("theia ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(text.contains("commit"), "{text}");
}
