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
