//! The container files stay true without a container engine here: the
//! Containerfile passes hadolint and builds a distroless image run by an
//! unprivileged user, and the compose file wires TLS, client certificates
//! and tokens through every service.

use std::collections::BTreeSet;

use serde_yaml_ng::Value;

fn deploy(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// hadolint on PATH; the test command installs it.
fn hadolint() -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("hadolint"))
        .find(|p| p.is_file())
        .expect("hadolint is not on PATH: run the tests with scripts/test.sh, which installs it")
}

#[test]
fn the_containerfile_lints_clean_and_runs_distroless_as_nobody() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/Containerfile");
    let out = std::process::Command::new(hadolint())
        .args(["--failure-threshold", "info"])
        .arg(&file)
        .output()
        .expect("hadolint runs");
    assert!(
        out.status.success(),
        "hadolint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = deploy("Containerfile");
    let last_from = text
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .expect("a FROM");
    assert!(
        last_from.contains("distroless") || last_from.trim() == "FROM scratch",
        "the image runs on a distroless or empty base: {last_from}"
    );
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    for binary in ["theia-manager", "theia-agent", "theia"] {
        assert!(
            text.contains(&format!("/src/target/release/{binary} ")),
            "{binary} is in the image"
        );
    }
}

fn env(service: &Value) -> std::collections::BTreeMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other).unwrap().trim().to_owned(),
                    };
                    (k.as_str().unwrap().to_owned(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_compose_cluster_speaks_tls_with_client_certificates_and_tokens() {
    let mut doc: Value = serde_yaml_ng::from_str(&deploy("compose.yaml")).expect("YAML");
    doc.apply_merge().expect("merge keys resolve");
    let services = doc["services"].as_mapping().expect("services");
    let named = |prefix: &str| -> Vec<(String, &Value)> {
        services
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().to_owned(), v))
            .filter(|(k, _)| k.starts_with(prefix))
            .collect()
    };
    let managers = named("manager-");
    let agents = named("agent-");
    assert_eq!(managers.len(), 3);
    assert_eq!(agents.len(), 2);
    assert!(services.contains_key("redis"));

    let pki = &doc["services"]["pki"];
    let command: Vec<&str> = pki["command"]
        .as_sequence()
        .expect("pki runs theia cert init")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&command[..2], &["cert", "init"]);
    let listed = |flag: &str| -> BTreeSet<String> {
        let at = command.iter().position(|c| *c == flag).expect(flag);
        command[at + 1].split(',').map(str::to_owned).collect()
    };
    let servers = listed("--servers");
    let agent_dcs = listed("--agents");

    for (name, manager) in &managers {
        let e = env(manager);
        assert!(
            servers.contains(name),
            "the managers' certificate names {name}"
        );
        for key in [
            "THEIA_TLS_CERT",
            "THEIA_TLS_KEY",
            "THEIA_CLIENT_CA",
            "THEIA_BOOTSTRAP_TOKEN_FILE",
        ] {
            assert!(e.contains_key(key), "{name} sets {key}");
        }
        assert!(!e.contains_key("THEIA_INSECURE"), "{name} serves TLS");
        assert!(
            manager["depends_on"]["pki"]["condition"].as_str()
                == Some("service_completed_successfully"),
            "{name} waits for its certificate"
        );
    }
    for (name, agent) in &agents {
        let e = env(agent);
        let dc = &e["THEIA_DC"];
        assert!(
            agent_dcs.contains(dc),
            "pki makes {name}'s certificate for {dc}"
        );
        assert!(
            e["THEIA_CLIENT_CERT"].contains(&format!("agent-{dc}.pem")),
            "{name}"
        );
        assert!(
            e["THEIA_CLIENT_KEY"].contains(&format!("agent-{dc}.key")),
            "{name}"
        );
        assert!(e.contains_key("THEIA_CA"), "{name} verifies the managers");
        let urls: Vec<&str> = e["THEIA_MANAGERS"].split(',').collect();
        assert_eq!(urls.len(), 3, "{name} knows every manager");
        for url in urls {
            assert!(url.starts_with("https://"), "{name}: {url}");
            let host = url
                .trim_start_matches("https://")
                .split(':')
                .next()
                .unwrap();
            assert!(
                servers.contains(host),
                "{host} is in the managers' certificate"
            );
        }
    }
}
