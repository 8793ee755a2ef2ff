//! Tokens and roles against a real manager: every RPC answers every kind of
//! caller as the one table says, a tenant sees only its own tenant and
//! claims, agents speak only for their registered datacenter, the first
//! admin token is written once, and tokens reach every manager of a cluster.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use theia::access::{RULES, RoleKind, Rule};
use theia::api::v1;
use tokio_stream::StreamExt as _;
use tonic::Code;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::common::*;

/// A channel sending `authorization: <header>` verbatim (or nothing).
fn presenting(
    channel: Channel,
    header: Option<String>,
) -> InterceptedService<
    Channel,
    impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone,
> {
    let value: Option<AsciiMetadataValue> = header.map(|h| h.parse().expect("ASCII"));
    InterceptedService::new(channel, move |mut req: tonic::Request<()>| {
        if let Some(v) = &value {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    })
}

/// Makes a token as `manager`'s admin: (the bearer token, its id).
async fn token(manager: &TestManager, subject: &str, roles: &[&str], ttl: u64) -> (String, String) {
    let made = v1::access_service_client::AccessServiceClient::new(manager.channel().await)
        .create_token(v1::CreateTokenRequest {
            subject: subject.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ttl_seconds: ttl,
            description: String::new(),
        })
        .await
        .expect("the admin makes a token")
        .into_inner();
    (made.secret, made.token.expect("the record").id)
}

/// The code a call with an empty request answers: `Ok` when it succeeded.
async fn code_of(manager: &TestManager, header: Option<String>, path: &str) -> Code {
    let channel = presenting(manager.plain_channel().await, header);
    match raw_unary(channel, path, Vec::new()).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_every_kind_of_caller_as_the_table_says() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut api = Clients::new(manager.channel().await);
    api.create_tenant("acme", &[]).await;
    api.tenants
        .update_tenant(v1::UpdateTenantRequest {
            tenant: Some(v1::Tenant {
                name: "acme".into(),
                owner: "alice@example.com".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["owner".into()],
            }),
        })
        .await
        .unwrap();

    let bearer = |t: &str| Some(format!("Bearer {t}"));
    let (revoked, revoked_id) = token(&manager, "gone@example.com", &["admin"], 0).await;
    v1::access_service_client::AccessServiceClient::new(manager.channel().await)
        .revoke_token(v1::RevokeTokenRequest { id: revoked_id })
        .await
        .unwrap();
    let (expired, _) = token(&manager, "brief@example.com", &["admin"], 1).await;
    let who = "/theia.v1.AccessService/WhoAmI";
    eventually("the one-second token expires", || {
        let header = bearer(&expired);
        let manager = &manager;
        async move { (code_of(manager, header, who).await == Code::Unauthenticated).then_some(()) }
    })
    .await;
    let unknown = format!("theia_{}_{}", "0".repeat(16), "0".repeat(64));
    let refused: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("not bearer", Some(format!("Basic {}", manager.token))),
        ("malformed", Some("Bearer theia_nope".to_owned())),
        ("unknown", bearer(&unknown)),
        ("revoked", bearer(&revoked)),
        ("expired", bearer(&expired)),
    ];

    use RoleKind::*;
    let mut callers: Vec<(&str, Option<String>, BTreeSet<RoleKind>)> =
        vec![("admin", bearer(&manager.token), [Admin].into())];
    for (name, subject, roles, kinds) in [
        (
            "operator",
            "ops@example.com",
            vec!["operator"],
            vec![Operator],
        ),
        ("auditor", "audit@example.com", vec!["auditor"], vec![]),
        ("tenant", "t@example.com", vec!["tenant:acme"], vec![Tenant]),
        ("owner", "alice@example.com", vec![], vec![Tenant]),
        ("agent", "agent-dc-a", vec!["agent:dc-a"], vec![Agent]),
        ("no role", "nobody@example.com", vec![], vec![]),
    ] {
        let (secret, _) = token(&manager, subject, &roles, 0).await;
        let mut kinds: BTreeSet<RoleKind> = kinds.into_iter().collect();
        if name == "auditor" {
            kinds.insert(Auditor);
        }
        callers.push((name, bearer(&secret), kinds));
    }

    let mut checked = 0;
    for (path, rule) in RULES {
        for (name, header) in &refused {
            let code = code_of(&manager, header.clone(), path).await;
            assert_eq!(code, Code::Unauthenticated, "{name} calling {path}");
            checked += 1;
        }
        for (name, header, kinds) in &callers {
            let allowed = match rule {
                Rule::Public | Rule::Authenticated => true,
                Rule::Roles(needed) => needed.iter().any(|k| kinds.contains(k)),
            };
            let code = code_of(&manager, header.clone(), path).await;
            if allowed {
                assert!(
                    !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                    "{name} may call {path}, but it answered {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{name} calling {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= RULES.len() * 12, "{checked}");
    // Health and reflection need no token; what the table does not name is
    // refused even to the admin.
    assert_eq!(
        code_of(&manager, None, "/grpc.health.v1.Health/Check").await,
        Code::Ok
    );
    assert_eq!(
        code_of(
            &manager,
            bearer(&manager.token),
            "/theia.v1.ClaimService/DropEverything"
        )
        .await,
        Code::Unimplemented
    );
    manager.stop().await;
}

/// The README's "Who may do what" table: (method path, the kinds it names).
fn readme_table() -> Vec<(String, BTreeSet<RoleKind>)> {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Who may do what")
        .nth(1)
        .expect("the README has the table")
        .split("\n## ")
        .next()
        .unwrap();
    let columns = [
        RoleKind::Admin,
        RoleKind::Operator,
        RoleKind::Tenant,
        RoleKind::Agent,
        RoleKind::Auditor,
    ];
    let mut out = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let (service, methods) = cells[0]
            .trim_start_matches('`')
            .split_once("` ")
            .expect("`Service` Method, Method");
        let kinds: BTreeSet<RoleKind> = columns
            .iter()
            .zip(&cells[1..])
            .filter(|(_, cell)| !cell.is_empty())
            .map(|(k, _)| *k)
            .collect();
        for method in methods.split(',').map(str::trim) {
            out.push((format!("/theia.v1.{service}/{method}"), kinds.clone()));
        }
    }
    out
}

#[test]
fn the_readme_table_is_the_table_in_code() {
    let table = readme_table();
    assert_eq!(table.len(), RULES.len(), "{table:?}");
    for (path, rule) in RULES {
        let (_, kinds) = table
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| panic!("the README does not name {path}"));
        let expected: BTreeSet<RoleKind> = match rule {
            Rule::Public | Rule::Authenticated => RoleKind::ALL.into_iter().collect(),
            Rule::Roles(needed) => needed.iter().copied().collect(),
        };
        assert_eq!(kinds, &expected, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_and_changes_only_its_own_and_the_rest_is_not_found() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-a",
        &[],
        "compute.vcpu=16",
        dir.path().join("agent"),
    );
    let mut admin = Clients::new(manager.channel().await);
    admin.wait_liveness("dc-a", v1::Liveness::Alive).await;
    admin.create_tenant("acme", &[]).await;
    admin.create_tenant("beta", &[]).await;
    admin.create_profile("one", &[("compute.vcpu", "1")]).await;
    let ours = admin.create_claim(spec("acme", "one", 1)).await.unwrap();
    let theirs = admin.create_claim(spec("beta", "one", 1)).await.unwrap();

    let mut acme = Clients::new(manager.channel_as("t@acme.example", &["tenant:acme"]).await);
    let listed: Vec<String> = acme
        .claims
        .list_claims(v1::ListClaimsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .claims
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, vec![ours.id.clone()]);
    let asked_for_beta = acme
        .claims
        .list_claims(v1::ListClaimsRequest {
            tenant: "beta".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(asked_for_beta.claims.is_empty(), "{asked_for_beta:?}");

    // Another tenant's claim reads exactly as one that does not exist.
    let get = |id: &str| {
        let mut acme = acme.clone();
        let id = id.to_owned();
        async move {
            acme.claims
                .get_claim(v1::GetClaimRequest { id })
                .await
                .expect_err("hidden")
        }
    };
    let hidden = get(&theirs.id).await;
    let missing = get("c-000000000000").await;
    assert_eq!(hidden.code(), Code::NotFound, "{hidden}");
    assert_eq!(
        hidden.message().replace(&theirs.id, "ID"),
        missing.message().replace("c-000000000000", "ID"),
        "no difference to probe"
    );
    let release = acme
        .claims
        .release_claim(v1::ReleaseClaimRequest {
            id: theirs.id.clone(),
        })
        .await
        .expect_err("not acme's");
    assert_eq!(release.code(), Code::NotFound, "{release}");
    // Placed or already active (the agent confirms on its own time), but
    // not released.
    let state = admin.claim(&theirs.id).await.state;
    assert!(
        state == v1::ClaimState::Placed as i32 || state == v1::ClaimState::Active as i32,
        "beta's claim is untouched: {state}"
    );
    let create = acme
        .create_claim(spec("beta", "one", 1))
        .await
        .expect_err("not acme's tenant");
    assert_eq!(create.code(), Code::NotFound, "{create}");
    assert!(create.message().contains("spec.tenant"), "{create}");
    let explain = acme
        .claims
        .explain_claim(v1::ExplainClaimRequest {
            spec: Some(spec("beta", "one", 1)),
        })
        .await
        .expect_err("not acme's tenant");
    assert_eq!(explain.code(), Code::NotFound, "{explain}");

    // A caller acting for one tenant may leave it out.
    let implicit = acme.create_claim(spec("", "one", 1)).await.unwrap();
    assert_eq!(implicit.spec.unwrap().tenant, "acme");

    let tenants: Vec<String> = acme
        .tenants
        .list_tenants(v1::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tenants
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(tenants, vec!["acme".to_owned()]);
    let beta = acme
        .tenants
        .get_tenant(v1::GetTenantRequest {
            name: "beta".into(),
        })
        .await
        .expect_err("hidden");
    assert_eq!(beta.code(), Code::NotFound, "{beta}");
    let quota = acme
        .tenants
        .update_tenant(v1::UpdateTenantRequest {
            tenant: Some(v1::Tenant {
                name: "acme".into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["quota".into()],
            }),
        })
        .await
        .expect_err("a tenant does not set its own quota");
    assert_eq!(quota.code(), Code::PermissionDenied, "{quota}");

    // Naming a subject as delegate makes its token act for the tenant,
    // with no role of its own; and revoking a token ends it at once.
    let (bob, bob_id) = token(&manager, "bob@example.com", &[], 0).await;
    let mut as_bob = Clients::new(with_token(manager.plain_channel().await, &bob));
    let before = as_bob
        .claims
        .list_claims(v1::ListClaimsRequest::default())
        .await
        .expect_err("bob acts for no tenant yet");
    assert_eq!(before.code(), Code::PermissionDenied, "{before}");
    admin
        .tenants
        .update_tenant(v1::UpdateTenantRequest {
            tenant: Some(v1::Tenant {
                name: "beta".into(),
                delegates: vec!["bob@example.com".into()],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["delegates".into()],
            }),
        })
        .await
        .unwrap();
    let after = as_bob
        .claims
        .list_claims(v1::ListClaimsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        after.claims.iter().map(|c| &c.id).collect::<Vec<_>>(),
        vec![&theirs.id]
    );
    v1::access_service_client::AccessServiceClient::new(manager.channel().await)
        .revoke_token(v1::RevokeTokenRequest { id: bob_id })
        .await
        .unwrap();
    let gone = as_bob
        .claims
        .list_claims(v1::ListClaimsRequest::default())
        .await
        .expect_err("revoked");
    assert_eq!(gone.code(), Code::Unauthenticated, "{gone}");

    agent.stop().await;
    manager.stop().await;
}

/// Opens an agent stream on `channel` saying Hello as `dc`: the stream's
/// first answer, or the refusal.
async fn hello<T>(channel: T, dc: &str) -> Result<v1::ManagerMessage, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let hello = v1::AgentMessage {
        body: Some(v1::agent_message::Body::Hello(v1::Hello {
            datacenter: dc.into(),
            version: "test".into(),
            driver: "hand".into(),
            ..Default::default()
        })),
    };
    // The stream stays open (pending) after the Hello, as an agent's does.
    let outbound = tokio_stream::iter(vec![hello]).chain(tokio_stream::pending());
    let mut inbound = v1::agent_service_client::AgentServiceClient::new(channel)
        .connect(outbound)
        .await?
        .into_inner();
    Ok(inbound.message().await?.expect("a first message"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_speaks_only_for_its_registered_datacenter() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut admin = Clients::new(manager.channel().await);
    let as_a = manager.agent_channel("dc-a").await;

    let other = hello(as_a.clone(), "dc-b").await.expect_err("not dc-b");
    assert_eq!(other.code(), Code::PermissionDenied, "{other}");
    assert!(other.message().contains("dc-a"), "{other}");
    assert!(
        admin.dc("dc-b").await.is_none(),
        "a Hello made no datacenter"
    );
    let welcome = hello(as_a.clone(), "dc-a").await.expect("dc-a connects");
    assert!(
        matches!(welcome.body, Some(v1::manager_message::Body::Welcome(_))),
        "{welcome:?}"
    );

    // While dc-a's agent is connected, a second one is a standby that
    // hears nothing of dc-a's assignments.
    let as_h = manager.agent_channel("dc-h").await;
    let mut first = HandAgent::connect(as_h.clone(), "dc-h").await;
    let second = hello(manager.agent_channel("dc-h").await, "dc-h")
        .await
        .expect_err("standby");
    assert_eq!(second.code(), Code::FailedPrecondition, "{second}");
    assert!(second.message().contains("standby"), "{second}");

    // Registering is idempotent; a datacenter holding claims is not deleted.
    for _ in 0..2 {
        let dc = admin
            .infra
            .register_datacenter(v1::RegisterDatacenterRequest {
                id: "dc-r".into(),
                labels: map(&[("region", "eu")]),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(dc.labels, map(&[("region", "eu")]));
    }
    first.report(1, &[("compute.vcpu", 8, 8, Some(0))]).await;
    admin.wait_liveness("dc-h", v1::Liveness::Alive).await;
    admin.wait_total("dc-h", "compute.vcpu", "8").await;
    admin.create_tenant("acme", &[]).await;
    admin.create_profile("one", &[("compute.vcpu", "1")]).await;
    let mut on_h = spec("acme", "one", 1);
    on_h.datacenters = vec!["dc-h".into()];
    let claim = admin.create_claim(on_h).await.unwrap();
    let busy = admin
        .infra
        .delete_datacenter(v1::DeleteDatacenterRequest { id: "dc-h".into() })
        .await
        .expect_err("holds a claim");
    assert_eq!(busy.code(), Code::FailedPrecondition, "{busy}");
    admin
        .claims
        .release_claim(v1::ReleaseClaimRequest { id: claim.id })
        .await
        .unwrap();

    // Deleted: its agent is cut off and cannot come back until registered.
    admin
        .infra
        .delete_datacenter(v1::DeleteDatacenterRequest { id: "dc-h".into() })
        .await
        .unwrap();
    assert!(admin.dc("dc-h").await.is_none());
    let ended = first.next_error().await;
    assert_eq!(ended.code(), Code::FailedPrecondition, "{ended}");
    let refused = hello(as_h.clone(), "dc-h")
        .await
        .expect_err("not registered");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
    assert!(
        refused.message().contains("theia dc register dc-h"),
        "{refused}"
    );
    admin
        .infra
        .register_datacenter(v1::RegisterDatacenterRequest {
            id: "dc-h".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let back = hello(as_h, "dc-h").await;
    assert!(
        back.is_ok(),
        "registered again, its agent is back: {back:?}"
    );
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_writes_one_admin_token_readable_by_the_manager_only() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let file = dir.path().join("admin.token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let first = read_admin_token(&file);
    let mut access = v1::access_service_client::AccessServiceClient::new(manager.channel().await);
    let me = access
        .who_am_i(v1::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    let record = me.token.unwrap();
    assert_eq!(record.roles, vec!["admin"]);
    assert_eq!(record.created_by, "bootstrap");
    let last = access
        .revoke_token(v1::RevokeTokenRequest {
            id: record.id.clone(),
        })
        .await
        .expect_err("the last admin token stays");
    assert_eq!(last.code(), Code::FailedPrecondition, "{last}");
    manager.stop().await;

    let again = TestManager::start(dir.path()).await;
    assert_eq!(read_admin_token(&file), first, "written once, not again");
    let tokens = v1::access_service_client::AccessServiceClient::new(again.channel().await)
        .list_tokens(v1::ListTokensRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(
        !format!("{tokens:?}").contains(first.rsplit('_').next().unwrap()),
        "no secret is listed"
    );
    again.stop().await;

    // Every admin token lost: one start with new_admin_token makes another.
    let mut config =
        theia_manager::ManagerConfig::for_dir(dir.path(), "127.0.0.1:0".parse().unwrap());
    fast(&mut config);
    config.new_admin_token = true;
    let rescued = TestManager::start_with(config).await;
    let second = read_admin_token(&file);
    assert_ne!(second, first, "a new token was written");
    let listed = v1::access_service_client::AccessServiceClient::new(rescued.channel().await)
        .list_tokens(v1::ListTokensRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().any(|t| t.created_by == "new-admin-token"));
    rescued.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_made_on_one_manager_works_on_the_other_until_revoked_there() {
    init();
    let redis = TestRedis::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = "ab".repeat(32);
    let a = TestManager::start_with(redis_config(&dir.path().join("a"), &redis, &secret)).await;
    let b = TestManager::start_with(redis_config(&dir.path().join("b"), &redis, &secret)).await;
    assert_eq!(a.token, b.token, "one cluster, one first admin token");
    let (ops, ops_id) = token(&a, "ops@example.com", &["operator"], 0).await;
    let on_b = with_token(b.plain_channel().await, &ops);
    eventually("b takes a's token", || {
        let on_b = on_b.clone();
        async move {
            v1::cluster_service_client::ClusterServiceClient::new(on_b)
                .get_cluster_status(v1::GetClusterStatusRequest {})
                .await
                .ok()
        }
    })
    .await;
    v1::access_service_client::AccessServiceClient::new(a.channel().await)
        .revoke_token(v1::RevokeTokenRequest { id: ops_id })
        .await
        .unwrap();
    eventually("b refuses it once a revoked it", || {
        let on_b = on_b.clone();
        async move {
            let answer = v1::cluster_service_client::ClusterServiceClient::new(on_b)
                .get_cluster_status(v1::GetClusterStatusRequest {})
                .await;
            matches!(answer, Err(s) if s.code() == Code::Unauthenticated).then_some(())
        }
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_makes_lists_and_revokes_tokens_and_registers_datacenters() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let addr = manager.addr.to_string();
    tokio::task::spawn_blocking(move || {
        let theia = bin_dir().join("theia");
        let ok = |args: &[&str]| {
            let (ok, out, err) = run(&theia, args, &addr);
            assert!(ok, "theia {args:?}: {err}");
            out
        };
        let me = ok(&["whoami"]);
        assert!(me.contains("admin") && me.contains("Roles"), "{me}");

        let made = ok(&[
            "token",
            "create",
            "--subject",
            "ops@example.com",
            "--role",
            "operator",
            "--ttl",
            "1h",
        ]);
        let mut lines = made.lines();
        let secret = lines.next().unwrap().trim().to_owned();
        assert!(secret.starts_with("theia_"), "{made}");
        assert!(lines.next().unwrap().contains("shown once"), "{made}");
        let id = secret.split('_').nth(1).unwrap().to_owned();

        let listed = ok(&["token", "list"]);
        assert!(
            listed.contains("ops@example.com") && listed.contains("operator"),
            "{listed}"
        );
        assert!(!listed.contains(&secret), "no secret is listed");
        let json: serde_json::Value =
            serde_json::from_str(&ok(&["--output", "json", "token", "list"])).unwrap();
        assert_eq!(json["tokens"].as_array().map(Vec::len), Some(2), "{json}");

        // The new token works as an operator, and not as an admin.
        let (ok_list, _, _) = run(&theia, &["--token", &secret, "dc", "list"], &addr);
        assert!(ok_list);
        let (denied, _, err) = run(&theia, &["--token", &secret, "token", "list"], &addr);
        assert!(
            !denied && err.starts_with("error: permission denied: "),
            "{err}"
        );

        assert_eq!(
            ok(&["token", "revoke", &id]).trim(),
            format!("revoked token {id}")
        );
        assert!(!ok(&["token", "list"]).contains("ops@example.com"));
        let (_, _, err) = run(&theia, &["--token", &secret, "dc", "list"], &addr);
        assert!(err.contains("unknown or revoked token"), "{err}");

        let (bad, _, err) = run(
            &theia,
            &["token", "create", "--subject", "x", "--role", "root"],
            &addr,
        );
        assert!(!bad && err.contains("roles[0]"), "{err}");

        let registered = ok(&["dc", "register", "dc-new", "--labels", "region=eu"]);
        assert!(registered.contains("--role agent:dc-new"), "{registered}");
        assert!(ok(&["dc", "list"]).contains("dc-new"));
        assert_eq!(
            ok(&["dc", "delete", "dc-new"]).trim(),
            "deleted datacenter dc-new"
        );
        assert!(!ok(&["dc", "list"]).contains("dc-new"));
    })
    .await
    .unwrap();
    manager.stop().await;
}

/// A TLS channel to `addr` trusting `pki`'s CA, presenting `identity`.
async fn tls_channel(
    addr: std::net::SocketAddr,
    pki: &TestPki,
    identity: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = tonic::transport::ClientTlsConfig::new().ca_certificate(
        tonic::transport::Certificate::from_pem(std::fs::read(&pki.ca).unwrap()),
    );
    if let Some((cert, key)) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    }
    tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_ca_an_agent_certificate_stands_in_for_its_token_and_only_for_its_datacenter() {
    init();
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        theia_manager::ManagerConfig::for_dir(dir.path(), "127.0.0.1:0".parse().unwrap());
    fast(&mut config);
    config.insecure = false;
    config.tls = Some(theia_manager::TlsFiles {
        cert: pki.cert.clone(),
        key: pki.key.clone(),
    });
    config.client_ca = Some(std::fs::read(&pki.ca).unwrap());
    let manager = TestManager::start_with(config).await;
    // Tokens still work without a certificate.
    let admin_channel = tls_channel(manager.addr, &pki, None).await.unwrap();
    let mut admin = Clients::new(with_token(admin_channel, &manager.token));
    admin
        .infra
        .register_datacenter(v1::RegisterDatacenterRequest {
            id: "dc-b".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let cert_a = pki.client("dc-a");
    let as_a = tls_channel(manager.addr, &pki, Some(&cert_a))
        .await
        .unwrap();
    assert!(admin.dc("dc-a").await.is_none());
    let welcome = hello(as_a.clone(), "dc-a")
        .await
        .expect("dc-a's certificate connects as dc-a");
    assert!(
        admin.dc("dc-a").await.is_some(),
        "a certificate from client_ca registers its datacenter, as its token would"
    );
    assert!(matches!(
        welcome.body,
        Some(v1::manager_message::Body::Welcome(_))
    ));
    let other = hello(as_a.clone(), "dc-b").await.expect_err("not as dc-b");
    assert_eq!(other.code(), Code::PermissionDenied, "{other}");
    let read = v1::claim_service_client::ClaimServiceClient::new(as_a.clone())
        .list_claims(v1::ListClaimsRequest::default())
        .await
        .expect_err("a certificate is an agent's, nothing more");
    assert_eq!(read.code(), Code::PermissionDenied, "{read}");

    // A certificate from another authority does not get through the handshake.
    let stranger = TestPki::new();
    let forged = stranger.client("dc-b");
    let refused = match tls_channel(manager.addr, &pki, Some(&forged)).await {
        Err(e) => Some(e.to_string()),
        Ok(channel) => hello(channel, "dc-b").await.err().map(|s| s.to_string()),
    };
    assert!(
        refused.is_some(),
        "an unknown issuer's certificate was taken"
    );

    // The real agent, configured with its certificate and no token.
    let agent_config = theia_agent::AgentConfig {
        managers: vec![format!("https://{}", manager.addr)],
        dc: "dc-b".into(),
        labels: Default::default(),
        driver: theia_agent::DriverConfig::Static {
            inventory: theia::model::Resources::parse_list("inventory", "compute.vcpu=4").unwrap(),
        },
        state_dir: dir.path().join("agent"),
        reconnect_min: std::time::Duration::from_millis(50),
        reconnect_max: std::time::Duration::from_millis(500),
        ca: Some(pki.ca.clone()),
        bearer: Default::default(),
        client_identity: Some(pki.client("dc-b")),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(theia_agent::run(agent_config, async move {
        let _ = stopped.await;
    }));
    admin.wait_liveness("dc-b", v1::Liveness::Alive).await;
    let _ = stop.send(());
    agent.await.unwrap().unwrap();
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_is_refused_and_others_are_not() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        theia_manager::ManagerConfig::for_dir(dir.path(), "127.0.0.1:0".parse().unwrap());
    fast(&mut config);
    config.rate_limit = std::num::NonZeroU32::new(5);
    let manager = TestManager::start_with(config).await;
    let (busy, _) = token(&manager, "busy@example.com", &["operator"], 0).await;
    let (calm, _) = token(&manager, "calm@example.com", &["operator"], 0).await;
    let who = |t: &str| {
        let t = t.to_owned();
        let manager = &manager;
        async move {
            let channel = with_token(manager.plain_channel().await, &t);
            v1::access_service_client::AccessServiceClient::new(channel)
                .who_am_i(v1::WhoAmIRequest {})
                .await
        }
    };
    let mut taken = 0;
    let mut refused = None;
    for _ in 0..20 {
        match who(&busy).await {
            Ok(_) => taken += 1,
            Err(status) => refused = Some(status),
        }
    }
    let refused = refused.expect("20 calls at once exceed 5 a second");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused}");
    assert!(refused.message().contains("retry in"), "{refused}");
    assert!((5..=12).contains(&taken), "{taken} of 20 taken at 5/s");
    assert!(who(&calm).await.is_ok(), "another token has its own budget");
    let health = tonic_health::pb::health_client::HealthClient::new(manager.plain_channel().await)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(health.is_ok(), "health checks are not limited");
    manager.stop().await;
}
