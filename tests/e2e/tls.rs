//! TLS on the API: the manager serves TLS with its certificate or refuses
//! to start without one unless told `--insecure`; the CLI, agents and
//! grpcurl reach it over `https://` trusting a named CA; plaintext to a TLS
//! port and an untrusted certificate fail with errors that say what to do.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Runs `theia` against `manager`, trusting `ca`, as its admin: (exit
/// code, stdout, stderr).
fn theia(manager: &str, ca: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(bin_dir().join("theia"));
    command
        .args(args)
        .env("THEIA_MANAGER", manager)
        .env("THEIA_TOKEN", admin_token(manager))
        .env_remove("THEIA_CA");
    if let Some(ca) = ca {
        command.arg("--ca").arg(ca);
    }
    let out = command.output().expect("theia runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `path` (a log file being written) contains `marker`.
fn wait_for_line(path: &Path, marker: &str) -> String {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(marker) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never said {marker:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Waits until `theia dc list` at `url` (trusting `ca`) shows `dc` alive;
/// fails with the agent's log after [`PATIENCE`].
fn wait_alive(url: &str, ca: &Path, dc: &str, agent_log: &Path) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (code, out, err) = theia(url, Some(ca), &["dc", "list"]);
        if code == 0
            && out
                .lines()
                .any(|l| l.starts_with(dc) && l.contains("alive"))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{dc} never connected: {out}{err}\n{}",
            std::fs::read_to_string(agent_log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Starts `program args` with its output in `log`.
fn spawn_logged(program: &str, args: &[&str], log: &Path) -> Child {
    let file = std::fs::File::create(log).unwrap();
    Child(
        Command::new(bin_dir().join(program))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("THEIA_CA")
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("starts"),
    )
}

/// Starts a static-driver agent for `dc` (4 vCPU) on `manager`, trusting
/// `ca`, with its state and log under `dir`, and a token for `dc` its
/// admin made.
fn spawn_agent(manager: &str, ca: Option<&Path>, dc: &str, dir: &Path, log: &Path) -> Child {
    let role = format!("agent:{dc}");
    let (code, token, err) = theia(
        manager,
        ca,
        &[
            "token",
            "create",
            "--subject",
            dc,
            "--role",
            &role,
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let token_file = dir.join(format!("{dc}.token"));
    std::fs::write(&token_file, token.trim()).unwrap();
    let state = dir.join(format!("agent-{dc}"));
    let mut args = vec![
        "--managers",
        manager,
        "--dc",
        dc,
        "--driver",
        "static",
        "--inventory",
        "compute.vcpu=4",
        "--state-dir",
        state.to_str().unwrap(),
        "--token-file",
        token_file.to_str().unwrap(),
    ];
    if let Some(ca) = ca {
        args.extend(["--ca", ca.to_str().unwrap()]);
    }
    spawn_logged("theia-agent", &args, log)
}

#[test]
fn without_a_certificate_the_manager_refuses_to_start_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(bin_dir().join("theia-manager"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("tls_cert is not set") && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(!data.exists(), "nothing was written");

    let pki = TestPki::new();
    let half = Command::new(bin_dir().join("theia-manager"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.cert)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!half.status.success());
    assert!(
        String::from_utf8_lossy(&half.stderr).contains("needs tls_key"),
        "{}",
        String::from_utf8_lossy(&half.stderr)
    );
    let swapped = Command::new(bin_dir().join("theia-manager"))
        .args(["--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&pki.key)
        .arg("--tls-key")
        .arg(&pki.key)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!swapped.status.success());
    let stderr = String::from_utf8_lossy(&swapped.stderr);
    assert!(
        stderr.contains("tls_cert:") && stderr.contains("not a PEM file"),
        "{stderr}"
    );
    assert!(!data.exists(), "nothing was written");
}

#[test]
fn clients_agents_and_grpcurl_reach_a_tls_manager_through_the_named_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::new();
    let addr = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("manager.log");
    let data = dir.path().join("data");
    let manager = spawn_logged(
        "theia-manager",
        &[
            "--listen",
            &addr,
            "--data-dir",
            data.to_str().unwrap(),
            "--tls-cert",
            pki.cert.to_str().unwrap(),
            "--tls-key",
            pki.key.to_str().unwrap(),
            "--heartbeat-interval",
            "100ms",
        ],
        &log,
    );
    let text = wait_for_line(&log, "serving");
    assert!(text.contains(&format!("url=https://{addr}")), "{text}");
    remember_process_token(&addr, &data);
    let url = format!("https://{addr}");

    let (code, _, err) = theia(&url, Some(&pki.ca), &["dc", "list"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = theia(&url, None, &["dc", "list"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("certificate is not trusted") && err.contains("--ca"),
        "{err}"
    );
    let (code, _, err) = theia(&format!("http://{addr}"), None, &["dc", "list"]);
    assert_eq!(code, 3, "plaintext to a TLS port is unreachable: {err}");
    assert!(err.contains(&format!("use https://{addr}")), "{err}");

    let agent_log = dir.path().join("agent.log");
    let agent = spawn_agent(&url, Some(&pki.ca), "dc-tls", dir.path(), &agent_log);
    wait_alive(&url, &pki.ca, "dc-tls", &agent_log);

    let out = Command::new(grpcurl())
        .arg("-cacert")
        .arg(&pki.ca)
        .args([&addr, "list"])
        .output()
        .expect("grpcurl runs");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains("theia.v1.ClaimService"),
        "reflection over TLS: {listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(agent.terminate().success());
    assert!(manager.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("insecure"), "nothing to warn about: {text}");
}

#[test]
fn insecure_on_the_network_is_warned_about_at_start_and_for_every_agent() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log = dir.path().join("manager.log");
    let manager = spawn_logged(
        "theia-manager",
        &[
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--insecure",
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ],
        &log,
    );
    let text = wait_for_line(&log, "serving");
    assert!(text.contains("serving plaintext (insecure)"), "{text}");
    remember_process_token(&format!("127.0.0.1:{port}"), &dir.path().join("data"));
    let agent = spawn_agent(
        &format!("http://127.0.0.1:{port}"),
        None,
        "dc-plain",
        dir.path(),
        &dir.path().join("agent.log"),
    );
    let text = wait_for_line(&log, "agent connected over plaintext");
    assert!(text.contains("datacenter=dc-plain"), "{text}");
    assert!(agent.terminate().success());
    assert!(manager.terminate().success());
}

#[test]
fn certificates_from_theia_cert_init_give_tls_and_let_an_agent_in_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let out = Command::new(bin_dir().join("theia"))
        .args(["cert", "init", "--dir"])
        .arg(&pki)
        .args(["--servers", "127.0.0.1,localhost", "--agents", "dc-cert"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("manager.log");
    let data = dir.path().join("data");
    let file = |name: &str| pki.join(name).to_str().unwrap().to_owned();
    let manager = spawn_logged(
        "theia-manager",
        &[
            "--listen",
            &addr,
            "--data-dir",
            data.to_str().unwrap(),
            "--tls-cert",
            &file("server.pem"),
            "--tls-key",
            &file("server.key"),
            "--client-ca",
            &file("ca.pem"),
            "--heartbeat-interval",
            "100ms",
        ],
        &log,
    );
    wait_for_line(&log, "serving");
    remember_process_token(&addr, &data);
    let url = format!("https://{addr}");
    let ca = pki.join("ca.pem");
    let agent_log = dir.path().join("agent.log");
    let agent = spawn_logged(
        "theia-agent",
        &[
            "--managers",
            &url,
            "--dc",
            "dc-cert",
            "--driver",
            "static",
            "--inventory",
            "compute.vcpu=4",
            "--state-dir",
            dir.path().join("agent").to_str().unwrap(),
            "--ca",
            ca.to_str().unwrap(),
            "--client-cert",
            &file("agent-dc-cert.pem"),
            "--client-key",
            &file("agent-dc-cert.key"),
        ],
        &agent_log,
    );
    wait_alive(&url, &ca, "dc-cert", &agent_log);
    assert!(agent.terminate().success());
    assert!(manager.terminate().success());
}
