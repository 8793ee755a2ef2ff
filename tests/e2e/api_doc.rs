//! docs/api.md stays true: it names every call of every service, and each
//! grpcurl example in it runs, in order, against a real manager.

use std::process::Command;

use crate::common::*;

fn doc() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md"))
        .expect("docs/api.md")
}

/// `(service, rpc)` for every call in `proto/theia/v1`.
fn calls() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("proto/theia/v1");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut service = None;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().map(str::to_owned);
            } else if let (Some(s), Some(rest)) = (&service, line.strip_prefix("rpc ")) {
                let name = rest.split('(').next().unwrap_or_default().trim();
                out.push((s.clone(), name.to_owned()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_api_doc_names_every_call() {
    let text = doc();
    let calls = calls();
    assert!(calls.len() >= 18, "{calls:?}");
    for (service, rpc) in calls {
        let named = if service == "AgentService" {
            text.contains("`Connect`")
        } else {
            text.contains(&format!("theia.v1.{service}/{rpc}"))
        };
        assert!(named, "docs/api.md says nothing of {service}/{rpc}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grpcurl_example_in_the_api_doc_runs() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(&dir.path().join("m")).await;
    // What `theia dev` runs: one datacenter `local`, labelled env=dev.
    let agent = TestAgent::start(
        vec![manager.url()],
        "local",
        &[("env", "dev")],
        "compute.vcpu=8,compute.memory=16Gi",
        dir.path().join("a"),
    );
    let api = Clients::new(manager.channel().await);
    eventually("local reports", || {
        let mut api = api.clone();
        async move { api.dc("local").await.filter(|d| !d.capacity.is_empty()) }
    })
    .await;
    let grpcurl_dir = grpcurl().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        grpcurl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let examples: Vec<String> = doc()
        .lines()
        .filter_map(|l| l.strip_prefix("$ grpcurl "))
        .map(|rest| format!("grpcurl -max-time 15 {rest}"))
        .collect();
    assert!(examples.len() >= 20, "{examples:?}");
    let mut claim_id = String::new();
    let mut token_id = String::new();
    let mut maintenance_id = String::new();
    for example in &examples {
        let out = Command::new("bash")
            .arg("-c")
            .arg(example)
            .env("PATH", &path)
            .env("ADDR", manager.addr.to_string())
            .env("CLAIM_ID", &claim_id)
            .env("TOKEN_ID", &token_id)
            .env("MAINTENANCE_ID", &maintenance_id)
            .env("AUTH", format!("authorization: Bearer {}", manager.token))
            .output()
            .expect("bash runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{example}\nfailed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if example.contains("ClaimService/CreateClaim") {
            let claim: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
            claim_id = claim["id"].as_str().expect("an id").to_owned();
        }
        if example.contains("InfrastructureService/CreateMaintenance") {
            let made: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
            if made["accepted"].as_bool() == Some(true) {
                maintenance_id = made["maintenance"]["id"]
                    .as_str()
                    .expect("an id")
                    .to_owned();
            }
        }
        if example.contains("AccessService/CreateToken") {
            let made: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
            token_id = made["token"]["id"].as_str().expect("an id").to_owned();
            assert!(
                made["secret"]
                    .as_str()
                    .expect("the secret")
                    .starts_with("theia_")
            );
        }
    }
    assert!(!claim_id.is_empty(), "the doc creates a claim");
    assert!(!token_id.is_empty(), "the doc creates a token");
    assert!(!maintenance_id.is_empty(), "the doc creates a maintenance");
    agent.stop().await;
    manager.stop().await;
}

#[test]
fn the_readme_and_the_docs_link_only_to_files_in_the_repository() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for page in [
        "README.md",
        "docs/architecture.md",
        "docs/api.md",
        "docs/operations.md",
    ] {
        let text = std::fs::read_to_string(root.join(page)).unwrap();
        let base = root.join(page).parent().unwrap().to_owned();
        for (i, _) in text.match_indices("](") {
            let target: String = text[i + 2..].chars().take_while(|c| *c != ')').collect();
            if target.starts_with("http") || target.starts_with('#') {
                continue;
            }
            let path = base.join(target.split('#').next().unwrap());
            let found = path
                .canonicalize()
                .unwrap_or_else(|_| panic!("{page} links to {target}, which does not exist"));
            assert!(
                found.starts_with(root.canonicalize().unwrap()),
                "{page} links to {target}, which is outside the repository"
            );
        }
    }
}
