//! The manager's settings, read from theia's layered configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use theia::config::{Config, ConfigError};
use theia::scheduler::LivenessPolicy;

pub use crate::store::Secret;

/// Everything `theia-manager` needs to start.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Where the gRPC API listens; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Where Prometheus metrics are served; none when `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// The Loki the audit trail is pushed to; none when `None`.
    pub loki: Option<crate::connectors::loki::Loki>,
    /// The Sentry DSN errors and panics go to (set up by the binary, at
    /// start, before logging); none when `None`.
    pub sentry_dsn: Option<String>,
    /// The OTLP collector trace spans go to (set up by the binary, at
    /// start, before logging); none when `None`.
    pub otlp_endpoint: Option<String>,
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
    /// How deep the audit trail is.
    pub audit: theia::audit::history::Depth,
    /// How far from its first allowed start a dynamic start may go.
    pub planning_window: Duration,
    /// The order binpack and spread ties are broken in; by id when `None`.
    pub tie_break_seed: Option<u64>,
    /// The Redis URL of a manager cluster's store; the embedded store when `None`.
    pub redis: Option<String>,
    /// The cluster secret that seals what is stored in Redis.
    pub secret: Option<Secret>,
    /// PEM certificates of the authorities trusted for `rediss://` instead
    /// of the system's roots.
    pub redis_ca: Option<Vec<u8>>,
    /// The certificate and key files the API serves TLS with (read when the
    /// manager binds, so that a renewed certificate is taken at restart).
    pub tls: Option<TlsFiles>,
    /// PEM certificates of the authorities whose client certificates may
    /// stand in for an agent's token (`client_ca`; needs `tls`).
    pub client_ca: Option<Vec<u8>>,
    /// Calls per second one principal may make (and the burst); `None`
    /// for no limit.
    pub rate_limit: Option<std::num::NonZeroU32>,
    /// Make an admin token at start even if the store holds tokens.
    pub new_admin_token: bool,
    /// Where the first start of an empty store writes the first admin token
    /// (`data_dir/admin.token` when `None`).
    pub bootstrap_token_file: Option<PathBuf>,
    /// Whether plaintext is allowed (no `tls`): `theia dev` and tests on
    /// loopback, or an operator who said `--insecure`.
    pub insecure: bool,
}

/// PEM files of a certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (`tls_cert`).
    pub cert: PathBuf,
    /// The private key (`tls_key`).
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads both files as a TLS identity; errors name the key and the file.
    pub fn identity(&self) -> anyhow::Result<tonic::transport::Identity> {
        let read = |key: &str, path: &PathBuf, marker: &[u8]| -> anyhow::Result<Vec<u8>> {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("{key}: cannot read {}: {e}", path.display()))?;
            anyhow::ensure!(
                pem.windows(marker.len()).any(|w| w == marker),
                "{key}: {} is not a PEM file of the right kind",
                path.display()
            );
            Ok(pem)
        };
        let cert = read("tls_cert", &self.cert, b"-----BEGIN CERTIFICATE-----")?;
        let key = read("tls_key", &self.key, b"PRIVATE KEY-----")?;
        Ok(tonic::transport::Identity::from_pem(cert, key))
    }
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
        let metrics_listen = match c.opt_string("metrics_listen")?.filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(text.parse().map_err(|_| {
                invalid(
                    "metrics_listen",
                    format!("{text:?} is not an address such as 127.0.0.1:9464"),
                )
            })?),
        };
        let loki_tenant = c.opt_string("loki_tenant")?.filter(|s| !s.is_empty());
        let loki = match c.opt_string("loki_url")?.filter(|s| !s.is_empty()) {
            None => None,
            Some(url) => Some(
                crate::connectors::loki::Loki::new(&url, loki_tenant)
                    .map_err(|reason| invalid("loki_url", reason))?,
            ),
        };
        let redis = c.opt_string("redis")?.filter(|s| !s.is_empty());
        if let Some(url) = &redis {
            let scheme = url.split("://").next().unwrap_or_default();
            if !matches!(scheme, "redis" | "rediss") || !url.contains("://") {
                return Err(invalid(
                    "redis",
                    "must be a URL such as redis://127.0.0.1:6379 or rediss://host:6380/0".into(),
                ));
            }
        }
        let secret = match (
            c.opt_string("secret")?.filter(|s| !s.is_empty()),
            c.opt_string("secret_file")?.filter(|s| !s.is_empty()),
        ) {
            (Some(text), _) => Some(Secret::from_hex(&text).map_err(|r| invalid("secret", r))?),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| invalid("secret_file", format!("cannot read {file}: {e}")))?;
                Some(
                    Secret::from_hex(&text)
                        .map_err(|r| invalid("secret_file", format!("{file}: {r}")))?,
                )
            }
            (None, None) => None,
        };
        if redis.is_some() && secret.is_none() {
            return Err(invalid(
                "redis",
                "a manager cluster needs its cluster secret: set secret (64 hex characters; `theia secret generate` prints one) or secret_file".into(),
            ));
        }
        let redis_ca = match c.opt_string("redis_ca")?.filter(|s| !s.is_empty()) {
            None => None,
            Some(file) => {
                if !redis.as_deref().is_some_and(|u| u.starts_with("rediss://")) {
                    return Err(invalid(
                        "redis_ca",
                        "is for a Redis reached over TLS: set redis to a rediss:// URL".into(),
                    ));
                }
                let pem = std::fs::read(&file)
                    .map_err(|e| invalid("redis_ca", format!("cannot read {file}: {e}")))?;
                if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                    return Err(invalid(
                        "redis_ca",
                        format!("{file} holds no PEM certificate"),
                    ));
                }
                Some(pem)
            }
        };
        let tls = match (
            c.opt_string("tls_cert")?.filter(|s| !s.is_empty()),
            c.opt_string("tls_key")?.filter(|s| !s.is_empty()),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid("tls_cert", "needs tls_key, its private key".into()));
            }
            (None, Some(_)) => {
                return Err(invalid("tls_key", "needs tls_cert, its certificate".into()));
            }
        };
        let client_ca = match c.opt_string("client_ca")?.filter(|s| !s.is_empty()) {
            None => None,
            Some(file) => {
                if tls.is_none() {
                    return Err(invalid(
                        "client_ca",
                        "client certificates need TLS: set tls_cert and tls_key too".into(),
                    ));
                }
                Some(
                    theia::api::tls::read_ca(std::path::Path::new(&file))
                        .map_err(|reason| invalid("client_ca", reason))?,
                )
            }
        };
        let insecure = c.bool("insecure")?;
        if tls.is_none() && !insecure {
            return Err(ConfigError::Missing {
                key: "tls_cert".to_owned(),
                hint: "the API serves TLS: set tls_cert and tls_key (--tls-cert, --tls-key: PEM files), or --insecure (insecure: true) to serve plaintext".to_owned(),
            });
        }
        if tls.is_some() && insecure {
            return Err(invalid(
                "insecure",
                "is for a manager without TLS, but tls_cert and tls_key are set: drop one or the other".into(),
            ));
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
            metrics_listen,
            loki,
            sentry_dsn: c.opt_string("sentry_dsn")?.filter(|s| !s.is_empty()),
            otlp_endpoint: c.opt_string("otlp_endpoint")?.filter(|s| !s.is_empty()),
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
            audit: theia::audit::history::Depth {
                max_events: usize::try_from(c.u64("audit_max_events")?).unwrap_or(usize::MAX),
                max_age_ms: u64::try_from(c.duration("audit_max_age")?.as_millis())
                    .unwrap_or(u64::MAX),
            },
            planning_window: c.duration("planning_window")?,
            tie_break_seed: c.opt_u64("tie_break_seed")?,
            redis,
            secret,
            redis_ca,
            tls,
            client_ca,
            rate_limit: {
                let n = c.u64("rate_limit")?;
                let n = u32::try_from(n).map_err(|_| {
                    invalid(
                        "rate_limit",
                        "must be at most 4294967295 calls per second".into(),
                    )
                })?;
                std::num::NonZeroU32::new(n)
            },
            new_admin_token: c.bool("new_admin_token")?,
            bootstrap_token_file: c
                .opt_string("bootstrap_token_file")?
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            insecure,
        })
    }

    /// Where the first admin token is written at the first start.
    pub fn bootstrap_token_path(&self) -> PathBuf {
        self.bootstrap_token_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("admin.token"))
    }

    /// Defaults with a data directory and a listen address, for tests and `theia dev`.
    /// Plaintext: it is meant for loopback.
    pub fn for_dir(data_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        let plaintext = theia::config::Setting {
            key: "insecure".to_owned(),
            value: theia::config::Value::Text("true".to_owned()),
            source: theia::config::Source::Default,
        };
        let mut c = Self::from_config(&theia::config::resolve([plaintext]))
            .expect("built-in defaults are valid");
        c.data_dir = data_dir.into();
        c.listen = listen;
        c
    }
}
