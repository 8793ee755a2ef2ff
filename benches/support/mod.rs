//! What the benches share: knobs from the environment and a redis-server
//! started the way theia needs it.

/// The number in environment variable `name`, or `default`.
pub fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A redis-server that syncs its append-only file on every write, as theia
/// needs it; killed when dropped.
pub struct Redis(std::process::Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a redis-server on a free loopback port with its files in `dir`,
/// `maxmemory-policy noeviction`, and its append-only file synced on every
/// write; returns it and its URL once it accepts connections.
pub fn start_redis(dir: &std::path::Path) -> anyhow::Result<(Redis, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = std::process::Command::new("redis-server")
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .args(["--maxmemory-policy", "noeviction"])
        .arg("--dir")
        .arg(dir)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let redis = Redis(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok((redis, format!("redis://127.0.0.1:{port}")))
}
