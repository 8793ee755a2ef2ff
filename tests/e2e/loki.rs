//! The Loki connector against a Loki stand-in on loopback that speaks the
//! push API (snappy-compressed protobuf) and fails its first push: the
//! trail arrives, retried, with its labels, and a dead Loki holds nothing up.

use std::sync::Arc;

use loki_api::logproto::PushRequest;
use loki_api::prost::Message as _;
use theia::api::v1;

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

/// What `GET /metrics` answers at `addr`, headers and all.
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    text
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
    let text = scrape(manager.metrics.unwrap()).await;
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
    // Accepts connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            open.push(stream);
        }
    });
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
        let accepted = accepted.clone();
        async move { (accepted.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(()) }
    })
    .await;
    // While its push hangs, the manager goes on as ever.
    for i in 0..20 {
        api.create_tenant(&format!("t{i}"), &[]).await;
    }
    let tenants = api
        .tenants
        .list_tenants(v1::ListTenantsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tenants.tenants.len(), 21);
    // What did not fit its buffer of five was left out, and counted.
    let text = scrape(manager.metrics.unwrap()).await;
    let dropped = text
        .lines()
        .find_map(|l| l.strip_prefix("theia_connector_dropped_total{connector=\"loki\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("the drop counter");
    assert!(dropped >= 15, "{text}");
    // And it stops without waiting for the sink.
    manager.stop().await;
    held.abort();
}
