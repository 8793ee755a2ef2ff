//! Every list call is paged: pages in a stable order that together hold
//! every item once, a default and a largest page size, and a token that
//! is refused unless an earlier answer made it.

use std::collections::BTreeSet;

use theia::api::v1;
use tonic::Code;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_come_in_pages_that_hold_everything_once() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut api = Clients::new(manager.channel().await);
    for i in 0..250 {
        api.create_profile(&format!("p-{i:03}"), &[("compute.vcpu", "1")])
            .await;
    }

    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = api
            .profiles
            .list_profiles(v1::ListProfilesRequest {
                page_size: 100,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.profiles.len() <= 100);
        seen.extend(page.profiles.into_iter().map(|p| p.name));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..250).map(|i| format!("p-{i:03}")).collect();
    assert_eq!(seen, expected, "every profile once, in name order");

    // No page size: the default of 100.
    let first = api
        .profiles
        .list_profiles(v1::ListProfilesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.profiles.len(), 100);
    assert!(!first.next_page_token.is_empty());

    let err = api
        .profiles
        .list_profiles(v1::ListProfilesRequest {
            page_size: 10,
            page_token: "not-a-token".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("page_token:"), "{err}");

    // The CLI follows the pages by itself.
    let (ok, out, err) = run(
        &bin_dir().join("theia"),
        &["profile", "list", "--output", "json"],
        &manager.addr.to_string(),
    );
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["profiles"].as_array().map(Vec::len), Some(250));
    assert!(
        listed.get("nextPageToken").is_none(),
        "every page was followed"
    );
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_page_oldest_first_without_losing_one() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-p",
        &[],
        "compute.vcpu=1000",
        dir.path().join("agent"),
    );
    let mut api = Clients::new(manager.channel().await);
    api.wait_liveness("dc-p", v1::Liveness::Alive).await;
    api.create_tenant("acme", &[]).await;
    api.create_profile("one", &[("compute.vcpu", "1")]).await;
    let mut made = BTreeSet::new();
    for _ in 0..45 {
        made.insert(api.create_claim(spec("acme", "one", 1)).await.unwrap().id);
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = api
            .claims
            .list_claims(v1::ListClaimsRequest {
                page_size: 7,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.claims);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let ids: BTreeSet<String> = seen.iter().map(|c| c.id.clone()).collect();
    assert_eq!(seen.len(), 45, "no claim twice");
    assert_eq!(ids, made, "every claim");
    assert!(
        seen.windows(2)
            .all(|w| (w[0].created_unix_ms, &w[0].id) <= (w[1].created_unix_ms, &w[1].id)),
        "oldest first"
    );
    agent.stop().await;
    manager.stop().await;
}
