//! The Sentry connector of the real `theia-manager` binary against a Sentry
//! stand-in on loopback: an error the manager logs arrives as an event in
//! an envelope, read back with a decoder of the test's own.

use crate::common::*;

/// The items of a Sentry envelope: each item's header and payload, as JSON.
fn items(envelope: &[u8]) -> Vec<(serde_json::Value, serde_json::Value)> {
    let text = std::str::from_utf8(envelope).expect("an envelope is text here");
    let mut lines = text.split('\n');
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).expect("a header");
    assert!(header.is_object());
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let item: serde_json::Value = serde_json::from_str(line).expect("an item header");
        let payload = lines.next().expect("an item payload");
        out.push((item, serde_json::from_str(payload).expect("a JSON payload")));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_the_manager_logs_reaches_sentry() {
    init();
    let sentry = Receiver::start(|_| 200).await;
    // A Loki that refuses every push: the manager logs that as an error.
    let loki = Receiver::start(|_| 400).await;
    let dir = tempfile::tempdir().unwrap();
    let dsn = format!("http://publickey@{}/42", sentry.addr);
    let loki_url = format!("http://{}", loki.addr);
    let addr = format!("127.0.0.1:{}", free_port());
    let (_manager, _) = spawn_until(
        &bin_dir().join("theia-manager"),
        &[
            "--listen",
            &addr,
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--insecure",
            "--sentry-dsn",
            &dsn,
            "--loki-url",
            &loki_url,
        ],
        "serving",
    );
    // A call without a token is refused: an audit event, which Loki refuses.
    let refused = raw_unary(
        plain_channel(&addr).await,
        "/theia.v1.TenantService/ListTenants",
        Vec::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let event = eventually("an error event reaches Sentry", || {
        let got = sentry.received();
        async move {
            got.iter().find_map(|r| {
                assert_eq!(r.path, "/api/42/envelope/");
                let auth = r.headers["x-sentry-auth"].to_str().unwrap();
                assert!(auth.contains("sentry_key=publickey"), "{auth}");
                items(&r.body)
                    .into_iter()
                    .find(|(item, _)| item["type"] == "event")
                    .map(|(_, payload)| payload)
            })
        }
    })
    .await;
    // Sentry leaves out the level of an event that is an error.
    assert!(event.get("level").is_none_or(|l| l == "error"), "{event}");
    assert_eq!(
        event["message"], "Loki refused a batch of audit events; left out",
        "{event}"
    );
    // The lines before it came along as breadcrumbs.
    assert!(
        event["breadcrumbs"]
            .to_string()
            .contains("theia-manager serving"),
        "{event}"
    );
    assert_eq!(
        event["release"],
        concat!("theia-manager@", env!("CARGO_PKG_VERSION"))
    );
    assert!(!loki.received().is_empty());
}
