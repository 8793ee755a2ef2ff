//! A manager cluster's store reached over TLS (`rediss://`), against a real
//! redis-server serving TLS only: trusted through `redis_ca`, refused with
//! a clear error when the certificate is not trusted or TLS is not spoken.

use theia_manager::{Manager, ManagerConfig};

use crate::common::*;

const SECRET: &str = "a11ca11ca11ca11ca11ca11ca11ca11ca11ca11ca11ca11ca11ca11ca11ca11c";

/// A redis-server that speaks TLS only, with `pki`'s server certificate.
struct TlsRedis {
    port: u16,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    fn start(pki: &TestPki) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", "0"])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&pki.cert)
            .arg("--tls-key-file")
            .arg(&pki.key)
            .arg("--tls-ca-cert-file")
            .arg(&pki.ca)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let child = Child(child);
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen on {port} (is it built with TLS?)"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self {
            port,
            _child: child,
            _dir: dir,
        }
    }
}

fn config(dir: &std::path::Path, url: String, ca: Option<Vec<u8>>) -> ManagerConfig {
    let mut config = ManagerConfig::for_dir(dir, "127.0.0.1:0".parse().unwrap());
    fast(&mut config);
    config.redis = Some(url);
    config.secret = Some(theia_manager::Secret::from_hex(SECRET).unwrap());
    config.redis_ca = ca;
    // Every manager of the test cluster finds the first one's admin token.
    config.bootstrap_token_file = dir.parent().map(|d| d.join("admin.token"));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_store_over_tls_is_trusted_through_redis_ca_and_refused_otherwise() {
    init();
    let pki = TestPki::new();
    let redis = TlsRedis::start(&pki);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let ca = std::fs::read(&pki.ca).unwrap();

    // Not trusted: the system's roots do not know the test CA.
    let refused = Manager::bind(config(&dir.path().join("m0"), url.clone(), None))
        .await
        .err()
        .expect("an unknown issuer is refused");
    let message = format!("{refused:#}");
    assert!(
        message.contains(&url) && message.contains("certificate"),
        "says which Redis and that its certificate is not trusted: {message}"
    );
    assert!(
        message.contains("set redis_ca"),
        "and what to do: {message}"
    );
    // Plain Redis protocol on the TLS port gets no answer it can use.
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    let refused = Manager::bind(config(&dir.path().join("m1"), plain.clone(), None))
        .await
        .err()
        .expect("plaintext to a TLS port is refused");
    let message = format!("{refused:#}");
    assert!(message.contains(&plain), "{message}");
    assert!(message.contains("use a rediss:// URL"), "{message}");

    // Trusted through redis_ca: the manager works, and what it wrote comes
    // back to the next manager over TLS.
    let m = TestManager::start_with(config(
        &dir.path().join("m2"),
        url.clone(),
        Some(ca.clone()),
    ))
    .await;
    let mut api = Clients::new(m.channel().await);
    api.create_tenant("acme", &[("compute.vcpu", "8")]).await;
    let status = api
        .cluster
        .get_cluster_status(theia::api::v1::GetClusterStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.store_location, url, "{status:?}");
    m.stop().await;
    let again = TestManager::start_with(config(&dir.path().join("m3"), url, Some(ca))).await;
    let mut api = Clients::new(again.channel().await);
    let tenant = api
        .tenants
        .get_tenant(theia::api::v1::GetTenantRequest {
            name: "acme".into(),
        })
        .await
        .expect("the tenant came back over TLS")
        .into_inner();
    assert_eq!(tenant.name, "acme");
    again.stop().await;
}

#[test]
fn redis_ca_is_refused_for_plain_redis_and_for_a_file_with_no_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let run = |url: &str, ca: &std::path::Path| {
        let out = std::process::Command::new(bin_dir().join("theia-manager"))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--insecure",
                "--redis",
                url,
                "--secret",
                SECRET,
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--redis-ca")
            .arg(ca)
            .env("NO_COLOR", "1")
            .output()
            .expect("theia-manager runs");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let pki = TestPki::new();
    let err = run("redis://127.0.0.1:1", &pki.ca);
    assert!(
        err.contains("redis_ca") && err.contains("rediss://"),
        "{err}"
    );
    let err = run("rediss://127.0.0.1:1", &not_pem);
    assert!(
        err.contains("redis_ca") && err.contains("no PEM certificate"),
        "{err}"
    );
}
