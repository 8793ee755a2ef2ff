//! The Loki connector against a Loki stand-in on loopback that speaks the
//! push API (snappy-compressed protobuf) and fails its first push: the
//! trail arrives, retried, with its labels, and a dead Loki holds nothing up.

use loki_api::logproto::PushRequest;
use loki_api::prost::Message as _;

use crate::common::*;

/// A Loki stand-in that refuses the first push (503) and takes the rest.
async fn loki() -> Receiver {
    Receiver::start(|n| if n == 0 { 503 } else { 204 }).await
}

/// Each push the stand-in took, decoded independently of the manager:
/// snappy, then the `PushRequest` protobuf.
fn pushes(loki: &Receiver) -> Vec<(hyper::HeaderMap, PushRequest)> {
    loki.received()
        .into_iter()
        .filter(|r| r.status == 204)
        .map(|r| {
            assert_eq!(r.path, "/loki/api/v1/push");
            let raw = snap::raw::Decoder::new()
                .decompress_vec(&r.body)
                .expect("snappy");
            (
                r.headers,
                PushRequest::decode(raw.as_slice()).expect("a PushRequest"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_reaches_loki_labelled_and_retried() {
    init();
    let loki = loki().await;
    let addr = loki.addr;
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast_config(dir.path());
    config.loki =
        Some(theia_manager::Loki::new(&format!("http://{addr}"), Some("ops".into())).unwrap());
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let manager = TestManager::start_with(config).await;
    let mut api = Clients::new(manager.channel().await);
    api.create_tenant("acme", &[]).await;
    let line = eventually("the tenant's creation reaches Loki", || {
        let pushed = pushes(&loki);
        async move {
            pushed.iter().find_map(|(headers, push)| {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                assert_eq!(headers["x-scope-orgid"], "ops");
                push.streams
                    .iter()
                    .find(|s| s.labels.contains("action=\"tenant.create\""))
                    .map(|s| (s.labels.clone(), s.entries[0].line.clone()))
            })
        }
    })
    .await;
    let (labels, entry) = line;
    assert!(
        labels.contains("service=\"theia\"") && labels.contains("outcome=\"ok\""),
        "{labels}"
    );
    assert!(!labels.contains("acme"), "no per-object labels: {labels}");
    let event: serde_json::Value = serde_json::from_str(&entry).unwrap();
    assert_eq!(event["actor"], "admin");
    assert_eq!(event["object_id"], "acme");
    assert_eq!(
        loki.received()[0].status,
        503,
        "the first push was refused, and retried"
    );
    // Nothing was left out, and the metrics say what was sent.
    let text = http_get(manager.metrics.unwrap(), "/metrics").await.1;
    assert!(
        text.contains("theia_connector_dropped_total{connector=\"loki\"} 0"),
        "{text}"
    );
    assert!(
        !text.contains("theia_connector_sent_total{connector=\"loki\"} 0"),
        "{text}"
    );
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loki_that_never_answers_holds_nothing_up() {
    init();
    let silent = Silent::start().await;
    let addr = silent.addr;
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast_config(dir.path());
    let mut loki = theia_manager::Loki::new(&format!("http://{addr}"), None).unwrap();
    loki.buffer = 5;
    config.loki = Some(loki);
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let manager = TestManager::start_with(config).await;
    let mut api = Clients::new(manager.channel().await);
    api.create_tenant("first", &[]).await;
    eventually("the connector is stuck pushing to the silent Loki", || {
        let accepted = silent.accepted();
        async move { (accepted > 0).then_some(()) }
    })
    .await;
    // While its push hangs, the manager goes on as ever.
    for i in 0..20 {
        api.create_tenant(&format!("t{i}"), &[]).await;
    }
    assert_eq!(api.tenant_names().await.len(), 21);
    // What did not fit its buffer of five was left out, and counted.
    let text = http_get(manager.metrics.unwrap(), "/metrics").await.1;
    let dropped = text
        .lines()
        .find_map(|l| l.strip_prefix("theia_connector_dropped_total{connector=\"loki\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("the drop counter");
    assert!(dropped >= 15, "{text}");
    // And it stops without waiting for the sink.
    manager.stop().await;
}
