//! The manager's settings, read from theia's layered configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use theia::config::{Config, ConfigError};
use theia::scheduler::LivenessPolicy;

/// Everything `theia-manager` needs to start.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Where the gRPC API listens; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where the embedded store keeps its data.
    pub data_dir: PathBuf,
    /// This manager's id; generated once and kept in `data_dir` when `None`.
    pub manager_id: Option<String>,
    /// How far ahead a peer's clock may run before its stamps are refused.
    pub clock_offset: Duration,
    /// Longest time between flushes of coalesced changes.
    pub sync_delta: Duration,
    /// Pending changes that force a flush sooner.
    pub sync_max: u64,
    /// How often agents send heartbeats.
    pub heartbeat_interval: Duration,
    /// How often agents report inventory.
    pub report_interval: Duration,
    /// When silent agents turn suspect and down.
    pub liveness: LivenessPolicy,
    /// How long released claims are kept before they are pruned.
    pub claim_retention: Duration,
}

impl ManagerConfig {
    /// Reads and checks the manager's keys.
    pub fn from_config(c: &Config) -> Result<Self, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.to_owned(),
            origin: c
                .source(key)
                .cloned()
                .unwrap_or(theia::config::Source::Default),
            reason,
        };
        let listen_text = c.string("listen")?;
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not an address such as 127.0.0.1:7070"),
            )
        })?;
        if let Some(url) = c.opt_string("redis")? {
            if !url.is_empty() {
                return Err(invalid(
                    "redis",
                    "this version of theia-manager has only the embedded store; unset redis to run a single manager".into(),
                ));
            }
        }
        let heartbeat_interval = c.duration("heartbeat_interval")?;
        let suspect_after = c.duration("suspect_after")?;
        let down_after = c.duration("down_after")?;
        // Shorter intervals would only make agents and the monitor spin.
        let floor = Duration::from_millis(10);
        if heartbeat_interval < floor {
            return Err(invalid(
                "heartbeat_interval",
                "must be at least 10ms".into(),
            ));
        }
        if suspect_after < heartbeat_interval {
            return Err(invalid(
                "suspect_after",
                "must be at least heartbeat_interval".into(),
            ));
        }
        if down_after < suspect_after {
            return Err(invalid(
                "down_after",
                "must be at least suspect_after".into(),
            ));
        }
        let report_interval = c.duration("report_interval")?;
        if report_interval < floor {
            return Err(invalid("report_interval", "must be at least 10ms".into()));
        }
        Ok(Self {
            listen,
            data_dir: PathBuf::from(c.string("data_dir")?),
            manager_id: c.opt_string("manager_id")?.filter(|s| !s.is_empty()),
            clock_offset: Duration::from_secs_f64(c.f64("clock_offset")?),
            sync_delta: c.duration("sync_delta")?,
            sync_max: c.u64("sync_max")?,
            heartbeat_interval,
            report_interval,
            liveness: LivenessPolicy {
                suspect_after,
                down_after,
            },
            claim_retention: c.duration("claim_retention")?,
        })
    }

    /// Defaults with a data directory and a listen address, for tests and `theia dev`.
    pub fn for_dir(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        let mut c =
            Self::from_config(&theia::config::resolve([])).expect("built-in defaults are valid");
        c.data_dir = data_dir.into();
        c.listen = listen;
        c
    }
}
