//! The Python SDK (`sdk/python`), as a user gets it: generated from proto/
//! by its own script, built into a fresh venv, and run through a scenario
//! against a real manager.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::placement::TwoDcs;

fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with grpcio-tools that the test command installs.
fn tools_python() -> PathBuf {
    let python = checkout().join(".tools/sdk-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run the tests with scripts/test.sh, which installs grpcio-tools",
        python.display()
    );
    python
}

fn ok(command: &mut Command, what: &str) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_runs_a_scenario_against_a_real_manager() {
    let sdk = checkout().join("sdk/python");
    ok(
        Command::new(tools_python()).arg(sdk.join("generate.py")),
        "generate.py",
    );
    let venv = tempfile::tempdir().unwrap();
    ok(
        Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv.path()),
        "python3 -m venv",
    );
    let python = venv.path().join("bin/python");
    ok(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(&sdk),
        "pip install sdk/python",
    );

    let w = TwoDcs::start().await;
    let out = tokio::task::spawn_blocking({
        let python = python.clone();
        let scenario = sdk.join("tests/scenario.py");
        let addr = w.manager.addr.to_string();
        let token = w.manager.token.clone();
        move || {
            ok(
                Command::new(python).arg(scenario).arg(addr).arg(token),
                "the Python scenario",
            )
        }
    })
    .await
    .unwrap();
    assert!(out.contains("SCENARIO-OK"), "{out}");
    w.stop().await;
}
