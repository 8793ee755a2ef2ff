//! The README's own commands, read out of the README (not copied here) and
//! run as written in this checkout: the first command brings up `theia dev`,
//! the tour's build line yields the three binaries, and "Running it for real"
//! starts a manager and an agent from the example configurations.
//!
//! They reuse the build the test command already made, so they cost seconds.
//! Where a command would take a fixed port or a system directory, the test
//! moves it with `THEIA_<KEY>` variables, which the configuration rules rank
//! above the files, and leaves the command itself untouched.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const README: &str = include_str!("../../README.md");

/// The text under `## {heading}`, up to the next `## ` heading.
fn section(heading: &str) -> &'static str {
    let start = README
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README has a section {heading:?}"));
    let body = &README[start + 1..];
    let end = body[3..].find("\n## ").map_or(body.len(), |i| i + 3);
    &body[..end]
}

/// The commands in a section's ```sh blocks, without their comments.
fn shell_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("```") {
            inside = line == "```sh" && !inside;
            continue;
        }
        if inside {
            let command = line.split(" # ").next().unwrap_or(line).trim();
            if !command.is_empty() && !command.starts_with('#') {
                lines.push(command.to_owned());
            }
        }
    }
    lines
}

/// The inline code spans of a section that start with `program `.
fn inline_commands(text: &str, program: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with(&format!("{program} ")))
        .map(str::to_owned)
        .collect()
}

/// The checkout the README describes.
fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `bash -c line` in the checkout, as a newcomer types it, with a clean home
/// (no `~/.config/theia` of whoever runs the tests) that still finds the
/// toolchain and the crates already downloaded.
fn shell(line: &str, home: &Path) -> Command {
    let real_home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let cargo_home = std::env::var_os("CARGO_HOME").map_or(real_home.join(".cargo"), PathBuf::from);
    let rustup_home =
        std::env::var_os("RUSTUP_HOME").map_or(real_home.join(".rustup"), PathBuf::from);
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(line)
        .current_dir(checkout())
        .env("HOME", home)
        .env("CARGO_HOME", cargo_home)
        .env("RUSTUP_HOME", rustup_home)
        .env_remove("XDG_CONFIG_HOME");
    for key in [
        "THEIA_LISTEN",
        "THEIA_DATA_DIR",
        "THEIA_MANAGERS",
        "THEIA_STATE_DIR",
        "THEIA_TOKEN",
    ] {
        command.env_remove(key);
    }
    // What cargo and nextest set for this test process is not part of a
    // newcomer's shell, and some of it (CARGO_MANIFEST_DIR) is tracked by
    // build scripts: left in, `cargo run` would rebuild half the tree.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if injected_by_the_test_runner(&key) {
            command.env_remove(key.as_ref());
        }
    }
    command
}

/// Waits until `theia dc list` against `addr` names `dc`.
fn wait_for_dc(addr: &str, dc: &str) {
    wait_for_dc_at(&format!("http://{addr}"), None, dc);
}

/// Waits until `theia dc list` against `url` (trusting `ca`, with the
/// manager's admin token) shows `dc` alive: its agent connected.
fn wait_for_dc_at(addr: &str, ca: Option<&std::path::Path>, dc: &str) {
    let theia = bin_dir().join("theia");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let mut command = std::process::Command::new(&theia);
        command
            .args(["dc", "list"])
            .env("THEIA_MANAGER", addr)
            .env("THEIA_TOKEN", admin_token(addr));
        if let Some(ca) = ca {
            command.env("THEIA_CA", ca);
        }
        let out = command.output().expect("theia runs");
        let (ok, out, err) = (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        if ok
            && out
                .lines()
                .any(|l| l.starts_with(dc) && l.contains("alive"))
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "datacenter {dc} never showed up at {addr}: {out}{err}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn the_first_command_brings_up_theia_dev() {
    let lines = shell_lines(section("Two commands"));
    let first = lines.first().expect("the section has commands");
    assert!(
        first.starts_with("cargo run ") && first.ends_with(" dev"),
        "the first command runs theia dev: {first}"
    );
    bin_dir();
    let home = tempfile::tempdir().unwrap();
    let mut command = shell(first, home.path());
    command.env("THEIA_LISTEN", "127.0.0.1:0");
    let (dev, addr) = spawn_command_until(command, "Try, in another terminal");
    // theia dev put its admin token where theia looks for it.
    let token = read_admin_token(&home.path().join(".config/theia/token"));
    remember_admin_token(&addr, &token);
    wait_for_dc(&addr, "local");
    let status = dev.terminate();
    assert!(status.success(), "theia dev stops cleanly: {status:?}");
}

#[test]
fn the_tour_build_line_puts_the_three_binaries_on_the_path() {
    let lines = shell_lines(section("A five-minute tour"));
    let build = lines
        .iter()
        .find(|l| l.starts_with("cargo build"))
        .expect("the tour says how to build the CLI");
    let home = tempfile::tempdir().unwrap();
    let out = shell(
        &format!("{build} && command -v theia theia-manager theia-agent"),
        home.path(),
    )
    .output()
    .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{build} failed:\n{stdout}\n{stderr}");
    let found: Vec<PathBuf> = stdout.lines().map(PathBuf::from).collect();
    let dir = checkout().join("target").join("debug");
    let expected: Vec<PathBuf> = ["theia", "theia-manager", "theia-agent"]
        .iter()
        .map(|b| dir.join(b))
        .collect();
    assert_eq!(found, expected, "{stderr}");
}

#[test]
fn running_it_for_real_starts_a_manager_and_an_agent_from_the_examples() {
    let text = section("Running it for real");
    let manager = inline_commands(text, "theia-manager");
    let agent = inline_commands(text, "theia-agent");
    assert_eq!(manager.len(), 1, "one manager command: {manager:?}");
    assert_eq!(agent.len(), 1, "one agent command: {agent:?}");

    let bin = bin_dir();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    // The example serves TLS: its certificate and key, from a test CA.
    let pki = TestPki::new();
    let mut command = shell(&manager[0], dir.path());
    command
        .env("PATH", &path)
        .env("THEIA_LISTEN", "127.0.0.1:0")
        .env("THEIA_DATA_DIR", dir.path().join("data"))
        .env("THEIA_TLS_CERT", &pki.cert)
        .env("THEIA_TLS_KEY", &pki.key);
    let (manager, addr) = spawn_command_until(command, "serving");
    remember_process_token(&addr, &dir.path().join("data"));
    // The agent's token, made as the README says.
    let made = std::process::Command::new(bin.join("theia"))
        .args([
            "token",
            "create",
            "--subject",
            "agent-dc-ams-1",
            "--role",
            "agent:dc-ams-1",
            "--quiet",
        ])
        .env("THEIA_MANAGER", format!("https://{addr}"))
        .env("THEIA_CA", &pki.ca)
        .env("THEIA_TOKEN", admin_token(&addr))
        .output()
        .expect("theia runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let agent_token = String::from_utf8_lossy(&made.stdout).trim().to_owned();

    let mut command = shell(&agent[0], dir.path());
    command
        .env("PATH", &path)
        .env("THEIA_MANAGERS", format!("https://{addr}"))
        .env("THEIA_TOKEN", &agent_token)
        .env("THEIA_CA", &pki.ca)
        .env("THEIA_STATE_DIR", dir.path().join("agent"));
    let (agent, _) = spawn_command_until(command, "127.0.0.1");
    wait_for_dc_at(&format!("https://{addr}"), Some(&pki.ca), "dc-ams-1");

    assert!(agent.terminate().success(), "the agent stops cleanly");
    assert!(manager.terminate().success(), "the manager stops cleanly");
}

#[test]
fn the_sections_these_tests_read_are_where_they_expect() {
    // A renamed heading or a reshaped block would otherwise leave the tests
    // above reading the wrong commands.
    assert_eq!(shell_lines(section("Two commands")).len(), 2);
    assert!(!inline_commands(section("Running it for real"), "theia-manager").is_empty());
    assert_eq!(shell_lines(section("Running a cluster")).len(), 5);
}

#[test]
fn the_cluster_section_runs_as_written() {
    let lines = shell_lines(section("Running a cluster"));
    assert_eq!(lines.len(), 5, "{lines:?}");
    let bin = bin_dir();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    // The README's fixed ports would clash with whatever else runs here;
    // each manager is started (and stopped) by the test, not by `&`.
    let adapt = |line: &str| {
        let mut line = line.replace("6379", &port);
        for p in ["7071", "7072", "7073"] {
            line = line.replace(&format!("127.0.0.1:{p}"), "127.0.0.1:0");
        }
        line.trim_end_matches('&').trim().to_owned()
    };
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The README daemonizes Redis: shut it down however the test ends.
    struct StopRedis(String);
    impl Drop for StopRedis {
        fn drop(&mut self) {
            let _ = Command::new("redis-cli")
                .args(["-p", &self.0, "shutdown", "nosave"])
                .output();
        }
    }
    let _stop = StopRedis(port.clone());
    for line in &lines[..2] {
        let out = shell(&adapt(line), dir.path())
            .current_dir(dir.path())
            .env("PATH", &path)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let managers: Vec<(Child, String)> = lines[2..]
        .iter()
        .map(|line| {
            let mut command = shell(&adapt(line), dir.path());
            command.current_dir(dir.path()).env("PATH", &path);
            spawn_command_until(command, "serving")
        })
        .collect();
    // The first manager wrote the cluster's admin token; it works on all.
    let token = read_admin_token(&dir.path().join("m1/admin.token"));
    for (_, addr) in &managers {
        remember_admin_token(addr, &token);
    }
    let theia = bin.join("theia");
    let (ok, out, err) = run(&theia, &["tenant", "create", "acme"], &managers[0].1);
    assert!(ok, "{out}{err}");
    let deadline = std::time::Instant::now() + PATIENCE;
    for (_, addr) in &managers[1..] {
        while !run(&theia, &["tenant", "list"], addr).1.contains("acme") {
            assert!(
                std::time::Instant::now() < deadline,
                "the tenant never reached {addr}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    for (manager, _) in managers {
        let status = manager.terminate();
        assert!(status.success(), "a manager stops cleanly: {status:?}");
    }
}
