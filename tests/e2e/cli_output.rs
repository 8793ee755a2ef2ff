//! The CLI prints the same document as JSON or YAML, for programs.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yaml_output_is_the_json_document_in_yaml() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(&dir.path().join("m")).await;
    let agent = TestAgent::start(
        vec![manager.url()],
        "dc-y",
        &[("region", "eu")],
        "compute.vcpu=8",
        dir.path().join("a"),
    );
    let api = Clients::new(manager.channel().await);
    api.wait_liveness("dc-y", theia::api::v1::Liveness::Alive)
        .await;
    let theia = bin_dir().join("theia");
    let addr = manager.addr.to_string();
    for args in [
        &["dc", "list"][..],
        &["dc", "show", "dc-y"],
        &["config", "show"],
    ] {
        let with = |format: &str| {
            let mut all = vec!["--output", format];
            all.extend_from_slice(args);
            let (ok, out, err) = run(&theia, &all, &addr);
            assert!(ok, "{all:?}: {err}");
            out
        };
        let mut json: serde_json::Value = serde_json::from_str(&with("json")).unwrap();
        let mut yaml: serde_json::Value = serde_yaml_ng::from_str(&with("yaml")).unwrap();
        // `config show` reports the output format itself, which differs.
        for doc in [&mut json, &mut yaml] {
            if let Some(map) = doc.as_object_mut() {
                map.remove("output");
            }
        }
        assert_eq!(yaml, json, "{args:?}");
    }
    agent.stop().await;
    manager.stop().await;
}
