//! The agent's life: open the driver, then keep a session with some manager
//! of the list until told to stop, failing over to the next one after a
//! jittered backoff whenever a stream cannot be opened or ends.

use std::future::Future;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::config::check_manager_url;
use crate::session::{Agent, End, millis, stopped};
use theia::api::tls::{Trust, client_tls, is_loopback_url, read_ca};

use crate::{AgentConfig, driver};

/// Aborts the task it holds when dropped, so that `run` leaves nothing
/// behind however it returns.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the agent until `shutdown` completes, then returns `Ok`.
///
/// Unreachable managers are never an error: the agent keeps trying them in
/// turn. It fails only when it cannot work at all: the state directory
/// cannot be created, read or written, or the manager list is unusable.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.managers.is_empty() {
        anyhow::bail!("managers: list at least one manager URL, e.g. http://127.0.0.1:7070");
    }
    for url in &config.managers {
        check_manager_url(url).map_err(|reason| anyhow::anyhow!("managers: {reason}"))?;
    }
    let driver = driver::open(&config.driver, &config.state_dir)
        .with_context(|| format!("cannot start the {} driver", config.driver.name()))?;
    let ca = match &config.ca {
        Some(path) => Some((
            path.clone(),
            read_ca(path).map_err(|e| anyhow::anyhow!("ca: {e}"))?,
        )),
        None => None,
    };
    let (mut tls, trust) = client_tls(ca.as_ref().map(|(p, pem)| (p.as_path(), pem.as_slice())));
    if let Some((cert, key)) = &config.client_identity {
        let read = |k: &str, p: &std::path::Path| {
            std::fs::read(p).with_context(|| format!("{k}: cannot read {}", p.display()))
        };
        let identity = tonic::transport::Identity::from_pem(
            read("client_cert", cert)?,
            read("client_key", key)?,
        );
        tls = tls.identity(identity);
    }
    let https = |m: &String| m.to_ascii_lowercase().starts_with("https:");
    if trust == Trust::Nothing && config.managers.iter().any(https) {
        tracing::warn!(
            "no CA bundle found (set ca, or SSL_CERT_FILE); https managers cannot be verified"
        );
    }
    for plain in config.managers.iter().filter(|m| !https(m)) {
        if !is_loopback_url(plain) {
            tracing::warn!(manager = %plain, "talking to a manager in plaintext: anyone on the network can read and change what it sends; use https://");
        }
    }

    // The shutdown future is awaited once, here; every wait of the agent
    // watches the flag it sets.
    let (stop_tx, mut stop) = watch::channel(false);
    let _forward = AbortOnDrop(tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    }));

    tracing::info!(
        datacenter = %config.dc,
        driver = driver.name(),
        state_dir = %config.state_dir.display(),
        managers = %config.managers.join(","),
        "agent starting"
    );
    let cluster = crate::cluster::ClusterMemory::open(&config.state_dir).with_context(|| {
        format!(
            "cannot read the cluster id in {}",
            config.state_dir.display()
        )
    })?;
    let mut agent = Agent::new(
        config.dc.clone(),
        config.labels.clone(),
        driver,
        cluster,
        tls,
        config.bearer.clone(),
    );
    let mut backoff = Backoff::new(config.reconnect_min, config.reconnect_max);
    let mut index = 0;
    loop {
        let url = &config.managers[index];
        tracing::debug!(manager = %url, "connecting");
        match agent.session(url, &stop).await {
            End::Shutdown => break,
            End::Lost(reason) => {
                tracing::warn!(manager = %url, %reason, "lost the manager");
                backoff.reset();
            }
            End::Unreachable(reason) => {
                tracing::warn!(manager = %url, %reason, "cannot reach the manager");
            }
        }
        index = (index + 1) % config.managers.len();
        let next = &config.managers[index];
        let delay = backoff.next_delay();
        let delay_ms = millis(delay);
        if next == url {
            tracing::info!(manager = %next, delay_ms, "reconnecting");
        } else {
            tracing::info!(from = %url, to = %next, delay_ms, "failing over to the next manager");
        }
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tracing::info!(datacenter = %config.dc, "agent stopped");
    Ok(())
}
