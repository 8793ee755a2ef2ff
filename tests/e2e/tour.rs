//! The README tour, run as written against the built `theia dev`: every
//! `$ ` line between the tour markers, including the ones that must fail.

use std::fmt::Write as _;

use crate::common::*;

const README: &str = include_str!("../../README.md");

/// The `$ ` lines of the tour, with whether each is expected to fail.
fn tour_lines() -> Vec<(String, bool)> {
    let begin = README
        .find("<!-- tour:begin")
        .expect("README has a tour:begin marker");
    let end = README
        .find("<!-- tour:end")
        .expect("README has a tour:end marker");
    README[begin..end]
        .lines()
        .filter_map(|l| l.strip_prefix("$ "))
        .map(|l| {
            let fails = l.contains("# error");
            let cmd = l.split(" # ").next().unwrap_or(l).trim().to_owned();
            (cmd, fails)
        })
        .collect()
}

/// A bash script that runs each line and checks its outcome: success, or
/// failure with exactly one line on stderr starting with `error: `.
fn script(lines: &[(String, bool)], addr: &str) -> String {
    let mut s = String::from("set -u\nout=$(mktemp); err=$(mktemp)\n");
    for (n, (cmd, fails)) in lines.iter().enumerate() {
        let cmd = cmd.replace("127.0.0.1:7070", addr);
        let quoted = cmd.replace('\'', "'\\''");
        let _ = writeln!(s, "echo '+ {quoted}'");
        if *fails {
            let _ = writeln!(
                s,
                "if {cmd} >\"$out\" 2>\"$err\"; then echo 'tour line {n} should have failed: {quoted}'; exit 1; fi\n\
                 cat \"$err\"\n\
                 if [ \"$(wc -l <\"$err\")\" -ne 1 ] || ! grep -q '^error: ' \"$err\"; then echo 'tour line {n} must fail with one error: line'; exit 1; fi"
            );
        } else if let Some((var, inner)) = cmd.split_once("=$(") {
            let inner = inner.trim_end_matches(')');
            let _ = writeln!(
                s,
                "{var}=$({inner} 2>\"$err\") || {{ cat \"$err\"; echo 'tour line {n} failed: {quoted}'; exit 1; }}\n\
                 [ -n \"${var}\" ] || {{ echo 'tour line {n} printed nothing'; exit 1; }}\necho \"{var}=${var}\""
            );
        } else if let Some((var, _)) = cmd
            .split_once('=')
            .filter(|(v, _)| !v.is_empty() && v.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        {
            let _ = writeln!(
                s,
                "{cmd} 2>\"$err\" || {{ cat \"$err\"; echo 'tour line {n} failed: {quoted}'; exit 1; }}\n\
                 [ -n \"${var}\" ] || {{ echo 'tour line {n} set nothing'; exit 1; }}"
            );
        } else {
            let _ = writeln!(
                s,
                "{cmd} >\"$out\" 2>\"$err\" || {{ cat \"$out\" \"$err\"; echo 'tour line {n} failed: {quoted}'; exit 1; }}\n\
                 cat \"$out\"\n\
                 [ -s \"$out\" ] || {{ echo 'tour line {n} printed nothing'; exit 1; }}"
            );
        }
    }
    s.push_str("echo TOUR-OK\n");
    s
}

#[test]
fn the_readme_tour_works_as_written() {
    let lines = tour_lines();
    assert!(lines.len() >= 20, "the tour is there: {lines:?}");
    assert!(
        lines.iter().filter(|(_, f)| *f).count() >= 5,
        "the tour shows its error cases"
    );
    let bin = bin_dir();
    let grpcurl_dir = grpcurl().parent().unwrap().to_path_buf();
    let data = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // theia dev writes its admin token to the user's token file: the
    // tour's home, where the tour's theia finds it.
    let mut command = std::process::Command::new(bin.join("theia"));
    command
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("THEIA_TOKEN");
    let (dev, addr) = spawn_command_until(command, "theia dc list");
    let token_file = home.path().join(".config/theia/token");
    remember_admin_token(&addr, &read_admin_token(&token_file));
    // The local agent needs a moment to report its inventory.
    let deadline = std::time::Instant::now() + PATIENCE;
    while !run(&bin.join("theia"), &["dc", "list"], &addr)
        .1
        .contains("local")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the dev agent never reported"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let path = format!(
        "{}:{}:{}",
        bin.display(),
        grpcurl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script(&lines, &addr))
        .env("PATH", path)
        .env("THEIA_MANAGER", format!("http://{addr}"))
        // A clean user: no ~/.config/theia of whoever runs the tests.
        .env("HOME", home.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("THEIA_TOKEN")
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("TOUR-OK"),
        "the tour failed:\n{stdout}\n{stderr}"
    );
    assert!(
        !stdout.contains("panicked") && !stderr.contains("panicked"),
        "{stdout}\n{stderr}"
    );

    let status = dev.terminate();
    assert!(
        status.success(),
        "theia dev exits cleanly on SIGTERM: {status:?}"
    );
}
