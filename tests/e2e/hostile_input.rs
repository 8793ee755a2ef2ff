//! Input meant to hurt: bytes that are no protobuf at all are the caller's
//! error (INVALID_ARGUMENT), and a huge or escape-laden value is quoted in
//! an error only as a short, escaped prefix.

use theia::api::v1;
use tonic::Code;

use crate::common::*;

async fn raw_call(
    channel: theia::api::auth::Authed,
    path: &'static str,
    body: Vec<u8>,
) -> tonic::Status {
    raw_unary(channel, path, body)
        .await
        .expect_err("garbage is refused")
}

/// Fails the test unless the manager behind `api` stores no tenant.
async fn assert_no_tenants(api: &mut Clients) {
    let tenants = api
        .tenants
        .list_tenants(v1::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(tenants.tenants.is_empty(), "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_are_invalid_argument_and_store_nothing() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    // A field tag with a length running past the end; a wire type that
    // does not exist; an unterminated varint.
    for body in [
        vec![0x0a, 0xff, 0x01, b'x'],
        vec![0x0f, 0x01],
        vec![0x08, 0xff],
    ] {
        for path in [
            "/theia.v1.TenantService/CreateTenant",
            "/theia.v1.ClaimService/CreateClaim",
            "/theia.v1.InfrastructureService/ListDatacenters",
        ] {
            let status = raw_call(manager.channel().await, path, body.clone()).await;
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "{path} {body:?}: {status}"
            );
            assert!(
                status.message().starts_with("malformed request"),
                "{status}"
            );
        }
    }
    let mut api = Clients::new(manager.channel().await);
    assert_no_tenants(&mut api).await;
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_or_escape_laden_value_is_quoted_short_and_escaped() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut api = Clients::new(manager.channel().await);
    let huge = "Q".repeat(1 << 20);
    let cases = [
        v1::Tenant {
            name: huge.clone(),
            ..Default::default()
        },
        v1::Tenant {
            name: "acme".into(),
            labels: [("tier".to_owned(), format!("\u{1b}[2J{huge}"))].into(),
            ..Default::default()
        },
        v1::Tenant {
            name: "acme".into(),
            quota: [("compute.vcpu".to_owned(), format!("4{huge}"))].into(),
            ..Default::default()
        },
    ];
    for tenant in cases {
        let err = api
            .tenants
            .create_tenant(v1::CreateTenantRequest {
                tenant: Some(tenant),
            })
            .await
            .expect_err("refused");
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{}",
            &err.message()[..200.min(err.message().len())]
        );
        assert!(
            err.message().len() < 300,
            "a short message: {} bytes",
            err.message().len()
        );
        assert!(
            !err.message().contains('\u{1b}'),
            "control characters are escaped: {:?}",
            err.message()
        );
    }
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_whose_driver_or_version_could_drive_a_terminal_is_refused() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let as_agent = manager.agent_channel("dc-x").await;
    for (version, driver, field) in [
        ("1.0", "evil\u{1b}]0;pwned\u{7}", "hello.driver"),
        (
            "1.0\n2026-12-01 INFO forged log line",
            "static",
            "hello.version",
        ),
        ("1.0", &*"d".repeat(65), "hello.driver"),
    ] {
        let hello = v1::AgentMessage {
            body: Some(v1::agent_message::Body::Hello(v1::Hello {
                datacenter: "dc-x".into(),
                version: version.into(),
                driver: driver.into(),
                ..Default::default()
            })),
        };
        let err = v1::agent_service_client::AgentServiceClient::new(as_agent.clone())
            .connect(tokio_stream::iter(vec![hello]))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        assert!(err.message().starts_with(field), "{err}");
        assert!(
            !err.message().contains('\u{1b}') && !err.message().contains('\n'),
            "{err:?}"
        );
    }
    let mut api = Clients::new(manager.channel().await);
    let dc = api.dc("dc-x").await.expect("registered by its agent token");
    assert!(
        dc.driver.is_empty() && dc.agent_version.is_empty(),
        "no Hello was recorded: {dc:?}"
    );
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_4_mib_is_refused_before_it_is_read() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut api = Clients::new(manager.channel().await);
    let err = api
        .tenants
        .create_tenant(v1::CreateTenantRequest {
            tenant: Some(v1::Tenant {
                name: "acme".into(),
                owner: "o".repeat(5 << 20),
                ..Default::default()
            }),
        })
        .await
        .expect_err("too large");
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{:?}: {}",
        err.code(),
        &err.message()[..err.message().len().min(200)]
    );
    assert!(err.message().contains("too large"), "{}", err.message());
    assert_no_tenants(&mut api).await;
    manager.stop().await;
}
