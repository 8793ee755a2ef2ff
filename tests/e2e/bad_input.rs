//! Every RPC validates its fields; a rejected request stores nothing.

use theia::api::v1;
use tonic::Code;

use crate::common::*;
use crate::placement::TwoDcs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_stores_nothing() {
    let mut w = TwoDcs::start().await;
    let claim = |s: v1::ClaimSpec| v1::CreateClaimRequest { spec: Some(s) };
    let res = |pairs: &[(&str, &str)]| v1::ClaimSpec {
        tenant: "acme".into(),
        count: 1,
        resources: map(pairs),
        ..Default::default()
    };

    let cases: Vec<(v1::CreateClaimRequest, Code, &str)> = vec![
        (
            claim(spec("acme", "small", 0)),
            Code::InvalidArgument,
            "spec.count",
        ),
        (
            claim(res(&[("compute.cpus", "4")])),
            Code::InvalidArgument,
            "spec.resources[compute.cpus]",
        ),
        (
            claim(res(&[("compute.memory", "4 parsecs")])),
            Code::InvalidArgument,
            "spec.resources[compute.memory]",
        ),
        (
            claim(res(&[("compute.memory", "-4Gi")])),
            Code::InvalidArgument,
            "spec.resources[compute.memory]",
        ),
        (
            claim(spec("", "small", 1)),
            Code::InvalidArgument,
            "spec.tenant",
        ),
        (
            claim(spec(&"a".repeat(64), "small", 1)),
            Code::InvalidArgument,
            "spec.tenant",
        ),
        (
            claim(spec("nobody", "small", 1)),
            Code::NotFound,
            "spec.tenant",
        ),
        (
            claim(spec("acme", "huge", 1)),
            Code::NotFound,
            "spec.profile",
        ),
        (
            claim(v1::ClaimSpec {
                selector: "region=e u".into(),
                ..spec("acme", "small", 1)
            }),
            Code::InvalidArgument,
            "spec.selector",
        ),
        (
            claim(v1::ClaimSpec {
                strategy: 9,
                ..spec("acme", "small", 1)
            }),
            Code::InvalidArgument,
            "spec.strategy",
        ),
        (
            v1::CreateClaimRequest { spec: None },
            Code::InvalidArgument,
            "spec",
        ),
    ];
    for (req, code, field) in cases {
        let err = w.api.claims.create_claim(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{req:?}: {}", err.message());
        assert!(
            err.message().starts_with(field),
            "{req:?}: message {:?} should name {field}",
            err.message()
        );
    }
    assert!(
        w.api.all_claims().await.is_empty(),
        "nothing rejected was stored"
    );

    let tenant = |name: &str, quota: &[(&str, &str)]| v1::CreateTenantRequest {
        tenant: Some(v1::Tenant {
            name: name.into(),
            quota: map(quota),
            ..Default::default()
        }),
    };
    for (req, field) in [
        (tenant("", &[]), "tenant.name"),
        (tenant("Bad Name", &[]), "tenant.name"),
        (
            tenant("ok", &[("storage.blocks", "1Ti")]),
            "tenant.quota[storage.blocks]",
        ),
        (
            tenant("ok", &[("storage.block", "1Tx")]),
            "tenant.quota[storage.block]",
        ),
    ] {
        let err = w.api.tenants.create_tenant(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().starts_with(field),
            "{:?} should name {field}",
            err.message()
        );
    }
    let err = w
        .api
        .tenants
        .create_tenant(tenant("acme", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    let tenants = w
        .api
        .tenants
        .list_tenants(v1::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .tenants;
    assert_eq!(tenants.len(), 1, "only acme exists");

    let err = w
        .api
        .profiles
        .create_profile(v1::CreateProfileRequest {
            profile: Some(v1::Profile {
                name: "empty".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("profile.resources"),
        "{}",
        err.message()
    );
    let err = w
        .api
        .tenants
        .get_tenant(v1::GetTenantRequest {
            name: "nobody".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = w
        .api
        .claims
        .get_claim(v1::GetClaimRequest {
            id: "c-nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = w
        .api
        .infra
        .get_datacenter(v1::GetDatacenterRequest {
            id: "dc-nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_tenant_changes_only_the_masked_fields() {
    let mut w = TwoDcs::start().await;
    let update = |tenant: v1::Tenant, paths: &[&str]| v1::UpdateTenantRequest {
        tenant: Some(tenant),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    let patch = v1::Tenant {
        name: "acme".into(),
        owner: "alice".into(),
        quota: map(&[("compute.vcpu", "4")]),
        ..Default::default()
    };

    let t = w
        .api
        .tenants
        .update_tenant(update(patch.clone(), &["owner"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.owner, "alice");
    assert_eq!(
        t.quota.get("compute.vcpu").map(String::as_str),
        Some("40"),
        "the quota is not in the mask"
    );

    let t = w
        .api
        .tenants
        .update_tenant(update(patch.clone(), &["quota"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.quota.get("compute.vcpu").map(String::as_str), Some("4"));
    // The new quota holds for the next claim: 2 × 4 vCPU is more than 4.
    let err = w
        .api
        .create_claim(spec("acme", "small", 2))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);

    for (req, field) in [
        (update(patch.clone(), &[]), "update_mask"),
        (update(patch.clone(), &["name"]), "update_mask"),
        (
            update(
                v1::Tenant {
                    quota: map(&[("compute.vcpu", "lots")]),
                    ..patch.clone()
                },
                &["quota"],
            ),
            "tenant.quota[compute.vcpu]",
        ),
    ] {
        let err = w.api.tenants.update_tenant(req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert!(
            err.message().starts_with(field),
            "{:?} should name {field}",
            err.message()
        );
    }
    let err = w
        .api
        .tenants
        .update_tenant(update(
            v1::Tenant {
                name: "nobody".into(),
                ..patch
            },
            &["owner"],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let t = w
        .api
        .tenants
        .get_tenant(v1::GetTenantRequest {
            name: "acme".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            t.owner.as_str(),
            t.quota.get("compute.vcpu").map(String::as_str)
        ),
        ("alice", Some("4")),
        "refused updates changed nothing"
    );

    w.stop().await;
}
