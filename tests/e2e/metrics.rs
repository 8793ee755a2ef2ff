//! Prometheus metrics on `metrics_listen`, scraped from a real manager
//! after a scenario: the calls it answered, claims, capacity, liveness.

use theia::api::v1;

use crate::common::*;

/// The value of the sample `series` (name and labels, as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_the_calls_claims_capacity_and_liveness() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast_config(&dir.path().join("m"));
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let manager = TestManager::start_with(config).await;
    let metrics = manager.metrics.expect("metrics served");
    let mut api = Clients::new(manager.channel().await);
    api.create_tenant("acme", &[("compute.vcpu", "8")]).await;
    api.create_profile("small", &[("compute.vcpu", "2")]).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-a",
        &[],
        "compute.vcpu=8",
        dir.path().join("a"),
    );
    api.wait_reported("dc-a").await;
    let claim = api.create_claim(spec("acme", "small", 1)).await.unwrap();
    api.wait_state(&claim.id, v1::ClaimState::Active).await;
    let tenant = manager.channel_as("t@example.com", &["tenant:acme"]).await;
    let refused = v1::audit_service_client::AuditServiceClient::new(tenant)
        .list_events(v1::ListEventsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let _ = raw_unary(
        manager.channel().await,
        "/theia.v1.Nope/Nothing",
        Vec::new(),
    )
    .await;

    let (status, text) = http_get(metrics, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let rpc = |service: &str, method: &str, code: &str| {
        sample(
            &text,
            &format!(
                "theia_rpc_duration_seconds_count{{service=\"{service}\",method=\"{method}\",code=\"{code}\"}}"
            ),
        )
    };
    assert_eq!(
        rpc("theia.v1.ClaimService", "CreateClaim", "Ok"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        rpc("theia.v1.AuditService", "ListEvents", "PermissionDenied"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        rpc("unknown", "unknown", "Unimplemented"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "theia_claims{state=\"active\"}"),
        Some(1.0),
        "{text}"
    );
    let class = "datacenter=\"dc-a\",class=\"compute.vcpu\"";
    let total = sample(&text, &format!("theia_datacenter_total{{{class}}}")).expect("total");
    let capacity =
        sample(&text, &format!("theia_datacenter_capacity{{{class}}}")).expect("capacity");
    let allocated =
        sample(&text, &format!("theia_datacenter_allocated{{{class}}}")).expect("allocated");
    assert_eq!((capacity, allocated * 4.0), (total, total), "{text}");
    assert_eq!(
        sample(
            &text,
            "theia_datacenter_liveness{datacenter=\"dc-a\",liveness=\"alive\"}"
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "theia_agents_connected"), Some(1.0));
    let commits = sample(&text, "theia_store_commit_duration_seconds_count").expect("commits");
    assert!(commits >= 4.0, "{text}");
    assert_eq!(
        sample(&text, "theia_audit_events_dropped_total"),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with EOF"
    );

    // Every line is a comment the format knows or a sample: a metric
    // name, labels in braces, a number.
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let word = comment.split(' ').next().unwrap_or_default();
            assert!(["TYPE", "HELP", "UNIT", "EOF"].contains(&word), "{line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.starts_with("theia_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
    }
    // The counters move as the scenario goes on.
    api.create_claim(spec("acme", "small", 1)).await.unwrap();
    let (_, later) = http_get(metrics, "/metrics").await;
    assert_eq!(
        sample(
            &later,
            "theia_rpc_duration_seconds_count{service=\"theia.v1.ClaimService\",method=\"CreateClaim\",code=\"Ok\"}"
        ),
        Some(2.0)
    );
    assert!(
        sample(&later, "theia_store_commit_duration_seconds_count").unwrap() > commits,
        "{later}"
    );

    let (status, _) = http_get(metrics, "/other").await;
    assert!(status.contains("404"), "{status}");
    agent.stop().await;
    manager.stop().await;
}
