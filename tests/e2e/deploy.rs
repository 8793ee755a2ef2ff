//! The example configurations in deploy/ stay true: they load, they name
//! only known keys, and together they document every key theia has.

use theia::config::{KEYS, Source, parse_file, resolve};
use theia_agent::AgentConfig;
use theia_manager::ManagerConfig;

fn read(name: &str) -> (String, theia::config::Config) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let settings = parse_file(Source::ConfigFile(path.clone()), &text).expect("valid YAML");
    (text, resolve(settings))
}

#[test]
fn example_configs_load_and_document_every_key() {
    let (manager_text, manager) = read("manager.yaml");
    let (agent_text, agent) = read("agent.yaml");
    assert!(
        manager.unknown_keys().is_empty(),
        "{:?}",
        manager.unknown_keys()
    );
    assert!(
        agent.unknown_keys().is_empty(),
        "{:?}",
        agent.unknown_keys()
    );
    ManagerConfig::from_config(&manager).expect("deploy/manager.yaml is a valid manager config");
    AgentConfig::from_config(&agent).expect("deploy/agent.yaml is a valid agent config");

    for key in KEYS {
        let documented = |text: &str| {
            text.lines().any(|l| {
                l.trim_start_matches(['#', ' '])
                    .starts_with(&format!("{}:", key.name))
            })
        };
        assert!(
            documented(&manager_text) || documented(&agent_text),
            "key {} is documented in neither deploy/manager.yaml nor deploy/agent.yaml",
            key.name
        );
    }
}

#[test]
fn the_manager_example_shows_the_real_defaults() {
    let (_, manager) = read("manager.yaml");
    for key in KEYS {
        let Some((value, Source::ConfigFile(_))) = manager.get(key.name) else {
            continue;
        };
        // Keys without a default (the TLS files) are set to example paths.
        let Some(default) = key.default else {
            assert!(
                key.name.starts_with("tls_"),
                "{} is set in manager.yaml but has no default",
                key.name
            );
            continue;
        };
        assert_eq!(
            value.to_string(),
            default,
            "deploy/manager.yaml says {} is {value}, the default is {default}",
            key.name
        );
    }
}

/// `deploy/<unit>` with its ExecStart pointed at the binary this build made,
/// in a directory of its own, as systemd-analyze checks a unit offline.
fn unit_for_this_build(dir: &std::path::Path, unit: &str, binary: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("deploy").join(unit)).unwrap();
    let built = crate::common::bin_dir().join(binary);
    let path = dir.join(unit);
    std::fs::write(
        &path,
        text.replace(&format!("/usr/local/bin/{binary}"), built.to_str().unwrap()),
    )
    .unwrap();
    path
}

#[test]
fn the_systemd_units_verify_and_are_hardened() {
    let dir = tempfile::tempdir().unwrap();
    for (unit, binary) in [
        ("theia-manager.service", "theia-manager"),
        ("theia-agent.service", "theia-agent"),
    ] {
        let path = unit_for_this_build(dir.path(), unit, binary);
        let verify = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze is installed by scripts/test.sh");
        assert!(
            verify.status.success() && verify.stderr.is_empty(),
            "{unit}: {}",
            String::from_utf8_lossy(&verify.stderr)
        );
        let security = std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=yes"])
            .arg(&path)
            .output()
            .expect("systemd-analyze runs");
        let text = String::from_utf8_lossy(&security.stdout);
        let exposure: f64 = text
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|score| score.split_whitespace().next())
            .and_then(|score| score.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: no exposure level in\n{text}"));
        assert!(
            exposure <= 2.0,
            "{unit} is exposed at {exposure} (at most 2.0):\n{text}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        for needed in [
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "StateDirectory=",
            "ConfigurationDirectory=",
        ] {
            assert!(text.contains(needed), "{unit} lacks {needed}");
        }
    }
}
