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
        // `config show` reports the output format itself, which differs,
        // and a heartbeat may land between the two calls.
        fn forget_volatile(doc: &mut serde_json::Value) {
            match doc {
                serde_json::Value::Object(map) => {
                    map.remove("output");
                    map.remove("lastSeenUnixMs");
                    map.values_mut().for_each(forget_volatile);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(forget_volatile),
                _ => {}
            }
        }
        for doc in [&mut json, &mut yaml] {
            forget_volatile(doc);
        }
        assert_eq!(yaml, json, "{args:?}");
    }
    agent.stop().await;
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_what_grpcurl_prints_for_the_same_call() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start(dir.path()).await;
    let mut api = Clients::new(manager.channel().await);
    api.create_tenant("acme", &[("compute.vcpu", "8"), ("compute.memory", "16Gi")])
        .await;
    api.create_profile("small", &[("compute.vcpu", "1")]).await;
    let addr = manager.addr.to_string();
    let token = manager.token.clone();
    tokio::task::spawn_blocking(move || {
        let theia = bin_dir().join("theia");
        let header = format!("authorization: Bearer {token}");
        for (cli, data, method) in [
            (
                &["tenant", "show", "acme"][..],
                r#"{"name": "acme"}"#,
                "theia.v1.TenantService/GetTenant",
            ),
            (
                &["profile", "list"],
                "{}",
                "theia.v1.ProfileService/ListProfiles",
            ),
            (&["whoami"], "{}", "theia.v1.AccessService/WhoAmI"),
        ] {
            let mut args = vec!["--output", "json"];
            args.extend_from_slice(cli);
            let (ok, ours, err) = run(&theia, &args, &addr);
            assert!(ok, "{cli:?}: {err}");
            let out = std::process::Command::new(grpcurl())
                .args(["-plaintext", "-H", &header, "-d", data, &addr, method])
                .output()
                .expect("grpcurl runs");
            assert!(out.status.success(), "{method}");
            let theirs = String::from_utf8_lossy(&out.stdout);
            let ours: serde_json::Value = serde_json::from_str(&ours).unwrap();
            let theirs: serde_json::Value = serde_json::from_str(&theirs).unwrap();
            assert_eq!(ours, theirs, "{cli:?} and {method}");
        }
    })
    .await
    .unwrap();
    manager.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_many_pages_shows_progress_on_a_terminal_only() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let manager = TestManager::start_with(unlimited_config(dir.path())).await;
    let mut api = Clients::new(manager.channel().await);
    for n in 0..1001 {
        api.create_profile(&format!("p{n:04}"), &[("compute.vcpu", "1")])
            .await;
    }
    let addr = manager.addr.to_string();
    let token = manager.token.clone();
    tokio::task::spawn_blocking(move || {
        let theia = bin_dir().join("theia");
        // `script` gives theia a terminal, as a person at one has.
        let out = std::process::Command::new("script")
            .args([
                "-qec",
                &format!("{} profile list", theia.display()),
                "/dev/null",
            ])
            .env("THEIA_MANAGER", format!("http://{addr}"))
            .env("THEIA_TOKEN", &token)
            .output()
            .expect("script runs");
        let seen = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{seen}");
        assert!(seen.contains("1000 profiles so far"), "{seen}");
        assert!(seen.contains("p1000"), "every page is listed: {seen}");
        // Piped, nothing but the table.
        let (ok, piped, err) = run(&theia, &["profile", "list"], &addr);
        assert!(
            ok && !piped.contains("so far") && !err.contains("so far"),
            "{err}"
        );
        assert_eq!(piped.lines().count(), 1002, "a header and every profile");
    })
    .await
    .unwrap();
    manager.stop().await;
}
