//! Logs as machines read them: `--log-format json` writes one JSON object a
//! line, and what is logged while a call is served carries the call's span
//! (method, request id, caller); the request id goes back to the client.

use std::process::{Command, Stdio};

use theia::api::v1;

use crate::common::*;

/// Every JSON line `path` holds so far (a line being written is left out).
fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The line whose message is `message`, once it is there.
async fn line_with(path: &std::path::Path, message: &str) -> serde_json::Value {
    eventually(&format!("a log line {message:?}"), || async {
        json_lines(path)
            .into_iter()
            .find(|l| l["fields"]["message"] == message)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_call_span_and_the_request_id_comes_back() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("manager.log");
    let manager = Command::new(bin_dir().join("theia-manager"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--insecure",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _manager = Child(manager);
    let serving = line_with(&log, "theia-manager serving").await;
    assert_eq!(serving["level"], "INFO", "{serving}");
    assert_eq!(serving["target"], "theia_manager", "{serving}");
    let addr = serving["fields"]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("{serving}"))
        .to_owned();
    // Every line is an object: nothing else is written to stderr.
    let text = std::fs::read_to_string(&log).unwrap();
    for line in text.lines() {
        assert!(
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line).is_ok(),
            "{line}"
        );
    }

    remember_process_token(&addr, &data);
    let mut tenants = v1::tenant_service_client::TenantServiceClient::new(channel_to(&addr).await);
    let create = |name: &str, id: Option<&str>| {
        let mut req = tonic::Request::new(v1::CreateTenantRequest {
            tenant: Some(v1::Tenant {
                name: name.into(),
                ..Default::default()
            }),
        });
        if let Some(id) = id {
            req.metadata_mut()
                .insert("x-request-id", id.parse().unwrap());
        }
        req
    };
    let answer = tenants
        .create_tenant(create("logged-co", Some("req-logs-1")))
        .await
        .unwrap();
    assert_eq!(answer.metadata().get("x-request-id").unwrap(), "req-logs-1");
    let created = line_with(&log, "tenant created").await;
    assert_eq!(created["span"]["name"], "rpc", "{created}");
    assert_eq!(created["span"]["request_id"], "req-logs-1", "{created}");
    assert_eq!(
        created["span"]["method"], "/theia.v1.TenantService/CreateTenant",
        "{created}"
    );
    assert_eq!(created["span"]["caller"], "admin", "{created}");
    assert_eq!(created["fields"]["tenant"], "logged-co", "{created}");

    // No id, or one that is no good (too long): a fresh one, sent back.
    for given in [None, Some("x".repeat(65))] {
        let answer = tenants
            .create_tenant(create(&format!("co-{}", given.is_some()), given.as_deref()))
            .await
            .unwrap();
        let id = answer
            .metadata()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }
    // An agent's stream is one long call: what its session logs, after
    // the call itself returned, is in the call's span too.
    let agent = TestAgent::start(
        vec![format!("http://{addr}")],
        "dc-logged",
        &[],
        "compute.vcpu=4",
        dir.path().join("agent"),
    );
    line_with(&log, "agent connected").await;
    agent.stop().await;
    let gone = line_with(&log, "agent disconnected").await;
    assert_eq!(
        gone["span"]["method"], "/theia.v1.AgentService/Connect",
        "{gone}"
    );
    assert_eq!(gone["span"]["caller"], "agent-dc-logged", "{gone}");
    assert_eq!(gone["fields"]["datacenter"], "dc-logged", "{gone}");

    // A refused call carries one too.
    let refused = tenants
        .create_tenant(create("Not A Name", Some("req-logs-2")))
        .await
        .unwrap_err();
    assert_eq!(
        refused.metadata().get("x-request-id").unwrap(),
        "req-logs-2"
    );
}

#[test]
fn an_unknown_log_format_is_refused_by_name() {
    for program in ["theia-manager", "theia-agent"] {
        let out = Command::new(bin_dir().join(program))
            .args(["--log-format", "yaml"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{program}: {err}");
        assert!(
            err.contains("log_format") && err.contains("use text or json"),
            "{program}: {err}"
        );
    }
}
