//! grpcurl against a real manager: reflection lists every service, and one
//! call of each service succeeds.

use std::process::Command;

use crate::common::*;

fn grpcurl_call(addr: &str, token: &str, data: &str, method: &str) -> String {
    let header = format!("authorization: Bearer {token}");
    let out = Command::new(grpcurl())
        .args([
            "-plaintext",
            "-max-time",
            "15",
            "-H",
            &header,
            "-d",
            data,
            addr,
            method,
        ])
        .output()
        .expect("grpcurl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{method} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_every_service_and_calls_each_one() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(&dir.path().join("m")).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-1",
        &[("region", "eu")],
        "compute.vcpu=8",
        dir.path().join("a"),
    );
    let mut api = Clients::new(manager.channel().await);
    eventually("dc-1 reports", || {
        let mut api = api.clone();
        async move { api.dc("dc-1").await.filter(|d| !d.capacity.is_empty()) }
    })
    .await;
    let addr = manager.addr.to_string();

    let out = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || {
            Command::new(grpcurl())
                .args(["-plaintext", &addr, "list"])
                .output()
                .expect("grpcurl runs")
        }
    })
    .await
    .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{listed}");
    for service in [
        "theia.v1.AgentService",
        "theia.v1.InfrastructureService",
        "theia.v1.TenantService",
        "theia.v1.ProfileService",
        "theia.v1.ClaimService",
        "theia.v1.ClusterService",
        "theia.v1.AccessService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            listed.lines().any(|l| l == service),
            "{service} missing from grpcurl list:\n{listed}"
        );
    }

    let agent_token = make_token(&addr, "agent-dc-grpcurl", &["agent:dc-grpcurl"]).await;
    let admin = manager.token.as_str();
    let calls: Vec<(&str, &str, &str)> = vec![
        (
            "{}",
            "theia.v1.InfrastructureService/ListDatacenters",
            "dc-1",
        ),
        (
            r#"{"tenant": {"name": "globex", "quota": {"compute.vcpu": "4"}}}"#,
            "theia.v1.TenantService/CreateTenant",
            "globex",
        ),
        (
            r#"{"profile": {"name": "one", "resources": {"compute.vcpu": "1"}}}"#,
            "theia.v1.ProfileService/CreateProfile",
            "one",
        ),
        (
            r#"{"spec": {"tenant": "globex", "profile": "one", "count": 2}}"#,
            "theia.v1.ClaimService/CreateClaim",
            "CLAIM_STATE_PLACED",
        ),
        ("{}", "theia.v1.ClusterService/GetClusterStatus", "embedded"),
        (
            r#"{"hello": {"datacenter": "dc-grpcurl", "version": "grpcurl"}}"#,
            "theia.v1.AgentService/Connect",
            "welcome",
        ),
        ("{}", "theia.v1.AccessService/WhoAmI", "\"admin\""),
        ("{}", "grpc.health.v1.Health/Check", "SERVING"),
    ];
    for (data, method, expect) in calls {
        let token = if method.contains("AgentService") {
            agent_token.clone()
        } else {
            admin.to_owned()
        };
        let (addr, data, method) = (addr.clone(), data.to_owned(), method.to_owned());
        let out = tokio::task::spawn_blocking(move || grpcurl_call(&addr, &token, &data, &method))
            .await
            .unwrap();
        assert!(out.contains(expect), "expected {expect:?} in:\n{out}");
    }
    let claims = api.all_claims().await;
    assert_eq!(claims.len(), 1, "the claim made through grpcurl is there");

    agent.stop().await;
    manager.stop().await;
}
